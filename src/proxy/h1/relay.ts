// The HTTP/1.1 relay: serves requests on a downstream connection (an application on loopback, or a
// peer agent over mTLS) and relays each to an upstream connection from a pool, byte for byte after
// the head. Only heads are parsed and rewritten; bodies stream through with backpressure, their ends
// found by BodyFramer. One request at a time per connection (pipelined requests wait their turn).
// The handler decides where a request goes and calls `finish()` once the response has been sent.
// Callbacks, not promises: a request costs no promise, no microtask and no listener churn.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { adoptWithOnread } from './accepted.js';
import { Exchange, type ExchangeHost, RELAY_LIMITS } from './exchange.js';
import { type HeadResult, parseHead, writeHead } from './head.js';
import { copyRead, READ_BUFFER, type RelaySocket } from './pool.js';
import { relayTicker, type Watched } from './ticker.js';

const EMPTY = Buffer.alloc(0);

/** Decides where a request goes; must call `x.finish()` once, when it has answered. */
export type Handler = (x: Exchange) => void;

/** A connection the relay serves. */
export interface ServedH1 {
  /** The socket served: the accepted one, or its replacement when adopted (only that one emits 'close'). */
  readonly socket: RelaySocket;
  /**
   * Take no more requests: close after the response in flight (which says `connection: close`
   * when its head is still to be written), or now when idle. Nothing once an upgrade or a tunnel
   * took the connection over.
   */
  drain(): void;
}

/** Told the status of each request the relay refused itself, unread (malformed, too large, …). */
export type RefusedFn = (status: number) => void;

/** Serve HTTP/1.1 on `socket` until it closes; `handler` answers each request. */
export function serveH1(socket: RelaySocket, handler: Handler, refused?: RefusedFn): void {
  new Conn(socket, handler, true, false, refused).next();
}

/**
 * Serve HTTP/1.1 on a connection a listener made with `pauseOnConnect` accepted. It reads through
 * the thread's read buffer (accepted.ts) when this Node allows, else as serveH1 does.
 * `connect`: CONNECT requests reach `handler` (which opens the tunnel or refuses it); without it
 * the relay answers them 405.
 */
export function serveH1Accepted(
  accepted: Socket,
  handler: Handler,
  connect = false,
  refused?: RefusedFn,
): ServedH1 {
  let conn: Conn | undefined;
  const adopted = adoptWithOnread(accepted, {
    buffer: READ_BUFFER,
    callback: (n, buf) => {
      // Once the connection is detached (an upgrade took it over, or it is closing), its bytes go
      // out as 'data' events: what a pipe from the socket listens for.
      if (conn?.attached) conn.read(n, buf);
      else adopted?.emit('data', copyRead(n, buf));
      return true;
    },
  });
  if (adopted === undefined) {
    accepted.resume();
    const plain = new Conn(accepted, handler, true, connect, refused);
    plain.next();
    return plain;
  }
  conn = new Conn(adopted, handler, false, connect, refused);
  return conn;
}

class Conn implements Watched, ExchangeHost, ServedH1 {
  /** Bytes read but not yet consumed: the next head, or body read ahead. */
  buf: Buffer = EMPTY;
  ex: Exchange | undefined;
  closed = false;
  active = false;
  /** Reads reach data(): until detach(). */
  attached = true;
  /** The client will send nothing more ('end'). */
  private readEnded = false;
  /** Its listener was removed: no request after the one in flight (drain()). */
  private draining = false;
  /** When the first bytes of a head still incomplete came (performance.now()). */
  private headSinceMs: number | undefined = undefined;
  private readonly onData = (d: Buffer): void => this.data(d);

  /**
   * `dataEvents`: the socket's bytes come as 'data' events (otherwise its onread callback calls
   * data()). `connect`: CONNECT requests go to the handler. `refused`: told each request the
   * relay answers itself because it could not be read (the handler never sees those).
   */
  constructor(
    readonly socket: RelaySocket,
    private readonly handler: Handler,
    private readonly dataEvents: boolean,
    private readonly connect = false,
    private readonly refused?: RefusedFn,
  ) {
    if (dataEvents) socket.on('data', this.onData);
    // The client sent all it will (a half-close, or a FIN on a socket that then ends itself): the
    // request in flight, and any whole one already read, are still answered; then the connection
    // ends. Bytes of an unfinished head are dropped.
    socket.on('end', () => {
      this.readEnded = true;
      if (this.ex === undefined) this.endIfDone();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      relayTicker.unwatch(this);
      this.ex?.downstreamGone();
    });
    relayTicker.watch(this);
  }

  drain(): void {
    // Closed, or taken over by an upgrade or a tunnel (detach() marks both).
    if (this.closed) return;
    this.draining = true;
    if (this.ex === undefined) {
      this.detach();
      this.socket.end();
    } else if (!this.ex.head.upgrade) {
      // The response says so, when its head is still to come (a 101 must not: it keeps the connection).
      this.ex.mustClose = true;
    }
  }

  /** Idle between requests (or mid-head) for too long: closed. A request in flight is the upstream's to time. */
  onTick(quietMs: number): void {
    if (this.ex === undefined && quietMs >= RELAY_LIMITS.idleTimeoutMs) this.socket.destroy();
  }

  /**
   * `n` bytes read into the thread's read buffer, which the next read reuses. The head of a new
   * request, the common case, is parsed where it lies: only bytes that must outlive this call are
   * copied out (a partial head, a body, a pipelined request).
   */
  read(n: number, buf: Buffer): void {
    if (this.ex !== undefined || this.buf.length > 0 || this.closed) {
      this.data(copyRead(n, buf));
      return;
    }
    this.active = true;
    this.take(parseHead(buf, 0, 'request', n), buf, n);
  }

  data(d: Buffer): void {
    this.active = true;
    const ex = this.ex;
    if (ex && !ex.bodyDone) {
      ex.pushBody(d);
      return;
    }
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, d]) : d;
    if (ex) this.socket.pause();
    else this.next();
  }

  /** Parse and dispatch the next request in `buf`, if a whole head is there. */
  next(): void {
    if (this.closed || this.ex || this.buf.length === 0) return;
    this.take(parseHead(this.buf, 0, 'request'), this.buf, this.buf.length);
  }

  /** Act on a parse of `src[0..limit)`: `src` is `buf`, or the read buffer (then what is kept is copied). */
  private take(r: HeadResult, src: Buffer, limit: number): void {
    if (r.kind === 'partial') {
      if (src !== this.buf) this.buf = copyRead(limit, src);
      // Only a head split over reads reads the clock.
      const nowMs = performance.now();
      if (this.headSinceMs === undefined) this.headSinceMs = nowMs;
      else if (nowMs - this.headSinceMs > RELAY_LIMITS.headTimeoutMs)
        this.refuse(408, `request head not complete within ${RELAY_LIMITS.headTimeoutMs / 1_000} s`);
      return;
    }
    this.headSinceMs = undefined;
    if (r.kind === 'error') {
      this.refuse(r.status, r.message);
      return;
    }
    if (r.head.method === 'CONNECT' && !this.connect) {
      this.refuse(405, 'CONNECT is not supported');
      return;
    }
    const rest =
      r.size === limit ? EMPTY : src === this.buf ? src.subarray(r.size) : copyRead(limit, src, r.size);
    this.buf = EMPTY;
    const ex = new Exchange(this, r.head);
    this.ex = ex;
    if (rest.length > 0) ex.pushBody(rest);
    // Answered 400 already: the request is not sent anywhere.
    if (ex.badBody) {
      this.refused?.(400);
      ex.finish();
      return;
    }
    try {
      this.handler(ex);
    } catch {
      ex.reply(500, 'mesh: internal error');
      ex.finish();
    }
  }

  /** The exchange is over (Exchange.finish): the connection takes the next request, or closes. */
  exchangeDone(ex: Exchange): void {
    this.ex = undefined;
    this.active = true;
    if (this.closed || ex.hijacked) return;
    if (!ex.responded) ex.reply(502, 'mesh: no response');
    // A body not read to its end leaves the connection mid-message: it cannot carry another request.
    if (ex.mustClose || !ex.bodyDone || this.draining) {
      this.detach();
      this.socket.end();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    this.next();
    if (this.ex === undefined) this.endIfDone();
  }

  /** Between requests: once the client has sent its last byte, end our side too. */
  private endIfDone(): void {
    if (!this.readEnded || this.closed) return;
    this.detach();
    this.socket.end();
  }

  /** Answer a request that could not be read, and close (the stream's framing is lost). */
  private refuse(status: number, message: string): void {
    this.refused?.(status);
    const body = `mesh: ${message}\n`;
    this.socket.end(
      writeHead(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
        `\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close`,
      ) + body,
    );
    this.detach();
  }

  /** Stop reading requests: the socket now belongs to someone else, or is closing. */
  detach(): void {
    this.attached = false;
    if (this.dataEvents) this.socket.off('data', this.onData);
    this.closed = true;
    relayTicker.unwatch(this);
  }
}
