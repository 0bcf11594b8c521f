// Membership timing and bounds. Every default says why it is that value; the timing formulas are
// small pure functions so they can be tested on their own (as in hashicorp/memberlist).

export interface MembershipConfig {
  /**
   * How often this node probes one member (randomised round robin). Lower detects failures
   * sooner at the cost of more probe traffic (one ping per interval per node, independent of N).
   * 400 ms: with the suspicion formula below, a killed agent is marked failed everywhere in
   * ~2–2.5 s at N=30 (Serf's LAN profile, 1 s, takes ~8 s). Multiplied by the local health score.
   */
  probeIntervalMs: number;
  /**
   * How long to wait for a direct ack before asking `indirectChecks` peers to probe. Must cover
   * the RTT plus scheduling delay on a busy host; 200 ms is memberlist's "local" profile and far
   * above loopback/LAN RTTs. Multiplied by the local health score (Lifeguard).
   */
  probeTimeoutMs: number;
  /** How many peers relay an indirect probe. More survives more lossy links; 3 is SWIM's choice. */
  indirectChecks: number;
  /**
   * Suspicion timeout minimum = suspicionMult × max(1, log10(N)) × probeIntervalMs. Larger gives
   * a suspected (maybe just slow) node longer to refute. 3 with a 400 ms interval: 1.2 s at N≤10,
   * 1.8 s at N=30, 3.6 s at N=1000.
   */
  suspicionMult: number;
  /**
   * Lifeguard: a suspicion starts at max = suspicionMaxTimeoutMult × min and shrinks toward min as
   * independent confirmations arrive (expected confirmations: suspicionMult − 2). A lone, possibly
   * sick, prober therefore cannot fail a healthy node quickly. 6 as in memberlist.
   */
  suspicionMaxTimeoutMult: number;
  /**
   * Lifeguard local health: the score ranges 0..awarenessMaxMultiplier−1; probe interval and
   * timeout are multiplied by (score + 1). It rises when this node's own probes get no nacks or it
   * must refute a suspicion, and falls with each successful probe. 8 as in memberlist.
   */
  awarenessMaxMultiplier: number;
  /**
   * Period of push-pull anti-entropy with one random live member, scaled up by
   * pushPullScale(N) above 32 nodes so total traffic stays bounded. A backstop for lost gossip and
   * the way healed partitions converge. 15 s (memberlist: 30 s) because our gossip topic is the
   * primary path and full-state messages are small.
   */
  pushPullIntervalMs: number;
  /**
   * After a join, one more push-pull with a random live member this long later. Gossip published
   * while the newcomer was not yet in the topic's mesh (its subscription takes tens of ms to
   * spread, mesh grafts happen on the 1 s heartbeat) never reaches it; without this follow-up it
   * would miss members that joined at the same moment until the next periodic push-pull (up to
   * pushPullIntervalMs). 2 s: two gossip heartbeats, well after the newcomer is meshed.
   */
  joinFollowUpMs: number;
  /**
   * How often to try one random failed member again with a push-pull (Serf's reconnect): a node
   * that was partitioned, not dead, is found again. 10 s.
   */
  reconnectIntervalMs: number;
  /** Failed members are forgotten after this long (Consul's reconnect_timeout default: 72 h). */
  failedReapMs: number;
  /** Members that left are forgotten after this long (Serf's tombstone timeout: 24 h). */
  leftReapMs: number;
  /** The member table never holds more than this many entries; further new members are dropped. */
  membersMax: number;
  /** Upper bound on updates carried in one gossip batch or `updates` message. */
  updatesPerMessageMax: number;
  /** How many live peers receive a leave directly (in addition to the gossip topic). */
  leaveDirectFanout: number;
}

export const DEFAULT_MEMBERSHIP_CONFIG: Readonly<MembershipConfig> = Object.freeze({
  probeIntervalMs: 400,
  probeTimeoutMs: 200,
  indirectChecks: 3,
  suspicionMult: 3,
  suspicionMaxTimeoutMult: 6,
  awarenessMaxMultiplier: 8,
  pushPullIntervalMs: 15_000,
  joinFollowUpMs: 2_000,
  reconnectIntervalMs: 10_000,
  failedReapMs: 72 * 3600_000,
  leftReapMs: 24 * 3600_000,
  membersMax: 10_000,
  updatesPerMessageMax: 256,
  leaveDirectFanout: 4,
});

/** Minimum suspicion timeout: suspicionMult × max(1, log10(n)) × probeIntervalMs. */
export function suspicionTimeoutMinMs(suspicionMult: number, n: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.floor(suspicionMult * nodeScale * probeIntervalMs);
}

/**
 * Lifeguard's shrinking suspicion timeout after `confirmations` independent confirmations, when
 * `expected` are anticipated: max − (max − min) × log(c + 1) / log(k + 1), never below min.
 * With expected = 0 the timeout is min at once.
 */
export function suspicionTimeoutMs(
  minMs: number,
  maxMs: number,
  confirmations: number,
  expected: number,
): number {
  if (expected <= 0) return minMs;
  const frac = Math.log(confirmations + 1) / Math.log(expected + 1);
  const t = maxMs - frac * (maxMs - minMs);
  return Math.max(minMs, Math.floor(t));
}

/** Push-pull interval scaling: unchanged up to 32 nodes, then grows with log2(n/32) + 1. */
export function pushPullScaleMs(intervalMs: number, n: number): number {
  const threshold = 32;
  if (n <= threshold) return intervalMs;
  const multiplier = Math.ceil(Math.log2(n) - Math.log2(threshold)) + 1;
  return intervalMs * multiplier;
}
