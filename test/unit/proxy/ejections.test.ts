// The proxy's passive health checks (ejections.ts): which services have one, ejected instances left
// out of the candidates (all kept when all are out), and state dropped with the setting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileChain } from '../../../src/core/routing/chain.js';
import { type Ejection, Ejections } from '../../../src/proxy/ejections.js';
import { concernsInstance } from '../../../src/proxy/h1/forward.js';
import { EMPTY_SNAPSHOT } from '../../../src/proxy/routing.js';
import type { ProxyEndpoint, ProxySnapshot } from '../../../src/proxy/types.js';

const endpoint = (id: string): ProxyEndpoint => ({
  id: `n/${id}`,
  instanceId: id,
  service: 'api',
  inbound: '127.0.0.1:1',
  local: false,
  healthy: true,
  passing: true,
  tags: [],
  meta: {},
});
const A = endpoint('a');
const B = endpoint('b');

function snapshot(passive: object | undefined): ProxySnapshot {
  const lookup = (kind: string, name: string): unknown =>
    kind === 'service-resolver' && name === 'api' && passive ? { passiveHealthCheck: passive } : undefined;
  return {
    ...EMPTY_SNAPSHOT,
    chains: { api: compileChain(lookup, 'api', 'http') },
    endpoints: { api: [A, B] },
  };
}

/** Ejections on a clock the test sets. */
function withClock(): { e: Ejections; at: (ms: number) => Ejections } {
  let now = 0;
  const e = new Ejections(() => now);
  return {
    e,
    at: (ms) => {
      now = ms;
      return e;
    },
  };
}

describe('the proxy’s passive health checks', () => {
  it('ejects by the destination resolver’s setting and leaves the instance out of the candidates', () => {
    const { e, at } = withClock();
    const seen: Ejection[] = [];
    e.onEject = (x) => seen.push(x);
    e.apply(snapshot({ maxFailures: 2, baseEjectionTimeMs: 1_000 }));
    e.onResult(B, false);
    assert.deepEqual(e.filter('api', [A, B]), [A, B]);
    e.onResult(B, false);
    assert.deepEqual(seen, [{ service: 'api', id: 'n/b', lengthMs: 1_000 }]);
    assert.deepEqual(at(999).filter('api', [A, B]), [A]);
    assert.deepEqual(e.list(), [{ service: 'api', id: 'n/b', remainingMs: 1 }]);
    assert.deepEqual(e.counts(), new Map([['api', 1]]));
    assert.deepEqual(at(1_000).filter('api', [A, B]), [A, B], 'back when its time is up');
  });

  it('keeps every candidate when every one is out (a failing instance beats none)', () => {
    const { e } = withClock();
    e.apply(snapshot({ maxFailures: 1, maxEjectionPercent: 100 }));
    e.onResult(A, false);
    e.onResult(B, false);
    assert.equal(e.list().length, 2);
    assert.deepEqual(e.filter('api', [A, B]), [A, B]);
    assert.deepEqual(e.filter('api', [B]), [B]);
  });

  it('does nothing for a service without the setting, and forgets ejections when it is removed', () => {
    const { e } = withClock();
    e.apply(snapshot(undefined));
    for (let i = 0; i < 10; i++) e.onResult(A, false);
    assert.deepEqual(e.list(), []);
    e.apply(snapshot({ maxFailures: 1 }));
    e.onResult(A, false);
    assert.equal(e.list().length, 1);
    e.apply(snapshot(undefined));
    assert.deepEqual(e.list(), []);
    assert.deepEqual(e.filter('api', [A, B]), [A, B]);
  });

  it('counts what the instance answered or failed to, not this agent’s own limits or a stale pooled socket', () => {
    const before = { sentResponse: false, connectFailed: false, message: '' } as const;
    assert.equal(concernsInstance({ status: 500, sentResponse: true }), true);
    assert.equal(concernsInstance({ ...before, status: 502, connectFailed: true }), true);
    assert.equal(concernsInstance({ ...before, status: 504 }), true);
    assert.equal(concernsInstance({ ...before, status: 503, ownLimit: true }), false);
    assert.equal(concernsInstance({ ...before, status: 502, staleSocket: true }), false);
  });
});
