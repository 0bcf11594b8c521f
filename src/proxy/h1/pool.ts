// Idle upstream connections for the HTTP/1.1 relay, per destination key (a peer agent and service,
// or a local instance). Last in, first out, so a burst reuses warm sockets and the rest age out.
// Bounded: keys, idle sockets per key, and how long a socket may sit idle (shorter than the 60 s a
// peer agent keeps an idle connection open, so the peer rarely closes one under us).
import type { Duplex } from 'node:stream';

export const H1_POOL_LIMITS = Object.freeze({
  keysMax: 1024,
  idlePerKeyMax: 128,
  idleTimeoutMs: 30_000,
});

/** A duplex with the socket methods the pool uses (net.Socket and tls.TLSSocket both are). */
export type RelaySocket = Duplex & {
  setTimeout(ms: number, cb?: () => void): unknown;
};

interface Idle {
  socket: RelaySocket;
  onGone: () => void;
  onData: () => void;
}

export class H1Pool {
  private readonly idle = new Map<string, Idle[]>();

  /** An idle socket for `key` (reused: true), or a new one from `open`. */
  acquire(key: string, open: () => RelaySocket): { socket: RelaySocket; reused: boolean } {
    const list = this.idle.get(key);
    const entry = list?.pop();
    if (entry) {
      this.unwatch(entry);
      return { socket: entry.socket, reused: true };
    }
    return { socket: open(), reused: false };
  }

  /** Gives back a socket whose last exchange ended cleanly; it is closed if the pool is full. */
  release(key: string, socket: RelaySocket): void {
    if (socket.destroyed || !socket.writable) return void socket.destroy();
    let list = this.idle.get(key);
    if (list === undefined) {
      if (this.idle.size >= H1_POOL_LIMITS.keysMax) this.dropOldestKey();
      list = [];
      this.idle.set(key, list);
    }
    if (list.length >= H1_POOL_LIMITS.idlePerKeyMax) return void socket.destroy();
    const entry: Idle = {
      socket,
      onGone: () => this.forget(key, entry),
      // An idle connection has nothing to say: data now means the peer is confused.
      onData: () => this.forget(key, entry),
    };
    socket.on('close', entry.onGone);
    socket.on('error', entry.onGone);
    socket.on('data', entry.onData);
    socket.on('timeout', entry.onGone);
    socket.setTimeout(H1_POOL_LIMITS.idleTimeoutMs);
    list.push(entry);
  }

  private unwatch(e: Idle): void {
    e.socket.off('close', e.onGone);
    e.socket.off('error', e.onGone);
    e.socket.off('data', e.onData);
    e.socket.off('timeout', e.onGone);
    e.socket.setTimeout(0);
  }

  private forget(key: string, e: Idle): void {
    this.unwatch(e);
    e.socket.destroy();
    const list = this.idle.get(key);
    const i = list?.indexOf(e) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
    if (list?.length === 0) this.idle.delete(key);
  }

  private dropOldestKey(): void {
    const first = this.idle.entries().next().value as [string, Idle[]] | undefined;
    if (!first) return;
    this.idle.delete(first[0]);
    for (const e of first[1]) {
      this.unwatch(e);
      e.socket.destroy();
    }
  }

  /** Idle sockets held (for status and tests). */
  get idleCount(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  close(): void {
    for (const list of this.idle.values())
      for (const e of list) {
        this.unwatch(e);
        e.socket.destroy();
      }
    this.idle.clear();
  }
}
