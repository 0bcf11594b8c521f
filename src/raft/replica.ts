// Replica fan-out. Agents that are neither voters nor learners are replicas: they hold the whole
// configuration but the leader does not replicate to them one by one (its work per commit grows
// with the voter count, not the cluster size). The leader publishes each applied batch, and a
// heartbeat with its commit index every second, on a gossip topic. A replica feeds a batch into
// its own Raft core as an append from the leader, so replicas persist and apply exactly like
// members do (same log, same state machine path). A replica that sees a gap fetches the missing
// range, or the snapshot, from the leader.
import type { Logger } from 'pino';
import type { Entry, Message } from '../core/raft/types.js';
import type { GossipBus } from '../wire/gossip-bus.js';
import type { RaftClient } from './client.js';
import type { RaftService } from './service.js';
import { parseRaftMessage } from './validate.js';

/** Entries per published batch, and bytes (gossipsub messages are capped at 1 MiB). */
const BATCH_ENTRIES_MAX = 512;
const BATCH_BYTES_MAX = 512 * 1024;
/** Applied entries are gathered this long before publishing, so a busy leader publishes a few
 * large batches rather than one per write (well under the 50 ms propagation target). */
const COALESCE_MS = 2;
/** Rounds of fetching per detected gap, so a replica far behind yields between rounds. */
const FETCH_ROUNDS_MAX = 64;

interface Batch {
  /** Per-publisher sequence number. Gossip message ids are content hashes, so without it the
   * identical heartbeats of a quiet cluster would be dropped as duplicates for minutes. */
  seq: number;
  leader: string;
  term: number;
  prevIndex: number;
  prevTerm: number;
  commit: number;
  entries: Entry[];
}

export class ReplicaFanout {
  private heartbeat: NodeJS.Timeout | undefined;
  private fetching = false;
  private seq = 0;
  private pending: Entry[] = [];
  private pendingPrevTerm = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly counters = { batchesPublished: 0, batchesReceived: 0, batchesMalformed: 0, fetches: 0 };

  constructor(
    private readonly bus: GossipBus,
    private readonly raft: RaftService,
    private readonly client: RaftClient,
    private readonly addressOf: (id: string) => string,
    private readonly log: Logger,
    /** True when some live agent is neither voter nor learner (otherwise nobody needs batches). */
    private readonly hasReplicas: () => boolean,
  ) {}

  start(): void {
    this.bus.on('raft-commits', (_from, payload) => this.onGossip(payload));
    this.raft.onCommitted((entries, prevTerm) => {
      if (!this.raft.isLeader || !this.hasReplicas()) return;
      if (this.pending.length === 0) this.pendingPrevTerm = prevTerm;
      for (const e of entries) this.pending.push(e);
      this.flushTimer ??= setTimeout(() => this.flush(), COALESCE_MS);
    });
    this.heartbeat = setInterval(() => {
      if (!this.raft.isLeader) return;
      const st = this.raft.status();
      this.send({
        seq: 0,
        leader: st.id,
        term: st.term,
        prevIndex: st.commit,
        prevTerm: 0,
        commit: st.commit,
        entries: [],
      });
    }, 1_000);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const entries = this.pending;
    this.pending = [];
    if (entries.length > 0 && this.raft.isLeader) this.publish(entries, this.pendingPrevTerm);
  }

  stop(): void {
    this.stopped = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  private publish(entries: Entry[], prevTerm: number): void {
    const st = this.raft.status();
    let start = 0;
    let prev = prevTerm;
    while (start < entries.length) {
      let end = start;
      let bytes = 0;
      while (end < entries.length && end - start < BATCH_ENTRIES_MAX) {
        bytes += (entries[end] as Entry).data.length + 64;
        if (end > start && bytes > BATCH_BYTES_MAX) break;
        end++;
      }
      const batch = entries.slice(start, end);
      const first = batch[0] as Entry;
      const last = batch[batch.length - 1] as Entry;
      this.send({
        seq: 0,
        leader: st.id,
        term: st.term,
        prevIndex: first.index - 1,
        prevTerm: prev,
        commit: last.index,
        entries: batch,
      });
      prev = last.term;
      start = end;
    }
  }

  private send(b: Batch): void {
    b.seq = ++this.seq;
    this.counters.batchesPublished++;
    this.bus.publish('raft-commits', b);
  }

  private onGossip(payload: unknown): void {
    if (this.stopped || !this.raft.started) return;
    const b = parseBatch(payload);
    if (!b) {
      this.counters.batchesMalformed++;
      this.log.warn('malformed commit batch dropped');
      return;
    }
    // A member that follows this leader gets every entry from it directly.
    if (this.raft.isMember() && this.raft.leader === b.leader) return;
    this.counters.batchesReceived++;
    // Our committed prefix matches the leader's log; anything after it may be a stale tail (an
    // ex-voter restarted after it was removed), which the append's conflict check truncates.
    const commit = this.raft.status().commit;
    if (b.entries.length > 0 && b.prevIndex <= commit) {
      const msg = toAppend(b, this.raft.status().id);
      if (msg) this.raft.stepExternal(msg);
      return;
    }
    if (b.commit > commit) void this.fetchFrom(b.leader);
  }

  /** Catch up from `peer`, one range (or the snapshot) per round. */
  private async fetchFrom(peer: string): Promise<void> {
    if (this.fetching) return;
    this.fetching = true;
    try {
      for (let round = 0; round < FETCH_ROUNDS_MAX && !this.stopped; round++) {
        const st = this.raft.status();
        this.counters.fetches++;
        const res = (await this.client.call(
          peer,
          this.addressOf(peer),
          { op: 'fetch', from: st.lastIndex + 1 },
          10_000,
        )) as Record<string, unknown>;
        const msg = fetchToMessage(res, peer, st.id, st.lastIndex);
        if (!msg) return;
        this.raft.stepExternal(msg);
        // Wait for the core to persist and apply what we fed it before asking for more.
        await this.raft.waitApplied(
          msg.t === 'snapshot'
            ? msg.snapshot.meta.index
            : st.lastIndex + (msg.t === 'append' ? msg.entries.length : 0),
          5_000,
        );
        if (msg.t === 'append' && msg.entries.length === 0) return;
        if (msg.t === 'append' && (msg.entries[msg.entries.length - 1] as Entry).index >= msg.commit) return;
      }
    } catch (err) {
      this.log.debug(
        { peer, err: (err as Error).message },
        'replica catch-up failed; will retry on the next batch',
      );
    } finally {
      this.fetching = false;
    }
  }
}

function parseBatch(v: unknown): Batch | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.leader !== 'string' || o.leader.length === 0 || o.leader.length > 128) return undefined;
  for (const k of ['seq', 'term', 'prevIndex', 'prevTerm', 'commit']) {
    const n = o[k];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return undefined;
  }
  if (!Array.isArray(o.entries)) return undefined;
  return o as unknown as Batch;
}

/** A published batch as an append from the leader, validated like any raft message. */
function toAppend(b: Batch, self: string): Message | undefined {
  const m = parseRaftMessage(
    {
      t: 'append',
      term: b.term,
      from: b.leader,
      to: self,
      prevIndex: b.prevIndex,
      prevTerm: b.prevTerm,
      entries: b.entries,
      commit: b.commit,
    },
    b.leader,
  );
  return typeof m === 'string' ? undefined : m;
}

function fetchToMessage(
  res: Record<string, unknown>,
  peer: string,
  self: string,
  lastIndex: number,
): Message | undefined {
  const raw =
    res.snapshot !== undefined && res.snapshot !== null
      ? { t: 'snapshot', term: res.term, from: peer, to: self, snapshot: res.snapshot }
      : {
          t: 'append',
          term: res.term,
          from: peer,
          to: self,
          prevIndex: lastIndex,
          prevTerm: res.prevTerm,
          entries: res.entries,
          commit: res.commit,
        };
  const m = parseRaftMessage(raw, peer);
  return typeof m === 'string' ? undefined : m;
}
