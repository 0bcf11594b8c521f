// How a simulation summary is printed, and the command that replays a run.
import type { Distribution } from './observe.js';
import type { SimSummary } from './run.js';

const ms = (v: number | undefined): string =>
  v === undefined || Number.isNaN(v) ? '-' : `${Math.round(v)} ms`;
const dist = (d: Distribution): string =>
  d.count === 0 ? '-' : `p50 ${ms(d.p50)}, p99 ${ms(d.p99)}, max ${ms(d.max)} (n=${d.count})`;

export function formatSummary(s: SimSummary): string {
  const c = s.counters;
  const lin = s.linearizability;
  const rows: Array<[string, string]> = [
    ['run', `seed ${s.seed}, ${s.nodes} agents, ${s.durationMs / 1000} s, faults ${s.faults || 'none'}`],
    ['time', `${(s.simulatedMs / 1000).toFixed(1)} s simulated in ${(s.wallMs / 1000).toFixed(1)} s wall`],
    [
      'events',
      `${c.events} handled, ${c.messages} messages (${c.messagesLost} lost), ${c.gossipDeliveries} gossip deliveries`,
    ],
    [
      'faults',
      `${c.crashes} crashes, ${c.restarts} restarts, ${c.pauses} pauses, ${c.partitions} partitions, ${c.leaves} leaves`,
    ],
    [
      'raft',
      `${s.terms} terms with a leader, ${c.leaderChanges} leader changes, commit index ${s.commitIndex}`,
    ],
    [
      'leader msgs/commit',
      Number.isNaN(s.leaderMsgsPerCommit)
        ? '-'
        : `${s.leaderMsgsPerCommit.toFixed(2)} (raft ${c.leaderRaftMsgs}, batches ${c.leaderBatches}, fetch answers ${c.leaderFetchReplies})`,
    ],
    [
      'kv ops',
      `${s.ops.ok} ok, ${s.ops.failed} refused, ${s.ops.unknown} unknown outcome; ${s.ops.recorded} in history`,
    ],
    ['join convergence', ms(s.joinConvergedMs)],
    ['failure detection', dist(s.detectionMs)],
    ['false failures', `${c.falseFailures} (${c.falseFailuresClean} with no fault near either agent)`],
    ['propagation', dist(s.propagationMs)],
    ['settled after heal', ms(s.settledMs)],
    [
      'linearizability',
      lin === undefined
        ? 'not checked'
        : lin.verdict === 'ok'
          ? `ok (${lin.ops} ops, ${lin.keys} keys)`
          : `${lin.verdict}: ${lin.message}`,
    ],
    ['verdict', s.violation ? `VIOLATION ${s.violation.property}: ${s.violation.message}` : 'ok'],
    ['trace hash', s.traceHash],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

export interface ReplayExtras {
  voters: number;
  clients: number;
  snapshotEvery: number;
  settle: number;
}

export function replayCommand(s: SimSummary, x: ReplayExtras): string {
  return (
    `npm run sim -- --nodes ${s.nodes} --seed ${s.seed} --duration ${s.durationMs / 1000} --faults ${s.faults || 'none'}` +
    ` --voters ${x.voters} --clients ${x.clients} --snapshot-every ${x.snapshotEvery} --settle ${x.settle}`
  );
}
