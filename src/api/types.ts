// The contract between the local HTTP API and the agent. The HTTP server only sees this
// interface, so it can be tested with a fake agent; the CLI only sees the JSON it produces.
import type { MemberStatus } from '../core/membership/types.js';
import type { CompiledChain } from '../core/routing/types.js';

/** One member as shown by `GET /v1/agent/members` and `mesh members --json`. */
export interface MemberView {
  name: string;
  id: string;
  /** Cluster address "host:port". */
  address: string;
  status: MemberStatus;
  incarnation: number;
  zone: string;
  meta: Record<string, string>;
}

/** `GET /v1/agent/self` and `mesh info --json`. */
export interface AgentSelfView {
  name: string;
  id: string;
  /** Address other agents dial (advertise), "host:port". */
  address: string;
  /** libp2p multiaddrs this agent listens on, with /p2p/<id>. */
  multiaddrs: string[];
  /** Local HTTP API address "host:port". */
  http: string;
  /** DNS server address "host:port" (`NAME.service.mesh`), or "off". */
  dns: string;
  zone: string;
  status: MemberStatus;
  incarnation: number;
  version: string;
  dataDir: string;
  /** Lifeguard local health score: 0 healthy, higher means this agent is itself slow. */
  localHealth: number;
  /** Counts of members by status, as this agent sees them. */
  members: Record<MemberStatus, number>;
  /** Counters: messages dropped as malformed, probes, etc. */
  stats: Record<string, number>;
  /** Process memory in bytes (Node's process.memoryUsage(): rss, heapTotal, heapUsed, external, arrayBuffers). */
  memory: Record<string, number>;
  /** Open libp2p connections to other agents. */
  connections: number;
  startedAt: string;
}

export interface JoinResult {
  /** How many of the given addresses answered and exchanged state. */
  joined: number;
  /** One entry per address that failed, with the reason. */
  errors: Array<{ address: string; message: string }>;
}

/** A KV entry as answered by `GET /v1/kv/<key>` (an array of these; `?recurse` for a prefix). */
export interface KvEntryView {
  key: string;
  /** The value's bytes, base64-encoded (values are arbitrary bytes, up to 512 KiB). */
  value: string;
  /** Raft index of the write that created the key (a re-created key gets a new one). */
  createIndex: number;
  /** Raft index of the last write: what `?cas=N` compares against. */
  modifyIndex: number;
}

/** `GET /v1/discovery-chain/<service>`: where this agent's proxy sends calls to a service. */
export interface DiscoveryChainView {
  /** The Raft index of the configuration it was compiled from. */
  index: number;
  chain: CompiledChain;
  /** By target id: the target's instances this agent's proxy knows, and how many may take calls now. */
  instances: Record<string, { total: number; healthy: number }>;
}

/** A configuration entry as answered by `GET /v1/config[/<kind>[/<name>]]`. */
export interface ConfigEntryView {
  kind: string;
  name: string;
  /** The kind's settings in canonical form (entry files write them beside `kind` and `name`). */
  spec: Record<string, unknown>;
  createIndex: number;
  modifyIndex: number;
}

/** `PUT /v1/config`: the Raft index the entry was written at. */
export interface ConfigWriteResult {
  index: number;
}

/** One member of the Raft configuration, `GET /v1/raft/peers`. */
export interface RaftPeerView {
  /** The agent's peer id. */
  id: string;
  name: string;
  /** Cluster address "host:port". */
  address: string;
  role: 'leader' | 'voter' | 'learner';
  voter: boolean;
  /** Highest log index the leader knows this peer holds (the leader's view). */
  matchIndex: number;
  /** The peer's applied index as it last reported by gossip; -1 before its first report. */
  appliedIndex: number;
  /** Membership status of the peer: alive, suspect, failed or left. */
  status: string;
}

/** `GET /v1/raft/status`: this agent's Raft state. */
export interface RaftStatusView {
  id: string;
  term: number;
  /** This agent's role: leader, follower, candidate, learner... */
  role: string;
  /** Id of the leader this agent follows; empty when it knows of none. */
  leader: string;
  leaderName: string;
  /** Highest index known committed. */
  commit: number;
  /** Highest index applied to this agent's state. */
  applied: number;
  lastIndex: number;
  firstIndex: number;
  /** Ids of the voters and learners of the current configuration. */
  conf: { voters: string[]; learners: string[] };
}

/** `POST /v1/raft/transfer-leader`: the id of the leader after the transfer. */
export interface TransferLeaderResult {
  leader: string;
}

/** What the HTTP API needs from a running agent. */
export interface AgentApi {
  self(): AgentSelfView;
  members(): MemberView[];
  /** Join the cluster of any of the addresses (host:port, dns:port or multiaddr). Rejects with a
   * MeshError('join_failed') when none answers. */
  join(addresses: string[], signal?: AbortSignal): Promise<JoinResult>;
  /** Graceful leave; the agent process exits after the API has answered. */
  leave(): Promise<void>;
}

/** Errors carry a stable code the API maps to a status and the CLI prints as a message. */
export type MeshErrorCode =
  | 'bad_request'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'join_failed'
  | 'payload_too_large'
  | 'request_timeout'
  | 'request_header_fields_too_large'
  | 'conflict'
  | 'unavailable'
  | 'internal';

export class MeshError extends Error {
  readonly code: MeshErrorCode;
  constructor(code: MeshErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'MeshError';
  }
}

/** A check's state: `GET /v1/agent/checks`, and each instance's `checks`. */
export interface CheckView {
  id: string;
  name: string;
  /** http, tcp, grpc, script, ttl; `agent` for the implicit mesh-agent check (gossip health of the host). */
  type: string;
  status: 'passing' | 'warning' | 'critical';
  /** Last probe output or TTL note (at most 4 KiB). */
  output: string;
  serviceId: string;
}

/** A service registered on this agent: `GET /v1/agent/services`, `mesh services list`. */
export interface LocalServiceView {
  id: string;
  name: string;
  /** As registered; '' means the agent's address. */
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  /** The protocol in effect: the definition's, else the service-defaults entry's, else tcp. */
  protocol: string;
  upstreams: Array<{ service: string; localPort: number }>;
  /** Where the definition comes from: a file in --config-dir, or the API (kept in the data dir). */
  source: 'file' | 'api';
  file?: string;
  /** Worst of its checks. */
  health: 'passing' | 'warning' | 'critical';
  checks: CheckView[];
}

/** One service name cluster-wide: `GET /v1/catalog/services`. */
export interface CatalogServiceView {
  name: string;
  /** Union of the tags of its instances, sorted. */
  tags: string[];
  protocol: string;
  instances: number;
  passing: number;
  warning: number;
  critical: number;
}

/** One instance cluster-wide: `GET /v1/catalog/service/<name>`, `GET /v1/health/service/<name>`. */
export interface InstanceView {
  /** Name, id and cluster address of the agent hosting it. */
  node: string;
  nodeId: string;
  nodeAddress: string;
  /** Membership status of that agent. */
  nodeStatus: string;
  id: string;
  name: string;
  /** Address to reach the instance: its own, or its agent's host when registered without one. */
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  protocol: string;
  health: 'passing' | 'warning' | 'critical';
  /** Its share of calls while passing and while warning (1 and 1 unless registered with weights). */
  weights: { passing: number; warning: number };
  /** The instance's checks, led by the implicit `mesh-agent` check (critical once its agent failed). */
  checks: CheckView[];
}

/** One agent with its services: `GET /v1/catalog/nodes`. */
export interface NodeView {
  name: string;
  id: string;
  address: string;
  zone: string;
  status: string;
  services: number;
  passing: number;
  warning: number;
  critical: number;
}
