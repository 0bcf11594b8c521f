// Majority arithmetic over the voter set (etcd-io/raft quorum/majority.go). Only voters count;
// learners and a leader that has removed itself are never part of a quorum.
import type { NodeId } from './types.js';

/** Votes needed for a majority of `voterCount` voters: ⌊n/2⌋ + 1. */
export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index replicated on a majority of voters: sort the voters' match indexes in
 * descending order and take the one at position majority − 1. With no voters the answer is 0,
 * so nothing commits (a configuration without voters is refused upstream anyway).
 */
export function committedIndex(voters: Iterable<NodeId>, matchOf: (id: NodeId) => number): number {
  const matches: number[] = [];
  for (const id of voters) matches.push(matchOf(id));
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[majority(matches.length) - 1] ?? 0;
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** Outcome of an election given the votes received so far (true = granted). Non-voters are ignored. */
export function voteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const need = majority(voters.size);
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  if (granted >= need) return 'won';
  // Everyone not yet heard from could still grant; if even that is not enough, we lost.
  if (voters.size - rejected < need) return 'lost';
  return 'pending';
}

/** Whether the voters for which `has` is true form a majority. */
export function hasQuorum(voters: ReadonlySet<NodeId>, has: (id: NodeId) => boolean): boolean {
  let n = 0;
  for (const id of voters) if (has(id)) n++;
  return voters.size > 0 && n >= majority(voters.size);
}
