// The stall watcher's loop (stall.ts starts one process of it per CPU): sleep 1 ms at a time and
// note each wake-up that came late. Run as a script it takes its arguments from argv and prints
// one JSON line; the loop itself takes its clock and its sleep as arguments, so a test can script
// both.
import { pathToFileURL } from 'node:url';

/** A late wake-up: due at `atMs` (ms since the epoch), it came `lateMs` after that. */
export interface LateWake {
  atMs: number;
  lateMs: number;
}

export interface WatchReport {
  /** Wake-ups asked for. */
  wakes: number;
  /** Wake-ups `minMs` or more late, in order, at most `cap`. */
  late: LateWake[];
  /** Late wake-ups past `cap`, not kept. */
  dropped: number;
}

export interface WatchLoop {
  secs: number;
  /** Note wake-ups this late or later, ms. */
  minMs: number;
  /** Keep at most this many notes. */
  cap: number;
  /** ms since the epoch when `now()` read 0. */
  originMs: number;
  now: () => number;
  /** Sleeps `ms`. */
  sleep: (ms: number) => void;
}

/** Sleeps 1 ms at a time for `secs` and notes the late wake-ups. */
export function watchLoop(o: WatchLoop): WatchReport {
  const endMs = o.now() + o.secs * 1_000;
  const late: LateWake[] = [];
  let wakes = 0;
  let dropped = 0;
  let t = o.now();
  // Bounded: each pass sleeps 1 ms, so at most secs × 1,000 passes (fewer when wake-ups are late).
  for (let pass = 0; t < endMs && pass < o.secs * 1_000 + 1; pass++) {
    o.sleep(1);
    const n = o.now();
    const lateMs = n - t - 1;
    wakes++;
    if (lateMs >= o.minMs) {
      if (late.length < o.cap) late.push({ atMs: o.originMs + t + 1, lateMs });
      else dropped++;
    }
    t = n;
  }
  return { wakes, late, dropped };
}

/** The script: `node stall-watcher.js SECS MIN_MS CAP`. */
function main(): void {
  const [secs, minMs, cap] = process.argv.slice(2).map(Number);
  if (!(Number.isFinite(secs) && Number.isFinite(minMs) && Number.isFinite(cap)))
    throw new Error('usage: stall-watcher SECS MIN_MS CAP');
  // Atomics.wait: a futex with a timeout, woken by a high-resolution timer.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const report = watchLoop({
    secs: secs as number,
    minMs: minMs as number,
    cap: cap as number,
    originMs: performance.timeOrigin,
    now: () => performance.now(),
    sleep: (ms) => Atomics.wait(cell, 0, 0, ms),
  });
  process.stdout.write(JSON.stringify(report));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
