// Real multi-process clusters on 127.0.0.1: start N agent processes with distinct ports and data
// dirs, observe them, and inject faults (kill -9, SIGSTOP/SIGCONT, restart, leave). Used by the
// integration tests and the benchmarks. Every wait is bounded; only processes started here are
// ever signalled, by PID.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/cluster-sim/launcher.js → dist/mesh.mjs: the bundled CLI, as shipped (starts in ~0.3 s instead of ~0.7 s). */
export const MESH_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'mesh.mjs');

export interface StatusLine {
  /** performance.now() when the line arrived. */
  atMs: number;
  member: string;
  status: string;
}

export interface AgentProc {
  name: string;
  index: number;
  clusterPort: number;
  httpPort: number;
  dataDir: string;
  proc: ChildProcess | undefined;
  /** Last known status of each member as logged by this agent ("member status changed"). */
  view: Map<string, StatusLine>;
  exited: Promise<number | null>;
  /** performance.now() when this agent logged that it joined the cluster (undefined until then). */
  joinedAtMs: number | undefined;
  /** Whole stdout+stderr, for diagnostics when a test fails. */
  output: string[];
  extraArgs: string[];
}

export interface ClusterOptions {
  /** Extra flags for every agent. */
  args?: string[];
  /** Keep data dirs after stop (debugging). */
  keep?: boolean;
  /** Log level passed to agents (status lines are logged at info). */
  logLevel?: string;
  /** Capture at most this many output lines per agent. */
  outputLinesMax?: number;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

// Ports come from below the kernel's ephemeral range (32768+ by default): agents dial each other
// over loopback, and an ephemeral source port could otherwise take a port before its agent binds.
// Each process starts at a random offset and walks upward, so parallel runs rarely collide.
const PORT_LOW = 20_000;
const PORT_HIGH = 32_000;
let nextPort = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW));

/** A port on 127.0.0.1 that is free now and outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 1_000; tries++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= PORT_HIGH ? PORT_LOW : nextPort + 1;
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port between ${PORT_LOW} and ${PORT_HIGH}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `pred` every `everyMs` until true or `timeoutMs` passes; returns whether it became true. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await pred()) return true;
    await sleep(everyMs);
  }
  return pred();
}

/** Every agent process started by any LocalCluster in this process, killed if we exit first. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of liveChildren) if (p.pid && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
});

/** The last few lines an agent printed, indented, to explain why it failed. */
export const tail = (a: AgentProc, lines = 10): string =>
  a.output
    .slice(-lines)
    .map((l) => `    ${l}`)
    .join('\n');

export function isRunning(a: AgentProc): boolean {
  return a.proc !== undefined && a.proc.exitCode === null && a.proc.signalCode === null;
}

export function describeExit(a: AgentProc): string {
  if (a.proc?.exitCode !== null && a.proc?.exitCode !== undefined) return String(a.proc.exitCode);
  return a.proc?.signalCode ?? 'unknown';
}

/** Resolves true once the agent's process has exited, false after `timeoutMs`. */
export async function exitWithin(a: AgentProc, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), timeoutMs);
  });
  const done = await Promise.race([a.exited.then(() => true as const), timedOut]);
  clearTimeout(timer);
  return done;
}

export class LocalCluster {
  readonly agents: AgentProc[] = [];
  readonly root: string;

  constructor(private readonly opts: ClusterOptions = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'mesh-cluster-'));
  }

  /** Start agent number `index` (names n01, n02, …); joins the first agent unless it is the first. */
  async add(extraArgs: string[] = [], name?: string): Promise<AgentProc> {
    const index = this.agents.length + 1;
    const a: AgentProc = {
      name: name ?? `n${String(index).padStart(2, '0')}`,
      index,
      clusterPort: await freePort(),
      httpPort: await freePort(),
      dataDir: join(this.root, `agent-${index}`),
      proc: undefined,
      view: new Map(),
      exited: Promise.resolve(null),
      output: [],
      joinedAtMs: undefined,
      extraArgs,
    };
    this.agents.push(a);
    this.spawn(a);
    return a;
  }

  /** Seed address of the first agent. */
  get seed(): string {
    const first = this.agents[0];
    if (!first) throw new Error('no agents yet');
    return `127.0.0.1:${first.clusterPort}`;
  }

  args(a: AgentProc): string[] {
    const args = [
      'agent',
      '--node-name',
      a.name,
      '--data-dir',
      a.dataDir,
      '--bind',
      `127.0.0.1:${a.clusterPort}`,
      '--http',
      `127.0.0.1:${a.httpPort}`,
      '--log-level',
      this.opts.logLevel ?? 'info',
      ...(this.opts.args ?? []),
      ...a.extraArgs,
    ];
    if (a.index > 1 && !a.extraArgs.includes('--join')) args.push('--join', this.seed);
    // Many agents share this host: each DNS server takes a free port (GET /v1/agent/self shows it).
    if (!args.includes('--dns')) args.push('--dns', '127.0.0.1:0');
    // …and each proxy's inbound listener too (the agent gossips the port it got).
    if (!args.includes('--inbound')) args.push('--inbound', '127.0.0.1:0');
    return args;
  }

  spawn(a: AgentProc): void {
    // Executed directly, as an operator runs it, so the flags in its #! line apply.
    const proc = spawn(MESH_BIN, this.args(a), { stdio: ['ignore', 'pipe', 'pipe'] });
    a.proc = proc;
    liveChildren.add(proc);
    a.exited = new Promise((resolve) =>
      proc.on('exit', (code) => {
        liveChildren.delete(proc);
        resolve(code);
      }),
    );
    const linesMax = this.opts.outputLinesMax ?? 2_000;
    let buf = '';
    const onData = (d: Buffer): void => {
      const atMs = performance.now();
      buf += d.toString();
      let k = buf.indexOf('\n');
      while (k >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 1);
        if (a.output.length < linesMax) a.output.push(line);
        if (line.includes('"joined the cluster"')) a.joinedAtMs = atMs;
        if (line.includes('"member status changed"')) {
          try {
            const j = JSON.parse(line) as { member: string; status: string };
            a.view.set(j.member, { atMs, member: j.member, status: j.status });
          } catch {
            // not JSON: ignore
          }
        }
        k = buf.indexOf('\n');
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
  }

  running(): AgentProc[] {
    return this.agents.filter((a) => a.proc && a.proc.exitCode === null && a.proc.signalCode === null);
  }

  /** Members as this agent's HTTP API reports them. */
  async members(a: AgentProc): Promise<Array<{ name: string; status: string; incarnation: number }>> {
    const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/members`, {
      signal: AbortSignal.timeout(2_000),
    });
    if (!res.ok) throw new Error(`members: HTTP ${res.status}`);
    return (await res.json()) as Array<{ name: string; status: string; incarnation: number }>;
  }

  async ready(a: AgentProc, timeoutMs = 15_000): Promise<void> {
    const ok = await waitFor(
      async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/self`, {
            signal: AbortSignal.timeout(1_000),
          });
          return res.ok;
        } catch {
          return false;
        }
      },
      timeoutMs,
      50,
    );
    if (!ok)
      throw new Error(`agent ${a.name} not ready in ${timeoutMs} ms:\n${a.output.slice(-20).join('\n')}`);
  }

  /** True when every running agent (via HTTP) sees `name` with `status`. */
  async allSee(name: string, status: string, among: AgentProc[] = this.running()): Promise<boolean> {
    for (const a of among) {
      try {
        const ms = await this.members(a);
        if (ms.find((m) => m.name === name)?.status !== status) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  /** True when every running agent lists exactly `n` alive members. */
  async allSeeAlive(n: number, among: AgentProc[] = this.running()): Promise<boolean> {
    for (const a of among) {
      try {
        const ms = await this.members(a);
        if (ms.filter((m) => m.status === 'alive').length !== n) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  kill(a: AgentProc, signal: NodeJS.Signals = 'SIGKILL'): void {
    if (a.proc?.pid && a.proc.exitCode === null) process.kill(a.proc.pid, signal);
  }

  async restart(a: AgentProc): Promise<void> {
    await a.exited;
    a.view = new Map();
    a.joinedAtMs = undefined;
    this.spawn(a);
  }

  async stop(): Promise<void> {
    for (const a of this.running()) this.kill(a, 'SIGKILL');
    await Promise.all(this.agents.map((a) => Promise.race([a.exited, sleep(5_000)])));
    if (!this.opts.keep) rmSync(this.root, { recursive: true, force: true });
  }
}
