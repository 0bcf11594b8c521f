// Applying committed commands: every command's success and failure, CAS, listing, delete-tree,
// bounds. Failures are results that consume their index, never exceptions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StateMachine } from '../../../src/core/state/state-machine.js';
import { bytes, machineWith, text } from './helpers.js';

const set = (key: string, value: string, cas?: number) =>
  cas === undefined
    ? { op: 'kv-set', key, value: bytes(value) }
    : { op: 'kv-set', key, value: bytes(value), cas };
const web = (spec: unknown, cas?: number) =>
  cas === undefined
    ? { op: 'config-set', kind: 'service-defaults', name: 'web', spec }
    : { op: 'config-set', kind: 'service-defaults', name: 'web', spec, cas };

describe('StateMachine: KV', () => {
  it('sets, overwrites and reads keys with create and modify indices', () => {
    const m = new StateMachine();
    assert.deepEqual(m.apply(1, set('a', 'one')), { ok: true, index: 1, op: 'kv-set', changed: 1 });
    assert.deepEqual(m.apply(3, set('a', 'two')), { ok: true, index: 3, op: 'kv-set', changed: 1 });
    const e = m.kvGet('a');
    assert.equal(text(e?.value), 'two');
    assert.equal(e?.createIndex, 1);
    assert.equal(e?.modifyIndex, 3);
    assert.equal(m.appliedIndex, 3);
    assert.equal(m.kvGet('b'), undefined);
    assert.equal(m.kvSize, 1);
  });

  it('keeps a private copy of the value and hands out frozen records', () => {
    const value = bytes('abc');
    const m = machineWith([{ op: 'kv-set', key: 'a', value }]);
    value[0] = 0;
    assert.equal(text(m.kvGet('a')?.value), 'abc');
    assert.ok(Object.isFrozen(m.kvGet('a')));
  });

  it('deletes keys; deleting a missing key is fine unless a cas is given', () => {
    const m = machineWith([set('a', '1'), set('b', '2')]);
    assert.deepEqual(m.apply(3, { op: 'kv-delete', key: 'a' }), {
      ok: true,
      index: 3,
      op: 'kv-delete',
      changed: 1,
    });
    assert.equal(m.kvGet('a'), undefined);
    assert.deepEqual(m.apply(4, { op: 'kv-delete', key: 'a' }), {
      ok: true,
      index: 4,
      op: 'kv-delete',
      changed: 0,
    });
    const r = m.apply(5, { op: 'kv-delete', key: 'a', cas: 1 });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'not-found');
    assert.equal(m.appliedIndex, 5);
  });

  it('CAS on set: 0 creates only, a matching modifyIndex succeeds, anything else fails', () => {
    const m = new StateMachine();
    assert.ok(m.apply(1, set('a', 'v1', 0)).ok);
    const again = m.apply(2, set('a', 'v2', 0));
    assert.deepEqual(again, {
      ok: false,
      index: 2,
      code: 'cas-failed',
      message: 'key "a" already exists (cas 0 writes only if absent)',
    });
    const stale = m.apply(3, set('a', 'v3', 2));
    assert.equal(!stale.ok && stale.code, 'cas-failed');
    assert.match(!stale.ok ? stale.message : '', /modifyIndex 1, not 2/);
    assert.ok(m.apply(4, set('a', 'v4', 1)).ok);
    assert.equal(text(m.kvGet('a')?.value), 'v4');
    assert.equal(m.kvGet('a')?.modifyIndex, 4);
    const missing = m.apply(5, set('b', 'x', 4));
    assert.equal(!missing.ok && missing.code, 'cas-failed');
    assert.match(!missing.ok ? missing.message : '', /does not exist/);
    assert.equal(m.kvGet('b'), undefined);
  });

  it('CAS on delete: only with the current modifyIndex', () => {
    const m = machineWith([set('a', '1'), set('a', '2')]);
    const r = m.apply(3, { op: 'kv-delete', key: 'a', cas: 1 });
    assert.equal(!r.ok && r.code, 'cas-failed');
    assert.ok(m.kvGet('a'));
    assert.deepEqual(m.apply(4, { op: 'kv-delete', key: 'a', cas: 2 }), {
      ok: true,
      index: 4,
      op: 'kv-delete',
      changed: 1,
    });
    assert.equal(m.kvGet('a'), undefined);
  });

  it('a re-created key gets a new createIndex', () => {
    const m = machineWith([set('a', '1'), { op: 'kv-delete', key: 'a' }, set('a', '2')]);
    assert.equal(m.kvGet('a')?.createIndex, 3);
  });

  it('lists by prefix in key order, bounded by a limit', () => {
    const keys = ['b', 'a/z', 'a/b/c', 'a', 'a/b', 'ab', 'a/', 'é', 'Z'];
    const m = machineWith(keys.map((k) => set(k, k)));
    assert.deepEqual(
      m.kvList('').map((e) => e.key),
      ['Z', 'a', 'a/', 'a/b', 'a/b/c', 'a/z', 'ab', 'b', 'é'],
    );
    assert.deepEqual(
      m.kvList('a/').map((e) => e.key),
      ['a/', 'a/b', 'a/b/c', 'a/z'],
    );
    assert.deepEqual(
      m.kvList('a/', 2).map((e) => e.key),
      ['a/', 'a/b'],
    );
    assert.deepEqual(m.kvKeyList('a'), ['a', 'a/', 'a/b', 'a/b/c', 'a/z', 'ab']);
    assert.deepEqual(m.kvList('c'), []);
    assert.deepEqual(m.kvList('a/', 0), []);
  });

  it('lists correctly across many keys inserted in any order', () => {
    const m = new StateMachine();
    const keys: string[] = [];
    for (let i = 0; i < 3000; i++) keys.push(`k/${(i * 7919) % 3000}`.padEnd(8, 'x'));
    keys.forEach((k, i) => {
      m.apply(i + 1, set(k, ''));
    });
    for (let i = 0; i < 3000; i += 3) m.apply(3001 + i, { op: 'kv-delete', key: keys[i] });
    const expected = keys.filter((_, i) => i % 3 !== 0).sort();
    assert.deepEqual(
      m.kvList('k/').map((e) => e.key),
      expected,
    );
    assert.deepEqual(
      m.kvList('k/12').map((e) => e.key),
      expected.filter((k) => k.startsWith('k/12')),
    );
    m.checkInvariants();
  });

  it('delete-tree removes exactly the keys under the prefix', () => {
    const m = machineWith(['a', 'a/b', 'a/c/d', 'ab', 'b'].map((k) => set(k, k)));
    assert.deepEqual(m.apply(6, { op: 'kv-delete-tree', prefix: 'a/' }), {
      ok: true,
      index: 6,
      op: 'kv-delete-tree',
      changed: 2,
    });
    assert.deepEqual(
      m.kvList('').map((e) => e.key),
      ['a', 'ab', 'b'],
    );
    assert.deepEqual(m.apply(7, { op: 'kv-delete-tree', prefix: 'zz' }), {
      ok: true,
      index: 7,
      op: 'kv-delete-tree',
      changed: 0,
    });
    assert.equal(m.apply(8, { op: 'kv-delete-tree', prefix: '' }).ok, true);
    assert.equal(m.kvSize, 0);
    m.checkInvariants();
  });

  it('refuses new keys when the store is full, but still overwrites existing ones', () => {
    const m = machineWith([set('a', '1'), set('b', '2')], { kvEntriesMax: 2 });
    const r = m.apply(3, set('c', '3'));
    assert.equal(!r.ok && r.code, 'invalid');
    assert.match(!r.ok ? r.message : '', /^store full/);
    assert.ok(m.apply(4, set('a', 'again')).ok);
    assert.ok(m.apply(5, { op: 'kv-delete', key: 'b' }).ok);
    assert.ok(m.apply(6, set('c', '3')).ok);
  });
});

describe('StateMachine: configuration entries', () => {
  it('sets, reads, lists and deletes entries', () => {
    const m = new StateMachine();
    assert.ok(m.apply(1, web({ protocol: 'http', meta: { z: '1', a: '2' } })).ok);
    assert.ok(m.apply(2, { op: 'config-set', kind: 'service-defaults', name: 'api', spec: {} }).ok);
    assert.ok(
      m.apply(3, { op: 'config-set', kind: 'proxy-defaults', name: 'global', spec: { protocol: 'grpc' } }).ok,
    );
    const e = m.configGet('service-defaults', 'web');
    assert.deepEqual(e, {
      kind: 'service-defaults',
      name: 'web',
      spec: { meta: { a: '2', z: '1' }, protocol: 'http' },
      createIndex: 1,
      modifyIndex: 1,
    });
    assert.ok(Object.isFrozen(e) && Object.isFrozen((e!.spec as { meta: object }).meta));
    assert.deepEqual(
      m.configList().map((x) => `${x.kind}/${x.name}`),
      ['proxy-defaults/global', 'service-defaults/api', 'service-defaults/web'],
    );
    assert.deepEqual(
      m.configList('service-defaults').map((x) => x.name),
      ['api', 'web'],
    );
    assert.deepEqual(m.configList('nope'), []);
    assert.deepEqual(m.apply(4, { op: 'config-delete', kind: 'service-defaults', name: 'api' }), {
      ok: true,
      index: 4,
      op: 'config-delete',
      changed: 1,
    });
    assert.equal(m.configGet('service-defaults', 'api'), undefined);
    assert.deepEqual(m.apply(5, { op: 'config-delete', kind: 'service-defaults', name: 'api' }), {
      ok: true,
      index: 5,
      op: 'config-delete',
      changed: 0,
    });
    assert.equal(m.configSize, 2);
  });

  it('lists kinds apart even when one kind is a prefix of another name', () => {
    const m = machineWith([
      { op: 'config-set', kind: 'service-defaults', name: 'a', spec: {} },
      { op: 'config-set', kind: 'service-defaults', name: 'a-b', spec: {} },
      { op: 'config-set', kind: 'service-defaults', name: 'a.b', spec: {} },
      { op: 'config-set', kind: 'proxy-defaults', name: 'global', spec: {} },
    ]);
    assert.deepEqual(
      m.configList('service-defaults').map((x) => x.name),
      ['a', 'a-b', 'a.b'],
    );
  });

  it('CAS on config entries follows the KV rules', () => {
    const m = new StateMachine();
    assert.ok(m.apply(1, web({}, 0)).ok);
    const exists = m.apply(2, web({ protocol: 'http' }, 0));
    assert.equal(!exists.ok && exists.code, 'cas-failed');
    const stale = m.apply(3, web({ protocol: 'http' }, 2));
    assert.equal(!stale.ok && stale.code, 'cas-failed');
    assert.ok(m.apply(4, web({ protocol: 'http' }, 1)).ok);
    assert.deepEqual(m.configGet('service-defaults', 'web')?.spec, { protocol: 'http' });
    assert.equal(m.configGet('service-defaults', 'web')?.createIndex, 1);
    const badDelete = m.apply(5, { op: 'config-delete', kind: 'service-defaults', name: 'web', cas: 1 });
    assert.equal(!badDelete.ok && badDelete.code, 'cas-failed');
    const missing = m.apply(6, { op: 'config-delete', kind: 'service-defaults', name: 'api', cas: 1 });
    assert.equal(!missing.ok && missing.code, 'not-found');
    assert.ok(m.apply(7, { op: 'config-delete', kind: 'service-defaults', name: 'web', cas: 4 }).ok);
    assert.equal(m.configSize, 0);
  });

  it('records invalid committed commands as results, consuming the index', () => {
    const m = new StateMachine();
    const r = m.apply(1, web({ protocol: 'udp' }));
    assert.deepEqual(r, {
      ok: false,
      index: 1,
      code: 'invalid',
      message: 'spec.protocol: must be one of tcp, http, http2, grpc',
    });
    const unknown = m.apply(2, { op: 'config-set', kind: 'x', name: 'a', spec: {} });
    assert.match(
      !unknown.ok ? unknown.message : '',
      /^kind: unknown kind "x"; known kinds: ([a-z-]+, )*proxy-defaults, service-defaults(, [a-z-]+)*$/,
    );
    assert.equal(m.apply(3, undefined).ok, false);
    assert.equal(m.apply(4, 'garbage').ok, false);
    assert.equal(m.appliedIndex, 4);
    assert.equal(m.configSize, 0);
    assert.equal(m.configIndex(), 0);
  });

  it('refuses new entries when full', () => {
    const m = machineWith([web({})], { configEntriesMax: 1 });
    const r = m.apply(2, { op: 'config-set', kind: 'service-defaults', name: 'api', spec: {} });
    assert.match(!r.ok ? r.message : '', /^store full/);
    assert.ok(m.apply(3, web({ protocol: 'http' })).ok);
  });
});

describe('StateMachine: indices', () => {
  it('asserts that indices increase, and skip() advances without a command', () => {
    const m = new StateMachine();
    m.skip(1);
    assert.equal(m.appliedIndex, 1);
    assert.ok(m.apply(5, set('a', '1')).ok);
    assert.throws(() => m.apply(5, set('a', '2')), /indices must increase/);
    assert.throws(() => m.apply(4, set('a', '2')), /indices must increase/);
    assert.throws(() => m.skip(3), /indices must increase/);
    assert.throws(() => m.apply(1.5, set('a', '2')), /indices must increase/);
    assert.equal(text(m.kvGet('a')?.value), '1');
    assert.equal(m.appliedIndex, 5);
  });
});
