// The member table: who we know, in which state, at which incarnation. It enforces the table's
// own invariants (bounded size, incarnations never go down, a live-member count kept in step) and
// reports every status change as an event; the SWIM update rules that decide *whether* to change
// a member live in membership.ts.
import type { Member, MemberEvent, MemberInfo, MemberStatus, NodeId } from './types.js';

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

export function snapshot(m: Member): Member {
  return {
    ...copyInfo(m),
    status: m.status,
    incarnation: m.incarnation,
    statusChangedAtMs: m.statusChangedAtMs,
  };
}

export interface MemberChange {
  status?: MemberStatus;
  incarnation?: number;
  info?: MemberInfo;
}

export class MemberTable {
  private readonly byId = new Map<NodeId, Member>();
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

  /** Add a member never seen before; false when the table is full. */
  add(info: MemberInfo, status: MemberStatus, incarnation: number, nowMs: number): boolean {
    if (this.byId.has(info.id)) throw new Error(`table: member ${info.id} already present`);
    assertInc(incarnation);
    if (this.byId.size >= this.limits.membersMax) return false;
    const m: Member = { ...copyInfo(info), status, incarnation, statusChangedAtMs: nowMs };
    this.byId.set(info.id, m);
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
    for (const id of removed) this.byId.delete(id);
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
  }

  private reapAtMs(m: Member): number {
    return m.statusChangedAtMs + (m.status === 'left' ? this.limits.leftReapMs : this.limits.failedReapMs);
  }

  private noteDown(status: MemberStatus, nowMs: number): void {
    const after = status === 'left' ? this.limits.leftReapMs : this.limits.failedReapMs;
    this.reapCheckAtMs = Math.min(this.reapCheckAtMs, nowMs + after);
  }
}

function assertInc(inc: number): void {
  if (!Number.isSafeInteger(inc) || inc < 0) throw new Error(`table: invalid incarnation ${inc}`);
}
