// Every agent's applied Raft index, spread by gossip ('raft-applied' messages on the gossip bus): each agent publishes {id, applied, term}
// when its applied index changed (at most once a second) and at least every 10 s, and keeps the
// latest it heard from everyone. `mesh raft peers` and GET /v1/raft/applied show it, so an
// operator (or a benchmark) can see how far behind any agent, replica or voter, is.
import type { GossipBus } from '../wire/gossip-bus.js';
import type { RaftService } from './service.js';

const PUBLISH_MIN_INTERVAL_MS = 5_000;
/** Entries kept; one per agent, so this bounds the cluster size tracked. */
const AGENTS_MAX = 10_000;

export interface AppliedView {
  id: string;
  applied: number;
  term: number;
  /** Milliseconds since this agent's report arrived. */
  ageMs: number;
}

export class AppliedGossip {
  private readonly reports = new Map<string, { applied: number; term: number; atMs: number }>();
  private timer: NodeJS.Timeout | undefined;
  private lastPublished = -1;
  private seq = 0;

  constructor(
    private readonly bus: GossipBus,
    private readonly selfId: string,
    private readonly raft: RaftService,
  ) {}

  start(): void {
    this.bus.on('raft-applied', (_from, payload) => this.onGossip(payload));
    // Jittered start, so agents started together do not publish together.
    const jitterMs = Math.floor(Math.random() * PUBLISH_MIN_INTERVAL_MS);
    const first = setTimeout(() => {
      this.maybePublish();
      this.timer = setInterval(() => this.maybePublish(), PUBLISH_MIN_INTERVAL_MS);
    }, jitterMs);
    this.timer = first;
  }

  stop(): void {
    // clearTimeout and clearInterval clear either kind of Node timer.
    if (this.timer) clearTimeout(this.timer);
  }

  /** Latest report of every agent, this one included (its own value is live). */
  all(): AppliedView[] {
    const now = performance.now();
    const out: AppliedView[] = [...this.reports].map(([id, r]) => ({
      id,
      applied: r.applied,
      term: r.term,
      ageMs: Math.round(now - r.atMs),
    }));
    const st = this.raft.status();
    const self = { id: this.selfId, applied: this.raft.state.appliedIndex, term: st.term, ageMs: 0 };
    return [self, ...out.filter((v) => v.id !== this.selfId)];
  }

  applied(id: string): number | undefined {
    if (id === this.selfId) return this.raft.state.appliedIndex;
    return this.reports.get(id)?.applied;
  }

  private maybePublish(): void {
    if (!this.raft.started) return;
    const applied = this.raft.state.appliedIndex;
    if (applied === this.lastPublished) return;
    this.lastPublished = applied;
    // seq keeps each report unique: gossip message ids are content hashes.
    const msg = { id: this.selfId, applied, term: this.raft.status().term, seq: ++this.seq };
    this.bus.publish('raft-applied', msg);
  }

  private onGossip(v: unknown): void {
    if (typeof v !== 'object' || v === null) return;
    const o = v as Record<string, unknown>;
    if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 128 || o.id === this.selfId) return;
    if (!isIndex(o.applied) || !isIndex(o.term)) return;
    if (!this.reports.has(o.id) && this.reports.size >= AGENTS_MAX) return;
    this.reports.set(o.id, { applied: o.applied, term: o.term, atMs: performance.now() });
  }
}

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
