// mTLS between agents: the caller's agent connects to the callee's agent's inbound listener with
// the calling service's leaf certificate, and accepts the server only if it proves (by its SPIFFE
// URI SAN, chained to a trusted root) to be the destination service. The ALPN protocol says what
// follows: `mesh-tcp` (a preamble naming the instance, then raw bytes), `mesh-mux/1` (HTTP/1.1
// connections multiplexed: mux/session.ts), `http/1.1` (one connection per request in flight; for
// upgrades, and peers that predate mesh-mux/1) or `h2`. A caller resumes its last TLS session with
// the same callee (session tickets), which halves a new connection's handshake CPU and time.

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

  /**
   * Only contexts in `live` (the current snapshot's) are kept: replaced certificates and roots are
   * dropped at once, and with them the session tickets kept per context (SessionCache).
   */
  retain(live: ReadonlySet<SecureContext>): void {
    for (const [key, ctx] of this.byKey) if (!live.has(ctx)) this.byKey.delete(key);
  }
}

export const TLS_SESSION_LIMITS = Object.freeze({
  /**
   * Resumable sessions kept per client context (one calling service's certificate and roots), one
   * per callee agent and destination service: the newest ticket each. A ticket is 1–2 KiB (it
   * carries the caller's certificate), so at most ~0.5 MiB per calling service.
   */
  perContextMax: 256,
  /**
   * How long the inbound listener accepts a ticket it issued (the tls.Server `sessionTimeout`, in
   * seconds; Node's default). A resumed session skips certificate checks: the ticket stands for the
   * ones made when it was issued, so this also bounds how long a caller's identity outlives them.
   */
  ticketLifetimeS: 300,
});

/**
 * The newest session ticket per callee agent and destination service, kept per client context: a
 * renewed certificate or a change of roots brings a new context, and with it full handshakes (and
 * fresh checks of both certificates). Contexts dropped by the ContextCache take their sessions along.
 */
class SessionCache {
  private readonly byContext = new WeakMap<SecureContext, Map<string, Buffer>>();

  get(context: SecureContext, key: string): Buffer | undefined {
    return this.byContext.get(context)?.get(key);
  }

  delete(context: SecureContext, key: string): void {
    this.byContext.get(context)?.delete(key);
  }

  set(context: SecureContext, key: string, session: Buffer): void {
    let sessions = this.byContext.get(context);
    if (sessions === undefined) {
      sessions = new Map();
      this.byContext.set(context, sessions);
    }
    sessions.delete(key);
    if (sessions.size >= TLS_SESSION_LIMITS.perContextMax) {
      const oldest = sessions.keys().next().value as string;
      sessions.delete(oldest);
    }
    sessions.set(key, session);
  }
}

/** This thread's resumable sessions with peer agents. */
const peerSessions = new SessionCache();

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
  /** Told, once the handshake is done, whether it resumed an earlier session. */
  onHandshake?: (resumed: boolean) => void;
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
  const servername = serverName(o.destination, o.trustDomain);
  const sessionKey = `${o.inbound}|${servername}`;
  const session = peerSessions.get(o.context, sessionKey);
  const socket = connect({
    host,
    port,
    secureContext: o.context,
    servername,
    ...(session ? { session } : {}),
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
  let resumed = false;
  socket.once('secureConnect', () => {
    clearTimeout(timer);
    resumed = socket.isSessionReused();
    o.onHandshake?.(resumed);
  });
  // Resumed, then ended before a byte came: the callee may have refused what it would have refused
  // in a full handshake (it no longer serves the destination: inbound.ts). The next connection
  // makes a full one, which fails, or succeeds and brings a fresh ticket. Checked at the first
  // sign of the end, before whoever reads this socket hears of it and perhaps connects again.
  const forgetIfRefused = (): void => {
    if (resumed && socket.bytesRead === 0) peerSessions.delete(o.context, sessionKey);
  };
  socket.once('end', forgetIfRefused);
  socket.once('error', forgetIfRefused);
  socket.once('close', () => {
    clearTimeout(timer);
    forgetIfRefused();
  });
  // TLS 1.3 tickets come after the handshake (two after a full one): the newest is kept. Only from
  // a connection that passed the checks: a ticket from a failed one is never offered again. It is
  // offered to every new connection, against RFC 8446 C.4's advice to use each once: Node 20's
  // server sends no ticket after a resumed handshake, so with single use every third connection
  // would be a full one (tried, and checked with a bare server; see data-plane.md).
  socket.on('session', (ticket: Buffer) => {
    if (socket.authorized) peerSessions.set(o.context, sessionKey, ticket);
  });
  return socket;
}
