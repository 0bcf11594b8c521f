// Upstream connections of the HTTP/1.1 relay, per destination key (a peer agent and service, or a
// local instance). Each connection is an UpstreamConn that keeps its socket listeners for its whole
// life and serves one exchange at a time; between exchanges it waits here. Last in, first out, so a
// burst reuses warm connections and the rest age out. Bounded: keys, idle connections per key, and
// how long one may sit idle (shorter than the 60 s a peer agent keeps an idle connection open, so
// the peer rarely closes one under us).
import type { Duplex } from 'node:stream';
import { UpstreamConn } from './upstream.js';

export const H1_POOL_LIMITS = Object.freeze({
  keysMax: 1024,
  idlePerKeyMax: 128,
  idleTimeoutMs: 30_000,
});

/** A duplex with the socket methods the relay uses (net.Socket and tls.TLSSocket both are). */
export type RelaySocket = Duplex & {
  setTimeout(ms: number, cb?: () => void): unknown;
};

/** The `onread` option of net.connect and tls.connect: reads land in `buffer`, then `callback` runs. */
export interface OnRead {
  buffer: Buffer;
  callback: (bytes: number, buffer: Buffer) => boolean;
}

export class H1Pool {
  private readonly idle = new Map<string, UpstreamConn[]>();

  /** An idle connection for `key` (reused), or a new one on the socket from `open`. */
  acquire(key: string, open: (onread?: OnRead) => RelaySocket, secure: boolean): UpstreamConn {
    const list = this.idle.get(key);
    const conn = list?.pop();
    if (conn !== undefined) {
      if (list?.length === 0) this.idle.delete(key);
      return conn;
    }
    return new UpstreamConn(this, key, open, secure);
  }

  /** Takes back a connection whose last exchange ended cleanly; false if it was closed instead. */
  release(conn: UpstreamConn): boolean {
    let list = this.idle.get(conn.key);
    if (list === undefined) {
      if (this.idle.size >= H1_POOL_LIMITS.keysMax) this.dropOldestKey();
      list = [];
      this.idle.set(conn.key, list);
    }
    if (list.length >= H1_POOL_LIMITS.idlePerKeyMax) return false;
    list.push(conn);
    return true;
  }

  /** An idle connection closed, timed out or misbehaved: it is no longer offered. */
  forget(conn: UpstreamConn): void {
    const list = this.idle.get(conn.key);
    const i = list?.indexOf(conn) ?? -1;
    if (list === undefined || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.idle.delete(conn.key);
  }

  private dropOldestKey(): void {
    const first = this.idle.entries().next().value as [string, UpstreamConn[]] | undefined;
    if (!first) return;
    this.idle.delete(first[0]);
    for (const c of first[1]) c.destroy();
  }

  /** Idle connections held (for status and tests). */
  get idleCount(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  close(): void {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    for (const c of all) c.destroy();
  }
}
