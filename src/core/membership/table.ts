// The member table: who we know, in which state, at which incarnation. It enforces the table's
// own invariants (bounded size, incarnations never go down, a live-member count kept in step) and
// reports every status change as an event; the SWIM update rules that decide *whether* to change
// a member live in membership.ts.
//
// At 1,000 members the table is read far more often than it changes, so it keeps what the hot
// reads need instead of scanning: members of each status in insertion order (random picks of
// relays and push-pull peers cost O(k), not O(N)), and each member's push-pull entry, built once
// per change and shared, frozen, by every full-state message until the member changes again.
import { sampleExcept } from './sample.js';
import type { Member, MemberEvent, MemberInfo, MemberState, MemberStatus, NodeId, Rng } from './types.js';

export interface TableLimits {
  membersMax: number;
  failedReapMs: number;
  leftReapMs: number;
}

export function isLive(status: MemberStatus): boolean {
  return status === 'alive' || status === 'suspect';
}

export function sameInfo(a: MemberInfo, b: MemberInfo): boolean {
  if (a.id !== b.id || a.name !== b.name || a.address !== b.address || a.zone !== b.zone) return false;
  const ka = Object.keys(a.meta);
  if (ka.length !== Object.keys(b.meta).length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b.meta, k) || a.meta[k] !== b.meta[k]) return false;
  }
  return true;
}

export function copyInfo(info: MemberInfo): MemberInfo {
  return { id: info.id, name: info.name, address: info.address, zone: info.zone, meta: { ...info.meta } };
}

/** A copy of a member (fields listed, not spread: one object shape for every copy). */
export function snapshot(m: Member): Member {
  return {
    id: m.id,
    name: m.name,
    address: m.address,
    zone: m.zone,
    meta: { ...m.meta },
    status: m.status,
    incarnation: m.incarnation,
    statusChangedAtMs: m.statusChangedAtMs,
  };
}

/** A member as the table holds it: the public fields plus bookkeeping that never leaves the table
 * (snapshot() copies only the public fields). */
interface Row extends Member {
  /** Insertion order, the order of values(); the per-status lists are kept sorted by it. */
  readonly seq: number;
  /** This member's push-pull entry, frozen; undefined after any change until it is next needed. */
  state: MemberState | undefined;
}

const STATUSES: readonly MemberStatus[] = ['alive', 'suspect', 'failed', 'left'];

export interface MemberChange {
  status?: MemberStatus;
  incarnation?: number;
  info?: MemberInfo;
}

export class MemberTable {
  private readonly byId = new Map<NodeId, Row>();
  /** Members of each status, in insertion order (the order a scan of values() would meet them). */
  private readonly byStatus: Record<MemberStatus, Row[]> = { alive: [], suspect: [], failed: [], left: [] };
  private seq = 0;
  /** The full-state list of the last states() call, until any member changes. */
  private statesCache: readonly MemberState[] | undefined;
  private live = 0;
  /** No failed/left member is due for reaping before this time (a lower bound, refreshed on reap). */
  private reapCheckAtMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly limits: TableLimits,
    private readonly onEvent: (event: MemberEvent) => void,
  ) {}

  /** The member's dial address, '' when unknown. */
  addressOf(id: NodeId): string {
    return this.byId.get(id)?.address ?? '';
  }

  /** A member that must be present (this node itself); a missing one is a broken invariant. */
  expect(id: NodeId): Member {
    const m = this.byId.get(id);
    if (m === undefined) throw new Error(`membership: ${id} missing from the member table`);
    return m;
  }

  get(id: NodeId): Member | undefined {
    return this.byId.get(id);
  }

  size(): number {
    return this.byId.size;
  }

  /** Members not failed or left, including self: the N of the timing formulas. */
  liveCount(): number {
    return this.live;
  }

  values(): IterableIterator<Member> {
    return this.byId.values();
  }

  /** Members with `status`, in insertion order. A live view: do not keep it across changes. */
  withStatus(status: MemberStatus): readonly Member[] {
    return this.byStatus[status];
  }

  /**
   * Up to `k` distinct random members with `status`, other than those in `except`: the same picks,
   * from the same draws of `rng`, as sample() over the matching members in insertion order.
   */
  pick(status: MemberStatus, k: number, except: readonly NodeId[], rng: Rng): Member[] {
    const list = this.byStatus[status];
    const skip: number[] = [];
    for (const id of except) {
      const r = this.byId.get(id);
      if (r !== undefined && r.status === status && !skip.includes(r.seq)) skip.push(r.seq);
    }
    const at = skip.map((seq) => positionOf(list, seq)).sort((a, b) => a - b);
    return sampleExcept(list, at, k, rng);
  }

  /** Every member's full-state entry, in insertion order. Frozen and shared: callers only read. */
  states(): MemberState[] {
    if (this.statesCache === undefined) {
      const out: MemberState[] = [];
      for (const r of this.byId.values()) {
        r.state ??= Object.freeze({
          info: Object.freeze({
            id: r.id,
            name: r.name,
            address: r.address,
            zone: r.zone,
            meta: Object.freeze({ ...r.meta }),
          }),
          status: r.status,
          inc: r.incarnation,
        });
        out.push(r.state);
      }
      this.statesCache = Object.freeze(out);
    }
    return this.statesCache as MemberState[];
  }

  /** Add a member never seen before; false when the table is full. */
  add(info: MemberInfo, status: MemberStatus, incarnation: number, nowMs: number): boolean {
    if (this.byId.has(info.id)) throw new Error(`table: member ${info.id} already present`);
    assertInc(incarnation);
    if (this.byId.size >= this.limits.membersMax) return false;
    const m: Row = {
      id: info.id,
      name: info.name,
      address: info.address,
      zone: info.zone,
      meta: { ...info.meta },
      status,
      incarnation,
      statusChangedAtMs: nowMs,
      seq: this.seq++,
      state: undefined,
    };
    this.byId.set(info.id, m);
    this.byStatus[status].push(m);
    this.statesCache = undefined;
    if (isLive(status)) this.live++;
    else this.noteDown(status, nowMs);
    this.onEvent({ member: snapshot(m), previous: undefined });
    return true;
  }

  /** Apply a change; emits an event when the status or the descriptive info changed. */
  update(id: NodeId, change: MemberChange, nowMs: number): void {
    const m = this.byId.get(id);
    if (m === undefined) throw new Error(`table: update of unknown member ${id}`);
    const previous = m.status;
    let infoChanged = false;
    m.state = undefined;
    this.statesCache = undefined;
    if (change.incarnation !== undefined) {
      assertInc(change.incarnation);
      if (change.incarnation < m.incarnation) {
        throw new Error(
          `table: incarnation of ${id} would go backwards (${m.incarnation} → ${change.incarnation})`,
        );
      }
      m.incarnation = change.incarnation;
    }
    if (change.info !== undefined) {
      if (change.info.id !== id) throw new Error(`table: info for ${change.info.id} applied to ${id}`);
      if (!sameInfo(m, change.info)) {
        infoChanged = true;
        const info = copyInfo(change.info);
        m.name = info.name;
        m.address = info.address;
        m.zone = info.zone;
        m.meta = info.meta;
      }
    }
    const status = change.status ?? previous;
    if (status !== previous) {
      moveRow(this.byStatus[previous], this.byStatus[status], m);
      m.status = status;
      m.statusChangedAtMs = nowMs;
      if (isLive(previous) && !isLive(status)) this.live--;
      if (!isLive(previous) && isLive(status)) this.live++;
      if (!isLive(status)) this.noteDown(status, nowMs);
    }
    if (status !== previous || infoChanged) this.onEvent({ member: snapshot(m), previous });
  }

  /** Forget failed/left members whose reap timeout has passed (never `keep`, i.e. self). */
  reap(nowMs: number, keep: NodeId): NodeId[] {
    if (nowMs < this.reapCheckAtMs) return [];
    const removed: NodeId[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const m of this.byId.values()) {
      if (isLive(m.status) || m.id === keep) continue;
      const due = this.reapAtMs(m);
      if (due <= nowMs) removed.push(m.id);
      else next = Math.min(next, due);
    }
    for (const id of removed) {
      const m = this.byId.get(id) as Row;
      this.byId.delete(id);
      moveRow(this.byStatus[m.status], undefined, m);
      this.statesCache = undefined;
    }
    this.reapCheckAtMs = next;
    return removed;
  }

  nextReapMs(): number | undefined {
    return Number.isFinite(this.reapCheckAtMs) ? this.reapCheckAtMs : undefined;
  }

  /** All members, sorted by name then id, as copies. */
  sorted(): Member[] {
    const out = [...this.byId.values()].map(snapshot);
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  }

  /** @param keep the member exempt from reaping (self) */
  checkInvariants(keep: NodeId): void {
    if (this.byId.size > this.limits.membersMax) {
      throw new Error(`table: ${this.byId.size} members exceed membersMax ${this.limits.membersMax}`);
    }
    let live = 0;
    for (const [id, m] of this.byId) {
      if (m.id !== id) throw new Error(`table: entry ${id} holds member ${m.id}`);
      assertInc(m.incarnation);
      if (isLive(m.status)) live++;
      else if (id !== keep && this.reapAtMs(m) < this.reapCheckAtMs) {
        throw new Error(`table: member ${id} due for reaping at ${this.reapAtMs(m)} before the next check`);
      }
    }
    if (live !== this.live) throw new Error(`table: live count ${this.live} but ${live} live members`);
    let listed = 0;
    for (const status of STATUSES) {
      const list = this.byStatus[status];
      listed += list.length;
      for (let i = 0; i < list.length; i++) {
        const r = list[i] as Row;
        if (r.status !== status || this.byId.get(r.id) !== r) {
          throw new Error(`table: ${r.id} listed as ${status} but is ${r.status}`);
        }
        if (i > 0 && (list[i - 1] as Row).seq >= r.seq) throw new Error(`table: ${status} list out of order`);
      }
    }
    if (listed !== this.byId.size) throw new Error(`table: ${listed} listed members, ${this.byId.size} held`);
  }

  private reapAtMs(m: Member): number {
    return m.statusChangedAtMs + (m.status === 'left' ? this.limits.leftReapMs : this.limits.failedReapMs);
  }

  private noteDown(status: MemberStatus, nowMs: number): void {
    const after = status === 'left' ? this.limits.leftReapMs : this.limits.failedReapMs;
    this.reapCheckAtMs = Math.min(this.reapCheckAtMs, nowMs + after);
  }
}

/** Position of the row with `seq` in a list sorted by seq (where it would go, if absent). */
function positionOf(list: readonly Row[], seq: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as Row).seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Move a row from one status list to another (or out of the table), keeping both in order. */
function moveRow(from: Row[], to: Row[] | undefined, r: Row): void {
  const i = positionOf(from, r.seq);
  if (from[i] !== r) throw new Error(`table: ${r.id} missing from its status list`);
  from.splice(i, 1);
  to?.splice(positionOf(to, r.seq), 0, r);
}

function assertInc(inc: number): void {
  if (!Number.isSafeInteger(inc) || inc < 0) throw new Error(`table: invalid incarnation ${inc}`);
}
