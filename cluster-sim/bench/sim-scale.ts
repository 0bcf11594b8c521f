// `npm run bench:sim`: the simulator at 10, 100 and 1,000 agents (what one machine cannot run as
// processes): join convergence, failure detection and false failures with 1% loss and crashes,
// configuration propagation to every agent, and the messages the leader sends per commit, which
// must not grow with the number of agents. Options: --agents 10,100,1000 --duration 300 --seed 1.
import '../../src/polyfill.js';
import { parseFaults } from '../sim/faults.js';
import type { Distribution } from '../sim/observe.js';
import { runSim } from '../sim/run.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const sizes = arg('agents', '10,100,1000').split(',').map(Number);
const durationS = Number(arg('duration', '300'));
const seed = Number(arg('seed', '1'));
const faults = 'loss=0.01,crash';
if (sizes.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 5_000) || !(durationS > 0)) {
  console.error('usage: npm run bench:sim -- [--agents 10,100,1000] [--duration SECONDS] [--seed N]');
  process.exit(2);
}

const f = (d: Distribution): string =>
  d.count === 0 ? '-' : `${Math.round(d.p50)} / ${Math.round(d.p99)} ms`;
const rows: string[][] = [];
for (const nodes of sizes) {
  // A light control-plane workload (about 2 writes/s): configuration changes are rare in a mesh.
  const s = runSim(
    {
      nodes,
      seed,
      durationMs: durationS * 1_000,
      faults: parseFaults(faults),
      workload: { clients: 2, thinkMs: 500 },
    },
    faults,
  );
  const nodeMinutes = (nodes * durationS) / 60;
  rows.push([
    String(nodes),
    `${(s.wallMs / 1000).toFixed(1)} s`,
    s.joinConvergedMs === undefined ? '-' : `${Math.round(s.joinConvergedMs)} ms`,
    f(s.detectionMs),
    `${s.counters.falseFailures} (${s.counters.falseFailuresClean} clean), ${((s.counters.falseFailures / nodeMinutes) * 60).toFixed(2)}/node-hour`,
    f(s.propagationMs),
    `${s.leaderMsgsPerCommit.toFixed(2)} (${(s.counters.leaderRaftMsgs / s.commitIndex).toFixed(1)} raft, ${(s.counters.leaderBatches / s.commitIndex).toFixed(2)} gossip, ${(s.counters.leaderFetchReplies / s.commitIndex).toFixed(2)} fetch)`,
    s.violation ? `VIOLATION ${s.violation.property}` : 'ok',
  ]);
  console.error(`${nodes} agents done in ${(s.wallMs / 1000).toFixed(1)} s`);
}
const head = [
  'agents',
  'wall time',
  'join convergence',
  'detection p50 / p99',
  'false failures',
  'propagation p50 / p99',
  'leader msgs/commit',
  'checks',
];
console.log(`\nnpm run bench:sim: seed ${seed}, ${durationS} s simulated, faults ${faults}\n`);
console.log(`| ${head.join(' | ')} |`);
console.log(`| ${head.map(() => '---').join(' | ')} |`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
