// Connection reuse: HTTP/1.1 keep-alive agents and HTTP/2 sessions, to peer agents (over mTLS) and
// to local instances (plain, on loopback). Keyed maps with a bound; the oldest entry is closed when
// a new key would exceed it.

import { Agent, type AgentOptions } from 'node:http';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import type { Duplex } from 'node:stream';

/** Distinct pooled destinations kept at once (agents × services for peers, instances for local). */
export const POOL_KEYS_MAX = 1024;
/** Sockets per HTTP/1.1 destination; more requests queue in the agent. */
export const H1_SOCKETS_MAX = 256;
const H1_FREE_SOCKETS_MAX = 64;

/** An http.Agent whose connections come from `connect` (e.g. mTLS to a peer agent). */
class ConnectAgent extends Agent {
  constructor(
    options: AgentOptions,
    private readonly open: () => Duplex,
  ) {
    super(options);
  }

  override createConnection(): Duplex {
    return this.open();
  }
}

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

  clear(): void {
    for (const v of this.map.values()) this.close(v);
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

export class Pools {
  private readonly h1 = new Bounded<Agent>((a) => a.destroy());
  private readonly h2 = new Bounded<ClientHttp2Session>((s) => s.close());

  /** A keep-alive agent for `key`; `open` makes a new connection when none is free. */
  h1Agent(key: string, open?: () => Duplex): Agent {
    return this.h1.get(key, () => {
      const options: AgentOptions = {
        keepAlive: true,
        maxSockets: H1_SOCKETS_MAX,
        maxFreeSockets: H1_FREE_SOCKETS_MAX,
        scheduling: 'lifo',
      };
      return open ? new ConnectAgent(options, open) : new Agent(options);
    });
  }

  /** An HTTP/2 session for `key`, made anew once the previous one closed or failed. */
  h2Session(key: string, authority: string, open?: () => Duplex): ClientHttp2Session {
    const existing = this.h2.get(key, () => this.newSession(key, authority, open));
    if (!existing.closed && !existing.destroyed) return existing;
    this.h2.delete(key, existing);
    return this.h2.get(key, () => this.newSession(key, authority, open));
  }

  private newSession(key: string, authority: string, open?: () => Duplex): ClientHttp2Session {
    const s = h2connect(`http://${authority}`, open ? { createConnection: open } : {});
    const forget = (): void => this.h2.delete(key, s);
    s.on('error', forget);
    s.on('close', forget);
    s.on('goaway', forget);
    // An idle session does not keep the worker alive on shutdown.
    s.unref();
    return s;
  }

  close(): void {
    this.h1.clear();
    this.h2.clear();
  }

  get size(): { h1: number; h2: number } {
    return { h1: this.h1.size, h2: this.h2.size };
  }
}
