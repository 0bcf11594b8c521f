// The membership state machine: SWIM + Lifeguard. See types.ts for the contract.
// CONTRACT (the shell in src/agent depends on exactly these members; keep them):
//   new Membership({ self, incarnation, config, rng, nowMs })
//   tick(nowMs)                         advance time: probes, timeouts, suspicion expiry, push-pull, reaping
//   receive(from, msg, nowMs)           a point-to-point message from node `from`
//   receiveGossip(from, updates, nowMs) a batch from the gossip topic, published by `from`
//   pushPull(to, address, join, nowMs)  start a full-state exchange (used by join / `mesh join`)
//   leave(nowMs)                        graceful leave: mark self left (inc+1), publish, send directly to a few
//   setMeta(meta, nowMs)                change own meta: inc+1 and publish alive
//   drain(): Output                     take everything queued since the last drain
//   nextDeadlineMs(): number | undefined  the earliest time tick() has work to do
//   members(): Member[]                 all known members including self, sorted by name then id
//   member(id): Member | undefined
//   self(): Member
//   localHealth(): number               Lifeguard awareness score (0 = healthy)
//   stats(): MembershipStats            counters for metrics/diagnostics
import type { MembershipConfig } from './config.js';
import type { Member, MemberInfo, Message, NodeId, Output, Rng, Update } from './types.js';

export interface MembershipInit {
  self: MemberInfo;
  /** Starting incarnation; the shell passes (last persisted incarnation + 1) on restart. */
  incarnation: number;
  config: MembershipConfig;
  rng: Rng;
  nowMs: number;
}

export interface MembershipStats {
  probesSent: number;
  probesFailed: number;
  indirectProbesSent: number;
  refutations: number;
  suspicionsRaised: number;
  membersFailed: number;
  pushPullsSent: number;
  updatesDropped: number;
}

export class Membership {
  constructor(init: MembershipInit) {
    void init;
    throw new Error('not implemented');
  }
  tick(nowMs: number): void {
    void nowMs;
  }
  receive(from: NodeId, msg: Message, nowMs: number): void {
    void from;
    void msg;
    void nowMs;
  }
  receiveGossip(from: NodeId, updates: Update[], nowMs: number): void {
    void from;
    void updates;
    void nowMs;
  }
  pushPull(to: NodeId, address: string, join: boolean, nowMs: number): void {
    void to;
    void address;
    void join;
    void nowMs;
  }
  leave(nowMs: number): void {
    void nowMs;
  }
  setMeta(meta: Record<string, string>, nowMs: number): void {
    void meta;
    void nowMs;
  }
  drain(): Output {
    return { messages: [], publish: [], events: [] };
  }
  nextDeadlineMs(): number | undefined {
    return undefined;
  }
  members(): Member[] {
    return [];
  }
  member(id: NodeId): Member | undefined {
    void id;
    return undefined;
  }
  self(): Member {
    throw new Error('not implemented');
  }
  localHealth(): number {
    return 0;
  }
  stats(): MembershipStats {
    throw new Error('not implemented');
  }
}
