// The proxy benchmark's stall watch: what it counts as a stall, and a real watch of this machine
// that reports and ends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stallSummary, watchStalls } from '../../../cluster-sim/bench/stall.js';

describe('bench stallSummary', () => {
  it('counts only stalls, per second of the watch', () => {
    const s = stallSummary(
      {
        wakes: 4_000,
        cpus: 2,
        pinned: true,
        late: [
          { atMs: 1, lateMs: 0.5 },
          { atMs: 2, lateMs: 3 },
          { atMs: 3, lateMs: 7 },
        ],
      },
      2,
    );
    assert.deepEqual(s, { perSec: 1, msPerSec: 5, largestMs: 7 });
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
