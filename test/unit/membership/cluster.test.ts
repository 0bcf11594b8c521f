// Scenario tests: several membership cores on the simulated network of test/helpers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimCluster } from '../../helpers/sim-membership.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => SimCluster.id(i));

function joined(n: number, seed: number, extra: Partial<ConstructorParameters<typeof SimCluster>[0]> = {}) {
  const sim = new SimCluster({ n, seed, ...extra });
  sim.joinAll();
  sim.run(2000);
  return sim;
}

describe('membership cluster (simulated)', () => {
  it('joins 5 nodes through one seed: everyone sees 5 alive', () => {
    const sim = joined(5, 1);
    for (const n of sim.nodes) {
      const ms = n.m.members();
      assert.deepEqual(
        ms.map((m) => m.id),
        ids(5),
      );
      assert.ok(
        ms.every((m) => m.status === 'alive'),
        `${n.id} sees ${JSON.stringify(ms.map((m) => m.status))}`,
      );
    }
  });

  it('a newcomer that missed gossip while joining learns of a simultaneous joiner by its follow-up push-pull', () => {
    const sim = new SimCluster({ n: 3, seed: 11 });
    // n2 joins first but hears no gossip yet (its subscription has not spread); then n1 joins.
    sim.deafen('n2');
    sim.node('n2').m.pushPull('n0', sim.node('n0').info.address, true, sim.nowMs);
    sim.flush();
    sim.run(100);
    sim.node('n1').m.pushPull('n0', sim.node('n0').info.address, true, sim.nowMs);
    sim.flush();
    sim.run(400);
    sim.deafen('n2', false);
    assert.equal(sim.view('n2', 'n1'), undefined, 'n2 missed the gossip about n1');
    const took = sim.runUntilTrue(() => sim.view('n2', 'n1')?.status === 'alive', 20_000);
    // The follow-up comes joinFollowUpMs after the join; the periodic push-pull only 7.5–15 s later.
    assert.ok(took !== undefined && took <= 3_000, `took ${took} ms`);
  });

  it('probes directly and keeps a healthy cluster free of suspicion', () => {
    const sim = joined(5, 2);
    sim.run(20_000);
    for (const n of sim.nodes) {
      const s = n.m.stats();
      assert.ok(s.probesSent >= 40, `${n.id} sent ${s.probesSent} probes`);
      assert.equal(s.probesFailed, 0);
      assert.equal(s.indirectProbesSent, 0);
      assert.equal(n.m.localHealth(), 0);
    }
    assert.ok(!sim.trace.some((l) => /suspect|failed/.test(l)), sim.trace.join('\n'));
  });

  it('probes indirectly when a direct link is cut: the target stays alive', () => {
    const sim = joined(5, 3);
    sim.cutLink('n0', 'n1');
    sim.run(20_000);
    assert.ok((sim.delivered.get('ping-req') ?? 0) > 0, 'some ping-req was sent');
    assert.ok(sim.node('n0').m.stats().indirectProbesSent > 0);
    assert.equal(sim.node('n0').m.stats().probesFailed, 0);
    assert.ok(sim.allSee('n1', 'alive') && sim.allSee('n0', 'alive'));
    assert.ok(!sim.trace.some((l) => /suspect|failed/.test(l)), sim.trace.join('\n'));
  });

  it('detects a killed node: suspect, then failed everywhere within a bounded time', () => {
    const sim = joined(5, 4);
    sim.kill('n4');
    const took = sim.runUntilTrue(() => sim.allSee('n4', 'failed'), 15_000);
    assert.ok(took !== undefined, 'n4 was not failed everywhere within 15 s');
    // Min suspicion is 1.2 s at N=5 with a 400 ms interval; detection adds at most a few probe rounds.
    assert.ok(took <= 5000, `took ${took} ms`);
    assert.ok(sim.trace.some((l) => / n4 alive→suspect/.test(l)));
    for (const other of ['n0', 'n1', 'n2', 'n3']) assert.ok(sim.allSee(other, 'alive'));
  });

  it('a briefly unreachable node refutes the suspicion and stays alive at a higher incarnation', () => {
    const sim = joined(5, 5);
    for (const o of ['n0', 'n1', 'n3', 'n4']) sim.cutLink('n2', o);
    sim.run(1500);
    for (const o of ['n0', 'n1', 'n3', 'n4']) sim.cutLink('n2', o, false);
    sim.run(5000);
    assert.ok(
      sim.trace.some((l) => / n2 alive→suspect/.test(l)),
      'n2 was suspected',
    );
    assert.ok(!sim.trace.some((l) => / n2 \w+→failed/.test(l)), 'n2 was never failed');
    assert.ok(sim.node('n2').m.stats().refutations >= 1);
    assert.ok(sim.allSee('n2', 'alive'));
    const inc = sim.node('n2').m.self().incarnation;
    assert.ok(inc >= 1);
    for (const n of sim.nodes) assert.equal(n.m.member('n2')?.incarnation, inc);
  });

  it('a node isolated long enough to be failed returns alive everywhere after the partition heals', () => {
    const sim = joined(5, 6);
    sim.isolate('n2');
    assert.ok(sim.runUntilTrue(() => sim.allSee('n2', 'failed', ['n2']), 15_000) !== undefined);
    sim.isolate('n2', false);
    // Reconnect (10 s) or push-pull (15 s) finds it again; it refutes the failure.
    const took = sim.runUntilTrue(
      () =>
        sim.allSee('n2', 'alive') &&
        sim
          .node('n2')
          .m.members()
          .every((m) => m.status === 'alive'),
      40_000,
    );
    assert.ok(took !== undefined, `not healed:\n${sim.trace.slice(-30).join('\n')}`);
    assert.ok(sim.node('n2').m.self().incarnation >= 1);
  });

  it('a graceful leave is seen as left everywhere, never failed', () => {
    const sim = joined(5, 7);
    sim.node('n3').m.leave(sim.nowMs);
    sim.flush();
    assert.equal(sim.node('n3').m.self().status, 'left');
    assert.equal(sim.node('n3').m.nextDeadlineMs(), undefined);
    sim.run(200);
    sim.kill('n3');
    sim.run(20_000);
    assert.ok(sim.allSee('n3', 'left'));
    assert.ok(!sim.trace.some((l) => / n3 \w+→(failed|suspect)/.test(l)), sim.trace.join('\n'));
  });

  it('a restarted node with a higher incarnation is alive again everywhere', () => {
    const sim = joined(5, 8);
    sim.kill('n3');
    assert.ok(sim.runUntilTrue(() => sim.allSee('n3', 'failed'), 15_000) !== undefined);
    const old = sim.node('n0').m.member('n3')?.incarnation ?? 0;
    sim.restart('n3', old + 1, 'n0');
    const took = sim.runUntilTrue(() => sim.allSee('n3', 'alive'), 5000);
    assert.ok(took !== undefined, sim.trace.slice(-20).join('\n'));
    for (const n of sim.nodes) assert.ok((n.m.member('n3')?.incarnation ?? -1) >= old + 1);
    assert.equal(sim.node('n3').m.members().length, 5);
  });

  it('converges under 10% message loss without failing anyone', () => {
    const sim = joined(8, 9);
    sim.setLossRate(0.1);
    sim.run(30_000);
    for (const id of ids(8)) assert.ok(sim.allSee(id, 'alive'), `${id} not alive everywhere`);
    assert.ok(
      !sim.trace.some((l) => /→failed/.test(l)),
      sim.trace.filter((l) => /failed/.test(l)).join('\n'),
    );
  });

  it('fails 5 of 50 killed nodes everywhere within 8 s under 2% loss, and no one else', () => {
    const sim = joined(50, 11);
    sim.setLossRate(0.02);
    const dead = ['n10', 'n20', 'n30', 'n40', 'n45'];
    for (const id of dead) sim.kill(id);
    const took = sim.runUntilTrue(() => dead.every((id) => sim.allSee(id, 'failed')), 8000, 100);
    assert.ok(took !== undefined, 'not all killed nodes failed everywhere within 8 s');
    sim.run(30_000);
    const wrong = sim.trace.filter((l) => /→failed/.test(l) && !dead.some((id) => l.includes(` ${id} `)));
    assert.deepEqual(wrong, []);
  });

  it('is deterministic: the same seed gives the same event trace', () => {
    const scenario = (seed: number) => {
      const sim = joined(6, seed, { lossRate: 0.05 });
      sim.kill('n5');
      sim.run(10_000);
      sim.node('n1').m.leave(sim.nowMs);
      sim.run(5_000);
      return sim.trace;
    };
    const a = scenario(42);
    const b = scenario(42);
    assert.ok(a.length > 20);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, scenario(43));
  });
});
