// Drives the pure Raft core: ticks it, persists each Ready (synced) before sending its messages,
// applies committed entries to the replicated state machine, and resolves the proposals and
// linearizable reads waiting on them. Writes on a non-leader are forwarded to the leader over
// the client protocol (src/raft/client.ts); there is no other path to the leader.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Host } from '../agent/host.js';
import { MeshError } from '../api/types.js';
import { DEFAULT_RAFT_CONFIG, RaftNode } from '../core/raft/raft.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  Message,
  RaftStatus,
  Ready,
  Snapshot,
} from '../core/raft/types.js';
import { SeededRng } from '../core/rand.js';
import { type ApplyResult, StateMachine } from '../core/state/state-machine.js';
import { DecodeError, decode, encode } from '../wire/codec.js';
import { StreamTransport } from '../wire/stream-transport.js';
import { proposeError } from './errors.js';
import type { RaftStorage } from './storage.js';
import { parseRaftMessage } from './validate.js';
import { RaftWaiters } from './waiters.js';

export const RAFT_PROTOCOL = '/mesh/raft/1.0.0';

export interface RaftServiceInit {
  id: string;
  host: Host;
  storage: RaftStorage;
  log: Logger;
  /** Cluster address of a member by id ("" when unknown); raft peers are agents. */
  addressOf: (id: string) => string;
  /** Tick period: 50 ms → heartbeats every 100 ms, elections after 0.5–1 s of silence. */
  tickMs: number;
  /** Take a snapshot and compact the log every this many applied entries. */
  snapshotEveryEntries: number;
  /** How long a proposal may wait for its commit before the caller gets 'unavailable'. */
  proposeTimeoutMs: number;
}

export class RaftService {
  private node: RaftNode | undefined;
  readonly state: StateMachine;
  private readonly transport: StreamTransport;
  private tickTimer: NodeJS.Timeout | undefined;
  private processing = false;
  private again = false;
  private stopped = false;
  private readonly waiters: RaftWaiters;
  private readonly applyListeners: Array<(index: number) => void> = [];
  private readonly committedListeners: Array<(entries: Entry[], prevTerm: number) => void> = [];
  private readSeq = 0;
  private appliedSinceSnapshot = 0;
  /** Term of the last applied entry: a snapshot at the applied index carries it. */
  private appliedTerm = 0;
  private leaderId = '';
  /** True while this agent is neither voter nor learner (updated on every Ready). */
  private replicaMode = true;
  private roleName: RaftStatus['role'] = 'follower';
  readonly counters = { messagesMalformed: 0, applied: 0, snapshotsTaken: 0, snapshotsInstalled: 0 };

  constructor(private readonly init: RaftServiceInit) {
    this.state = new StateMachine();
    this.waiters = new RaftWaiters(init.proposeTimeoutMs);
    this.transport = new StreamTransport(
      RAFT_PROTOCOL,
      init.host,
      (from, frame) => this.onFrame(from, frame),
      init.log,
      {
        frameBytesMax: 64 * 1024 * 1024,
        queuedPerPeerMax: 1024,
        openTimeoutMs: 2_000,
        streamsMax: 64,
      },
    );
  }

  /** Load persisted state; `initialConf` is used only when nothing was persisted (bootstrap). */
  async start(initialConf: ConfState): Promise<void> {
    const loaded = await this.init.storage.load();
    let state = this.state;
    if (loaded.snapshot) {
      state = StateMachine.restore(decodeSnapshot(loaded.snapshot));
      (this as { state: StateMachine }).state = state;
      this.appliedTerm = loaded.snapshot.meta.term;
    }
    this.node = new RaftNode({
      id: this.init.id,
      config: DEFAULT_RAFT_CONFIG,
      rng: new SeededRng(randomInt(0, 2 ** 32 - 1)),
      restore: {
        ...loaded.restore,
        initialConf,
        applied: loaded.snapshot?.meta.index ?? 0,
        ...(loaded.snapshot ? { snapshotData: loaded.snapshot.data } : {}),
      },
    });
    this.updateReplicaMode();
    await this.transport.start();
    this.tickTimer = setInterval(() => {
      // A replica (neither voter nor learner) has no election or heartbeat to time: skip it.
      if (!this.node || this.replicaMode) return;
      this.node.tick();
      this.kick();
    }, this.init.tickMs);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.waiters.rejectAll(new MeshError('unavailable', 'the agent is stopping'));
    await this.transport.stop();
    await this.init.storage.flush().catch(() => undefined);
  }

  /** The core; before start (waiting for --bootstrap-expect agents) every call is 'unavailable'. */
  private get core(): RaftNode {
    if (!this.node)
      throw new MeshError(
        'unavailable',
        'raft has not started yet (waiting for the bootstrap-expect agents)',
      );
    return this.node;
  }

  get started(): boolean {
    return this.node !== undefined;
  }

  status(): RaftStatus {
    if (!this.node) {
      return {
        id: this.init.id,
        term: 0,
        vote: '',
        role: 'follower',
        leader: '',
        commit: 0,
        applied: 0,
        lastIndex: 0,
        firstIndex: 1,
        conf: { voters: [], learners: [] },
        progress: {},
        transferee: '',
      };
    }
    return this.node.status();
  }

  get leader(): string {
    return this.leaderId;
  }

  get isLeader(): boolean {
    return this.roleName === 'leader';
  }

  onApply(listener: (index: number) => void): void {
    this.applyListeners.push(listener);
  }

  /** Called with each batch of newly applied entries and the term of the entry before them. */
  onCommitted(listener: (entries: Entry[], prevTerm: number) => void): void {
    this.committedListeners.push(listener);
  }

  /** Feed a message that did not arrive over the raft protocol (replica fan-out). */
  stepExternal(msg: Message): void {
    if (!this.node || this.stopped) return;
    this.node.step(msg);
    this.kick();
  }

  /** A replica's leader went silent: forget it (writes then fail fast with "no raft leader"). */
  forgetLeader(): void {
    if (!this.node || this.stopped) return;
    this.node.forgetLeader();
    this.kick();
  }

  private updateReplicaMode(): void {
    const conf = this.core.status().conf;
    this.replicaMode = !conf.voters.includes(this.init.id) && !conf.learners.includes(this.init.id);
  }

  /** Is this agent a voter or learner (as opposed to a replica)? */
  isMember(): boolean {
    const conf = this.status().conf;
    return conf.voters.includes(this.init.id) || conf.learners.includes(this.init.id);
  }

  /** Propose a command on this node (must be the leader); resolves with its apply result. */
  proposeLocal(cmd: unknown): Promise<ApplyResult> {
    const full = this.waiters.checkProposalRoom();
    if (full) return Promise.reject(full);
    const r = this.core.propose(encode(cmd));
    if ('code' in r) return Promise.reject(proposeError(r));
    return this.waitFor(r.index, r.term);
  }

  proposeConfChangeLocal(cc: ConfChange): Promise<ApplyResult> {
    const r = this.core.proposeConfChange(cc);
    if ('code' in r) return Promise.reject(proposeError(r));
    return this.waitFor(r.index, r.term);
  }

  transferLeader(to: string): void {
    const err = this.core.transferLeader(to);
    if (err) throw proposeError(err);
    this.kick();
  }

  /** Leader only: the commit index as of now, confirmed by a quorum (ReadIndex). */
  readIndexLocal(): Promise<number> {
    const full = this.waiters.checkReadRoom();
    if (full) return Promise.reject(full);
    const ctx = `${this.init.id.slice(-8)}-${++this.readSeq}`;
    const err = this.core.readIndex(ctx);
    if (err) return Promise.reject(proposeError(err));
    const confirmed = this.waiters.read(ctx);
    this.kick();
    return confirmed;
  }

  /**
   * Call `applied` when this agent applies the write with request id `rid` (see
   * ControlPlane.write); the cancel function, or undefined when too many writes wait.
   */
  onRequestApplied(rid: string, applied: (r: ApplyResult) => void): (() => void) | undefined {
    return this.waiters.onRequest(rid, applied);
  }

  /** Resolves once the state machine has applied `index` (or after `timeoutMs`, with false). */
  waitApplied(index: number, timeoutMs: number): Promise<boolean> {
    if (this.state.appliedIndex >= index) return Promise.resolve(true);
    return this.waiters.untilApplied(index, timeoutMs);
  }

  /** Start an election now (bootstrap of a single node). */
  campaign(): void {
    this.core.campaign();
    this.kick();
  }

  private waitFor(index: number, term: number): Promise<ApplyResult> {
    const applied = this.waiters.proposal(index, term);
    this.kick();
    return applied;
  }

  private onFrame(from: string, frame: Uint8Array): void {
    if (this.stopped || !this.node) return;
    const v = decode(frame);
    const msg = v instanceof DecodeError ? `msgpack: ${v.message}` : parseRaftMessage(v, from);
    if (typeof msg === 'string') {
      this.counters.messagesMalformed++;
      this.init.log.warn({ from, reason: msg }, 'malformed raft message dropped');
      return;
    }
    if (msg.to !== this.init.id) return;
    this.core.step(msg);
    this.kick();
  }

  /** Process Readys one at a time: persist, then send, then apply. */
  private kick(): void {
    if (this.stopped || !this.node) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    void this.drain().finally(() => {
      this.processing = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async drain(): Promise<void> {
    // Bounded: each round hands out what accumulated; new input sets `again` for another round.
    for (let round = 0; round < 64 && this.node?.hasReady() && !this.stopped; round++) {
      const rd = this.core.ready();
      this.updateReplicaMode();
      // Raft thesis §10.2.1: a leader's appends and heartbeats may go out while it writes its own
      // log; only acknowledgements (votes, append responses) must wait until what they promise is
      // durable. Committed entries are applied only after this Ready's write, since Readys are
      // handled strictly one after another. This takes the leader's disk sync off the write path.
      const later: Message[] = [];
      for (const m of rd.messages) {
        if (m.t === 'append' || m.t === 'heartbeat' || m.t === 'snapshot' || m.t === 'timeout-now')
          this.send(m);
        else later.push(m);
      }
      // Entries committed before this Ready's own entries were written by earlier Readys (handled
      // strictly in order) and can never be overwritten: apply them now rather than after this
      // Ready's disk write. On a leader this answers the client without waiting on any disk once
      // a quorum has acknowledged (etcd-io/raft allows the same). A replica counts in no quorum
      // and holds only entries the cluster already committed: it applies them all at once and
      // writes without a sync (see RaftStorage.persist).
      const replica = this.replicaMode;
      const durable = rd.snapshot ? 0 : replica ? Number.MAX_SAFE_INTEGER : this.persistedIndex(rd);
      let early = 0;
      while (early < rd.committed.length && (rd.committed[early] as Entry).index <= durable) early++;
      this.applyCommitted(early === rd.committed.length ? rd.committed : rd.committed.slice(0, early));
      try {
        await this.init.storage.persist(rd, !replica);
      } catch (err) {
        // Without durable storage this node must not acknowledge anything: stop loudly.
        this.init.log.fatal({ err: (err as Error).message }, 'cannot persist raft state; stopping raft');
        await this.stop();
        return;
      }
      if (rd.snapshot) this.installSnapshot(rd.snapshot);
      for (const m of later) this.send(m);
      if (early < rd.committed.length) this.applyCommitted(rd.committed.slice(early));
      for (const rs of rd.readStates) this.waiters.readConfirmed(rs.ctx, rs.index);
      if (rd.softState) this.onSoftState(rd.softState.leader, rd.softState.role);
      this.core.advance(rd);
      await this.maybeSnapshot();
    }
  }

  /** The last index known written by earlier Readys and untouched by this one's entries. */
  private persistedIndex(rd: Ready): number {
    const written = this.init.storage.lastPersistedIndex;
    const first = rd.entries[0];
    return first ? Math.min(written, first.index - 1) : written;
  }

  private send(m: Message): void {
    // A replica answers appends it got by gossip, not from the leader's own stream: the leader
    // has no progress for it and would ignore the answer, so do not send it.
    if (this.replicaMode && (m.t === 'append-resp' || m.t === 'heartbeat-resp')) return;
    const address = this.init.addressOf(m.to);
    this.transport.send(m.to, address, m);
  }

  private applyCommitted(entries: Entry[]): void {
    const prevTerm = this.appliedTerm;
    for (const e of entries) {
      let result: ApplyResult = { ok: true, index: e.index };
      if (e.type === 'normal' && e.data.length > 0) {
        const cmd = decode(e.data);
        result = this.state.apply(e.index, cmd instanceof DecodeError ? undefined : cmd);
        const rid = requestId(cmd);
        if (rid !== undefined) this.waiters.requestApplied(rid, result);
      } else {
        this.state.skip(e.index);
      }
      this.counters.applied++;
      this.appliedSinceSnapshot++;
      this.appliedTerm = e.term;
      this.waiters.proposalApplied(e.index, e.term, result);
    }
    if (entries.length === 0) return;
    for (const l of this.committedListeners) l(entries, prevTerm);
    const applied = this.state.appliedIndex;
    this.waiters.appliedUpTo(applied);
    for (const l of this.applyListeners) l(applied);
  }

  private installSnapshot(s: Snapshot): void {
    (this as { state: StateMachine }).state = StateMachine.restore(decodeSnapshot(s));
    this.appliedTerm = s.meta.term;
    this.counters.snapshotsInstalled++;
    this.appliedSinceSnapshot = 0;
    this.init.log.info(
      { index: s.meta.index, term: s.meta.term },
      'installed a raft snapshot from the leader',
    );
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.appliedSinceSnapshot < this.init.snapshotEveryEntries) return;
    const index = this.state.appliedIndex;
    const data = encode(this.state.snapshot());
    const meta = this.core.compact(index, data);
    if (meta) await this.init.storage.saveSnapshot({ meta, data });
    this.appliedSinceSnapshot = 0;
    this.counters.snapshotsTaken++;
    this.init.log.info({ index }, 'raft snapshot taken; log compacted');
  }

  private onSoftState(leader: string, role: RaftStatus['role']): void {
    const changed = leader !== this.leaderId;
    this.leaderId = leader;
    this.roleName = role;
    if (changed) this.init.log.info({ leader, role }, 'raft leader changed');
  }
}

/** The request id a decoded command carries, if any (the state machine has validated it). */
function requestId(cmd: unknown): string | undefined {
  const rid = typeof cmd === 'object' && cmd !== null ? (cmd as { rid?: unknown }).rid : undefined;
  return typeof rid === 'string' ? rid : undefined;
}

function decodeSnapshot(s: Snapshot): unknown {
  const v = decode(s.data);
  if (v instanceof DecodeError)
    throw new Error(`corrupt raft snapshot at index ${s.meta.index}: ${v.message}`);
  return v;
}
