// mTLS between agents: the caller's agent connects to the callee's agent's inbound listener with
// the calling service's leaf certificate, and accepts the server only if it proves (by its SPIFFE
// URI SAN, chained to a trusted root) to be the destination service. The ALPN protocol says what
// follows: `mesh-tcp` (a preamble naming the instance, then raw bytes), `mesh-mux/1` (HTTP/1.1
// connections multiplexed: mux/session.ts), `http/1.1` (one connection per request in flight; for
// upgrades, and peers that predate mesh-mux/1) or `h2`.

import {
  connect,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
} from 'node:tls';
import { peerServiceOf, spiffeId } from '../ca/spiffe.js';
import type { OnRead } from './h1/pool.js';
import type { ProxyCert } from './types.js';

export const ALPN_TCP = 'mesh-tcp';
export const ALPN_H1 = 'http/1.1';
export const ALPN_H2 = 'h2';
export const ALPN_MUX = 'mesh-mux/1';
/** In the callee's order of preference: a caller offering mesh-mux/1 and http/1.1 gets mesh-mux/1. */
export const INBOUND_ALPN = [ALPN_TCP, ALPN_H2, ALPN_MUX, ALPN_H1];

/** The TLS server name a caller asks for: selects the destination's certificate on the callee. */
export function serverName(service: string, trustDomain: string): string {
  return `${service}.svc.${trustDomain}`;
}

/** Service name from a server name (inverse of serverName), or undefined. */
export function serviceOfServerName(name: string, trustDomain: string): string | undefined {
  const suffix = `.svc.${trustDomain}`;
  return name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
}

/**
 * Secure contexts, built once per certificate: building one parses keys and certificates, far too
 * slow for every connection.
 */
export class ContextCache {
  private readonly byKey = new Map<string, SecureContext>();

  get(cert: ProxyCert, roots: readonly string[]): SecureContext {
    const key = `${cert.certPem}\u0000${roots.join('')}`;
    let ctx = this.byKey.get(key);
    if (ctx === undefined) {
      ctx = createSecureContext({
        key: cert.keyPem,
        cert: [cert.certPem, ...cert.chainPem].join('\n'),
        ca: [...roots],
        minVersion: 'TLSv1.3',
      });
      // Bounded: contexts of replaced certificates go; a few per local service remain.
      if (this.byKey.size >= 256) this.byKey.clear();
      this.byKey.set(key, ctx);
    }
    return ctx;
  }
}

export interface PeerConnectOptions {
  /** host:port of the callee agent's inbound listener. */
  inbound: string;
  destination: string;
  trustDomain: string;
  context: SecureContext;
  /** The protocols offered, most wanted first. */
  alpn: readonly string[];
  connectTimeoutMs: number;
  /** Read through this buffer and callback instead of 'data' events (the HTTP/1.1 relay's sockets). */
  onread?: OnRead | undefined;
  /** Keep sending after the callee agent has finished sending (a relayed TCP half-close). */
  allowHalfOpen?: boolean;
}

/** Check that the server proved to be `destination` in `trustDomain`; an Error if not. */
export function checkPeer(
  cert: PeerCertificate | undefined,
  destination: string,
  trustDomain: string,
): Error | undefined {
  const who = cert ? peerServiceOf(cert) : undefined;
  if (who === undefined) return new Error('the peer presented no mesh identity');
  if (who.trustDomain !== trustDomain || who.service !== destination) {
    return new Error(
      `the peer is ${spiffeId(who.trustDomain, who.service)}, expected ${spiffeId(trustDomain, destination)}`,
    );
  }
  return undefined;
}

/** Open an mTLS connection to a peer agent. The socket is returned at once (writes are buffered until the handshake). */
export function connectPeer(o: PeerConnectOptions): TLSSocket {
  const sep = o.inbound.lastIndexOf(':');
  const host = o.inbound.slice(0, sep).replace(/^\[|\]$/g, '');
  const port = Number(o.inbound.slice(sep + 1));
  const socket = connect({
    host,
    port,
    secureContext: o.context,
    servername: serverName(o.destination, o.trustDomain),
    ALPNProtocols: [...o.alpn],
    ...(o.onread ? { onread: o.onread } : {}),
    ...(o.allowHalfOpen ? { allowHalfOpen: true } : {}),
    // Chain verification stays on (rejectUnauthorized); the name check is the SPIFFE one.
    checkServerIdentity: (_name, cert) => checkPeer(cert, o.destination, o.trustDomain),
  });
  socket.setNoDelay(true);
  const timer = setTimeout(
    () => socket.destroy(new Error(`connect to ${o.inbound} timed out after ${o.connectTimeoutMs} ms`)),
    o.connectTimeoutMs,
  );
  socket.once('secureConnect', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
  return socket;
}
