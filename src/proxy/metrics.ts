// The data plane's Prometheus metrics (prom-client), kept in the proxy worker and served by the
// agent's /v1/agent/metrics?format=prometheus. Labels are service names and status codes only, so
// the series count is bounded by the services on this agent and the services they call.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Direction = 'inbound' | 'outbound';

/** Latency buckets in seconds: 0.5 ms to 10 s, dense where a mesh hop lives (sub-millisecond to tens of ms). */
const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** Label sets whose prom-client children are kept (services on this agent × callers × codes). */
const CHILDREN_CACHED_MAX = 4096;

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'mesh_proxy_requests_total',
    help: 'HTTP and gRPC requests through the proxy, by direction, source and destination service and status code',
    labelNames: ['direction', 'source', 'destination', 'code'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'mesh_proxy_request_duration_seconds',
    help: 'Time from receiving a request to the end of its response, as seen by this agent',
    labelNames: ['direction', 'source', 'destination'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly connections = new Counter({
    name: 'mesh_proxy_connections_total',
    help: 'TCP connections through the proxy, by direction, services and result (ok, refused, error)',
    labelNames: ['direction', 'source', 'destination', 'result'] as const,
    registers: [this.registry],
  });
  readonly open = new Gauge({
    name: 'mesh_proxy_connections_open',
    help: 'Connections the proxy holds open now (client side of outbound listeners, and inbound)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly denied = new Counter({
    name: 'mesh_proxy_intention_denied_total',
    help: 'Connections or requests refused by an intention',
    labelNames: ['source', 'destination'] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'mesh_proxy_tcp_bytes_total',
    help: 'Bytes relayed by L4 (tcp) connections, by direction of the connection and of the bytes',
    labelNames: ['direction', 'source', 'destination', 'flow'] as const,
    registers: [this.registry],
  });

  /** Labelled children by label values: prom-client hashes the labels of every unlabelled call. */
  private readonly children = new Map<string, { inc(): void; observe(v: number): void }>();

  /** Count one request and its duration (seconds; omitted for a request refused before it started). */
  request(direction: Direction, source: string, destination: string, code: number, seconds?: number): void {
    const key = `${direction}\u0000${source}\u0000${destination}\u0000${code}`;
    let c = this.children.get(key);
    if (c === undefined) {
      const counter = this.requests.labels(direction, source, destination, String(code));
      const histogram = this.latency.labels(direction, source, destination);
      c = { inc: () => counter.inc(), observe: (v) => histogram.observe(v) };
      // Bounded like the series themselves; past it, calls still count, only uncached.
      if (this.children.size < CHILDREN_CACHED_MAX) this.children.set(key, c);
    }
    c.inc();
    if (seconds !== undefined) c.observe(seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
