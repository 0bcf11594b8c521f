// The cluster configuration: voters and learners. Single-server changes (Raft thesis §4.1) take
// effect as soon as the entry is in the log, so the configuration is a function of the snapshot's
// configuration plus every conf entry after it; it is re-derived whenever the log is truncated.
import type { ConfChange, ConfState, Entry, NodeId } from './types.js';

export class Conf {
  readonly voters: Set<NodeId>;
  readonly learners: Set<NodeId>;

  constructor(cs: ConfState) {
    this.voters = new Set(cs.voters);
    this.learners = new Set(cs.learners);
    for (const l of this.learners) {
      if (this.voters.has(l)) throw new Error(`raft: ${l} is both voter and learner`);
    }
  }

  has(id: NodeId): boolean {
    return this.voters.has(id) || this.learners.has(id);
  }

  state(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  /** Why the change cannot apply to this configuration, or undefined if it can. */
  check(cc: ConfChange): string | undefined {
    switch (cc.op) {
      case 'add-learner':
        if (cc.node === '') return 'node id is empty';
        if (this.has(cc.node)) return `${cc.node} is already a member`;
        return undefined;
      case 'promote':
        if (!this.learners.has(cc.node)) return `${cc.node} is not a learner`;
        return undefined;
      case 'remove':
        if (!this.has(cc.node)) return `${cc.node} is not a member`;
        if (this.voters.has(cc.node) && this.voters.size === 1) return 'cannot remove the last voter';
        return undefined;
    }
  }

  apply(cc: ConfChange): void {
    const bad = this.check(cc);
    if (bad !== undefined) throw new Error(`raft: invalid conf change ${cc.op} ${cc.node}: ${bad}`);
    switch (cc.op) {
      case 'add-learner':
        this.learners.add(cc.node);
        return;
      case 'promote':
        this.learners.delete(cc.node);
        this.voters.add(cc.node);
        return;
      case 'remove':
        this.learners.delete(cc.node);
        this.voters.delete(cc.node);
        return;
    }
  }
}

/**
 * The configuration after `base` and the conf entries of `entries` (up to `uptoIndex`). A conf
 * entry that does not apply (possible only through a bug, since the leader validates) throws.
 */
export function deriveConf(base: ConfState, entries: readonly Entry[], uptoIndex = Infinity): Conf {
  const c = new Conf(base);
  for (const e of entries) {
    if (e.index > uptoIndex) break;
    if (e.type === 'conf') {
      if (e.conf === undefined) throw new Error(`raft: conf entry ${e.index} without a change`);
      c.apply(e.conf);
    }
  }
  return c;
}

/** Index of the last conf entry in `entries`, or 0. */
export function lastConfIndex(entries: readonly Entry[]): number {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i] as Entry;
    if (e.type === 'conf') return e.index;
  }
  return 0;
}
