// The relay's coarse timeouts, driven by hand with a fake clock: a watched connection hears how
// long it has been quiet, activity restarts that count, and the interval stops with nothing watched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ticker, type Watched } from '../../../src/proxy/h1/ticker.js';

function watched(): Watched & { heard: number[] } {
  const w = {
    active: false,
    heard: [] as number[],
    onTick(quietMs: number) {
      w.heard.push(quietMs);
    },
  };
  return w;
}

describe('Ticker', () => {
  it('tells a quiet connection how long it has been quiet, and restarts the count on activity', () => {
    let now = 1_000;
    const t = new Ticker(100, () => now);
    const w = watched();
    t.watch(w);
    now += 100;
    t.tick();
    now += 100;
    t.tick();
    assert.deepEqual(w.heard, [100, 200]);
    w.active = true;
    now += 100;
    t.tick();
    // The active tick is not reported; quiet counts again from it.
    assert.deepEqual(w.heard, [100, 200]);
    assert.equal(w.active, false);
    now += 250;
    t.tick();
    assert.deepEqual(w.heard, [100, 200, 250]);
    t.stop();
  });

  it('lets a connection unwatch itself from its own tick (a timeout closing it)', () => {
    let now = 0;
    const t = new Ticker(100, () => now);
    const a = watched();
    const b = watched();
    a.onTick = () => t.unwatch(a);
    t.watch(a);
    t.watch(b);
    now = 100;
    t.tick();
    assert.equal(t.size, 1);
    assert.deepEqual(b.heard, [100]);
    t.unwatch(b);
    assert.equal(t.size, 0);
    t.stop();
  });
});
