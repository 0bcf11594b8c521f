// `mesh agent`: load the configuration, then hand over to the agent runtime.
import type { Command } from 'commander';
import { loadAgentConfig } from '../config/load.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function addAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the mesh agent on this host (one per host)')
    .option('--config <file>', 'config file, JSON or YAML (keys are the flag names, e.g. data-dir)')
    .option('--node-name <name>', 'name shown in `mesh members` (default: the host name)')
    .option('--data-dir <dir>', 'directory for the identity and state (required unless --dev)')
    .option('--bind <ip:port>', 'cluster listen address (default: 0.0.0.0:7400)')
    .option(
      '--advertise <host:port>',
      'address other agents dial (default: bind, or the first IPv4 of the host)',
    )
    .option('--http <ip:port>', 'local HTTP API listen address (default: 127.0.0.1:7500)')
    .option('--join <address>', 'seed to join: host:port or multiaddr; repeatable', collect)
    .option('--cluster-key <key>', 'pre-shared 32-byte key, base64 or hex (or env MESH_CLUSTER_KEY)')
    .option('--zone <zone>', 'failure-domain label for voter placement (default: none)')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent (default: info)')
    .option('--retry-join-interval <duration>', 'first wait between join attempts (default: 500ms)')
    .option('--retry-join-max-interval <duration>', 'longest wait between join attempts (default: 30s)')
    .option('--retry-join-max-attempts <n>', 'give up after n rounds; 0 = never (default: 0)')
    .option('--leave-timeout <duration>', 'time to spread a graceful leave before exiting (default: 3s)')
    .option(
      '--dev',
      'throwaway agent: loopback only, temporary data dir, pretty logs; bootstraps Raft unless --join',
    )
    .option(
      '--bootstrap',
      'start a new Raft cluster with this agent as the first voter (implied by --dev without --join)',
    )
    .option('--bootstrap-expect <n>', 'wait for n agents, then bootstrap Raft with them as voters')
    .option('--voters <n>', 'Raft voters the leader keeps (odd; default: 3)')
    .option(
      '--config-dir <dir>',
      'directory of service definition files (JSON/YAML), re-read on `mesh reload`',
    )
    .option('--enable-script-checks', 'allow health checks that run a command (`args`); off by default')
    .option('--dns <ip:port>', 'DNS server for NAME.service.mesh, or "off" (default: 127.0.0.1:8600)')
    .option(
      '--inbound <ip:port>',
      "the proxy's mTLS listener for calls from other agents (default: bind host, port 7401)",
    )
    .option(
      '--ca-leaf-ttl <duration>',
      'lifetime of leaf certificates this agent signs as a voter (default: 72h)',
    )
    .action(async (flags: Record<string, unknown>) => {
      const config = await loadAgentConfig(flags);
      const { runAgent } = await import('../agent/run.js');
      await runAgent(config);
    });
}
