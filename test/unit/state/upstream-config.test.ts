// service-defaults upstreamConfig (Consul's shape): the callers' circuit breakers, checked field by
// field, and the limits a destination gets (its override's, else the defaults').
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KINDS } from '../../../src/core/state/kinds/index.js';
import { upstreamLimitsFor } from '../../../src/core/state/kinds/upstream-config.js';

const sd = KINDS['service-defaults']!;
const fields = (spec: unknown) => sd.validate(spec).map((e) => e.field);

describe('service-defaults upstreamConfig', () => {
  it('accepts limits in the defaults and per destination', () => {
    assert.deepEqual(
      sd.validate({
        protocol: 'http',
        upstreamConfig: {
          defaults: { limits: { maxConnections: 100, maxPendingRequests: 0, maxConcurrentRequests: 200 } },
          overrides: [
            { name: 'api', limits: { maxConcurrentRequests: 10 } },
            { name: 'db', limits: {} },
            { name: 'cache' },
          ],
        },
      }),
      [],
    );
    assert.deepEqual(sd.validate({ upstreamConfig: {} }), []);
  });

  it('names each bad field, and refuses two overrides of one destination', () => {
    assert.deepEqual(fields({ upstreamConfig: { defaults: { limits: { maxConnections: 0 } } } }), [
      'upstreamConfig.defaults.limits.maxConnections',
    ]);
    assert.deepEqual(fields({ upstreamConfig: { defaults: { limits: { maxPendingRequests: -1 } } } }), [
      'upstreamConfig.defaults.limits.maxPendingRequests',
    ]);
    assert.deepEqual(
      fields({ upstreamConfig: { overrides: [{ name: 'api', limits: { maxConcurrentRequests: 1.5 } }] } }),
      ['upstreamConfig.overrides[0].limits.maxConcurrentRequests'],
    );
    assert.deepEqual(fields({ upstreamConfig: { defaults: { limits: { maxRequests: 5 } } } }), [
      'upstreamConfig.defaults.limits.maxRequests',
    ]);
    // Consul's other upstream fields live elsewhere here: refused by name, not ignored.
    assert.deepEqual(fields({ upstreamConfig: { defaults: { passiveHealthCheck: {} } } }), [
      'upstreamConfig.defaults.passiveHealthCheck',
    ]);
    assert.deepEqual(fields({ upstreamConfig: { defaults: { name: 'api' } } }), [
      'upstreamConfig.defaults.name',
    ]);
    assert.deepEqual(fields({ upstreamConfig: { overrides: [{ limits: {} }] } }), [
      'upstreamConfig.overrides[0].name',
    ]);
    assert.deepEqual(fields({ upstreamConfig: { overrides: [{ name: 'API' }] } }), [
      'upstreamConfig.overrides[0].name',
    ]);
    assert.deepEqual(fields({ upstreamConfig: { overrides: {} } }), ['upstreamConfig.overrides']);
    assert.deepEqual(fields({ upstreamConfig: 'x' }), ['upstreamConfig']);
    const dup = sd.validate({
      upstreamConfig: { overrides: [{ name: 'api' }, { name: 'db' }, { name: 'api' }] },
    });
    assert.deepEqual(dup, [
      { field: 'upstreamConfig.overrides[2].name', message: '"api" is already overridden at overrides[0]' },
    ]);
    const many = Array.from({ length: 257 }, (_, i) => ({ name: `s${i}` }));
    assert.deepEqual(fields({ upstreamConfig: { overrides: many } }), ['upstreamConfig.overrides']);
  });

  it("gives a destination its override's limits as a whole, else the defaults', else none", () => {
    const config = {
      defaults: { limits: { maxConnections: 100, maxPendingRequests: 10 } },
      overrides: [
        { name: 'api', limits: { maxConcurrentRequests: 5 } },
        { name: 'db' },
        { name: 'open', limits: {} },
      ],
    };
    assert.deepEqual(upstreamLimitsFor(config, 'api'), { maxConcurrentRequests: 5 });
    assert.deepEqual(upstreamLimitsFor(config, 'db'), { maxConnections: 100, maxPendingRequests: 10 });
    assert.deepEqual(upstreamLimitsFor(config, 'web'), { maxConnections: 100, maxPendingRequests: 10 });
    assert.equal(upstreamLimitsFor(config, 'open'), undefined, 'an empty override lifts the defaults');
    assert.equal(upstreamLimitsFor(undefined, 'api'), undefined);
    assert.equal(upstreamLimitsFor({ overrides: [{ name: 'api' }] }, 'api'), undefined);
  });
});
