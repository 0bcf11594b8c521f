// Generators of commands for the state machine properties. Small pools of keys, kinds and names
// so commands collide (overwrites, CAS on existing records, deletes of live keys, re-creation).
import fc from 'fast-check';
import type { Command } from '../../../src/core/state/types.js';

export const keyArb = fc.constantFrom('a', 'a/b', 'a/c', 'a/b/c', 'ab', 'b', 'b/x', 'é/ü', 'z');
export const prefixArb = fc.constantFrom('', 'a', 'a/', 'a/b', 'b', 'c', 'é');
const casArb = fc.option(fc.nat(12), { nil: undefined });
const deleteCasArb = fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined });
const valueArb = fc.uint8Array({ maxLength: 4 });

const serviceSpecArb = fc.record(
  {
    protocol: fc.constantFrom('tcp', 'http', 'http2', 'grpc'),
    meta: fc.dictionary(fc.constantFrom('team', 'tier', 'z'), fc.string({ maxLength: 3 }), { maxKeys: 3 }),
    connectTimeoutMs: fc.integer({ min: 1, max: 600_000 }),
    maxConnections: fc.integer({ min: 1, max: 1000 }),
  },
  { requiredKeys: [] },
);
const proxySpecArb = fc.record(
  {
    protocol: fc.constantFrom('tcp', 'http'),
    config: fc.dictionary(
      fc.constantFrom('a', 'b'),
      fc.oneof(
        fc.string({ maxLength: 3 }),
        fc.integer(),
        fc.boolean(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
      ),
      { maxKeys: 2 },
    ),
  },
  { requiredKeys: [] },
);

/** Strip `cas: undefined` so generated commands look like the shell's. */
function clean<T extends object>(c: T): T {
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as T;
}

export const commandArb: fc.Arbitrary<Command> = fc
  .oneof(
    {
      weight: 5,
      arbitrary: fc.record({ op: fc.constant('kv-set' as const), key: keyArb, value: valueArb, cas: casArb }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant('kv-delete' as const), key: keyArb, cas: deleteCasArb }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('kv-delete-tree' as const), prefix: prefixArb }) },
    {
      weight: 3,
      arbitrary: fc.oneof(
        fc.record({
          op: fc.constant('config-set' as const),
          kind: fc.constant('service-defaults'),
          name: fc.constantFrom('web', 'api', 'db'),
          spec: serviceSpecArb,
          cas: casArb,
        }),
        fc.record({
          op: fc.constant('config-set' as const),
          kind: fc.constant('proxy-defaults'),
          name: fc.constant('global'),
          spec: proxySpecArb,
          cas: casArb,
        }),
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          target: fc.constantFrom(
            ['service-defaults', 'web'],
            ['service-defaults', 'api'],
            ['proxy-defaults', 'global'],
          ),
          cas: deleteCasArb,
        })
        .map(({ target: [kind, name], cas }) => ({
          op: 'config-delete' as const,
          kind: kind as string,
          name: name as string,
          cas,
        })),
    },
  )
  .map(clean);

/** A request id from a small pool, so some commands repeat an earlier one's (requests.ts). */
const ridArb = fc.option(fc.constantFrom('r1', 'r2', 'r3', 'r4', 'r5', 'node.1:7'), { nil: undefined });

/** Commands plus the occasional invalid one (which must still consume its index). */
export const anyCommandArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: commandArb },
  {
    weight: 4,
    arbitrary: fc.tuple(commandArb, ridArb).map(([c, rid]) => (rid === undefined ? c : { ...c, rid })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      { op: 'kv-set', key: '', value: new Uint8Array() },
      { op: 'config-set', kind: 'nope', name: 'x', spec: {} },
      { op: 'config-set', kind: 'service-defaults', name: 'web', spec: { protocol: 'udp' } },
      { op: 'kv-set', key: 'a', value: new Uint8Array(), rid: 'not an id' },
      undefined,
    ),
  },
);
