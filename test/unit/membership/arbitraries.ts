// fast-check generators of well-formed membership wire data (within every bound of validate.ts).
import fc from 'fast-check';
import type { MemberInfo, MemberState, Message, Update } from '../../../src/core/membership/types.js';
import { LIMITS } from '../../../src/core/membership/validate.js';

export const idArb = fc.string({ minLength: 1, maxLength: LIMITS.idLengthMax });
const incArb = fc.oneof(fc.nat(10), fc.maxSafeNat());

export const infoArb: fc.Arbitrary<MemberInfo> = fc.record({
  id: idArb,
  name: fc.string({ maxLength: LIMITS.nameLengthMax }),
  address: fc.string({ maxLength: LIMITS.addressLengthMax }),
  zone: fc.string({ maxLength: LIMITS.zoneLengthMax }),
  meta: fc.dictionary(
    fc.string({ maxLength: LIMITS.metaKeyLengthMax }),
    fc.string({ maxLength: LIMITS.metaValueLengthMax }),
    { maxKeys: LIMITS.metaEntriesMax },
  ),
});

export const updateArb: fc.Arbitrary<Update> = fc.oneof(
  fc.record({ t: fc.constant('alive' as const), info: infoArb, inc: incArb }),
  fc.record({ t: fc.constant('suspect' as const), id: idArb, inc: incArb, from: idArb }),
  fc.record({ t: fc.constant('failed' as const), id: idArb, inc: incArb, from: idArb }),
  fc.record({ t: fc.constant('left' as const), id: idArb, inc: incArb }),
);

const stateArb: fc.Arbitrary<MemberState> = fc.record({
  info: infoArb,
  status: fc.constantFrom('alive' as const, 'suspect' as const, 'failed' as const, 'left' as const),
  inc: incArb,
});

const seqArb = fc.maxSafeNat();

export const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ t: fc.constant('ping' as const), seq: seqArb, target: idArb, suspect: fc.boolean() }),
  fc.record({ t: fc.constant('ack' as const), seq: seqArb }),
  fc.record({ t: fc.constant('nack' as const), seq: seqArb }),
  fc.record({
    t: fc.constant('ping-req' as const),
    seq: seqArb,
    target: idArb,
    targetAddress: fc.string({ maxLength: LIMITS.addressLengthMax }),
  }),
  fc.record({
    t: fc.constant('push-pull' as const),
    join: fc.boolean(),
    reply: fc.boolean(),
    states: fc.array(stateArb, { maxLength: 8 }),
  }),
  fc.record({ t: fc.constant('updates' as const), updates: fc.array(updateArb, { maxLength: 8 }) }),
);
