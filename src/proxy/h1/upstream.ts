// One upstream connection of the HTTP/1.1 relay, serving one exchange at a time: send the head and
// the body, read the response head, then stream the response body to the client (the request
// timeout counts inactivity). The pool opens it and hands it to a waiting request once connected;
// after a cleanly framed exchange it goes back to the pool. Its socket listeners are attached once
// for the connection's life, not per request: between exchanges the same listeners watch the idle
// connection (data then means a confused peer, close means it is gone), so a request costs no
// listener or timer churn. The socket reads through the `onread` option into one buffer per
// thread, bypassing the stream machinery that a 'data' event costs (and its 64 KiB allocation per
// read); the bytes are copied out before anything else runs. Requests and responses are written
// at the end of the event loop's turn, with the turn's others (turn.ts).

import { Readable, Writable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { modifyHead } from '../header-ops.js';
import { LEGACY_CODE } from '../mux/client.js';
import { REFUSED_CODE } from '../mux/stream.js';
import { BodyFramer, responseBody } from './body.js';
import type { Exchange } from './exchange.js';
import { forwardBlock } from './fields.js';
import type { ForwardTarget, Outcome } from './forward.js';
import { type Head, parseHead, writeHead } from './head.js';
import {
  copyRead,
  H1_POOL_LIMITS,
  type H1Pool,
  idleLimitMs,
  type OnRead,
  type PoolDestination,
  READ_BUFFER,
  type RelaySocket,
} from './pool.js';
import { relayTicker, type Watched } from './ticker.js';
import { cutOff, writeInTurn } from './turn.js';

const EMPTY = Buffer.alloc(0);

export const UPSTREAM_LIMITS = Object.freeze({
  /**
   * While the upstream is paused because the client reads slower than it sends, the request
   * timeout (upstream inactivity) does not apply: the client is the slow one. It must still take
   * bytes at least this often (the relay's idle timeout for a client), or the exchange is cut.
   */
  clientStallMsMax: 60_000,
});

enum State {
  /** Opening (TCP connect, and the TLS handshake to a peer agent): counted by the pool, serves nothing yet. */
  Connecting,
  /** Connected and free: in the pool's idle list, or being handed to a waiting request. */
  Idle,
  Busy,
  /** After a 101: bytes flow both ways unframed (client → upstream by pipe, back by upgradedData). */
  Upgraded,
  Closed,
}

export class UpstreamConn implements Watched {
  active = false;
  private state = State.Connecting;
  /** It has waited in the idle list, where the peer may have closed it (the stale keep-alive race). */
  private pooled = false;
  // The current exchange: reset by serve().
  private ex: Exchange | undefined;
  private t: ForwardTarget | undefined;
  private gotBytes = false;
  /** Paused until the client drains what it was sent. */
  private waitingForClient = false;
  private rbuf: Buffer = EMPTY;
  private head: Head | undefined;
  private framer: BodyFramer | undefined;
  /** The response head, held to go out with the first body bytes. */
  private headOut: string | undefined;
  /** The client's socket, once upgraded. */
  private down: RelaySocket | undefined;
  /** How long this connection may wait idle in the pool: the destination's, or what the server announced. */
  private idleMs: number;
  /** The last response's Keep-Alive value, which idleMs was worked out from. */
  private keepAlive: string | undefined = undefined;

  readonly socket: RelaySocket;
  /** The request body's way out, made once per connection rather than per request. */
  private readonly sinkWrite = (chunk: Buffer): boolean => {
    this.active = true;
    return writeInTurn(this.socket, chunk);
  };
  private readonly sinkDrain = (resume: () => void): void => {
    this.socket.once('drain', resume);
  };

  /** Opens the connection at once; the pool hears when it is connected or has failed. */
  constructor(
    private readonly pool: H1Pool,
    readonly dest: PoolDestination,
  ) {
    const onread: OnRead = {
      buffer: READ_BUFFER,
      callback: (n, buf) => this.read(n, buf),
    };
    this.idleMs = dest.idleTimeoutMs ?? H1_POOL_LIMITS.idleTimeoutMs;
    const socket = dest.open(onread);
    this.socket = socket;
    // A TLS socket is ready once its handshake is done; a plain socket or a mux stream at 'connect'.
    socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', () => this.connected());
    // Only for a socket made without `onread` (it never emits 'data' otherwise).
    socket.on('data', (d: Buffer) => {
      if (!this.data(d)) socket.pause();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.failed(err.message, err.code));
    socket.on('close', () => this.closed());
    relayTicker.watch(this);
  }

  private connected(): void {
    if (this.state !== State.Connecting) return;
    this.state = State.Idle;
    this.active = true;
    if (!this.pool.release(this)) this.socket.destroy();
    // Not handed to a request at once: it waits in the idle list.
    else if (this.state === State.Idle) this.pooled = true;
  }

  /** Relay `ex`'s request over this connected, idle connection; `ex.upstreamDone` gets the outcome, once. */
  serve(ex: Exchange, t: ForwardTarget): void {
    this.state = State.Busy;
    this.ex = ex;
    this.t = t;
    this.gotBytes = false;
    this.waitingForClient = false;
    this.rbuf = EMPTY;
    this.head = undefined;
    this.framer = undefined;
    this.headOut = undefined;
    this.active = true;
    const socket = this.socket;
    // Paused for a previous client that stopped reading: this exchange starts afresh.
    if (socket.isPaused()) socket.resume();
    writeInTurn(socket, writeHead(t.startLine, t.block), 'latin1');
    ex.attachSink(this.sinkWrite, this.sinkDrain);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The client went away (499), or sent a body that cannot be relayed (400, answered by the relay). */
  abort(status = 499): void {
    this.socket.destroy();
    this.settle({ status: this.head?.status ?? status, sentResponse: true });
  }

  onTick(quietMs: number): void {
    if (this.state === State.Connecting) {
      const ms = this.dest.connectTimeoutMs;
      if (quietMs >= ms) this.failed(`connect timed out after ${ms} ms`, 'ETIMEDOUT');
    } else if (this.state === State.Busy) {
      const t = this.t as ForwardTarget;
      if (this.waitingForClient) {
        if (quietMs >= Math.max(t.timeoutMs, UPSTREAM_LIMITS.clientStallMsMax))
          this.failed(`the client took nothing for ${UPSTREAM_LIMITS.clientStallMsMax} ms`, 'ETIMEDOUT');
      } else if (quietMs >= t.timeoutMs)
        this.failed(`no response within ${t.timeoutMs} ms`, 'ETIMEDOUT', 504);
    } else if (this.state === State.Idle && quietMs >= this.idleMs) {
      this.socket.destroy();
    }
  }

  private settle(o: Outcome): void {
    const ex = this.ex;
    if (ex === undefined) return;
    this.ex = undefined;
    this.t = undefined;
    ex.upstreamDone(o);
  }

  /** Nothing was sent to the client: the caller may retry or answer itself. */
  private failBefore(
    status: number,
    message: string,
    extra: { retryable?: true; staleSocket?: true } = {},
  ): void {
    this.socket.destroy();
    // Only connected connections serve requests: a failed connect reaches a request through the pool.
    this.settle({ status, sentResponse: false, connectFailed: false, message, ...extra });
  }

  private failed(message: string, code?: string, status = 502): void {
    const ex = this.ex;
    if (ex === undefined) {
      // Idle (or upgraded, where the pipes close both sides): nothing to answer.
      this.socket.destroy();
      // A peer agent that turned out not to speak mesh-mux/1: another connection, made the old
      // way, is opened in this one's place; no request fails for it.
      if (this.state === State.Connecting) this.pool.connectFailed(this, message, code === LEGACY_CODE);
      return;
    }
    if (ex.responded) {
      // Mid-response: the client cannot be told, only cut off (after what it was already sent).
      this.socket.destroy();
      cutOff(ex.socket);
      this.settle({ status: this.head?.status ?? 502, sentResponse: true });
      return;
    }
    // The race every keep-alive client has: the server closed an idle connection as we reused it.
    // Most likely the request never reached it, but a server that read it and then closed without
    // answering looks the same: only an idempotent request may be sent again (a POST must not be
    // delivered twice). A mux stream the peer agent refused unserved reached no one at all.
    const stale =
      code === REFUSED_CODE ||
      (this.pooled &&
        !this.gotBytes &&
        (code === 'ECONNRESET' || code === 'EPIPE' || code === undefined) &&
        ex.idempotent);
    this.failBefore(status, message, stale ? { staleSocket: true } : {});
  }

  private closed(): void {
    const was = this.state;
    this.state = State.Closed;
    relayTicker.unwatch(this);
    if (was === State.Idle) this.pool.forget(this);
    if (was === State.Connecting) this.pool.connectFailed(this, 'the connection closed while opening');
    this.pool.closed(this);
    const ex = this.ex;
    if (ex === undefined) return;
    if (this.framer?.body.kind === 'close' && ex.responded) {
      // A body delimited by the connection's end has ended.
      ex.socket.end();
      this.settle({ status: this.head?.status ?? 200, sentResponse: true });
      return;
    }
    this.failed('the connection closed before the response ended');
  }

  /**
   * `n` bytes read into the thread's read buffer, which the next read reuses. A whole final
   * response head at the start of a response, the common case, is parsed where it lies, and the
   * body bytes after it go out in the same new buffer as the head. Anything else is copied out and
   * read by data().
   */
  private read(n: number, buf: Buffer): boolean {
    if (this.state === State.Busy && this.framer === undefined && this.rbuf.length === 0) {
      const r = parseHead(buf, 0, 'response', n);
      if (r.kind === 'head' && r.head.status >= 200 && !(this.t?.retryOn?.(r.head.status) ?? false)) {
        this.active = true;
        this.gotBytes = true;
        this.respond(r.head, buf.subarray(r.size, n));
        return true;
      }
    }
    return this.data(copyRead(n, buf));
  }

  /** Bytes from the upstream; false asks to stop reading (the client is slower). */
  private data(d: Buffer): boolean {
    if (this.state !== State.Busy) {
      if (this.state === State.Upgraded) return this.upgradedData(d);
      // An idle connection has nothing to say: data now means the peer is confused.
      this.socket.destroy();
      return true;
    }
    this.active = true;
    this.gotBytes = true;
    if (this.framer) {
      this.body(d);
      return true;
    }
    const ex = this.ex as Exchange;
    this.rbuf = this.rbuf.length > 0 ? Buffer.concat([this.rbuf, d]) : d;
    for (;;) {
      const r = parseHead(this.rbuf, 0, 'response');
      if (r.kind === 'partial') return true;
      if (r.kind === 'error') {
        this.failBefore(502, `bad response: ${r.message}`);
        return true;
      }
      const h = r.head;
      this.rbuf = this.rbuf.subarray(r.size);
      if (h.status === 101) {
        this.upgraded(h);
        return true;
      }
      if (h.status < 200) {
        // Interim (100 Continue, 103 Early Hints): passed on, except to an HTTP/1.0 client, which
        // must not get one (RFC 9110 §15.2); the final response follows.
        if (ex.head.minor === 1)
          ex.socket.write(writeHead(`HTTP/1.1 ${h.status} ${h.reason}`, exchangeBlock(h)), 'latin1');
        continue;
      }
      if (this.t?.retryOn?.(h.status) && !ex.responded) {
        this.failBefore(h.status, `status ${h.status}`, { retryable: true });
        return true;
      }
      const rest = this.rbuf;
      this.rbuf = EMPTY;
      this.respond(h, rest);
      return true;
    }
  }

  /**
   * The final response head `h`, and the bytes read after it: the head goes out with the first body
   * bytes, in one new buffer (so `rest` may lie in the read buffer).
   */
  private respond(h: Head, rest: Buffer): void {
    const ex = this.ex as Exchange;
    this.head = h;
    const changes = this.t?.responseHeaders;
    if (changes !== undefined) modifyHead(h, changes);
    const framer = new BodyFramer(responseBody(h, ex.head.method));
    this.framer = framer;
    // An upgrade answered other than 101 closes the client's connection, as a refused one does
    // (Exchange.reply): the client may already be sending the new protocol's bytes.
    this.headOut = ex.responseHead(
      h.status,
      h.reason,
      exchangeBlock(h),
      framer.body.kind === 'close' || ex.head.upgrade,
    );
    this.body(rest);
  }

  private body(chunk: Buffer): void {
    const ex = this.ex as Exchange;
    const framer = this.framer as BodyFramer;
    const step = framer.push(chunk);
    if ('error' in step) {
      this.failed(`bad response body: ${step.error}`, 'EPROTO');
      return;
    }
    const { used, done } = step;
    const part = used === chunk.length ? chunk : chunk.subarray(0, used);
    let out: Buffer = part;
    const headOut = this.headOut;
    if (headOut !== undefined) {
      // Heads were read as latin1 (bytes as they came): written back the same way, with the first
      // body bytes in one write, from one buffer (a string write, or a concat of two buffers,
      // costs a copy and an allocation more).
      out = Buffer.allocUnsafe(headOut.length + part.length);
      out.write(headOut, 0, 'latin1');
      part.copy(out, headOut.length);
      this.headOut = undefined;
    }
    const down = ex.socket;
    if (out.length > 0 && !writeInTurn(down, out)) {
      // The client reads slower than the upstream sends: stop reading until it catches up.
      this.socket.pause();
      this.waitingForClient = true;
      down.once('drain', () => {
        if (this.ex !== ex) return;
        this.waitingForClient = false;
        // The client took bytes: the request timeout starts over from here.
        this.active = true;
        this.socket.resume();
      });
    }
    if (!done) return;
    if (ex.mustClose) down.end();
    const h = this.head as Head;
    if (h.keepAlive !== this.keepAlive) {
      // The server says how long it keeps an idle connection: closed here first (pool.ts).
      this.keepAlive = h.keepAlive;
      this.idleMs = idleLimitMs(h.keepAlive, this.dest.idleTimeoutMs ?? H1_POOL_LIMITS.idleTimeoutMs);
    }
    // Reusable only after a whole, cleanly framed exchange: nothing extra, request body all sent;
    // and not when the server keeps idle connections too briefly to hand this one out safely.
    const reusable =
      used === chunk.length && !h.close && ex.bodyDone && ex.head.minor === 1 && this.idleMs > 0;
    this.ex = undefined;
    this.t = undefined;
    this.state = State.Idle;
    this.pooled = true;
    // Paused for this exchange's slow client: an idle connection must read, or it would not notice
    // the upstream closing it and would be handed, dead, to the next request.
    if (this.socket.isPaused()) this.socket.resume();
    // Back to the pool before the caller hears of it: a waiting request, or the caller's next
    // (pipelined) one, may take it. Handing it to a waiting request serves that one at once.
    const kept = reusable && this.pool.release(this);
    if (!kept) this.socket.destroy();
    ex.upstreamDone({ status: h.status, sentResponse: true });
  }

  private upgraded(h: Head): void {
    const ex = this.ex as Exchange;
    if (!ex.head.upgrade) {
      this.failBefore(502, 'a 101 answer to a request that asked no upgrade');
      return;
    }
    this.state = State.Upgraded;
    relayTicker.unwatch(this);
    const up = this.socket;
    const down = ex.socket;
    // Upgrades are relayed by pipe, which needs Node streams on both sides. A mux stream is none:
    // callers send upgrades over connections of their own (outbound-http.ts), and the inbound
    // side refuses them on a mux stream before they get here.
    if (!(down instanceof Readable) || !(up instanceof Writable)) {
      this.failBefore(502, 'an upgrade cannot be relayed over a multiplexed connection');
      return;
    }
    down.write(ex.responseHead(101, h.reason, exchangeBlock(h), false), 'latin1');
    if (this.rbuf.length > 0) down.write(this.rbuf);
    this.rbuf = EMPTY;
    const ahead = ex.hijack();
    this.down = down;
    this.settle({ status: 101, sentResponse: true });
    if (ahead.length > 0) up.write(ahead);
    down.pipe(up);
    down.resume();
    down.on('error', () => up.destroy());
    down.on('drain', () => up.resume());
    down.on('close', () => up.destroy());
    // The upstream's bytes come through onread (upgradedData), not a pipe: its end is passed on here.
    up.once('end', () => down.end());
    up.on('close', () => {
      if (!down.writableEnded) down.destroy();
    });
  }

  /** After a 101: the upstream's bytes go to the client as they come, with backpressure. */
  private upgradedData(d: Buffer): boolean {
    const down = this.down;
    if (down === undefined || down.destroyed) return true;
    return down.write(d);
  }
}

const NONE: ReadonlySet<string> = new Set();
/** Response headers to forward (an upgrade keeps its Upgrade and Connection headers). */
const exchangeBlock = (h: Head): string => forwardBlock(h, NONE, h.upgrade);
