// Drives the pure membership core from the real world: feeds it messages from the membership
// stream protocol and the gossip topic, wakes it at its next deadline, and carries out what it
// asks for (send, publish, events). Also keeps connections to a bounded random subset of members
// so the gossip topic's mesh spans the cluster instead of a star around the seed.
import { randomInt } from 'node:crypto';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import type { Host } from '../agent/host.js';
import { hostPortToMultiaddr, multiaddrToAddress, PSK_HANDSHAKE_EVENT, parseAddress } from '../agent/host.js';
import { MeshError } from '../api/types.js';
import type { MembershipConfig } from '../core/membership/config.js';
import { Membership, type MembershipStats } from '../core/membership/membership.js';
import type { Member, MemberEvent, MemberInfo, Output } from '../core/membership/types.js';
import { parseMessage, parseUpdates } from '../core/membership/validate.js';
import { SeededRng, shuffle } from '../core/rand.js';
import { DecodeError, decode } from '../wire/codec.js';
import type { GossipBus } from '../wire/gossip-bus.js';
import { StreamTransport } from '../wire/stream-transport.js';

export const MEMBERSHIP_PROTOCOL = '/mesh/membership/1.0.0';

export interface MembershipServiceInit {
  host: Host;
  self: MemberInfo;
  incarnation: number;
  config: MembershipConfig;
  log: Logger;
  /** The cluster's gossip topic; membership updates are its 'membership' messages. */
  bus: GossipBus;
  /** Connections to keep to random live members (besides those probing opens). */
  peersTarget: number;
  /** How long a join waits for the seed's push-pull reply. */
  joinTimeoutMs: number;
}

export type MemberListener = (event: MemberEvent) => void;

/** Monotonic milliseconds; the core only ever sees this clock. */
const clock = (): number => Math.floor(performance.now());

export class MembershipService {
  private readonly core: Membership;
  private readonly transport: StreamTransport;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private peerTimer: NodeJS.Timeout | undefined;
  private readonly listeners: MemberListener[] = [];
  private readonly joinWaiters = new Map<string, Array<() => void>>();
  private readonly rng: SeededRng;
  private stopped = false;
  readonly counters = { gossipReceived: 0, gossipMalformed: 0, messagesMalformed: 0 };
  private warnBudget = { windowStartMs: 0, used: 0, suppressed: 0 };

  constructor(private readonly init: MembershipServiceInit) {
    this.log = init.log;
    this.rng = new SeededRng(randomInt(0, 2 ** 32 - 1));
    this.core = new Membership({
      self: init.self,
      incarnation: init.incarnation,
      config: init.config,
      rng: this.rng,
      nowMs: clock(),
    });
    this.transport = new StreamTransport(
      MEMBERSHIP_PROTOCOL,
      init.host,
      (from, frame) => this.onFrame(from, frame),
      init.log,
    );
  }

  async start(): Promise<void> {
    await this.transport.start();
    this.init.bus.on('membership', (from, payload) => this.onGossip(from, payload));
    this.pump();
    this.peerTimer = setInterval(() => this.maintainPeers(), 2_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.peerTimer) clearInterval(this.peerTimer);
    await this.transport.stop();
  }

  onMember(listener: MemberListener): void {
    this.listeners.push(listener);
  }

  members(): Member[] {
    return this.core.members();
  }

  self(): Member {
    return this.core.self();
  }

  /** One member by id, without copying the whole table (hot path: every raft message). */
  member(id: string): Member | undefined {
    return this.core.member(id);
  }

  localHealth(): number {
    return this.core.localHealth();
  }

  stats(): MembershipStats & MembershipService['counters'] & StreamTransport['stats'] {
    return { ...this.core.stats(), ...this.counters, ...this.transport.stats };
  }

  /**
   * Dial a seed, exchange full state with it, and resolve once its reply has been merged.
   * Rejects with a message a user can act on (wrong key, nothing listening, timeout).
   */
  async join(ma: Multiaddr, signal?: AbortSignal): Promise<string> {
    const timeout = AbortSignal.timeout(this.init.joinTimeoutMs);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let conn: Awaited<ReturnType<Host['dial']>>;
    // Whether the dial failed in the handshakes (pre-shared key, then encryption), where agents
    // whose keys differ fail: a reset, or a timeout when the other side waits for more bytes.
    let handshaking = false;
    const onProgress = (event: { type: string }): void => {
      if (event.type === PSK_HANDSHAKE_EVENT || event.type.startsWith('upgrader:encrypt-'))
        handshaking = true;
      else if (event.type.startsWith('upgrader:multiplex-')) handshaking = false;
    };
    try {
      conn = await this.init.host.dial(ma, { signal: sig, onProgress });
    } catch (err) {
      // A seed list usually names every server, this one included: joining oneself is a no-op.
      if (/dial self/i.test((err as Error).message)) return this.init.self.id;
      throw new MeshError(
        'join_failed',
        `cannot connect to ${ma.toString()}: ${describeDialError(err, handshaking)}`,
      );
    }
    const peer = conn.remotePeer.toString();
    if (peer === this.init.self.id) return peer;
    const address = multiaddrToAddress(conn.remoteAddr) ?? '';
    const replied = new Promise<void>((resolve, reject) => {
      const list = this.joinWaiters.get(peer) ?? [];
      list.push(resolve);
      this.joinWaiters.set(peer, list);
      sig.addEventListener(
        'abort',
        () =>
          reject(
            new MeshError(
              'join_failed',
              `no state exchange with ${ma.toString()} within ${this.init.joinTimeoutMs} ms`,
            ),
          ),
        { once: true },
      );
    });
    this.core.pushPull(peer, address, true, clock());
    this.pump();
    await replied;
    return peer;
  }

  /** Graceful leave: tell the cluster, then give the messages time to go out. */
  async leave(propagateMs: number): Promise<void> {
    this.core.leave(clock());
    this.pump();
    await new Promise((r) => setTimeout(r, propagateMs));
  }

  private onFrame(from: string, frame: Uint8Array): void {
    if (this.stopped) return;
    const value = decode(frame);
    const msg = value instanceof DecodeError ? `msgpack: ${value.message}` : parseMessage(value);
    if (typeof msg === 'string') {
      this.counters.messagesMalformed++;
      this.warnMalformed(from, msg);
      return;
    }
    this.core.receive(from, msg, clock());
    if (msg.t === 'push-pull' && msg.reply) {
      const waiters = this.joinWaiters.get(from);
      this.joinWaiters.delete(from);
      for (const w of waiters ?? []) w();
    }
    this.pump();
  }

  private onGossip(from: string, payload: unknown): void {
    if (this.stopped) return;
    this.counters.gossipReceived++;
    // Unsigned gossip: the publisher is not known (updates name their originator themselves).
    const updates = parseUpdates(payload);
    if (typeof updates === 'string') {
      this.counters.gossipMalformed++;
      this.warnMalformed(from, updates);
      return;
    }
    this.core.receiveGossip(from, updates, clock());
    this.pump();
  }

  /** Carry out everything the core queued, then sleep until its next deadline. */
  private pump(): void {
    if (this.stopped) return;
    const now = clock();
    this.core.tick(now);
    this.apply(this.core.drain());
    if (this.timer) clearTimeout(this.timer);
    const next = this.core.nextDeadlineMs();
    // Wake at least once a second: a safety net, not a correctness requirement.
    const delayMs = next === undefined ? 1_000 : Math.min(1_000, Math.max(0, next - clock()));
    this.timer = setTimeout(() => this.pump(), delayMs);
  }

  private apply(out: Output): void {
    for (const m of out.messages) this.transport.send(m.to, m.address, m.msg);
    for (const batch of out.publish) this.init.bus.publish('membership', batch);
    for (const ev of out.events) {
      if (
        ev.member.id !== this.init.self.id &&
        (ev.member.status === 'failed' || ev.member.status === 'left')
      ) {
        this.transport.forget(ev.member.id);
        this.init.host.hangUp(peerIdFromString(ev.member.id)).catch(() => undefined);
      }
      for (const l of this.listeners) l(ev);
    }
  }

  /** Keep connections to `peersTarget` random live members so gossip spreads in few hops. */
  private maintainPeers(): void {
    if (this.stopped) return;
    const host = this.init.host;
    const connections = host.getConnections();
    // Cheap check first: with enough connections there is nothing to do (most of the time).
    if (connections.length >= this.init.peersTarget) return;
    const connected = new Set(connections.map((c) => c.remotePeer.toString()));
    const live = this.core.members().filter((m) => m.id !== this.init.self.id && m.status === 'alive');
    const have = live.filter((m) => connected.has(m.id)).length;
    const deficit = Math.min(this.init.peersTarget - have, 4);
    if (deficit <= 0) return;
    const candidates = shuffle(
      live.filter((m) => !connected.has(m.id)),
      this.rng,
    ).slice(0, deficit);
    for (const m of candidates) {
      const hp = parseAddress(m.address);
      if (!hp) continue;
      const ma = hostPortToMultiaddr(hp).encapsulate(`/p2p/${m.id}`);
      host.dial(ma, { signal: AbortSignal.timeout(2_000) }).catch((err: Error) => {
        this.log.debug({ peer: m.name, err: err.message }, 'cannot connect to member');
      });
    }
  }

  /** Malformed input is logged, but at most 10 lines per 10 s so a flood cannot fill the disk. */
  private warnMalformed(from: string, reason: string): void {
    const now = clock();
    if (now - this.warnBudget.windowStartMs > 10_000) {
      if (this.warnBudget.suppressed > 0) {
        this.log.warn({ suppressed: this.warnBudget.suppressed }, 'malformed membership messages not logged');
      }
      this.warnBudget = { windowStartMs: now, used: 0, suppressed: 0 };
    }
    if (this.warnBudget.used < 10) {
      this.warnBudget.used++;
      this.log.warn({ from, reason }, 'malformed membership message dropped');
    } else {
      this.warnBudget.suppressed++;
    }
  }
}

/**
 * Why a dial failed, in words a user can act on. Agents whose cluster keys differ (or where only
 * one has a key) fail in the handshakes, in one of several ways: an EncryptionFailedError, our
 * pre-shared-key handshake failing (see namedHandshakeFailures), the other side resetting the
 * connection, or a timeout while it waits for more; each says the keys may differ. A reset or a
 * close can only come once TCP connected, so it is a handshake (or later) failure too.
 * `handshaking`: the dial was in the handshakes when it failed.
 */
export function describeDialError(err: unknown, handshaking = false): string {
  const e = err as { name?: string; message?: string; errors?: Array<{ message?: string }> };
  const inner = e.errors?.map((x) => x.message).join('; ');
  const text = `${e.message ?? String(err)}${inner ? ` (${inner})` : ''}`;
  const keyHint = 'is --cluster-key the same on both agents?';
  if (/ECONNREFUSED/.test(text)) return 'connection refused (no agent listening there)';
  if (/psk|nonce|protect|pnet|encrypt|handshake/i.test(`${e.name} ${text}`)) {
    return `handshake failed (${text}); ${keyHint}`;
  }
  if (/ECONNRESET|EPIPE|socket hang up|stream ended|closed|reset/i.test(text)) {
    return `handshake failed (the other agent closed the connection: ${text}); ${keyHint}`;
  }
  const timedOut = /abort|timeout/i.test(`${e.name} ${text}`);
  if (timedOut && handshaking) return `handshake failed (no answer: ${text}); ${keyHint}`;
  if (timedOut) return `timed out (${text})`;
  return text;
}
