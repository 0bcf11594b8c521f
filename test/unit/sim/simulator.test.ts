// The simulator itself: runs replay exactly from a seed, the checkers catch deliberately broken
// cores, seeds that once found bugs stay fixed, and bad options are refused clearly.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseFaults } from '../../../cluster-sim/sim/faults.js';
import { runSim, type SimSummary } from '../../../cluster-sim/sim/run.js';
import type { SimOptions } from '../../../cluster-sim/sim/world.js';
import { type RaftInit, RaftNode } from '../../../src/core/raft/raft.js';

const SIM_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'cluster-sim', 'sim');

function run(o: Partial<Omit<SimOptions, 'faults'>> & { faults?: string } = {}): SimSummary {
  const { faults, ...rest } = o;
  return runSim(
    { nodes: 5, seed: 1, durationMs: 30_000, settleMs: 30_000, ...rest, faults: parseFaults(faults ?? '') },
    faults ?? '',
  );
}

/** A deliberately broken copy of the core: a leader commits each proposal at once, without a quorum. */
class CommitsWithoutQuorum extends RaftNode {
  override propose(data: Uint8Array) {
    const r = super.propose(data);
    const raw = (
      this as unknown as { r: { role: string; log: { lastIndex(): number; commitTo(i: number): void } } }
    ).r;
    if (!('code' in r) && raw.role === 'leader') raw.log.commitTo(raw.log.lastIndex());
    return r;
  }
}

/** The first violation over a few seeds of a faulty mix (bounded), or undefined. */
function firstViolation(
  o: Partial<Omit<SimOptions, 'faults'>>,
  faults: string,
  seeds = 12,
): SimSummary | undefined {
  for (let seed = 1; seed <= seeds; seed++) {
    const s = run({ ...o, seed, nodes: 5, durationMs: 60_000, faults });
    if (s.violation) return s;
  }
  return undefined;
}

describe('cluster-sim', () => {
  it('replays a run event for event from its seed', () => {
    const a = run({ seed: 7, faults: 'loss=0.05,delay=50,partition,crash,pause', trace: true });
    const b = run({ seed: 7, faults: 'loss=0.05,delay=50,partition,crash,pause', trace: true });
    assert.equal(a.violation, undefined, a.violation?.message);
    assert.ok(a.trace.length > 50, 'the trace records the run');
    assert.deepEqual(a.trace, b.trace);
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.counters, b.counters);
    const c = run({ seed: 8, faults: 'loss=0.05,delay=50,partition,crash,pause', trace: true });
    assert.notEqual(c.traceHash, a.traceHash, 'another seed is another run');
  });

  it('a clean run converges, propagates every commit and keeps the history linearizable', () => {
    const s = run({ nodes: 9, seed: 3 });
    assert.equal(s.violation, undefined, s.violation?.message);
    assert.equal(s.linearizability?.verdict, 'ok');
    assert.ok(s.ops.ok > 100, `the workload ran (${s.ops.ok} ops)`);
    assert.ok(s.joinConvergedMs !== undefined);
    assert.ok(s.propagationMs.count > 0);
    assert.equal(s.counters.falseFailures, 0);
  });

  it('catches a leader that commits without a quorum (planted bug)', () => {
    const s = firstViolation(
      { makeRaft: (init: RaftInit) => new CommitsWithoutQuorum(init) },
      'loss=0.02,partition,asym,crash',
    );
    assert.ok(s, 'some seed exposes the broken core');
    assert.match(
      s.violation?.property ?? '',
      /state machine safety|log matching|leader completeness|linearizability|commit monotonic|core assertion/,
    );
  });

  it('catches reads served from local state without ReadIndex (planted bug)', () => {
    const s = firstViolation({ staleReads: true }, 'loss=0.02,partition,pause');
    assert.ok(s, 'some seed exposes stale reads');
    assert.equal(s.violation?.property, 'linearizability');
  });

  // Seeds that found bugs, kept as regressions (docs/simulation.md says what each one found).
  const regressions: Array<[number, number, string, number]> = [
    [7, 1, 'loss=0.05,all', 10_000], // bootstrap voter only in the bootstrapping agent's memory
    [5, 1420755473, 'loss=0.04,crash,pause,churn', 200], // a non-leader answered a replica's fetch
    [9, 1639558115, 'loss=0.05,dup=0.02,partition,crash', 200], // a removed voter never learned it
    [4, 436741408, 'loss=0.09,dup=0.02,delay=135,partition', 10_000], // fetch from a stale tail
    [9, 357586113, 'loss=0.07,dup=0.02,delay=188,drift=0.002,partition,asym,crash,pause,churn', 50], // history lost in-flight ops
    [3, 452934690, 'loss=0.1,dup=0.02,drift=0.002,partition,asym,bridge,crash,churn', 200], // a voter left after healing
    [4, 894175689, 'delay=70,bridge,churn', 10_000], // a replica restarted up to date knew no leader
  ];
  for (const [nodes, seed, faults, snapshotEvery] of regressions) {
    it(`stays fixed: seed ${seed} (${nodes} agents, ${faults})`, () => {
      const s = runSim(
        { nodes, seed, durationMs: 60_000, faults: parseFaults(faults), snapshotEveryEntries: snapshotEvery },
        faults,
      );
      assert.equal(s.violation, undefined, s.violation?.message);
    });
  }

  it('measures failure detection of a crashed agent', () => {
    const s = run({ nodes: 7, seed: 5, durationMs: 60_000, faults: 'crash' });
    assert.equal(s.violation, undefined, s.violation?.message);
    assert.ok(s.counters.crashes > 0);
    assert.ok(s.detectionMs.count > 0, 'some crash lasted long enough to be detected');
  });

  it('refuses a bad fault mix with the part that is wrong', () => {
    assert.throws(() => parseFaults('loss=2'), /loss must be a number in \[0, 0.5\]/);
    assert.throws(() => parseFaults('earthquake'), /unknown fault "earthquake"/);
    const r = spawnSync(process.execPath, [join(SIM_DIR, 'cli.js'), '--faults', 'loss=x'], {
      encoding: 'utf8',
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /loss must be a number/);
  });

  it('npm run sim prints a summary and exits 0 on a clean run', () => {
    const out = execFileSync(
      process.execPath,
      [join(SIM_DIR, 'cli.js'), '--nodes', '4', '--seed', '2', '--duration', '10', '--faults', 'loss=0.01'],
      { encoding: 'utf8' },
    );
    assert.match(out, /verdict\s+ok/);
    assert.match(out, /linearizability\s+ok/);
  });
});
