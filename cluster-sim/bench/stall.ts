// How late the machine itself runs a thread that asks to wake up: the floor under every latency
// tail the proxy benchmark reports, watched during its constant-rate rounds when STALL_WATCH=1.
//
// One small process per CPU (stall-watcher.ts; pinned with taskset, and at real-time priority with
// chrt, when the bench may) sleeps 1 ms at a time and notes each wake-up that came late. At
// real-time priority a wake-up runs ahead of every ordinary thread, the proxies under test
// included, so what still comes late is time the CPU itself did not run: interrupts, or the
// hypervisor running another guest's vCPU in place of ours. On a dedicated core that stays in the
// tens of microseconds. Without chrt (not root) the watcher runs at normal priority and busy
// threads of the machine can delay it too; the bench says which it was. A wake-up 1 ms or more
// late is a stall: every request in flight on that CPU is late by as much, whatever relays it. At
// 1,000 req/s the p99 is each second's ten worst requests, so a few stalls a second can set the
// p99 of every path, HAProxy's and the direct path's included. With the watch on, the bench prints
// the stalls beside each round, so that a reader can tell the machine's tail from the proxy's. It is
// off by default: each watcher preempts its CPU 1,000 times a second, which on the VM measured cost
// ~5% of each CPU and raised the p99 it sat beside (docs/benchmarks.md). cpuTicks, always used, reads
// the stolen CPU time instead, at no cost.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median } from './load.js';
import type { LateWake, WatchReport } from './stall-watcher.js';

export type { LateWake } from './stall-watcher.js';

/** A wake-up this late or later is noted (timer slack and a context switch stay well under it). */
const NOTE_MS_MIN = 0.25;
/** A wake-up this late or later is a stall: by itself it would break a 1 ms latency budget. */
export const STALL_MS = 1;
/** A watch lasts at most this long; its children are killed a little after it in any case. */
export const WATCH_SECS_MAX = 120;
/** Late wake-ups noted per CPU at most (a watch of WATCH_SECS_MAX at one a ms would be 120k); the rest are counted. */
const NOTES_PER_CPU_MAX = 20_000;
/** A watcher's error output kept for its error message, bytes at most. */
const STDERR_BYTES_MAX = 2_048;

export interface StallWatch {
  /** Wake-ups asked for, all CPUs. */
  wakes: number;
  /** Late wake-ups of NOTE_MS_MIN or more, all CPUs, in order of `atMs`. */
  late: LateWake[];
  /** Late wake-ups past NOTES_PER_CPU_MAX, not kept (their stalls are missing from the counts). */
  dropped: number;
  /** How many CPUs were watched; whether each watcher was pinned to its own and ran at real-time priority. */
  cpus: number;
  pinned: boolean;
  realtime: boolean;
}

const WATCHER_PATH = fileURLToPath(new URL('./stall-watcher.js', import.meta.url));

/** The CPUs this process may run on (its affinity), from /proc; undefined when it cannot tell. */
export function allowedCpus(status: string): number[] | undefined {
  const m = /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(status);
  if (m === null) return undefined;
  const cpus: number[] = [];
  for (const part of (m[1] as string).split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a) || (b !== undefined && !Number.isInteger(b)))
      return undefined;
    for (let c = a; c <= (b ?? a) && cpus.length < 1_024; c++) cpus.push(c);
  }
  return cpus.length > 0 ? cpus : undefined;
}

/** Whether `cmd args...` runs here (taskset installed; chrt allowed). */
const runs = (cmd: string, args: string[]): boolean =>
  spawnSync(cmd, args, { stdio: 'ignore', timeout: 5_000 }).status === 0;

function watchOne(prefix: string[], secs: number): Promise<WatchReport> {
  const args = [
    ...prefix,
    process.execPath,
    WATCHER_PATH,
    String(secs),
    String(NOTE_MS_MIN),
    String(NOTES_PER_CPU_MAX),
  ];
  const child = spawn(args[0] as string, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < STDERR_BYTES_MAX) err += d.toString('utf8').slice(0, STDERR_BYTES_MAX - err.length);
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), (secs + 10) * 1_000);
    child.on('error', (e) => {
      clearTimeout(killer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(killer);
      try {
        resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as WatchReport);
      } catch {
        reject(
          new Error(
            `stall watcher (${args.slice(0, -4).join(' ')}) exited ${code} without its report: ${err.trim()}`,
          ),
        );
      }
    });
  });
}

/** Watches every CPU this process may use for `secs` seconds from now. Start it before what it should cover. */
export async function watchStalls(secs: number): Promise<StallWatch> {
  if (!(secs > 0 && secs <= WATCH_SECS_MAX))
    throw new Error(`stall watch: secs must be in (0, ${WATCH_SECS_MAX}], got ${secs}`);
  const cpus = allowedCpus(readFileSync('/proc/self/status', 'utf8')) ?? [0];
  const pinned = runs('taskset', ['-c', String(cpus[0]), 'true']);
  const realtime = runs('chrt', ['-f', '1', 'true']);
  const each = await Promise.all(
    cpus.map((cpu) =>
      watchOne(
        [...(realtime ? ['chrt', '-f', '1'] : []), ...(pinned ? ['taskset', '-c', String(cpu)] : [])],
        secs,
      ),
    ),
  );
  return {
    wakes: each.reduce((n, w) => n + w.wakes, 0),
    late: each.flatMap((w) => w.late).sort((a, b) => a.atMs - b.atMs),
    dropped: each.reduce((n, w) => n + w.dropped, 0),
    cpus: cpus.length,
    pinned,
    realtime,
  };
}

/**
 * The stalls of a watch due within [fromMs, toMs) (ms since the epoch): how many a second, the
 * time they took (all CPUs, ms a second), the longest.
 */
export function stallSummary(
  w: Pick<StallWatch, 'late'>,
  fromMs: number,
  toMs: number,
): { perSec: number; msPerSec: number; largestMs: number } {
  const secs = (toMs - fromMs) / 1_000;
  if (!(secs > 0)) throw new Error(`stall summary: empty window ${fromMs}..${toMs}`);
  const stalls = w.late.filter((l) => l.lateMs >= STALL_MS && l.atMs >= fromMs && l.atMs < toMs);
  return {
    perSec: stalls.length / secs,
    msPerSec: stalls.reduce((ms, l) => ms + l.lateMs, 0) / secs,
    largestMs: stalls.reduce((m, l) => Math.max(m, l.lateMs), 0),
  };
}

/**
 * How a run's watches ran and what they saw, for its closing lines: the stalls a second of each
 * watched round (median and range) and the longest stall of each.
 */
export function watchesSummary(
  watches: readonly StallWatch[],
  stallsPerSec: readonly number[],
  largestMs: readonly number[],
): string {
  const [w0] = watches;
  if (w0 === undefined || stallsPerSec.length === 0) return '(no round was watched)';
  const sorted = [...stallsPerSec].sort((a, b) => a - b);
  const dropped = watches.reduce((n, w) => n + w.dropped, 0);
  const how = `a 1 ms sleeper on each of ${w0.cpus} CPUs, ${w0.pinned ? 'pinned' : 'not pinned'}, ${w0.realtime ? 'at real-time priority' : 'at normal priority: busy threads can delay it too'}`;
  return (
    `(${how}): median ${median(stallsPerSec).toFixed(1)} a second over rounds, ` +
    `range ${(sorted[0] as number).toFixed(1)}–${(sorted[sorted.length - 1] as number).toFixed(1)}, ` +
    `largest ${Math.max(0, ...largestMs).toFixed(1)} ms${dropped > 0 ? `; ${dropped} late wake-ups past the cap not counted` : ''}`
  );
}

/** The machine's CPU time so far, all CPUs, in clock ticks: in all, and stolen by the hypervisor (from /proc/stat). */
export function cpuTicks(stat: string): { total: number; steal: number } {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  const v = (line ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = v.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return { total, steal: Number.isFinite(v[7]) ? (v[7] as number) : 0 };
}
