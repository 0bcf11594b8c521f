// Edge validation: never throws, accepts every well-formed message, names the offending field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LIMITS, parseMessage, parseUpdates } from '../../../src/core/membership/validate.js';
import { messageArb, updateArb } from './arbitraries.js';

/** Plain-object form for comparison (generated maps may have a null prototype). */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

const info = { id: 'a', name: 'a', address: 'a:1', zone: '', meta: {} };

describe('parseMessage / parseUpdates', () => {
  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(
        fc.anything({ withNullPrototype: true, withBigInt: true, withMap: true, withSet: true }),
        (v) => {
          assert.equal(typeof parseMessage(v), 'string');
          const u = parseUpdates(v);
          assert.ok(typeof u === 'string' || (Array.isArray(u) && u.length === 0));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('accepts every well-formed message and returns an equal copy', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const r = parseMessage(msg);
        assert.notEqual(typeof r, 'string', String(r));
        assert.deepEqual(plain(r), plain(msg));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.array(updateArb, { maxLength: 20 }), (us) => {
        const r = parseUpdates(us);
        assert.notEqual(typeof r, 'string', String(r));
        assert.deepEqual(plain(r), plain(us));
      }),
    );
  });

  it('rejects a well-formed message with one field replaced by anything of another type', () => {
    fc.assert(
      fc.property(messageArb, fc.anything(), fc.nat(), (msg, junk, pick) => {
        const keys = Object.keys(msg);
        const key = keys[pick % keys.length] as string;
        const original = (msg as unknown as Record<string, unknown>)[key];
        fc.pre(typeof junk !== typeof original && !(Array.isArray(original) && Array.isArray(junk)));
        const r = parseMessage({ ...msg, [key]: junk });
        assert.equal(typeof r, 'string');
      }),
      { numRuns: 1000 },
    );
  });

  it('names the field and the bound in its reason', () => {
    assert.equal(
      parseMessage({ t: 'ping', seq: -1, target: 'a', suspect: false }),
      'ping.seq: expected a non-negative integer',
    );
    assert.equal(
      parseMessage({ t: 'ping', seq: 1.5, target: 'a', suspect: false }),
      'ping.seq: expected a non-negative integer',
    );
    assert.equal(
      parseMessage({ t: 'ping', seq: 2 ** 53, target: 'a', suspect: false }),
      'ping.seq: expected a non-negative integer',
    );
    assert.equal(
      parseMessage({ t: 'ping', seq: 1, target: 'x'.repeat(129), suspect: false }),
      'ping.target: longer than 128 characters',
    );
    assert.equal(
      parseMessage({ t: 'ping', seq: 1, target: '', suspect: false }),
      'ping.target: must not be empty',
    );
    assert.equal(
      parseMessage({ t: 'ping', seq: 1, target: 'a', suspect: 'yes' }),
      'ping.suspect: expected a boolean',
    );
    assert.equal(parseMessage({ t: 'gossip' }), 'message.t: unknown message type "gossip"');
    assert.equal(parseMessage(null), 'message: expected an object');
    assert.equal(parseMessage([]), 'message: expected an object');
    assert.equal(
      parseMessage({ t: 'ping-req', seq: 1, target: 'a', targetAddress: 'x'.repeat(257) }),
      'ping-req.targetAddress: longer than 256 characters',
    );
    const states = (n: number) => Array.from({ length: n }, () => ({ info, status: 'alive', inc: 0 }));
    assert.equal(
      typeof parseMessage({ t: 'push-pull', join: false, reply: false, states: states(3) }),
      'object',
    );
    assert.equal(
      parseMessage({ t: 'push-pull', join: false, reply: false, states: states(LIMITS.statesMax + 1) }),
      'push-pull.states: more than 10000 entries',
    );
    assert.equal(
      parseMessage({ t: 'push-pull', join: false, reply: false, states: [{ info, status: 'dead', inc: 0 }] }),
      'push-pull.states[0].status: expected one of alive, suspect, failed, left',
    );
    assert.equal(
      parseMessage({
        t: 'push-pull',
        join: false,
        reply: false,
        states: [{ info: { ...info, zone: 'z'.repeat(65) }, status: 'alive', inc: 0 }],
      }),
      'push-pull.states[0].info.zone: longer than 64 characters',
    );
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']));
    assert.equal(
      parseUpdates([{ t: 'alive', info: { ...info, meta: many }, inc: 0 }]),
      'updates[0].info.meta: more than 32 entries',
    );
    assert.equal(
      parseUpdates([{ t: 'alive', info: { ...info, meta: { k: 'v'.repeat(513) } }, inc: 0 }]),
      'updates[0].info.meta.k: longer than 512 characters',
    );
    assert.equal(
      parseUpdates([{ t: 'alive', info: { ...info, meta: { ['k'.repeat(65)]: 'v' } }, inc: 0 }]),
      'updates[0].info.meta: key longer than 64 characters',
    );
    assert.equal(
      parseUpdates([{ t: 'alive', info: { ...info, meta: { k: 1 } }, inc: 0 }]),
      'updates[0].info.meta.k: expected a string',
    );
    assert.equal(parseUpdates([{ t: 'failed', id: 'a', inc: 0 }]), 'updates[0].from: expected a string');
    assert.equal(
      parseUpdates([{ t: 'zombie', id: 'a', inc: 0 }]),
      'updates[0].t: unknown update type "zombie"',
    );
    assert.equal(
      parseUpdates(Array.from({ length: 257 }, () => ({ t: 'left', id: 'a', inc: 0 }))),
      'updates: more than 256 entries',
    );
    assert.equal(parseMessage({ t: 'updates', updates: {} }), 'updates.updates: expected an array');
  });

  it('drops unknown extra fields and keeps meta keys such as __proto__ as plain data', () => {
    const r = parseMessage({ t: 'ack', seq: 3, extra: 'x' });
    assert.deepEqual(r, { t: 'ack', seq: 3 });
    const meta = JSON.parse('{"__proto__": "x", "constructor": "y"}');
    const u = parseUpdates([{ t: 'alive', info: { ...info, meta }, inc: 0 }]);
    assert.ok(Array.isArray(u));
    const m = u[0]?.t === 'alive' ? u[0].info.meta : undefined;
    assert.ok(m);
    assert.equal(Object.getPrototypeOf(m), Object.prototype);
    assert.deepEqual(Object.keys(m).sort(), ['__proto__', 'constructor']);
    assert.equal(Object.getOwnPropertyDescriptor(m, '__proto__')?.value, 'x');
  });
});
