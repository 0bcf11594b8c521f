// Snapshots: a machine restored from a snapshot (through msgpack, as the shell stores it) answers
// every read exactly as the machine it came from, and keeps doing so as commands continue. Corrupt
// snapshots are refused with a message naming the problem.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StateMachine } from '../../../src/core/state/state-machine.js';
import type { StateSnapshot } from '../../../src/core/state/types.js';
import { decode, encode } from '../../../src/wire/codec.js';
import { anyCommandArb } from './arbitraries.js';
import { bytes, machineWith, observe } from './helpers.js';

const prefixes = ['', 'a', 'a/', 'a/b', 'a/b/c', 'ab', 'b', 'b/x', 'é', 'é/ü', 'z', 'q'];
// Through the agent's own codec, as the shell stores and ships snapshots.
const roundTrip = (s: StateSnapshot): unknown => decode(encode(s));

function applyAll(m: StateMachine, cmds: unknown[], from: number): void {
  cmds.forEach((c, i) => {
    m.apply(from + i, c);
  });
}

describe('snapshot / restore', () => {
  it('round-trips a small state exactly', () => {
    const m = machineWith([
      { op: 'kv-set', key: 'a', value: bytes('1') },
      { op: 'kv-set', key: 'b', value: bytes('2') },
      { op: 'kv-delete', key: 'a' },
      {
        op: 'config-set',
        kind: 'service-defaults',
        name: 'web',
        spec: { protocol: 'http', meta: { t: 'x' } },
      },
      { op: 'config-set', kind: 'proxy-defaults', name: 'global', spec: { config: { n: 1.25, b: true } } },
      { op: 'config-delete', kind: 'proxy-defaults', name: 'global' },
    ]);
    const s = m.snapshot();
    const r = StateMachine.restore(roundTrip(s));
    assert.deepEqual(r.snapshot(), s);
    assert.deepEqual(observe(r, prefixes), observe(m, prefixes));
    assert.ok(r.kvGet('b')?.value instanceof Uint8Array);
  });

  it('half, snapshot, restore, rest gives the same reads as applying everything (property)', () => {
    fc.assert(
      fc.property(
        fc.array(anyCommandArb, { maxLength: 80 }),
        fc.nat(80),
        fc.constantFrom(3, 1000),
        (cmds, cut, tombstonesMax) => {
          const options = {
            kvTombstonesMax: tombstonesMax,
            configTombstonesMax: tombstonesMax,
            requestsMax: tombstonesMax,
          };
          const split = Math.min(cut, cmds.length);
          const whole = new StateMachine(options);
          applyAll(whole, cmds, 1);
          const first = new StateMachine(options);
          applyAll(first, cmds.slice(0, split), 1);
          const mid = observe(first, prefixes);
          const restored = StateMachine.restore(roundTrip(first.snapshot()), options);
          assert.deepEqual(observe(restored, prefixes), mid);
          applyAll(restored, cmds.slice(split), split + 1);
          assert.deepEqual(observe(restored, prefixes), observe(whole, prefixes));
          assert.deepEqual(restored.snapshot(), whole.snapshot());
          restored.checkInvariants();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is deterministic: the same commands give the same state and results', () => {
    fc.assert(
      fc.property(fc.array(anyCommandArb, { maxLength: 60 }), (cmds) => {
        const a = new StateMachine({ kvTombstonesMax: 4 });
        const b = new StateMachine({ kvTombstonesMax: 4 });
        const ra = cmds.map((c, i) => a.apply(i + 1, c));
        const rb = cmds.map((c, i) => b.apply(i + 1, c));
        assert.deepEqual(ra, rb);
        assert.deepEqual(encode(a.snapshot()), encode(b.snapshot()));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a taken snapshot unchanged while commands continue', () => {
    const m = machineWith([{ op: 'kv-set', key: 'a', value: bytes('1') }]);
    const s = m.snapshot();
    const copy = structuredClone(s);
    m.apply(2, { op: 'kv-set', key: 'a', value: bytes('2') });
    m.apply(3, { op: 'kv-delete-tree', prefix: '' });
    assert.deepEqual(s, copy);
  });

  it('restores an empty machine', () => {
    const r = StateMachine.restore(roundTrip(new StateMachine().snapshot()));
    assert.equal(r.appliedIndex, 0);
    assert.equal(r.kvSize, 0);
  });

  it('refuses corrupt snapshots with a message naming the problem', () => {
    const m = machineWith([
      { op: 'kv-set', key: 'a', value: bytes('1') },
      { op: 'kv-set', key: 'b', value: bytes('2') },
      { op: 'config-set', kind: 'service-defaults', name: 'web', spec: {} },
      { op: 'kv-delete', key: 'b' },
    ]);
    const good = (): Record<string, unknown> =>
      structuredClone(m.snapshot()) as unknown as Record<string, unknown>;
    const refuse = (s: unknown, re: RegExp) => assert.throws(() => StateMachine.restore(s), re);
    refuse(undefined, /state snapshot: snapshot: must be an object/);
    refuse({ ...good(), format: 2 }, /unsupported format 2/);
    refuse({ ...good(), appliedIndex: -1 }, /appliedIndex/);
    refuse({ ...good(), appliedIndex: 2 }, /kvIndex: must be an integer from 0 to 2/);
    const kv = good();
    (kv.kv as Record<string, unknown>[])[0]!.key = '';
    refuse(kv, /kv\[0\]: key: must not be empty/);
    const order = good();
    (order.kv as unknown[]).push((order.kv as unknown[])[0]);
    refuse(order, /kv\[1\].key: keys must be sorted and distinct/);
    const value = good();
    (value.kv as Record<string, unknown>[])[0]!.value = 'x';
    refuse(value, /kv\[0\].value: must be bytes/);
    const spec = good();
    (spec.config as Record<string, unknown>[])[0]!.spec = { protocol: 'udp' };
    refuse(spec, /config\[0\]: spec.protocol: must be one of/);
    const kind = good();
    (kind.config as Record<string, unknown>[])[0]!.kind = 'gone';
    refuse(kind, /config\[0\]: kind: unknown kind "gone"/);
    const index = good();
    (index.config as Record<string, unknown>[])[0]!.modifyIndex = 4;
    refuse(index, /config\[0\].modifyIndex/);
    const both = good();
    (both.kvTombstones as unknown[]).push({ key: 'a', index: 4 });
    refuse(both, /inconsistent .*live and deleted|deleted and live/);
    refuse({ ...good(), kv: {} }, /snapshot.kv: must be an array/);
    const withRequests = (requests: unknown): unknown => ({ ...good(), requests });
    const ok = { ok: true, index: 2, op: 'kv-set', changed: 1 };
    assert.equal(StateMachine.restore(withRequests([{ rid: 'r1', result: ok }])).appliedIndex, 4);
    refuse(withRequests([{ rid: 'a b', result: ok }]), /requests\[0\].rid: must be a request id/);
    refuse(
      withRequests([
        { rid: 'r1', result: ok },
        { rid: 'r2', result: ok },
      ]),
      /requests\[1\].result.index: must be an integer from 3 to 4/,
    );
    refuse(withRequests([{ rid: 'r1', result: { ...ok, index: 5 } }]), /requests\[0\].result.index/);
    refuse(
      withRequests([{ rid: 'r1', result: { ok: false, index: 2, code: 'boom', message: '' } }]),
      /result.code/,
    );
  });
});
