// `npm run cluster -- --agents 5`: N real agent processes on 127.0.0.1, driven by commands read
// from standard input (or --script) — kill, stop, restart, leave, add, members, wait. Ctrl-D,
// Ctrl-C, SIGTERM or `quit` SIGKILLs every agent and removes the data dirs (unless --keep).
// Commands are in cluster-commands.ts; docs/local-cluster.md is the operator's guide.
import { createInterface } from 'node:readline';
import { Command, InvalidArgumentError } from 'commander';
import { logLevels } from '../src/config/defaults.js';
import { agentsMax, ClusterSession } from './cluster-commands.js';
import { LocalCluster } from './launcher.js';

interface Options {
  agents: number;
  keep: boolean;
  logLevel: string;
  script: string | undefined;
  agentArgs: string[];
}

function parseAgents(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > agentsMax)
    throw new InvalidArgumentError(
      `expected an integer from 1 to ${agentsMax}, got ${JSON.stringify(value)}`,
    );
  return n;
}

function parseLogLevel(value: string): string {
  if (!(logLevels as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${logLevels.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run cluster --')
    .description('Start N mesh agents on 127.0.0.1 and drive them with commands (type help once started).')
    .option('--agents <n>', `agents to start, 1 to ${agentsMax}`, parseAgents, 3)
    .option('--keep', 'keep the data dirs after exit', false)
    .option('--log-level <level>', `the agents' log level (${logLevels.join(', ')})`, parseLogLevel, 'info')
    .option('--script <commands>', 'run these commands (separated by ;), then stop every agent and exit')
    .argument('[agent-args...]', 'after --: flags for every agent, e.g. -- --voters 5')
    .showHelpAfterError('(flags for the agents go after --, e.g. -- --voters 5; --help lists the options)')
    .parse(argv);
  const o = program.opts<{ agents: number; keep: boolean; logLevel: string; script?: string }>();
  return {
    agents: o.agents,
    keep: o.keep,
    logLevel: o.logLevel,
    script: o.script,
    agentArgs: program.args,
  };
}

/** Flags for n01: it bootstraps Raft, unless the flags for every agent already choose a bootstrap. */
function firstAgentArgs(agentArgs: string[]): string[] {
  const chosen = agentArgs.some((a) => /^--(bootstrap|bootstrap-expect|dev)(=|$)/.test(a));
  return chosen ? [] : ['--bootstrap'];
}

async function readCommands(session: ClusterSession, onInterrupt: () => void): Promise<void> {
  const tty = process.stdin.isTTY === true;
  const rl = createInterface({
    input: process.stdin,
    ...(tty ? { output: process.stdout } : {}),
    terminal: tty,
    prompt: 'cluster> ',
  });
  // In a terminal readline reads Ctrl-C as a key, so no SIGINT reaches the process.
  rl.on('SIGINT', onInterrupt);
  if (tty) rl.prompt();
  for await (const line of rl) {
    // Piped input is not echoed by a terminal: echo it, so the output reads as a transcript.
    if (!tty && line.trim() !== '') console.log(`cluster> ${line.trim()}`);
    if ((await session.run(line)) === 'quit') break;
    if (tty) rl.prompt();
  }
  if (tty) console.log();
  rl.close();
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv);
  const cluster = new LocalCluster({
    args: opts.agentArgs,
    keep: opts.keep,
    logLevel: opts.logLevel,
    // At info level an idle agent logs a few lines a minute; `logs NAME` shows the last of these.
    outputLinesMax: 10_000,
  });
  const session = new ClusterSession(cluster, (text) => console.log(text));

  let stopping: Promise<never> | undefined;
  const shutdown = (code: number): Promise<never> => {
    stopping ??= session.close(opts.keep).then(() => process.exit(code));
    return stopping;
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void shutdown(0));

  console.log(`starting ${opts.agents} agent(s) in ${cluster.root}`);
  const t0 = performance.now();
  try {
    await session.start(opts.agents, firstAgentArgs(opts.agentArgs));
  } catch (err) {
    // Interrupted during start-up (the agents were stopped under it): not a failure to report.
    if (stopping) await stopping;
    console.error(`cluster: start-up failed: ${err instanceof Error ? err.message : String(err)}`);
    await session.close(opts.keep);
    process.exit(1);
  }
  console.log(`${opts.agents} agent(s) ready and alive (${((performance.now() - t0) / 1_000).toFixed(1)} s)`);
  console.log(session.table(false));
  console.log(`point the CLI at an agent: ${session.hint()}`);

  if (opts.script !== undefined) {
    for (const line of opts.script.split(/[;\n]/)) {
      if (line.trim() === '') continue;
      console.log(`cluster> ${line.trim()}`);
      if ((await session.run(line)) === 'quit') break;
    }
  } else {
    console.log('type help for the commands; Ctrl-D or quit stops every agent');
    await readCommands(session, () => {
      console.log(); // off the prompt line
      void shutdown(0);
    });
  }
  await shutdown(0);
}

main().catch((err: unknown) => {
  console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
