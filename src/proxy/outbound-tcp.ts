// L4 outbound: a connection to an upstream's loopback port is relayed, unchanged, to one instance
// of the destination through its agent (mTLS, ALPN mesh-tcp, a preamble naming the instance).
// A failed connect is retried on another instance, or the same one when no other is healthy (at
// most CONNECT_ATTEMPTS_MAX in all).

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { EngineContext } from './context.js';
import { ALPN_TCP, connectPeer } from './peer-tls.js';
import { encodePreamble } from './preamble.js';
import { closeAfterFlush, closeWhenIdle } from './tcp-close.js';
import type { ProxyUpstream } from './types.js';
import { OVERLOADED_HEADER, OVERLOADED_STATUS, refuse } from './upstream-gates.js';

const CONNECT_ATTEMPTS_MAX = 3;

/**
 * A CONNECT tunnel of the HTTP proxy port (connect-tunnel.ts), already counted as open by its
 * listener. Its client waits for an answer: `opened()` once an instance's agent took the
 * connection, or `refuse()` instead. `ahead`: bytes the client sent past its CONNECT head, which go
 * first, on every attempt.
 */
export interface TcpTunnel {
  ahead: Buffer;
  opened(): void;
  /** `extra`: header lines (`name: value`). */
  refuse(status: number, message: string, extra?: readonly string[]): void;
}

/** Relay `client` to an instance of `up.destination` (`tunnel`: the connection is a CONNECT tunnel). */
export function handleTcpConnection(
  ctx: EngineContext,
  up: ProxyUpstream,
  client: Socket,
  tunnel?: TcpTunnel,
): void {
  client.setNoDelay(true);
  client.pause();
  const tried = new Set<string>();
  // Counted apart from `tried`: with one instance every attempt picks it again, and the set stays
  // at one while the attempts must still end.
  let attempts = 0;
  const labels = { direction: 'outbound', source: up.source, destination: up.destination } as const;
  if (tunnel === undefined) ctx.metrics.countOpen('outbound', client);
  client.on('error', () => undefined);
  /** The connection cannot go on: a tunnel's client hears why, another is closed. */
  const fail = (status: number, message: string, extra?: readonly string[]): void => {
    if (tunnel !== undefined && !client.destroyed) tunnel.refuse(status, message, extra);
    else client.destroy();
  };
  // The caller's circuit breaker (upstreamConfig limits.maxConnections): past it, closed at once.
  const gates = ctx.routing.gates;
  const entered = gates.enter(up, 'tcp');
  if (entered !== undefined && 'refused' in entered) {
    ctx.metrics.connections.inc({ ...labels, result: 'overflow' });
    const err = refuse(ctx.metrics, up, entered);
    ctx.log('warn', 'outbound connection refused: a circuit breaker is full', { ...labels, err });
    fail(OVERLOADED_STATUS, err, [`${OVERLOADED_HEADER}: true`]);
    return;
  }
  if (entered !== undefined) client.once('close', () => gates.leave(entered.ticket));
  if (tunnel !== undefined && tunnel.ahead.length > 0)
    ctx.metrics.bytes.inc({ ...labels, flow: 'sent' }, tunnel.ahead.length);
  client.on('data', (b: Buffer) => ctx.metrics.bytes.inc({ ...labels, flow: 'sent' }, b.length));
  let current: TLSSocket | undefined;
  client.once('close', () => {
    if (current) closeAfterFlush(current);
  });

  const attempt = (): void => {
    const picked = ctx.routing.pickTcp(up.destination, tried, Date.now());
    const context = ctx.clientContext(up.source);
    if ('error' in picked || context === undefined) {
      const why = 'error' in picked ? picked.error : `no certificate for ${up.source} yet`;
      ctx.metrics.connections.inc({ ...labels, result: 'error' });
      ctx.log('warn', 'outbound connection failed', { ...labels, err: why });
      fail(503, `mesh: ${why}`);
      return;
    }
    const { endpoint, balancer, connectTimeoutMs } = picked;
    tried.add(endpoint.id);
    attempts++;
    const startedMs = Date.now();
    balancer.onStart(endpoint.id, startedMs);
    let ended = false;
    const end = (ok: boolean): void => {
      if (ended) return;
      ended = true;
      const nowMs = Date.now();
      balancer.onEnd(endpoint.id, nowMs - startedMs, ok, nowMs);
      ctx.routing.ejections.onResult(endpoint, ok);
    };
    const peer: TLSSocket = connectPeer({
      inbound: endpoint.inbound,
      destination: endpoint.service,
      trustDomain: ctx.trustDomain(),
      context,
      alpn: [ALPN_TCP],
      connectTimeoutMs,
      allowHalfOpen: true,
      onHandshake: (resumed) => ctx.metrics.handshake(resumed),
    });
    current = peer;
    peer.write(encodePreamble(endpoint.instanceId));
    if (tunnel !== undefined && tunnel.ahead.length > 0) peer.write(tunnel.ahead);
    let established = false;
    peer.once('secureConnect', () => {
      established = true;
      ctx.metrics.connections.inc({ ...labels, result: 'ok' });
      tunnel?.opened();
      client.pipe(peer);
      peer.pipe(client);
      client.resume();
      closeWhenIdle(client, peer, ctx.log, labels);
    });
    peer.on('data', (b: Buffer) => ctx.metrics.bytes.inc({ ...labels, flow: 'received' }, b.length));
    peer.once('error', (err) => {
      end(false);
      if (!established && !client.destroyed && attempts < CONNECT_ATTEMPTS_MAX) {
        ctx.log('warn', 'outbound connect failed; trying another instance', {
          ...labels,
          endpoint: endpoint.id,
          err: err.message,
        });
        attempt();
        return;
      }
      if (established) client.destroy();
      else {
        ctx.metrics.connections.inc({ ...labels, result: 'error' });
        fail(502, `mesh: ${up.destination} instance ${endpoint.id}: ${err.message}`);
      }
    });
    peer.once('close', () => {
      end(true);
      if (established) closeAfterFlush(client);
    });
  };
  attempt();
}
