// What the proxy's listeners share: the routing table, pools, metrics, TLS contexts and logging.
import type { SecureContext } from 'node:tls';
import type { ProxyMetrics } from './metrics.js';
import type { Pools } from './pools.js';
import type { RoutingTable } from './routing.js';

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

export interface EngineContext {
  routing: RoutingTable;
  pools: Pools;
  metrics: ProxyMetrics;
  trustDomain(): string;
  /** The TLS context a local service calls with (its leaf), or undefined before it has one. */
  clientContext(source: string): SecureContext | undefined;
  /** The TLS context this agent answers as `service` with, or undefined if it has no such leaf. */
  serverContext(service: string): SecureContext | undefined;
  log: LogFn;
  /** Bound on concurrent connections per listener. */
  connectionsMax: number;
  /** Log every request (proxy-defaults config accessLogs: true). */
  accessLogs(): boolean;
}
