// What the agent's main thread tells the data plane (the proxy worker), and what the worker
// reports back. Plain, structured-cloneable data only: it crosses a worker_threads boundary.
//
// The main thread owns every decision input (catalog, membership, Raft state, certificates) and
// posts a whole ProxySnapshot whenever one of them changes; the worker keeps the last one it got,
// so traffic keeps flowing on the last good state if the control plane stalls.

import type { CompiledChain } from '../core/routing/chain.js';
import type { InstanceRateLimits } from '../core/routing/rate-limit.js';
import type { UpstreamLimits } from '../core/state/kinds/upstream-config.js';

export type ProxyProtocol = 'tcp' | 'http' | 'http2' | 'grpc';

/** One instance a caller may be sent to: where its agent's inbound listener is. */
export interface ProxyEndpoint {
  /** `<agent id>/<instance id>`: unique in the cluster; the balancers key on it. */
  id: string;
  /** The instance's id on its agent (sent in the preamble so that agent knows whom to call). */
  instanceId: string;
  service: string;
  /** host:port of the hosting agent's inbound mTLS listener. */
  inbound: string;
  /** The instance runs on this agent: calls go straight to it, without the mTLS hop to ourselves. */
  local: boolean;
  healthy: boolean;
  /** Only passing (not warning) — for subsets with onlyPassing. */
  passing: boolean;
  tags: string[];
  meta: Record<string, string>;
  /** Its share of calls at its health (the service's weights); unset: 1. The balancers read it. */
  weight?: number;
}

/** A loopback listener for one upstream of one local service. */
export interface ProxyUpstream {
  /** The local service that calls (its certificate authenticates the call). */
  source: string;
  destination: string;
  bindHost: string;
  port: number;
  protocol: ProxyProtocol;
  /**
   * The caller's circuit breakers for this destination (service-defaults upstreamConfig of
   * `source`); unset: none. On the HTTP proxy port (destination "*"), the defaults, shown in the
   * status: each request's destination gets its own (ProxySnapshot.upstreamConfigs).
   */
  limits?: UpstreamLimits;
}

/** A local instance the inbound listener forwards to. */
export interface ProxyLocalInstance {
  id: string;
  service: string;
  host: string;
  port: number;
  protocol: ProxyProtocol;
  /** Bound on one request to the instance (L7), from service-defaults localRequestTimeoutMs. */
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  /**
   * Most connections this agent keeps open to the instance at once (service-defaults
   * maxConnections): HTTP/1.1 requests beyond them wait for a free one, TCP connections beyond
   * them are refused. Unset: no limit.
   */
  connectionsMax?: number;
  /** Requests a second the instance takes over all callers (service-defaults rateLimits); L7 only. */
  rateLimits?: InstanceRateLimits;
}

export interface ProxyCert {
  certPem: string;
  keyPem: string;
  /** Intermediates sent after the leaf (the cross-signed root during a rotation). */
  chainPem: string[];
  notAfterMs: number;
}

export interface ProxySnapshot {
  /** Raft applied index and catalog index this snapshot reflects (shown in /v1/agent/proxy). */
  version: { raft: number; catalog: number };
  trustDomain: string;
  /** Every trusted root (the active one and, during a rotation, the previous one). */
  roots: string[];
  /** Leaf certificate per local service name. */
  certs: Record<string, ProxyCert>;
  upstreams: ProxyUpstream[];
  /** Compiled routing per destination service reachable from an upstream. */
  chains: Record<string, CompiledChain>;
  /** Instances per service name, for every service a chain may route to. */
  endpoints: Record<string, ProxyEndpoint[]>;
  local: ProxyLocalInstance[];
  /** service-intentions specs by entry name (destination service or "*"). */
  intentions: Record<string, unknown>;
  /** The `mesh` entry's spec (defaultIntention), if any. */
  mesh: unknown;
  /** Log every request and connection (proxy-defaults config `accessLogs: true`). */
  accessLogs: boolean;
  /**
   * The service-defaults `upstreamConfig` of each local service with an HTTP proxy port, as
   * written (its requests' destinations are known only when they come). Unset: none.
   */
  upstreamConfigs?: Record<string, unknown>;
}

/** Main thread → worker. */
export type ToWorker =
  | { t: 'snapshot'; snapshot: ProxySnapshot }
  | { t: 'metrics'; id: number }
  | { t: 'status'; id: number }
  /** The host's watchdog: answered with a pong from the worker's loop. */
  | { t: 'ping' }
  | { t: 'stop' };

/** Worker → main thread. */
export type FromWorker =
  | { t: 'ready'; inbound: { host: string; port: number } }
  | { t: 'metrics'; id: number; text: string }
  | { t: 'status'; id: number; status: ProxyStatus }
  | { t: 'pong' }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> }
  | { t: 'fatal'; message: string };

export interface ProxyStatus {
  version: ProxySnapshot['version'];
  inbound: string;
  upstreams: Array<{
    source: string;
    destination: string;
    address: string;
    protocol: ProxyProtocol;
    error: string;
    /** The caller's circuit breakers for the destination (on the HTTP proxy port, its defaults). */
    limits?: UpstreamLimits;
  }>;
  snapshotsApplied: number;
  /** Local services this agent holds a leaf certificate for. */
  certs: string[];
  /** TLS handshakes on the inbound listener that failed (no or untrusted client certificate…). */
  handshakeFailures: number;
  /** Instances this agent is not calling now after failures in a row (passive health checks). */
  ejected: Array<{ service: string; instance: string; remainingMs: number }>;
  /** Times the agent started the worker again since the agent started (added by the main thread). */
  restarts?: { exited: number; unresponsive: number };
}

/** The start parameters of the worker (workerData). */
export interface ProxyWorkerData {
  role: 'mesh-proxy';
  inbound: { host: string; port: number };
  /** Bound on concurrent connections per listener. */
  connectionsMax: number;
}
