// The fully resolved agent configuration: flags merged over the config file merged over
// defaults, validated. Produced by src/config/load.ts; consumed by the agent.

export interface HostPort {
  host: string;
  port: number;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface AgentConfig {
  /** Node name shown in `mesh members` (default: the host name). */
  nodeName: string;
  /** Directory holding the agent's LevelDB (identity, state). */
  dataDir: string;
  /** True when dataDir is a temporary directory the agent removes on exit (`--dev`). */
  dataDirIsTemporary: boolean;
  /** libp2p TCP listen address for cluster traffic. */
  bind: HostPort;
  /** Address other agents dial; defaults to bind (a concrete address when bind is 0.0.0.0). */
  advertise: HostPort;
  /** Local HTTP API listen address (loopback by default). */
  http: HostPort;
  /** Seed addresses: host:port, dns-name:port, or multiaddr strings. */
  join: string[];
  /** Join retry: first wait, doubling up to retryJoinMaxIntervalMs. */
  retryJoinIntervalMs: number;
  retryJoinMaxIntervalMs: number;
  /** Give up after this many rounds over all seeds; 0 retries forever (Consul's retry-join). */
  retryJoinMaxAttempts: number;
  /** 32-byte pre-shared cluster key, or undefined for an open cluster. */
  clusterKey: Uint8Array | undefined;
  /** Failure-domain label used by voter placement; empty when unset. */
  zone: string;
  logLevel: LogLevel;
  /** Pretty logs instead of JSON lines. */
  logPretty: boolean;
  dev: boolean;
  /** Seconds to spend spreading a graceful leave before exiting. */
  leaveTimeoutMs: number;
  /** Start a new Raft cluster with this agent as its only voter (first agent of a cluster). */
  bootstrap: boolean;
  /** Wait until this many agents are alive, then the lowest ids among them bootstrap as voters; 0 = off. */
  bootstrapExpect: number;
  /** Number of Raft voters the leader maintains (odd); other agents are replicas. */
  voters: number;
  /** Directory of service definition files (read at start and on reload); undefined = none. */
  configDir: string | undefined;
  /** Allow checks that run a command (`args`); off by default, as in Consul. */
  enableScriptChecks: boolean;
  /** DNS server listen address, or 'off'. */
  dns: HostPort | 'off';
  /** The proxy's inbound mTLS listener (other agents' proxies connect here). */
  inbound: HostPort;
  /** Lifetime of the leaf certificates this agent signs when it is a voter. */
  caLeafTtlMs: number;
}
