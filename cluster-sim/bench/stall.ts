// How late the machine itself runs a thread that asks to wake up: the floor under every latency
// tail the proxy benchmark reports, watched during each constant-rate round.
//
// One small process per CPU (pinned with taskset when it is installed) sleeps 1 ms at a time
// (Atomics.wait: a futex with a timeout, woken by a high-resolution timer) and notes each wake-up
// that came late. A sleeper that has just woken is scheduled ahead of busy threads, so on a
// dedicated core it is late by tens of microseconds, whatever the proxies under test are doing.
// On a shared VM the hypervisor takes the whole vCPU away for milliseconds at a time: every
// request in flight on it then is late by as much, whatever program relays it. At 1,000 req/s the
// p99 is each second's ten worst requests, so a few such stalls a second set the p99 of every
// path, HAProxy's and the direct path's included. The bench prints the watch beside each round, so
// that a reader can tell the machine's tail from the proxy's.
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/** A wake-up this late or later is noted (timer slack and a context switch stay well under it). */
export const NOTE_MS_MIN = 0.25;
/** A wake-up this late or later is a stall: by itself it would break a 1 ms latency budget. */
export const STALL_MS = 1;
/** A watch lasts at most this long; its children are killed a little after it in any case. */
export const WATCH_SECS_MAX = 120;
/** Late wake-ups noted per CPU at most (a watch of WATCH_SECS_MAX at one a ms would be 120k). */
export const NOTES_PER_CPU_MAX = 20_000;

/** A late wake-up: due at `atMs` (ms since the epoch), it came `lateMs` after that. */
export interface LateWake {
  atMs: number;
  lateMs: number;
}

export interface StallWatch {
  /** Wake-ups asked for, all CPUs. */
  wakes: number;
  /** Late wake-ups of NOTE_MS_MIN or more, all CPUs, in order of `atMs`. */
  late: LateWake[];
  /** How many CPUs were watched, and whether each watcher was pinned to its own. */
  cpus: number;
  pinned: boolean;
}

// The watcher: plain JavaScript run by `node -e`, so it starts in ~40 ms with no imports.
// argv: seconds, the noting threshold (ms), the cap on notes. Prints one JSON line at the end.
const WATCHER = `
const [secs, minMs, cap] = process.argv.slice(1).map(Number);
const cell = new Int32Array(new SharedArrayBuffer(4));
const origin = performance.timeOrigin;
const endMs = performance.now() + secs * 1000;
const late = [];
let wakes = 0;
let t = performance.now();
while (t < endMs) {
  Atomics.wait(cell, 0, 0, 1);
  const n = performance.now();
  const lateMs = n - t - 1;
  wakes++;
  if (lateMs >= minMs && late.length < cap) late.push([origin + t + 1, lateMs]);
  t = n;
}
process.stdout.write(JSON.stringify({ wakes, late }));
`;

const hasTaskset = (): boolean => spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;

function watchOne(cpu: number | undefined, secs: number): Promise<{ wakes: number; late: LateWake[] }> {
  const args = ['-e', WATCHER, String(secs), String(NOTE_MS_MIN), String(NOTES_PER_CPU_MAX)];
  const child =
    cpu === undefined
      ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] })
      : spawn('taskset', ['-c', String(cpu), process.execPath, ...args], {
          stdio: ['ignore', 'pipe', 'ignore'],
        });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => chunks.push(d));
    const killer = setTimeout(() => child.kill('SIGKILL'), (secs + 10) * 1_000);
    child.on('error', (err) => {
      clearTimeout(killer);
      reject(err);
    });
    child.on('close', () => {
      clearTimeout(killer);
      try {
        const out = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { wakes: number; late: number[][] };
        resolve({ wakes: out.wakes, late: out.late.map(([atMs, lateMs]) => ({ atMs, lateMs }) as LateWake) });
      } catch {
        reject(new Error(`stall watcher on cpu ${cpu ?? 'any'} ended without its report`));
      }
    });
  });
}

/** Watches every CPU for `secs` seconds from now. Start it right before what it should cover. */
export async function watchStalls(secs: number): Promise<StallWatch> {
  if (!(secs > 0 && secs <= WATCH_SECS_MAX))
    throw new Error(`stall watch: secs must be in (0, ${WATCH_SECS_MAX}], got ${secs}`);
  const cpus = availableParallelism();
  const pinned = hasTaskset();
  const each = await Promise.all(
    Array.from({ length: cpus }, (_, cpu) => watchOne(pinned ? cpu : undefined, secs)),
  );
  return {
    wakes: each.reduce((n, w) => n + w.wakes, 0),
    late: each.flatMap((w) => w.late).sort((a, b) => a.atMs - b.atMs),
    cpus,
    pinned,
  };
}

/** The stalls of a watch: how many, the time they took (all CPUs), the longest. */
export function stallSummary(
  w: StallWatch,
  secs: number,
): { perSec: number; msPerSec: number; largestMs: number } {
  const stalls = w.late.filter((l) => l.lateMs >= STALL_MS);
  return {
    perSec: stalls.length / secs,
    msPerSec: stalls.reduce((ms, l) => ms + l.lateMs, 0) / secs,
    largestMs: stalls.reduce((m, l) => Math.max(m, l.lateMs), 0),
  };
}
