// The bound on log records the proxy thread sends the agent's main thread: at most a fixed number a
// second pass; the rest are dropped, counted, and reported in one warning once the second is over.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogFn } from '../../../src/proxy/context.js';
import { LOG_GATE_LIMITS, LogGate } from '../../../src/proxy/log-gate.js';

/** A gate over a recording sink, with a clock the test moves. */
function gate(perSecondMax: number): {
  g: LogGate;
  out: Array<{ level: string; msg: string; fields: Record<string, unknown> }>;
  drops: () => number;
  at: (ms: number) => void;
} {
  const out: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  let nowMs = 0;
  let drops = 0;
  const sink: LogFn = (level, msg, fields) => out.push({ level, msg, fields });
  const g = new LogGate(
    sink,
    () => drops++,
    () => nowMs,
    perSecondMax,
  );
  return { g, out, drops: () => drops, at: (ms) => (nowMs = ms) };
}

describe('proxy log gate', () => {
  it('passes records up to the limit in a second, drops and counts the rest, then reports them', () => {
    const { g, out, drops, at } = gate(3);
    for (let i = 0; i < 5; i++) g.log('info', 'request', { i });
    assert.deepEqual(
      out.map((r) => r.fields.i),
      [0, 1, 2],
    );
    assert.equal(drops(), 2);
    assert.equal(g.droppedNow, 2);
    at(LOG_GATE_LIMITS.windowMs);
    g.log('info', 'request', { i: 5 });
    assert.deepEqual(out[3], {
      level: 'warn',
      msg: 'proxy log records dropped',
      fields: { dropped: 2, limitPerSecond: 3 },
    });
    assert.equal(out[4]?.fields.i, 5, 'a new second passes records again');
    g.stop();
  });

  it('keeps warnings and errors on a budget of their own, so a flood of access logs does not hide them', () => {
    const { g, out } = gate(2);
    for (let i = 0; i < 10; i++) g.log('info', 'request', {});
    g.log('error', 'proxy snapshot rejected', {});
    g.log('warn', 'outbound connection failed', {});
    assert.deepEqual(
      out.map((r) => r.msg),
      ['request', 'request', 'proxy snapshot rejected', 'outbound connection failed'],
    );
    g.stop();
  });

  it('says nothing when nothing was dropped', () => {
    const { g, out, at } = gate(3);
    g.log('info', 'a', {});
    at(5_000);
    g.log('info', 'b', {});
    assert.deepEqual(
      out.map((r) => r.msg),
      ['a', 'b'],
    );
    g.stop();
  });

  it('reports what a burst dropped when its second is over, even if nothing is logged after it', async () => {
    const { g, out, at } = gate(1);
    g.log('info', 'a', {});
    g.log('info', 'b', {});
    at(LOG_GATE_LIMITS.windowMs);
    // The report waits for a timer set at the first drop (one window at most).
    for (let i = 0; i < 60 && out.length < 2; i++) await sleep(50);
    assert.equal(out[1]?.msg, 'proxy log records dropped');
    assert.equal(out[1]?.fields.dropped, 1);
    g.stop();
  });
});

describe('proxy engine logging', () => {
  it('sends its records through the gate and counts what it drops in its metrics', async () => {
    const { ProxyEngine } = await import('../../../src/proxy/engine.js');
    let passed = 0;
    const engine = new ProxyEngine({ connectionsMax: 16, log: () => passed++ });
    // The engine's context is what every request and connection logs through.
    const { ctx } = engine as unknown as { ctx: { log: LogFn } };
    const over = 7;
    for (let i = 0; i < LOG_GATE_LIMITS.recordsPerSecondMax + over; i++) ctx.log('info', 'request', {});
    assert.equal(passed, LOG_GATE_LIMITS.recordsPerSecondMax);
    assert.match(
      await engine.metrics.text(),
      new RegExp(`^mesh_proxy_log_records_dropped_total ${over}$`, 'm'),
    );
    engine.stop();
  });
});
