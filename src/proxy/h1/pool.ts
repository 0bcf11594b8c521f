// Upstream connections of the HTTP/1.1 relay, per destination key (a peer agent and service, or a
// local instance). Each connection is an UpstreamConn that keeps its socket listeners for its whole
// life and serves one exchange at a time; between exchanges it waits here. Last in, first out, so a
// burst reuses warm connections and the rest age out.
//
// A request that finds no idle connection waits in its destination's queue; it is not tied to the
// connection it causes to be opened. Whichever connection is ready first, a new one whose handshake
// finished or a busy one whose exchange ended, takes the oldest waiting request (as Envoy's pools
// do). Without this, a burst on a cold pool (after the idle timeout, every pooled connection gone)
// opened one mTLS connection per request, and each request waited for its own handshake while all
// of them competed for the CPU: 1,000 req/s into a cold pool saw p99 above 100 ms. Connections being
// opened to one destination are capped, so such a burst costs a few handshakes, not hundreds.
//
// Bounded: keys, idle connections per key, connections opening per key, connections in all per key
// when the destination sets a limit (service-defaults maxConnections), requests waiting per key,
// how long a connection may sit idle (shorter than the 60 s a peer agent keeps an idle connection
// open, so the peer rarely closes one under us) and how long a request may wait for one.
import { FULL_CODE } from '../mux/client.js';
import type { TurnWritable } from './turn.js';
import { UpstreamConn } from './upstream.js';

export const H1_POOL_LIMITS = Object.freeze({
  keysMax: 1024,
  idlePerKeyMax: 128,
  idleTimeoutMs: 30_000,
  /**
   * Connections being opened (TCP connect plus, to a peer agent, the TLS handshake) to one
   * destination at once. More only adds handshakes competing for the same CPU; 8 keeps a cold
   * start at thousands of requests a second to a few milliseconds of waiting.
   */
  connectingPerKeyMax: 8,
  /** Requests waiting for a connection to one destination; one more is refused (503), as Envoy's max_pending_requests. */
  waitingPerKeyMax: 1024,
  /**
   * A server that says how long it keeps an idle connection (`Keep-Alive: timeout=5`, as Node's
   * and Apache's do) has its connections closed this much sooner, so the pool never hands out one
   * the server is closing at that moment (undici's keepAliveTimeoutThreshold). Covers the ticker's
   * resolution and a slow event loop on either side with room to spare.
   */
  keepAliveMarginMs: 1_000,
});

/** Keep-Alive timeouts above this many seconds are read as this many (only the pool's cap matters). */
const KEEP_ALIVE_SECONDS_MAX = 86_400;

/**
 * The idle timeout a `Keep-Alive` header value announces, in ms (`timeout=5, max=100` → 5000), or
 * undefined when it announces none or is malformed. RFC 2068 §19.7.1.1's parameters: comma
 * separated, names in any case, values a token or a quoted string.
 */
export function keepAliveTimeoutMs(value: string): number | undefined {
  for (const param of value.split(',')) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'timeout') continue;
    let v = param.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    if (!/^\d{1,9}$/.test(v)) return undefined;
    return Math.min(Number(v), KEEP_ALIVE_SECONDS_MAX) * 1_000;
  }
  return undefined;
}

/**
 * How long a connection may sit idle in the pool: `defaultMs` unless the server announced its own
 * timeout, then that less keepAliveMarginMs (never above the pool's cap). 0 or less: not reused.
 */
export function idleLimitMs(keepAlive: string | undefined, defaultMs: number): number {
  const announcedMs = keepAlive === undefined ? undefined : keepAliveTimeoutMs(keepAlive);
  if (announcedMs === undefined) return defaultMs;
  return Math.min(announcedMs - H1_POOL_LIMITS.keepAliveMarginMs, H1_POOL_LIMITS.idleTimeoutMs);
}

type Listener<A extends unknown[]> = (...args: A) => void;
type SocketEvent = 'close' | 'end' | 'drain' | 'connect' | 'secureConnect';

/**
 * The socket surface the relay uses: net.Socket and tls.TLSSocket have it, and so does a stream
 * of a multiplexed session to a peer agent (mux/stream.ts), which is not a Node stream.
 */
export interface RelaySocket extends TurnWritable {
  write(chunk: Buffer | string, encoding?: BufferEncoding): boolean;
  end(): unknown;
  end(chunk: Buffer | string): unknown;
  destroy(err?: Error): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
  on(event: 'data', l: Listener<[Buffer]>): unknown;
  on(event: 'error', l: Listener<[Error]>): unknown;
  on(event: SocketEvent, l: Listener<[]>): unknown;
  once(event: 'error', l: Listener<[Error]>): unknown;
  once(event: SocketEvent, l: Listener<[]>): unknown;
  off(event: 'data', l: Listener<[Buffer]>): unknown;
  emit(event: 'data', d: Buffer): boolean;
  setTimeout(ms: number, cb?: () => void): unknown;
  /** Set on a mux stream whose session takes no new work: closed when free, never reused. */
  readonly retired?: boolean;
}

/**
 * Where every socket of this thread that reads through `onread` reads into (Node's own read size):
 * upstream connections and accepted client connections. Each callback copies its bytes out before
 * returning, so one buffer serves them all.
 */
export const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Bytes `from..n` of what an onread callback got in `buf`, copied out (the buffer is reused by the next read). */
export function copyRead(n: number, buf: Buffer, from = 0): Buffer {
  const d = Buffer.allocUnsafe(n - from);
  buf.copy(d, 0, from, n);
  return d;
}

/** The `onread` option of net.connect and tls.connect: reads land in `buffer`, then `callback` runs. */
export interface OnRead {
  buffer: Buffer;
  callback: (bytes: number, buffer: Buffer) => boolean;
}

/** How to reach one destination. */
export interface PoolDestination {
  key: string;
  /** A new connection; it should read through `onread` (net and tls connect options) when given. */
  open: (onread?: OnRead) => RelaySocket;
  /** A connection not open after this long is abandoned, and a request not given one fails. */
  connectTimeoutMs: number;
  /**
   * How long an idle connection is kept when the server does not say how long it keeps one
   * (`Keep-Alive: timeout=N`). Unset: H1_POOL_LIMITS.idleTimeoutMs.
   */
  idleTimeoutMs?: number | undefined;
  /**
   * At most this many connections to the destination at once, busy, idle and opening together
   * (service-defaults `maxConnections`, for a local instance); more requests wait for one to be
   * free, as long as they may wait for a connect. Unset: no limit beyond the pool's own.
   */
  connectionsMax?: number | undefined;
}

/** A request waiting for a connection. */
export interface PoolWaiter {
  /** A connected, idle connection is now this request's. */
  poolReady(conn: UpstreamConn): void;
  /** The connection opened for this request failed: no connection will come. */
  poolFailed(message: string): void;
}

/** Everything the pool holds for one destination. */
class Dest {
  readonly idle: UpstreamConn[] = [];
  readonly connecting = new Set<UpstreamConn>();
  /** Oldest first. */
  readonly waiting: PoolWaiter[] = [];
  /** Every connection made and not yet closed: opening, idle and busy. */
  readonly conns = new Set<UpstreamConn>();

  /**
   * The last connection tried could not be made because the destination takes no more now (every
   * mux session to it is full): requests wait for a busy one to be free. Cleared when one closes.
   */
  full = false;

  /** Updated by every request, so connections opened later use the newest settings. */
  constructor(public d: PoolDestination) {}

  /** Nothing held: no connection of any kind (busy ones keep the count of a connection limit) and no request waiting. */
  get unused(): boolean {
    return this.conns.size === 0 && this.waiting.length === 0;
  }

  /** Another connection may be opened: fewer are opening than requests wait, within both limits. */
  get mayOpen(): boolean {
    const max = this.d.connectionsMax;
    return (
      !this.full &&
      this.connecting.size < this.waiting.length &&
      this.connecting.size < H1_POOL_LIMITS.connectingPerKeyMax &&
      (max === undefined || this.conns.size < max)
    );
  }
}

export class H1Pool {
  private readonly dests = new Map<string, Dest>();

  /**
   * An idle connection to `d` (reused), or undefined: then `w` waits for one (its `poolReady` or
   * `poolFailed` is called later) and a connection is opened if fewer are opening than are waited
   * for. 'full' when too many requests already wait for `d`.
   */
  acquire(d: PoolDestination, w: PoolWaiter): UpstreamConn | undefined | 'full' {
    const dest = this.dest(d);
    dest.d = d;
    let conn = dest.idle.pop();
    // Idle connections whose credentials were replaced are closed, not reused (bounded by the list).
    while (conn?.socket.retired === true) {
      conn.destroy();
      conn = dest.idle.pop();
    }
    if (conn !== undefined) return conn;
    if (dest.waiting.length >= H1_POOL_LIMITS.waitingPerKeyMax) return 'full';
    dest.waiting.push(w);
    this.fill(dest);
    return undefined;
  }

  /** `w` no longer wants a connection (its client left, or it waited too long). */
  cancel(key: string, w: PoolWaiter): void {
    const dest = this.dests.get(key);
    if (dest === undefined) return;
    const i = dest.waiting.indexOf(w);
    if (i >= 0) dest.waiting.splice(i, 1);
    this.tidy(dest);
  }

  /**
   * A connection is free: connected for the first time, or its exchange ended cleanly. It goes to
   * the oldest waiting request, else into the idle list; false if it cannot be kept (it is closed).
   */
  release(conn: UpstreamConn): boolean {
    // A key with a connection is neither tidied nor evicted, so its entry is here, holding the
    // connection; not after close() (the pool shut down): then the connection is not kept.
    const dest = this.dests.get(conn.dest.key);
    if (dest === undefined || !dest.conns.has(conn)) return false;
    const opened = dest.connecting.delete(conn);
    if (conn.socket.retired === true) {
      // Opened with credentials since replaced: requests still waiting get a new connection.
      this.fill(dest);
      this.tidy(dest);
      return false;
    }
    const w = dest.waiting.shift();
    // One fewer opening: another may open for the requests still waiting.
    if (opened) this.fill(dest);
    if (w !== undefined) {
      w.poolReady(conn);
      return true;
    }
    if (dest.idle.length >= H1_POOL_LIMITS.idlePerKeyMax) return false;
    dest.idle.push(conn);
    return true;
  }

  /**
   * A connection being opened failed: the oldest waiting request hears why, and others may be
   * opened. With `reopen` (the failure says how to connect instead) no request hears of it.
   */
  connectFailed(conn: UpstreamConn, message: string, reopen = false): void {
    const dest = this.dests.get(conn.dest.key);
    if (dest === undefined || !dest.connecting.delete(conn)) return;
    if (!reopen) dest.waiting.shift()?.poolFailed(message);
    this.fill(dest);
    this.tidy(dest);
  }

  /** An idle connection closed, timed out or misbehaved: it is no longer offered. */
  forget(conn: UpstreamConn): void {
    const dest = this.dests.get(conn.dest.key);
    if (dest === undefined) return;
    const i = dest.idle.indexOf(conn);
    if (i >= 0) dest.idle.splice(i, 1);
    this.tidy(dest);
  }

  /**
   * A connection closed, whatever it was doing (after forget or connectFailed when it was idle or
   * opening): one fewer counts against the destination's limit, so a waiting request may get a
   * new one.
   */
  closed(conn: UpstreamConn): void {
    const dest = this.dests.get(conn.dest.key);
    // Not counted here: its key was evicted (and perhaps made anew) since it opened.
    if (dest === undefined || !dest.conns.delete(conn)) return;
    // A stream closed: its session has room again.
    dest.full = false;
    this.fill(dest);
    this.tidy(dest);
  }

  /** Open connections while fewer are opening than requests wait, up to the caps. */
  private fill(dest: Dest): void {
    while (dest.mayOpen) {
      let conn: UpstreamConn;
      try {
        conn = new UpstreamConn(this, dest.d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === FULL_CODE && dest.conns.size > 0) {
          // Requests wait for one of this destination's connections to be free or to close (the
          // wait is bounded in count and time). With none of its own there is nothing to wait
          // for: the request fails, as any connection that cannot be opened.
          dest.full = true;
          return;
        }
        // Nothing to connect with (no certificate yet): the request that wanted it hears why.
        dest.waiting.shift()?.poolFailed(err instanceof Error ? err.message : String(err));
        continue;
      }
      dest.connecting.add(conn);
      dest.conns.add(conn);
    }
  }

  private dest(d: PoolDestination): Dest {
    let dest = this.dests.get(d.key);
    if (dest === undefined) {
      if (this.dests.size >= H1_POOL_LIMITS.keysMax) this.evictIdleKey();
      dest = new Dest(d);
      this.dests.set(d.key, dest);
    }
    return dest;
  }

  private tidy(dest: Dest): void {
    if (dest.unused) this.dests.delete(dest.d.key);
  }

  /**
   * Make room for a new key: the oldest whose connections are all idle is closed. Keys with
   * connections opening or busy, or requests waiting, stay; there are at most as many as requests
   * in flight.
   */
  private evictIdleKey(): void {
    for (const [key, dest] of this.dests) {
      if (dest.conns.size > dest.idle.length || dest.waiting.length > 0) continue;
      this.dests.delete(key);
      for (const c of dest.idle.splice(0)) c.destroy();
      return;
    }
  }

  /** Idle connections held (for status and tests). */
  get idleCount(): number {
    let n = 0;
    for (const dest of this.dests.values()) n += dest.idle.length;
    return n;
  }

  /**
   * `key` holds as many connections as its destination allows (`connectionsMax`): a request waiting
   * there waits for a busy one to be free, not for one to open.
   */
  atLimit(key: string): boolean {
    const dest = this.dests.get(key);
    const max = dest?.d.connectionsMax;
    return dest !== undefined && (dest.full || (max !== undefined && dest.conns.size >= max));
  }

  /** Requests waiting for a connection (for tests). */
  get waitingCount(): number {
    let n = 0;
    for (const dest of this.dests.values()) n += dest.waiting.length;
    return n;
  }

  /** Close idle and opening connections; waiting requests are told no connection will come. */
  close(): void {
    const all = [...this.dests.values()];
    this.dests.clear();
    for (const dest of all) {
      for (const c of [...dest.idle, ...dest.connecting]) c.destroy();
      for (const w of dest.waiting) w.poolFailed('the proxy is shutting down');
    }
  }
}
