// The caller's side of mux sessions: for each destination (a peer agent, the calling service, the
// destination service: what the HTTP/1.1 pool keys by), the sessions that carry its streams. A
// stream goes on the first session with room; another session is opened only when all are full.
//
// A peer agent that does not speak `mesh-mux/1` (an older version, during a rolling upgrade)
// answers the offer with `http/1.1`: the destination is remembered as such for a while and its
// requests go over one TLS connection each, as before. The streams that were waiting for that
// session fail with code EMUXLEGACY, which the pool takes as "open another connection", not as a
// failed request.
import type { TLSSocket } from 'node:tls';
import { ALPN_MUX } from '../peer-tls.js';
import { MuxSession, SESSION_LIMITS } from './session.js';
import type { MuxStream } from './stream.js';

export const MUX_CLIENT_LIMITS = Object.freeze({
  /** Sessions per destination: SESSION_LIMITS.streamsMax × 4 = 2,048 connections at once to one service on one agent. */
  sessionsPerKeyMax: 4,
  /** Destinations remembered as not speaking the protocol, and for how long (then tried again). */
  legacyKeysMax: 1024,
  legacyForMs: 10 * 60_000,
});

export const LEGACY_CODE = 'EMUXLEGACY';
/**
 * Every session allowed for the destination is full: the pool keeps its requests waiting for a
 * stream to be free (as for a destination at its connection limit) instead of failing them.
 */
export const FULL_CODE = 'EMUXFULL';

/** How many sessions and streams `sessions` hold. */
export function countOf(sessions: Iterable<MuxSession>): { sessions: number; streams: number } {
  let n = 0;
  let streams = 0;
  for (const s of sessions) {
    n++;
    streams += s.streamCount;
  }
  return { sessions: n, streams };
}

export class MuxClient {
  private readonly byKey = new Map<string, MuxSession[]>();
  /** Destination → when it was found not to speak the protocol (performance.now()). */
  private readonly legacy = new Map<string, number>();

  /** The destination answered without the protocol recently: use one connection per request. */
  isLegacy(key: string): boolean {
    const since = this.legacy.get(key);
    if (since === undefined) return false;
    if (performance.now() - since < MUX_CLIENT_LIMITS.legacyForMs) return true;
    this.legacy.delete(key);
    return false;
  }

  /**
   * A stream to `key`, on a session with room or a new one made by `connect` (a TLS connection
   * offering ALPN_MUX). `credentials` is what the session proves itself with (the TLS context of the
   * calling service's certificate and the trusted roots): once a snapshot replaces it (a renewed
   * certificate, a CA rotation), retireUnless retires the sessions made with the old one. They take
   * no new streams, their idle streams are not reused, and they close once their last stream has.
   * Throws (code FULL_CODE) when every session allowed for `key` is full.
   */
  open(key: string, credentials: object, connect: () => TLSSocket): MuxStream {
    let list = this.byKey.get(key);
    if (list === undefined) {
      list = [];
      this.byKey.set(key, list);
    }
    let live = 0;
    for (const s of list) {
      if (!s.counted) continue;
      live++;
      if (s.open && s.streamCount < SESSION_LIMITS.streamsMax) return s.openStream();
    }
    if (live >= MUX_CLIENT_LIMITS.sessionsPerKeyMax) {
      const err = new Error(
        `${live * SESSION_LIMITS.streamsMax} connections to this destination are open already`,
      ) as NodeJS.ErrnoException;
      err.code = FULL_CODE;
      throw err;
    }
    const session = this.connect(key, list, connect());
    session.credentials = credentials;
    return session.openStream();
  }

  private connect(key: string, list: MuxSession[], socket: TLSSocket): MuxSession {
    const session = new MuxSession(socket, 'caller');
    list.push(session);
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol === ALPN_MUX) {
        session.markReady();
        return;
      }
      if (this.legacy.size >= MUX_CLIENT_LIMITS.legacyKeysMax) this.legacy.clear();
      this.legacy.set(key, performance.now());
      const err = new Error(`the peer agent does not speak ${ALPN_MUX}`) as NodeJS.ErrnoException;
      err.code = LEGACY_CODE;
      session.fail(err);
    });
    socket.once('close', () => {
      const i = list.indexOf(session);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0 && this.byKey.get(key) === list) this.byKey.delete(key);
    });
    return session;
  }

  /** Retire every session opened with credentials not in `live` (a snapshot replaced them). */
  retireUnless(live: ReadonlySet<object>): void {
    for (const list of this.byKey.values())
      for (const s of list) if (s.credentials !== undefined && !live.has(s.credentials)) s.retire();
  }

  /** Sessions open and the streams on them (for metrics). */
  counts(): { sessions: number; streams: number } {
    return countOf(this.sessions());
  }

  /** Every session (for status and tests). */
  sessions(): MuxSession[] {
    return [...this.byKey.values()].flat();
  }

  close(): void {
    for (const list of this.byKey.values()) for (const s of [...list]) s.socket.destroy();
    this.byKey.clear();
  }
}
