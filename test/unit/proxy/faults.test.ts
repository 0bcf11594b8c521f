// The proxy's fault shell (proxy/faults.ts): every injected fault counted, and the bound on
// requests held by a delay at once (past it, a drawn delay is skipped and counted as such).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileFault } from '../../../src/core/routing/fault.js';
import { FAULT_SHELL_LIMITS, Faults } from '../../../src/proxy/faults.js';
import { ProxyMetrics } from '../../../src/proxy/metrics.js';
import type { ProxyUpstream } from '../../../src/proxy/types.js';
import { metricValue } from './harness.js';

const UP: ProxyUpstream = {
  source: 'web',
  destination: 'api',
  bindHost: '127.0.0.1',
  port: 1,
  protocol: 'http',
};
const count = async (m: ProxyMetrics, fault: string): Promise<number> =>
  metricValue(await m.text(), 'mesh_proxy_faults_total', { source: 'web', destination: 'api', fault });

describe('Faults', () => {
  it('counts a delay when drawn, an abort when answered', async () => {
    const m = new ProxyMetrics();
    const f = new Faults(() => 0);
    const both = compileFault({
      delay: { percent: 100, fixedDelayMs: 5 },
      abort: { percent: 100, httpStatus: 503 },
    });
    assert.deepEqual(f.decide(both, UP, m), { delayMs: 5, abort: true });
    assert.equal(await count(m, 'delay'), 1);
    assert.equal(await count(m, 'abort'), 0, 'the caller may still leave during the delay');
    f.aborted(UP, m);
    assert.equal(await count(m, 'abort'), 1);
  });

  it(`holds at most ${FAULT_SHELL_LIMITS.delaysActiveMax} delayed requests; past that a delay is skipped, an abort still applies`, async () => {
    const m = new ProxyMetrics();
    const f = new Faults(() => 0);
    const delay = compileFault({ delay: { percent: 100, fixedDelayMs: 5 } });
    for (let i = 0; i < FAULT_SHELL_LIMITS.delaysActiveMax; i++) {
      assert.equal(f.decide(delay, UP, m).delayMs, 5);
      f.held();
    }
    assert.deepEqual(f.decide(delay, UP, m), { delayMs: 0, abort: false });
    const both = compileFault({
      delay: { percent: 100, fixedDelayMs: 5 },
      abort: { percent: 100, httpStatus: 503 },
    });
    assert.deepEqual(f.decide(both, UP, m), { delayMs: 0, abort: true });
    assert.equal(await count(m, 'delay_skipped'), 2);
    f.released();
    assert.equal(f.active, FAULT_SHELL_LIMITS.delaysActiveMax - 1);
    assert.equal(f.decide(delay, UP, m).delayMs, 5, 'a slot freed is used again');
  });
});
