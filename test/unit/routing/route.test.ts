// Decisions over a compiled chain: split draws, subset filters, health and failover.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import {
  ChainRouter,
  type CompiledChain,
  compileChain,
  instancesFor,
  pickSplit,
} from '../../../src/core/routing/index.js';
import { byService, inst, lookupOf, statusOf } from './helpers.js';

const splitLookup = lookupOf([
  [
    'service-splitter',
    'api',
    {
      splits: [
        { weight: 90, serviceSubset: 'v1' },
        { weight: 10, serviceSubset: 'v2' },
      ],
    },
  ],
  [
    'service-resolver',
    'api',
    { subsets: { v1: { filter: { tags: ['v1'] } }, v2: { filter: { tags: ['v2'] } } } },
  ],
]);

describe('splits', () => {
  it('lays shares end to end over [0, 1)', () => {
    const splits = [
      { targetId: 'a', weight: 90 },
      { targetId: 'b', weight: 10 },
    ];
    assert.equal(pickSplit(splits, 0), 'a');
    assert.equal(pickSplit(splits, 0.8999), 'a');
    assert.equal(pickSplit(splits, 0.9), 'b');
    assert.equal(pickSplit(splits, 0.99999), 'b');
    assert.equal(pickSplit(splits, 1), 'b', 'out-of-range draws are clamped');
    assert.equal(pickSplit(splits, Number.NaN), 'a');
    assert.equal(
      pickSplit(
        [
          { targetId: 'a', weight: 0 },
          { targetId: 'b', weight: 100 },
        ],
        0,
      ),
      'b',
    );
  });

  it('sends about 90% of requests to the 90 share over a seeded sequence', () => {
    const r = new ChainRouter(compileChain(splitLookup, 'api', 'http'));
    const rng = new SeededRng(42);
    const counts = new Map<string, number>();
    const n = 10_000;
    for (let i = 0; i < n; i++) {
      const id = r.routeRequest({ path: '/', method: 'GET', headers: {}, query: '' }, rng.next()).target.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const v1 = (counts.get('v1.api') ?? 0) / n;
    assert.ok(v1 > 0.88 && v1 < 0.92, `v1 share ${v1}`);
    assert.equal((counts.get('v1.api') ?? 0) + (counts.get('v2.api') ?? 0), n);
  });

  it('draws once per connection on tcp', () => {
    const r = new ChainRouter(compileChain(splitLookup, 'api', 'tcp'));
    assert.deepEqual(
      [0.1, 0.95, 0.5].map((x) => r.routeConnection(x).target.id),
      ['v1.api', 'v2.api', 'v1.api'],
    );
    assert.equal(r.routeConnection(0).routeIndex, 0);
  });
});

describe('instancesFor', () => {
  const list = [
    inst('a', 'api', { tags: ['v1', 'eu'], meta: { track: 'stable' } }),
    inst('b', 'api', { tags: ['v1'], meta: { track: 'canary' } }),
    inst('c', 'api', { tags: ['v1', 'eu'], meta: { track: 'stable' }, status: 'warning' }),
    inst('d', 'api', { tags: ['v1', 'eu'], meta: { track: 'stable' }, status: 'critical' }),
    inst('e', 'api', { tags: ['v2'] }),
  ];
  const ids = (xs: { id: string }[]) => xs.map((x) => x.id);
  const target = { id: 'x.api', service: 'api', failover: [], loadBalancer: { policy: 'random' as const } };

  it('keeps healthy instances with every filter tag and meta value', () => {
    assert.deepEqual(ids(instancesFor({ ...target, onlyPassing: false }, list, statusOf)), [
      'a',
      'b',
      'c',
      'e',
    ]);
    const filter = { tags: ['v1', 'eu'], meta: { track: 'stable' } };
    assert.deepEqual(ids(instancesFor({ ...target, onlyPassing: false, filter }, list, statusOf)), [
      'a',
      'c',
    ]);
    assert.deepEqual(ids(instancesFor({ ...target, onlyPassing: true, filter }, list, statusOf)), ['a']);
    assert.deepEqual(
      ids(instancesFor({ ...target, onlyPassing: false, filter: { meta: { track: '' } } }, list, statusOf)),
      [],
    );
  });
});

describe('failover', () => {
  const lookup = lookupOf([
    [
      'service-resolver',
      'api',
      {
        defaultSubset: 'v1',
        subsets: { v1: { filter: { tags: ['v1'] } }, v2: { filter: { tags: ['v2'] } } },
        failover: { v1: { targets: [{ serviceSubset: 'v2' }, { service: 'api-dr' }] } },
      },
    ],
  ]);
  const r = new ChainRouter(compileChain(lookup, 'api', 'http'));
  const primary = r.routeConnection(0).target;

  it('answers the target itself while it has a healthy instance', () => {
    const res = r.resolve(
      primary,
      byService([inst('a', 'api', { tags: ['v1'] }), inst('b', 'api', { tags: ['v2'] })]),
      statusOf,
    );
    assert.deepEqual(
      [res.target.id, res.instances.map((i) => i.id), res.failedOver],
      ['v1.api', ['a'], false],
    );
  });

  it('walks the failover targets in order', () => {
    const down = inst('a', 'api', { tags: ['v1'], status: 'critical' });
    const v2 = inst('b', 'api', { tags: ['v2'] });
    const dr = inst('c', 'api-dr');
    let res = r.resolve(primary, byService([down, v2, dr]), statusOf);
    assert.deepEqual(
      [res.target.id, res.instances.map((i) => i.id), res.failedOver],
      ['v2.api', ['b'], true],
    );
    res = r.resolve(primary, byService([down, dr]), statusOf);
    assert.deepEqual(
      [res.target.id, res.instances.map((i) => i.id), res.failedOver],
      ['api-dr', ['c'], true],
    );
    res = r.resolve(primary, byService([down]), statusOf);
    assert.deepEqual([res.target.id, res.instances, res.failedOver], ['v1.api', [], false]);
  });
});

describe('ChainRouter on a malformed chain', () => {
  it('falls back to the service rather than throwing', () => {
    const bad: CompiledChain = {
      service: 'api',
      protocol: 'http',
      routes: [
        {
          next: { type: 'target', targetId: 'ghost' },
          numRetries: 0,
          retryOnStatusCodes: [],
          retryOnConnectFailure: false,
          retryOnGrpcCodes: [],
        },
      ],
      targets: [],
      errors: [],
    };
    const r = new ChainRouter(bad);
    assert.deepEqual(r.chain.errors, ['malformed compiled chain']);
    assert.equal(r.routeRequest({ path: '/', method: 'GET', headers: {}, query: '' }, 0.5).target.id, 'api');
  });
});
