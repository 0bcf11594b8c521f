// The rate limiter's buckets across snapshots (a scripted clock): a new snapshot with the same
// limits keeps them (a catalog change must not refill them), a changed limit or route starts a full
// bucket, and a removed instance's buckets go. Also what rateLimitsOf reads from an entry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InstanceRateLimits } from '../../../src/core/routing/rate-limit.js';
import type { RequestInfo } from '../../../src/core/routing/types.js';
import { RateLimiter } from '../../../src/proxy/rate-limiter.js';
import { EMPTY_SNAPSHOT } from '../../../src/proxy/routing.js';
import { rateLimitsOf } from '../../../src/proxy/snapshot.js';
import type { ProxyLocalInstance, ProxySnapshot } from '../../../src/proxy/types.js';

const req = (path: string) => (): RequestInfo => ({ path, method: 'GET', query: '', headers: {} });
const instance = (rateLimits: InstanceRateLimits, id = 'api-1'): ProxyLocalInstance => ({
  id,
  service: 'api',
  host: '127.0.0.1',
  port: 1,
  protocol: 'http',
  requestTimeoutMs: 1_000,
  connectTimeoutMs: 1_000,
  rateLimits,
});
const snapshot = (local: ProxyLocalInstance[]): ProxySnapshot => ({ ...EMPTY_SNAPSHOT, local });
const ONE: InstanceRateLimits = {
  instance: { requestsPerSecond: 1, requestsMaxBurst: 1 },
  routes: [{ match: { pathPrefix: '/a/' }, requestsPerSecond: 1, requestsMaxBurst: 1 }],
};

describe('RateLimiter', () => {
  it('keeps a bucket across snapshots with the same limit, and starts a new one when it changes', () => {
    let nowMs = 0;
    const rl = new RateLimiter(() => nowMs);
    const inst = instance(ONE);
    rl.apply(snapshot([inst]));
    assert.equal(rl.take(inst, req('/x')), undefined, 'the burst of 1');
    assert.equal(rl.take(inst, req('/x'))?.limit.requestsPerSecond, 1, 'then refused');
    // A new snapshot (say, a health change elsewhere) with equal limits: still empty.
    const same = instance({ ...ONE, routes: [...ONE.routes] });
    rl.apply(snapshot([same]));
    assert.notEqual(rl.take(same, req('/x')), undefined, 'not refilled by the snapshot');
    // The route's bucket is its own, and reports its path.
    assert.equal(rl.take(same, req('/a/1')), undefined);
    assert.equal(rl.take(same, req('/a/2'))?.route, '/a/*');
    // A changed instance limit starts full.
    const raised = instance({ ...ONE, instance: { requestsPerSecond: 1, requestsMaxBurst: 2 } });
    rl.apply(snapshot([raised]));
    assert.equal(rl.take(raised, req('/x')), undefined);
    assert.equal(rl.take(raised, req('/x')), undefined);
    assert.notEqual(rl.take(raised, req('/x')), undefined);
    // A route that takes another's place (same numbers, other path) does not inherit its bucket.
    const moved = instance({
      ...raised.rateLimits,
      routes: [{ ...ONE.routes[0], match: { pathPrefix: '/b/' } }],
    } as InstanceRateLimits);
    rl.apply(snapshot([moved]));
    assert.equal(rl.take(moved, req('/b/1')), undefined);
    // Time refills: one token a second.
    nowMs += 1_000;
    assert.equal(rl.take(moved, req('/x')), undefined);
    // Gone with the instance: a new instance of the same id starts full.
    rl.apply(snapshot([]));
    assert.equal(rl.take(moved, req('/x')), undefined, 'no limits known for it: not limited');
    rl.apply(snapshot([moved]));
    assert.equal(rl.take(moved, req('/x')), undefined);
    assert.equal(rl.take(moved, req('/x')), undefined);
  });
});

describe('rateLimitsOf', () => {
  it('reads a service-defaults entry: the burst defaults to the rate; no limits, no object', () => {
    assert.deepEqual(
      rateLimitsOf({
        rateLimits: {
          instanceLevel: {
            requestsPerSecond: 10,
            routes: [{ pathExact: '/login', requestsPerSecond: 2, requestsMaxBurst: 4 }],
          },
        },
      }),
      {
        instance: { requestsPerSecond: 10, requestsMaxBurst: 10 },
        routes: [{ match: { pathExact: '/login' }, requestsPerSecond: 2, requestsMaxBurst: 4 }],
      },
    );
    assert.deepEqual(
      rateLimitsOf({
        rateLimits: { instanceLevel: { routes: [{ pathPrefix: '/r/', requestsPerSecond: 1 }] } },
      }),
      {
        routes: [{ match: { pathPrefix: '/r/' }, requestsPerSecond: 1, requestsMaxBurst: 1 }],
      },
    );
    assert.equal(rateLimitsOf({ protocol: 'http' }), undefined);
    assert.equal(rateLimitsOf(undefined), undefined);
  });
});
