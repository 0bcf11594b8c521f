// W3C trace context at the proxy: a caller's trace continues through the mesh with a new span per
// hop; anything unusable starts a new sampled trace instead of being passed on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import { nextTraceparent, traceIdOf } from '../../../src/proxy/trace.js';

const W3C = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

function parts(tp: string): { trace: string; span: string; flags: string } {
  assert.match(tp, W3C);
  const [, trace, span, flags] = tp.split('-') as [string, string, string, string];
  return { trace, span, flags };
}

describe('nextTraceparent', () => {
  it('keeps the trace id and flags of a valid header and makes a new span id', () => {
    for (const flags of ['01', '00']) {
      const out = parts(nextTraceparent(`00-${TRACE}-${SPAN}-${flags}`));
      assert.equal(out.trace, TRACE);
      assert.equal(out.flags, flags);
      assert.notEqual(out.span, SPAN);
      assert.notEqual(out.span, '0'.repeat(16));
    }
  });

  it('continues a header with surrounding spaces, the first of several, and a later version by its first fields', () => {
    assert.equal(parts(nextTraceparent(` 00-${TRACE}-${SPAN}-01 `)).trace, TRACE);
    assert.equal(parts(nextTraceparent([`00-${TRACE}-${SPAN}-01`, 'garbage'])).trace, TRACE);
    // W3C §4.3: a version this proxy does not know is parsed by its first four fields, sent as 00.
    const later = parts(nextTraceparent(`01-${TRACE}-${SPAN}-01-what-comes-next`));
    assert.equal(later.trace, TRACE);
    assert.equal(later.flags, '01');
  });

  it('makes a new span id on every hop', () => {
    const spans = new Set<string>();
    for (let i = 0; i < 1_000; i++) spans.add(parts(nextTraceparent(`00-${TRACE}-${SPAN}-01`)).span);
    assert.equal(spans.size, 1_000);
  });

  it('starts a new sampled trace for absent, malformed, all-zero or version ff headers', () => {
    const bad = [
      undefined,
      '',
      'garbage',
      `00-${TRACE}-${SPAN}`,
      `00-${TRACE}-${SPAN}-01-extra`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-0g`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      // Upper-case hex makes a trace id invalid (W3C §3.2.2.3): a new trace, not a continued one.
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE}-${SPAN.toUpperCase()}-01`,
      [],
    ];
    for (const h of bad) {
      const out = parts(nextTraceparent(h));
      assert.notEqual(out.trace, TRACE, JSON.stringify(h));
      assert.notEqual(out.trace, '0'.repeat(32));
      assert.notEqual(out.span, '0'.repeat(16));
      assert.equal(out.flags, '01', JSON.stringify(h));
    }
  });

  it('always answers in the W3C format, whatever comes in (seeded)', () => {
    const rng = new SeededRng(7);
    const chars = '0123456789abcdefABCDEF-fx ';
    for (let i = 0; i < 2_000; i++) {
      let h = '';
      const len = rng.int(70);
      for (let j = 0; j < len; j++) h += chars[rng.int(chars.length)];
      const out = nextTraceparent(h);
      assert.match(out, W3C, JSON.stringify(h));
      assert.equal(traceIdOf(out), parts(out).trace);
    }
  });

  it('traceIdOf reads the trace id, or gives empty for anything else', () => {
    assert.equal(traceIdOf(`00-${TRACE}-${SPAN}-01`), TRACE);
    assert.equal(traceIdOf('nope'), '');
  });
});
