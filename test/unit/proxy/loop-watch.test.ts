// The proxy thread's pause metrics: a blocked event loop and a garbage collection show on the
// agent's Prometheus endpoint, where an operator looks for why a request was slow.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Registry } from 'prom-client';
import { LOOP_WATCH_LIMITS, LoopWatch } from '../../../src/proxy/loop-watch.js';

/** The value of one sample line of `text` (exact name and labels), or NaN. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('proxy loop watch', () => {
  it('observes how late each tick came, from when the previous one ran', async () => {
    let t = 1_000;
    const registry = new Registry();
    const w = new LoopWatch(registry, () => t);
    w.start();
    w.setActive(true); // due an interval from now (t)
    try {
      t += LOOP_WATCH_LIMITS.intervalMs; // on time
      w.tick();
      t += LOOP_WATCH_LIMITS.intervalMs + 40; // blocked 40 ms
      w.tick();
      t += LOOP_WATCH_LIMITS.intervalMs; // on time again: the block is not counted twice
      w.tick();
      const text = await registry.metrics();
      assert.equal(sample(text, 'mesh_proxy_event_loop_delay_seconds_count'), 3);
      assert.equal(sample(text, 'mesh_proxy_event_loop_delay_seconds_bucket{le="0.025"}'), 2);
      assert.equal(sample(text, 'mesh_proxy_event_loop_delay_seconds_bucket{le="0.05"}'), 3);
      assert.ok(Math.abs(sample(text, 'mesh_proxy_event_loop_delay_seconds_sum') - 0.04) < 1e-9);
    } finally {
      w.stop();
    }
  });

  it('shows a real block of the thread, and a garbage collection by its kind', async () => {
    const registry = new Registry();
    const w = new LoopWatch(registry);
    w.start();
    w.setActive(true);
    try {
      await sleep(3 * LOOP_WATCH_LIMITS.intervalMs);
      const until = performance.now() + 80;
      while (performance.now() < until) {
        // the thread is busy: every request would wait
      }
      setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      await sleep(3 * LOOP_WATCH_LIMITS.intervalMs);
      const text = await registry.metrics();
      const total = sample(text, 'mesh_proxy_event_loop_delay_seconds_count');
      const under = sample(text, 'mesh_proxy_event_loop_delay_seconds_bucket{le="0.05"}');
      assert.ok(total - under >= 1, `a tick at least 50 ms late: ${under} of ${total} under`);
      assert.ok(sample(text, 'mesh_proxy_gc_pause_seconds_count{kind="major"}') >= 1, text);
    } finally {
      w.stop();
    }
  });

  it('samples the loop only while a connection is open (and a linger after), from start to stop', () => {
    let t = 0;
    const w = new LoopWatch(new Registry(), () => t);
    w.setActive(true);
    assert.equal(w.sampling, false, 'not before start');
    w.start();
    assert.equal(w.sampling, true, 'a connection was already open');
    w.setActive(false);
    t += LOOP_WATCH_LIMITS.lingerMs / 2;
    w.tick();
    assert.equal(w.sampling, true, 'still within the linger');
    w.setActive(true);
    t += LOOP_WATCH_LIMITS.lingerMs;
    w.tick();
    assert.equal(w.sampling, true, 'a connection opened again within the linger');
    w.setActive(false);
    t += LOOP_WATCH_LIMITS.lingerMs;
    w.tick();
    assert.equal(w.sampling, false, 'the linger ran out with no connection open');
    w.setActive(true);
    assert.equal(w.sampling, true);
    w.stop();
    assert.equal(w.sampling, false);
    w.setActive(true);
    assert.equal(w.sampling, false, 'not after stop');
  });
});
