// The `mesh` command line: parse, call the API client, print. bin/mesh.ts only calls main().
import { Command, CommanderError, Option, type OutputConfiguration } from 'commander';
import { MeshError } from '../api/types.js';
import { generateClusterKey } from '../config/cluster-key.js';
import { packageVersion } from '../version.js';
import { addAgentCommand } from './agent.js';
import { registerCatalogCommands } from './catalog.js';
import { registerConfigCommands } from './config.js';
import { clientFor as client, clientCommand, ExitCode, type Io, type ReadStdin } from './context.js';
import { infoCommand } from './info.js';
import { joinCommand, leaveCommand } from './join-leave.js';
import { registerKvCommands } from './kv.js';
import { membersCommand } from './members.js';
import { registerMeshCommands } from './mesh.js';
import { registerRaftCommands } from './raft.js';
import { registerServiceCommands } from './services.js';

export type { Io } from './context.js';

const processIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

/** Exit codes: 0 success, 1 the command failed, 2 the command line was wrong. */
export const exitCodes = { ok: 0, failed: 1, usage: 2 } as const;

/** Every command below `c`, at any depth (`mesh kv put` is two levels down). */
function descendants(c: Command): Command[] {
  return c.commands.flatMap((sub) => [sub, ...descendants(sub)]);
}

/**
 * Where commander writes, and how its errors read: commander starts a usage error with `error: `,
 * while every other failure is printed by main() as `Error: `; one spelling for both, so an
 * operator (or a script matching stderr) sees the same prefix for every failure.
 */
function outputFor(io: Io): OutputConfiguration {
  return {
    writeOut: (s) => io.out(s.trimEnd()),
    writeErr: (s) => io.err(s.trimEnd()),
    outputError: (s, write) => write(s.replace(/^error: /, 'Error: ')),
  };
}

/** `readStdin` is where `mesh kv put KEY -` and `mesh config put -` read; tests pass their own. */
export function buildProgram(io: Io = processIo, readStdin?: ReadStdin): Command {
  const program = new Command('mesh')
    .description('a service mesh with no central server')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput(outputFor(io));

  addAgentCommand(program);

  clientCommand(program, 'members', 'list the members of the cluster as this agent sees them')
    .option('--json', 'print the JSON array from the API')
    .addOption(
      new Option('--status <status>', 'show only members in this state').choices([
        'alive',
        'suspect',
        'failed',
        'left',
      ]),
    )
    .action(async (opts: { http: string; json?: boolean; status?: string }) => {
      io.out(await membersCommand(client(opts), opts));
    });

  clientCommand(program, 'join', 'ask the agent to join the cluster of any of the addresses')
    .argument('<address...>', 'host:port, [ipv6]:port, dns-name:port or multiaddr')
    .action(async (addresses: string[], opts: { http: string }) => {
      io.out(await joinCommand(client(opts), addresses));
    });

  clientCommand(program, 'leave', 'make the agent leave the cluster gracefully and exit').action(
    async (opts: { http: string }) => {
      io.out(await leaveCommand(client(opts)));
    },
  );

  clientCommand(program, 'info', "show the agent's identity, addresses and counters")
    .option('--json', 'print the JSON object from the API')
    .action(async (opts: { http: string; json?: boolean }) => {
      io.out(await infoCommand(client(opts), opts));
    });

  program
    .command('keygen')
    .description('print a new random cluster key (32 bytes, base64) for --cluster-key')
    .action(() => {
      io.out(generateClusterKey());
    });

  registerKvCommands(program, io, readStdin);
  registerConfigCommands(program, io, readStdin);
  registerRaftCommands(program, io);
  registerServiceCommands(program, io, readStdin);
  registerCatalogCommands(program, io);
  registerMeshCommands(program, io);

  // Subcommands inherit the parent's settings only when created after them; apply to all.
  for (const c of descendants(program)) {
    c.exitOverride().configureOutput(outputFor(io));
  }
  return program;
}

/** Runs the command line; resolves the exit code. `mesh agent` resolves once the agent runs. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCodes.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (or the help / version).
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version'
        ? exitCodes.ok
        : exitCodes.usage;
    }
    if (err instanceof ExitCode) return err.code;
    const message = err instanceof Error ? err.message : String(err);
    io.err(`Error: ${message.split('\n')[0]}`);
    if (!(err instanceof MeshError) && process.env.MESH_DEBUG) io.err(String((err as Error).stack));
    return exitCodes.failed;
  }
}
