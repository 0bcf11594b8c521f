// The catalog core: deltas, gaps and pulls, restarts (generations), anti-entropy, pruning and the
// indexes blocking queries watch; and a property test that any mix of lost, duplicated and
// reordered gossip converges once anti-entropy has run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CATALOG_LIMITS, Catalog, GENERATION_SPAN } from '../../../src/core/catalog/catalog.js';
import type { Instance } from '../../../src/core/catalog/types.js';
import {
  type CatalogMessage,
  type Delta,
  deltaToWire,
  messageToWire,
  parseCatalogMessage,
  parseDelta,
} from '../../../src/core/catalog/wire.js';
import { decode, encode } from '../../../src/wire/codec.js';

function inst(id: string, name = 'web', status: 'passing' | 'critical' = 'passing', port = 8080): Instance {
  return {
    id,
    name,
    address: '',
    port,
    tags: ['v1'],
    meta: { version: '1' },
    protocol: undefined,
    checks: [{ id: `service:${id}`, name: 'HTTP', type: 'http', status, output: '' }],
  };
}

/** Deliver every queued message between the catalogs, as a lossless network would, until quiet. */
function settle(nodes: Map<string, Catalog>): void {
  for (let round = 0; round < 20; round++) {
    let moved = false;
    for (const [from, cat] of nodes) {
      for (const o of cat.drain()) {
        moved = true;
        const parsed = parseCatalogMessage(decode(encode(messageToWire(o.msg))));
        assert.equal(
          typeof parsed,
          'object',
          `message from ${from} must survive the wire: ${String(parsed)}`,
        );
        nodes.get(o.to)?.receive(from, parsed as CatalogMessage);
      }
    }
    if (!moved) return;
  }
  assert.fail('messages kept flowing');
}

function viaWire(d: Delta): Delta {
  const parsed = parseDelta(decode(encode(deltaToWire(d))));
  assert.equal(typeof parsed, 'object', String(parsed));
  return parsed as Delta;
}

function view(c: Catalog, node: string): string {
  return JSON.stringify(c.nodeInstances(node));
}

describe('catalog core', () => {
  it('applies deltas in order and answers queries by name', () => {
    const a = new Catalog('a', 0);
    const b = new Catalog('b', 0);
    const d1 = a.setLocal([inst('web-1'), inst('db-1', 'db')])!;
    b.receiveDelta(viaWire(d1), 0);
    assert.deepEqual(
      b.instances('web').map((p) => [p.node, p.instance.id]),
      [['a', 'web-1']],
    );
    assert.deepEqual(b.serviceNames(), ['db', 'web']);
    const d2 = a.setLocal([inst('web-1', 'web', 'critical')])!;
    assert.deepEqual(d2.removes, ['db-1']);
    assert.equal(d2.upserts.length, 1);
    b.receiveDelta(viaWire(d2), 0);
    assert.deepEqual(b.serviceNames(), ['web']);
    assert.equal(b.instances('web')[0]?.instance.checks[0]?.status, 'critical');
    assert.equal(a.setLocal([inst('web-1', 'web', 'critical')]), undefined, 'no change, no delta');
    b.checkInvariants();
  });

  it('a missed delta makes the receiver pull the whole record from its owner', () => {
    const a = new Catalog('a', 0);
    const b = new Catalog('b', 0);
    const nodes = new Map([
      ['a', a],
      ['b', b],
    ]);
    a.setLocal([inst('web-1')]); // lost
    const d2 = a.setLocal([inst('web-1'), inst('web-2')])!;
    b.receiveDelta(d2, 0);
    assert.equal(b.stats.gaps, 1);
    assert.deepEqual(b.drain(), [{ to: 'a', msg: { t: 'pull', nodes: ['a'] } }]);
    b.receiveDelta(d2, 10);
    assert.deepEqual(b.drain(), [], 'one pull at a time per node');
    b.receiveDelta(d2, CATALOG_LIMITS.pullRetryMs + 1);
    assert.equal(b.drain().length, 1, 'retried after pullRetryMs');
    b.syncWith('a');
    settle(nodes);
    assert.equal(view(b, 'a'), view(a, 'a'));
  });

  it("a restarted agent's first delta replaces what others held of its previous run", () => {
    const a1 = new Catalog('a', 3);
    const b = new Catalog('b', 0);
    b.receiveDelta(a1.setLocal([inst('old-1'), inst('old-2')])!, 0);
    const a2 = new Catalog('a', 4);
    const d = a2.setLocal([inst('new-1')])!;
    assert.equal(d.base, 4 * GENERATION_SPAN);
    b.receiveDelta(d, 0);
    assert.equal(b.stats.gaps, 0, 'a delta from a generation start needs nothing before it');
    assert.deepEqual(
      b.nodeInstances('a').map((i) => i.id),
      ['new-1'],
    );
    b.checkInvariants();
  });

  it('a change too big for gossip is published as a version bump that makes receivers pull', () => {
    const a = new Catalog('a', 0);
    const b = new Catalog('b', 0);
    const many = Array.from({ length: 400 }, (_, i) => inst(`web-${i}`));
    const d = a.setLocal(many)!;
    assert.equal(d.truncated, true);
    assert.deepEqual(d.upserts, []);
    b.receiveDelta(d, 0);
    settle(
      new Map([
        ['a', a],
        ['b', b],
      ]),
    );
    assert.equal(b.nodeInstances('a').length, 400);
  });

  it('anti-entropy carries records both ways in one exchange', () => {
    const a = new Catalog('a', 0);
    const b = new Catalog('b', 0);
    a.setLocal([inst('web-a')]);
    b.setLocal([inst('web-b')]);
    const nodes = new Map([
      ['a', a],
      ['b', b],
    ]);
    a.syncWith('b');
    settle(nodes);
    assert.equal(view(a, 'b'), view(b, 'b'));
    assert.equal(view(b, 'a'), view(a, 'a'));
  });

  it('indexes: a change moves its service only; a node status change moves its services', () => {
    const a = new Catalog('a', 0);
    const b = new Catalog('b', 0);
    b.receiveDelta(a.setLocal([inst('web-1'), inst('db-1', 'db')])!, 0);
    const web = b.serviceIndex('web');
    const db = b.serviceIndex('db');
    b.receiveDelta(a.setLocal([inst('web-1', 'web', 'critical'), inst('db-1', 'db')])!, 0);
    assert.ok(b.serviceIndex('web') > web);
    assert.equal(b.serviceIndex('db'), db);
    const before = b.index;
    b.touchNode('a');
    assert.ok(b.index > before);
    assert.ok(b.serviceIndex('db') > db);
    b.receiveDelta(a.setLocal([inst('web-1', 'web', 'critical')])!, 0);
    assert.ok(b.serviceIndex('db') > db, 'a service that disappeared still shows its change');
  });

  it('prune drops agents that left at once, unknown ones after a grace period', () => {
    const b = new Catalog('b', 0);
    for (const n of ['x', 'y', 'z']) {
      const c = new Catalog(n, 0);
      b.receiveDelta(c.setLocal([inst(`web-${n}`)])!, 0);
    }
    const status = (n: string) => ({ x: 'left', y: 'failed' })[n];
    b.prune(status, 0);
    assert.deepEqual(b.nodes().sort(), ['b', 'y', 'z']);
    b.prune(status, CATALOG_LIMITS.unknownNodeGraceMs - 1);
    assert.deepEqual(b.nodes().sort(), ['b', 'y', 'z']);
    b.prune(status, CATALOG_LIMITS.unknownNodeGraceMs);
    assert.deepEqual(b.nodes().sort(), ['b', 'y'], 'failed agents stay (their instances show critical)');
    b.checkInvariants();
  });

  it('weights survive the wire; an instance without them (an older agent’s) stays without; bad ones are refused', () => {
    const weighted: Instance = { ...inst('w1'), weights: { passing: 10, warning: 0 } };
    const d: Delta = {
      node: 'a',
      base: 0,
      version: 1,
      upserts: [weighted, inst('w2')],
      removes: [],
      truncated: false,
    };
    const back = viaWire(d);
    assert.deepEqual(back.upserts[0]?.weights, { passing: 10, warning: 0 });
    assert.equal(back.upserts[1]?.weights, undefined);
    assert.ok(!('weights' in (back.upserts[1] as object)));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        (passing, warning) => {
          const w = viaWire({ ...d, upserts: [{ ...inst('w'), weights: { passing, warning } }] });
          assert.deepEqual(w.upserts[0]?.weights, { passing, warning });
        },
      ),
    );
    // Weights this version cannot read never cost the instance (nor its node's others): capped, or
    // read as absent.
    const read = (weights: unknown) => {
      const sent = { ...(deltaToWire(d) as Record<string, unknown>), upserts: [{ ...weighted, weights }] };
      const parsed = parseDelta(decode(encode(sent)));
      assert.equal(typeof parsed, 'object', String(parsed));
      return (parsed as Delta).upserts[0]?.weights;
    };
    assert.deepEqual(read({ passing: 65_535, warning: 2 }), { passing: 1000, warning: 2 });
    for (const weights of [
      { passing: 0, warning: 1 },
      { passing: 1, warning: -1 },
      { passing: 1.5, warning: 1 },
      'heavy',
      null,
    ])
      assert.equal(read(weights), undefined, JSON.stringify(weights));
  });

  it('a change of weights alone is a change: it gossips', () => {
    const c = new Catalog('a', 0);
    c.setLocal([inst('w1')]);
    const delta = c.setLocal([{ ...inst('w1'), weights: { passing: 5, warning: 1 } }]);
    assert.equal(delta?.upserts.length, 1, 'a delta with the instance');
    assert.deepEqual(delta?.upserts[0]?.weights, { passing: 5, warning: 1 });
  });

  it('malformed wire input is refused, never thrown', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        assert.doesNotThrow(() => parseDelta(v));
        assert.doesNotThrow(() => parseCatalogMessage(v));
      }),
      { numRuns: 500 },
    );
    assert.equal(
      typeof parseDelta({ node: 'a', base: 5, version: 5, upserts: [], removes: [], truncated: false }),
      'string',
    );
    assert.equal(typeof parseCatalogMessage({ t: 'pull', nodes: [''] }), 'string');
  });

  it('property: lossy, duplicated, reordered gossip converges after anti-entropy', () => {
    const owners = ['a', 'b', 'c'];
    const opArb = fc.oneof(
      fc.record({
        t: fc.constant('change' as const),
        owner: fc.constantFrom(...owners),
        ids: fc.uniqueArray(fc.constantFrom('s1', 's2', 's3', 's4'), { maxLength: 4 }),
        critical: fc.boolean(),
        port: fc.integer({ min: 1, max: 3 }),
      }),
      fc.record({ t: fc.constant('restart' as const), owner: fc.constantFrom(...owners) }),
      fc.record({
        t: fc.constant('sync' as const),
        from: fc.constantFrom(...owners, 'o'),
        to: fc.constantFrom(...owners, 'o'),
      }),
    );
    const fate = fc.array(fc.constantFrom('deliver', 'lose', 'twice', 'later'), {
      minLength: 64,
      maxLength: 64,
    });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fate, (ops, fates) => {
        const generation = new Map(owners.map((o) => [o, 0]));
        const nodes = new Map<string, Catalog>([...owners, 'o'].map((n) => [n, new Catalog(n, 0)]));
        const later: Delta[] = [];
        let f = 0;
        const gossip = (d: Delta): void => {
          for (const [id, cat] of nodes) {
            if (id === d.node) continue;
            const what = fates[f++ % fates.length];
            if (what === 'lose') continue;
            if (what === 'later') {
              later.push(d);
              continue;
            }
            cat.receiveDelta(d, f * 10);
            if (what === 'twice') cat.receiveDelta(d, f * 10);
          }
        };
        for (const op of ops) {
          if (op.t === 'change') {
            const d = nodes
              .get(op.owner)!
              .setLocal(
                op.ids.map((id) =>
                  inst(`${op.owner}-${id}`, id, op.critical ? 'critical' : 'passing', op.port),
                ),
              );
            if (d) gossip(d);
          } else if (op.t === 'restart') {
            const g = generation.get(op.owner)! + 1;
            generation.set(op.owner, g);
            const old = nodes.get(op.owner)!;
            const fresh = new Catalog(op.owner, g);
            const d = fresh.setLocal(old.nodeInstances(op.owner));
            nodes.set(op.owner, fresh);
            if (d) gossip(d);
          } else if (op.from !== op.to) {
            nodes.get(op.from)!.syncWith(op.to);
          }
          // Late deliveries arrive after newer ones: reordering.
          if (later.length > 3) for (const d of later.splice(0)) gossip(d);
          settle(nodes);
          for (const cat of nodes.values()) cat.checkInvariants();
        }
        // Anti-entropy rounds: everyone with everyone.
        for (const x of nodes.keys()) for (const y of nodes.keys()) if (x !== y) nodes.get(x)!.syncWith(y);
        settle(nodes);
        for (const owner of owners) {
          const truth = view(nodes.get(owner)!, owner);
          for (const [id, cat] of nodes) {
            if (id === owner) continue;
            if (nodes.get(owner)!.nodeInstances(owner).length === 0 && cat.nodeVersion(owner) === undefined)
              continue;
            assert.equal(view(cat, owner), truth, `${id}'s view of ${owner}`);
          }
        }
      }),
      { numRuns: 300, seed: 7 },
    );
  });
});
