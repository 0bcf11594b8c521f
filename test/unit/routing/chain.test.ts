// compileChain: how entries combine into routes and targets, and how a broken configuration
// degrades to plain routing with its reasons listed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CompiledChain, compileChain } from '../../../src/core/routing/index.js';
import { lookupOf } from './helpers.js';

/** Each route's next hop in short form: "id" or "id:weight,id:weight". */
function hops(chain: CompiledChain): string[] {
  return chain.routes.map((r) =>
    r.next.type === 'target'
      ? r.next.targetId
      : r.next.splits.map((s) => `${s.targetId}:${s.weight}`).join(','),
  );
}

const FALLBACK_API = {
  service: 'api',
  protocol: 'http',
  routes: [
    {
      next: { type: 'target', targetId: 'api' },
      numRetries: 0,
      retryOnStatusCodes: [],
      retryOnConnectFailure: false,
      retryOnGrpcCodes: [],
    },
  ],
  targets: [
    { id: 'api', service: 'api', onlyPassing: false, failover: [], loadBalancer: { policy: 'round_robin' } },
  ],
};

describe('compileChain', () => {
  it('without entries, routes every call to the service itself', () => {
    const chain = compileChain(lookupOf([]), 'api', 'http');
    assert.deepEqual(chain, { ...FALLBACK_API, errors: [] });
  });

  it('applies the router only to L7 protocols', () => {
    const lookup = lookupOf([['service-router', 'api', { routes: [{ destination: { service: 'admin' } }] }]]);
    assert.deepEqual(hops(compileChain(lookup, 'api', 'http')), ['admin', 'api']);
    assert.deepEqual(hops(compileChain(lookup, 'api', 'grpc')), ['admin', 'api']);
    assert.deepEqual(hops(compileChain(lookup, 'api', 'tcp')), ['api']);
  });

  it('sends a route through the destination splitter, or straight to a named subset', () => {
    const lookup = lookupOf([
      [
        'service-router',
        'api',
        {
          routes: [
            { destination: { service: 'web' } },
            { destination: { service: 'web', serviceSubset: 'v1' } },
          ],
        },
      ],
      [
        'service-splitter',
        'web',
        {
          splits: [
            { weight: 90, serviceSubset: 'v1' },
            { weight: 10, serviceSubset: 'v2' },
          ],
        },
      ],
      [
        'service-resolver',
        'web',
        { subsets: { v1: { filter: { tags: ['v1'] } }, v2: { filter: { tags: ['v2'] } } } },
      ],
    ]);
    const chain = compileChain(lookup, 'api', 'http');
    assert.deepEqual(chain.errors, []);
    assert.deepEqual(hops(chain), ['v1.web:90,v2.web:10', 'v1.web', 'api']);
    assert.deepEqual(
      chain.targets.map((t) => [t.id, t.subset, t.filter]),
      [
        ['api', undefined, undefined],
        ['v1.web', 'v1', { tags: ['v1'] }],
        ['v2.web', 'v2', { tags: ['v2'] }],
      ],
    );
  });

  it('splits on tcp too, and flattens nested splitters by multiplying weights', () => {
    const lookup = lookupOf([
      ['service-splitter', 'api', { splits: [{ weight: 50 }, { weight: 50, service: 'api-next' }] }],
      [
        'service-splitter',
        'api-next',
        {
          splits: [
            { weight: 80, service: 'api-v2' },
            { weight: 20, service: 'api-v3' },
          ],
        },
      ],
    ]);
    const chain = compileChain(lookup, 'api', 'tcp');
    assert.deepEqual(hops(chain), ['api:50,api-v2:40,api-v3:10']);
  });

  it('merges shares that reach the same target and leaves out zero weights', () => {
    const lookup = lookupOf([
      [
        'service-splitter',
        'api',
        { splits: [{ weight: 60 }, { weight: 40, service: 'b' }, { weight: 0, service: 'c' }] },
      ],
      ['service-resolver', 'b', { redirect: { service: 'api' } }],
    ]);
    assert.deepEqual(hops(compileChain(lookup, 'api', 'tcp')), ['api']);
  });

  it('uses the default subset and the resolver settings', () => {
    const lookup = lookupOf([
      [
        'service-resolver',
        'api',
        {
          defaultSubset: 'stable',
          subsets: { stable: { filter: { meta: { track: 'stable' } }, onlyPassing: true } },
          loadBalancer: { policy: 'least_request' },
          passiveHealthCheck: { maxFailures: 3 },
          connectTimeoutMs: 250,
          requestTimeoutMs: 4000,
        },
      ],
    ]);
    const chain = compileChain(lookup, 'api', 'http');
    assert.deepEqual(chain.targets, [
      {
        id: 'stable.api',
        service: 'api',
        subset: 'stable',
        filter: { meta: { track: 'stable' } },
        onlyPassing: true,
        failover: [],
        loadBalancer: { policy: 'least_request' },
        passiveHealthCheck: { maxFailures: 3 },
        connectTimeoutMs: 250,
        requestTimeoutMs: 4000,
      },
    ]);
  });

  it('carries the router’s retry budget, for HTTP chains only', () => {
    const budget = { retryRatio: 0.1, ttlMs: 5_000 };
    const lookup = lookupOf([['service-router', 'api', { retryBudget: budget }]]);
    assert.deepEqual(compileChain(lookup, 'api', 'http').retryBudget, budget);
    assert.equal(compileChain(lookup, 'api', 'tcp').retryBudget, undefined);
    assert.equal(compileChain(lookupOf([]), 'api', 'http').retryBudget, undefined);
  });

  it('follows redirects to the destination resolver and its subsets', () => {
    const lookup = lookupOf([
      ['service-resolver', 'api', { redirect: { service: 'api-v2' } }],
      ['service-resolver', 'api-v2', { redirect: { service: 'api-v3', serviceSubset: 'blue' } }],
      ['service-resolver', 'api-v3', { subsets: { blue: { filter: { tags: ['blue'] } } } }],
    ]);
    const chain = compileChain(lookup, 'api', 'http');
    assert.deepEqual(chain.errors, []);
    assert.deepEqual(hops(chain), ['blue.api-v3']);
  });

  it('lists failover targets per subset, "*" for the rest', () => {
    const lookup = lookupOf([
      [
        'service-resolver',
        'api',
        {
          defaultSubset: 'v1',
          subsets: { v1: {}, v2: {} },
          failover: {
            v1: { targets: [{ serviceSubset: 'v2' }, { service: 'api-dr' }, { serviceSubset: 'v1' }] },
            '*': { targets: [{ service: 'api-dr' }] },
          },
        },
      ],
      ['service-resolver', 'api-dr', { redirect: { service: 'api-far' } }],
    ]);
    const chain = compileChain(lookup, 'api', 'http');
    assert.deepEqual(chain.errors, []);
    assert.deepEqual(
      chain.targets.map((t) => [t.id, t.failover]),
      [
        ['api-far', []],
        ['v1.api', ['v2.api', 'api-far']],
        ['v2.api', ['api-far']],
      ],
    );
  });

  it('reports redirect and splitter cycles and falls back', () => {
    const redirects = lookupOf([
      ['service-resolver', 'api', { redirect: { service: 'b' } }],
      ['service-resolver', 'b', { redirect: { service: 'api' } }],
    ]);
    assert.deepEqual(compileChain(redirects, 'api', 'http'), {
      ...FALLBACK_API,
      errors: ['cycle: service-resolver api → service-resolver b → service-resolver api'],
    });
    const splits = lookupOf([
      ['service-splitter', 'api', { splits: [{ weight: 100, service: 'b' }] }],
      ['service-splitter', 'b', { splits: [{ weight: 50, service: 'api' }, { weight: 50 }] }],
    ]);
    assert.deepEqual(compileChain(splits, 'api', 'tcp').errors, [
      'cycle: service-splitter api → service-splitter b → service-splitter api',
    ]);
  });

  it('refuses a chain longer than 8 steps', () => {
    const entries: Array<[string, string, unknown]> = [];
    for (let i = 0; i < 9; i++)
      entries.push(['service-resolver', `s${i}`, { redirect: { service: `s${i + 1}` } }]);
    const chain = compileChain(lookupOf(entries), 's0', 'http');
    assert.equal(chain.errors.length, 1);
    assert.match(
      chain.errors[0] ?? '',
      /^chain longer than 8 steps: service-resolver s0 → .* → service-resolver s8$/,
    );
    const ok = compileChain(lookupOf(entries.slice(2)), 's2', 'http');
    assert.deepEqual(hops(ok), ['s9'], 'seven redirects and the last resolver fit');
  });

  it('reports a subset no resolver defines', () => {
    const lookup = lookupOf([
      ['service-router', 'api', { routes: [{ destination: { serviceSubset: 'v9' } }] }],
    ]);
    assert.deepEqual(compileChain(lookup, 'api', 'http').errors, [
      'service api has no subset v9 (it has no subsets), used via service-router api routes[0] → service-resolver api',
    ]);
  });

  it('treats a stored entry that fails validation as an error', () => {
    const lookup = lookupOf([['service-splitter', 'api', { splits: [{ weight: 70 }] }]]);
    assert.deepEqual(compileChain(lookup, 'api', 'tcp').errors, [
      'service-splitter api: invalid stored entry (splits: weights must add up to 100, they add up to 70)',
    ]);
    const throwing = () => {
      throw new Error('disk on fire');
    };
    assert.deepEqual(compileChain(throwing, 'api', 'tcp').errors, [
      'service-splitter api: could not be read (disk on fire)',
      'service-resolver api: could not be read (disk on fire)',
    ]);
    assert.deepEqual(compileChain(lookupOf([]), 'Not A Service', 'tcp').routes.length, 1);
  });

  it('is plain data that survives structured cloning', () => {
    const lookup = lookupOf([
      [
        'service-router',
        'api',
        { routes: [{ match: { http: { pathRegex: '/a.*', header: [{ name: 'x', regex: 'y' }] } } }] },
      ],
      ['service-splitter', 'api', { splits: [{ weight: 50 }, { weight: 50, service: 'b' }] }],
    ]);
    const chain = compileChain(lookup, 'api', 'http');
    assert.deepEqual(structuredClone(chain), chain);
    assert.equal(JSON.stringify(JSON.parse(JSON.stringify(chain))), JSON.stringify(chain));
  });
});
