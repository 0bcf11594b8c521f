// HTTP/1.1 to a peer agent as a pool target: streams of a multiplexed mTLS session (mux/), one TLS
// connection each for a peer that predates mesh-mux/1 or for an upgrade (WebSocket), made once
// per endpoint and calling service and reused by every request (outbound-http.ts).
import type { EngineContext } from './context.js';
import type { OnRead, RelaySocket } from './h1/pool.js';
import { entryOf, newMap } from './maps.js';
import { openPeer, peerKey } from './outbound-common.js';
import { ALPN_H1, ALPN_MUX } from './peer-tls.js';
import type { PoolTarget } from './pools.js';
import type { ProxyEndpoint, ProxyUpstream } from './types.js';

const ALPN_DIRECT = [ALPN_H1];
const ALPN_MUX_OR_H1 = [ALPN_MUX, ALPN_H1];

/**
 * HTTP/1.1 connections to a peer agent: streams of a multiplexed session (mux/), or, for a peer
 * that predates mesh-mux/1, one TLS connection each.
 */
function openPeerH1(ctx: EngineContext, e: ProxyEndpoint, source: string, connectTimeoutMs: number) {
  const key = peerKey(e, source);
  const direct = openPeer(ctx, e, source, ALPN_DIRECT, connectTimeoutMs);
  const session = openPeer(ctx, e, source, ALPN_MUX_OR_H1, connectTimeoutMs);
  return (onread?: OnRead): RelaySocket => {
    if (ctx.pools.mux.isLegacy(key)) return direct(onread);
    // The session's socket reads through 'data' events: one read carries many streams' frames.
    const credentials = ctx.clientContext(source);
    if (!credentials) throw new Error(`no certificate for ${source} yet`);
    return ctx.pools.mux.open(key, credentials, () => session());
  };
}

/**
 * Peer targets per endpoint (a snapshot's object: a new snapshot brings new ones) and calling
 * service, so a request reuses its pool key and opener instead of building them again.
 */
const peerTargets = new WeakMap<ProxyEndpoint, Map<string, PoolTarget>>();

/**
 * Through the instance's agent: a pooled stream of a multiplexed mTLS session as the calling
 * service. A request that asks for an upgrade (WebSocket) takes a TLS connection of its own: once
 * upgraded, the connection carries the new protocol's bytes, unframed, for as long as it lasts.
 */
export function peerTarget(
  ctx: EngineContext,
  up: ProxyUpstream,
  e: ProxyEndpoint,
  connectTimeoutMs: number,
  upgrade: boolean,
): PoolTarget {
  const bySource = entryOf(peerTargets, e, newMap<string, PoolTarget>);
  const slot = upgrade ? `${up.source}\u0000upgrade` : up.source;
  const held = bySource.get(slot);
  // Another engine in this process (tests run several) or another timeout makes a new one.
  if (held !== undefined && held.pool === ctx.pools.h1 && held.connectTimeoutMs === connectTimeoutMs)
    return held;
  const t: PoolTarget = {
    pool: ctx.pools.h1,
    key: upgrade ? `${peerKey(e, up.source)}|upgrade` : peerKey(e, up.source),
    open: upgrade
      ? openPeer(ctx, e, up.source, ALPN_DIRECT, connectTimeoutMs)
      : openPeerH1(ctx, e, up.source, connectTimeoutMs),
    connectTimeoutMs,
  };
  bySource.set(slot, t);
  return t;
}
