// Types of the service catalog: what an operator registers on an agent (services and their health
// checks), and what every agent learns about every other agent's instances by gossip.
//
// Pure data: no I/O. The definitions here are the validated, normalised form; the user-facing file
// and API format (durations as "10s", one of `http`/`tcp`/`grpc`/`ttl`/`args` naming the check
// type, as in Consul) is parsed into them by definition.ts.

import type { Protocol } from '../state/kinds/fields.js';

/** The protocols a service speaks: the same list service-defaults and proxy-defaults choose from. */
export type ServiceProtocol = Protocol;
export { PROTOCOLS as SERVICE_PROTOCOLS } from '../state/kinds/fields.js';

/** Health of a check or an instance. An instance's health is the worst of its checks. */
export type CheckStatus = 'passing' | 'warning' | 'critical';
export const CHECK_STATUSES: readonly CheckStatus[] = ['passing', 'warning', 'critical'];

/** Worse status first: critical > warning > passing. */
export function worstStatus(a: CheckStatus, b: CheckStatus): CheckStatus {
  const rank = { passing: 0, warning: 1, critical: 2 } as const;
  return rank[a] >= rank[b] ? a : b;
}

/** A service this instance calls through the mesh (used by the data plane). */
export interface Upstream {
  /** Destination service name, or '*': an HTTP proxy port that routes each request by its Host. */
  service: string;
  /** Loopback port the local agent listens on for calls to `service`. */
  localPort: number;
}

/** What a check probes. TTL checks probe nothing: the service reports its own status. */
export type CheckSpec =
  | {
      type: 'http';
      /** http:// or https:// URL. */
      url: string;
      /** Request method (default GET). */
      method: string;
      /** Extra request headers. */
      headers: Record<string, string>;
      /** Accept any server certificate (https only). */
      tlsSkipVerify: boolean;
    }
  | { type: 'tcp' /** host:port to connect to. */; address: string }
  | {
      type: 'grpc';
      /** host:port of the gRPC server. */
      address: string;
      /** Service name sent in the grpc.health.v1 request ('' = the server as a whole). */
      service: string;
      /** Use TLS (h2 with ALPN) instead of cleartext HTTP/2. */
      tls: boolean;
      tlsSkipVerify: boolean;
    }
  | {
      type: 'script';
      /** argv; run without a shell. Exit 0 passes, 1 warns, anything else fails (as Consul). */
      args: string[];
    }
  | {
      type: 'ttl' /** The service must report within this long or the check turns critical. */;
      ttlMs: number;
    };

export type CheckType = CheckSpec['type'];

export interface CheckDefinition {
  /** Unique on the agent; default `service:<serviceId>` (`:<n>` appended when a service has several). */
  id: string;
  /** Human label; default derived from the type. */
  name: string;
  /** The service instance this check belongs to. */
  serviceId: string;
  spec: CheckSpec;
  /** Time between probes (unused by TTL checks). */
  intervalMs: number;
  /** A probe that has not answered within this long fails. */
  timeoutMs: number;
  /** Consecutive passing results before a non-passing check turns passing (Consul's success_before_passing). */
  successBeforePassing: number;
  /** Consecutive failing results before a passing check turns critical (Consul's failures_before_critical). */
  failuresBeforeCritical: number;
  /** Status before the first result. */
  initialStatus: CheckStatus;
}

/**
 * Consul's service weights: an instance's share of calls by its health, relative to the other
 * instances'. Proxies balance by it; DNS gives it as the SRV weight. Critical instances take none.
 */
export interface InstanceWeights {
  /** While every check passes (1 to DEFINITION_LIMITS.weightMax). */
  passing: number;
  /** While a check warns (0 to DEFINITION_LIMITS.weightMax; 0: proxies send it no calls). */
  warning: number;
}

/** What a registration says about an instance, and what every agent learns of it. */
export interface InstanceFields {
  /** Unique on the agent; default the name. */
  id: string;
  name: string;
  /** Where the instance listens; '' means the agent's own address. */
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  /** Unset: the cluster's service-defaults entry decides, else tcp. */
  protocol: ServiceProtocol | undefined;
  /** Unset: 1 while passing and 1 while warning (Consul's default), as for every older agent's instances. */
  weights?: InstanceWeights;
}

export interface ServiceDefinition extends InstanceFields {
  upstreams: Upstream[];
  checks: CheckDefinition[];
}

/** A check's current state, as the hosting agent runs it and gossips it. */
export interface CheckState {
  id: string;
  name: string;
  type: CheckType;
  status: CheckStatus;
  /** Last probe's output or the TTL note, truncated to CHECK_OUTPUT_BYTES_MAX (check-state.ts). */
  output: string;
}

/** One service instance as every agent holds it in its catalog (gossiped by its host agent). */
export interface Instance extends InstanceFields {
  checks: CheckState[];
}
