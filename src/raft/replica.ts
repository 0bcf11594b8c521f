// Replica fan-out. Agents that are neither voters nor learners are replicas: they hold the whole
// configuration but the leader does not replicate to them one by one (its work per commit grows
// with the voter count, not the cluster size). The leader publishes each applied batch, and a
// heartbeat with its commit index every second, on a gossip topic. A replica feeds a batch into
// its own Raft core as an append from the leader, so replicas persist and apply exactly like
// members do (same log, same state machine path). A batch with nothing new goes in as a heartbeat:
// it is how a replica learns who leads, and a replica that hears nothing from its leader for
// LEADER_SILENT_MS forgets it. Gossip does not keep order: a batch that arrives ahead of a gap is
// held for up to GAP_WAIT_MS for the missing one; then the replica fetches the missing range, or
// the snapshot, from the leader.
import type { Logger } from 'pino';
import {
  type BatchAction,
  type CommitBatch,
  type FetchReply,
  fetchReplyToMessage,
  fetchStart,
  fetchWantsMore,
  GAP_WAIT_MS,
  HEARTBEAT_MS,
  HELD_BATCHES_MAX,
  HeldBatches,
  heartbeatBatch,
  LeaderSilence,
  onCommitBatch,
  planBatches,
} from '../core/raft/fanout.js';
import type { Entry, Message } from '../core/raft/types.js';
import type { GossipBus } from '../wire/gossip-bus.js';
import type { RaftClient } from './client.js';
import type { RaftService } from './service.js';
import { parseRaftMessage } from './validate.js';

/** Rounds of fetching per detected gap, so a replica far behind yields between rounds. */
const FETCH_ROUNDS_MAX = 64;

export class ReplicaFanout {
  private heartbeat: NodeJS.Timeout | undefined;
  private fetching = false;
  private readonly held = new HeldBatches();
  private readonly leaderSilence = new LeaderSilence();
  private gapTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private pending: Entry[] = [];
  private pendingPrevTerm = 0;
  private flushTimer: NodeJS.Immediate | undefined;
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
      // Entries applied in one event-loop turn go out as one batch. The core already hands them
      // out once per Ready (dozens per batch under load), so no timer is needed to coalesce.
      this.flushTimer ??= setImmediate(() => this.flush());
    });
    this.heartbeat = setInterval(() => {
      if (!this.raft.isLeader) {
        this.forgetSilentLeader();
        return;
      }
      const st = this.raft.status();
      this.send(heartbeatBatch(st.id, st.term, st.commit));
    }, HEARTBEAT_MS);
  }

  /** A replica whose leader published nothing for LEADER_SILENT_MS forgets it. Members are left
   * alone: they hear from the leader directly, and a voter forgets a silent one by campaigning. */
  private forgetSilentLeader(): void {
    if (this.stopped || !this.raft.started || this.raft.isMember()) return;
    const leader = this.raft.status().leader;
    if (!this.leaderSilence.silent(leader, performance.now())) return;
    this.log.info({ leader }, 'no batch from the raft leader for a while; forgetting it');
    this.raft.forgetLeader();
  }

  private flush(): void {
    this.flushTimer = undefined;
    const entries = this.pending;
    this.pending = [];
    if (entries.length > 0 && this.raft.isLeader) this.publish(entries, this.pendingPrevTerm);
  }

  stop(): void {
    this.stopped = true;
    if (this.flushTimer) clearImmediate(this.flushTimer);
    if (this.gapTimer) clearTimeout(this.gapTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  private publish(entries: Entry[], prevTerm: number): void {
    const st = this.raft.status();
    for (const b of planBatches(entries, prevTerm, st.id, st.term)) this.send(b);
  }

  private send(b: Omit<CommitBatch, 'seq'>): void {
    this.counters.batchesPublished++;
    this.bus.publish('raft-commits', { ...b, seq: ++this.seq });
  }

  private onGossip(payload: unknown): void {
    if (this.stopped || !this.raft.started) return;
    const b = parseBatch(payload);
    if (!b) {
      this.counters.batchesMalformed++;
      this.log.warn('malformed commit batch dropped');
      return;
    }
    const action = this.decide(b);
    if (action.do === 'ignore') return;
    this.counters.batchesReceived++;
    if (action.do === 'append' || action.do === 'heartbeat') {
      this.stepBatch(action.msg, b.leader);
      this.releaseHeld();
      return;
    }
    // A gap: hold the batch a little, since the missing one is usually a hop behind it.
    this.held.hold(b, performance.now());
    this.maybeFetch(action.peer);
    if (!this.fetching && !this.stopped) {
      this.gapTimer ??= setTimeout(() => {
        this.gapTimer = undefined;
        this.maybeFetch(action.peer);
      }, GAP_WAIT_MS);
    }
  }

  private decide(b: CommitBatch): BatchAction {
    const st = this.raft.status();
    return onCommitBatch(b, {
      id: st.id,
      commit: st.commit,
      member: st.conf.voters.includes(st.id) || st.conf.learners.includes(st.id),
    });
  }

  private stepBatch(append: Message, leader: string): void {
    const msg = parseRaftMessage(append, leader);
    if (typeof msg === 'string') return;
    this.raft.stepExternal(msg);
    // A batch of an older term (a deposed leader's, late) does not make its sender the leader.
    if (this.raft.status().leader === leader) this.leaderSilence.heard(leader, performance.now());
  }

  /** Step held batches that now continue our log (the core's commit moves as each is stepped). */
  private releaseHeld(): void {
    for (let i = 0; i < HELD_BATCHES_MAX; i++) {
      const b = this.held.next(this.raft.status().commit);
      if (b === undefined) return;
      const action = this.decide(b);
      if (action.do === 'append' || action.do === 'heartbeat') this.stepBatch(action.msg, b.leader);
    }
  }

  private maybeFetch(peer: string): void {
    this.releaseHeld();
    if (this.fetching || this.stopped || !this.held.shouldFetch(performance.now())) return;
    void this.fetchFrom(peer);
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
          { op: 'fetch', from: fetchStart(st.commit) },
          10_000,
        )) as Record<string, unknown>;
        const msg = parseRaftMessage(
          fetchReplyToMessage(res as unknown as FetchReply, peer, st.id, st.commit),
          peer,
        );
        if (typeof msg === 'string') return;
        this.raft.stepExternal(msg);
        // Wait for the core to persist and apply what we fed it before asking for more.
        await this.raft.waitApplied(
          msg.t === 'snapshot'
            ? msg.snapshot.meta.index
            : st.commit + (msg.t === 'append' ? msg.entries.length : 0),
          5_000,
        );
        if (!fetchWantsMore(msg)) return;
      }
    } catch (err) {
      this.log.debug(
        { peer, err: (err as Error).message },
        'replica catch-up failed; will retry on the next batch',
      );
    } finally {
      this.fetching = false;
      this.held.fetched(performance.now());
      this.releaseHeld();
    }
  }
}

function parseBatch(v: unknown): CommitBatch | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.leader !== 'string' || o.leader.length === 0 || o.leader.length > 128) return undefined;
  for (const k of ['seq', 'term', 'prevIndex', 'prevTerm', 'commit']) {
    const n = o[k];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return undefined;
  }
  if (!Array.isArray(o.entries)) return undefined;
  return o as unknown as CommitBatch;
}
