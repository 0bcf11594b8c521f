// Randomised soak: message loss, duplication, reordering (random delays), partitions, crashes
// and restarts, proposals, compactions, leader transfers and reads, with the harness's safety
// checker after every step. After the faults stop, a connected quorum must make progress.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import { SimRaft } from '../../helpers/sim-raft.js';

const SEEDS = Number(process.env.RAFT_SOAK_SEEDS ?? 200);
const FAULT_TICKS = 300;

/**
 * With faults over, the cluster must commit a new entry on every member. A proposal can be lost
 * with its leader (and truncated), so propose again until it sticks.
 */
function finalProgress(sim: SimRaft, seed: number): void {
  const members = () => {
    const l = sim.leader();
    if (l === undefined) return undefined;
    const c = sim.status(l).conf;
    return [...c.voters, ...c.learners];
  };
  let k = 0;
  sim.runUntil(
    () => {
      if (members()?.every((id) => sim.appliedData(id).includes(`final-${seed}`))) return true;
      const l = sim.leader();
      if (k++ % 50 === 0 && l !== undefined) sim.propose(l, `final-${seed}`);
      return false;
    },
    2000,
    `final entry applied by every member (seed ${seed})`,
  );
}

function soak(seed: number, voters: string[]): void {
  const rng = new SeededRng(seed * 104729);
  const sim = new SimRaft({
    voters,
    seed,
    delayTicks: [0, 3],
    dropRate: 0.1,
    dupRate: 0.05,
    config: { appendEntriesMax: 8, inflightMax: 4 },
  });
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng.next() * xs.length)] as T;
  let proposed = 0;
  for (let t = 0; t < FAULT_TICKS; t++) {
    const r = rng.next();
    if (r < 0.03) {
      sim.heal();
      sim.partition(voters.filter(() => rng.next() < 0.5));
    } else if (r < 0.045) {
      sim.heal();
    } else if (r < 0.06) {
      const up = sim.upIds();
      if (up.length > 1) sim.crash(pick(up));
    } else if (r < 0.08) {
      const down = sim.ids().filter((id) => !sim.upIds().includes(id));
      if (down.length > 0) sim.restart(pick(down));
    }
    const lead = sim.leader();
    if (lead !== undefined) {
      if (rng.next() < 0.5) sim.propose(lead, `s${seed}-${proposed++}`);
      if (rng.next() < 0.02) sim.with(lead, (x) => x.readIndex(`r${t}`));
      if (rng.next() < 0.01) sim.with(lead, (x) => x.transferLeader(pick(voters)));
      if (rng.next() < 0.03 && sim.status(lead).applied > 0) sim.compact(lead);
    }
    const someone = pick(sim.upIds());
    if (rng.next() < 0.02 && sim.status(someone).applied > sim.status(someone).firstIndex)
      sim.compact(someone);
    sim.tick();
  }
  // Faults stop: everyone up, network healed and reliable. A leader emerges and commits.
  sim.heal();
  sim.dropRate = 0;
  sim.dupRate = 0;
  for (const id of sim.ids()) if (!sim.upIds().includes(id)) sim.restart(id);
  finalProgress(sim, seed);
  sim.checkConvergedPrefixes();
}

describe('raft soak (seeded faults, safety checked after every step)', () => {
  it(`3 voters × ${SEEDS} seeds`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        soak(seed, ['a', 'b', 'c']);
      } catch (err) {
        assert.fail(`seed ${seed}: ${(err as Error).stack}`);
      }
    }
  });

  it('5 voters × 50 seeds', () => {
    for (let seed = 1000; seed < 1050; seed++) {
      try {
        soak(seed, ['a', 'b', 'c', 'd', 'e']);
      } catch (err) {
        assert.fail(`seed ${seed}: ${(err as Error).stack}`);
      }
    }
  });
});

/** Membership churn under faults: learners added, promoted, members removed, while entries flow. */
function confSoak(seed: number): void {
  const rng = new SeededRng(seed * 7727);
  const all = ['a', 'b', 'c', 'd', 'e'];
  const sim = new SimRaft({
    voters: ['a', 'b', 'c'],
    spares: ['d', 'e'],
    seed,
    delayTicks: [0, 2],
    dropRate: 0.05,
    dupRate: 0.05,
    config: { appendEntriesMax: 8, inflightMax: 4 },
  });
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng.next() * xs.length)] as T;
  let n = 0;
  for (let t = 0; t < FAULT_TICKS; t++) {
    const r = rng.next();
    if (r < 0.02) {
      sim.heal();
      sim.isolate(pick(all));
    } else if (r < 0.04) {
      sim.heal();
    } else if (r < 0.05) {
      const up = sim.upIds();
      if (up.length > 1) sim.crash(pick(up));
    } else if (r < 0.08) {
      const down = sim.ids().filter((id) => !sim.upIds().includes(id));
      if (down.length > 0) sim.restart(pick(down));
    }
    const lead = sim.leader();
    if (lead !== undefined) {
      if (rng.next() < 0.4) sim.propose(lead, `c${seed}-${n++}`);
      if (rng.next() < 0.05) {
        const conf = sim.status(lead).conf;
        const outside = all.filter((id) => !conf.voters.includes(id) && !conf.learners.includes(id));
        const choice = rng.next();
        const cc =
          choice < 0.4 && outside.length > 0
            ? ({ op: 'add-learner', node: pick(outside) } as const)
            : choice < 0.7 && conf.learners.length > 0
              ? ({ op: 'promote', node: pick(conf.learners) } as const)
              : ({ op: 'remove', node: pick([...conf.voters, ...conf.learners]) } as const);
        sim.with(lead, (x) => x.proposeConfChange(cc));
      }
      if (rng.next() < 0.02 && sim.status(lead).applied > 0) sim.compact(lead);
    }
    sim.tick();
  }
  sim.heal();
  sim.dropRate = 0;
  sim.dupRate = 0;
  for (const id of sim.ids()) if (!sim.upIds().includes(id)) sim.restart(id);
  finalProgress(sim, seed);
  sim.checkConvergedPrefixes();
}

describe('raft soak with membership churn', () => {
  it(`${SEEDS / 2} seeds`, () => {
    for (let seed = 1; seed <= SEEDS / 2; seed++) {
      try {
        confSoak(seed);
      } catch (err) {
        assert.fail(`seed ${seed}: ${(err as Error).stack}`);
      }
    }
  });
});
