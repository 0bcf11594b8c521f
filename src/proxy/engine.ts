// The data plane: the inbound mTLS listener and one loopback listener per upstream, driven by the
// snapshots the control plane posts. It runs in its own worker thread (worker.ts), so proxy load
// never delays membership probes or Raft heartbeats on the agent's main event loop.
//
// Applying a snapshot never drops a connection: listeners whose port stays are kept (their
// handlers read the current upstream on each call), removed ones stop accepting and drain their
// connections (drain.ts: each finishes what is in flight, then closes), new ones open. A listener that cannot bind is reported in the status.

import { createServer as createH2Server } from 'node:http2';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import { ANY_SERVICE } from '../core/catalog/definition.js';
import { TUNNEL_LIMITS } from './connect-tunnel.js';
import type { EngineContext, LogFn } from './context.js';
import { DRAIN_LIMITS, ListenerConnections } from './drain.js';
import type { Exchange } from './h1/exchange.js';
import { serveH1Accepted } from './h1/relay.js';
import { ignoreStreamError } from './h2-forward.js';
import { HostPort } from './host-port.js';
import { Inbound } from './inbound.js';
import { LogGate } from './log-gate.js';
import { LoopWatch } from './loop-watch.js';
import { ProxyMetrics } from './metrics.js';
import { handleH2Stream } from './outbound-h2.js';
import { handleH1 } from './outbound-http.js';
import { handleTcpConnection } from './outbound-tcp.js';
import { ContextCache } from './peer-tls.js';
import { Pools } from './pools.js';
import { RoutingTable } from './routing.js';
import type { ProxyProtocol, ProxySnapshot, ProxyStatus, ProxyUpstream } from './types.js';

interface Listener {
  key: string;
  protocol: ProxyProtocol;
  server: Server;
  up: ProxyUpstream;
  error: string;
  /** Its open connections: drained when a snapshot removes the listener (drain.ts). */
  conns: ListenerConnections;
}

/** How long after a failed bind an upstream listener tries again. */
const LISTEN_RETRY_MS = 5_000;

const listenerKey = (u: ProxyUpstream): string => `${u.bindHost}:${u.port}`;
/** HTTP/2 on an upstream port: http2 and grpc speak it; everything else is HTTP/1.1 or raw TCP. */
const serverKind = (p: ProxyProtocol): 'tcp' | 'h1' | 'h2' =>
  p === 'tcp' ? 'tcp' : p === 'http' ? 'h1' : 'h2';

export class ProxyEngine {
  readonly metrics = new ProxyMetrics();
  /** The proxy thread's own pauses (event loop delay, GC), as metrics. */
  private readonly loop = new LoopWatch(this.metrics.registry);
  private readonly routing: RoutingTable;
  private readonly pools = new Pools((service, protocol) =>
    this.metrics.instanceConnection(service, protocol),
  );
  private readonly contexts = new ContextCache();
  /** This snapshot's TLS context per local service that has a certificate. */
  private current = new Map<string, SecureContext>();
  private readonly listeners = new Map<string, Listener>();
  private readonly inbound: Inbound;
  private inboundAddress = '';
  private snapshotsApplied = 0;
  private stopped = false;
  private readonly ctx: EngineContext;
  /** Every record of this engine goes out through it: at most LOG_GATE_LIMITS a second. */
  private readonly logGate: LogGate;

  /**
   * `draw`: where fault injection and retry back-off take their random numbers in [0, 1) (tests
   * pin them; default: the routing table's seeded generator). `tunnelIdleTimeoutMs`: how long an
   * HTTP/2 tunnel of the HTTP proxy port may sit with no call (TUNNEL_LIMITS). `drainCloseAfterMs`:
   * how long a removed listener's connections may take to finish (DRAIN_LIMITS). Tests shorten both.
   */
  constructor(
    private readonly opts: {
      connectionsMax: number;
      log: LogFn;
      draw?: () => number;
      tunnelIdleTimeoutMs?: number;
      drainCloseAfterMs?: number;
    },
  ) {
    this.routing = new RoutingTable(opts.draw);
    this.logGate = new LogGate(opts.log, () => this.metrics.logsDropped.inc());
    this.ctx = {
      routing: this.routing,
      pools: this.pools,
      metrics: this.metrics,
      log: this.logGate.log,
      connectionsMax: opts.connectionsMax,
      trustDomain: () => this.routing.snapshot.trustDomain,
      clientContext: (source) => this.contextFor(source),
      serverContext: (service) => this.contextFor(service),
      accessLogs: () => this.routing.snapshot.accessLogs,
    };
    this.inbound = new Inbound(this.ctx);
    this.metrics.watchMux(() => ({ caller: this.pools.mux.counts(), callee: this.inbound.muxCounts() }));
    this.metrics.onActive = (active) => this.loop.setActive(active);
    this.metrics.watchEjected(() => this.routing.ejections.counts());
    this.metrics.watchGates(() => this.routing.gates.counts());
    this.routing.ejections.onEject = (e) => {
      this.metrics.ejections.inc({ service: e.service });
      this.ctx.log('warn', 'instance ejected after failures in a row', {
        service: e.service,
        instance: e.id,
        ejectionMs: e.lengthMs,
      });
    };
  }

  /** Requests held by a fault's delay now (at most FAULT_SHELL_LIMITS.delaysActiveMax). */
  get faultsHeld(): number {
    return this.routing.faults.active;
  }

  async start(host: string, port: number): Promise<{ host: string; port: number }> {
    const a = await this.inbound.listen(host, port);
    this.inboundAddress = `${a.host}:${a.port}`;
    // A stop that came while the listener was opening has already run: start nothing after it.
    if (!this.stopped) this.loop.start();
    return a;
  }

  /**
   * Asked on every request and connection: answered from a per-snapshot map, so the content-keyed
   * cache (whose key is the whole certificate and roots text) is consulted once per snapshot.
   */
  private contextFor(service: string): SecureContext | undefined {
    const held = this.current.get(service);
    if (held) return held;
    const s = this.routing.snapshot;
    const cert = s.certs[service];
    if (!cert || s.roots.length === 0) return undefined;
    // Only names with a certificate are kept (a caller's server name is not: it is untrusted input).
    const ctx = this.contexts.get(cert, s.roots);
    this.current.set(service, ctx);
    return ctx;
  }

  apply(s: ProxySnapshot): void {
    const rootsChanged = s.roots.join('') !== this.routing.snapshot.roots.join('');
    this.routing.apply(s);
    this.current = new Map();
    this.snapshotsApplied++;
    // Sessions to peer agents opened with a certificate or roots this snapshot replaced make way
    // for new ones: requests from now on prove the current identity.
    const live = new Set<SecureContext>();
    for (const service of Object.keys(s.certs)) {
      const context = this.contextFor(service);
      if (context) live.add(context);
    }
    this.pools.mux.retireUnless(live);
    this.pools.retireH2Unless(live);
    this.contexts.retain(live);
    if (rootsChanged) this.inbound.setRoots(s.roots);
    const wanted = new Map(s.upstreams.map((u) => [listenerKey(u), u]));
    for (const [key, l] of this.listeners) {
      const u = wanted.get(key);
      // Kept as is unless its kind changed. One that failed to bind is kept too: its own timer tries
      // again every LISTEN_RETRY_MS (reopening it here did so, and logged, on every snapshot).
      if (u && serverKind(u.protocol) === serverKind(l.protocol)) {
        l.up = u;
        continue;
      }
      // Stop accepting, and end its connections: they finish what is in flight (drain.ts).
      l.server.close();
      this.listeners.delete(key);
      const closeAfterMs = this.opts.drainCloseAfterMs ?? DRAIN_LIMITS.closeAfterMs;
      const open = l.conns.drain(closeAfterMs);
      if (open > 0)
        this.ctx.log('info', 'upstream listener removed; draining its connections', {
          address: key,
          destination: l.up.destination,
          connections: open,
          closeAfterMs,
        });
    }
    for (const [key, u] of wanted) if (!this.listeners.has(key)) this.open(key, u);
    // Last, with the new state in place: requests a raised limit lets through go out now.
    this.routing.gates.refresh();
  }

  private open(key: string, up: ProxyUpstream): void {
    const ctx = this.ctx;
    const conns = new ListenerConnections();
    const server = this.makeServer(up.protocol, () => l.up, conns);
    const l: Listener = { key, protocol: up.protocol, server, up, error: '', conns };
    server.maxConnections = this.opts.connectionsMax;
    server.on('error', (err) => {
      l.error = err.message;
      ctx.log('error', 'upstream listener failed', {
        address: key,
        destination: l.up.destination,
        err: err.message,
        retryInMs: LISTEN_RETRY_MS,
      });
      // The port may be freed later (a process exits): try again while the upstream is wanted.
      const retry = setTimeout(() => {
        if (this.listeners.get(key) !== l || this.stopped) return;
        this.listeners.delete(key);
        this.open(key, l.up);
      }, LISTEN_RETRY_MS);
      retry.unref();
    });
    server.listen(up.port, up.bindHost, () => {
      l.error = '';
      ctx.log('info', 'upstream listener open', {
        address: key,
        source: up.source,
        destination: up.destination,
        protocol: up.protocol,
      });
    });
    this.listeners.set(key, l);
  }

  private makeServer(protocol: ProxyProtocol, up: () => ProxyUpstream, conns: ListenerConnections): Server {
    const ctx = this.ctx;
    switch (serverKind(protocol)) {
      case 'tcp':
        // Half-open: a client's FIN is relayed as a FIN, and the answer still comes back.
        return createNetServer({ allowHalfOpen: true }, (socket) => {
          // No graceful end to ask a TCP connection for: a drain closes it at its deadline.
          conns.add(socket);
          handleTcpConnection(ctx, up(), socket);
        });
      case 'h1': {
        // The upstream is read per request: a snapshot may change its routing mid-connection.
        // Accepted paused, so the relay can move the connection to a socket that reads into its
        // thread's read buffer before a byte is read (h1/accepted.ts). Half-open: a client may
        // shut down its sending side after a request and still read the answer (relay.ts).
        const refused = (status: number): void => {
          ctx.metrics.unreadable.inc({ direction: 'outbound', code: String(status) });
        };
        const byHost = new HostPort(
          ctx,
          up,
          this.opts.tunnelIdleTimeoutMs ?? TUNNEL_LIMITS.h2IdleTimeoutMs,
          conns,
        );
        const handle = (x: Exchange): void => {
          const u = up();
          if (u.destination === ANY_SERVICE) byHost.handle(u, x);
          else if (x.head.method === 'CONNECT') {
            refused(405);
            refuseConnect(x);
          } else handleH1(ctx, u, x);
        };
        // CONNECT reaches the handler: the HTTP proxy port opens tunnels (connect-tunnel.ts).
        return createNetServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
          const served = serveH1Accepted(socket, handle, true, refused);
          conns.add(served.socket, () => served.drain());
          ctx.metrics.countOpen('outbound', served.socket);
        });
      }
      case 'h2': {
        const s = createH2Server();
        s.on('connection', (socket: Socket) => ctx.metrics.countOpen('outbound', socket));
        // GOAWAY when drained: calls in flight finish, new ones go to a new connection.
        s.on('session', (session) => conns.add(session, () => session.close()));
        s.on('stream', (stream, headers) => {
          // A caller's reset with an error code is emitted as 'error' (handled by 'close' below):
          // unheard, it would end this thread, and every call through it.
          stream.on('error', ignoreStreamError);
          void handleH2Stream(ctx, up(), stream, headers);
        });
        return s as unknown as Server;
      }
    }
  }

  status(): ProxyStatus {
    const s = this.routing.snapshot;
    return {
      version: s.version,
      inbound: this.inboundAddress,
      upstreams: [...this.listeners.values()].map((l) => ({
        source: l.up.source,
        destination: l.up.destination,
        address: l.key,
        protocol: l.up.protocol,
        error: l.error,
        ...(l.up.limits !== undefined ? { limits: l.up.limits } : {}),
      })),
      snapshotsApplied: this.snapshotsApplied,
      certs: Object.keys(s.certs).sort(),
      handshakeFailures: this.inbound.handshakeFailures,
      ejected: this.ejectedNow(),
    };
  }

  private ejectedNow(): ProxyStatus['ejected'] {
    return this.routing.ejections
      .list()
      .map((e) => ({ service: e.service, instance: e.id, remainingMs: Math.round(e.remainingMs) }));
  }

  stop(): void {
    this.stopped = true;
    for (const l of this.listeners.values()) l.server.close();
    this.listeners.clear();
    this.inbound.close();
    this.pools.close();
    this.logGate.stop();
    this.loop.stop();
  }
}

/** A CONNECT on an upstream port of one service: tunnels are the HTTP proxy port's ("*"). */
function refuseConnect(x: Exchange): void {
  x.reply(405, 'mesh: this upstream port does not open CONNECT tunnels; the HTTP proxy port ("*") does');
  x.finish();
}
