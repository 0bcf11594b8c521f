// bench:idle — N agents (default 30) on 127.0.0.1 sit idle for BENCH_IDLE_S seconds (default
// 300) after converging; every status change any agent logs is a false suspicion or failure.
// Prints the counts and CPU/RSS per agent; exits non-zero on any false failure.
import '../../src/polyfill.js';
import { readFileSync } from 'node:fs';
import { LocalCluster, sleep, waitFor } from '../launcher.js';

const N = Number(process.env.BENCH_NODES ?? '30');
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? '300');

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ');
  return Number(f[13]) + Number(f[14]);
}
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function main(): Promise<void> {
  const cluster = new LocalCluster({ outputLinesMax: 100_000 });
  try {
    for (let i = 0; i < N; i++) await cluster.add();
    for (const a of cluster.agents) await cluster.ready(a, 60_000);
    if (!(await waitFor(() => cluster.allSeeAlive(N), 120_000, 1_000)))
      throw new Error(`${N} agents did not converge`);
    await sleep(5_000);
    const mark = cluster.agents.map((a) => a.output.length);
    const cpu0 = cluster.agents.map((a) => cpuTicks(a.proc!.pid!));
    console.log(`bench:idle  ${N} agents converged; idle for ${IDLE_S} s`);
    await sleep(IDLE_S * 1_000);
    const cpu1 = cluster.agents.map((a) => cpuTicks(a.proc!.pid!));
    const rss = cluster.agents.map((a) => rssMiB(a.proc!.pid!));
    let suspect = 0;
    let failed = 0;
    for (const [i, a] of cluster.agents.entries()) {
      for (const line of a.output.slice(mark[i])) {
        if (!line.includes('"member status changed"')) continue;
        if (line.includes('"status":"suspect"')) suspect++;
        if (line.includes('"status":"failed"')) failed++;
      }
    }
    const cpuPct = cpu1.map((c, i) => (c - (cpu0[i] as number)) / IDLE_S);
    const avg = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    console.log(
      `result n=${N} idle_s=${IDLE_S} suspect_events=${suspect} failed_events=${failed} cpu_pct_avg=${avg(cpuPct).toFixed(2)} cpu_pct_max=${Math.max(...cpuPct).toFixed(2)} rss_avg_mib=${avg(rss).toFixed(1)} rss_max_mib=${Math.max(...rss).toFixed(1)}`,
    );
    if (failed > 0) process.exitCode = 1;
  } finally {
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(`bench:idle failed: ${(err as Error).message}`);
  process.exit(1);
});
