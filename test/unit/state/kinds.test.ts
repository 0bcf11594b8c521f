// Configuration entry kinds and entry files: every field is checked, and every problem names the
// field as the operator wrote it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitEntryFile } from '../../../src/core/state/entry-file.js';
import { KIND_NAMES, KINDS, kindModule } from '../../../src/core/state/kinds/index.js';

const sd = KINDS['service-defaults']!;
const pd = KINDS['proxy-defaults']!;
const fields = (errs: { field: string }[]) => errs.map((e) => e.field);

describe('kinds registry', () => {
  it('lists the known kinds, each with a description', () => {
    assert.deepEqual(KIND_NAMES, [...KIND_NAMES].sort());
    for (const k of ['proxy-defaults', 'service-defaults']) assert.ok(KIND_NAMES.includes(k), k);
    for (const k of KIND_NAMES) {
      assert.equal(KINDS[k]?.kind, k);
      assert.ok((KINDS[k]?.description.length ?? 0) > 10);
    }
    assert.equal(kindModule('toString'), undefined);
    assert.equal(kindModule('__proto__'), undefined);
  });
});

describe('service-defaults', () => {
  it('accepts every field within bounds, and an empty spec', () => {
    assert.deepEqual(sd.validate({}), []);
    assert.deepEqual(
      sd.validate({
        protocol: 'grpc',
        meta: { team: 'payments', 'x.y/z': '' },
        connectTimeoutMs: 600_000,
        maxConnections: 1,
        localRequestTimeoutMs: 30_000,
      }),
      [],
    );
    for (const p of ['tcp', 'http', 'http2', 'grpc']) assert.deepEqual(sd.validate({ protocol: p }), []);
  });

  it('names each bad field', () => {
    assert.deepEqual(sd.validate({ protocol: 'udp' }), [
      { field: 'protocol', message: 'must be one of tcp, http, http2, grpc' },
    ]);
    assert.deepEqual(fields(sd.validate({ protocol: 'HTTP' })), ['protocol']);
    assert.deepEqual(fields(sd.validate({ connectTimeoutMs: 0 })), ['connectTimeoutMs']);
    assert.deepEqual(fields(sd.validate({ connectTimeoutMs: 600_001 })), ['connectTimeoutMs']);
    assert.deepEqual(fields(sd.validate({ connectTimeoutMs: 1.5 })), ['connectTimeoutMs']);
    assert.deepEqual(fields(sd.validate({ connectTimeoutMs: '5s' })), ['connectTimeoutMs']);
    assert.deepEqual(fields(sd.validate({ maxConnections: -1 })), ['maxConnections']);
    assert.deepEqual(fields(sd.validate({ localRequestTimeoutMs: 0 })), ['localRequestTimeoutMs']);
    assert.deepEqual(fields(sd.validate({ meta: 'x' })), ['meta']);
    assert.deepEqual(fields(sd.validate({ meta: { team: 7 } })), ['meta.team']);
    assert.deepEqual(fields(sd.validate({ meta: { t: 'x'.repeat(513) } })), ['meta.t']);
    assert.deepEqual(fields(sd.validate({ meta: { ['k'.repeat(129)]: 'v' } })).length, 1);
    assert.deepEqual(sd.validate({ meta: { '': 'v' } }), [
      { field: 'meta', message: 'keys must not be empty' },
    ]);
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    assert.deepEqual(sd.validate({ meta: many }), [{ field: 'meta', message: 'more than 64 entries' }]);
    assert.deepEqual(
      sd.validate({ Protocol: 'http', retries: 3 }).map((e) => e.field),
      ['Protocol', 'retries'],
    );
    assert.match(
      sd.validate({ retries: 3 })[0]?.message ?? '',
      /^unknown field; known fields: connectTimeoutMs, localRequestTimeoutMs, maxConnections, meta, protocol, rateLimits, upstreamConfig$/,
    );
    assert.deepEqual(sd.validate(null), [{ field: '', message: 'must be an object' }]);
    assert.deepEqual(fields(sd.validate([])), ['']);
  });

  it('accepts rate limits as Consul writes them, and names each bad one', () => {
    assert.deepEqual(
      sd.validate({
        rateLimits: {
          instanceLevel: {
            requestsPerSecond: 100,
            requestsMaxBurst: 200,
            routes: [
              { pathPrefix: '/reports/', requestsPerSecond: 2 },
              { pathExact: '/login', requestsPerSecond: 5, requestsMaxBurst: 10 },
              { pathRegex: '/v[0-9]+/search', requestsPerSecond: 20 },
            ],
          },
        },
      }),
      [],
    );
    assert.deepEqual(sd.validate({ rateLimits: {} }), []);
    const bad = (instanceLevel: unknown) => fields(sd.validate({ rateLimits: { instanceLevel } }));
    assert.deepEqual(bad({ requestsPerSecond: 0 }), ['rateLimits.instanceLevel.requestsPerSecond']);
    assert.deepEqual(bad({ requestsPerSecond: 1.5 }), ['rateLimits.instanceLevel.requestsPerSecond']);
    assert.deepEqual(bad({ requestsPerSecond: 5, requestsMaxBurst: 0 }), [
      'rateLimits.instanceLevel.requestsMaxBurst',
    ]);
    // As Consul: a burst alone limits nothing, so it needs a rate.
    assert.deepEqual(bad({ requestsMaxBurst: 50 }), ['rateLimits.instanceLevel.requestsPerSecond']);
    assert.deepEqual(bad({ requestsPerSecond: 1_000_001 }), ['rateLimits.instanceLevel.requestsPerSecond']);
    assert.deepEqual(bad({ routes: [{ requestsPerSecond: 1 }] }), ['rateLimits.instanceLevel.routes[0]']);
    assert.deepEqual(bad({ routes: [{ pathPrefix: '/a' }] }), [
      'rateLimits.instanceLevel.routes[0].requestsPerSecond',
    ]);
    assert.deepEqual(bad({ routes: [{ pathPrefix: 'a', requestsPerSecond: 1 }] }), [
      'rateLimits.instanceLevel.routes[0].pathPrefix',
    ]);
    assert.deepEqual(bad({ routes: [{ pathExact: '/a', pathPrefix: '/b', requestsPerSecond: 1 }] }), [
      'rateLimits.instanceLevel.routes[0]',
    ]);
    assert.deepEqual(bad({ routes: Array(33).fill({ pathExact: '/a', requestsPerSecond: 1 }) }), [
      'rateLimits.instanceLevel.routes',
    ]);
    assert.deepEqual(bad({ RequestsPerSecond: 1 }), ['rateLimits.instanceLevel.RequestsPerSecond']);
    assert.deepEqual(fields(sd.validate({ rateLimits: { global: {} } })), ['rateLimits.global']);
  });

  it('reports every problem at once', () => {
    assert.deepEqual(fields(sd.validate({ protocol: 1, maxConnections: 0, extra: true })), [
      'extra',
      'protocol',
      'maxConnections',
    ]);
  });

  it('treats "__proto__" and friends as plain data', () => {
    const spec = JSON.parse('{"meta": {"__proto__": "x", "constructor": "y"}}');
    assert.deepEqual(sd.validate(spec), []);
    assert.deepEqual(fields(sd.validate(JSON.parse('{"__proto__": {"protocol": "http"}}'))), ['__proto__']);
  });
});

describe('proxy-defaults', () => {
  it('accepts protocol and a map of scalar settings', () => {
    assert.deepEqual(pd.validate({ protocol: 'http', config: { a: 'x', b: 1.5, c: true } }), []);
    assert.equal(pd.validateName?.('global'), undefined);
  });

  it('rejects other names and bad settings, naming the field', () => {
    assert.deepEqual(pd.validateName?.('web'), {
      field: 'name',
      message: 'must be "global" (proxy-defaults is cluster-wide: there is one entry)',
    });
    assert.deepEqual(fields(pd.validate({ config: { a: null } })), ['config.a']);
    assert.deepEqual(fields(pd.validate({ config: { a: {} } })), ['config.a']);
    assert.deepEqual(fields(pd.validate({ config: { a: Number.POSITIVE_INFINITY } })), ['config.a']);
    assert.deepEqual(fields(pd.validate({ protocol: 'udp', meta: {} })), ['meta', 'protocol']);
  });

  it('validators never throw', () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withMap: true, withBigInt: true }), (v) => {
        for (const k of Object.values(KINDS)) {
          assert.ok(Array.isArray(k.validate(v)));
          assert.ok(Array.isArray(k.validate({ protocol: v, meta: v, config: v, maxConnections: v })));
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('splitEntryFile', () => {
  it('splits the spec fields from kind and name', () => {
    assert.deepEqual(splitEntryFile({ kind: 'service-defaults', name: 'web', protocol: 'http' }), {
      kind: 'service-defaults',
      name: 'web',
      spec: { protocol: 'http' },
    });
    assert.deepEqual(splitEntryFile({ kind: 'proxy-defaults', name: 'global' }), {
      kind: 'proxy-defaults',
      name: 'global',
      spec: {},
    });
  });

  it('names fields as they appear in the file', () => {
    assert.deepEqual(splitEntryFile({ kind: 'service-defaults', name: 'web', protocol: 'udp' }), {
      field: 'protocol',
      message: 'must be one of tcp, http, http2, grpc',
    });
    assert.deepEqual(splitEntryFile({ kind: 'service-defaults', name: 'web', meta: { a: 1 } }), {
      field: 'meta.a',
      message: 'must be a string',
    });
    assert.deepEqual(splitEntryFile({ kind: 'nope', name: 'web' }), {
      field: 'kind',
      message: `unknown kind "nope"; known kinds: ${KIND_NAMES.join(', ')}`,
    });
    assert.equal((splitEntryFile({ kind: 'service-defaults' }) as { field: string }).field, 'name');
    assert.equal((splitEntryFile({ name: 'web' }) as { field: string }).field, 'kind');
    assert.equal(
      (splitEntryFile({ Kind: 'service-defaults', Name: 'web' }) as { field: string }).field,
      'Kind',
    );
    assert.match((splitEntryFile([]) as { message: string }).message, /must hold an object/);
    assert.equal(
      (splitEntryFile({ kind: 'proxy-defaults', name: 'web' }) as { field: string }).field,
      'name',
    );
  });

  it('never throws', () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true }), fc.anything(), (v, extra) => {
        splitEntryFile(v);
        splitEntryFile({ kind: 'service-defaults', name: 'web', protocol: extra, meta: extra });
      }),
    );
  });
});
