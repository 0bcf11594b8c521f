// The small pure parts: majority math, flow control, the in-memory log.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftLog } from '../../../src/core/raft/log.js';
import { Progress } from '../../../src/core/raft/progress.js';
import { committedIndex, majority, voteResult } from '../../../src/core/raft/quorum.js';
import type { Entry } from '../../../src/core/raft/types.js';

const ent = (index: number, term: number): Entry => ({
  index,
  term,
  type: 'normal',
  data: new Uint8Array(0),
});

describe('quorum', () => {
  it('majority of n voters', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
  });

  it('committed index is the highest index on a majority of voters', () => {
    const m = new Map([
      ['a', 5],
      ['b', 3],
      ['c', 9],
      ['l', 100],
    ]);
    assert.equal(
      committedIndex(['a', 'b', 'c'], (id) => m.get(id) ?? 0),
      5,
    );
    assert.equal(
      committedIndex(['a', 'b', 'c', 'd'], (id) => m.get(id) ?? 0),
      3,
    );
    assert.equal(
      committedIndex([], () => 7),
      0,
    );
  });

  it('vote results: won, lost, pending; non-voters ignored', () => {
    const v = new Set(['a', 'b', 'c']);
    assert.equal(voteResult(v, new Map([['a', true]])), 'pending');
    assert.equal(
      voteResult(
        v,
        new Map([
          ['a', true],
          ['b', true],
        ]),
      ),
      'won',
    );
    assert.equal(
      voteResult(
        v,
        new Map([
          ['a', true],
          ['b', false],
          ['c', false],
        ]),
      ),
      'lost',
    );
    assert.equal(
      voteResult(
        v,
        new Map([
          ['a', true],
          ['x', true],
        ]),
      ),
      'pending',
    );
  });
});

describe('progress', () => {
  it('probe sends one append at a time; replicate pipelines up to inflightMax', () => {
    const p = new Progress(11, 2, false);
    assert.equal(p.isPaused(), false);
    p.msgAppFlowPaused = true;
    assert.equal(p.isPaused(), true);
    assert.equal(p.maybeUpdate(10), true);
    p.becomeReplicate();
    assert.equal(p.next, 11);
    p.optimisticUpdate(15);
    p.inflights.add(15);
    p.optimisticUpdate(20);
    p.inflights.add(20);
    assert.equal(p.isPaused(), true);
    p.inflights.freeLE(15);
    assert.equal(p.isPaused(), false);
  });

  it('a rejection falls back using the hint; stale rejections are ignored', () => {
    const p = new Progress(11, 4, false);
    assert.equal(p.maybeDecrTo(7, 3), false, 'not the append we wait for');
    assert.equal(p.maybeDecrTo(10, 3), true);
    assert.equal(p.next, 4);
    p.maybeUpdate(5);
    p.becomeReplicate();
    assert.equal(p.maybeDecrTo(4, 0), false, 'below match: stale');
    assert.equal(p.maybeDecrTo(8, 6), true);
    assert.equal(p.next, 6);
  });

  it('snapshot state pauses until acknowledged, then probes after the snapshot', () => {
    const p = new Progress(3, 4, false);
    p.becomeSnapshot(50);
    assert.equal(p.isPaused(), true);
    p.becomeProbe();
    assert.equal(p.next, 51);
  });
});

describe('raft log', () => {
  it('term lookups across the snapshot boundary', () => {
    const log = new RaftLog({ index: 5, term: 2 }, [ent(6, 2), ent(7, 3)], 6, 5);
    assert.equal(log.firstIndex(), 6);
    assert.equal(log.lastIndex(), 7);
    assert.equal(log.term(5), 2);
    assert.equal(log.term(4), undefined);
    assert.equal(log.term(8), undefined);
    assert.equal(log.isUpToDate(7, 3), true);
    assert.equal(log.isUpToDate(6, 3), false);
    assert.equal(log.isUpToDate(1, 4), true);
  });

  it('finds conflicts and truncates only uncommitted suffixes', () => {
    const log = new RaftLog({ index: 0, term: 0 }, [ent(1, 1), ent(2, 1), ent(3, 2)], 1, 0);
    assert.equal(log.findConflict([ent(2, 1), ent(3, 2)]), 0);
    assert.equal(log.findConflict([ent(2, 1), ent(3, 3), ent(4, 3)]), 3);
    log.append([ent(3, 3), ent(4, 3)]);
    assert.equal(log.lastIndex(), 4);
    assert.equal(log.term(3), 3);
    assert.throws(() => log.append([ent(1, 4)]), /committed/);
    assert.throws(() => log.append([ent(9, 4)]), /gap/);
  });

  it('findConflictByTerm skips entries of larger terms', () => {
    const log = new RaftLog({ index: 0, term: 0 }, [ent(1, 1), ent(2, 1), ent(3, 4), ent(4, 4)], 0, 0);
    assert.equal(log.findConflictByTerm(4, 2), 2);
    assert.equal(log.findConflictByTerm(4, 0), 0);
  });

  it('hands out unstable and committed entries once each', () => {
    const log = new RaftLog({ index: 0, term: 0 }, [], 0, 0);
    log.append([ent(1, 1), ent(2, 1)]);
    assert.deepEqual(
      log.takeUnstable().map((e) => e.index),
      [1, 2],
    );
    assert.deepEqual(log.takeUnstable(), []);
    log.commitTo(2);
    assert.deepEqual(
      log.takeCommitted().map((e) => e.index),
      [1, 2],
    );
    assert.deepEqual(log.takeCommitted(), []);
    assert.throws(() => log.commitTo(3), /beyond/);
  });

  it('compaction keeps nothing before the snapshot', () => {
    const log = new RaftLog({ index: 0, term: 0 }, [ent(1, 1), ent(2, 1), ent(3, 2)], 3, 3);
    log.compact(2);
    assert.equal(log.firstIndex(), 3);
    assert.equal(log.term(2), 1);
    assert.equal(log.entry(2), undefined);
    assert.throws(() => log.slice(2, 3), /compacted/);
  });
});
