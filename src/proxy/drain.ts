// The open connections of one upstream listener, so that a snapshot which removes the listener (an
// upstream taken out of a service definition, a service deregistered, a port whose protocol
// changed) ends them too, not only stops accepting new ones. Without it a client's keep-alive pool
// kept calling through a port its configuration no longer had, for as long as it kept the
// connection busy. Envoy drains a removed listener the same way:
// - each connection is asked to finish gracefully: HTTP/1.1 closes after the response in flight
//   (`connection: close`), or at once when idle; HTTP/2 and gRPC, and the HTTP/2 tunnels of the
//   HTTP proxy port, get GOAWAY and finish the calls in flight;
// - whatever is still open `DRAIN_LIMITS.closeAfterMs` later is closed: TCP connections, tcp
//   tunnels and WebSockets (which have no graceful end the proxy could ask for), and calls that
//   outlast the drain.

/** A connection, or an HTTP/2 session, as the drain sees it. */
export interface Drainable {
  once(event: 'close', listener: () => void): unknown;
  destroy(): unknown;
}

export const DRAIN_LIMITS = Object.freeze({
  /**
   * How long a removed listener's connections may take to finish before they are closed. Long
   * enough for a request in flight to meet its route's timeout (15 s by default) with room to
   * spare; short enough that a removed upstream stops carrying long-lived TCP traffic within a
   * minute, as an operator who removed it expects.
   */
  closeAfterMs: 30_000,
});

export class ListenerConnections {
  /** Each open connection, and how to ask it to finish (none: it can only be closed). */
  private readonly open = new Map<Drainable, (() => void) | undefined>();
  private draining = false;

  /** Track `c` until it closes. A connection accepted after drain() is asked to finish at once. */
  add(c: Drainable, graceful?: () => void): void {
    this.open.set(c, graceful);
    c.once('close', () => this.open.delete(c));
    if (this.draining) graceful?.();
  }

  get size(): number {
    return this.open.size;
  }

  /**
   * Ask every connection to finish, and close those still open `closeAfterMs` later. Returns how
   * many were open. Only the first call acts.
   */
  drain(closeAfterMs: number): number {
    if (this.draining) return 0;
    this.draining = true;
    const n = this.open.size;
    if (n === 0) return 0;
    for (const graceful of [...this.open.values()]) graceful?.();
    const timer = setTimeout(() => {
      for (const c of [...this.open.keys()]) c.destroy();
      this.open.clear();
    }, closeAfterMs);
    timer.unref();
    return n;
  }
}
