// The proxy benchmark reads the agents' pause histograms from their Prometheus text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { buckets } from '../../../cluster-sim/bench/pauses.js';

describe('bench pause metrics', () => {
  const text = [
    '# TYPE mesh_proxy_event_loop_delay_seconds histogram',
    'mesh_proxy_event_loop_delay_seconds_bucket{le="0.01"} 95',
    'mesh_proxy_event_loop_delay_seconds_bucket{le="0.025"} 99',
    'mesh_proxy_event_loop_delay_seconds_bucket{le="+Inf"} 100',
    'mesh_proxy_event_loop_delay_seconds_sum 0.4',
    'mesh_proxy_gc_pause_seconds_bucket{le="0.01",kind="major"} 2',
    'mesh_proxy_gc_pause_seconds_bucket{le="+Inf",kind="major"} 3',
    'mesh_proxy_gc_pause_seconds_bucket{kind="minor",le="0.01"} 40',
  ].join('\n');

  it('reads a histogram’s cumulative buckets by bound', () => {
    assert.deepEqual(
      [...buckets(text, 'mesh_proxy_event_loop_delay_seconds')],
      [
        ['0.01', 95],
        ['0.025', 99],
        ['+Inf', 100],
      ],
    );
  });

  it('reads one label set only, wherever le stands among the labels', () => {
    assert.deepEqual(
      [...buckets(text, 'mesh_proxy_gc_pause_seconds', 'kind="major"')],
      [
        ['0.01', 2],
        ['+Inf', 3],
      ],
    );
    assert.deepEqual([...buckets(text, 'mesh_proxy_gc_pause_seconds', 'kind="minor"')], [['0.01', 40]]);
    assert.equal(buckets(text, 'mesh_proxy_gc_pause_seconds').size, 0);
    assert.equal(buckets('', 'mesh_proxy_gc_pause_seconds').size, 0);
  });

  it('reads what a real registry writes', async () => {
    const registry = new Registry();
    const h = new Histogram({
      name: 'p',
      help: 'p',
      labelNames: ['kind'],
      buckets: [0.01],
      registers: [registry],
    });
    h.observe({ kind: 'major' }, 0.02);
    assert.deepEqual(
      [...buckets(await registry.metrics(), 'p', 'kind="major"')],
      [
        ['0.01', 0],
        ['+Inf', 1],
      ],
    );
  });
});
