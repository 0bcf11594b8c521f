// The message layer on its own: whatever bytes arrive, it never throws, and whatever it sends back
// is a well-formed DNS response to that query id that fits the transport.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import type { AnswerContext } from '../../../src/dns/answer.js';
import { dnsLimits } from '../../../src/dns/limits.js';
import { handleMessage, type Transport } from '../../../src/dns/message.js';
import { FakeCatalog, query } from './client.js';

function context(): AnswerContext {
  const catalog = new FakeCatalog();
  catalog.services.set(
    'web',
    Array.from({ length: 200 }, (_, i) => ({
      node: `n${i}`,
      address: i % 2 === 0 ? `10.0.${i >> 8}.${i & 0xff}` : `fd00::${i.toString(16)}`,
      port: 8000 + i,
      tags: [`t${i % 3}`],
    })),
  );
  catalog.services.set('db', []);
  catalog.nodes.set('node-a', '10.0.0.1');
  return { catalog, domain: 'mesh', ttlSec: 5, random: Math.random, nowSec: 1_700_000_000, answersMax: 128 };
}

const names = fc.constantFrom(
  'web.service.mesh',
  'T1.web.service.mesh',
  '_web._tcp.service.mesh',
  'db.service.mesh',
  'node-a.node.mesh',
  '0a000001.addr.mesh',
  'nope.service.mesh',
  'mesh',
  'example.com',
);
const types = fc.constantFrom('A', 'AAAA', 'SRV', 'ANY', 'TXT', 'SOA', 'CNAME', 'AXFR');
/** A client's EDNS UDP size, or no EDNS. dns-packet writes a size of 0 as 4096, so sizes start at 1. */
const ednsSizes = fc.option(fc.integer({ min: 1, max: 65_535 }), { nil: undefined });

function check(raw: Buffer, transport: Transport, ctx: AnswerContext): void {
  const outcome = handleMessage(raw, transport, ctx);
  if (outcome.response === undefined) return;
  const r = dnsPacket.decode(outcome.response);
  assert.equal(r.type, 'response');
  assert.equal(r.id, raw.readUInt16BE(0));
  const sizeMax = transport === 'tcp' ? dnsLimits.tcpResponseBytesMax : dnsLimits.udpResponseBytesMax;
  assert.ok(outcome.response.length <= sizeMax, `${outcome.response.length} bytes`);
  assert.ok((r.answers?.length ?? 0) <= dnsLimits.answersMax);
}

describe('DNS message handling', () => {
  it('never throws on random bytes', () => {
    const ctx = context();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.constantFrom<Transport>('udp', 'tcp'), (bytes, t) => {
        check(Buffer.from(bytes), t, ctx);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on valid queries with bytes flipped', () => {
    const ctx = context();
    fc.assert(
      fc.property(
        names,
        types,
        ednsSizes,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.constantFrom<Transport>('udp', 'tcp'),
        (name, type, edns, flips, t) => {
          const raw = dnsPacket.encode(query(name, type as 'A', edns === undefined ? {} : { edns }));
          for (const [at, value] of flips) raw[at % raw.length] = value;
          check(raw, t, ctx);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('every valid query gets an answer within the UDP size it allows', () => {
    const ctx = context();
    fc.assert(
      fc.property(names, types, ednsSizes, (name, type, edns) => {
        const raw = dnsPacket.encode(query(name, type as 'A', edns === undefined ? {} : { edns }));
        const outcome = handleMessage(raw, 'udp', ctx);
        assert.ok(outcome.response);
        assert.equal(outcome.malformed, undefined);
        const allowed =
          edns === undefined ? 512 : Math.min(dnsLimits.udpResponseBytesMax, Math.max(512, edns));
        assert.ok(outcome.response.length <= allowed, `${outcome.response.length} > ${allowed}`);
      }),
      { numRuns: 1000 },
    );
  });
});
