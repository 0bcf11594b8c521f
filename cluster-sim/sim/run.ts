// One simulation run: start the agents, let them join, run the workload under the fault mix for
// the duration, heal everything, let the cluster settle, then check. Returns a summary; a broken
// invariant is a violation in it (never an uncaught exception), with what is needed to replay it.
import { Packr } from 'msgpackr';
import { checkLinearizable, type LinearizabilityResult } from '../check/linearizability.js';
import { SafetyViolation } from '../check/raft-safety.js';
import type { SimAgent } from './agent.js';
import type { Disruption } from './faults.js';
import { type Distribution, distribution } from './observe.js';
import { type Counters, type SimOptions, SimWorld } from './world.js';

export interface SimSummary {
  seed: number;
  nodes: number;
  durationMs: number;
  faults: string;
  /** Simulated time the run reached (end of settling, or the violation). */
  simulatedMs: number;
  wallMs: number;
  counters: Counters;
  terms: number;
  commitIndex: number;
  ops: { ok: number; failed: number; unknown: number; recorded: number };
  joinConvergedMs: number | undefined;
  settledMs: number | undefined;
  detectionMs: Distribution;
  propagationMs: Distribution;
  /** Messages the leader sent per committed entry: Raft to voters, gossip batches, fetch answers. */
  leaderMsgsPerCommit: number;
  linearizability: LinearizabilityResult | undefined;
  violation: { property: string; message: string } | undefined;
  traceHash: string;
  trace: string[];
}

/** Bound on events per run: a run that exceeds it is stuck in a loop, which is a bug too. */
const EVENTS_MAX = 500_000_000;
const MONITOR_EVERY_MS = 500;

export function runSim(opts: SimOptions, faultsText = ''): SimSummary {
  const wallStart = performance.now();
  const w = new SimWorld(opts);
  let settledMs: number | undefined;
  let lin: LinearizabilityResult | undefined;
  const endFaultsMs = w.opts.durationMs;
  try {
    // Agents start over joinSpreadMs; each joins through a live agent, as `--join` does.
    w.queue.push(0, () => w.startAgent(w.agents[0] as SimAgent));
    for (const a of w.agents.slice(1))
      w.queue.push(1 + w.rng.next() * w.opts.joinSpreadMs, () => w.startAgent(a));
    w.workload.start(w.opts.joinSpreadMs + 2_000);
    scheduleFaults(w, endFaultsMs);
    monitor(w, endFaultsMs);
    loop(w, endFaultsMs);
    // Heal: no more faults, no more requests; everything down comes back.
    w.workload.stop();
    w.healed = true;
    w.net.heal();
    w.lastPartitionMs = w.nowMs;
    for (const a of w.agents) if (!a.up) w.startAgent(a);
    w.note('healed');
    const settleStart = w.nowMs;
    const deadline = settleStart + w.opts.settleMs;
    while (w.nowMs < deadline) {
      loop(w, Math.min(deadline, w.nowMs + MONITOR_EVERY_MS));
      if (settled(w)) {
        settledMs = w.nowMs - settleStart;
        break;
      }
    }
    if (settledMs === undefined) throw unsettled(w);
    // The membership core's own invariants (table, prober), once per agent at the end: O(N) each,
    // too costly after every step at 1,000 agents. A break is a 'core assertion' violation.
    for (const a of w.upAgents()) a.m.checkInvariants();
    checkStatesEqual(w);
    lin = checkLinearizable(w.workload.history);
    if (lin.verdict === 'violation') {
      throw new SafetyViolation('linearizability', `${lin.message} (key ${lin.key})`);
    }
  } catch (e) {
    // A checker's verdict, or an assertion inside a core (an invariant it checks itself): both are
    // violations of this seed, reported with the command that replays it.
    const v =
      e instanceof SafetyViolation
        ? e
        : new SafetyViolation('core assertion', `${(e as Error).message}\n${(e as Error).stack ?? ''}`);
    w.violation = v;
    w.note(`VIOLATION ${v.message}`);
  }
  const commits = w.leader?.raft.raft.status().commit ?? w.safety.highestCommit;
  const c = w.counters;
  const h = w.workload.history;
  return {
    seed: opts.seed,
    nodes: opts.nodes,
    durationMs: w.opts.durationMs,
    faults: faultsText,
    simulatedMs: w.nowMs,
    wallMs: performance.now() - wallStart,
    counters: c,
    terms: w.safety.terms,
    commitIndex: commits,
    ops: { ...w.workload.counts, recorded: h.length },
    joinConvergedMs: w.joinConvergedMs,
    settledMs,
    detectionMs: distribution(w.detection.times),
    propagationMs: distribution(w.propagation.doneMs),
    leaderMsgsPerCommit:
      commits > 0 ? (c.leaderRaftMsgs + c.leaderBatches + c.leaderFetchReplies) / commits : Number.NaN,
    linearizability: lin,
    violation: w.violation ? { property: w.violation.property, message: w.violation.message } : undefined,
    traceHash: w.traceHash,
    trace: w.trace,
  };
}

function loop(w: SimWorld, untilMs: number): void {
  for (;;) {
    const t = w.queue.peekMs();
    if (t === undefined || t > untilMs) break;
    w.nowMs = t;
    w.queue.runNext();
    if (w.counters.events > EVENTS_MAX) throw new Error(`sim: more than ${EVENTS_MAX} events; stuck?`);
  }
  w.nowMs = Math.max(w.nowMs, untilMs);
}

function monitor(w: SimWorld, untilMs: number): void {
  const tick = (): void => {
    w.checkDetectionBound();
    if (w.nowMs + MONITOR_EVERY_MS <= untilMs) w.queue.push(w.nowMs + MONITOR_EVERY_MS, tick);
  };
  w.queue.push(MONITOR_EVERY_MS, tick);
}

/** Settled: everyone sees everyone alive, a leader exists, every agent applied its commit and
 * names it as the leader (a replica learns it from batches alone, heartbeats in a quiet cluster). */
function settled(w: SimWorld): boolean {
  if (!w.membershipConverged() || w.leader === undefined) return false;
  const leader = w.leader;
  const commit = leader.raft.raft.status().commit;
  return w
    .upAgents()
    .every((a) => a.raft.sm.appliedIndex >= commit && (a === leader || knowsLeader(a, leader)));
}

function knowsLeader(a: SimAgent, leader: SimAgent): boolean {
  return a.raft.raft.status().leader === leader.id;
}

function unsettled(w: SimWorld): SafetyViolation {
  if (!w.membershipConverged()) {
    const up = w.upCount();
    const lagging = w.upAgents().filter((a) => w.views.aliveCount(a.id) !== up - 1);
    return new SafetyViolation(
      'membership convergence',
      `${w.opts.settleMs} ms after healing, ${lagging.length} live agents are not seen alive by all (e.g. ${lagging
        .slice(0, 3)
        .map((a) => `${a.id}: ${w.views.aliveCount(a.id)}/${up - 1}`)
        .join(', ')})`,
    );
  }
  if (w.leader === undefined) {
    return new SafetyViolation('raft liveness', `${w.opts.settleMs} ms after healing there is no leader`);
  }
  const leader = w.leader;
  const commit = leader.raft.raft.status().commit;
  const behind = w.upAgents().filter((a) => a.raft.sm.appliedIndex < commit);
  if (behind.length === 0) {
    const unaware = w.upAgents().filter((a) => a !== leader && !knowsLeader(a, leader));
    return new SafetyViolation(
      'leader knowledge',
      `${w.opts.settleMs} ms after healing, ${unaware.length} agents do not name the leader ${leader.id} (e.g. ${unaware
        .slice(0, 3)
        .map((a) => `${a.id}: '${a.raft.raft.status().leader}' at term ${a.raft.raft.status().term}`)
        .join(', ')})`,
    );
  }
  return new SafetyViolation(
    'configuration convergence',
    `${w.opts.settleMs} ms after healing, ${behind.length} agents have not applied the leader's commit ${commit} (e.g. ${behind
      .slice(0, 3)
      .map((a) => `${a.id} at ${a.raft.sm.appliedIndex}`)
      .join(', ')})`,
  );
}

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

/** State machine safety across every agent and replica: identical state at the same index. */
function checkStatesEqual(w: SimWorld): void {
  let ref: { id: string; bytes: string } | undefined;
  for (const a of w.upAgents()) {
    const bytes = Buffer.from(packr.pack(a.raft.sm.snapshot())).toString('base64');
    if (ref === undefined) ref = { id: a.id, bytes };
    else if (ref.bytes !== bytes) {
      throw new SafetyViolation(
        'state machine safety',
        `${a.id}'s state differs from ${ref.id}'s at the same index`,
      );
    }
  }
}

// ---- the fault schedule ---------------------------------------------------------------------------

function scheduleFaults(w: SimWorld, untilMs: number): void {
  const kinds = w.opts.faults.disruptions;
  if (kinds.length === 0) return;
  const r = w.rng;
  const next = (): void => {
    const at = w.nowMs + 3_000 + r.next() * 7_000;
    if (at < untilMs) w.queue.push(at, fire);
  };
  const fire = (): void => {
    disrupt(w, kinds[r.int(kinds.length)] as Disruption, untilMs);
    next();
  };
  w.queue.push(w.opts.joinSpreadMs + 3_000 + r.next() * 3_000, fire);
}

function disrupt(w: SimWorld, kind: Disruption, untilMs: number): void {
  const r = w.rng;
  const up = w.upAgents();
  if (up.length < 2) return;
  const forMs = 2_000 + r.next() * 8_000;
  const victim = (): SimAgent => (w.leader && r.next() < 0.3 ? w.leader : (up[r.int(up.length)] as SimAgent));
  const healLater = (): void => {
    w.queue.push(Math.min(untilMs, w.nowMs + forMs), () => {
      w.net.heal();
      w.lastPartitionMs = w.nowMs;
      w.note('network healed');
    });
  };
  switch (kind) {
    case 'partition': {
      if (w.net.partitioned) return;
      const shuffled = up.map((a) => a.id);
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
      }
      const cut = 1 + r.int(Math.max(1, Math.floor(shuffled.length / 2)));
      w.net.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      w.counters.partitions++;
      w.lastPartitionMs = w.nowMs;
      w.note(`partition ${cut} | ${shuffled.length - cut} for ${Math.round(forMs)} ms`);
      healLater();
      return;
    }
    case 'asym': {
      if (w.net.partitioned) return;
      const a = victim();
      const others = up.filter((x) => x !== a).map((x) => x.id);
      if (r.next() < 0.5) w.net.cutOneWay([a.id], others);
      else w.net.cutOneWay(others, [a.id]);
      w.counters.partitions++;
      w.lastPartitionMs = w.nowMs;
      w.note(`one-way cut around ${a.id} for ${Math.round(forMs)} ms`);
      healLater();
      return;
    }
    case 'bridge': {
      if (w.net.partitioned) return;
      const a = victim();
      const peer = up.filter((x) => x !== a)[r.int(up.length - 1)] as SimAgent;
      w.net.bridge(a.id, peer.id);
      w.counters.partitions++;
      w.lastPartitionMs = w.nowMs;
      w.note(`${a.id} reaches only ${peer.id} for ${Math.round(forMs)} ms`);
      healLater();
      return;
    }
    case 'crash': {
      const a = victim();
      w.crashAgent(a);
      const back = w.nowMs + 1_000 + r.next() * 14_000;
      if (back < untilMs) w.queue.push(back, () => w.startAgent(a));
      return;
    }
    case 'pause':
      w.pauseAgent(victim(), 500 + r.next() * 7_500);
      return;
    case 'churn': {
      const a = up.filter((x) => x.index !== 0)[r.int(up.length - 1)];
      if (a === undefined) return;
      w.leaveAgent(a);
      const back = w.nowMs + 5_000 + r.next() * 10_000;
      if (back < untilMs) w.queue.push(back, () => w.startAgent(a));
      return;
    }
  }
}
