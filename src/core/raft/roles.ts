// One step function per role (etcd-io/raft stepLeader / stepCandidate / stepFollower). The
// term checks and vote handling common to every role happen before, in stepMessage (raft.ts).
import type { Raft } from './core.js';
import { hasQuorum } from './quorum.js';
import {
  handleAppend,
  handleHeartbeat,
  handleSnapshot,
  maybeCommit,
  sendAppend,
  sendTimeoutNow,
} from './replication.js';
import type { Message } from './types.js';

export function stepLeader(r: Raft, m: Message): void {
  if (m.t === 'append' || m.t === 'heartbeat' || m.t === 'snapshot') {
    // Same term, another leader: impossible unless election safety is broken.
    r.setLead(m.from);
    return;
  }
  const pr = r.prs.get(m.from);
  if (pr === undefined) return; // not a member (e.g. just removed)
  switch (m.t) {
    case 'append-resp': {
      pr.recentActive = true;
      if (m.reject) {
        if (pr.maybeDecrTo(m.index, m.hint)) {
          if (pr.state === 'replicate') pr.becomeProbe();
          sendAppend(r, m.from, true);
        }
        return;
      }
      const oldPaused = pr.isPaused();
      if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe')) {
        if (pr.state === 'probe') {
          pr.becomeReplicate();
        } else if (pr.state === 'snapshot' && pr.match + 1 >= r.log.firstIndex()) {
          pr.becomeProbe();
          pr.becomeReplicate();
        } else if (pr.state === 'replicate') {
          pr.inflights.freeLE(m.index);
        }
        if (maybeCommit(r)) {
          r.bcastPending = true;
        } else if (oldPaused && r.role === 'leader') {
          sendAppend(r, m.from, true);
        }
        if (r.role !== 'leader') return;
        // Flow control may now allow several more (size-limited) messages in flight.
        for (let n = 0; n < r.cfg.inflightMax && sendAppend(r, m.from, false); n++);
        if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) sendTimeoutNow(r, m.from);
      }
      return;
    }
    case 'heartbeat-resp': {
      pr.recentActive = true;
      pr.msgAppFlowPaused = false;
      // The link works: let one more append through if the window is full of lost messages.
      if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
      if (pr.match < r.log.lastIndex() || pr.state === 'probe') sendAppend(r, m.from, true);
      if (m.ctx === '' || pr.isLearner) return;
      const acks = r.readOnly.recvAck(m.from, m.ctx);
      if (acks === undefined || !hasQuorum(r.conf.voters, (id) => acks.has(id))) return;
      for (const rs of r.readOnly.advance(m.ctx)) r.readStates.push(rs);
      return;
    }
    default:
      // Vote responses from an election we already won, stale timeout-now: nothing to do.
      return;
  }
}

export function stepCandidate(r: Raft, m: Message): void {
  switch (m.t) {
    case 'append':
      r.becomeFollower(m.term, m.from);
      handleAppend(r, m);
      return;
    case 'heartbeat':
      r.becomeFollower(m.term, m.from);
      handleHeartbeat(r, m);
      return;
    case 'snapshot':
      r.becomeFollower(m.term, m.from);
      handleSnapshot(r, m);
      return;
    case 'pre-vote-resp':
    case 'vote-resp': {
      // Only responses to the kind of election we are running count.
      const mine = r.role === 'pre-candidate' ? 'pre-vote-resp' : 'vote-resp';
      if (m.t !== mine) return;
      const result = r.poll(m.from, !m.reject);
      if (result === 'won') r.wonElection();
      else if (result === 'lost') r.becomeFollower(r.term, '');
      return;
    }
    default:
      return;
  }
}

/** Followers and learners (a learner is a follower that never campaigns). */
export function stepFollower(r: Raft, m: Message): void {
  switch (m.t) {
    case 'append':
      r.electionElapsed = 0;
      r.setLead(m.from);
      handleAppend(r, m);
      return;
    case 'heartbeat':
      r.electionElapsed = 0;
      r.setLead(m.from);
      handleHeartbeat(r, m);
      return;
    case 'snapshot':
      r.electionElapsed = 0;
      r.setLead(m.from);
      handleSnapshot(r, m);
      return;
    case 'timeout-now':
      // Leader transfer: campaign at once, skipping pre-vote and the leader lease of others.
      r.hup(true);
      return;
    default:
      return;
  }
}
