// The proxy benchmark's stall watch: the watcher's loop on a scripted clock (what it notes and what
// it drops), the figures taken from it, and a real watch of this machine that reports and ends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allowedCpus,
  cpuTicks,
  stallSummary,
  watchesSummary,
  watchStalls,
} from '../../../cluster-sim/bench/stall.js';
import { watchLoop } from '../../../cluster-sim/bench/stall-watcher.js';

/** A clock whose sleeps take 1 ms, plus `lateMs` on the passes given. */
function scripted(late: ReadonlyMap<number, number>): { now: () => number; sleep: (ms: number) => void } {
  let t = 0;
  let pass = 0;
  return {
    now: () => t,
    sleep: (ms) => {
      t += ms + (late.get(pass) ?? 0);
      pass++;
    },
  };
}

describe('bench stall watcher loop', () => {
  it('notes the late wake-ups, when each was due, and nothing else', () => {
    const clock = scripted(
      new Map([
        [10, 0.1],
        [20, 3],
        [30, 0.5],
      ]),
    );
    const r = watchLoop({ secs: 0.1, minMs: 0.25, cap: 100, originMs: 1_000_000, ...clock });
    assert.deepEqual(
      r.late.map((l) => [l.atMs, Math.round(l.lateMs * 1_000) / 1_000]),
      [
        [1_000_000 + 21.1, 3],
        [1_000_000 + 34.1, 0.5],
      ],
    );
    assert.equal(r.dropped, 0);
    // 100 ms of 1 ms sleeps, 3.6 ms of them late: 97 wake-ups.
    assert.equal(r.wakes, 97);
  });

  it('keeps at most cap notes and counts the rest', () => {
    const clock = scripted(new Map(Array.from({ length: 50 }, (_, i) => [i, 2] as const)));
    const r = watchLoop({ secs: 1, minMs: 0.25, cap: 10, originMs: 0, ...clock });
    assert.equal(r.late.length, 10);
    assert.equal(r.dropped, 40);
  });

  it('ends after secs even when the clock never runs late', () => {
    const r = watchLoop({ secs: 2, minMs: 0.25, cap: 10, originMs: 0, ...scripted(new Map()) });
    assert.equal(r.wakes, 2_000);
    assert.equal(r.late.length, 0);
  });
});

describe('bench stall figures', () => {
  it('counts the stalls due within the window only, per second of it', () => {
    const late = [
      { atMs: 500, lateMs: 9 }, // before the window
      { atMs: 1_200, lateMs: 0.5 }, // not a stall
      { atMs: 1_500, lateMs: 3 },
      { atMs: 2_900, lateMs: 7 },
      { atMs: 3_000, lateMs: 20 }, // at the window's end: outside
    ];
    assert.deepEqual(stallSummary({ late }, 1_000, 3_000), { perSec: 1, msPerSec: 5, largestMs: 7 });
    assert.throws(() => stallSummary({ late }, 1_000, 1_000), /empty window/);
  });

  it('reads the CPUs this process may use', () => {
    assert.deepEqual(allowedCpus('Name:\tnode\nCpus_allowed_list:\t0-1\n'), [0, 1]);
    assert.deepEqual(allowedCpus('Cpus_allowed_list:\t2-3,6\n'), [2, 3, 6]);
    assert.equal(allowedCpus('Cpus_allowed_list:\tx\n'), undefined);
    assert.equal(allowedCpus('Name:\tnode\n'), undefined);
  });

  it("sums up a run's watches: how they ran, the median and range of stalls a second, the longest", () => {
    const w = { wakes: 10_000, late: [], dropped: 0, cpus: 2, pinned: true, realtime: true };
    assert.equal(
      watchesSummary([w, { ...w, dropped: 3 }], [4, 1, 9], [2.5, 16, 3]),
      '(a 1 ms sleeper on each of 2 CPUs, pinned, at real-time priority): median 4.0 a second over rounds, ' +
        'range 1.0–9.0, largest 16.0 ms; 3 late wake-ups past the cap not counted',
    );
    assert.match(
      watchesSummary([{ ...w, pinned: false, realtime: false }], [2], [1]),
      /not pinned, at normal priority: busy threads can delay it too\): median 2\.0 .*largest 1\.0 ms$/,
    );
    // An even count: the median is the mean of the middle two, as in the bench's result line.
    assert.match(watchesSummary([w], [1, 2, 4, 9], [1]), /median 3\.0 a second/);
    assert.equal(watchesSummary([], [], []), '(no round was watched)');
  });

  it('reads the stolen CPU time from /proc/stat', () => {
    const stat = 'cpu  100 5 20 800 10 0 3 12 0 0\ncpu0 50 2 10 400 5 0 1 6 0 0\n';
    assert.deepEqual(cpuTicks(stat), { total: 950, steal: 12 });
  });
});

describe('bench watchStalls', () => {
  it('watches every CPU for the time asked and reports the late wake-ups in order', async () => {
    const t0 = Date.now();
    const w = await watchStalls(0.3);
    assert.ok(w.cpus >= 1);
    // A 1 ms sleeper wakes at most ~300 times in 0.3 s on each CPU, and at least a few times.
    assert.ok(w.wakes > w.cpus && w.wakes <= w.cpus * 310, `wakes ${w.wakes} on ${w.cpus} CPUs`);
    for (let i = 1; i < w.late.length; i++) assert.ok((w.late[i]?.atMs ?? 0) >= (w.late[i - 1]?.atMs ?? 0));
    for (const l of w.late) assert.ok(l.atMs >= t0 - 1_000 && l.lateMs >= 0.25, JSON.stringify(l));
  });

  it('rejects a watch out of bounds', async () => {
    await assert.rejects(watchStalls(0), /secs must be in/);
    await assert.rejects(watchStalls(1_000), /secs must be in/);
  });
});
