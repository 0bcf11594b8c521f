// `npm run bench:proxy`: the data plane's cost on loopback, side by side with HAProxy in the same run.
//
// Upstream: a one-thread Node HTTP server answering "ok" (the anchor's node upstream). Paths:
//   direct     wrk → upstream
//   one hop    wrk → agent B's outbound listener → upstream (the instance is on B itself)
//   mesh path  wrk → agent A's outbound listener → mTLS → agent B's inbound → upstream
//   haproxy    wrk → HAProxy (HTTP mode, keep-alive) → upstream
//   haproxy×2  wrk → HAProxy → mTLS → HAProxy → upstream (two processes)
// Each: `wrk -t1 -c50 -d10s --latency`, REPS rounds with the paths interleaved, median reported;
// CPU (1.0 = one core, all threads) and RSS of each proxy process during its runs. Then each path at
// a constant 1,000 req/s (open loop, rate.ts), RATE_REPS rounds of RATE_SECS with the paths interleaved,
// to give the p99 the proxy adds over the direct path (median of rounds). The CPU time the
// hypervisor stole during each round is printed beside it. With STALL_WATCH=1 the machine's own
// stalls (stall.ts: wake-ups of a real-time sleeper on each CPU 1 ms or more late) are counted too;
// the watch is off by default because it costs what it measures (STALL_WATCH_NOTE).
// Env: REPS (3), SECS (10), CONNS (50), RATE (1000), RATE_SECS (5), RATE_REPS (8), STALL_WATCH (0).
//
// wrk and HAProxy are Debian packages; run as root and they are installed when missing. Without
// HAProxy its columns say so; without wrk the benchmark cannot run and exits 1.
import '../../src/polyfill.js';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentProc, freePort, LocalCluster, sleep, waitFor } from '../launcher.js';
import { ensureTools, type HaproxyPair, startHaproxy } from './haproxy.js';
import { median, meter, runWrk, type WrkResult } from './load.js';
import { proxyPauses } from './pauses.js';
import { constantRate, type RateResult } from './rate.js';
import {
  cpuTicks,
  STALL_MS,
  type StallWatch,
  stallSummary,
  WATCH_SECS_MAX,
  watchesSummary,
  watchStalls,
} from './stall.js';
import { nonOkAnswers, printTrouble } from './trouble.js';

const env = (k: string, d: number): number => {
  const v = Number(process.env[k] ?? d);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number, got ${process.env[k]}`);
  return v;
};
const REPS = env('REPS', 3);
const SECS = env('SECS', 10);
const CONNS = env('CONNS', 50);
const RATE = env('RATE', 1_000);
/** Seconds of each constant-rate round (one per rep and path). */
const RATE_SECS = env('RATE_SECS', 5);
/**
 * Constant-rate rounds a path: more than REPS, because the machine's stalls move each round's p99
 * by milliseconds. With 5, one run put one hop's added p99 1.8 ms above HAProxy's, while ten rounds
 * by hand the same hour put them level; 8 costs two minutes more.
 */
const RATE_REPS = env('RATE_REPS', 8);
/**
 * Whether the constant-rate rounds run the stall watch. Off by default: each watcher wakes 1,000
 * times a second at real-time priority and preempts whatever runs on its CPU. On this VM a wake-up
 * costs ~50 µs of CPU (4.7% of each CPU in all, measured under load), and interleaved rounds with
 * and without it gave the HAProxy pair's p50 +0.05 and +0.13 ms and its median per-second p99 +0.4
 * and +0.5 ms: more than the differences the rounds are there to show. Turn it on to tell a
 * machine's stall from a proxy's pause, not to take the figures.
 */
const STALL_WATCH = ((v: string): boolean => {
  if (v !== '0' && v !== '1') throw new Error(`STALL_WATCH must be 0 or 1, got ${v}`);
  return v === '1';
})(process.env.STALL_WATCH ?? '0');
const STALL_WATCH_NOTE =
  'the watch preempts each CPU 1,000 times a second and adds to the p99 it sits beside';
/** The stall watch of a round covers its warm-up second, its measured seconds and this much more. */
const WATCH_MARGIN_SECS = 1.5;
if (1 + RATE_SECS + WATCH_MARGIN_SECS > WATCH_SECS_MAX)
  throw new Error(`RATE_SECS must be at most ${WATCH_SECS_MAX - 1 - WATCH_MARGIN_SECS}, got ${RATE_SECS}`);
const READY_WAIT_MS = 60_000;

interface Target {
  name: string;
  port: number;
  /** Processes whose CPU and RSS are the cost of this path. */
  pids: Array<{ label: string; pid: number }>;
  /** The agents on the path, whose proxy threads' pauses are read from their metrics. */
  agents?: AgentProc[];
}

interface Row {
  wrk: WrkResult[];
  cost: Array<Map<string, { cpuCores: number; rssMiB: number }>>;
  rate: RateResult[];
  /** Per constant-rate round: the share of all CPU time the hypervisor stole, %. */
  stealPct: number[];
  /** Per constant-rate round: the machine's stalls during its measured seconds, a second (stall.ts); NaN if not watched. */
  stallsPerSec: number[];
  /** Per constant-rate round: the longest of those stalls, ms; NaN if not watched. */
  stallLargestMs: number[];
}

async function api(a: AgentProc, method: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${a.httpPort}${path}`, {
    method,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  if (!res.ok) throw new Error(`${method} ${path} on ${a.name}: HTTP ${res.status} ${await res.text()}`);
}

async function answersOk(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) });
    return res.status === 200 && (await res.text()) === 'ok';
  } catch {
    return false;
  }
}

function startUpstream(port: number): ChildProcess {
  const code = `require('http').createServer((q,s)=>{s.end('ok')}).listen(${port},'127.0.0.1')`;
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

/** Two agents: B hosts the upstream and a caller of it (one hop), A a caller across the mesh. */
async function startMesh(
  cluster: LocalCluster,
  upstreamPort: number,
): Promise<{ hop: number; mesh: number }> {
  const a = await cluster.add(['--bootstrap']);
  const b = await cluster.add();
  for (const x of [a, b]) await cluster.ready(x, 20_000);
  if (!(await waitFor(() => cluster.allSeeAlive(2), 20_000, 100))) throw new Error('agents did not meet');
  const hop = await freePort();
  const mesh = await freePort();
  await api(b, 'PUT', '/v1/agent/service/register', {
    name: 'upstream',
    port: upstreamPort,
    protocol: 'http',
  });
  const callers: Array<[AgentProc, string, number]> = [
    [b, 'caller-local', hop],
    [a, 'caller', mesh],
  ];
  for (const [agent, name, localPort] of callers) {
    await api(agent, 'PUT', '/v1/agent/service/register', {
      name,
      port: await freePort(),
      protocol: 'http',
      upstreams: [{ service: 'upstream', localPort }],
    });
  }
  await waitFor(
    async () => {
      try {
        await api(a, 'PUT', '/v1/config', { kind: 'service-defaults', name: 'upstream', protocol: 'http' });
        return true;
      } catch {
        return false;
      }
    },
    READY_WAIT_MS,
    250,
  );
  for (const port of [hop, mesh]) {
    if (!(await waitFor(() => answersOk(port), READY_WAIT_MS, 250)))
      throw new Error(`the mesh did not answer on 127.0.0.1:${port} within ${READY_WAIT_MS / 1_000} s`);
  }
  return { hop, mesh };
}

const pidOf = (a: AgentProc | undefined): number => {
  const pid = a?.proc?.pid;
  if (pid === undefined) throw new Error('agent not running');
  return pid;
};

async function measure(targets: Target[]): Promise<{ rows: Map<string, Row>; watches: StallWatch[] }> {
  const rows = new Map<string, Row>(
    targets.map((t) => [
      t.name,
      { wrk: [], cost: [], rate: [], stealPct: [], stallsPerSec: [], stallLargestMs: [] },
    ]),
  );
  for (let rep = 1; rep <= REPS; rep++) {
    for (const t of targets) {
      const meters = t.pids.map((p) => [p.label, meter(p.pid)] as const);
      const r = await runWrk(`http://127.0.0.1:${t.port}/`, { threads: 1, conns: CONNS, secs: SECS });
      const row = rows.get(t.name) as Row;
      row.wrk.push(r);
      row.cost.push(new Map(meters.map(([label, m]) => [label, m.stop()])));
      console.log(
        `rep=${rep} ${t.name.padEnd(10)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms${r.errors.length > 0 ? `  ERRORS: ${r.errors.join('; ')}` : ''}`,
      );
      await sleep(1_000);
    }
  }
  // The constant-rate runs interleave too, a round at a time: one stalled second of the machine
  // then lands in one path's round, and the median of rounds leaves it out. The CPU time stolen
  // during each round (and with STALL_WATCH the machine's own stalls) says how much of its p99 the
  // round could show.
  const watches: StallWatch[] = [];
  for (let rep = 1; rep <= RATE_REPS; rep++) {
    for (const t of targets) {
      // Started before the generator, whose first request is due 50 ms after it starts and whose
      // measured seconds follow 1 s of warm-up; a watch that fails leaves the round unwatched.
      const watching = STALL_WATCH
        ? watchStalls(1 + RATE_SECS + WATCH_MARGIN_SECS).catch((err: Error) => err)
        : undefined;
      if (watching) await sleep(100);
      const pauses = await proxyPauses(t.agents ?? []);
      const ticks0 = cpuTicks(readFileSync('/proc/stat', 'utf8'));
      const r = await constantRate(t.port, { rate: RATE, secs: RATE_SECS, conns: CONNS, warmupSecs: 1 });
      const ticks1 = cpuTicks(readFileSync('/proc/stat', 'utf8'));
      const stealPct = (100 * (ticks1.steal - ticks0.steal)) / Math.max(1, ticks1.total - ticks0.total);
      const watch = await watching;
      const row = rows.get(t.name) as Row;
      row.rate.push(r);
      row.stealPct.push(stealPct);
      let machine: string;
      if (watch === undefined) {
        row.stallsPerSec.push(Number.NaN);
        row.stallLargestMs.push(Number.NaN);
        machine = '';
      } else if (watch instanceof Error) {
        row.stallsPerSec.push(Number.NaN);
        row.stallLargestMs.push(Number.NaN);
        machine = `not watched (${watch.message})`;
      } else {
        watches.push(watch);
        const from = r.measuredFromEpochMs;
        const st = stallSummary(watch, from, from + RATE_SECS * 1_000);
        row.stallsPerSec.push(st.perSec);
        row.stallLargestMs.push(st.largestMs);
        machine = `${st.perSec.toFixed(1)} stalls ≥ ${STALL_MS} ms a second (${st.msPerSec.toFixed(1)} ms/s), largest ${st.largestMs.toFixed(1)} ms`;
      }
      const agentsSaid = (t.agents ?? []).length > 0 ? `  | proxy threads: ${await pauses.done()}` : '';
      console.log(
        `rep=${rep} rate=${RATE}/s ${t.name.padEnd(10)} p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  failed ${r.failed}/${r.sent}  p99 by second ${r.p99MsBySecond.map((v) => v.toFixed(1)).join(' ')}  | machine: ${machine}${machine ? ', ' : ''}steal ${stealPct.toFixed(1)}%${agentsSaid}`,
      );
      await sleep(1_000);
    }
  }
  return { rows, watches };
}

function report(targets: Target[], rows: Map<string, Row>, watches: readonly StallWatch[]): void {
  // Per path, the median over rounds of each round's p99, and of each second's p99.
  const p99Of = (name: string): number => median(rows.get(name)?.rate.map((r) => r.p99Ms) ?? []);
  const p99BySecondOf = (name: string): number =>
    median(rows.get(name)?.rate.flatMap((r) => r.p99MsBySecond) ?? []);
  // The CPU time stolen, and with the watch the machine's stalls a second, during the path's rounds
  // (median): a path whose rounds met more of them shows a higher p99 for it.
  const stealOf = (name: string): number => median(rows.get(name)?.stealPct ?? []);
  const stallsOf = (name: string): number => median(rows.get(name)?.stallsPerSec ?? []);
  const watched = watches.length > 0;
  const f = (v: number | undefined, digits = 2): string =>
    v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits);
  console.log(
    `\n${'path'.padEnd(11)}${'req/s'.padStart(8)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}` +
      `${`p99@${RATE}/s`.padStart(12)}${'added p99'.padStart(11)}${'(per s)'.padStart(9)}${'steal %'.padStart(9)}${watched ? 'stalls/s'.padStart(10) : ''}   cpu (cores) and RSS (MiB) per process`,
  );
  const result: string[] = [];
  for (const t of targets) {
    const row = rows.get(t.name) as Row;
    const rps = median(row.wrk.map((w) => w.rps));
    const p50 = median(row.wrk.map((w) => w.p50Ms));
    const p99 = median(row.wrk.map((w) => w.p99Ms));
    const added = p99Of(t.name) - p99Of('direct');
    // The same difference between the medians of each second's p99: one stalled second of either
    // path moves the whole-run p99 by milliseconds, and this not at all.
    const addedPerSecond = p99BySecondOf(t.name) - p99BySecondOf('direct');
    const costs = t.pids.map((p) => {
      const cpu = median(row.cost.map((c) => c.get(p.label)?.cpuCores ?? Number.NaN));
      const rss = median(row.cost.map((c) => c.get(p.label)?.rssMiB ?? Number.NaN));
      result.push(`${t.name}_${p.label}_cpu=${f(cpu)} ${t.name}_${p.label}_rss_mib=${f(rss, 0)}`);
      return `${p.label} ${f(cpu)} / ${f(rss, 0)}`;
    });
    console.log(
      `${t.name.padEnd(11)}${f(rps, 0).padStart(8)}${f(p50).padStart(8)}${f(p99).padStart(8)}` +
        `${f(p99Of(t.name)).padStart(12)}${(t.name === 'direct' ? '' : f(added)).padStart(11)}` +
        `${(t.name === 'direct' ? '' : f(addedPerSecond)).padStart(9)}` +
        `${f(stealOf(t.name), 1).padStart(9)}${watched ? f(stallsOf(t.name), 1).padStart(10) : ''}   ${costs.join(', ')}`,
    );
    result.push(`${t.name}_rps=${f(rps, 0)} ${t.name}_p50_ms=${f(p50)} ${t.name}_p99_ms=${f(p99)}`);
    if (t.name !== 'direct')
      result.push(`${t.name}_added_p99_ms=${f(added)} ${t.name}_added_p99_by_second_ms=${f(addedPerSecond)}`);
    result.push(`${t.name}_steal_pct=${f(stealOf(t.name), 1)}`);
    if (watched) result.push(`${t.name}_machine_stalls_per_s=${f(stallsOf(t.name), 1)}`);
  }
  const rpsOf = (name: string): number[] => rows.get(name)?.wrk.map((w) => w.rps) ?? [];
  const ratio = (a: string, b: string): string => f(median(rpsOf(a)) / median(rpsOf(b)));
  // The same ratio taken within each round, then the median: the two paths of one round ran a few
  // seconds apart, while the machine's speed drifts over minutes (shared VM), so this one moves
  // less with the drift than the ratio of the medians.
  const pairedRatio = (a: string, b: string): string => {
    const [x, y] = [rpsOf(a), rpsOf(b)];
    return f(median(x.map((v, i) => v / (y[i] as number))));
  };
  if (rows.has('haproxy')) {
    console.log('');
    for (const [label, a, b, key] of [
      ['one hop / haproxy', 'one-hop', 'haproxy', 'one_hop_vs_haproxy'],
      ['mesh path / haproxy TLS pair', 'mesh', 'haproxy×2', 'mesh_vs_haproxy_pair'],
    ] as const) {
      console.log(`${label} req/s: ${ratio(a, b)}, per round ${pairedRatio(a, b)} (target ≥ 0.80)`);
      result.push(`${key}=${ratio(a, b)} ${key}_per_round=${pairedRatio(a, b)}`);
    }
  }
  console.log(`added p99 at ${RATE}/s target: ≤ 1 ms`);
  console.log(
    `steal %: the share of all CPU time the hypervisor stole during each path's rounds (median); a stolen CPU delays every request in flight on it`,
  );
  if (watched) {
    const stalls = [...rows.values()].flatMap((r) => r.stallsPerSec).filter((x) => !Number.isNaN(x));
    const largest = [...rows.values()].flatMap((r) => r.stallLargestMs).filter((x) => !Number.isNaN(x));
    console.log(`machine stalls in the measured seconds ${watchesSummary(watches, stalls, largest)}`);
    console.log(
      `stalls/s: stalls ≥ ${STALL_MS} ms a second, both CPUs together, during each path's rounds (median); at ${RATE} req/s the p99 is each second's ${RATE / 100} worst requests, and a stall delays every request in flight on its CPU; ${STALL_WATCH_NOTE}`,
    );
    result.push(`machine_stalls_per_s=${f(median(stalls), 1)}`);
  } else if (STALL_WATCH) console.log('machine stalls: every watch failed (see the rounds above)');
  else console.log(`machine stalls: not watched (STALL_WATCH=1 watches them; ${STALL_WATCH_NOTE})`);
  console.log(`result ${result.join(' ')}`);
}

async function main(): Promise<void> {
  const tools = ensureTools(['wrk', 'haproxy']);
  if (!tools.wrk) throw new Error('wrk is not installed (apt-get install wrk)');
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  console.log(
    `bench:proxy  commit ${commit}  node ${process.version}  wrk -t1 -c${CONNS} -d${SECS}s  reps ${REPS}  rate ${RATE}/s × ${RATE_SECS} s × ${RATE_REPS}` +
      `${tools.haproxy ? '' : '  (haproxy not installed: its rows are skipped)'}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'mesh-bench-proxy-'));
  const cluster = new LocalCluster({ logLevel: 'info' });
  const upstreamPort = await freePort();
  const upstream = startUpstream(upstreamPort);
  let haproxy: HaproxyPair | undefined;
  // The watchdog exits without the finally below: the processes started here go with it, by PID.
  process.on('exit', () => {
    for (const pid of [upstream.pid, haproxy?.frontPid, haproxy?.backPid]) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  try {
    if (!(await waitFor(() => answersOk(upstreamPort), 10_000, 50)))
      throw new Error('upstream did not start');
    const { hop, mesh } = await startMesh(cluster, upstreamPort);
    const [a, b] = cluster.agents;
    const targets: Target[] = [
      { name: 'direct', port: upstreamPort, pids: [] },
      { name: 'one-hop', port: hop, pids: [{ label: 'agent', pid: pidOf(b) }], agents: b ? [b] : [] },
      {
        name: 'mesh',
        port: mesh,
        agents: a && b ? [a, b] : [],
        pids: [
          { label: 'agentA', pid: pidOf(a) },
          { label: 'agentB', pid: pidOf(b) },
        ],
      },
    ];
    if (tools.haproxy) {
      const ports = {
        upstream: upstreamPort,
        http: await freePort(),
        pair: await freePort(),
        inner: await freePort(),
      };
      haproxy = await startHaproxy(dir, ports);
      for (const port of [ports.http, ports.pair]) {
        if (!(await waitFor(() => answersOk(port), 10_000, 50)))
          throw new Error(`haproxy on ${port} not answering`);
      }
      targets.push(
        { name: 'haproxy', port: ports.http, pids: [{ label: 'haproxy', pid: haproxy.frontPid }] },
        {
          name: 'haproxy×2',
          port: ports.pair,
          pids: [
            { label: 'front', pid: haproxy.frontPid },
            { label: 'back', pid: haproxy.backPid },
          ],
        },
      );
    }
    // Each path runs right before the HAProxy setup it is compared with, so the two runs of a
    // pair are seconds apart within a round; the table keeps the order above.
    const runOrder = ['direct', 'one-hop', 'haproxy', 'mesh', 'haproxy×2'].flatMap((n) =>
      targets.filter((t) => t.name === n),
    );
    // Counted before the runs: the readiness probes above may have met a 503 before the mesh answered.
    const before = await Promise.all(
      cluster.agents.map((a) => nonOkAnswers(a).catch(() => new Map<string, number>())),
    );
    const { rows, watches } = await measure(runOrder);
    report(targets, rows, watches);
    await printTrouble(cluster.agents, before);
  } finally {
    await haproxy?.stop();
    await cluster.stop();
    upstream.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

const watchdog = setTimeout(() => {
  console.error('bench:proxy: still running after 20 min; giving up');
  process.exit(1);
}, 20 * 60_000);
watchdog.unref();
main().catch((err) => {
  console.error(`bench:proxy failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
