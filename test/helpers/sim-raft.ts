// A deterministic harness for the Raft core: N RaftNodes on a seeded in-memory network (loss,
// duplication, reordering by random delay, partitions), a fake disk per node (every Ready is
// persisted before its messages leave; a crash loses only what was never persisted and the node
// restarts from its disk through RaftRestore), a state machine per node (the applied entries),
// and cluster-sim's Raft safety checker (cluster-sim/check/raft-safety.ts) run after every step.
// Time is in ticks; a message takes [delayTicks[0], delayTicks[1]] ticks (0 = within the tick).

import { entryKey, persistedLog, RaftSafety } from '../../cluster-sim/check/raft-safety.js';
import { DEFAULT_RAFT_CONFIG, RaftNode, type RaftRestore } from '../../src/core/raft/raft.js';
import type {
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  RaftConfig,
  RaftStatus,
  ReadState,
  Ready,
  Snapshot,
} from '../../src/core/raft/types.js';
import { SeededRng } from '../../src/core/rand.js';

export interface SimRaftOptions {
  /** Voter ids of the bootstrap configuration. */
  voters: NodeId[];
  /** Learner ids of the bootstrap configuration. */
  learners?: NodeId[];
  /** Nodes that exist but are not in the bootstrap configuration (to be added later). */
  spares?: NodeId[];
  seed: number;
  config?: Partial<RaftConfig>;
  /** Message delay range in ticks (default [0, 0]). */
  delayTicks?: [number, number];
  dropRate?: number;
  dupRate?: number;
  /** Record a readable trace of every delivered message and state change. */
  trace?: boolean;
}

interface Disk {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
  /** The state machine: key of the entry applied at each index (index 0 unused). */
  sm: string[];
}

export interface SimNode {
  id: NodeId;
  raft: RaftNode | undefined;
  disk: Disk;
  readStates: ReadState[];
  incarnation: number;
}

interface InFlight {
  at: number;
  order: number;
  msg: Message;
}

const text = new TextDecoder();
const enc = new TextEncoder();

export { entryKey };

/** A fresh node (empty log, term 0) for tests that drive the core by hand; pre-vote off. */
export function handNode(id: NodeId, voters: NodeId[], seed = 1): RaftNode {
  return new RaftNode({
    id,
    config: { ...DEFAULT_RAFT_CONFIG, preVote: false },
    rng: new SeededRng(seed),
    restore: {
      hardState: { term: 0, vote: '', commit: 0 },
      snapshot: undefined,
      entries: [],
      initialConf: { voters, learners: [] },
      applied: 0,
    },
  });
}

const DELIVERIES_PER_TICK_MAX = 100_000;

export class SimRaft {
  now = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly config: RaftConfig;
  readonly trace: string[] = [];
  private readonly net: SeededRng;
  private queue: InFlight[] = [];
  private order = 0;
  private readonly cut = new Set<string>();
  private readonly opts: Required<Omit<SimRaftOptions, 'config' | 'learners' | 'spares'>>;
  private readonly bootstrap: ConfState;
  /** Safety, checked across nodes and restarts; the first violation throws. */
  readonly safety = new RaftSafety();
  dropRate: number;
  dupRate: number;
  delayTicks: [number, number];

  constructor(opts: SimRaftOptions) {
    this.opts = { delayTicks: [0, 0], dropRate: 0, dupRate: 0, trace: false, ...opts };
    this.config = { ...DEFAULT_RAFT_CONFIG, ...opts.config };
    this.net = new SeededRng(opts.seed ^ 0x7a17);
    this.dropRate = this.opts.dropRate;
    this.dupRate = this.opts.dupRate;
    this.delayTicks = this.opts.delayTicks;
    this.bootstrap = { voters: [...opts.voters], learners: [...(opts.learners ?? [])] };
    const all = [...opts.voters, ...(opts.learners ?? []), ...(opts.spares ?? [])];
    for (const id of all) {
      const node: SimNode = {
        id,
        raft: undefined,
        disk: { hardState: { term: 0, vote: '', commit: 0 }, snapshot: undefined, entries: [], sm: [''] },
        readStates: [],
        incarnation: 0,
      };
      this.nodes.set(id, node);
      this.start(node);
    }
  }

  // ---- nodes -----------------------------------------------------------------------------------

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`sim: no node ${id}`);
    return n;
  }

  raft(id: NodeId): RaftNode {
    const r = this.node(id).raft;
    if (r === undefined) throw new Error(`sim: node ${id} is down`);
    return r;
  }

  status(id: NodeId): RaftStatus {
    return this.raft(id).status();
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  upIds(): NodeId[] {
    return this.ids().filter((id) => this.node(id).raft !== undefined);
  }

  /** The leader with the highest term among live nodes, if any. */
  leader(): NodeId | undefined {
    let best: RaftStatus | undefined;
    for (const id of this.upIds()) {
      const s = this.status(id);
      if (s.role === 'leader' && (best === undefined || s.term > best.term)) best = s;
    }
    return best?.id;
  }

  /** Applied entries of a node, as keys, index 1.. (snapshot contents included). */
  applied(id: NodeId): string[] {
    return this.node(id).disk.sm.slice(1);
  }

  /** Applied 'normal' entries' payloads. */
  appliedData(id: NodeId): string[] {
    return this.applied(id)
      .map((k) => k.split('/'))
      .filter((p) => p[1] === 'normal')
      .map((p) => p.slice(2).join('/'));
  }

  private start(node: SimNode): void {
    const d = node.disk;
    const restore: RaftRestore = {
      hardState: { ...d.hardState },
      snapshot: d.snapshot?.meta,
      entries: [...d.entries],
      initialConf: this.bootstrap,
      applied: d.sm.length - 1,
    };
    if (d.snapshot !== undefined) restore.snapshotData = d.snapshot.data;
    node.incarnation++;
    const rng = new SeededRng((this.opts.seed * 7919 + hash(node.id) * 31 + node.incarnation) >>> 0);
    node.raft = new RaftNode({ id: node.id, config: this.config, rng, restore });
  }

  /** Crash: the node loses its memory (nothing unpersisted exists: Readys are handled at once). */
  crash(id: NodeId): void {
    const n = this.node(id);
    n.raft = undefined;
    n.readStates = [];
    this.log(`${id} crashed`);
  }

  restart(id: NodeId): void {
    const n = this.node(id);
    if (n.raft !== undefined) throw new Error(`sim: ${id} is up`);
    this.start(n);
    this.log(`${id} restarted`);
    this.flush(id);
  }

  // ---- network ---------------------------------------------------------------------------------

  /** Cut every link between nodes of different groups (nodes in no group keep their links). */
  partition(...groups: NodeId[][]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i] as NodeId[])
          for (const b of groups[j] as NodeId[]) this.cut.add(`${a}>${b}`);
      }
    }
    this.log(`partition ${groups.map((g) => g.join(',')).join(' | ')}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.ids()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
    this.log(`isolate ${id}`);
  }

  /** Cut one direction only. */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
    this.log('heal');
  }

  private connected(from: NodeId, to: NodeId): boolean {
    return !this.cut.has(`${from}>${to}`);
  }

  private enqueue(msg: Message): void {
    if (this.net.next() < this.dropRate) return;
    const copies = this.net.next() < this.dupRate ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const [lo, hi] = this.delayTicks;
      const delay = lo + Math.floor(this.net.next() * (hi - lo + 1));
      this.queue.push({ at: this.now + delay, order: this.order++, msg });
    }
  }

  /** Deliver every message due by now, including those sent in response (bounded). */
  deliver(): void {
    for (let n = 0; n < DELIVERIES_PER_TICK_MAX; n++) {
      let best = -1;
      for (let i = 0; i < this.queue.length; i++) {
        const q = this.queue[i] as InFlight;
        if (q.at > this.now) continue;
        const b = this.queue[best];
        if (b === undefined || q.at < b.at || (q.at === b.at && q.order < b.order)) best = i;
      }
      if (best < 0) return;
      const { msg } = this.queue.splice(best, 1)[0] as InFlight;
      const to = this.nodes.get(msg.to);
      if (to?.raft === undefined || !this.connected(msg.from, msg.to)) continue;
      if (this.opts.trace) this.log(`${msg.from}→${msg.to} ${fmtMsg(msg)}`);
      to.raft.step(msg);
      this.flush(msg.to);
    }
    throw new Error('sim: message storm (more deliveries in one tick than the bound)');
  }

  // ---- driving ---------------------------------------------------------------------------------

  /** Advance time by `n` ticks: every live node ticks, then due messages are delivered. */
  tick(n = 1): void {
    for (let k = 0; k < n; k++) {
      this.now++;
      for (const id of this.upIds()) {
        this.raft(id).tick();
        this.flush(id);
      }
      this.deliver();
    }
  }

  /** Tick until `pred` holds; returns the ticks taken or throws after `maxTicks`. */
  runUntil(pred: () => boolean, maxTicks = 1000, what = 'condition'): number {
    for (let t = 0; t <= maxTicks; t++) {
      if (pred()) return t;
      this.tick();
    }
    throw new Error(`sim: ${what} not reached within ${maxTicks} ticks (t=${this.now})`);
  }

  /** Tick until some node is leader (and return it). */
  electLeader(maxTicks = 1000): NodeId {
    this.runUntil(() => this.leader() !== undefined, maxTicks, 'a leader');
    return this.leader() as NodeId;
  }

  /** Call `fn` on a node's core, then handle its Ready. */
  with<T>(id: NodeId, fn: (r: RaftNode) => T): T {
    const out = fn(this.raft(id));
    this.flush(id);
    this.deliver();
    return out;
  }

  propose(id: NodeId, data: string) {
    return this.with(id, (r) => r.propose(enc.encode(data)));
  }

  /** Snapshot the node's state machine at its applied index and compact its log. */
  compact(id: NodeId, index = this.status(id).applied): void {
    const n = this.node(id);
    const data = enc.encode(JSON.stringify(n.disk.sm.slice(0, index + 1)));
    const meta = this.raft(id).compact(index, data);
    if (meta === undefined) return;
    n.disk.snapshot = { meta, data };
    n.disk.entries = n.disk.entries.filter((e) => e.index > index);
    this.log(`${id} compacted to ${index}`);
  }

  /** Handle every Ready of a node: persist, apply, then send. */
  flush(id: NodeId): void {
    const n = this.node(id);
    for (let k = 0; k < 100 && n.raft?.hasReady(); k++) {
      const raft = n.raft;
      const rd = raft.ready();
      this.persist(n, rd);
      for (const rs of rd.readStates) {
        n.readStates.push(rs);
        this.log(`${id} read ${rs.ctx} at ${rs.index}`);
      }
      if (rd.committed.length > 0) {
        this.log(`${id} applies ${rd.committed.map((e) => `${e.index}@${e.term}:${e.type}`).join(' ')}`);
      }
      this.apply(n, rd);
      if (rd.softState !== undefined) this.onSoftState(n);
      for (const m of rd.messages) this.enqueue(m);
      raft.advance(rd);
      this.check(n);
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    const d = n.disk;
    if (rd.snapshot !== undefined) {
      d.snapshot = rd.snapshot;
      d.entries = d.entries.filter((e) => e.index > rd.snapshot!.meta.index);
      // A received snapshot replaces the state machine.
      const sm = JSON.parse(text.decode(rd.snapshot.data)) as string[];
      for (let i = 1; i < sm.length; i++) this.safety.onApply(n.id, i, sm[i] as string);
      d.sm = sm;
      d.entries = [];
      this.log(`${n.id} installed snapshot ${rd.snapshot.meta.index}@${rd.snapshot.meta.term}`);
    }
    const first = rd.entries[0];
    if (first !== undefined) {
      d.entries = d.entries.filter((e) => e.index < first.index).concat(rd.entries);
      const snapIndex = d.snapshot?.meta.index ?? 0;
      if (d.entries.length > 0 && (d.entries[0] as Entry).index !== snapIndex + 1) {
        throw new Error(`sim: ${n.id} persisted log does not start after its snapshot`);
      }
      this.safety.onPersistEntries(
        n.id,
        rd.entries,
        persistedLog(() => d),
      );
    }
    if (rd.hardState !== undefined) {
      this.safety.onPersistCommit(n.id, rd.hardState.commit);
      if (rd.hardState.term < d.hardState.term) throw new Error(`safety: ${n.id} term decreased`);
      d.hardState = { ...rd.hardState };
    }
  }

  private apply(n: SimNode, rd: Ready): void {
    for (const e of rd.committed) {
      if (e.index !== n.disk.sm.length) {
        throw new Error(
          `sim: ${n.id} applies ${e.index} but its state machine is at ${n.disk.sm.length - 1}`,
        );
      }
      const key = entryKey(e);
      this.safety.onApply(n.id, e.index, key);
      n.disk.sm.push(key);
    }
  }

  private onSoftState(n: SimNode): void {
    const s = (n.raft as RaftNode).status();
    this.log(`${n.id} is ${s.role} term ${s.term} leader ${s.leader || '-'}`);
    if (s.role === 'leader')
      this.safety.onBecomeLeader(
        n.id,
        s.term,
        persistedLog(() => n.disk),
      );
  }

  // ---- safety ----------------------------------------------------------------------------------

  private check(n: SimNode): void {
    const raft = n.raft as RaftNode;
    raft.checkInvariants();
    this.safety.onStatus(raft.status());
  }

  /** Every node's applied sequence is a prefix of the longest one. */
  checkConvergedPrefixes(): void {
    const seqs = this.ids().map((id) => this.applied(id));
    const longest = seqs.reduce((a, b) => (b.length > a.length ? b : a), [] as string[]);
    for (const s of seqs) {
      for (let i = 0; i < s.length; i++) {
        if (s[i] !== longest[i]) throw new Error(`safety: applied sequences diverge at ${i + 1}`);
      }
    }
  }

  log(line: string): void {
    if (this.opts.trace) this.trace.push(`t${this.now} ${line}`);
  }
}

export function fmtMsg(m: Message): string {
  switch (m.t) {
    case 'pre-vote':
    case 'vote':
      return `${m.t} term=${m.term} last=${m.lastIndex}@${m.lastTerm}${m.transfer ? ' transfer' : ''}`;
    case 'pre-vote-resp':
    case 'vote-resp':
      return `${m.t} term=${m.term}${m.reject ? ' reject' : ''}`;
    case 'append':
      return `append term=${m.term} prev=${m.prevIndex}@${m.prevTerm} commit=${m.commit} entries=[${m.entries
        .map((e) => `${e.index}@${e.term}${e.type === 'normal' ? '' : `:${e.type}`}`)
        .join(' ')}]`;
    case 'append-resp':
      return `append-resp term=${m.term} index=${m.index}${m.reject ? ` reject hint=${m.hint}` : ''}`;
    case 'heartbeat':
      return `heartbeat term=${m.term} commit=${m.commit}${m.ctx ? ` ctx=${m.ctx}` : ''}`;
    case 'heartbeat-resp':
      return `heartbeat-resp term=${m.term}${m.ctx ? ` ctx=${m.ctx}` : ''}`;
    case 'snapshot':
      return `snapshot term=${m.term} index=${m.snapshot.meta.index}@${m.snapshot.meta.term}`;
    case 'timeout-now':
      return `timeout-now term=${m.term}`;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
