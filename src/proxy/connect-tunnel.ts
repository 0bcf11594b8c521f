// CONNECT tunnels on the HTTP proxy port. A client that uses the port as its proxy for a protocol
// other than plain HTTP/1.1 asks `CONNECT greeter:50051 HTTP/1.1` and then speaks that protocol
// through the tunnel: gRPC clients do so for every channel when grpc_proxy, https_proxy or
// http_proxy is set (grpc-js, grpc-go and grpc-java honour them). The service named decides what the
// agent does with the tunnel's bytes:
// - http2 or grpc: `200 Connection established` at once, then the tunnel is served as HTTP/2 (h2c,
//   as on an upstream port), so each call is routed, balanced, retried, authorised and counted on
//   its own (outbound-h2.ts), as if the service had an upstream port of its own;
// - tcp: the bytes go to one instance through its agent, as on a tcp upstream port
//   (outbound-tcp.ts); the 200 once that agent took the connection, else 502 or 503 and the end.
// An http service is refused by the caller (host-port.ts): its clients call http:// URLs through
// the port, and a tunnel to it would carry TLS (an https:// URL) that the instance does not speak.

import { STATUS_CODES } from 'node:http';
import { createServer as createH2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { EngineContext } from './context.js';
import type { ListenerConnections } from './drain.js';
import { type Exchange, RELAY_LIMITS } from './h1/exchange.js';
import { ignoreStreamError } from './h2-forward.js';
import { handleH2Stream } from './outbound-h2.js';
import { handleTcpConnection, type TcpTunnel } from './outbound-tcp.js';
import type { ProxyUpstream } from './types.js';

export const TUNNEL_LIMITS = Object.freeze({
  /**
   * An HTTP/2 tunnel with no call in flight is closed (GOAWAY) after this long without a frame:
   * the relay's keep-alive timeout, which the connection had before it became a tunnel. A gRPC
   * client opens a new one when it next calls. A tcp tunnel closes as a tcp upstream's connection
   * does (TCP_LIMITS, tcp-close.ts).
   */
  h2IdleTimeoutMs: RELAY_LIMITS.idleTimeoutMs,
  /**
   * A tunnel the agent ends (refused, or its HTTP/2 session closed) waits this long for the
   * client's FIN, reading and dropping what it still sends, then is destroyed: the listener
   * lets a client half-close, and one that never closes would otherwise hold its connection.
   */
  closeGraceMs: 5_000,
});

/** The answer that opens a tunnel (RFC 9110 §9.3.6: a 2xx to CONNECT has no content and no framing headers). */
const CONNECT_ESTABLISHED = 'HTTP/1.1 200 Connection established\r\n\r\n';

/** What the tunnel carries: the destination's protocol. */
export type TunnelKind = 'h2' | 'tcp';

/** The tunnels of one HTTP proxy port. */
export class Tunnels {
  /** Serves every HTTP/2 tunnel of the port; each session's destination is in `sessions`. */
  private h2: Http2Server | undefined = undefined;
  /** Each tunnel's destination, and its calls in flight (one at 0 may be closed when idle). */
  private readonly sessions = new WeakMap<ServerHttp2Session, { destination: string; inFlight: number }>();
  /** The destination of the session being made (the server's 'session' event comes synchronously). */
  private opening: string | undefined = undefined;

  /**
   * `upstreamTo(service)`: the port's upstream for calls to `service`, as of the latest snapshot
   * (read per call: a snapshot may change the caller's limits while a tunnel is open). `conns`:
   * the port's connections; an HTTP/2 tunnel's session joins them, so that removing the port
   * sends it GOAWAY (drain.ts).
   */
  constructor(
    private readonly ctx: EngineContext,
    private readonly upstreamTo: (service: string) => ProxyUpstream,
    private readonly conns: ListenerConnections,
    private readonly idleTimeoutMs: number = TUNNEL_LIMITS.h2IdleTimeoutMs,
  ) {}

  /**
   * Take over the connection of `x` (a CONNECT to `service`) and answer it: true. False when the
   * connection is not one a tunnel can take (the caller answers instead).
   */
  open(x: Exchange, service: string, kind: TunnelKind): boolean {
    const socket = x.socket;
    if (!(socket instanceof Socket)) return false;
    const ahead = x.hijack();
    x.finish();
    try {
      if (kind === 'tcp') {
        const tunnel: TcpTunnel = {
          ahead,
          opened: () => socket.write(CONNECT_ESTABLISHED),
          refuse: (status, message, extra = []) => refuseTunnel(socket, status, message, extra),
        };
        handleTcpConnection(this.ctx, this.upstreamTo(service), socket, tunnel);
      } else {
        socket.write(CONNECT_ESTABLISHED);
        this.opening = service;
        try {
          this.server().emit('connection', bridge(socket, ahead));
        } finally {
          this.opening = undefined;
        }
      }
    } catch (err) {
      // The connection is no longer the relay's: it would answer 500 into the tunnel and never
      // close it. Whatever was sent, the tunnel ends here.
      this.ctx.log('warn', 'CONNECT tunnel failed', { destination: service, err: (err as Error).message });
      socket.destroy();
    }
    return true;
  }

  private server(): Http2Server {
    if (this.h2 !== undefined) return this.h2;
    const s = createH2Server();
    s.on('session', (session: ServerHttp2Session) => {
      const tunnel = this.opening === undefined ? undefined : { destination: this.opening, inFlight: 0 };
      if (tunnel !== undefined) this.sessions.set(session, tunnel);
      this.conns.add(session, () => session.close());
      // A tunnel that never sends its preface, or whose client went quiet, is closed like an idle
      // keep-alive connection; one with a call in flight (a long stream) is left alone. Frames
      // from the client restart the timer; it is set again when the last call ends, so a tunnel
      // whose call outlasted it is timed from there.
      session.on('timeout', () => {
        if ((tunnel?.inFlight ?? 0) === 0) session.close();
      });
      session.setTimeout(this.idleTimeoutMs);
    });
    s.on('stream', (stream, headers) => {
      // As on an upstream port (engine.ts): an unheard reset would end this thread.
      stream.on('error', ignoreStreamError);
      const session = stream.session as ServerHttp2Session;
      const tunnel = this.sessions.get(session);
      if (tunnel === undefined) {
        stream.close();
        return;
      }
      tunnel.inFlight++;
      stream.once('close', () => {
        tunnel.inFlight--;
        if (tunnel.inFlight === 0 && !session.closed && !session.destroyed)
          session.setTimeout(this.idleTimeoutMs);
      });
      void handleH2Stream(this.ctx, this.upstreamTo(tunnel.destination), stream, headers);
    });
    this.h2 = s;
    return s;
  }
}

/**
 * The tunnel's connection as a plain Duplex, `ahead` (bytes the client sent past its CONNECT head)
 * first. HTTP/2 takes over a socket's native handle when it has one, and would lose `ahead` and the
 * relay's read buffer; a Duplex without a handle is read through its stream, as Node does for TLS.
 */
function bridge(socket: Socket, ahead: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, done) {
      if (socket.write(chunk)) done();
      else socket.once('drain', () => done());
    },
    final(done) {
      // The session is over: nothing more goes to it.
      socket.off('data', onData);
      endTunnel(socket);
      done();
    },
    destroy(err, done) {
      socket.destroy();
      done(err);
    },
  });
  if (ahead.length > 0) d.push(ahead);
  const onData = (b: Buffer): void => {
    if (!d.push(b)) socket.pause();
  };
  socket.on('data', onData);
  socket.once('end', () => d.push(null));
  socket.once('close', () => d.destroy());
  socket.on('error', () => undefined);
  return d;
}

/** A tunnel refused before it opened: a short text answer, and the end of the connection. */
function refuseTunnel(socket: Socket, status: number, message: string, extra: readonly string[]): void {
  const body = `${message}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'content-type: text/plain; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    ...extra,
    'connection: close',
  ];
  endTunnel(socket, `${lines.join('\r\n')}\r\n\r\n${body}`);
}

/**
 * End our side of a tunnel (after `last`, if any) and let the client's FIN close it: what it still
 * sends is read and dropped (a socket left paused never sees the FIN, and closing it with unread
 * bytes would send a reset that can take the answer with it). Destroyed after
 * TUNNEL_LIMITS.closeGraceMs whatever the client does.
 */
function endTunnel(socket: Socket, last?: string): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), TUNNEL_LIMITS.closeGraceMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.resume();
  if (last === undefined) socket.end();
  else socket.end(last);
}
