// The caller's TLS session tickets: each offered once (RFC 8446 C.4), the newest first, a few per
// callee and destination, all of them dropped when the callee refuses one, and none across client
// contexts (a renewed certificate makes full handshakes).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSecureContext } from 'node:tls';
import { SessionCache, TLS_SESSION_LIMITS } from '../../../src/proxy/peer-tls.js';

const ticket = (n: number): Buffer => Buffer.from(`ticket-${n}`);

describe('peer TLS session tickets', () => {
  it('hands out each ticket once, the newest first', () => {
    const cache = new SessionCache();
    const ctx = createSecureContext({});
    cache.set(ctx, 'b|echo', ticket(1));
    cache.set(ctx, 'b|echo', ticket(2));
    assert.deepEqual(cache.take(ctx, 'b|echo'), ticket(2));
    assert.deepEqual(cache.take(ctx, 'b|echo'), ticket(1));
    assert.equal(cache.take(ctx, 'b|echo'), undefined, 'no ticket is offered twice');
  });

  it(`keeps the newest ${TLS_SESSION_LIMITS.perKeyMax} tickets per callee and destination`, () => {
    const cache = new SessionCache();
    const ctx = createSecureContext({});
    for (let n = 1; n <= TLS_SESSION_LIMITS.perKeyMax + 3; n++) cache.set(ctx, 'b|echo', ticket(n));
    const taken: string[] = [];
    for (let t = cache.take(ctx, 'b|echo'); t !== undefined; t = cache.take(ctx, 'b|echo'))
      taken.push(t.toString());
    assert.equal(taken.length, TLS_SESSION_LIMITS.perKeyMax);
    assert.equal(taken[0], `ticket-${TLS_SESSION_LIMITS.perKeyMax + 3}`);
    assert.equal(taken.at(-1), 'ticket-4');
  });

  it('drops every ticket for a callee that refused one, and only those', () => {
    const cache = new SessionCache();
    const ctx = createSecureContext({});
    cache.set(ctx, 'b|echo', ticket(1));
    cache.set(ctx, 'b|echo', ticket(2));
    cache.set(ctx, 'c|echo', ticket(3));
    cache.delete(ctx, 'b|echo');
    assert.equal(cache.take(ctx, 'b|echo'), undefined);
    assert.deepEqual(cache.take(ctx, 'c|echo'), ticket(3));
  });

  it('keeps tickets per client context, and a bounded number of callees per context', () => {
    const cache = new SessionCache();
    const [old, renewed] = [createSecureContext({}), createSecureContext({})];
    cache.set(old, 'b|echo', ticket(1));
    assert.equal(cache.take(renewed, 'b|echo'), undefined, 'a new context makes a full handshake');
    for (let k = 0; k <= TLS_SESSION_LIMITS.perContextMax; k++)
      cache.set(renewed, `agent-${k}|echo`, ticket(k));
    assert.equal(cache.take(renewed, 'agent-0|echo'), undefined, 'the least recently stored callee went');
    assert.deepEqual(cache.take(renewed, 'agent-1|echo'), ticket(1));
    assert.deepEqual(cache.take(old, 'b|echo'), ticket(1));
  });
});
