// One upstream connection of the HTTP/1.1 relay, serving one exchange at a time: send the head and
// the body, read the response head, then stream the response body to the client (the request
// timeout counts inactivity). It goes back to the pool only after a cleanly framed exchange. Its
// socket listeners are attached once for the connection's life, not per request: between
// exchanges the same listeners watch the idle connection (data then means a confused peer, close
// means it is gone), so a request costs no listener or timer churn. The socket reads through the
// `onread` option into one buffer per thread, bypassing the stream machinery that a 'data' event
// costs (and its 64 KiB allocation per read); the bytes are copied out before anything else runs.
import { BodyFramer } from './body.js';
import { forwardLines, type Head, parseHead, responseBody, writeHead } from './head.js';
import { H1_POOL_LIMITS, type H1Pool, type OnRead, type RelaySocket } from './pool.js';
import type { Exchange, ForwardTarget, Outcome } from './relay.js';
import { relayTicker, type Watched } from './ticker.js';

const EMPTY = Buffer.alloc(0);
/** Where every upstream socket of this thread reads into (Node's own read size). */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

enum State {
  /** In the pool, or new and not yet given an exchange. */
  Idle,
  Busy,
  /** After a 101: bytes flow both ways unframed (client → upstream by pipe, back by upgradedData). */
  Upgraded,
  Closed,
}

export class UpstreamConn implements Watched {
  active = false;
  private state = State.Idle;
  private connected = false;
  /** Exchanges this connection has served before the current one. */
  private served = 0;
  // The current exchange: reset by serve().
  private ex: Exchange | undefined;
  private t: ForwardTarget | undefined;
  private done: ((o: Outcome) => void) | undefined;
  private gotBytes = false;
  private rbuf: Buffer = EMPTY;
  private head: Head | undefined;
  private framer: BodyFramer | undefined;
  /** The response head, held to go out with the first body bytes. */
  private headOut: string | undefined;
  /** The client's socket, once upgraded. */
  private down: RelaySocket | undefined;

  readonly socket: RelaySocket;
  /** The request body's way out, made once per connection rather than per request. */
  private readonly sinkWrite = (chunk: Buffer): boolean => {
    this.active = true;
    return this.socket.write(chunk);
  };
  private readonly sinkDrain = (resume: () => void): void => {
    this.socket.once('drain', resume);
  };

  constructor(
    private readonly pool: H1Pool,
    readonly key: string,
    open: (onread?: OnRead) => RelaySocket,
    secure: boolean,
  ) {
    const onread: OnRead = {
      buffer: READ_BUFFER,
      callback: (n, buf) => {
        const d = Buffer.allocUnsafe(n);
        buf.copy(d, 0, 0, n);
        return this.data(d);
      },
    };
    const socket = open(onread);
    this.socket = socket;
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      this.connected = true;
    });
    // Only for a socket made without `onread` (it never emits 'data' otherwise).
    socket.on('data', (d: Buffer) => {
      if (!this.data(d)) socket.pause();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.failed(err.message, err.code));
    socket.on('close', () => this.closed());
    relayTicker.watch(this);
  }

  /** Relay `ex`'s request over this connection; `done` gets the outcome, once. */
  serve(ex: Exchange, t: ForwardTarget, done: (o: Outcome) => void): void {
    this.state = State.Busy;
    this.ex = ex;
    this.t = t;
    this.done = done;
    this.gotBytes = false;
    this.rbuf = EMPTY;
    this.head = undefined;
    this.framer = undefined;
    this.headOut = undefined;
    this.active = true;
    const socket = this.socket;
    // Paused for a previous client that stopped reading: this exchange starts afresh.
    if (socket.isPaused()) socket.resume();
    socket.write(writeHead(t.startLine, t.lines), 'latin1');
    ex.attachSink(this.sinkWrite, this.sinkDrain);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The client went away, or sent a body that cannot be relayed. */
  abort(): void {
    this.socket.destroy();
    this.settle({ status: this.head?.status ?? 499, sentResponse: true });
  }

  onTick(quietMs: number): void {
    if (this.state === State.Busy) {
      const t = this.t as ForwardTarget;
      if (quietMs >= t.timeoutMs) this.failed(`no response within ${t.timeoutMs} ms`, 'ETIMEDOUT', 504);
    } else if (this.state === State.Idle && quietMs >= H1_POOL_LIMITS.idleTimeoutMs) {
      this.socket.destroy();
    }
  }

  private settle(o: Outcome): void {
    const done = this.done;
    if (done === undefined) return;
    this.done = undefined;
    this.ex = undefined;
    this.t = undefined;
    done(o);
  }

  /** Nothing was sent to the client: the caller may retry or answer itself. */
  private failBefore(
    status: number,
    message: string,
    extra: { retryable?: true; staleSocket?: true } = {},
  ): void {
    this.socket.destroy();
    this.settle({ status, sentResponse: false, connectFailed: !this.connected, message, ...extra });
  }

  private failed(message: string, code?: string, status = 502): void {
    const ex = this.ex;
    if (ex === undefined) {
      // Idle (or upgraded, where the pipes close both sides): nothing to answer.
      this.socket.destroy();
      return;
    }
    if (ex.responded) {
      // Mid-response: the client cannot be told, only cut off.
      this.socket.destroy();
      ex.socket.destroy();
      this.settle({ status: this.head?.status ?? 502, sentResponse: true });
      return;
    }
    // The race every keep-alive client has: the server closed an idle connection as we reused it.
    const stale =
      this.served > 0 && !this.gotBytes && (code === 'ECONNRESET' || code === 'EPIPE' || code === undefined);
    this.failBefore(status, message, stale ? { staleSocket: true } : {});
  }

  private closed(): void {
    const was = this.state;
    this.state = State.Closed;
    relayTicker.unwatch(this);
    if (was === State.Idle) this.pool.forget(this);
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
        // Interim (100 Continue, 103 Early Hints): passed on; the final response follows.
        ex.socket.write(writeHead(`HTTP/1.1 ${h.status} ${h.reason}`, exchangeLines(h)), 'latin1');
        continue;
      }
      if (this.t?.retryOn?.(h.status) && !ex.responded) {
        this.failBefore(h.status, `status ${h.status}`, { retryable: true });
        return true;
      }
      this.head = h;
      const framer = new BodyFramer(responseBody(h, ex.head.method));
      this.framer = framer;
      this.headOut = ex.responseHead(h.status, h.reason, exchangeLines(h), framer.body.kind === 'close');
      const rest = this.rbuf;
      this.rbuf = EMPTY;
      this.body(rest);
      return true;
    }
  }

  private body(chunk: Buffer): void {
    const ex = this.ex as Exchange;
    const framer = this.framer as BodyFramer;
    const step = framer.push(chunk);
    if ('error' in step) {
      this.failed(`bad response body: ${step.error}`, 'EPROTO');
      return;
    }
    const part = step.used === chunk.length ? chunk : chunk.subarray(0, step.used);
    let out: Buffer = part;
    if (this.headOut !== undefined) {
      // Heads were read as latin1 (bytes as they came): written back the same way, with the first
      // body bytes in one write.
      const head = Buffer.from(this.headOut, 'latin1');
      out = part.length === 0 ? head : Buffer.concat([head, part]);
      this.headOut = undefined;
    }
    const down = ex.socket;
    if (out.length > 0 && !down.write(out)) {
      // The client reads slower than the upstream sends: stop reading until it catches up.
      this.socket.pause();
      down.once('drain', () => {
        if (this.ex === ex) this.socket.resume();
      });
    }
    if (!step.done) return;
    if (ex.mustClose) down.end();
    const h = this.head as Head;
    // Reusable only after a whole, cleanly framed exchange: nothing extra, request body all sent.
    const reusable = step.used === chunk.length && !h.close && ex.bodyDone && ex.head.minor === 1;
    this.state = State.Idle;
    this.served++;
    // Back in the pool before the caller hears of it: its next request (pipelined) may take it.
    const kept = reusable && this.pool.release(this);
    this.settle({ status: h.status, sentResponse: true });
    if (!kept) this.socket.destroy();
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
    down.write(ex.responseHead(101, h.reason, exchangeLines(h), false), 'latin1');
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
const exchangeLines = (h: Head): string[] => forwardLines(h, NONE, h.upgrade);
