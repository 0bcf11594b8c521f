// Every default of the agent configuration, with the reason for its value. docs/configuration.md
// repeats these for operators; keep the two in step.
import type { HostPort, LogLevel } from '../agent/agent-config.js';

export const defaults = {
  /** Cluster traffic on every interface: an agent is useless if other hosts cannot reach it.
   * 7400 is unassigned by IANA and clear of Consul's 8300-8302 and Serf's 7946. */
  bind: { host: '0.0.0.0', port: 7400 } as HostPort,
  /** `--dev` agents stay on loopback so a laptop never exposes a throwaway agent. */
  devBind: { host: '127.0.0.1', port: 7400 } as HostPort,
  /** The HTTP API can make the agent leave, so it listens on loopback only unless told otherwise. */
  http: { host: '127.0.0.1', port: 7500 } as HostPort,
  /** First retry of an unanswered join after 500 ms: quick enough that agents started together
   * (a whole cluster booting at once) find each other within a second or two. */
  retryJoinIntervalMs: 500,
  /** The doubling stops at 30 s so a long-dead seed costs one dial every 30 s, not a storm. */
  retryJoinMaxIntervalMs: 30_000,
  /** 0 = retry forever, like Consul's retry-join: an agent started before its seeds still joins. */
  retryJoinMaxAttempts: 0,
  zone: '',
  logLevel: 'info' as LogLevel,
  /** Long enough for a leave to reach every member in O(log N) gossip rounds on large clusters,
   * short enough that a stop in systemd (90 s default kill timeout) never has to wait. */
  leaveTimeoutMs: 3_000,
  /** Three voters survive one failure; five survive two at the cost of more replication per write
   * (Consul and etcd recommend the same). Every other agent is a replica that does not vote. */
  voters: 3,
  /** Consul's DNS port, on loopback: the host's resolver forwards the `mesh` domain to it; other
   * hosts have their own agent. Port 0 picks a free port (several agents on one host). */
  dns: { host: '127.0.0.1', port: 8600 } as HostPort,
  /** The proxy's inbound mTLS listener listens on the cluster interface (--bind's host) at this
   * port: next to the cluster port, so one firewall rule pair covers an agent. */
  inboundPort: 7401,
  /** Consul's leaf_cert_ttl: three days. Agents renew at 50–67% of the lifetime, so a day-long
   * control-plane outage never lets a certificate expire. Used by voters when they sign. */
  caLeafTtlMs: 72 * 3_600_000,
} as const;

/** Bounds that reject values that are surely mistakes rather than intent. */
export const limits = {
  nodeNameLengthMax: 128,
  zoneLengthMax: 64,
  joinAddressesMax: 256,
  retryJoinMaxAttemptsMax: 1_000_000,
  /** A join wait beyond a day is surely a unit mistake (`30` meant as seconds is 30 ms, but `30h`
   * meant as 30 s is not). It also keeps the ±20% jitter clear of the timer limit (2^31-1 ms), past
   * which Node fires after 1 ms and the retries would become a storm. */
  retryJoinIntervalMsMax: 24 * 3_600_000,
  /** The agent force-exits leave-timeout + 2 s after a stop signal; that sum must stay below the
   * timer limit (2^31-1 ms), or Node fires it after 1 ms and the agent exits without leaving.
   * A day is far past any stop an init system waits for. */
  leaveTimeoutMsMax: 24 * 3_600_000,
  /** Leaf certificates live 1 minute to 30 days: shorter cannot be renewed in time, longer defeats
   * rotation. */
  caLeafTtlMsMin: 60_000,
  caLeafTtlMsMax: 30 * 24 * 3_600_000,
  /** Config files are small; a huge file is a wrong path (a log, a binary). */
  configFileBytesMax: 1024 * 1024,
} as const;

export const logLevels: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
