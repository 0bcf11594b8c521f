// One attempt to relay a request upstream: take a connection from the pool, send the head and the
// body, read the response head, then stream the response body to the client (the request timeout
// counts inactivity). The connection goes back to the pool only after a cleanly framed exchange.
import { BodyFramer } from './body.js';
import { forwardLines, type Head, parseHead, responseBody, writeHead } from './head.js';
import type { RelaySocket } from './pool.js';
import type { Exchange, ForwardTarget, Outcome } from './relay.js';

const EMPTY = Buffer.alloc(0);

export class Upstream {
  private socket: RelaySocket | undefined;
  private reused = false;
  private connected = false;
  private gotBytes = false;
  private rbuf: Buffer = EMPTY;
  private head: Head | undefined;
  private framer: BodyFramer | undefined;
  /** The response head, held to go out with the first body bytes. */
  private headOut: string | undefined;
  private settled = false;
  private resolve: (o: Outcome) => void = () => undefined;
  private readonly onData = (d: Buffer): void => this.data(d);
  private readonly onError = (err: Error): void =>
    this.failed(err.message, (err as NodeJS.ErrnoException).code);
  private readonly onClose = (): void => this.closed();
  private readonly onTimeout = (): void => this.timedOut();
  private readonly onConnect = (): void => {
    this.connected = true;
  };

  constructor(
    private readonly ex: Exchange,
    private readonly t: ForwardTarget,
  ) {}

  run(): Promise<Outcome> {
    return new Promise((resolve) => {
      this.resolve = resolve;
      const { socket, reused } = this.t.pool.acquire(this.t.key, this.t.open);
      this.socket = socket;
      this.reused = reused;
      this.connected = reused;
      if (!reused) socket.once(this.t.secure ? 'secureConnect' : 'connect', this.onConnect);
      socket.on('data', this.onData);
      socket.on('error', this.onError);
      socket.on('close', this.onClose);
      // An inactivity timeout, as documented: a response that keeps streaming is not cut.
      socket.on('timeout', this.onTimeout);
      socket.setTimeout(this.t.timeoutMs);
      socket.write(writeHead(this.t.startLine, this.t.lines), 'latin1');
      this.ex.attachSink(
        (chunk) => socket.write(chunk),
        (resume) => socket.once('drain', resume),
      );
    });
  }

  /** The client went away, or sent a body that cannot be relayed. */
  abort(): void {
    this.socket?.destroy();
    this.settle({ status: this.head?.status ?? 499, sentResponse: true });
  }

  private settle(o: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    const s = this.socket;
    if (s) {
      s.off('timeout', this.onTimeout);
      s.setTimeout(0);
      s.off('data', this.onData);
      s.off('error', this.onError);
      s.off('close', this.onClose);
      s.off('connect', this.onConnect);
      s.off('secureConnect', this.onConnect);
    }
    this.resolve(o);
  }

  /** Nothing was sent to the client: the caller may retry or answer itself. */
  private failBefore(
    status: number,
    message: string,
    extra: { retryable?: true; staleSocket?: true } = {},
  ): void {
    this.socket?.destroy();
    this.settle({ status, sentResponse: false, connectFailed: !this.connected, message, ...extra });
  }

  private timedOut(): void {
    this.failed(`no response within ${this.t.timeoutMs} ms`, 'ETIMEDOUT', 504);
  }

  private failed(message: string, code?: string, status = 502): void {
    if (this.ex.responded) {
      // Mid-response: the client cannot be told, only cut off.
      this.socket?.destroy();
      this.ex.socket.destroy();
      this.settle({ status: this.head?.status ?? 502, sentResponse: true });
      return;
    }
    // The race every keep-alive client has: the server closed an idle connection as we reused it.
    const stale =
      this.reused && !this.gotBytes && (code === 'ECONNRESET' || code === 'EPIPE' || code === undefined);
    this.failBefore(status, message, stale ? { staleSocket: true } : {});
  }

  private closed(): void {
    if (this.framer?.body.kind === 'close' && this.ex.responded) {
      // A body delimited by the connection's end has ended.
      this.ex.socket.end();
      this.settle({ status: this.head?.status ?? 200, sentResponse: true });
      return;
    }
    this.failed('the connection closed before the response ended');
  }

  private data(d: Buffer): void {
    this.gotBytes = true;
    if (this.framer) {
      this.body(d);
      return;
    }
    this.rbuf = this.rbuf.length > 0 ? Buffer.concat([this.rbuf, d]) : d;
    for (;;) {
      const r = parseHead(this.rbuf, 0, 'response');
      if (r.kind === 'partial') return;
      if (r.kind === 'error') {
        this.failBefore(502, `bad response: ${r.message}`);
        return;
      }
      const h = r.head;
      this.rbuf = this.rbuf.subarray(r.size);
      if (h.status === 101) {
        this.upgraded(h);
        return;
      }
      if (h.status < 200) {
        // Interim (100 Continue, 103 Early Hints): passed on; the final response follows.
        this.ex.socket.write(writeHead(`HTTP/1.1 ${h.status} ${h.reason}`, exchangeLines(h)), 'latin1');
        continue;
      }
      if (this.t.retryOn?.(h.status) && !this.ex.responded) {
        this.failBefore(h.status, `status ${h.status}`, { retryable: true });
        return;
      }
      this.head = h;
      const framer = exchangeFramer(h, this.ex.head.method);
      this.framer = framer;
      this.headOut = this.ex.responseHead(h.status, h.reason, exchangeLines(h), framer.body.kind === 'close');
      const rest = this.rbuf;
      this.rbuf = EMPTY;
      this.body(rest);
      return;
    }
  }

  private body(chunk: Buffer): void {
    const framer = this.framer as BodyFramer;
    const step = framer.push(chunk);
    if ('error' in step) {
      this.failed(`bad response body: ${step.error}`, 'EPROTO');
      return;
    }
    const part = step.used === chunk.length ? chunk : chunk.subarray(0, step.used);
    const socket = this.socket as RelaySocket;
    let out: string | Buffer = part;
    if (this.headOut !== undefined) {
      // Heads were read as latin1 (bytes as they came): written back the same way.
      const head = Buffer.from(this.headOut, 'latin1');
      out = part.length === 0 ? head : Buffer.concat([head, part]);
      this.headOut = undefined;
    }
    if (out.length > 0 && !this.ex.socket.write(out)) {
      socket.pause();
      this.ex.socket.once('drain', () => socket.resume());
    }
    if (!step.done) return;
    if (this.ex.mustClose) this.ex.socket.end();
    const h = this.head as Head;
    // Reusable only after a whole, cleanly framed exchange: nothing extra, request body all sent.
    const reusable = step.used === chunk.length && !h.close && this.ex.bodyDone && this.ex.head.minor === 1;
    this.settle({ status: h.status, sentResponse: true });
    if (reusable) this.t.pool.release(this.t.key, socket);
    else socket.destroy();
  }

  private upgraded(h: Head): void {
    if (!this.ex.head.upgrade) {
      this.failBefore(502, 'a 101 answer to a request that asked no upgrade');
      return;
    }
    const up = this.socket as RelaySocket;
    const down = this.ex.socket;
    down.write(this.ex.responseHead(101, h.reason, exchangeLines(h), false), 'latin1');
    if (this.rbuf.length > 0) down.write(this.rbuf);
    const ahead = this.ex.hijack();
    this.settle({ status: 101, sentResponse: true });
    if (ahead.length > 0) up.write(ahead);
    down.pipe(up);
    up.pipe(down);
    down.resume();
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    up.on('close', () => down.destroy());
    down.on('close', () => up.destroy());
  }
}

const NONE: ReadonlySet<string> = new Set();
/** Response headers to forward (an upgrade keeps its Upgrade and Connection headers). */
const exchangeLines = (h: Head): string[] => forwardLines(h, NONE, h.upgrade);
const exchangeFramer = (h: Head, method: string): BodyFramer => new BodyFramer(responseBody(h, method));
