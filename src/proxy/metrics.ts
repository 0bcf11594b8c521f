// The data plane's Prometheus metrics (prom-client), kept in the proxy worker and served by the
// agent's /v1/agent/metrics?format=prometheus. Labels are service names and status codes only, so
// the series count is bounded by the services on this agent and the services they call.

import { Counter, Gauge, Registry } from 'prom-client';
import { entryOf, newMap } from './maps.js';

export type Direction = 'inbound' | 'outbound';

/** Open mesh-mux/1 sessions and the streams on them, by this agent's role in them. */
export interface MuxCounts {
  caller: { sessions: number; streams: number };
  callee: { sessions: number; streams: number };
}

const NO_MUX: MuxCounts = { caller: { sessions: 0, streams: 0 }, callee: { sessions: 0, streams: 0 } };

/** Calls in flight and waiting at the callers' circuit breakers, per pair that has any. */
export type GateCounts = Array<{ source: string; destination: string; active: number; pending: number }>;

/** Latency buckets in seconds: 0.5 ms to 10 s, dense where a mesh hop lives (sub-millisecond to tens of ms). */
const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** Request series (direction × source × destination) kept at once. */
const SERIES_MAX = 4096;

/**
 * Status codes kept apart in one series (each has its own histogram). Services answer a handful;
 * past this, and for a code outside 100–599 (an upstream may send any three digits), requests
 * are counted under `code="other"`, so an upstream cannot multiply the series.
 */
const CODES_MAX = 32;
/** The key of `code="other"`. */
const OTHER_CODE = 0;

/** Label values as the exposition format wants them (backslash, quote and newline escaped). */
const esc = (v: string): string => v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));

/** Requests of one status code in one series: their count and latency histogram. */
interface CodeSeries {
  n: number;
  /** Count per latency bucket (non-cumulative; the last is above every bound), sum and count of the timed ones. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** The per-request series of one direction, source and destination: plain numbers, no hashing. */
interface RequestSeries {
  labels: string;
  /** By HTTP status code: at most CODES_MAX, the rest under OTHER_CODE. */
  codes: Map<number, CodeSeries>;
  /** gRPC calls by their `grpc-status` (0–16, or `unknown`, or `none` when the call ended without one). */
  grpc: Map<string, number> | undefined;
}

/**
 * The `grpc_status` label of a value from the wire: one of gRPC's 17 codes, or `unknown`, so a
 * misbehaving server cannot add series. An empty value (no status came) is `none`.
 */
export function grpcStatusLabel(value: string): string {
  if (value === '') return 'none';
  return /^(?:[0-9]|1[0-6])$/.test(value) ? value : 'unknown';
}

const REQUESTS_NAME = 'mesh_proxy_requests_total';
const REQUESTS_HELP =
  'HTTP and gRPC requests through the proxy, by direction, source and destination service and status code';
const LATENCY_NAME = 'mesh_proxy_request_duration_seconds';
const LATENCY_HELP =
  'Time from receiving a request to the end of its response (an upgrade: to its 101, not the upgraded connection), as seen by this agent, by direction, services and status code';
const GRPC_NAME = 'mesh_proxy_grpc_requests_total';
const GRPC_HELP =
  'gRPC calls through the proxy, by direction, source and destination service and grpc-status (the HTTP status of most is 200)';

/** How the proxy speaks to a local instance, as the instance-connection counter labels it. */
export type InstanceProtocol = 'http' | 'http2' | 'tcp';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly connections = new Counter({
    name: 'mesh_proxy_connections_total',
    help: 'TCP connections through the proxy, by direction, services and result (ok, refused, error)',
    labelNames: ['direction', 'source', 'destination', 'result'] as const,
    registers: [this.registry],
  });
  readonly open = new Gauge({
    name: 'mesh_proxy_connections_open',
    help: 'Connections the proxy holds open now: clients of upstream listeners (outbound), and callers on the inbound listener',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly denied = new Counter({
    name: 'mesh_proxy_intention_denied_total',
    help: 'Connections or requests refused by an intention',
    labelNames: ['source', 'destination'] as const,
    registers: [this.registry],
  });
  /** Read at each scrape (the engine's sessions are the truth; nothing to keep in step). */
  private muxCounts: () => MuxCounts = () => NO_MUX;
  readonly muxSessions = this.muxGauge(
    'mesh_proxy_mux_sessions_open',
    'mesh-mux/1 connections between agents open now: as the caller (role="caller") or the callee',
    'sessions',
  );
  readonly muxStreams = this.muxGauge(
    'mesh_proxy_mux_streams_open',
    'HTTP/1.1 connections carried on mesh-mux/1 sessions now, by this agent’s role in the session',
    'streams',
  );
  readonly handshakes = new Counter({
    name: 'mesh_proxy_peer_handshakes_total',
    help: 'mTLS handshakes this agent made as the caller, by whether they resumed an earlier session (a ticket) or were full',
    labelNames: ['resumed'] as const,
    registers: [this.registry],
  });
  readonly instanceConnections = new Counter({
    name: 'mesh_proxy_instance_connections_total',
    help: 'Connections this agent opened to its own service instances, by service and protocol (http, http2, tcp). HTTP ones are pooled: a rate that follows the request rate means they are not reused',
    labelNames: ['service', 'protocol'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'mesh_proxy_retries_total',
    help: 'Retries a route asked for (HTTP/1.1, HTTP/2 and gRPC), by source and destination service and result: sent, or budget_exhausted (the router’s retryBudget refused it and the failure was passed on)',
    labelNames: ['source', 'destination', 'result'] as const,
    registers: [this.registry],
  });
  readonly faults = new Counter({
    name: 'mesh_proxy_faults_total',
    help: 'Requests a service-router route’s fault injection held (fault="delay") or answered with its error (fault="abort") at this agent, by source and destination service; fault="delay_skipped": a delay drawn but not injected, with as many requests already held as an agent holds at once',
    labelNames: ['source', 'destination', 'fault'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'mesh_proxy_rate_limited_total',
    help: 'Requests to a local instance refused by its service-defaults rateLimits (429, or gRPC RESOURCE_EXHAUSTED), by service',
    labelNames: ['service'] as const,
    registers: [this.registry],
  });
  readonly ejections = new Counter({
    name: 'mesh_proxy_ejections_total',
    help: 'Instances of a destination service this agent stopped calling for a while after failures in a row (the resolver’s passiveHealthCheck), by service',
    labelNames: ['service'] as const,
    registers: [this.registry],
  });
  /** Read at each scrape, as the mux gauges. */
  private ejectedCounts: () => Map<string, number> = () => new Map();
  readonly ejected = this.ejectedGauge();
  readonly limitRefused = new Counter({
    name: 'mesh_proxy_upstream_limit_refused_total',
    help: 'Calls this agent refused as the caller because a circuit breaker of the calling service was full (service-defaults upstreamConfig limits), by source and destination service and limit (maxConnections, maxPendingRequests, maxConcurrentRequests); a request that waited for a connection until its route’s timeout counts under maxConnections',
    labelNames: ['source', 'destination', 'limit'] as const,
    registers: [this.registry],
  });
  private gateCounts: () => GateCounts = () => [];
  readonly limitActive = this.gateGauge(
    'mesh_proxy_upstream_limit_active',
    'Calls (TCP connections, HTTP and gRPC requests) from a calling service to a destination in flight now, for pairs with circuit breakers (service-defaults upstreamConfig limits) that have any',
    'active',
  );
  readonly limitPending = this.gateGauge(
    'mesh_proxy_upstream_limit_pending',
    'HTTP/1.1 requests from a calling service waiting for one of its maxConnections to a destination now, for pairs that have any in flight or waiting',
    'pending',
  );
  /** The relay's own refusals, before any routing: the request could not be read or is not served. */
  readonly unreadable = new Counter({
    name: 'mesh_proxy_requests_refused_unread_total',
    help: 'HTTP/1.1 requests the proxy refused before routing them, by direction and status: malformed or ambiguous heads (400), heads too large (431) or too slow (408), unsupported versions (505) or transfer codings (501), CONNECT where no tunnel is offered (405)',
    labelNames: ['direction', 'code'] as const,
    registers: [this.registry],
  });
  readonly logsDropped = new Counter({
    name: 'mesh_proxy_log_records_dropped_total',
    help: 'Log records of the proxy thread (access logs included) dropped over its limit of records per second',
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'mesh_proxy_tcp_bytes_total',
    help: 'Bytes relayed by L4 (tcp) connections, by direction of the connection and of the bytes',
    labelNames: ['direction', 'source', 'destination', 'flow'] as const,
    registers: [this.registry],
  });

  /** A connection opened to a local instance of `service`. */
  instanceConnection(service: string, protocol: InstanceProtocol): void {
    this.instanceConnections.inc({ service, protocol });
  }

  /** An mTLS handshake this agent made as the caller: resumed from a ticket, or full. */
  handshake(resumed: boolean): void {
    this.handshakes.inc({ resumed: resumed ? 'true' : 'false' });
  }

  /** Count `socket` as open in `direction` until it closes. */
  countOpen(direction: Direction, socket: { once(event: 'close', listener: () => void): unknown }): void {
    this.open.inc({ direction });
    if (this.openTotal++ === 0) this.onActive(true);
    socket.once('close', () => {
      this.open.dec({ direction });
      if (--this.openTotal === 0) this.onActive(false);
    });
  }

  /** Connections open now, both directions. */
  private openTotal = 0;
  /** Told when the first connection opens and when the last one closes (the loop watch samples only between). */
  onActive: (active: boolean) => void = () => undefined;

  /**
   * The request counter and latency histogram, kept here rather than in prom-client: they change on
   * every request, and a prom-client child hashes its labels on every call (about 2 µs a request).
   */
  private readonly series: RequestSeries[] = [];
  /** The series by direction, source and destination (nested: see maps.ts). */
  private readonly byLabels = new Map<Direction, Map<string, Map<string, RequestSeries>>>();

  /**
   * Count one request and its duration (seconds; omitted for a request refused before it started).
   * `grpcStatus` (a gRPC call's `grpc-status`, or '' when none came) also counts it as a gRPC call.
   */
  request(
    direction: Direction,
    source: string,
    destination: string,
    code: number,
    seconds?: number,
    grpcStatus?: string,
  ): void {
    const s =
      this.byLabels.get(direction)?.get(source)?.get(destination) ??
      this.newSeries(direction, source, destination);
    if (s === undefined) return;
    // One lookup on the steady path: a code seen before. (Only 100–599 are stored under their own
    // key; OTHER_CODE, 0, is outside that range, so a stray 0 lands in "other" as it should.)
    const c = s.codes.get(code) ?? codeSeries(s.codes, code);
    c.n++;
    if (grpcStatus !== undefined) {
      s.grpc ??= new Map();
      const label = grpcStatusLabel(grpcStatus);
      s.grpc.set(label, (s.grpc.get(label) ?? 0) + 1);
    }
    if (seconds === undefined) return;
    let i = 0;
    while (i < LATENCY_BUCKETS_S.length && seconds > (LATENCY_BUCKETS_S[i] as number)) i++;
    c.buckets[i] = (c.buckets[i] ?? 0) + 1;
    c.sum += seconds;
    c.count++;
  }

  private newSeries(direction: Direction, source: string, destination: string): RequestSeries | undefined {
    // Bounded like the label values themselves (services on this agent × services they call):
    // past the bound, new label sets are not counted rather than growing without end.
    if (this.series.length >= SERIES_MAX) return undefined;
    const bySource = entryOf(this.byLabels, direction, newMap<string, Map<string, RequestSeries>>);
    const byDestination = entryOf(bySource, source, newMap<string, RequestSeries>);
    const s: RequestSeries = {
      labels: `direction="${esc(direction)}",source="${esc(source)}",destination="${esc(destination)}"`,
      codes: new Map(),
      grpc: undefined,
    };
    byDestination.set(destination, s);
    this.series.push(s);
    return s;
  }

  /** A gauge by role, set from the engine's sessions when scraped. */
  private muxGauge(name: string, help: string, field: 'sessions' | 'streams'): Gauge<'role'> {
    const counts = (): MuxCounts => this.muxCounts();
    return new Gauge({
      name,
      help,
      labelNames: ['role'] as const,
      registers: [this.registry],
      collect() {
        const c = counts();
        this.set({ role: 'caller' }, c.caller[field]);
        this.set({ role: 'callee' }, c.callee[field]);
      },
    });
  }

  /** A gauge by source and destination, set from the circuit breakers when scraped. */
  private gateGauge(
    name: string,
    help: string,
    field: 'active' | 'pending',
  ): Gauge<'source' | 'destination'> {
    const counts = (): GateCounts => this.gateCounts();
    return new Gauge({
      name,
      help,
      labelNames: ['source', 'destination'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of counts()) this.set({ source: c.source, destination: c.destination }, c[field]);
      },
    });
  }

  private ejectedGauge(): Gauge<'service'> {
    const counts = (): Map<string, number> => this.ejectedCounts();
    return new Gauge({
      name: 'mesh_proxy_instances_ejected',
      help: 'Instances of a destination service this agent is not calling now after failures in a row, by service (services with a passiveHealthCheck that has seen a failure)',
      labelNames: ['service'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [service, n] of counts()) this.set({ service }, n);
      },
    });
  }

  /** Where the circuit-breaker gauges read their counts from at each scrape. */
  watchGates(counts: () => GateCounts): void {
    this.gateCounts = counts;
  }

  /** Where the ejected-instances gauge reads its counts from at each scrape. */
  watchEjected(counts: () => Map<string, number>): void {
    this.ejectedCounts = counts;
  }

  /** Where the mux gauges read their counts from at each scrape. */
  watchMux(counts: () => MuxCounts): void {
    this.muxCounts = counts;
  }

  /** The Prometheus text of every data-plane metric. */
  async text(): Promise<string> {
    return this.requestsText() + (await this.registry.metrics());
  }

  private requestsText(): string {
    const counts: string[] = [`# HELP ${REQUESTS_NAME} ${REQUESTS_HELP}`, `# TYPE ${REQUESTS_NAME} counter`];
    const hist: string[] = [`# HELP ${LATENCY_NAME} ${LATENCY_HELP}`, `# TYPE ${LATENCY_NAME} histogram`];
    const grpc: string[] = [`# HELP ${GRPC_NAME} ${GRPC_HELP}`, `# TYPE ${GRPC_NAME} counter`];
    for (const s of this.series) {
      for (const [code, c] of s.codes) {
        const labels = `${s.labels},code="${code === OTHER_CODE ? 'other' : code}"`;
        counts.push(`${REQUESTS_NAME}{${labels}} ${c.n}`);
        if (c.count === 0) continue;
        let cumulative = 0;
        LATENCY_BUCKETS_S.forEach((le, i) => {
          cumulative += c.buckets[i] as number;
          hist.push(`${LATENCY_NAME}_bucket{${labels},le="${le}"} ${cumulative}`);
        });
        hist.push(`${LATENCY_NAME}_bucket{${labels},le="+Inf"} ${c.count}`);
        hist.push(`${LATENCY_NAME}_sum{${labels}} ${c.sum}`);
        hist.push(`${LATENCY_NAME}_count{${labels}} ${c.count}`);
      }
      for (const [status, n] of s.grpc ?? [])
        grpc.push(`${GRPC_NAME}{${s.labels},grpc_status="${status}"} ${n}`);
    }
    return `${counts.join('\n')}\n${hist.join('\n')}\n${grpc.join('\n')}\n`;
  }
}

/** The series a code not seen before in `codes` counts in: its own while there is room, else "other". */
function codeSeries(codes: Map<number, CodeSeries>, code: number): CodeSeries {
  const kept = code >= 100 && code <= 599 && codes.size < CODES_MAX;
  return entryOf(codes, kept ? code : OTHER_CODE, newCodeSeries);
}

function newCodeSeries(): CodeSeries {
  return { n: 0, buckets: new Float64Array(LATENCY_BUCKETS_S.length + 1), sum: 0, count: 0 };
}
