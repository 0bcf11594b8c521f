// Properties over random specs from a seeded generator: validation never throws and always
// returns a list; compileChain never throws, and its chain is well formed (every id it names is a
// target) and routable by ChainRouter for any request and draw.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import { ChainRouter, compileChain, type Lookup } from '../../../src/core/routing/index.js';
import { KINDS } from '../../../src/core/state/kinds/index.js';

const RUNS = 600;
const SERVICES = ['api', 'web', 'db', 'b', 'constructor'];
const SUBSETS = ['v1', 'v2', 'toString'];

class Gen {
  constructor(readonly rng: SeededRng) {}
  chance(p: number): boolean {
    return this.rng.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.rng.int(xs.length)] as T;
  }
  /** Some field present with a valid-looking value, sometimes a wrong one. */
  maybe(p: number, good: () => unknown): unknown {
    if (!this.chance(p)) return undefined;
    return this.chance(0.9) ? good() : this.pick([null, -1, 'x', [], {}, '(', 1e9, true, '*']);
  }
  list(max: number, item: () => unknown): unknown[] {
    return Array.from({ length: this.rng.int(max + 1) }, item);
  }
}

/** Drop undefined fields, as a decoded entry file would not have them. */
function obj(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

function routerSpec(g: Gen): unknown {
  return obj({
    routes: g.list(4, () =>
      obj({
        match: g.maybe(0.7, () => ({
          http: obj({
            pathPrefix: g.maybe(0.4, () => g.pick(['/', '/a', '/a/b'])),
            pathRegex: g.maybe(0.2, () => g.pick(['/a.*', '[0-9]+', '(x|y)'])),
            methods: g.maybe(0.3, () => [g.pick(['GET', 'POST'])]),
            header: g.maybe(0.3, () => [
              obj({ name: 'x-a', exact: g.maybe(0.5, () => 'v'), invert: g.maybe(0.3, () => true) }),
            ]),
            queryParam: g.maybe(0.2, () => [obj({ name: 'q', regex: g.maybe(0.5, () => 'a+') })]),
          }),
        })),
        destination: g.maybe(0.7, () =>
          obj({
            service: g.maybe(0.6, () => g.pick(SERVICES)),
            serviceSubset: g.maybe(0.3, () => g.pick(SUBSETS)),
            numRetries: g.maybe(0.3, () => g.rng.int(12)),
          }),
        ),
      }),
    ),
  });
}

function splitterSpec(g: Gen): unknown {
  const n = 1 + g.rng.int(3);
  const weights = n === 1 ? [100] : n === 2 ? [60, 40] : [50, 25, 25];
  return {
    splits: weights.map((weight) =>
      obj({
        weight,
        service: g.maybe(0.6, () => g.pick(SERVICES)),
        serviceSubset: g.maybe(0.3, () => g.pick(SUBSETS)),
      }),
    ),
  };
}

function resolverSpec(g: Gen): unknown {
  if (g.chance(0.25))
    return {
      redirect: obj({ service: g.pick(SERVICES), serviceSubset: g.maybe(0.3, () => g.pick(SUBSETS)) }),
    };
  const subsets = g.chance(0.6) ? { v1: { filter: { tags: ['v1'] } }, v2: { onlyPassing: true } } : undefined;
  return obj({
    subsets,
    defaultSubset: g.maybe(subsets ? 0.5 : 0.1, () => g.pick(SUBSETS)),
    failover: g.maybe(0.4, () => ({
      '*': { targets: [obj({ service: g.pick(SERVICES), serviceSubset: g.maybe(0.3, () => 'v1') })] },
    })),
    loadBalancer: g.maybe(0.3, () => ({ policy: g.pick(['random', 'ring_hash', 'ewma']) })),
  });
}

function randomStore(g: Gen): Lookup {
  const m = new Map<string, unknown>();
  for (const s of SERVICES) {
    if (g.chance(0.4)) m.set(`service-router/${s}`, routerSpec(g));
    if (g.chance(0.4)) m.set(`service-splitter/${s}`, splitterSpec(g));
    if (g.chance(0.5)) m.set(`service-resolver/${s}`, resolverSpec(g));
  }
  return (kind, name) => m.get(`${kind}/${name}`);
}

describe('routing properties', () => {
  it('validate never throws and returns errors with string fields', () => {
    const g = new Gen(new SeededRng(7));
    const makers = [routerSpec, splitterSpec, resolverSpec];
    for (let i = 0; i < RUNS; i++) {
      const spec = g.pick(makers)(g);
      for (const k of Object.values(KINDS)) {
        for (const v of [spec, { routes: spec, splits: spec, sources: spec, subsets: spec }]) {
          const errors = k.validate(v);
          assert.ok(Array.isArray(errors));
          for (const e of errors) assert.ok(typeof e.field === 'string' && e.message.length > 0);
        }
      }
    }
  });

  it('compileChain never throws; its chain is well formed and routable', () => {
    const g = new Gen(new SeededRng(11));
    let compiled = 0;
    for (let i = 0; i < RUNS; i++) {
      const lookup = randomStore(g);
      const service = g.pick(SERVICES);
      const chain = compileChain(lookup, service, g.pick(['tcp', 'http', 'grpc'] as const));
      if (chain.errors.length === 0) compiled++;
      const ids = new Set(chain.targets.map((t) => t.id));
      assert.equal(ids.size, chain.targets.length);
      for (const t of chain.targets) for (const f of t.failover) assert.ok(ids.has(f), f);
      assert.deepEqual(structuredClone(chain), chain);
      const router = new ChainRouter(chain);
      assert.deepEqual(router.chain.errors, chain.errors, 'the router accepts what compileChain makes');
      const path = g.pick(['/', '/a/b', '/x?q=aa']);
      const d = router.routeRequest(
        { path, method: 'GET', headers: { 'x-a': 'v' }, query: 'q=aa' },
        g.rng.next(),
      );
      assert.ok(ids.has(d.target.id));
      assert.ok(ids.has(router.routeConnection(g.rng.next()).target.id));
    }
    assert.ok(compiled > RUNS / 4, `only ${compiled} of ${RUNS} random configurations compiled`);
  });
});
