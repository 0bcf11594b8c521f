// The commands of `npm run cluster`: a ClusterSession owns a LocalCluster and turns lines such as
// "kill n03" or "wait alive 5" into signals, restarts and bounded polls of the agents' HTTP APIs.
// Every wait has a deadline; only agents this session started are signalled, by PID.
import { relative } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import type { MemberView } from '../src/api/types.js';
import { formatMembers } from '../src/cli/members.js';
import { formatTable } from '../src/cli/table.js';
import type { MemberStatus } from '../src/core/membership/types.js';
import { CommandError, type CommandSpec, int, type Outcome } from './command-spec.js';
import {
  type AgentProc,
  describeExit,
  exitWithin,
  isRunning,
  type LocalCluster,
  MESH_BIN,
  sleep,
  tail,
} from './launcher.js';

/** Agents one session may start in all (`--agents` plus `add`): each is a Node process of about
 * 80 MiB, and 30 is what bench:idle runs on one machine without false failures. */
export const agentsMax = 30;

/** Start-up of `count` agents at once: one starts in ~0.3 s, but many share the CPUs. */
export const readyTimeoutMs = (count: number): number => 20_000 + 1_500 * count;

/** `wait` gives up after this unless told otherwise: failure detection takes ~2–3 s and a voter
 * replacement ~5 s more, so 30 s means something is wrong, not slow. */
const waitTimeoutMsDefault = 30_000;
const waitTimeoutSMax = 600;
/** A graceful leave spends up to --leave-timeout (3 s by default) announcing, then shuts down. */
const leaveExitTimeoutMs = 10_000;
/** SIGKILL acts at once; this only bounds the wait for the exit event. */
const killExitTimeoutMs = 5_000;
/** Between two rounds of `wait`: about one gossip round, so a change is seen promptly. */
const pollIntervalMs = 200;
/** Agents answer on loopback in milliseconds; no answer in 1 s means stopped or stuck. */
const requestTimeoutMs = 1_000;
const sleepMsMax = 600_000;
const logLinesDefault = 20;
const logLinesMax = 1_000;
const memberStatuses: readonly MemberStatus[] = ['alive', 'suspect', 'failed', 'left'];

const seconds = (ms: number): string => `${(ms / 1_000).toFixed(1)} s`;

export class ClusterSession {
  /** Agents sent SIGSTOP and not yet SIGCONT: the process exists but cannot answer. */
  private readonly stopped = new Set<AgentProc>();
  /** The flags an agent was created with (`--bootstrap` for n01), before any --join list. */
  private readonly ownArgs = new Map<AgentProc, string[]>();
  private readonly commands = new Map<string, CommandSpec>();
  private readonly aliases = new Map<string, CommandSpec>();
  private closed: Promise<void> | undefined;

  constructor(
    readonly cluster: LocalCluster,
    private readonly print: (text: string) => void,
  ) {
    this.define();
  }

  /** Start `count` agents (the first with `firstArgs`), wait until each answers and all see each other alive. */
  async start(count: number, firstArgs: string[]): Promise<void> {
    if (!Number.isInteger(count) || count < 1 || count > agentsMax)
      throw new Error(`agents: expected 1 to ${agentsMax}, got ${count}`);
    // Every agent after the first joins n01 (LocalCluster's default seed) and retries until it answers.
    for (let i = 0; i < count; i++) {
      const own = i === 0 ? firstArgs : [];
      const a = await this.cluster.add([...own]);
      this.ownArgs.set(a, own);
    }
    const timeoutMs = readyTimeoutMs(count);
    for (const a of this.cluster.agents) await this.ready(a, timeoutMs);
    const r = await this.waitViews(
      this.cluster.agents,
      (ms) => ms.filter((m) => m.status === 'alive').length === count,
      timeoutMs,
    );
    if (!r.ok)
      throw new Error(
        `the ${count} agents did not all see each other alive within ${seconds(timeoutMs)} (${r.summary((ms) => `${ms.filter((m) => m.status === 'alive').length} alive`)})`,
      );
  }

  /** The agents as a table; with `withState`, a STATE column (running, stopped, exited(code)). */
  table(withState: boolean): string {
    const headers = ['NAME', 'PID', ...(withState ? ['STATE'] : []), 'CLUSTER', 'HTTP', 'DATA-DIR'];
    const rows = this.cluster.agents.map((a) => [
      a.name,
      String(a.proc?.pid ?? '-'),
      ...(withState ? [this.state(a)] : []),
      `127.0.0.1:${a.clusterPort}`,
      `http://127.0.0.1:${a.httpPort}`,
      a.dataDir,
    ]);
    return formatTable(headers, rows);
  }

  /** How to point the `mesh` CLI at the first agent. */
  hint(): string {
    const first = this.cluster.agents[0];
    let bin = relative(process.cwd(), MESH_BIN);
    if (!bin.startsWith('.') && !bin.startsWith('/')) bin = `./${bin}`;
    return `MESH_HTTP_ADDR=127.0.0.1:${first?.httpPort ?? 7500} ${bin} members`;
  }

  /** Run one command line; an error is printed as one line and the session goes on. */
  async run(line: string): Promise<Outcome> {
    const [word, ...args] = line.trim().split(/\s+/);
    if (word === undefined || word === '' || word.startsWith('#')) return 'continue';
    try {
      const cmd = this.commands.get(word.toLowerCase()) ?? this.aliases.get(word.toLowerCase());
      if (!cmd) throw new CommandError(`unknown command ${JSON.stringify(word)} (type help for the list)`);
      const [min, max] = cmd.arity ?? [0, Number.POSITIVE_INFINITY];
      if (args.length < min || args.length > max) throw new CommandError(`usage: ${cmd.usage}`);
      return (await cmd.run(args, cmd.usage)) ?? 'continue';
    } catch (err) {
      this.print(`error: ${err instanceof Error ? err.message : String(err)}`);
      return 'continue';
    }
  }

  /** SIGKILL every agent and remove the data dirs unless --keep (LocalCluster.stop). A second
   * call returns the first one's promise, so every caller can wait for the same clean-up. */
  close(keep: boolean): Promise<void> {
    this.closed ??= (async () => {
      this.print(`stopping ${this.cluster.running().length} agent(s)`);
      await this.cluster.stop();
      this.print(keep ? `data dirs kept in ${this.cluster.root}` : 'data dirs removed');
    })();
    return this.closed;
  }

  /** True once close() was called: waits end early, since the agents are going away. */
  private get closing(): boolean {
    return this.closed !== undefined;
  }

  private state(a: AgentProc): string {
    if (!isRunning(a)) return `exited(${describeExit(a)})`;
    return this.stopped.has(a) ? 'stopped' : 'running';
  }

  /** Agents whose HTTP API can answer: running and not stopped. */
  private answering(): AgentProc[] {
    return this.cluster.agents.filter((a) => isRunning(a) && !this.stopped.has(a));
  }

  private agent(token: string | undefined, usage: string): AgentProc {
    if (token === undefined) throw new CommandError(`missing NAME (usage: ${usage})`);
    const agents = this.cluster.agents;
    const byNumber = /^\d+$/.test(token) ? agents[Number(token) - 1] : undefined;
    const a = byNumber ?? agents.find((x) => x.name === token);
    if (!a)
      throw new CommandError(
        `no agent ${JSON.stringify(token)}: give a name (${agents[0]?.name}…${agents.at(-1)?.name}) or a number from 1 to ${agents.length}`,
      );
    return a;
  }

  private running(token: string | undefined, usage: string): AgentProc {
    const a = this.agent(token, usage);
    if (!isRunning(a)) throw new CommandError(`${a.name} is not running (exited(${describeExit(a)}))`);
    return a;
  }

  /** Wait for the agent's API, or fail early with its last output if it exits first. */
  private async ready(a: AgentProc, timeoutMs: number): Promise<void> {
    const exited = a.exited.then((): never => {
      throw new Error(`${a.name} exited (${describeExit(a)}) while starting; its last output:\n${tail(a)}`);
    });
    await Promise.race([this.cluster.ready(a, timeoutMs), exited]);
  }

  /** --join flags naming every agent that can answer, so a new or restarted agent finds the cluster even if n01 is down. */
  private joinArgs(except?: AgentProc): string[] {
    return this.answering()
      .filter((a) => a !== except)
      .flatMap((a) => ['--join', `127.0.0.1:${a.clusterPort}`]);
  }

  private client(a: AgentProc, timeoutMs = requestTimeoutMs): ApiClient {
    return new ApiClient(`127.0.0.1:${a.httpPort}`, { timeoutMs });
  }

  /**
   * Ask every agent in `among` for its member list, every pollIntervalMs, until `done` holds for
   * all of them or `timeoutMs` passes. `summary` says what each agent saw last, for errors.
   */
  private async waitViews(
    among: AgentProc[],
    done: (members: MemberView[]) => boolean,
    timeoutMs: number,
  ): Promise<{ ok: boolean; elapsedMs: number; summary: (f: (ms: MemberView[]) => string) => string }> {
    const t0 = performance.now();
    const deadline = t0 + timeoutMs;
    let views: Array<MemberView[] | undefined> = [];
    for (;;) {
      views = await Promise.all(
        among.map((a) =>
          this.client(a)
            .members()
            .catch(() => undefined),
        ),
      );
      const ok = views.every((v) => v !== undefined && done(v));
      if (ok || this.closing || performance.now() >= deadline) {
        const last = views;
        const summary = (f: (ms: MemberView[]) => string): string =>
          among.map((a, i) => `${a.name}: ${last[i] === undefined ? 'no answer' : f(last[i])}`).join(', ');
        return { ok, elapsedMs: performance.now() - t0, summary };
      }
      await sleep(pollIntervalMs);
    }
  }

  private define(): void {
    const add = (name: string, spec: CommandSpec): void => {
      this.commands.set(name, spec);
    };

    add('kill', {
      usage: 'kill NAME',
      help: 'SIGKILL the agent: a crash; the others mark it failed within a few seconds',
      arity: [1, 1],
      run: async (args, usage) => {
        const a = this.running(args[0], usage);
        const pid = a.proc?.pid;
        this.cluster.kill(a, 'SIGKILL');
        this.stopped.delete(a);
        if (!(await exitWithin(a, killExitTimeoutMs)))
          throw new CommandError(`${a.name} (pid ${pid}) did not exit within ${seconds(killExitTimeoutMs)}`);
        this.print(`${a.name} killed (pid ${pid}, SIGKILL)`);
        return undefined;
      },
    });

    add('stop', {
      usage: 'stop NAME',
      help: 'SIGSTOP the agent: frozen, not dead; the others suspect it, then mark it failed',
      arity: [1, 1],
      run: async (args, usage) => {
        const a = this.running(args[0], usage);
        if (this.stopped.has(a))
          throw new CommandError(`${a.name} is already stopped (cont ${a.name} resumes it)`);
        this.cluster.kill(a, 'SIGSTOP');
        this.stopped.add(a);
        this.print(`${a.name} stopped (pid ${a.proc?.pid}, SIGSTOP); cont ${a.name} resumes it`);
        return undefined;
      },
    });

    add('cont', {
      usage: 'cont NAME',
      help: 'SIGCONT a stopped agent: it refutes the suspicion and is alive again',
      arity: [1, 1],
      run: async (args, usage) => {
        const a = this.running(args[0], usage);
        if (!this.stopped.has(a)) throw new CommandError(`${a.name} is not stopped`);
        this.cluster.kill(a, 'SIGCONT');
        this.stopped.delete(a);
        this.print(`${a.name} resumed (pid ${a.proc?.pid}, SIGCONT)`);
        return undefined;
      },
    });

    add('leave', {
      usage: 'leave NAME',
      help: 'SIGTERM the agent: it leaves gracefully (others see it left) and exits 0',
      arity: [1, 1],
      run: async (args, usage) => {
        const a = this.running(args[0], usage);
        await this.terminate(a);
        this.print(`${a.name} left (exit ${describeExit(a)})`);
        return undefined;
      },
    });

    add('restart', {
      usage: 'restart NAME',
      help: 'start the agent again with the same data dir and ports (a running one is sent SIGTERM first)',
      arity: [1, 1],
      run: async (args, usage) => {
        const a = this.agent(args[0], usage);
        if (isRunning(a)) await this.terminate(a);
        a.extraArgs = [...(this.ownArgs.get(a) ?? []), ...this.joinArgs(a)];
        await this.cluster.restart(a);
        await this.ready(a, readyTimeoutMs(1));
        this.print(`${a.name} restarted (pid ${a.proc?.pid}, same data dir and ports)`);
        return undefined;
      },
    });

    add('add', {
      usage: 'add',
      help: 'start one more agent; it joins the agents that are running',
      arity: [0, 0],
      run: async () => {
        if (this.cluster.agents.length >= agentsMax)
          throw new CommandError(`already ${agentsMax} agents, the most one session starts`);
        const a = await this.cluster.add(this.joinArgs());
        this.ownArgs.set(a, []);
        await this.ready(a, readyTimeoutMs(1));
        this.print(
          `${a.name} started (pid ${a.proc?.pid}, cluster 127.0.0.1:${a.clusterPort}, HTTP http://127.0.0.1:${a.httpPort})`,
        );
        return undefined;
      },
    });

    add('status', {
      usage: 'status',
      help: 'the agents with their state: running, stopped or exited(code)',
      arity: [0, 0],
      run: async () => {
        this.print(this.table(true));
        return undefined;
      },
    });

    add('members', {
      usage: 'members [NAME]',
      help: 'the member list as one agent sees it (default: the first running one)',
      arity: [0, 1],
      run: async (args, usage) => {
        const a = args[0] === undefined ? this.answering()[0] : this.running(args[0], usage);
        if (!a) throw new CommandError('no running agent to ask');
        if (this.stopped.has(a))
          throw new CommandError(`${a.name} is stopped and cannot answer (cont ${a.name})`);
        const members = await this.client(a, 2_000)
          .members()
          .catch((err: Error) => {
            throw new CommandError(`${a.name}: ${err.message}`);
          });
        this.print(`members as ${a.name} sees them:\n${formatMembers(members)}`);
        return undefined;
      },
    });

    add('wait', {
      usage: 'wait alive N [SECONDS]',
      help: 'wait until every running agent sees N members alive (at most 30 s unless SECONDS)',
      also: [
        ['wait status NAME STATUS [SECONDS]', 'wait until every other running agent sees NAME in STATUS'],
      ],
      run: async (args) => this.wait(args),
    });

    add('logs', {
      usage: 'logs NAME [LINES]',
      help: `the agent's last log lines (default ${logLinesDefault})`,
      arity: [1, 2],
      run: async (args, usage) => {
        const a = this.agent(args[0], usage);
        const n = args[1] === undefined ? logLinesDefault : int(args[1], 'LINES', 1, logLinesMax, usage);
        this.print(a.output.slice(-n).join('\n'));
        return undefined;
      },
    });

    add('sleep', {
      usage: 'sleep MS',
      help: 'pause the script for MS milliseconds',
      arity: [1, 1],
      run: async (args, usage) => {
        await sleep(int(args[0], 'MS', 0, sleepMsMax, usage));
        return undefined;
      },
    });

    add('help', {
      usage: 'help',
      help: 'this list',
      run: async () => {
        const rows = [...this.commands.values()].flatMap(
          (c): Array<[string, string]> => [[c.usage, c.help], ...(c.also ?? [])],
        );
        const width = Math.max(...rows.map(([usage]) => usage.length));
        const lines = rows.map(([usage, help]) => `  ${usage.padEnd(width)}   ${help}`);
        this.print(`${lines.join('\n')}\nNAME is an agent name (n01) or its number (1).`);
        return undefined;
      },
    });

    const quit: CommandSpec = {
      usage: 'quit | exit',
      help: 'stop every agent and exit (also Ctrl-D, Ctrl-C)',
      run: async () => 'quit',
    };
    add('quit', quit);
    // Listed once in help, under quit.
    this.aliases.set('exit', quit);
  }

  /** SIGTERM (and SIGCONT, so a stopped agent can act on it); wait, bounded, for the exit. */
  private async terminate(a: AgentProc): Promise<void> {
    this.cluster.kill(a, 'SIGTERM');
    if (this.stopped.delete(a)) this.cluster.kill(a, 'SIGCONT');
    if (!(await exitWithin(a, leaveExitTimeoutMs)))
      throw new CommandError(
        `${a.name} (pid ${a.proc?.pid}) did not exit within ${seconds(leaveExitTimeoutMs)} of SIGTERM; kill ${a.name} forces it`,
      );
  }

  private async wait(args: string[]): Promise<undefined> {
    const usage = 'wait alive N [SECONDS] | wait status NAME STATUS [SECONDS]';
    const timeoutMs = (token: string | undefined): number =>
      token === undefined ? waitTimeoutMsDefault : int(token, 'SECONDS', 1, waitTimeoutSMax, usage) * 1_000;
    const alive = (ms: MemberView[]): number => ms.filter((m) => m.status === 'alive').length;

    if (args[0] === 'alive') {
      if (args.length < 2 || args.length > 3) throw new CommandError(`usage: ${usage}`);
      const n = int(args[1], 'N', 0, agentsMax, usage);
      const among = this.answering();
      if (among.length === 0) throw new CommandError('no running agent to ask');
      const r = await this.waitViews(among, (ms) => alive(ms) === n, timeoutMs(args[2]));
      if (!r.ok)
        throw new CommandError(
          `not every running agent sees ${n} alive after ${seconds(r.elapsedMs)} (${r.summary((ms) => `${alive(ms)} alive`)})`,
        );
      this.print(`every running agent sees ${n} alive (after ${seconds(r.elapsedMs)})`);
      return undefined;
    }

    if (args[0] === 'status') {
      if (args.length < 3 || args.length > 4) throw new CommandError(`usage: ${usage}`);
      const target = this.agent(args[1], usage);
      const status = args[2] as MemberStatus;
      if (!memberStatuses.includes(status))
        throw new CommandError(
          `STATUS: expected one of ${memberStatuses.join(', ')}, got ${JSON.stringify(args[2])}`,
        );
      // The agent itself is not asked: a killed or stopped one cannot answer, a live one sees itself alive.
      const among = this.answering().filter((a) => a !== target);
      if (among.length === 0) throw new CommandError(`no running agent other than ${target.name} to ask`);
      const seen = (ms: MemberView[]): string => ms.find((m) => m.name === target.name)?.status ?? 'absent';
      const r = await this.waitViews(among, (ms) => seen(ms) === status, timeoutMs(args[3]));
      if (!r.ok)
        throw new CommandError(
          `not every other running agent sees ${target.name} ${status} after ${seconds(r.elapsedMs)} (${r.summary(seen)})`,
        );
      this.print(`every other running agent sees ${target.name} ${status} (after ${seconds(r.elapsedMs)})`);
      return undefined;
    }

    throw new CommandError(`usage: ${usage}`);
  }
}
