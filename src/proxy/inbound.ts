// The inbound mTLS listener (one per agent, `--inbound`). A caller's agent proves its service's
// identity with a leaf certificate from the cluster CA; the server name it asks for selects the
// destination service (and the certificate this agent proves it with); ALPN selects L4 or L7.
// Intentions are checked for every connection (L4) or request (L7); a denial is counted and
// answered clearly: a closed connection, HTTP 403, gRPC PERMISSION_DENIED.

import {
  createServer as createH2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { connect as netConnect } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { peerServiceOf } from '../ca/spiffe.js';
import { type Admissible, admit, localInstanceOf, refused } from './admission.js';
import type { EngineContext } from './context.js';
import type { Exchange } from './h1/exchange.js';
import { INSTANCE_HEADER } from './h1/fields.js';
import { type ForwardListener, type Outcome, STALE_SOCKET_RETRIES_MAX } from './h1/forward.js';
import { type Head, removeHeaders } from './h1/head.js';
import { serveH1 } from './h1/relay.js';
import {
  failedGrpcStatus,
  forwardH2,
  grpcStatusOf,
  ignoreStreamError,
  isGrpc,
  replyH2Error,
  upstreamHeaders,
} from './h2-forward.js';
import { countOf } from './mux/client.js';
import { MuxSession } from './mux/session.js';
import {
  ALPN_H1,
  ALPN_H2,
  ALPN_MUX,
  ALPN_TCP,
  INBOUND_ALPN,
  serviceOfServerName,
  TLS_SESSION_LIMITS,
} from './peer-tls.js';
import { forwardTarget } from './pools.js';
import { readPreamble } from './preamble.js';
import { h1RequestInfo, h2RequestInfo } from './request-info.js';
import { closeAfterFlush, closeWhenIdle } from './tcp-close.js';
import { h1UnderscoreNames, h2UnderscoreNames } from './underscores.js';

/** Headers the caller's agent adds for this hop; never passed to the instance. */
export { INSTANCE_HEADER };

const PREAMBLE_TIMEOUT_MS = 5_000;
const DROP_ON_INBOUND: ReadonlySet<string> = new Set([INSTANCE_HEADER]);
/** The HTTP/2 headers the inbound side drops, as a list (upstreamHeaders'); one array, not one per call. */
const ONLY_INSTANCE_HEADER: readonly string[] = [INSTANCE_HEADER];
/** admit's options, made once rather than per request. */
const NOT_GRPC = { grpc: false };
const IS_GRPC = { grpc: true };

/** An HTTP/1.1 request on the inbound listener, as the admission checks read and change it. */
const H1_INBOUND: Admissible<Head> = {
  underscoreNames: h1UnderscoreNames,
  dropHeaders: (head, names) => removeHeaders(head, new Set(names)),
  info: h1RequestInfo,
};

/** An HTTP/2 or gRPC request on the inbound listener: its headers object (Node's, ours to change). */
const H2_INBOUND: Admissible<IncomingHttpHeaders> = {
  underscoreNames: h2UnderscoreNames,
  dropHeaders: (headers, names) => {
    for (const name of names) delete headers[name];
  },
  info: h2RequestInfo,
};
const HANDSHAKE_TIMEOUT_MS = 10_000;

interface Caller {
  source: string;
  destination: string;
}

export class Inbound {
  private readonly tls: TlsServer;
  private readonly h2 = createH2Server({ maxSessionMemory: 64 });
  private readonly callers = new WeakMap<object, Caller>();
  private pendingCaller: Caller | undefined;
  /** mesh-mux/1 sessions callers hold open to this agent. */
  private readonly muxSessions = new Set<MuxSession>();
  /** TCP connections open to each local instance, by instance id (for service-defaults maxConnections). */
  private readonly tcpOpen = new Map<string, number>();
  handshakeFailures = 0;
  /** Requests from callers the relay refused unread (a caller's agent sends none; another client might). */
  private readonly refused = (status: number): void => {
    this.ctx.metrics.unreadable.inc({ direction: 'inbound', code: String(status) });
  };

  constructor(private readonly ctx: EngineContext) {
    this.tls = createTlsServer({
      SNICallback: (name, cb) => {
        const context = ctx.serverContext(serviceOfServerName(name, ctx.trustDomain()) ?? '');
        if (context) cb(null, context);
        else cb(new Error(`no local service for server name ${name}`));
      },
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: INBOUND_ALPN,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      minVersion: 'TLSv1.3',
      // Tickets let a caller resume (peer-tls.ts); their lifetime bounds how long one stands for
      // the certificate checks of the handshake that issued it.
      sessionTimeout: TLS_SESSION_LIMITS.ticketLifetimeS,
      // Responses go out as several small writes (head, body): with Nagle's algorithm the second
      // waits for the caller's delayed ACK, ~40 ms a request.
      noDelay: true,
    });
    this.tls.on('secureConnection', (s) => this.onConnection(s));
    this.tls.on('tlsClientError', () => this.handshakeFailures++);
    this.tls.maxConnections = ctx.connectionsMax;
    this.h2.on('session', (session: ServerHttp2Session) => {
      // Emitted synchronously inside emit('connection'): pendingCaller is this socket's caller.
      if (this.pendingCaller) this.callers.set(session, this.pendingCaller);
    });
    this.h2.on('stream', (stream, headers) => {
      // As on the upstream ports (engine.ts): a caller's reset must not end the thread.
      stream.on('error', ignoreStreamError);
      void this.onH2(stream, headers);
    });
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.tls.once('error', reject);
      this.tls.listen(port, host, () => {
        this.tls.off('error', reject);
        const a = this.tls.address();
        resolve({ host, port: typeof a === 'object' && a ? a.port : port });
      });
    });
  }

  /** Trusted roots changed: the default context verifies callers against them. */
  setRoots(roots: readonly string[]): void {
    if (roots.length > 0) this.tls.setSecureContext({ ca: [...roots], minVersion: 'TLSv1.3' });
  }

  close(): void {
    this.tls.close();
    this.h2.close();
  }

  private onConnection(socket: TLSSocket): void {
    const peer = peerServiceOf(socket.getPeerCertificate());
    const destination = serviceOfServerName(socket.servername || '', this.ctx.trustDomain());
    if (!peer || peer.trustDomain !== this.ctx.trustDomain() || destination === undefined) {
      // A valid chain but no identity of this mesh (another trust domain, no SPIFFE id).
      this.handshakeFailures++;
      this.ctx.log('warn', 'inbound connection without a mesh identity refused', {
        peer: peer ? `${peer.trustDomain}/${peer.service}` : 'none',
        serverName: socket.servername || '',
      });
      socket.destroy();
      return;
    }
    // A resumed session (a ticket: peer-tls.ts) skips SNICallback, where a server name of a service
    // this agent holds no certificate for (any more) is refused: refused here too. The caller, its
    // resumed connection ended before a byte, forgets the ticket; its next connection makes a full
    // handshake, which fails, and fails over, as it always did.
    if (!this.ctx.serverContext(destination)) {
      this.handshakeFailures++;
      this.ctx.log('warn', 'inbound connection for a service this agent does not serve refused', {
        peer: `${peer.trustDomain}/${peer.service}`,
        serverName: socket.servername || '',
      });
      socket.destroy();
      return;
    }
    const caller: Caller = { source: peer.service, destination };
    this.ctx.metrics.countOpen('inbound', socket);
    socket.on('error', () => undefined);
    switch (socket.alpnProtocol) {
      case ALPN_TCP:
        void this.onTcp(socket, caller);
        return;
      case ALPN_H2:
        this.pendingCaller = caller;
        this.h2.emit('connection', socket);
        this.pendingCaller = undefined;
        return;
      case ALPN_H1:
        serveH1(socket, (x) => this.onH1(caller, x, false), this.refused);
        return;
      case ALPN_MUX:
        this.acceptMux(socket, caller);
        return;
      default:
        socket.destroy();
    }
  }

  /** Every stream of the session is an HTTP/1.1 connection from the same caller (its certificate). */
  private acceptMux(socket: TLSSocket, caller: Caller): void {
    const session = new MuxSession(socket, 'callee', (stream) =>
      serveH1(stream, (x) => this.onH1(caller, x, true), this.refused),
    );
    this.muxSessions.add(session);
    socket.once('close', () => this.muxSessions.delete(session));
  }

  /** Sessions callers hold open to this agent, and their streams (for metrics). */
  muxCounts(): { sessions: number; streams: number } {
    return countOf(this.muxSessions);
  }

  private async onTcp(socket: TLSSocket, caller: Caller): Promise<void> {
    const labels = { direction: 'inbound', source: caller.source, destination: caller.destination } as const;
    let instanceId: string;
    try {
      ({ instanceId } = await readPreamble(socket, PREAMBLE_TIMEOUT_MS));
    } catch (err) {
      this.ctx.log('warn', 'inbound connection without a valid preamble', {
        ...caller,
        err: (err as Error).message,
      });
      socket.destroy();
      return;
    }
    const decision = this.ctx.routing.intention(caller.source, caller.destination);
    if (!decision.allow) {
      this.ctx.metrics.denied.inc({ source: caller.source, destination: caller.destination });
      this.ctx.metrics.connections.inc({ ...labels, result: 'refused' });
      this.ctx.log('info', 'connection refused by intention', { ...caller, reason: decision.reason });
      socket.destroy();
      return;
    }
    const inst = localInstanceOf(this.ctx, caller.destination, instanceId);
    if (!inst) {
      this.ctx.metrics.connections.inc({ ...labels, result: 'error' });
      socket.destroy();
      return;
    }
    if (inst.rateLimits !== undefined) {
      // An HTTP instance with rate limits reached as tcp (a caller that sees the service as tcp)
      // would bypass them: refused, as an L7 intention refuses a connection.
      this.ctx.metrics.connections.inc({ ...labels, result: 'refused' });
      this.ctx.log('info', 'connection refused: the instance has rate limits, which apply to requests', {
        ...caller,
        instance: inst.id,
      });
      socket.destroy();
      return;
    }
    const open = this.tcpOpen.get(inst.id) ?? 0;
    if (inst.connectionsMax !== undefined && open >= inst.connectionsMax) {
      // service-defaults maxConnections: the instance has all the connections it may have.
      this.ctx.metrics.connections.inc({ ...labels, result: 'overflow' });
      this.ctx.log('warn', 'connection refused: the instance is at its maxConnections', {
        ...caller,
        instance: inst.id,
        maxConnections: inst.connectionsMax,
      });
      socket.destroy();
      return;
    }
    this.tcpOpen.set(inst.id, open + 1);
    // Half-open both ways: the caller's FIN reaches the instance as a FIN, and its answer still
    // flows back (a client that sends a request, shuts down its side, then reads).
    socket.allowHalfOpen = true;
    this.ctx.metrics.instanceConnection(inst.service, 'tcp');
    const local = netConnect({ host: inst.host, port: inst.port, allowHalfOpen: true });
    local.once('close', () => {
      const n = (this.tcpOpen.get(inst.id) ?? 1) - 1;
      if (n > 0) this.tcpOpen.set(inst.id, n);
      else this.tcpOpen.delete(inst.id);
    });
    local.setNoDelay(true);
    local.setTimeout(inst.connectTimeoutMs, () => local.destroy());
    local.once('connect', () => {
      local.setTimeout(0);
      this.ctx.metrics.connections.inc({ ...labels, result: 'ok' });
      socket.pipe(local);
      local.pipe(socket);
      socket.resume();
      closeWhenIdle(socket, local, this.ctx.log, labels);
    });
    local.once('error', () => {
      if (local.connecting) this.ctx.metrics.connections.inc({ ...labels, result: 'error' });
      socket.destroy();
    });
    local.once('close', () => closeAfterFlush(socket));
    socket.once('close', () => closeAfterFlush(local));
  }

  private onH1(caller: Caller, x: Exchange, muxed: boolean): void {
    const startedMs = performance.now();
    if (muxed && x.head.upgrade) {
      // An upgraded connection's bytes are not HTTP and could not be framed: a caller sends upgrades
      // over a connection of their own (outbound-http.ts).
      x.reply(400, 'mesh: an upgrade needs a connection of its own, not a mesh-mux/1 stream');
      x.finish();
      return;
    }
    const inst = admit(
      this.ctx,
      caller.source,
      caller.destination,
      x.head.instance,
      x.head,
      H1_INBOUND,
      NOT_GRPC,
    );
    if (refused(inst)) {
      x.reply(inst.status, inst.message);
      x.finish();
      return;
    }
    const target = forwardTarget(
      this.ctx.pools.localTarget(inst),
      x.startLine(x.head.method, x.head.target),
      x.headerBlock(DROP_ON_INBOUND),
      inst.requestTimeoutMs,
    );
    let staleRetries = 0;
    const done: ForwardListener = {
      forwarded: (o: Outcome): void => {
        if (!o.sentResponse && o.staleSocket && x.replayable && staleRetries++ < STALE_SOCKET_RETRIES_MAX) {
          x.forward(target, done);
          return;
        }
        if (!o.sentResponse)
          x.reply(o.status, `mesh: ${caller.destination} instance ${inst.id}: ${o.message}`);
        const seconds = (performance.now() - startedMs) / 1000;
        this.ctx.metrics.request('inbound', caller.source, caller.destination, o.status, seconds);
        x.finish();
      },
    };
    x.forward(target, done);
  }

  private async onH2(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const caller = this.callers.get(stream.session as object);
    const grpc = isGrpc(headers);
    if (!caller) return replyH2Error(stream, grpc, 400, 16, 'mesh: no caller identity');
    const startedMs = performance.now();
    const { source, destination } = caller;
    const inst = admit(
      this.ctx,
      source,
      destination,
      headerString(headers[INSTANCE_HEADER]),
      headers,
      H2_INBOUND,
      grpc ? IS_GRPC : NOT_GRPC,
    );
    if (refused(inst)) return replyH2Error(stream, grpc, inst.status, inst.grpcStatus, inst.message);
    const authority = `${inst.host}:${inst.port}`;
    const session = this.ctx.pools.h2Session(`local|${inst.id}`, authority, undefined, inst.service);
    const path = headerString(headers[':path']) ?? '/';
    const o = await forwardH2(
      stream,
      session,
      upstreamHeaders(headers, path, authority, {}, ONLY_INSTANCE_HEADER),
      inst.requestTimeoutMs,
    );
    if (!o.sentResponse)
      replyH2Error(stream, grpc, o.status, failedGrpcStatus(o), `mesh: ${destination}: ${o.message}`);
    const seconds = (performance.now() - startedMs) / 1000;
    this.ctx.metrics.request('inbound', source, destination, o.status, seconds, grpcStatusOf(grpc, o));
  }
}

export function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
