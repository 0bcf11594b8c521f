// The end of a relayed TCP connection (L4, both agents): one side's close reaches the other, and a
// connection that carries nothing for too long is closed on both sides.
import type { Duplex } from 'node:stream';
import type { LogFn } from './context.js';
import { Ticker, type Watched } from './h1/ticker.js';

export const TCP_LIMITS = Object.freeze({
  /**
   * A relayed connection with no byte either way for this long is closed, both sockets. Without
   * it, a peer that vanished with no FIN or RST (a host powered off, a NAT that forgot the flow),
   * or a half-close whose other side never finishes, holds two sockets (and an mTLS connection
   * between the agents) for good. One hour, Envoy's tcp_proxy default: far past the keep-alive
   * of any protocol that idles on a long-lived connection (databases, message brokers).
   */
  idleTimeoutMs: 60 * 60_000,
});

/**
 * Sweeps the relayed TCP connections of this thread: every 10 s, coarse beside the hour it looks
 * for (it fires between that and 10 s later), so many long-lived connections cost little.
 */
export const tcpTicker = new Ticker(10_000);

/**
 * The other side of a relayed TCP connection has closed. A socket its pipe already ended (the
 * other side sent FIN) is closed once its last bytes are written, not cut before them; one it did
 * not end (the other side failed) is closed now.
 */
export function closeAfterFlush(s: Duplex): void {
  if (s.destroyed) return;
  if (!s.writableEnded || s.writableFinished) {
    s.destroy();
    return;
  }
  s.once('finish', () => s.destroy());
  s.once('error', () => s.destroy());
}

/**
 * Close both sockets of a relayed pair once neither has read a byte for TCP_LIMITS.idleTimeoutMs
 * (every byte one side writes, the other read), logging it with `fields`. Checked by tcpTicker,
 * so a connection costs no timer.
 */
export function closeWhenIdle(a: Duplex, b: Duplex, log: LogFn, fields: Record<string, unknown>): void {
  const w: Watched = {
    active: false,
    onTick(quietMs) {
      if (quietMs < TCP_LIMITS.idleTimeoutMs) return;
      tcpTicker.unwatch(w);
      log('info', 'idle TCP connection closed', { ...fields, idleMs: TCP_LIMITS.idleTimeoutMs });
      a.destroy();
      b.destroy();
    },
  };
  const touch = (): void => {
    w.active = true;
  };
  a.on('data', touch);
  b.on('data', touch);
  const stop = (): void => tcpTicker.unwatch(w);
  a.once('close', stop);
  b.once('close', stop);
  if (!a.destroyed && !b.destroyed) tcpTicker.watch(w);
}
