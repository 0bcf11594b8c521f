// Types of the membership core: SWIM failure detection with the Lifeguard extensions.
//
// The core is a deterministic state machine in the style of etcd-io/raft. Inputs are messages
// (point-to-point or gossip) and time (`nowMs` arguments); outputs are data the shell carries out
// (messages to send, updates to publish on the gossip topic, member events). It never performs
// I/O, never reads the clock, and draws randomness only from the injected seeded `Rng`.

/** A node's stable identity: its libp2p peer id (base58 string). */
export type NodeId = string;

/** What every agent believes about a member. `left` is a graceful leave, `failed` a detected failure. */
export type MemberStatus = 'alive' | 'suspect' | 'failed' | 'left';

/** The descriptive part of a member, gossiped with every `alive` update. */
export interface MemberInfo {
  id: NodeId;
  /** Human name (default: host name). Unique names are the operator's responsibility, as in Consul. */
  name: string;
  /** Cluster address others dial, "host:port" (IPv6 host in brackets). */
  address: string;
  /** Failure-domain label; empty string when not set. */
  zone: string;
  /** Small string map for later features (services, applied index). Bounded by `limits`. */
  meta: Record<string, string>;
}

/** A member as held in the local table. */
export interface Member extends MemberInfo {
  status: MemberStatus;
  incarnation: number;
  /** Local time (the `nowMs` that caused it) of the last status change. */
  statusChangedAtMs: number;
}

/** Gossiped state changes. `from` is the node that declared the suspicion/failure. */
export type Update =
  | { t: 'alive'; info: MemberInfo; inc: number }
  | { t: 'suspect'; id: NodeId; inc: number; from: NodeId }
  | { t: 'failed'; id: NodeId; inc: number; from: NodeId }
  | { t: 'left'; id: NodeId; inc: number };

/** One entry of a push-pull full-state exchange. */
export interface MemberState {
  info: MemberInfo;
  status: MemberStatus;
  inc: number;
}

/**
 * Point-to-point messages. Semantics are datagram-like (as UDP in memberlist): any message may
 * be lost; replies travel as separate messages.
 */
export type Message =
  /** Direct or relayed probe. `target` lets the receiver drop a probe meant for a previous
   * holder of its address. `suspect` is Lifeguard's buddy system: the prober tells the target it
   * is suspected, so it can refute at once. */
  | { t: 'ping'; seq: number; target: NodeId; suspect: boolean }
  | { t: 'ack'; seq: number }
  /** Ask the receiver to probe `target` on the sender's behalf. */
  | { t: 'ping-req'; seq: number; target: NodeId; targetAddress: string }
  /** Lifeguard: the relay did not hear from the target in time (tells the prober its own link works). */
  | { t: 'nack'; seq: number }
  /** Full-state exchange. `join` marks the first exchange of a joining node (and the answer to it);
   * `reply` marks the answer
   * (a reply is never answered, which bounds the exchange to two messages). The core sends
   * `states` frozen and shares it between messages until a member changes: read it, never modify. */
  | { t: 'push-pull'; join: boolean; reply: boolean; states: MemberState[] }
  /** Updates delivered directly (e.g. a leave sent to a few peers besides the gossip topic). */
  | { t: 'updates'; updates: Update[] };

/** A message the shell must deliver. `address` is where to dial if no connection to `to` exists. */
export interface Outgoing {
  to: NodeId;
  address: string;
  msg: Message;
}

/**
 * A status change of a member (or its first sighting, `previous` undefined; self is reported once
 * at construction). Also emitted, with `previous` equal to the current status, when a member's
 * name, address, zone or meta change (e.g. after setMeta). Reaping emits nothing.
 */
export interface MemberEvent {
  member: Member;
  previous: MemberStatus | undefined;
}

/** Everything the core wants done since the last `drain()`, in order. */
export interface Output {
  messages: Outgoing[];
  /** Batches of updates to publish on the gossip topic (each batch ≤ limits.updatesPerMessageMax). */
  publish: Update[][];
  events: MemberEvent[];
}

/** Injected seeded randomness: `next()` returns a float in [0, 1). */
export interface Rng {
  next(): number;
}
