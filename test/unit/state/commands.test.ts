// validateCommand: what the shell calls before proposing and every agent calls on apply. It names
// the offending field, enforces the bounds, and never throws.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isValidationError, validateCommand } from '../../../src/core/state/command.js';
import { STATE_LIMITS } from '../../../src/core/state/limits.js';
import type { Command, ValidationError } from '../../../src/core/state/types.js';
import { commandArb } from './arbitraries.js';
import { bytes } from './helpers.js';

function ok(v: unknown): Command {
  const r = validateCommand(v);
  assert.ok(!isValidationError(r), `expected valid, got ${JSON.stringify(r)}`);
  return r;
}

function bad(v: unknown, field: string, message?: RegExp): ValidationError {
  const r = validateCommand(v);
  assert.ok(isValidationError(r), `expected an error on ${field}`);
  assert.equal(r.field, field, r.message);
  if (message) assert.match(r.message, message);
  return r;
}

describe('validateCommand', () => {
  it('accepts each command and returns a fresh copy without absent fields', () => {
    const value = bytes('v');
    assert.deepEqual(ok({ op: 'kv-set', key: 'a/b', value }), { op: 'kv-set', key: 'a/b', value });
    assert.deepEqual(ok({ op: 'kv-set', key: 'a', value, cas: 0 }), {
      op: 'kv-set',
      key: 'a',
      value,
      cas: 0,
    });
    assert.deepEqual(ok({ op: 'kv-delete', key: 'a', cas: 3 }), { op: 'kv-delete', key: 'a', cas: 3 });
    assert.deepEqual(ok({ op: 'kv-delete-tree', prefix: '' }), { op: 'kv-delete-tree', prefix: '' });
    assert.deepEqual(ok({ op: 'config-set', kind: 'service-defaults', name: 'web', spec: {} }), {
      op: 'config-set',
      kind: 'service-defaults',
      name: 'web',
      spec: {},
    });
    assert.deepEqual(ok({ op: 'config-delete', kind: 'proxy-defaults', name: 'global' }), {
      op: 'config-delete',
      kind: 'proxy-defaults',
      name: 'global',
    });
    const input = { op: 'kv-delete', key: 'a' };
    assert.notEqual(ok(input), input);
  });

  it('accepts every generated command unchanged (specs already canonical aside)', () => {
    fc.assert(
      fc.property(commandArb, (c) => {
        const r = ok(c);
        assert.equal(r.op, c.op);
        if (c.op !== 'config-set') assert.deepEqual(r, c);
      }),
    );
  });

  it('rejects what is not a command', () => {
    bad(undefined, 'command', /must be an object/);
    bad([], 'command');
    bad(new Map(), 'command');
    bad({}, 'op', /must be one of kv-set, kv-delete, kv-delete-tree, config-set, config-delete/);
    bad({ op: 'kv-get', key: 'a' }, 'op');
    bad({ op: 'kv-delete', key: 'a', flags: 1 }, 'flags', /unknown field; kv-delete takes op, key, cas/);
  });

  it('bounds keys: non-empty, no leading slash, at most 512 bytes of UTF-8, valid Unicode', () => {
    const value = new Uint8Array();
    bad({ op: 'kv-set', key: '', value }, 'key', /must not be empty/);
    bad({ op: 'kv-set', key: '/a', value }, 'key', /must not start with '\/'/);
    bad({ op: 'kv-set', key: 7, value }, 'key', /must be a string/);
    ok({ op: 'kv-set', key: 'k'.repeat(512), value });
    bad({ op: 'kv-set', key: 'k'.repeat(513), value }, 'key', /at most 512 bytes/);
    // 256 two-byte characters are 512 bytes; one more is over, though only 257 characters.
    ok({ op: 'kv-set', key: 'é'.repeat(256), value });
    bad({ op: 'kv-set', key: 'é'.repeat(257), value }, 'key', /at most 512 bytes/);
    ok({ op: 'kv-set', key: '😀'.repeat(128), value });
    bad({ op: 'kv-set', key: 'a\ud800b', value }, 'key', /unpaired surrogate/);
    bad({ op: 'kv-delete', key: '' }, 'key');
    ok({ op: 'kv-delete-tree', prefix: '' });
    bad({ op: 'kv-delete-tree', prefix: '/' }, 'prefix');
    bad({ op: 'kv-delete-tree' }, 'prefix', /must be a string/);
  });

  it('bounds values at 512 KiB and requires bytes', () => {
    ok({ op: 'kv-set', key: 'a', value: new Uint8Array(STATE_LIMITS.valueBytesMax) });
    bad({ op: 'kv-set', key: 'a', value: new Uint8Array(STATE_LIMITS.valueBytesMax + 1) }, 'value', /524288/);
    bad({ op: 'kv-set', key: 'a', value: 'text' }, 'value', /must be bytes/);
    bad({ op: 'kv-set', key: 'a', value: [1, 2] }, 'value');
    bad({ op: 'kv-set', key: 'a' }, 'value');
  });

  it('checks cas: non-negative on sets, positive on deletes', () => {
    const value = new Uint8Array();
    bad({ op: 'kv-set', key: 'a', value, cas: -1 }, 'cas');
    bad({ op: 'kv-set', key: 'a', value, cas: 1.5 }, 'cas');
    bad({ op: 'kv-set', key: 'a', value, cas: '3' }, 'cas');
    bad({ op: 'kv-set', key: 'a', value, cas: null }, 'cas');
    bad({ op: 'kv-delete', key: 'a', cas: 0 }, 'cas', /positive/);
    bad({ op: 'config-delete', kind: 'service-defaults', name: 'web', cas: 0 }, 'cas');
    ok({ op: 'config-set', kind: 'service-defaults', name: 'web', spec: {}, cas: 0 });
  });

  it('checks kind, name and spec of config commands, naming the field', () => {
    bad(
      { op: 'config-set', kind: 'x', name: 'web', spec: {} },
      'kind',
      /^unknown kind "x"; known kinds: ([a-z-]+, )*proxy-defaults, service-defaults(, [a-z-]+)*$/,
    );
    bad({ op: 'config-delete', kind: 'constructor', name: 'web' }, 'kind', /unknown kind/);
    bad({ op: 'config-set', kind: 5, name: 'web', spec: {} }, 'kind', /must be a string/);
    bad({ op: 'config-set', kind: 'service-defaults', name: 'Web', spec: {} }, 'name', /lower-case/);
    bad({ op: 'config-set', kind: 'service-defaults', name: '-web', spec: {} }, 'name');
    bad({ op: 'config-set', kind: 'service-defaults', name: '', spec: {} }, 'name', /empty/);
    bad({ op: 'config-set', kind: 'service-defaults', name: 'w'.repeat(129), spec: {} }, 'name', /128/);
    ok({ op: 'config-set', kind: 'service-defaults', name: 'w'.repeat(128), spec: {} });
    ok({ op: 'config-set', kind: 'service-defaults', name: 'web-1.v2_x', spec: {} });
    bad({ op: 'config-set', kind: 'proxy-defaults', name: 'web', spec: {} }, 'name', /must be "global"/);
    bad({ op: 'config-delete', kind: 'proxy-defaults', name: 'web' }, 'name');
    bad(
      { op: 'config-set', kind: 'service-defaults', name: 'web', spec: { protocol: 'udp' } },
      'spec.protocol',
      /^must be one of tcp, http, http2, grpc$/,
    );
    bad({ op: 'config-set', kind: 'service-defaults', name: 'web' }, 'spec', /must be an object/);
    bad({ op: 'config-set', kind: 'service-defaults', name: 'web', spec: { meta: { a: 1 } } }, 'spec.meta.a');
  });

  it('bounds the spec size before looking inside it', () => {
    const big = { meta: { a: 'x'.repeat(STATE_LIMITS.specBytesMax) } };
    bad({ op: 'config-set', kind: 'service-defaults', name: 'web', spec: big }, 'spec', /262144 bytes/);
    let deep: unknown = {};
    for (let i = 0; i < 100; i++) deep = { meta: deep };
    bad({ op: 'config-set', kind: 'service-defaults', name: 'web', spec: deep }, 'spec', /nested/);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withNullPrototype: true,
          withBigInt: true,
          withMap: true,
          withSet: true,
          withTypedArray: true,
        }),
        (v) => {
          const r = validateCommand(v);
          assert.ok(isValidationError(r));
        },
      ),
      { numRuns: 2000 },
    );
    // Shapes close to commands, with arbitrary field values.
    fc.assert(
      fc.property(
        fc.constantFrom('kv-set', 'kv-delete', 'kv-delete-tree', 'config-set', 'config-delete'),
        fc.record(
          {
            key: fc.anything(),
            value: fc.oneof(fc.anything(), fc.uint8Array()),
            prefix: fc.anything(),
            kind: fc.oneof(fc.constantFrom('service-defaults', 'proxy-defaults'), fc.anything()),
            name: fc.oneof(fc.constant('global'), fc.anything()),
            spec: fc.anything({ withNullPrototype: true }),
            cas: fc.anything(),
          },
          { requiredKeys: [] },
        ),
        (op, rest) => {
          const r = validateCommand({ op, ...rest });
          assert.ok(typeof r === 'object' && r !== null);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('survives exotic input (throwing getters, proxies) with an error, not an exception', () => {
    const trap = new Proxy(
      {},
      {
        getOwnPropertyDescriptor() {
          throw new Error('boom');
        },
      },
    );
    bad(trap, 'command', /unreadable/);
  });
});
