// bench:membership — real agent processes on 127.0.0.1, N = 10 and 30 (override: BENCH_SIZES=10,30,
// BENCH_REPS=1). Per size, on a fresh cluster:
//   join  : N−1 agents converged; start agent N; time until every agent's log shows N alive.
//   fail  : kill -9 one agent; time until every other agent's log shows it failed.
//   leave : SIGTERM another; time until every remaining agent's log shows it left.
//   rss   : VmRSS of every agent after join convergence (median and max).
// State is observed from each agent's "member status changed" log lines, timestamped on arrival,
// so measuring does not load the CPUs. When `serf` is installed, the same steps run on Serf in
// the same run (../shared/anchors/serf_membership.mjs) and both are printed side by side.
import '../../src/polyfill.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AgentProc, LocalCluster, sleep } from '../launcher.js';

const SIZES = (process.env.BENCH_SIZES ?? '10,30').split(',').map(Number);
const REPS = Number(process.env.BENCH_REPS ?? '1');
const STEP_TIMEOUT_MS = 60_000;

interface Figures {
  join_ms: number;
  /** Part of join_ms: process start + join handshake, until the new agent has merged the seed's state. */
  join_spawn_to_self_ms: number;
  fail_ms: number;
  leave_ms: number;
  rss_median_mib: number;
  rss_max_mib: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function aliveCount(a: AgentProc): number {
  let c = 0;
  for (const v of a.view.values()) if (v.status === 'alive') c++;
  // An agent's own entry is logged too (first sighting of itself); count it once either way.
  return a.view.has(a.name) ? c : c + 1;
}

async function until(pred: () => boolean, what: string): Promise<number> {
  const t0 = performance.now();
  while (!pred()) {
    if (performance.now() - t0 > STEP_TIMEOUT_MS) throw new Error(`timeout waiting for ${what}`);
    await sleep(2);
  }
  return performance.now();
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function runOurs(n: number): Promise<Figures> {
  const cluster = new LocalCluster({ outputLinesMax: 200 });
  try {
    for (let i = 1; i < n; i++) await cluster.add();
    for (const a of cluster.agents) await cluster.ready(a, 60_000);
    await until(() => cluster.running().every((a) => aliveCount(a) === n - 1), `${n - 1} agents converged`);
    await sleep(2_000); // let start-up CPU settle
    const t0 = performance.now();
    const last = await cluster.add();
    const tJoin = await until(
      () => cluster.running().every((a) => aliveCount(a) === n),
      `${n} alive everywhere`,
    );
    const tSelf = last.joinedAtMs ?? Number.NaN;
    await sleep(1_000);
    const rss = cluster.running().map((a) => rssMiB(a.proc!.pid!));

    const victim = cluster.agents[1]!;
    const tk = performance.now();
    cluster.kill(victim, 'SIGKILL');
    const others = cluster.running().filter((a) => a !== victim);
    const tFail = await until(
      () => others.every((a) => a.view.get(victim.name)?.status === 'failed'),
      `${victim.name} failed everywhere`,
    );

    const leaver = cluster.agents[2]!;
    const remaining = others.filter((a) => a !== leaver);
    const tl = performance.now();
    cluster.kill(leaver, 'SIGTERM');
    const tLeft = await until(
      () => remaining.every((a) => a.view.get(leaver.name)?.status === 'left'),
      `${leaver.name} left everywhere`,
    );
    return {
      join_ms: tJoin - t0,
      join_spawn_to_self_ms: tSelf - t0,
      fail_ms: tFail - tk,
      leave_ms: tLeft - tl,
      rss_median_mib: median(rss),
      rss_max_mib: Math.max(...rss),
    };
  } finally {
    await cluster.stop();
  }
}

function runSerf(n: number): Figures | undefined {
  const have = spawnSync('sh', ['-c', 'command -v serf'], { encoding: 'utf8' }).status === 0;
  const here = dirname(fileURLToPath(import.meta.url));
  const script = join(here, '..', '..', '..', '..', 'shared', 'anchors', 'serf_membership.mjs');
  if (!have || !existsSync(script)) return undefined;
  const out = execFileSync(process.execPath, [script, String(n), String(REPS)], {
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const line = out.split('\n').find((l) => l.startsWith(`n=${n} `));
  if (!line) return undefined;
  const kv = Object.fromEntries(line.split(' ').map((p) => p.split('=') as [string, string]));
  return {
    join_ms: Number(kv.join_ms_median),
    join_spawn_to_self_ms: Number(kv.join_spawn_to_self_ms_median),
    fail_ms: Number(kv.fail_ms_median),
    leave_ms: Number(kv.leave_ms_median),
    rss_median_mib: Number(kv.rss_median_kib_median) / 1024,
    rss_max_mib: Number(kv.rss_max_kib_median) / 1024,
  };
}

const fmt = (v: number | undefined, unit: string): string =>
  v === undefined || Number.isNaN(v) ? '—' : unit === 'ms' ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} MiB`;

async function main(): Promise<void> {
  const version = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  console.log(`bench:membership  commit ${version}  node ${process.version}  reps ${REPS} (medians)`);
  for (const n of SIZES) {
    const ours: Figures[] = [];
    for (let r = 0; r < REPS; r++) {
      const f = await runOurs(n);
      console.log(
        `mesh rep=${r} n=${n} ${Object.entries(f)
          .map(([k, v]) => `${k}=${v.toFixed(1)}`)
          .join(' ')}`,
      );
      ours.push(f);
    }
    const m = (k: keyof Figures): number => median(ours.map((f) => f[k]));
    let serf: Figures | undefined;
    try {
      serf = runSerf(n);
    } catch (err) {
      // The comparison must not cost us our own figures: report and go on.
      console.log(
        `serf run failed: ${((err as Error).message.split('\n').find((l) => l.startsWith('Error')) ?? (err as Error).message).slice(0, 200)}`,
      );
    }
    console.log(`\nN=${n}                         mesh        serf`);
    const rows: Array<[string, keyof Figures, string]> = [
      ['join → all see N alive', 'join_ms', 'ms'],
      ['  of which start + join', 'join_spawn_to_self_ms', 'ms'],
      ['kill -9 → all see failed', 'fail_ms', 'ms'],
      ['leave → all see left', 'leave_ms', 'ms'],
      ['RSS per agent (median)', 'rss_median_mib', 'MiB'],
      ['RSS per agent (max)', 'rss_max_mib', 'MiB'],
    ];
    for (const [label, k, unit] of rows) {
      console.log(
        `${label.padEnd(28)} ${fmt(m(k), unit).padStart(10)}  ${fmt(serf?.[k], unit).padStart(10)}`,
      );
    }
    console.log(
      `result n=${n} ${rows.map(([, k]) => `mesh_${k}=${m(k).toFixed(1)}`).join(' ')}${serf ? ` ${rows.map(([, k]) => `serf_${k}=${serf[k].toFixed(1)}`).join(' ')}` : ' serf=not-installed'}\n`,
    );
  }
}

main().catch((err) => {
  console.error(`bench:membership failed: ${(err as Error).message}`);
  process.exit(1);
});
