// Header modifiers of routes and splits (Consul's RequestHeaders and ResponseHeaders): what a
// write accepts and refuses, naming the field; how they compile into the chain (a split's kept
// per share, a nested splitter's before its parent's); and what a request's decision carries: the
// share's changes, then the route's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileChain } from '../../../src/core/routing/index.js';
import { ChainRouter } from '../../../src/core/routing/route.js';
import { headerOps } from '../../../src/core/state/kinds/header-modifiers.js';
import { KINDS } from '../../../src/core/state/kinds/index.js';
import { lookupOf } from './helpers.js';

const router = KINDS['service-router']!;
const splitter = KINDS['service-splitter']!;
const routeWith = (requestHeaders: unknown, responseHeaders?: unknown) => ({
  routes: [
    { destination: { requestHeaders, ...(responseHeaders !== undefined ? { responseHeaders } : {}) } },
  ],
});
const problems = (spec: unknown) => router.validate(spec).map((e) => `${e.field}: ${e.message}`);
const REQ = 'routes[0].destination.requestHeaders';
const REQUEST = { method: 'GET', path: '/', headers: {}, query: '' };

describe('header modifiers', () => {
  it('accepts add, set and remove on routes and splits', () => {
    assert.deepEqual(
      router.validate(
        routeWith(
          { add: { 'x-a': '1' }, set: { 'X-Env': 'canary' }, remove: ['x-debug'] },
          { remove: ['server'] },
        ),
      ),
      [],
    );
    assert.deepEqual(
      splitter.validate({
        splits: [
          { weight: 90, requestHeaders: { set: { 'x-version': 'v1' } } },
          { weight: 10, serviceSubset: 'v2', responseHeaders: { add: { 'x-canary': 'true' } } },
        ],
      }),
      [],
    );
  });

  it('refuses what a hop sets itself, names that are not names, and values it could not send as written', () => {
    assert.deepEqual(problems(routeWith({ set: { host: 'evil' } })), [
      `${REQ}.set.host: host is set by each hop itself and cannot be changed`,
    ]);
    assert.deepEqual(problems(routeWith({ remove: ['Content-Length'] })), [
      `${REQ}.remove[0]: content-length is set by each hop itself and cannot be changed`,
    ]);
    assert.deepEqual(problems(routeWith({ add: { traceparent: 'x' } })).length, 1);
    for (const name of ['proxy-authorization', 'http2-settings', 'upgrade', 'close'])
      assert.equal(problems(routeWith({ set: { [name]: 'x' } })).length, 1, name);
    // host may be changed on an answer: only framing and hop-by-hop headers are refused there.
    assert.deepEqual(problems(routeWith({}, { set: { 'transfer-encoding': 'x' } })).length, 1);
    assert.deepEqual(problems(routeWith({ add: { 'x y': '1' } })), [
      `${REQ}.add.x y: "x y" is not a header name (letters, digits and !#$%&'*+.^_\`|~-)`,
    ]);
    assert.match(
      problems(routeWith({ set: { 'x-a': 'one\r\nx-injected: 1' } }))[0] ?? '',
      /no control characters/,
    );
    assert.match(
      problems(routeWith({ set: { 'x-a': ' padded' } }))[0] ?? '',
      /nothing but text at either end/,
    );
    assert.match(problems(routeWith({ set: { 'x-a': 'λ' } }))[0] ?? '', /Latin-1/);
    assert.match(
      problems(routeWith({ set: { 'x-a': 'x'.repeat(1_025) } }))[0] ?? '',
      /at most 1024 characters/,
    );
    assert.deepEqual(problems(routeWith({ set: { 'x-ip': '%DOWNSTREAM_REMOTE_ADDRESS%' } })), [
      `${REQ}.set.x-ip: holds a lone '%': variables such as %DOWNSTREAM_REMOTE_ADDRESS% are not supported; write %% for a literal %`,
    ]);
    assert.deepEqual(problems(routeWith({ set: { 'x-off': '50%%' } })), []);
    assert.deepEqual(problems(routeWith({ set: { 'x-a': 1 } })), [`${REQ}.set.x-a: must be a string, got 1`]);
    assert.deepEqual(problems(routeWith({ set: { 'x-a': '1' }, add: { 'X-A': '2' } })), [
      `${REQ}.add.X-A: x-a is already given at ${REQ}.set.x-a`,
    ]);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`x-${i}`, 'v']));
    assert.deepEqual(problems(routeWith({ add: many })), [
      `${REQ}: at most 16 headers in add and set together, got 17`,
    ]);
    assert.deepEqual(problems(routeWith({ append: {} })), [
      `${REQ}.append: unknown field; known fields: add, remove, set`,
    ]);
    assert.deepEqual(problems(routeWith({ remove: 'x-a' })), [`${REQ}.remove: must be a list, got "x-a"`]);
    assert.deepEqual(
      splitter
        .validate({ splits: [{ weight: 100, requestHeaders: { set: { host: 'x' } } }] })
        .map((e) => e.field),
      ['splits[0].requestHeaders.set.host'],
    );
  });

  it('compiles to lowercase names, set as remove-then-add, %% as %', () => {
    assert.deepEqual(headerOps({ set: { 'X-Env': '50%%' }, add: { 'X-A': '1' }, remove: ['X-Debug'] }), {
      remove: ['x-debug', 'x-env'],
      add: [
        ['x-env', '50%'],
        ['x-a', '1'],
      ],
    });
    assert.equal(headerOps({}), undefined);
    // An empty value adds nothing (Envoy's default): set to "" removes.
    assert.deepEqual(headerOps({ set: { 'x-a': '' }, add: { 'x-b': '' } }), { remove: ['x-a'], add: [] });
    assert.equal(headerOps(undefined), undefined);
  });

  it("keeps a split's changes per share, a nested splitter's before its parent's, and the route's last", () => {
    const lookup = lookupOf([
      ['service-router', 'api', routeWith({ set: { 'x-route': 'r' } }, { add: { 'x-via': 'route' } })],
      [
        'service-splitter',
        'api',
        {
          splits: [
            { weight: 50, service: 'api-v1', requestHeaders: { set: { 'x-version': 'v1' } } },
            { weight: 50, service: 'api-next', requestHeaders: { set: { 'x-version': 'next' } } },
          ],
        },
      ],
      [
        'service-splitter',
        'api-next',
        {
          splits: [
            { weight: 80, service: 'api-v2', requestHeaders: { add: { 'x-tier': 'v2' } } },
            { weight: 20, service: 'api-v3' },
          ],
        },
      ],
    ]);
    const chain = compileChain(lookup, 'api', 'http');
    assert.deepEqual(chain.errors, []);
    const route = chain.routes[0];
    assert.ok(route?.next.type === 'split');
    const shares = route.next.type === 'split' ? route.next.splits : [];
    assert.deepEqual(
      shares.map((s) => [s.targetId, s.weight, JSON.stringify(s.requestHeaders)]),
      [
        ['api-v1', 50, JSON.stringify([{ remove: ['x-version'], add: [['x-version', 'v1']] }])],
        [
          'api-v2',
          40,
          JSON.stringify([
            { remove: [], add: [['x-tier', 'v2']] },
            { remove: ['x-version'], add: [['x-version', 'next']] },
          ]),
        ],
        ['api-v3', 10, JSON.stringify([{ remove: ['x-version'], add: [['x-version', 'next']] }])],
      ],
    );
    const r = new ChainRouter(chain);
    // rand 0.5 falls in the second share (api-v2): its two changes, then the route's.
    const d = r.routeRequest(REQUEST, 0.5);
    assert.equal(d.target.id, 'api-v2');
    assert.deepEqual(
      d.requestHeaders?.map((o) => o.add),
      [[['x-tier', 'v2']], [['x-version', 'next']], [['x-route', 'r']]],
    );
    assert.deepEqual(d.responseHeaders, [{ remove: [], add: [['x-via', 'route']] }]);
    // The default route has none.
    assert.equal(compileChain(lookupOf([]), 'api', 'http').routes[0]?.requestHeaders, undefined);
  });

  it('keeps no header changes in a tcp chain, whose connections have no headers', () => {
    const chain = compileChain(
      lookupOf([
        [
          'service-splitter',
          'api',
          { splits: [{ weight: 70, requestHeaders: { add: { 'x-a': '1' } } }, { weight: 30 }] },
        ],
      ]),
      'api',
      'tcp',
    );
    assert.deepEqual(chain.routes[0]?.next, { type: 'target', targetId: 'api' });
  });

  it('keeps a single share with changes as a split, and two shares to one target apart when their changes differ', () => {
    const one = compileChain(
      lookupOf([
        ['service-splitter', 'api', { splits: [{ weight: 100, requestHeaders: { add: { 'x-a': '1' } } }] }],
      ]),
      'api',
      'http',
    );
    assert.equal(one.routes[0]?.next.type, 'split');
    const d = new ChainRouter(one).routeRequest(REQUEST, 0.3);
    assert.deepEqual(d.requestHeaders, [{ remove: [], add: [['x-a', '1']] }]);
    const two = compileChain(
      lookupOf([
        [
          'service-splitter',
          'api',
          { splits: [{ weight: 70, requestHeaders: { add: { 'x-a': '1' } } }, { weight: 30 }] },
        ],
      ]),
      'api',
      'http',
    );
    const next = two.routes[0]?.next;
    assert.deepEqual(next?.type === 'split' ? next.splits.map((s) => [s.targetId, s.weight]) : [], [
      ['api', 70],
      ['api', 30],
    ]);
    assert.equal(new ChainRouter(two).routeRequest(REQUEST, 0.9).requestHeaders, undefined);
  });
});
