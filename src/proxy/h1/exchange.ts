// One HTTP/1.1 request on a downstream connection (relay.ts), and its response: the request body
// held, then streamed to the upstream connection the pool gives (upstream.ts), with backpressure;
// the response head written for the client; the outcome handed to the handler, which may forward
// a replayable request again. Bodies that break their framing are answered 400 here.

import { STATUS_CODES } from 'node:http';
import { BodyFramer, requestBody } from './body.js';
import { forwardBlock } from './fields.js';
import type { ForwardListener, ForwardTarget, Outcome } from './forward.js';
import { type Head, headerValue, linesBlock, writeHead } from './head.js';
import { H1_POOL_LIMITS, type PoolWaiter, type RelaySocket } from './pool.js';
import { relayTicker, type Watched } from './ticker.js';
import { cutOff } from './turn.js';
import type { UpstreamConn } from './upstream.js';

export const RELAY_LIMITS = Object.freeze({
  /** Request body bytes read ahead while the handler picks an upstream. */
  pendingBodyBytesMax: 64 * 1024,
  /** A connection waiting for its next request (keep-alive) or for the rest of a head. */
  idleTimeoutMs: 60_000,
  /**
   * A head must be whole this long after its first bytes came, however steadily the rest
   * trickles in (each byte resets the idle timeout): a client sending a byte a minute would
   * otherwise hold its connection for days. HAProxy's `timeout http-request`, Node's
   * `headersTimeout` (60 s); a real client sends a head in one write.
   */
  headTimeoutMs: 30_000,
});

const EMPTY = Buffer.alloc(0);
/** A request whose client went away before its answer: nginx's "client closed request". */
const CALLER_GONE_STATUS = 499;
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** What an exchange needs of its downstream connection (relay.ts's Conn). */
export interface ExchangeHost {
  readonly socket: RelaySocket;
  /** Bytes read past the current request: the next head (pipelined), or held body bytes. */
  buf: Buffer;
  readonly closed: boolean;
  /** The exchange is over: the connection takes the next request, or closes. */
  exchangeDone(ex: Exchange): void;
  /** Stop reading requests: the socket now belongs to someone else, or is closing. */
  detach(): void;
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
  /** Body bytes read before the upstream connection was ready (made when the first comes). */
  private pending: Buffer[] | undefined = undefined;
  private pendingBytes = 0;
  /** The upstream connection's write and drain (UpstreamConn's, made once per connection), once attached. */
  private sinkWrite: ((chunk: Buffer) => boolean) | undefined = undefined;
  private sinkDrain: ((resume: () => void) => void) | undefined = undefined;
  private upstream: UpstreamConn | undefined;
  private finished = false;
  // The forward in progress: its target and who hears the outcome.
  private target: ForwardTarget | undefined;
  private done: ForwardListener | undefined;
  /** Queued in the pool for a connection; the ticker times the wait. */
  private waiting = false;
  /** Paused the client until the upstream drains (toSink). */
  private drainWaiting = false;
  /** Run once when the exchange finishes, whichever way, before the connection moves on. */
  private finishHook: (() => void) | undefined = undefined;
  /** A wait before the next forward (a fault's delay, a retry's back-off), and what ending it early does. */
  private deferred: { timer: NodeJS.Timeout; gone: (status: number) => void } | undefined = undefined;
  active = false;

  constructor(
    readonly conn: ExchangeHost,
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
  forward(t: ForwardTarget, done: ForwardListener): void {
    this.target = t;
    this.done = done;
    const conn = t.pool.acquire(t, this);
    if (conn === 'full') {
      this.upstreamDone({
        status: 503,
        sentResponse: false,
        connectFailed: false,
        ownLimit: true,
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

  /**
   * Waiting for a connection longer than the connect timeout fails like a connect would (502); at
   * the destination's connection limit (maxConnections, or every mux session to its agent full),
   * every connection stayed busy: 503, as for a full queue.
   */
  onTick(quietMs: number): void {
    const t = this.target;
    if (!this.waiting || t === undefined || quietMs < t.connectTimeoutMs) return;
    const full = t.pool.atLimit(t.key);
    t.pool.cancel(t.key, this);
    if (!full) {
      this.poolFailed(`no connection to the destination within ${t.connectTimeoutMs} ms`);
      return;
    }
    this.stopWaiting();
    this.upstreamDone({
      status: 503,
      sentResponse: false,
      connectFailed: false,
      ownLimit: true,
      message:
        t.connectionsMax !== undefined
          ? `all ${t.connectionsMax} connections to the instance (maxConnections) stayed busy for ${t.connectTimeoutMs} ms`
          : `every connection the peer agent's sessions allow stayed busy for ${t.connectTimeoutMs} ms`,
    });
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
    this.sinkWrite = undefined;
    try {
      done.forwarded(o);
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
    const hook = this.finishHook;
    this.finishHook = undefined;
    // First: what the request held (a circuit breaker's slot) is free before the connection's
    // next request (pipelined) asks for it.
    if (hook !== undefined) {
      try {
        hook();
      } catch {
        // The hook's own failure must not keep the connection from moving on.
      }
    }
    this.conn.exchangeDone(this);
  }

  /**
   * `hook` runs when the exchange finishes, on every path, the handler's own failures included
   * (they answer 500 and finish). One hook; a second replaces the first.
   */
  onFinish(hook: () => void): void {
    this.finishHook = hook;
  }

  /** Start sending the request body (held so far) through `write`; false from write means wait for drain. */
  attachSink(write: (chunk: Buffer) => boolean, onDrain: (resume: () => void) => void): void {
    this.sinkWrite = write;
    this.sinkDrain = onDrain;
    const held = this.pending;
    this.pending = undefined;
    this.pendingBytes = 0;
    let room = true;
    if (held !== undefined) for (const c of held) room = this.toSink(c) && room;
    // Read on, unless the held bytes filled the upstream (then its drain resumes the client).
    if (room && this.conn.buf.length === 0) this.socket.resume();
  }

  /** Body bytes to the upstream; when it is full (false), the client is not read until it drains. */
  private toSink(chunk: Buffer): boolean {
    if ((this.sinkWrite as (chunk: Buffer) => boolean)(chunk)) return true;
    this.socket.pause();
    // One wait at a time: body bytes held before the upstream was ready go out in one loop
    // (attachSink), and each may find the buffer full.
    if (this.drainWaiting) return false;
    this.drainWaiting = true;
    (this.sinkDrain as (resume: () => void) => void)(() => {
      this.drainWaiting = false;
      if (this.conn.buf.length === 0 && !this.conn.closed) this.socket.resume();
    });
    return false;
  }

  pushBody(chunk: Buffer): void {
    if (this.badBody) return;
    const step = this.framer.push(chunk);
    if ('error' in step) {
      this.bodyFailed(step.error);
      return;
    }
    const { used, done } = step;
    const part = used === chunk.length ? chunk : chunk.subarray(0, used);
    if (part.length > 0) {
      if (this.sinkWrite !== undefined) this.toSink(part);
      else {
        this.pending ??= [];
        this.pending.push(part);
        this.pendingBytes += part.length;
        if (this.pendingBytes > RELAY_LIMITS.pendingBodyBytesMax) this.socket.pause();
      }
    }
    if (done) this.bodyDone = true;
    if (used < chunk.length) {
      // The next request (pipelined): it waits until this one is answered.
      this.conn.buf = Buffer.concat([this.conn.buf, chunk.subarray(used)]);
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
    if (this.responded) cutOff(this.socket);
    else this.reply(400, `mesh: malformed request body: ${error}`);
    // Held by a delay or a back-off: answered now, so the wait must not send it on.
    if (this.endDeferred(400)) return;
    const t = this.target;
    if (this.waiting && t !== undefined) {
      t.pool.cancel(t.key, this);
      this.stopWaiting();
      this.upstreamDone({ status: 400, sentResponse: true });
    } else this.upstream?.abort(400);
  }

  /**
   * Hold the request `ms` before `resume` (the handler's next step). If the exchange ends first
   * (the client went away: 499; its body broke its framing and was answered 400), `gone(status)`
   * is called instead and nothing more is sent. One wait at a time.
   */
  defer(ms: number, resume: () => void, gone: (status: number) => void): void {
    const timer = setTimeout(() => {
      this.deferred = undefined;
      try {
        resume();
      } catch {
        // As in upstreamDone: the handler's own failure still answers the client.
        this.reply(500, 'mesh: internal error');
        this.finish();
      }
    }, ms);
    // The wait alone never keeps a stopping worker alive: the client's socket, closing, ends it.
    timer.unref();
    this.deferred = { timer, gone };
  }

  /**
   * Ends the wait under way at once and runs `resume` instead of the wait's own (a request that
   * waited at a circuit breaker got its slot). Nothing if there is no wait: the exchange ended.
   */
  wake(resume: () => void): void {
    const d = this.deferred;
    if (d === undefined) return;
    this.deferred = undefined;
    clearTimeout(d.timer);
    try {
      resume();
    } catch {
      this.reply(500, 'mesh: internal error');
      this.finish();
    }
  }

  /** Ends a wait early; true if there was one. */
  private endDeferred(status: number): boolean {
    const d = this.deferred;
    if (d === undefined) return false;
    this.deferred = undefined;
    clearTimeout(d.timer);
    d.gone(status);
    return true;
  }

  downstreamGone(): void {
    if (this.endDeferred(CALLER_GONE_STATUS)) return;
    const t = this.target;
    if (this.waiting && t !== undefined) {
      t.pool.cancel(t.key, this);
      this.stopWaiting();
      this.upstreamDone({ status: CALLER_GONE_STATUS, sentResponse: true });
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

  /**
   * Answer locally with a short text (when nothing was sent yet; otherwise the connection is cut).
   * `extra`: header lines to add (`name: value`).
   */
  reply(status: number, message: string, extra?: readonly string[]): void {
    if (this.responded) {
      cutOff(this.socket);
      return;
    }
    const body = `${message}\n`;
    const head = this.responseHead(
      status,
      STATUS_CODES[status] ?? '',
      linesBlock([
        'content-type: text/plain; charset=utf-8',
        `content-length: ${Buffer.byteLength(body)}`,
        ...(extra ?? []),
      ]),
      // A refused upgrade or CONNECT closes too: the client may already be sending the new
      // protocol's bytes.
      !this.bodyDone || this.head.upgrade || this.head.method === 'CONNECT',
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
