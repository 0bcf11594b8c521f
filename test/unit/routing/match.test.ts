// Request matching: each route's conditions, tried in order, first match wins, and a request
// no route matches goes to the service itself (the default route, always last).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChainRouter, compileChain, parseQuery, type RequestInfo } from '../../../src/core/routing/index.js';
import { KINDS } from '../../../src/core/state/kinds/index.js';
import { lookupOf } from './helpers.js';

/** A router for service "api" over HTTP with the given routes, each to its own service r0, r1, … */
function routerWith(matches: unknown[]): ChainRouter {
  const routes = matches.map((http, i) => ({ match: { http }, destination: { service: `r${i}` } }));
  const chain = compileChain(lookupOf([['service-router', 'api', { routes }]]), 'api', 'http');
  assert.deepEqual(chain.errors, []);
  return new ChainRouter(chain);
}

function req(over: Partial<RequestInfo> = {}): RequestInfo {
  return { path: '/', method: 'GET', headers: {}, query: '', ...over };
}

/** Which route a request takes: "r0", "r1", … or "api" for the default route. */
function taken(r: ChainRouter, over: Partial<RequestInfo>): string {
  return r.routeRequest(req(over), 0).target.service;
}

describe('path matching', () => {
  const r = routerWith([{ pathExact: '/health' }, { pathPrefix: '/api/' }, { pathRegex: '/v[0-9]+/items' }]);

  it('exact, prefix and whole-path regex', () => {
    assert.equal(taken(r, { path: '/health' }), 'r0');
    assert.equal(taken(r, { path: '/health/x' }), 'api');
    assert.equal(taken(r, { path: '/health?verbose=1' }), 'r0', 'the query string is not part of the path');
    assert.equal(taken(r, { path: '/api/users' }), 'r1');
    assert.equal(taken(r, { path: '/api' }), 'api');
    assert.equal(taken(r, { path: '/v2/items' }), 'r2');
    assert.equal(taken(r, { path: '/x/v2/items' }), 'api', 'a regex must match the whole path');
    assert.equal(taken(r, { path: '/v2/items/1' }), 'api');
  });

  it('reports the route taken, the default route being last', () => {
    assert.equal(r.routeRequest(req({ path: '/api/x' }), 0).routeIndex, 1);
    assert.equal(r.routeRequest(req({ path: '/nothing' }), 0).routeIndex, 3);
    assert.equal(r.chain.routes.length, 4);
  });
});

describe('caseInsensitive (Consul’s CaseInsensitive)', () => {
  it('matches pathExact and pathPrefix without ASCII case, and rewrites the prefix it matched', () => {
    const r = routerWith([
      { pathExact: '/Health', caseInsensitive: true },
      { pathPrefix: '/API/', caseInsensitive: true },
      { pathPrefix: '/Exact/' },
    ]);
    assert.equal(taken(r, { path: '/health' }), 'r0');
    assert.equal(taken(r, { path: '/HEALTH' }), 'r0');
    assert.equal(taken(r, { path: '/api/users' }), 'r1');
    assert.equal(taken(r, { path: '/Api/Users' }), 'r1');
    assert.equal(taken(r, { path: '/exact/x' }), 'api', 'without the flag, case counts');
    // Only A-Z fold: "À" and "à" stay apart, and lengths never change.
    const latin = routerWith([{ pathPrefix: '/À/', caseInsensitive: true }]);
    assert.equal(taken(latin, { path: '/à/x' }), 'api');
    const rw = new ChainRouter(
      compileChain(
        lookupOf([
          [
            'service-router',
            'api',
            {
              routes: [
                {
                  match: { http: { pathPrefix: '/Old/', caseInsensitive: true } },
                  destination: { prefixRewrite: '/new/' },
                },
              ],
            },
          ],
        ]),
        'api',
        'http',
      ),
    );
    assert.equal(rw.routeRequest(req({ path: '/OLD/a?b=1' }), 0).path, '/new/a?b=1');
  });

  it('is refused with pathRegex, and on intention permissions, naming the field', () => {
    const router = KINDS['service-router']!;
    assert.deepEqual(
      router
        .validate({ routes: [{ match: { http: { pathRegex: '/api/.*', caseInsensitive: true } } }] })
        .map((e) => e.field),
      ['routes[0].match.http.caseInsensitive'],
    );
    assert.deepEqual(
      router.validate({ routes: [{ match: { http: { caseInsensitive: 'yes' } } }] }).map((e) => e.field),
      ['routes[0].match.http.caseInsensitive'],
    );
    const intentions = KINDS['service-intentions']!;
    assert.deepEqual(
      intentions
        .validate({
          sources: [
            {
              name: 'web',
              permissions: [{ action: 'allow', http: { pathPrefix: '/a', caseInsensitive: true } }],
            },
          ],
        })
        .map((e) => e.field),
      ['sources[0].permissions[0].http.caseInsensitive'],
    );
  });
});

describe('first match wins', () => {
  it('tries routes in order', () => {
    const r = routerWith([{ pathPrefix: '/a' }, { pathPrefix: '/a/b' }]);
    assert.equal(taken(r, { path: '/a/b/c' }), 'r0');
  });
});

describe('methods', () => {
  it('matches any listed method, case-insensitively on the request', () => {
    const r = routerWith([{ methods: ['POST', 'PUT'] }]);
    assert.equal(taken(r, { method: 'POST' }), 'r0');
    assert.equal(taken(r, { method: 'put' }), 'r0');
    assert.equal(taken(r, { method: 'GET' }), 'api');
  });
});

describe('headers', () => {
  const r = routerWith([
    { header: [{ name: 'X-Canary', present: true }] },
    { header: [{ name: 'x-env', exact: 'staging' }] },
    {
      header: [
        { name: 'x-user', prefix: 'admin-' },
        { name: 'x-user', suffix: '-eu' },
      ],
    },
    { header: [{ name: 'user-agent', regex: 'curl/[0-9.]+' }] },
    {
      header: [
        { name: 'x-tier', exact: 'gold', invert: true },
        { name: 'x-probe', present: false },
      ],
    },
  ]);

  it('compares names case-insensitively', () => {
    assert.equal(taken(r, { headers: { 'x-canary': '' } }), 'r0');
    assert.equal(taken(r, { headers: { 'X-CANARY': '1' } }), 'r0');
  });

  it('exact, prefix and suffix together, and regex on the whole value', () => {
    assert.equal(taken(r, { headers: { 'x-env': 'staging', 'x-tier': 'gold' } }), 'r1');
    assert.equal(taken(r, { headers: { 'x-user': 'admin-bob-eu', 'x-tier': 'gold' } }), 'r2');
    assert.equal(taken(r, { headers: { 'x-user': 'admin-bob-us', 'x-tier': 'gold' } }), 'api');
    assert.equal(taken(r, { headers: { 'user-agent': 'curl/8.4.0', 'x-tier': 'gold' } }), 'r3');
    assert.equal(taken(r, { headers: { 'user-agent': 'xcurl/8.4.0', 'x-tier': 'gold' } }), 'api');
  });

  it('reads only headers that were sent', () => {
    const proto = routerWith([{ header: [{ name: 'constructor', present: true }] }]);
    assert.equal(taken(proto, {}), 'api');
    assert.equal(taken(proto, { headers: { Constructor: 'x' } }), 'r0');
  });

  it('joins repeated headers with a comma', () => {
    assert.equal(taken(r, { headers: { 'x-user': ['admin-a', 'b-eu'], 'x-tier': 'gold' } }), 'r2');
  });

  it('invert negates the condition; present: false asks for absence', () => {
    assert.equal(taken(r, { headers: { 'x-tier': 'silver' } }), 'r4');
    assert.equal(taken(r, {}), 'r4', 'an absent header is not "gold" either');
    assert.equal(taken(r, { headers: { 'x-tier': 'gold' } }), 'api');
    assert.equal(taken(r, { headers: { 'x-tier': 'silver', 'x-probe': '1' } }), 'api');
  });
});

describe('query parameters', () => {
  const r = routerWith([
    { queryParam: [{ name: 'v', exact: '2' }] },
    { queryParam: [{ name: 'id', regex: '[0-9]+' }] },
    { queryParam: [{ name: 'debug' }] },
    { queryParam: [{ name: 'trace', present: false }], pathPrefix: '/q' },
  ]);

  it('exact, regex, presence and absence; first value of a name; decoded', () => {
    assert.equal(taken(r, { query: 'v=2' }), 'r0');
    assert.equal(taken(r, { query: '?a=1&v=2' }), 'r0');
    assert.equal(taken(r, { query: 'v=1&v=2' }), 'api', 'the first value counts');
    assert.equal(taken(r, { query: 'id=42' }), 'r1');
    assert.equal(taken(r, { query: 'id=4x' }), 'api');
    assert.equal(taken(r, { query: 'debug' }), 'r2');
    assert.equal(taken(r, { query: 'de%62ug=' }), 'r2');
    assert.equal(taken(r, { path: '/q', query: '' }), 'r3');
    assert.equal(taken(r, { path: '/q', query: 'trace=1' }), 'api');
  });

  it('parses malformed escapes as raw text', () => {
    assert.deepEqual(
      [...parseQuery('a=%E0%A4%A&b=x+y&&c')],
      [
        ['a', '%E0%A4%A'],
        ['b', 'x y'],
        ['c', ''],
      ],
    );
  });
});

describe('route settings', () => {
  it('rewrites the matched prefix and carries retries and timeouts', () => {
    const routes = [
      {
        match: { http: { pathPrefix: '/old/' } },
        destination: {
          prefixRewrite: '/new/',
          numRetries: 2,
          retryOnStatusCodes: [503],
          retryOnConnectFailure: true,
        },
      },
      {
        match: { http: { pathExact: '/legacy' } },
        destination: { prefixRewrite: '/v2', requestTimeoutMs: 1500 },
      },
    ];
    const lookup = lookupOf([
      ['service-router', 'api', { routes }],
      ['service-resolver', 'api', { requestTimeoutMs: 9000 }],
    ]);
    const r = new ChainRouter(compileChain(lookup, 'api', 'http'));
    const a = r.routeRequest(req({ path: '/old/x/y?z=1' }), 0);
    assert.equal(a.path, '/new/x/y?z=1');
    assert.equal(a.numRetries, 2);
    assert.deepEqual(a.retryOnStatusCodes, [503]);
    assert.equal(a.retryOnConnectFailure, true);
    assert.equal(a.requestTimeoutMs, 9000, "the resolver's timeout when the route sets none");
    const b = r.routeRequest(req({ path: '/legacy' }), 0);
    assert.equal(b.path, '/v2');
    assert.equal(b.requestTimeoutMs, 1500);
    const c = r.routeRequest(req({ path: '/other' }), 0);
    assert.deepEqual(
      {
        path: c.path,
        numRetries: c.numRetries,
        codes: c.retryOnStatusCodes,
        connect: c.retryOnConnectFailure,
      },
      { path: '/other', numRetries: 0, codes: [], connect: false },
    );
  });

  it('folds retryOn names into status codes, connect failures and gRPC codes', () => {
    const routes = [
      {
        match: { http: { pathPrefix: '/a' } },
        destination: {
          numRetries: 1,
          retryOnStatusCodes: [503, 429],
          retryOn: ['gateway-error', 'unavailable'],
        },
      },
      {
        match: { http: { pathPrefix: '/b' } },
        destination: { numRetries: 1, retryOn: ['5xx', 'connect-failure', 'deadline-exceeded', 'cancelled'] },
      },
    ];
    const r = new ChainRouter(compileChain(lookupOf([['service-router', 'api', { routes }]]), 'api', 'grpc'));
    const a = r.routeRequest(req({ path: '/a' }), 0);
    assert.deepEqual(a.retryOnStatusCodes, [429, 502, 503, 504], 'sorted, 503 once');
    assert.deepEqual(a.retryOnGrpcCodes, [14]);
    assert.equal(a.retryOnConnectFailure, true, 'gateway-error includes connect failures');
    const b = r.routeRequest(req({ path: '/b' }), 0);
    assert.equal(b.retryOnStatusCodes.length, 100);
    assert.equal(b.retryOnStatusCodes[0], 500);
    assert.equal(b.retryOnStatusCodes[99], 599);
    assert.deepEqual(b.retryOnGrpcCodes, [1, 4]);
    assert.equal(b.retryOnConnectFailure, true);
  });

  it('retries once when a route names a condition but not numRetries (as Consul with Envoy); an explicit 0 retries none', () => {
    const routes = [
      { match: { http: { pathPrefix: '/a' } }, destination: { retryOn: ['unavailable'] } },
      { match: { http: { pathPrefix: '/b' } }, destination: { retryOnStatusCodes: [503] } },
      { match: { http: { pathPrefix: '/c' } }, destination: { retryOnConnectFailure: true } },
      { match: { http: { pathPrefix: '/d' } }, destination: { numRetries: 0, retryOn: ['5xx'] } },
      { match: { http: { pathPrefix: '/e' } }, destination: { prefixRewrite: '/' } },
    ];
    const r = new ChainRouter(compileChain(lookupOf([['service-router', 'api', { routes }]]), 'api', 'grpc'));
    const n = (path: string) => r.routeRequest(req({ path }), 0).numRetries;
    assert.deepEqual(['/a', '/b', '/c', '/d', '/e'].map(n), [1, 1, 1, 0, 0]);
    const gw = new ChainRouter(
      compileChain(
        lookupOf([['service-router', 'api', { routes: [{ destination: { retryOn: ['gateway-error'] } }] }]]),
        'api',
        'http',
      ),
    ).routeRequest(req({ path: '/' }), 0);
    assert.equal(
      gw.retryOnConnectFailure,
      true,
      'gateway-error retries a failed connection too, as in Envoy',
    );
  });
});
