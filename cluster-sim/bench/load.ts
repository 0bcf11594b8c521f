// Load and process meters for the proxy benchmark: wrk (closed loop, the anchor's tool; the
// constant-rate generator is rate.ts). Every run is bounded in time and count; every process is
// measured through /proc by the PID we started.
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** wrk's lines that report socket errors or non-2xx answers, as it printed them (trimmed). */
  errors: string[];
  /** wrk's own summary, kept for the verbose log. */
  raw: string;
}

/** wrk prints durations as 812.00us / 1.23ms / 1.01s. */
export function wrkMs(v: string | undefined): number {
  if (v === undefined) return Number.NaN;
  const n = Number.parseFloat(v);
  if (v.endsWith('us')) return n / 1_000;
  if (v.endsWith('ms')) return n;
  if (v.endsWith('s')) return n * 1_000;
  return Number.NaN;
}

export function parseWrk(out: string): Omit<WrkResult, 'raw'> {
  const field = (label: string): string | undefined =>
    out
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((parts) => parts[0] === label)?.[1];
  return {
    rps: Number.parseFloat(field('Requests/sec:') ?? 'NaN'),
    p50Ms: wrkMs(field('50%')),
    p99Ms: wrkMs(field('99%')),
    errors: out
      .split('\n')
      .filter((l) => /Non-2xx|Socket errors/.test(l))
      .map((l) => l.trim()),
  };
}

/** One wrk run against `url`: `wrk -t<threads> -c<conns> -d<secs>s --latency`. */
export function runWrk(url: string, o: { threads: number; conns: number; secs: number }): Promise<WrkResult> {
  const args = [`-t${o.threads}`, `-c${o.conns}`, `-d${o.secs}s`, '--latency', url];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (o.secs + 30) * 1_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`wrk ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve({ ...parseWrk(stdout), raw: stdout });
    });
  });
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k] as number;
}

/** CPU seconds (user + system, all threads) a process has used; from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may itself hold spaces: it ends at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / CLOCK_TICKS_PER_SECOND;
}

const CLOCK_TICKS_PER_SECOND = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** Resident set size in MiB; from /proc/<pid>/status. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Starts measuring a process; `stop()` gives its CPU use over the interval (1.0 = one core) and RSS now. */
export function meter(pid: number): { stop(): { cpuCores: number; rssMiB: number } } {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  return {
    stop: () => ({
      cpuCores: (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1_000),
      rssMiB: rssMiB(pid),
    }),
  };
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(xs: readonly number[]): number {
  const s = [...xs].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
