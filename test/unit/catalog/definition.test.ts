// Service definitions: the accepted forms and their defaults, and every kind of bad input refused
// with the field path and the reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CHECK_DEFAULTS, parseService, parseServiceFile } from '../../../src/core/catalog/definition.js';
import type { ServiceDefinition } from '../../../src/core/catalog/types.js';
import type { ValidationError } from '../../../src/core/state/types.js';

/** parseServiceFile's answer is a list of problems (else a list of definitions, which have ids). */
const isProblems = (r: unknown): boolean =>
  Array.isArray(r) && r.length > 0 && (r[0] as { message?: unknown }).message !== undefined;

function ok(v: unknown): ServiceDefinition {
  const r = parseService(v);
  assert.ok(!Array.isArray(r), `expected valid, got ${JSON.stringify(r)}`);
  return r;
}

function problems(v: unknown): string[] {
  const r = parseService(v);
  assert.ok(Array.isArray(r), 'expected problems');
  return (r as ValidationError[]).map((e) => `${e.field}: ${e.message}`);
}

describe('service definitions', () => {
  it('normalises a full definition and fills the defaults', () => {
    const d = ok({
      name: 'web',
      port: 8080,
      tags: ['v1', 'v1', 'canary'],
      meta: { version: '1.2' },
      protocol: 'http',
      upstreams: [{ service: 'api', localPort: 9191 }],
      checks: [
        {
          http: 'https://127.0.0.1:8443/health',
          tlsSkipVerify: true,
          header: { 'x-probe': 'mesh' },
          interval: '2s',
        },
        { tcp: '127.0.0.1:8080' },
        { grpc: '127.0.0.1:9000/web.Health', grpcUseTls: true, timeout: '1s' },
        { ttl: '30s', status: 'passing', id: 'heartbeat' },
      ],
    });
    assert.equal(d.id, 'web', 'id defaults to the name');
    assert.deepEqual(d.tags, ['v1', 'canary'], 'duplicate tags dropped');
    assert.equal(d.address, '');
    assert.deepEqual(
      d.checks.map((c) => c.id),
      ['service:web:1', 'service:web:2', 'service:web:3', 'heartbeat'],
    );
    const [http, tcp, grpc, ttl] = d.checks;
    assert.deepEqual(http?.spec, {
      type: 'http',
      url: 'https://127.0.0.1:8443/health',
      method: 'GET',
      headers: { 'x-probe': 'mesh' },
      tlsSkipVerify: true,
    });
    assert.equal(http?.intervalMs, 2_000);
    assert.equal(http?.timeoutMs, 2_000, 'timeout never above the interval');
    assert.equal(tcp?.intervalMs, CHECK_DEFAULTS.intervalMs);
    assert.equal(tcp?.timeoutMs, CHECK_DEFAULTS.timeoutMs);
    assert.equal(tcp?.initialStatus, 'critical');
    assert.deepEqual(grpc?.spec, {
      type: 'grpc',
      address: '127.0.0.1:9000',
      service: 'web.Health',
      tls: true,
      tlsSkipVerify: false,
    });
    assert.deepEqual(ttl?.spec, { type: 'ttl', ttlMs: 30_000 });
    assert.equal(ttl?.initialStatus, 'passing');
  });

  it('takes Consul’s weights, each defaulting to 1; none given, none kept', () => {
    assert.deepEqual(ok({ name: 'web', port: 80, weights: { passing: 10, warning: 0 } }).weights, {
      passing: 10,
      warning: 0,
    });
    assert.deepEqual(ok({ name: 'web', port: 80, weights: { passing: 3 } }).weights, {
      passing: 3,
      warning: 1,
    });
    assert.deepEqual(ok({ name: 'web', port: 80, weights: {} }).weights, { passing: 1, warning: 1 });
    assert.ok(!('weights' in ok({ name: 'web', port: 80 })));
  });

  it('a single check gets the id service:<id>', () => {
    assert.equal(
      ok({ name: 'db', id: 'db-1', port: 5432, check: { tcp: 'localhost:5432' } }).checks[0]?.id,
      'service:db-1',
    );
  });

  it('refuses bad input naming the field', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ port: 80 }, /^name: is required/],
      [{ name: 'Web', port: 80 }, /^name: must be 1 to 63 lower-case/],
      [{ name: 'web' }, /^port: is required/],
      [{ name: 'web', port: 70000 }, /^port: must be a port number/],
      [{ name: 'web', port: 80, protocol: 'udp' }, /^protocol: must be one of tcp, http, http2, grpc/],
      [
        { name: 'web', port: 80, weights: 3 },
        /^weights: must be an object like \{ "passing": 10, "warning": 1 \}/,
      ],
      [
        { name: 'web', port: 80, weights: { passing: 0 } },
        /^weights\.passing: must be a whole number from 1 to 1000/,
      ],
      [
        { name: 'web', port: 80, weights: { warning: 1001 } },
        /^weights\.warning: must be a whole number from 0 to 1000 \(0: no calls while it warns\)/,
      ],
      [{ name: 'web', port: 80, weights: { passing: 2, critical: 1 } }, /^weights\.critical: unknown field/],
      [{ name: 'web', port: 80, tags: ['has space'] }, /^tags\[0\]:/],
      [{ name: 'web', port: 80, colour: 'red' }, /^colour: unknown field/],
      [{ name: 'web', port: 80, address: 'not an address' }, /^address:/],
      [{ name: 'web', port: 80, check: {} }, /^check: give exactly one of http, tcp, grpc, ttl or args/],
      [
        { name: 'web', port: 80, check: { http: 'http://x/', tcp: 'x:1' } },
        /give exactly one check type, got http and tcp/,
      ],
      [{ name: 'web', port: 80, check: { http: 'ftp://x/' } }, /^check\.http: must be an http/],
      [{ name: 'web', port: 80, check: { tcp: 'nohost' } }, /^check\.tcp: must be HOST:PORT/],
      [
        { name: 'web', port: 80, check: { ttl: '10s', interval: '1s' } },
        /^check\.interval: does not apply to ttl/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', interval: '10ms' } },
        /^check\.interval: must be at least 100ms/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', interval: '1x' } },
        /^check\.interval: must be a duration like/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', timeout: '-1s' } },
        /^check\.timeout: must be from 0ms to 2147483647ms \(about 24\.8 days\), got "-1s"/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', interval: '1000h' } },
        /^check\.interval: must be from 0ms to 2147483647ms/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', interval: '1s', timeout: '2s' } },
        /^check\.timeout: must not be longer/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', status: 'ok' } },
        /^check\.status: must be one of passing/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', method: 'GET' } },
        /^check\.method: only applies to http/,
      ],
      [{ name: 'web', port: 80, check: { args: [] } }, /^check\.args: must name the program/],
      [{ name: 'web', port: 80, check: { tcp: 'x:1' }, checks: [] }, /^check: give either check or checks/],
      [
        {
          name: 'web',
          port: 80,
          checks: [
            { ttl: '1s', id: 'x' },
            { ttl: '1s', id: 'x' },
          ],
        },
        /duplicate check id "x"/,
      ],
      [
        {
          name: 'web',
          port: 80,
          upstreams: [
            { service: 'a', localPort: 1 },
            { service: 'b', localPort: 1 },
          ],
        },
        /^upstreams\[1\]\.localPort: port 1 is already used/,
      ],
      [
        { name: 'web', port: 80, check: { tcp: 'x:1', successBeforePassing: -1 } },
        /^check\.successBeforePassing/,
      ],
    ];
    for (const [input, expected] of cases) {
      const p = problems(input);
      assert.ok(
        p.some((x) => expected.test(x)),
        `${JSON.stringify(input)} → ${JSON.stringify(p)}`,
      );
    }
  });

  it('files: one service, a list, or a bare object; duplicate ids refused', () => {
    assert.equal((parseServiceFile({ service: { name: 'a', port: 1 } }) as ServiceDefinition[]).length, 1);
    assert.equal(
      (
        parseServiceFile({
          services: [
            { name: 'a', port: 1 },
            { name: 'b', port: 2 },
          ],
        }) as ServiceDefinition[]
      ).length,
      2,
    );
    assert.equal((parseServiceFile({ name: 'a', port: 1 }) as ServiceDefinition[]).length, 1);
    const dup = parseServiceFile({
      services: [
        { name: 'a', port: 1 },
        { name: 'a', port: 2 },
      ],
    }) as ValidationError[];
    assert.match(dup[0]!.message, /duplicate service id "a"/);
    const bad = parseServiceFile({ services: [{ name: 'a', port: 1 }, { name: 'b' }] }) as ValidationError[];
    assert.equal(bad[0]?.field, 'services[1].port');
  });

  it('takes "*" as an upstream service (the HTTP proxy port) and nothing else that is not a name', () => {
    assert.deepEqual(ok({ name: 'web', port: 1, upstreams: [{ service: '*', localPort: 9191 }] }).upstreams, [
      { service: '*', localPort: 9191 },
    ]);
    for (const service of ['**', '*.api', 'API', ''])
      assert.match(
        problems({ name: 'web', port: 1, upstreams: [{ service, localPort: 9191 }] })[0] ?? '',
        /^upstreams\[0\]\.service: must be a service name .* or "\*"/,
      );
  });

  it('refuses one upstream port for two callers or two destinations, not for two instances of one caller', () => {
    const file = (services: unknown[]) => parseServiceFile({ services });
    const up = (id: string, name: string, service: string) => ({
      id,
      name,
      port: 1,
      upstreams: [{ service, localPort: 9191 }],
    });
    assert.ok(!isProblems(file([up('web-1', 'web', 'api'), up('web-2', 'web', 'api')])));
    for (const [other, what] of [
      [up('admin-1', 'admin', 'api'), 'another caller'],
      [up('web-3', 'web', 'db'), 'another destination'],
    ] as const) {
      const r = file([up('web-1', 'web', 'api'), other]);
      assert.ok(isProblems(r), what);
      assert.match(
        (r as ValidationError[])[0]?.message ?? '',
        /localPort 9191 is used by service "web-1" \(upstream "api"\) and by service/,
        what,
      );
    }
  });

  it('never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        assert.doesNotThrow(() => parseService(v));
        assert.doesNotThrow(() => parseServiceFile(v));
      }),
      { numRuns: 1000 },
    );
  });
});
