// The HTTP/1.1 relay: serves requests on a downstream connection (an application on loopback, or a
// peer agent over mTLS) and relays each to an upstream connection from a pool, byte for byte after
// the head. Only heads are parsed and rewritten; bodies stream through with backpressure, their ends
// found by BodyFramer. One request at a time per connection (pipelined requests wait their turn).
// The handler decides where a request goes and calls `finish()` once the response has been sent.
// Callbacks, not promises: a request costs no promise, no microtask and no listener churn.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { adoptWithOnread } from './accepted.js';
import { BodyFramer } from './body.js';
import {
  forwardBlock,
  type Head,
  headerValue,
  linesBlock,
  parseHead,
  requestBody,
  writeHead,
} from './head.js';
import {
  copyRead,
  H1_POOL_LIMITS,
  type H1Pool,
  type PoolDestination,
  type PoolWaiter,
  READ_BUFFER,
  type RelaySocket,
} from './pool.js';
import { relayTicker, type Watched } from './ticker.js';
import type { UpstreamConn } from './upstream.js';

export const RELAY_LIMITS = Object.freeze({
  /** Request body bytes read ahead while the handler picks an upstream. */
  pendingBodyBytesMax: 64 * 1024,
  /** A connection waiting for its next request (keep-alive) or for the rest of a head. */
  idleTimeoutMs: 60_000,
});

export interface ForwardTarget extends PoolDestination {
  pool: H1Pool;
  /** The start line and header block (Head.block) to send; the request's body follows as received. */
  startLine: string;
  block: string;
  timeoutMs: number;
  /** A response with a status for which this is true is dropped, not relayed (the caller retries). */
  retryOn?: ((status: number) => boolean) | undefined;
}

/** What happened, for metrics and retries: the status sent, or why none was. */
export type Outcome =
  | { status: number; sentResponse: true }
  | {
      status: number;
      sentResponse: false;
      connectFailed: boolean;
      message: string;
      retryable?: true;
      /**
       * Safe to send again: a pooled keep-alive connection closed before any byte of a response
       * (the other side most likely closed it idle as it was reused), for a request whose method
       * is idempotent; or a multiplexed stream the peer agent refused unserved.
       */
      staleSocket?: true;
    };

/** Sent again at most this often when a reused keep-alive connection turns out closed. */
export const STALE_SOCKET_RETRIES_MAX = 1;

const EMPTY = Buffer.alloc(0);
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** Decides where a request goes; must call `x.finish()` once, when it has answered. */
export type Handler = (x: Exchange) => void;

/** Serve HTTP/1.1 on `socket` until it closes; `handler` answers each request. */
export function serveH1(socket: RelaySocket, handler: Handler): void {
  new Conn(socket, handler, true).next();
}

/**
 * Serve HTTP/1.1 on a connection a listener made with `pauseOnConnect` accepted. It reads through
 * the thread's read buffer (accepted.ts) when this Node allows, else as serveH1 does. Returns the
 * socket served: `accepted`'s replacement when it was adopted (only that one emits 'close').
 */
export function serveH1Accepted(accepted: Socket, handler: Handler): RelaySocket {
  let conn: Conn | undefined;
  const adopted = adoptWithOnread(accepted, {
    buffer: READ_BUFFER,
    callback: (n, buf) => {
      const d = copyRead(n, buf);
      // Once the connection is detached (an upgrade took it over, or it is closing), its bytes go
      // out as 'data' events: what a pipe from the socket listens for.
      if (conn?.attached) conn.data(d);
      else adopted?.emit('data', d);
      return true;
    },
  });
  if (adopted === undefined) {
    accepted.resume();
    serveH1(accepted, handler);
    return accepted;
  }
  conn = new Conn(adopted, handler, false);
  return adopted;
}

class Conn implements Watched {
  /** Bytes read but not yet consumed: the next head, or body read ahead. */
  buf: Buffer = EMPTY;
  ex: Exchange | undefined;
  closed = false;
  active = false;
  /** Reads reach data(): until detach(). */
  attached = true;
  /** The client will send nothing more ('end'). */
  private readEnded = false;
  private readonly onData = (d: Buffer): void => this.data(d);

  /** `dataEvents`: the socket's bytes come as 'data' events (otherwise its onread callback calls data()). */
  constructor(
    readonly socket: RelaySocket,
    private readonly handler: Handler,
    private readonly dataEvents: boolean,
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

  /** Idle between requests (or mid-head) for too long: closed. A request in flight is the upstream's to time. */
  onTick(quietMs: number): void {
    if (this.ex === undefined && quietMs >= RELAY_LIMITS.idleTimeoutMs) this.socket.destroy();
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
    const r = parseHead(this.buf, 0, 'request');
    if (r.kind === 'partial') return;
    if (r.kind === 'error') {
      this.refuse(r.status, r.message);
      return;
    }
    if (r.head.method === 'CONNECT') {
      this.refuse(405, 'CONNECT is not supported');
      return;
    }
    const rest = this.buf.subarray(r.size);
    this.buf = EMPTY;
    const ex = new Exchange(this, r.head);
    this.ex = ex;
    if (rest.length > 0) ex.pushBody(rest);
    // Answered 400 already: the request is not sent anywhere.
    if (ex.badBody) {
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
    if (ex.mustClose || !ex.bodyDone) {
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

/** One request on a downstream connection, and its response. */
export class Exchange implements PoolWaiter, Watched {
  readonly replayable: boolean;
  bodyDone: boolean;
  responded = false;
  hijacked = false;
  /** The request body broke its framing (answered 400, nothing more relayed). */
  badBody = false;
  /** The downstream connection closes after this response. */
  mustClose: boolean;
  private readonly framer: BodyFramer;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private sink: ((chunk: Buffer) => boolean) | undefined;
  private upstream: UpstreamConn | undefined;
  private finished = false;
  // The forward in progress: its target and who hears the outcome.
  private target: ForwardTarget | undefined;
  private done: ((o: Outcome) => void) | undefined;
  /** Queued in the pool for a connection; the ticker times the wait. */
  private waiting = false;
  active = false;

  constructor(
    readonly conn: Conn,
    readonly head: Head,
  ) {
    const body = requestBody(head);
    this.framer = new BodyFramer(body);
    this.bodyDone = this.framer.done;
    this.replayable = body.kind === 'none';
    this.mustClose = head.close;
  }

  get socket(): RelaySocket {
    return this.conn.socket;
  }

  /**
   * The request may be delivered twice without harm (RFC 9110 §9.2.2, and Go's transport): GET,
   * HEAD, OPTIONS or TRACE, or one that carries an idempotency key. Read only when a connection
   * failed, never on the hot path.
   */
  get idempotent(): boolean {
    return (
      IDEMPOTENT_METHODS.has(this.head.method) ||
      headerValue(this.head, 'idempotency-key') !== undefined ||
      headerValue(this.head, 'x-idempotency-key') !== undefined
    );
  }

  get remoteAddress(): string {
    return (this.conn.socket as { remoteAddress?: string }).remoteAddress ?? '';
  }

  /** `METHOD target HTTP/1.x`, in the client's version (an HTTP/1.0 client gets no chunked reply). */
  startLine(method: string, target: string): string {
    return `${method} ${target} HTTP/1.${this.head.minor}`;
  }

  /** The request's header block to forward, minus hop-by-hop headers and `drop` (lowercase names). */
  headerBlock(drop: ReadonlySet<string>): string {
    return forwardBlock(this.head, drop, this.head.upgrade);
  }

  /** Relay the request to `t` and its response back; `done` gets the outcome. A replayable request may be forwarded again. */
  forward(t: ForwardTarget, done: (o: Outcome) => void): void {
    this.target = t;
    this.done = done;
    const conn = t.pool.acquire(t, this);
    if (conn === 'full') {
      this.upstreamDone({
        status: 503,
        sentResponse: false,
        connectFailed: false,
        message: `more than ${H1_POOL_LIMITS.waitingPerKeyMax} requests wait for a connection`,
      });
    } else if (conn !== undefined) this.poolReady(conn);
    else if (this.done !== undefined) {
      // Queued, and not already failed by the pool (no certificate to connect with): the wait is
      // timed like a connect. A request served from the idle list never touches the ticker.
      this.waiting = true;
      relayTicker.watch(this);
    }
  }

  poolReady(conn: UpstreamConn): void {
    this.stopWaiting();
    this.upstream = conn;
    conn.serve(this, this.target as ForwardTarget);
  }

  poolFailed(message: string): void {
    this.stopWaiting();
    this.upstreamDone({ status: 502, sentResponse: false, connectFailed: true, message });
  }

  /** Waiting for a connection longer than the connect timeout fails like a connect would. */
  onTick(quietMs: number): void {
    const t = this.target;
    if (!this.waiting || t === undefined || quietMs < t.connectTimeoutMs) return;
    t.pool.cancel(t.key, this);
    this.poolFailed(`no connection to the destination within ${t.connectTimeoutMs} ms`);
  }

  private stopWaiting(): void {
    if (!this.waiting) return;
    this.waiting = false;
    relayTicker.unwatch(this);
  }

  /** The forward's outcome (from the upstream connection, or the pool): the handler hears it. */
  upstreamDone(o: Outcome): void {
    const done = this.done;
    if (done === undefined) return;
    this.done = undefined;
    this.upstream = undefined;
    this.sink = undefined;
    try {
      done(o);
    } catch {
      // The handler's own failure: the client still gets an answer, the worker keeps running.
      this.reply(500, 'mesh: internal error');
      this.finish();
    }
  }

  /** The handler is done with this request: the connection moves on. Once; later calls do nothing. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.conn.exchangeDone(this);
  }

  /** Start sending the request body (held so far) through `write`; false from write means wait for drain. */
  attachSink(write: (chunk: Buffer) => boolean, onDrain: (resume: () => void) => void): void {
    const resume = (): void => {
      if (this.conn.buf.length === 0 && !this.conn.closed) this.socket.resume();
    };
    this.sink = (chunk) => {
      const ok = write(chunk);
      if (!ok) {
        this.socket.pause();
        onDrain(resume);
      }
      return ok;
    };
    const held = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const c of held) this.sink(c);
    if (this.conn.buf.length === 0) this.socket.resume();
  }

  pushBody(chunk: Buffer): void {
    if (this.badBody) return;
    const step = this.framer.push(chunk);
    if ('error' in step) {
      this.bodyFailed(step.error);
      return;
    }
    const part = step.used === chunk.length ? chunk : chunk.subarray(0, step.used);
    if (part.length > 0) {
      if (this.sink) this.sink(part);
      else {
        this.pending.push(part);
        this.pendingBytes += part.length;
        if (this.pendingBytes > RELAY_LIMITS.pendingBodyBytesMax) this.socket.pause();
      }
    }
    if (step.done) this.bodyDone = true;
    if (step.used < chunk.length) {
      // The next request (pipelined): it waits until this one is answered.
      this.conn.buf = Buffer.concat([this.conn.buf, chunk.subarray(step.used)]);
      this.socket.pause();
    }
  }

  /**
   * The request body broke its framing: it cannot be relayed faithfully. The client hears 400
   * (unless its response had begun: then it is cut off) and the connection closes after it; an
   * upstream exchange already under way is dropped.
   */
  private bodyFailed(error: string): void {
    this.badBody = true;
    if (this.responded) this.socket.destroy();
    else this.reply(400, `mesh: malformed request body: ${error}`);
    const t = this.target;
    if (this.waiting && t !== undefined) {
      t.pool.cancel(t.key, this);
      this.stopWaiting();
      this.upstreamDone({ status: 400, sentResponse: true });
    } else this.upstream?.abort(400);
  }

  downstreamGone(): void {
    const t = this.target;
    if (this.waiting && t !== undefined) {
      t.pool.cancel(t.key, this);
      this.stopWaiting();
      this.upstreamDone({ status: 499, sentResponse: true });
      return;
    }
    this.upstream?.abort();
  }

  /**
   * The response head for the client (the caller writes it, with the first body bytes when it can:
   * one write, one syscall). The connection closes after the response when it must.
   */
  responseHead(status: number, reason: string, block: string, closeAfter: boolean): string {
    this.responded = true;
    if (closeAfter || this.head.minor === 0) this.mustClose = true;
    return writeHead(
      `HTTP/1.1 ${status} ${reason}`,
      this.mustClose ? `${block}\r\nconnection: close` : block,
    );
  }

  /** Answer locally with a short text (when nothing was sent yet; otherwise the connection is cut). */
  reply(status: number, message: string): void {
    if (this.responded) {
      this.socket.destroy();
      return;
    }
    const body = `${message}\n`;
    const head = this.responseHead(
      status,
      STATUS_CODES[status] ?? '',
      linesBlock(['content-type: text/plain; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`]),
      // A refused upgrade closes too: the client may already be sending the new protocol's bytes.
      !this.bodyDone || this.head.upgrade,
    );
    this.socket.write(this.head.method === 'HEAD' ? head : head + body);
  }

  /** Hand the downstream socket over (an upgraded connection): returns bytes already read past the head. */
  hijack(): Buffer {
    this.hijacked = true;
    this.conn.detach();
    const rest = this.conn.buf;
    this.conn.buf = EMPTY;
    return rest;
  }
}
