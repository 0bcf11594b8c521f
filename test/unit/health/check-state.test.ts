// The check threshold machine (Consul's success_before_passing / failures_before_critical), by
// example and by property against a plain model with unbounded counters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  applyResult,
  CHECK_OUTPUT_BYTES_MAX,
  type CheckProgress,
  initialProgress,
  threshold,
  truncateOutput,
} from '../../../src/core/catalog/check-state.js';
import type { CheckDefinition, CheckStatus } from '../../../src/core/catalog/types.js';

function def(over: Partial<CheckDefinition> = {}): CheckDefinition {
  return {
    id: 'c1',
    name: 'c1',
    serviceId: 'web',
    spec: { type: 'tcp', address: '127.0.0.1:1' },
    intervalMs: 1000,
    timeoutMs: 500,
    successBeforePassing: 0,
    failuresBeforeCritical: 0,
    initialStatus: 'critical',
    ...over,
  };
}

function run(d: CheckDefinition, statuses: CheckStatus[]): CheckProgress[] {
  const trace: CheckProgress[] = [];
  let p = initialProgress(d);
  for (const [i, status] of statuses.entries()) {
    p = applyResult(p, { status, output: `r${i}` }, d);
    trace.push(p);
  }
  return trace;
}

describe('check-state by example', () => {
  it('starts at the initial status with empty output', () => {
    assert.deepEqual(initialProgress(def({ initialStatus: 'warning' })), {
      status: 'warning',
      output: '',
      successes: 0,
      failures: 0,
    });
  });

  it('thresholds of 0 and 1 both change the status at once', () => {
    for (const n of [0, 1]) {
      const d = def({ successBeforePassing: n, failuresBeforeCritical: n });
      assert.deepEqual(
        run(d, ['passing', 'critical', 'passing']).map((p) => p.status),
        ['passing', 'critical', 'passing'],
      );
    }
  });

  it('turns passing only after successBeforePassing consecutive passes', () => {
    const d = def({ successBeforePassing: 3 });
    const trace = run(d, ['passing', 'passing', 'critical', 'passing', 'passing', 'passing']);
    assert.deepEqual(
      trace.map((p) => p.status),
      ['critical', 'critical', 'critical', 'critical', 'critical', 'passing'],
    );
    // Output follows every result even while the threshold holds the status back.
    assert.deepEqual(
      trace.map((p) => p.output),
      ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'],
    );
  });

  it('turns critical only after failuresBeforeCritical consecutive failures', () => {
    const d = def({ failuresBeforeCritical: 2, initialStatus: 'passing' });
    assert.deepEqual(
      run(d, ['critical', 'passing', 'critical', 'critical']).map((p) => p.status),
      ['passing', 'passing', 'passing', 'critical'],
    );
  });

  it('a warning shows at once and resets both counters', () => {
    const d = def({ successBeforePassing: 2, failuresBeforeCritical: 2, initialStatus: 'passing' });
    const trace = run(d, ['critical', 'warning', 'critical', 'passing', 'warning', 'passing', 'passing']);
    assert.deepEqual(
      trace.map((p) => [p.status, p.successes, p.failures]),
      [
        ['passing', 0, 1],
        ['warning', 0, 0],
        ['warning', 0, 1], // one failure after the warning is not yet two in a row
        ['warning', 1, 0],
        ['warning', 0, 0],
        ['warning', 1, 0],
        ['passing', 2, 0],
      ],
    );
  });

  it('does not mutate its argument', () => {
    const d = def({ successBeforePassing: 2 });
    const p = Object.freeze(initialProgress(d));
    const next = applyResult(p, { status: 'passing', output: 'ok' }, d);
    assert.notEqual(next, p);
    assert.deepEqual(p, { status: 'critical', output: '', successes: 0, failures: 0 });
  });

  it('rejects a negative or fractional threshold', () => {
    assert.throws(() => initialProgress(def({ successBeforePassing: -1 })), /successBeforePassing/);
    assert.throws(() => initialProgress(def({ failuresBeforeCritical: 1.5 })), /failuresBeforeCritical/);
  });

  it('truncates long output to CHECK_OUTPUT_BYTES_MAX bytes', () => {
    const d = def();
    const p = applyResult(initialProgress(d), { status: 'passing', output: 'é'.repeat(5000) }, d);
    assert.ok(Buffer.byteLength(p.output) <= CHECK_OUTPUT_BYTES_MAX);
    assert.ok(p.output.endsWith('…'));
  });
});

const statusArb = fc.constantFrom<CheckStatus>('passing', 'warning', 'critical');
/** Any code point, or a lone surrogate (which UTF-8 encodes as the 3 bytes of U+FFFD). */
const unitArb = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
);
const defArb = fc
  .record({
    successBeforePassing: fc.nat(5),
    failuresBeforeCritical: fc.nat(5),
    initialStatus: statusArb,
  })
  .map((o) => def(o));

describe('check-state properties', () => {
  it('N ≥ successBeforePassing consecutive passes always end passing, after any history', () => {
    fc.assert(
      fc.property(defArb, fc.array(statusArb, { maxLength: 30 }), fc.nat(4), (d, history, extra) => {
        const passes = Array<CheckStatus>(threshold(d.successBeforePassing) + extra).fill('passing');
        const trace = run(d, [...history, ...passes]);
        assert.equal(trace.at(-1)?.status, 'passing');
      }),
    );
  });

  it('N ≥ failuresBeforeCritical consecutive failures always end critical, after any history', () => {
    fc.assert(
      fc.property(defArb, fc.array(statusArb, { maxLength: 30 }), fc.nat(4), (d, history, extra) => {
        const fails = Array<CheckStatus>(threshold(d.failuresBeforeCritical) + extra).fill('critical');
        const trace = run(d, [...history, ...fails]);
        assert.equal(trace.at(-1)?.status, 'critical');
      }),
    );
  });

  it('the status changes only on a threshold (or a warning), exactly as a model with plain counters', () => {
    fc.assert(
      fc.property(defArb, fc.array(statusArb, { maxLength: 60 }), (d, results) => {
        let p = initialProgress(d);
        let status = d.initialStatus;
        let passRun = 0;
        let failRun = 0;
        for (const [i, r] of results.entries()) {
          const before = p.status;
          p = applyResult(p, { status: r, output: `o${i}` }, d);
          if (r === 'passing') {
            passRun++;
            failRun = 0;
            if (passRun >= threshold(d.successBeforePassing)) status = 'passing';
          } else if (r === 'critical') {
            failRun++;
            passRun = 0;
            if (failRun >= threshold(d.failuresBeforeCritical)) status = 'critical';
          } else {
            passRun = 0;
            failRun = 0;
            status = 'warning';
          }
          assert.equal(p.status, status);
          assert.equal(p.output, `o${i}`);
          // A change only ever moves to the status of the result that caused it.
          if (p.status !== before) assert.equal(p.status, r);
          // Counters stay within their thresholds.
          assert.ok(p.successes <= threshold(d.successBeforePassing));
          assert.ok(p.failures <= threshold(d.failuresBeforeCritical));
        }
      }),
    );
  });

  it('truncateOutput keeps a well-formed prefix within the byte bound and leaves short text alone', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: unitArb, maxLength: 300 }),
        fc.integer({ min: 3, max: 200 }),
        (s, max) => {
          const t = truncateOutput(s, max);
          // A Buffer round trip replaces unpaired surrogates with U+FFFD, as truncateOutput must.
          const wellFormed = Buffer.from(s, 'utf8').toString('utf8');
          assert.equal(Buffer.from(t, 'utf8').toString('utf8'), t, 'no unpaired surrogates left');
          if (Buffer.byteLength(s) <= max) {
            assert.equal(t, wellFormed);
          } else {
            assert.ok(Buffer.byteLength(t) <= max, `${Buffer.byteLength(t)} > ${max}`);
            assert.ok(t.endsWith('…'));
            assert.ok(wellFormed.startsWith(t.slice(0, -1)));
          }
        },
      ),
    );
  });
});
