// Log replication (Raft §5.3, etcd-io/raft's sendAppend/handleAppendEntries): what the leader
// sends each follower given its Progress, how a follower appends, and how the leader commits.
import type { Raft } from './core.js';
import { committedIndex } from './quorum.js';
import type { Message, NodeId, Snapshot } from './types.js';

type Of<T extends Message['t']> = Extract<Message, { t: T }>;

/**
 * Send `to` the entries it is missing (or a snapshot when we compacted them away), as its
 * Progress allows. With `sendIfEmpty` an append without entries is still sent (it carries the
 * commit index and probes the follower's log). Returns whether a message was sent.
 */
export function sendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = r.prs.get(to);
  if (pr === undefined || to === r.id || pr.isPaused()) return false;
  const last = r.log.lastIndex();
  const prevIndex = pr.next - 1;
  if (prevIndex > last) throw new Error(`raft: progress of ${to} next ${pr.next} beyond last index ${last}`);
  const prevTerm = r.log.term(prevIndex);
  if (prevTerm === undefined) return sendSnapshot(r, to);
  const entries =
    pr.next <= last ? r.log.slice(pr.next, last, r.cfg.appendBytesMax, r.cfg.appendEntriesMax) : [];
  if (entries.length === 0 && !sendIfEmpty) return false;
  r.send({
    t: 'append',
    term: r.term,
    from: r.id,
    to,
    prevIndex,
    prevTerm,
    entries,
    commit: r.log.committed,
  });
  const sentLast = entries[entries.length - 1];
  if (pr.state === 'replicate') {
    if (sentLast !== undefined) {
      pr.optimisticUpdate(sentLast.index);
      pr.inflights.add(sentLast.index);
    }
  } else if (pr.state === 'probe') {
    pr.msgAppFlowPaused = true;
  }
  return true;
}

function sendSnapshot(r: Raft, to: NodeId): boolean {
  const pr = r.prs.get(to);
  const snap: Snapshot | undefined = r.snapshot;
  // Without snapshot data (restarted without it) we cannot help this follower until the shell
  // takes a new snapshot with compact().
  if (pr === undefined || snap === undefined) return false;
  r.send({ t: 'snapshot', term: r.term, from: r.id, to, snapshot: snap });
  pr.becomeSnapshot(snap.meta.index);
  return true;
}

/**
 * Send what `bcastPending` holds back: every follower gets its missing entries, and one that no
 * append in this batch tells the current commit index gets an (empty) append carrying it.
 */
export function flushBroadcast(r: Raft): void {
  if (!r.bcastPending) return;
  r.bcastPending = false;
  if (r.role !== 'leader') return;
  const told = new Set<NodeId>();
  for (const m of r.msgs) if (m.t === 'append' && m.commit === r.log.committed) told.add(m.to);
  for (const id of [...r.prs.keys()].sort()) if (id !== r.id) sendAppend(r, id, !told.has(id));
}

export function bcastAppend(r: Raft): void {
  for (const id of [...r.prs.keys()].sort()) if (id !== r.id) sendAppend(r, id, true);
}

/** Heartbeats carry commit = min(commit, match): a follower must never commit what it may lack. */
export function bcastHeartbeat(r: Raft, ctx = r.readOnly.lastCtx()): void {
  for (const [id, pr] of [...r.prs].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (id === r.id) continue;
    const commit = Math.min(pr.match, r.log.committed);
    r.send({ t: 'heartbeat', term: r.term, from: r.id, to: id, commit, ctx });
  }
}

export function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.send({ t: 'timeout-now', term: r.term, from: r.id, to });
}

/**
 * Leader: advance commit to the highest index on a majority of voters, but only if that entry is
 * from the current term (§5.4.2; earlier entries commit indirectly). Returns whether it advanced.
 */
export function maybeCommit(r: Raft): boolean {
  if (r.role !== 'leader') return false;
  const mci = committedIndex(r.conf.voters, (id) => r.prs.get(id)?.match ?? 0);
  if (mci <= r.log.committed || r.log.term(mci) !== r.term) return false;
  const firstInTerm = r.log.term(r.log.committed) !== r.term;
  r.log.commitTo(mci);
  if (firstInTerm) releasePendingReads(r);
  // A leader that removed itself manages the cluster until the removal commits, then steps down
  // (Raft thesis §4.2.2); followers learn the commit from this broadcast.
  if (!r.conf.voters.has(r.id) && r.log.committed >= r.pendingConfIndex) {
    bcastAppend(r);
    r.becomeFollower(r.term, '');
    return false;
  }
  return true;
}

/** Leader: start confirming leadership for a read at the current commit index. */
export function startRead(r: Raft, ctx: string): void {
  const v = r.conf.voters;
  if (v.size === 1 && v.has(r.id)) {
    r.readStates.push({ ctx, index: r.log.committed });
    return;
  }
  r.readOnly.add(r.log.committed, ctx, r.id);
  bcastHeartbeat(r, ctx);
}

function releasePendingReads(r: Raft): void {
  const reads = r.pendingReads;
  r.pendingReads = [];
  for (const ctx of reads) startRead(r, ctx);
}

// ---- follower side ---------------------------------------------------------------------------

export function handleAppend(r: Raft, m: Of<'append'>): void {
  const log = r.log;
  const reply = (index: number, reject: boolean, hint: number) =>
    r.send({ t: 'append-resp', term: r.term, from: r.id, to: m.from, index, reject, hint });
  if (m.prevIndex < log.committed) {
    // Everything up to our commit already matches the leader's log.
    reply(log.committed, false, 0);
    return;
  }
  if (!log.matchTerm(m.prevIndex, m.prevTerm)) {
    const hint = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm);
    reply(m.prevIndex, true, hint);
    return;
  }
  m.entries.forEach((e, k) => {
    if (e.index !== m.prevIndex + 1 + k) {
      throw new Error(
        `raft: append from ${m.from} not contiguous: entry ${e.index} at offset ${k} after ${m.prevIndex}`,
      );
    }
  });
  const lastNew = m.prevIndex + m.entries.length;
  const ci = log.findConflict(m.entries);
  if (ci !== 0) {
    if (ci <= log.committed) {
      throw new Error(`raft: entry ${ci} conflicts with committed entry (commit ${log.committed})`);
    }
    const truncating = ci <= log.lastIndex();
    const tail = m.entries.slice(ci - m.prevIndex - 1);
    log.append(tail);
    if (truncating || tail.some((e) => e.type === 'conf')) r.refreshConf();
  }
  log.commitTo(Math.min(m.commit, lastNew));
  reply(lastNew, false, 0);
}

export function handleHeartbeat(r: Raft, m: Of<'heartbeat'>): void {
  r.log.commitTo(m.commit);
  r.send({ t: 'heartbeat-resp', term: r.term, from: r.id, to: m.from, ctx: m.ctx });
}

export function handleSnapshot(r: Raft, m: Of<'snapshot'>): void {
  const installed = restoreSnapshot(r, m.snapshot);
  const index = installed ? r.log.lastIndex() : r.log.committed;
  r.send({ t: 'append-resp', term: r.term, from: r.id, to: m.from, index, reject: false, hint: 0 });
}

function restoreSnapshot(r: Raft, snap: Snapshot): boolean {
  const meta = snap.meta;
  if (meta.index <= r.log.committed) return false;
  if (r.role === 'leader') throw new Error('raft: a leader must not install a snapshot');
  if (r.log.matchTerm(meta.index, meta.term)) {
    // We already have the snapshot's last entry: just fast-forward the commit.
    r.log.commitTo(meta.index);
    return false;
  }
  r.log.restore(meta);
  r.baseConf = { voters: [...meta.conf.voters], learners: [...meta.conf.learners] };
  r.refreshConf();
  r.snapshot = snap;
  r.pendingSnapshot = snap;
  return true;
}
