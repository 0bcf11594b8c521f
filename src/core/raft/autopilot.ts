// Autopilot: which single membership change the leader should make next to keep the voter set at
// its target with healthy, caught-up agents (Consul autopilot's job, without a server role). Pure:
// the shell (src/raft/control-plane.ts) and the simulator (cluster-sim) call it with the Raft
// status, the gossip view of the members and the current time, and carry out the change it names.
import type { ConfChange, NodeId, RaftStatus } from './types.js';

/** What autopilot needs to know of a member from gossip. */
export interface AutopilotMember {
  id: NodeId;
  status: 'alive' | 'suspect' | 'failed' | 'left';
  zone: string;
}

export interface AutopilotPolicy {
  self: NodeId;
  /** Target voter count (`--voters`). */
  voters: number;
  /** A voter or learner gossip has marked failed (or forgotten) this long is removed. */
  deadVoterMs: number;
}

/**
 * Autopilot's memory between rounds: since when each voter or learner has looked failed. Call
 * `observe` every round before `nextChange`; it forgets members that are healthy again.
 */
export class FailedSince {
  private readonly since = new Map<NodeId, number>();

  observe(st: RaftStatus, members: ReadonlyMap<NodeId, AutopilotMember>, nowMs: number): void {
    const inConf = new Set([...st.conf.voters, ...st.conf.learners]);
    for (const id of inConf) {
      const s = members.get(id)?.status;
      if (s === 'failed' || s === 'left' || s === undefined) {
        if (!this.since.has(id)) this.since.set(id, nowMs);
      } else this.since.delete(id);
    }
    // Bounded by the configuration size: forget nodes no longer in it.
    for (const id of [...this.since.keys()]) if (!inConf.has(id)) this.since.delete(id);
  }

  get(id: NodeId): number | undefined {
    return this.since.get(id);
  }
}

/**
 * The next change, in priority order:
 * 1. remove a member that left, or that has looked failed for `deadVoterMs` (never ourselves, never
 *    the last voter);
 * 2. promote a learner that has caught up with the commit index, while below the target;
 * 3. add an alive non-member as a learner while voters + learners are below the target, preferring
 *    a zone not yet represented (ties by id, so every leader picks the same one).
 */
export function nextConfChange(
  st: RaftStatus,
  members: ReadonlyMap<NodeId, AutopilotMember>,
  failedSince: FailedSince,
  nowMs: number,
  policy: AutopilotPolicy,
): ConfChange | undefined {
  for (const id of [...st.conf.learners, ...st.conf.voters]) {
    if (id === policy.self) continue;
    const status = members.get(id)?.status;
    const since = failedSince.get(id);
    if (status === 'left' || (since !== undefined && nowMs - since >= policy.deadVoterMs)) {
      if (st.conf.voters.length > 1 || !st.conf.voters.includes(id)) return { op: 'remove', node: id };
    }
  }
  if (st.conf.voters.length < policy.voters) {
    for (const id of st.conf.learners) {
      const p = st.progress[id];
      if (p && p.match >= st.commit && members.get(id)?.status === 'alive')
        return { op: 'promote', node: id };
    }
  }
  if (st.conf.voters.length + st.conf.learners.length < policy.voters) {
    const inConf = new Set([...st.conf.voters, ...st.conf.learners]);
    const zones = new Set([...inConf].map((id) => members.get(id)?.zone ?? ''));
    let pick: AutopilotMember | undefined;
    for (const m of members.values()) {
      if (m.status !== 'alive' || inConf.has(m.id)) continue;
      if (pick === undefined) {
        pick = m;
        continue;
      }
      const newZone = Number(zones.has(m.zone)) - Number(zones.has(pick.zone));
      if (newZone < 0 || (newZone === 0 && m.id < pick.id)) pick = m;
    }
    if (pick) return { op: 'add-learner', node: pick.id };
  }
  return undefined;
}
