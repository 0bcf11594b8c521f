// Request ids (src/core/state/requests.ts): a write proposed again under the id of one already
// applied changes nothing and answers what the first copy did, on every agent alike; ids are
// remembered up to a bound, and across snapshots.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StateMachine } from '../../../src/core/state/state-machine.js';
import { decode, encode } from '../../../src/wire/codec.js';
import { commandArb } from './arbitraries.js';
import { bytes, observe, text } from './helpers.js';

const prefixes = ['', 'a', 'a/b', 'b', 'z'];

describe('request ids: a write applies once', () => {
  it('a create-only write proposed twice succeeds once and reports that success both times', () => {
    const m = new StateMachine();
    const put = { op: 'kv-set', key: 'k', value: bytes('v1'), cas: 0, rid: 'agent-a:1' };
    const first = m.apply(1, put);
    assert.deepEqual(first, { ok: true, index: 1, op: 'kv-set', changed: 1 });
    m.apply(2, { op: 'kv-set', key: 'other', value: bytes('x') });
    // Without the id the copy would fail its cas (the key exists now).
    assert.deepEqual(m.apply(3, put), first);
    assert.equal(m.appliedIndex, 3, 'the copy consumes its index');
    assert.equal(m.kvGet('k')?.modifyIndex, 1, 'and changes nothing');
    assert.equal(text(m.kvGet('k')?.value), 'v1');
    // The same write without an id is an ordinary second write.
    const plain = m.apply(4, { op: 'kv-set', key: 'k', value: bytes('v1'), cas: 0 });
    assert.equal(plain.ok, false);
  });

  it('a copy of a failed write reports the same failure, and a different id is a new write', () => {
    const m = new StateMachine();
    m.apply(1, { op: 'kv-set', key: 'k', value: bytes('v') });
    const failed = m.apply(2, { op: 'kv-delete', key: 'k', cas: 9, rid: 'x' });
    assert.equal(failed.ok, false);
    assert.deepEqual(m.apply(3, { op: 'kv-delete', key: 'k', rid: 'x' }), failed);
    assert.ok(m.kvGet('k'), 'the copy is not applied, even with another body');
    assert.equal(m.apply(4, { op: 'kv-delete', key: 'k', rid: 'y' }).ok, true);
    assert.equal(m.kvGet('k'), undefined);
  });

  it('refuses a malformed id as an invalid command naming the field', () => {
    const m = new StateMachine();
    const r = m.apply(1, { op: 'kv-set', key: 'k', value: bytes('v'), rid: 'has space' });
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.message, /^rid: must be 1 to 64 letters/);
    assert.equal(m.apply(2, { op: 'kv-set', key: 'k', value: bytes('v'), rid: 'x'.repeat(65) }).ok, false);
  });

  it('forgets the oldest id past its bound: a copy that late is applied again', () => {
    const m = new StateMachine({ requestsMax: 2 });
    const put = (rid: string) => ({ op: 'kv-set', key: rid, value: bytes('v'), cas: 0, rid });
    m.apply(1, put('a'));
    m.apply(2, put('b'));
    m.apply(3, put('c'));
    assert.equal(m.apply(4, put('c')).index, 3, 'c is remembered');
    const late = m.apply(5, put('a'));
    assert.equal(late.ok, false, 'a was forgotten: its copy is a second create, refused by its cas');
    assert.equal(late.index, 5);
    m.checkInvariants();
  });

  it('remembers ids across a snapshot', () => {
    const m = new StateMachine();
    const first = m.apply(1, { op: 'kv-set', key: 'k', value: bytes('v'), cas: 0, rid: 'r' });
    const r = StateMachine.restore(decode(encode(m.snapshot())));
    assert.deepEqual(r.apply(2, { op: 'kv-set', key: 'k', value: bytes('v'), cas: 0, rid: 'r' }), first);
  });

  it('copies of applied writes leave the state as if they were empty entries (property)', () => {
    fc.assert(
      fc.property(
        fc.array(commandArb, { minLength: 1, maxLength: 40 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 20 }),
        (cmds, copies) => {
          // Each command gets its own id; copies of earlier ones are inserted at later positions.
          const log: { cmd: unknown; copyOf?: number }[] = cmds.map((c, i) => ({
            cmd: { ...c, rid: `w${i}` },
          }));
          for (const [of, at] of copies) {
            const pos = at % (log.length + 1);
            const before = log.slice(0, pos).filter((e) => e.copyOf === undefined);
            if (before.length === 0) continue;
            const original = before[of % before.length] as { cmd: unknown };
            log.splice(pos, 0, { cmd: original.cmd, copyOf: log.indexOf(original) });
          }
          const withIds = new StateMachine();
          const reference = new StateMachine();
          const results = new Map<unknown, unknown>();
          log.forEach((e, i) => {
            const r = withIds.apply(i + 1, e.cmd);
            if (e.copyOf === undefined) {
              assert.deepEqual(r, reference.apply(i + 1, e.cmd));
              results.set(e.cmd, r);
            } else {
              reference.skip(i + 1);
              assert.deepEqual(r, results.get(e.cmd), 'a copy answers what its first copy got');
            }
          });
          assert.deepEqual(observe(withIds, prefixes), observe(reference, prefixes));
          withIds.checkInvariants();
        },
      ),
      { numRuns: 300 },
    );
  });
});
