// Connection reuse: HTTP/1.1 keep-alive connections (the relay's pool) and HTTP/2 sessions, to peer
// agents (over mTLS) and to local instances (plain, on loopback). Keyed maps with a bound; the oldest
// entry is closed when a new key would exceed it.

import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HeaderOps } from '../core/state/kinds/header-modifiers.js';
import type { ForwardTarget } from './h1/forward.js';
import { H1_POOL_LIMITS, H1Pool } from './h1/pool.js';
import type { InstanceProtocol } from './metrics.js';
import { MuxClient } from './mux/client.js';
import type { ProxyLocalInstance } from './types.js';

/** Where the HTTP/1.1 relay takes a connection from. */
export type PoolTarget = Pick<
  ForwardTarget,
  'pool' | 'key' | 'open' | 'connectTimeoutMs' | 'connectionsMax' | 'idleTimeoutMs'
>;

/**
 * How long a connection to a local instance waits idle in the pool when the instance does not say
 * how long it keeps one (`Keep-Alive: timeout=N`). Below the 5 s that many servers keep an idle
 * connection without saying so (uvicorn's default; Node's, which does say), so the pool does not
 * hand out a connection the instance is closing at that moment; a new connection on loopback costs
 * a fraction of a millisecond. undici (Node's fetch) keeps 4 s for the same reason.
 */
export const LOCAL_IDLE_TIMEOUT_MS = 4_000;

/**
 * What the relay needs to send one request through `t`'s pool. Written out field by field, not
 * spread: every request's target then has one shape, which keeps the relay's property reads fast.
 */
export function forwardTarget(
  t: PoolTarget,
  startLine: string,
  block: string,
  timeoutMs: number,
  retryOn?: (status: number) => boolean,
  responseHeaders?: readonly HeaderOps[],
): ForwardTarget {
  return {
    responseHeaders,
    pool: t.pool,
    key: t.key,
    open: t.open,
    connectTimeoutMs: t.connectTimeoutMs,
    connectionsMax: t.connectionsMax,
    idleTimeoutMs: t.idleTimeoutMs,
    startLine,
    block,
    timeoutMs,
    retryOn,
  };
}

/** Distinct pooled destinations kept at once (agents × services for peers, instances for local): one bound for both pools. */
export const POOL_KEYS_MAX = H1_POOL_LIMITS.keysMax;

class Bounded<V> {
  private readonly map = new Map<string, V>();

  constructor(private readonly close: (v: V) => void) {}

  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v !== undefined) return v;
    if (this.map.size >= POOL_KEYS_MAX) {
      const [oldKey, old] = this.map.entries().next().value as [string, V];
      this.map.delete(oldKey);
      this.close(old);
    }
    v = make();
    this.map.set(key, v);
    return v;
  }

  delete(key: string, v: V): void {
    if (this.map.get(key) === v) this.map.delete(key);
  }

  /** Remove every entry for which `gone` holds, and close it. */
  closeIf(gone: (v: V) => boolean): void {
    for (const [key, v] of this.map) {
      if (!gone(v)) continue;
      this.map.delete(key);
      this.close(v);
    }
  }

  clear(): void {
    for (const v of this.map.values()) this.close(v);
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Close `s` gracefully: no new streams, those under way finish. A session still connecting (its
 * TLS handshake running) holds the calls already asked of it until it connects, and Node fails
 * them if the session was closed meanwhile; closed at once on 'connect', nghttp2 refuses those not
 * yet written. So it is closed on the turn after it connects: Node writes the queued calls' frames
 * in a native immediate, which runs before the JavaScript ones of that turn.
 */
function closeWhenConnected(s: ClientHttp2Session): void {
  if (s.connecting) s.once('connect', () => setImmediate(() => s.close()));
  else s.close();
}

/** How a session to a peer agent connects (TLS as the calling service), and what it proves itself with. */
export interface PeerH2 {
  open: () => Duplex;
  /** Undefined while the calling service has no certificate: its handshakes fail, and the session with them. */
  credentials: object | undefined;
}

export class Pools {
  /** `onInstanceConnect` hears of each connection opened to a local instance (a metric). */
  constructor(
    private readonly onInstanceConnect: (service: string, protocol: InstanceProtocol) => void = () =>
      undefined,
  ) {}

  /** Idle HTTP/1.1 connections, per peer agent and service or per local instance. */
  readonly h1 = new H1Pool();
  /** Multiplexed HTTP/1.1 sessions to peer agents: where the pool's peer connections are streams. */
  readonly mux = new MuxClient();
  private readonly h2 = new Bounded<ClientHttp2Session>(closeWhenConnected);
  /** What each HTTP/2 session to a peer agent proves itself with (see h2Session). */
  private readonly h2Credentials = new WeakMap<ClientHttp2Session, object>();

  /** Targets per local instance, made once per snapshot's instance object instead of per request. */
  private readonly localTargets = new WeakMap<ProxyLocalInstance, PoolTarget>();

  /** Plain pooled connections to an instance on this agent. */
  localTarget(inst: ProxyLocalInstance): PoolTarget {
    let t = this.localTargets.get(inst);
    if (t === undefined) {
      t = {
        pool: this.h1,
        key: `local|${inst.id}`,
        open: (onread) => {
          this.onInstanceConnect(inst.service, 'http');
          const s = netConnect({ host: inst.host, port: inst.port, ...(onread ? { onread } : {}) });
          s.setNoDelay(true);
          return s;
        },
        connectTimeoutMs: inst.connectTimeoutMs,
        connectionsMax: inst.connectionsMax,
        idleTimeoutMs: LOCAL_IDLE_TIMEOUT_MS,
      };
      this.localTargets.set(inst, t);
    }
    return t;
  }

  /**
   * An HTTP/2 session for `key`, made anew once the previous one closed or failed: in clear text to
   * `authority` (an instance on this agent), or, with `peer`, over the connections `peer.open`
   * makes (to a peer agent). `peer.credentials` (the TLS context of the calling service's
   * certificate and the trusted roots) is what such a session proves itself with, so a peer session
   * cannot be asked for without it: once a snapshot replaces it (a renewed certificate, a CA rotation), retireH2Unless
   * retires the sessions made with the old one. `instanceOf`: the service of the local instance a
   * clear-text session goes to, whose instance-connection count a new session adds to.
   */
  h2Session(key: string, authority: string, peer?: PeerH2, instanceOf?: string): ClientHttp2Session {
    const make = (): ClientHttp2Session => {
      if (instanceOf !== undefined) this.onInstanceConnect(instanceOf, 'http2');
      return this.newSession(key, authority, peer);
    };
    const existing = this.h2.get(key, make);
    if (!existing.closed && !existing.destroyed) return existing;
    this.h2.delete(key, existing);
    return this.h2.get(key, make);
  }

  /**
   * Retire every HTTP/2 session opened with credentials not in `live`: it takes no new streams
   * (the next call opens a session with the current credentials), and the calls under way on it
   * finish before it closes (Http2Session.close). As the mux client's retireUnless.
   */
  retireH2Unless(live: ReadonlySet<object>): void {
    this.h2.closeIf((s) => {
      const c = this.h2Credentials.get(s);
      return c !== undefined && !live.has(c);
    });
  }

  private newSession(key: string, authority: string, peer: PeerH2 | undefined): ClientHttp2Session {
    const open = peer?.open;
    const s = h2connect(`http://${authority}`, open ? { createConnection: () => open() } : {});
    if (peer?.credentials !== undefined) this.h2Credentials.set(s, peer.credentials);
    const forget = (): void => this.h2.delete(key, s);
    s.on('error', forget);
    s.on('close', forget);
    s.on('goaway', forget);
    // An idle session does not keep the worker alive on shutdown.
    s.unref();
    return s;
  }

  close(): void {
    this.h1.close();
    this.mux.close();
    this.h2.clear();
  }

  get size(): { h1: number; h2: number } {
    return { h1: this.h1.idleCount, h2: this.h2.size };
  }
}
