// One gossipsub topic for all cluster-wide dissemination (membership updates, Raft commit batches
// for replicas, applied-index reports, catalog changes). Every agent needs all of them, and gossipsub's heartbeat
// work (mesh upkeep, IHAVE gossip) is per topic: at N=30 three topics cost ~2.2 % CPU per idle
// agent against ~1 % for one. Each message is msgpack {k: kind, p: payload}; the payload is
// handed to the kind's handler as `unknown`, to be validated there.
import type { Message as GossipMessage } from '@libp2p/gossipsub';
import type { Logger } from 'pino';
import type { Host } from '../agent/host.js';
import { DecodeError, decode, encode } from './codec.js';

export const GOSSIP_TOPIC = 'mesh/gossip/1';

export type GossipKind = 'membership' | 'raft-commits' | 'raft-applied' | 'catalog';
const KINDS: ReadonlySet<string> = new Set<GossipKind>([
  'membership',
  'raft-commits',
  'raft-applied',
  'catalog',
]);

/** `from` is the publisher's peer id when known ('' for unsigned messages). */
export type GossipHandler = (from: string, payload: unknown) => void;

export class GossipBus {
  private readonly handlers = new Map<GossipKind, GossipHandler>();
  private started = false;
  readonly counters = { received: 0, malformed: 0, publishFailed: 0 };

  constructor(
    private readonly host: Host,
    private readonly log: Logger,
  ) {}

  on(kind: GossipKind, handler: GossipHandler): void {
    this.handlers.set(kind, handler);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const pubsub = this.host.services.pubsub;
    pubsub.addEventListener('message', (evt) => this.onMessage(evt.detail));
    pubsub.subscribe(GOSSIP_TOPIC);
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.host.services.pubsub.unsubscribe(GOSSIP_TOPIC);
  }

  publish(kind: GossipKind, payload: unknown): void {
    if (!this.started) return;
    this.host.services.pubsub.publish(GOSSIP_TOPIC, encode({ k: kind, p: payload })).catch((err: Error) => {
      this.counters.publishFailed++;
      this.log.debug({ kind, err: err.message }, 'gossip publish failed');
    });
  }

  private onMessage(message: GossipMessage): void {
    if (!this.started || message.topic !== GOSSIP_TOPIC) return;
    this.counters.received++;
    const v = decode(message.data);
    const o =
      v instanceof DecodeError || typeof v !== 'object' || v === null
        ? undefined
        : (v as Record<string, unknown>);
    const kind = o && typeof o.k === 'string' && KINDS.has(o.k) ? (o.k as GossipKind) : undefined;
    if (!o || !kind) {
      this.counters.malformed++;
      this.log.debug('malformed gossip message dropped');
      return;
    }
    const from = message.type === 'signed' ? message.from.toString() : '';
    this.handlers.get(kind)?.(from, o.p);
  }
}
