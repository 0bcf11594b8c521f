import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import dnsPacket, { type SrvData } from 'dns-packet';
import pino from 'pino';
import { type DnsServer, dnsLimits, startDnsServer } from '../../../src/dns/server.js';
import {
  closedByPeer,
  dataOf,
  FakeCatalog,
  FORMERR,
  frame,
  NOERROR,
  NOTIMP,
  NXDOMAIN,
  query,
  REFUSED,
  rcodeOf,
  readFrames,
  tcpConnect,
  tcpQueries,
  tcpQuery,
  udpExchange,
  udpQuery,
} from './client.js';

const log = pino({ level: 'silent' });

function meshCatalog(): FakeCatalog {
  const c = new FakeCatalog();
  c.services.set('web', [
    { node: 'node-a', address: '10.0.0.1', port: 8080, tags: ['v1'] },
    { node: 'node-b', address: '10.0.0.2', port: 8081, tags: ['v2'], weight: 10 },
    { node: 'node-c', address: '2001:db8::1', port: 8082, tags: ['V3'] },
  ]);
  c.services.set('db', []);
  c.services.set('legacy', [{ node: 'node-a', address: 'db1.example.com', port: 5432, tags: [] }]);
  c.services.set(
    'big',
    Array.from({ length: 60 }, (_, i) => ({
      node: `node-${i}`,
      address: `10.1.0.${i + 1}`,
      port: 9000 + i,
      tags: [],
    })),
  );
  c.nodes.set('node-a', '10.0.0.1');
  c.nodes.set('node-6', 'fd00::6');
  return c;
}

describe('DNS server', () => {
  const catalog = meshCatalog();
  let server: DnsServer;
  let port: number;

  before(async () => {
    server = await startDnsServer({ host: '127.0.0.1', port: 0, catalog, log });
    port = server.address.port;
  });
  after(() => server.close());

  it('binds one free port for UDP and TCP when asked for port 0', async () => {
    assert.equal(server.address.host, '127.0.0.1');
    assert.ok(server.address.port > 0);
    assert.equal(rcodeOf(await udpQuery(port, query('web.service.mesh', 'A'))), NOERROR);
    assert.equal(rcodeOf(await tcpQuery(port, query('web.service.mesh', 'A'))), NOERROR);
  });

  for (const transport of ['udp', 'tcp'] as const) {
    const ask = (q: ReturnType<typeof query>) =>
      transport === 'udp' ? udpQuery(port, q) : tcpQuery(port, q);

    describe(`over ${transport}`, () => {
      it('A: the IPv4 addresses of healthy instances, authoritative, with the default 5 s TTL', async () => {
        const q = query('web.service.mesh', 'A');
        const r = await ask(q);
        assert.equal(r.id, q.id);
        assert.equal(r.type, 'response');
        assert.equal(rcodeOf(r), NOERROR);
        assert.equal(r.flag_aa, true);
        assert.equal(r.flag_tc, false);
        assert.deepEqual(r.questions, [{ name: 'web.service.mesh', type: 'A', class: 'IN' }]);
        assert.deepEqual(dataOf(r.answers, 'A').sort(), ['10.0.0.1', '10.0.0.2']);
        assert.equal(r.answers?.length, 2);
        for (const a of r.answers ?? []) {
          assert.equal(a.name, 'web.service.mesh');
          assert.equal('ttl' in a && a.ttl, 5);
        }
      });

      it('AAAA: the IPv6 addresses only', async () => {
        const r = await ask(query('web.service.mesh', 'AAAA'));
        assert.deepEqual(dataOf(r.answers, 'AAAA'), ['2001:db8::1']);
        assert.equal(r.answers?.length, 1);
      });

      it('ANY: A and AAAA together', async () => {
        const r = await ask(query('web.service.mesh', 'ANY'));
        assert.deepEqual(dataOf(r.answers, 'A').sort(), ['10.0.0.1', '10.0.0.2']);
        assert.deepEqual(dataOf(r.answers, 'AAAA'), ['2001:db8::1']);
      });

      it('SRV: one record per instance with its port, and each target address in the additional section', async () => {
        const r = await ask(query('web.service.mesh', 'SRV'));
        assert.equal(rcodeOf(r), NOERROR);
        const srv = dataOf(r.answers, 'SRV') as SrvData[];
        assert.deepEqual(srv.map((s) => s.port).sort(), [8080, 8081, 8082]);
        assert.ok(srv.every((s) => s.priority === 1));
        // The service's weights: node-b's instance weighs 10, the others the default 1.
        assert.deepEqual(
          srv.map((s) => [s.port, s.weight]).sort((a, b) => (a[0] as number) - (b[0] as number)),
          [
            [8080, 1],
            [8081, 10],
            [8082, 1],
          ],
        );
        const additional = new Map(
          (r.additionals ?? []).filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => [a.name, a]),
        );
        const byPort = new Map(srv.map((s) => [s.port, additional.get(s.target)]));
        assert.deepEqual(
          [8080, 8081, 8082].map((p) => {
            const rec = byPort.get(p);
            return rec && 'data' in rec ? `${rec.type} ${rec.data}` : undefined;
          }),
          ['A 10.0.0.1', 'A 10.0.0.2', 'AAAA 2001:db8::1'],
        );
        assert.ok(
          srv.some((s) => s.target === '0a000001.addr.mesh'),
          'Consul-style hex .addr. targets',
        );
      });

      it('an SRV target name resolves to the instance address', async () => {
        const srv = dataOf((await ask(query('web.service.mesh', 'SRV'))).answers, 'SRV') as SrvData[];
        for (const s of srv) {
          const v4 = await ask(query(s.target, 'A'));
          const v6 = await ask(query(s.target, 'AAAA'));
          const all = [...dataOf(v4.answers, 'A'), ...dataOf(v6.answers, 'AAAA')];
          assert.equal(all.length, 1, s.target);
          const expected = { 8080: '10.0.0.1', 8081: '10.0.0.2', 8082: '2001:db8::1' }[s.port];
          assert.equal(all[0], expected);
        }
      });

      it('TAG.NAME.service filters by tag; so does _NAME._TAG, and _tcp means any tag', async () => {
        assert.deepEqual(dataOf((await ask(query('v1.web.service.mesh', 'A'))).answers, 'A'), ['10.0.0.1']);
        assert.deepEqual(dataOf((await ask(query('v3.web.service.mesh', 'AAAA'))).answers, 'AAAA'), [
          '2001:db8::1',
        ]);
        const tagged = dataOf((await ask(query('_web._v2.service.mesh', 'SRV'))).answers, 'SRV') as SrvData[];
        assert.deepEqual(
          tagged.map((s) => s.port),
          [8081],
        );
        const any = dataOf((await ask(query('_web._tcp.service.mesh', 'SRV'))).answers, 'SRV') as SrvData[];
        assert.equal(any.length, 3);
        const none = await ask(query('v9.web.service.mesh', 'A'));
        assert.equal(rcodeOf(none), NOERROR, 'a known service with no instance of that tag is NODATA');
        assert.equal(none.answers?.length, 0);
      });

      it('NODE.node: the agent address', async () => {
        assert.deepEqual(dataOf((await ask(query('node-a.node.mesh', 'A'))).answers, 'A'), ['10.0.0.1']);
        assert.deepEqual(dataOf((await ask(query('node-6.node.mesh', 'AAAA'))).answers, 'AAAA'), ['fd00::6']);
        const wrongFamily = await ask(query('node-a.node.mesh', 'AAAA'));
        assert.equal(rcodeOf(wrongFamily), NOERROR);
        assert.equal(wrongFamily.answers?.length, 0);
      });

      it('NXDOMAIN with the SOA for an unknown service, an unknown node, or a name of no known form', async () => {
        for (const name of [
          'nope.service.mesh',
          'ghost.node.mesh',
          'foo.bar.mesh',
          'a.b.web.service.mesh',
          'zz.addr.mesh',
        ]) {
          const r = await ask(query(name, 'A'));
          assert.equal(rcodeOf(r), NXDOMAIN, name);
          assert.equal(r.flag_aa, true, name);
          assert.equal(r.answers?.length, 0, name);
          assert.equal(r.authorities?.length, 1, name);
          const soa = r.authorities?.[0];
          assert.equal(soa?.type, 'SOA', name);
          assert.equal(soa?.name, 'mesh', name);
        }
      });

      it('NODATA (NOERROR, no answer, the SOA) for a known service with no healthy instance', async () => {
        const r = await ask(query('db.service.mesh', 'A'));
        assert.equal(rcodeOf(r), NOERROR);
        assert.equal(r.answers?.length, 0);
        assert.deepEqual(
          r.authorities?.map((a) => a.type),
          ['SOA'],
        );
        const srv = await ask(query('db.service.mesh', 'SRV'));
        assert.equal(rcodeOf(srv), NOERROR);
        assert.equal(srv.answers?.length, 0);
      });

      it('REFUSED for a name outside the domain: not a recursive resolver', async () => {
        const r = await ask(query('example.com', 'A'));
        assert.equal(rcodeOf(r), REFUSED);
        assert.equal(r.answers?.length, 0);
        assert.equal(r.flag_aa, false);
      });

      it('names are case-insensitive, with or without the final dot; the question is echoed as asked', async () => {
        const r = await ask(query('WeB.SeRvIcE.MeSh.', 'A'));
        assert.equal(rcodeOf(r), NOERROR);
        assert.equal(r.questions?.[0]?.name, 'WeB.SeRvIcE.MeSh');
        assert.deepEqual(dataOf(r.answers, 'A').sort(), ['10.0.0.1', '10.0.0.2']);
        assert.deepEqual(dataOf((await ask(query('V1.WEB.service.mesh', 'A'))).answers, 'A'), ['10.0.0.1']);
      });

      it('a service whose instances have a host name answers a CNAME', async () => {
        const r = await ask(query('legacy.service.mesh', 'A'));
        assert.deepEqual(dataOf(r.answers, 'CNAME'), ['db1.example.com']);
        const srv = dataOf((await ask(query('legacy.service.mesh', 'SRV'))).answers, 'SRV') as SrvData[];
        assert.deepEqual(srv, [{ priority: 1, weight: 1, port: 5432, target: 'db1.example.com' }]);
      });

      it('the domain apex holds the SOA', async () => {
        const r = await ask(query('mesh', 'SOA'));
        assert.equal(rcodeOf(r), NOERROR);
        assert.deepEqual(
          r.answers?.map((a) => a.type),
          ['SOA'],
        );
      });
    });
  }

  it('answer order changes between queries, so clients spread their load', async () => {
    const firsts = new Set<unknown>();
    // Two A records: 40 queries all starting with the same one has probability 2^-39.
    for (let i = 0; i < 40 && firsts.size < 2; i++) {
      firsts.add(dataOf((await udpQuery(port, query('web.service.mesh', 'A'))).answers, 'A')[0]);
    }
    assert.equal(firsts.size, 2);
  });

  describe('truncation', () => {
    it('over UDP without EDNS: at most 512 bytes, TC set, some answers kept', async () => {
      const before = server.stats.truncated;
      const r = await udpExchange(port, query('big.service.mesh', 'A'));
      assert.ok(r);
      assert.ok(r.bytes <= 512, `${r.bytes} bytes`);
      assert.equal(r.packet.flag_tc, true);
      const kept = r.packet.answers?.length ?? 0;
      assert.ok(kept > 0 && kept < 60, `${kept} answers`);
      assert.equal(server.stats.truncated, before + 1);
    });

    it("over UDP with EDNS: up to the client's size; each SRV kept with its target address", async () => {
      const r = await udpExchange(port, query('big.service.mesh', 'SRV', { edns: 1232 }));
      assert.ok(r);
      assert.ok(r.bytes > 512 && r.bytes <= 1232, `${r.bytes} bytes`);
      assert.equal(r.packet.flag_tc, true);
      const targets = new Set((r.packet.additionals ?? []).filter((a) => a.type === 'A').map((a) => a.name));
      const srv = dataOf(r.packet.answers, 'SRV') as SrvData[];
      assert.ok(srv.length > 0);
      for (const s of srv) assert.ok(targets.has(s.target), `${s.target} has its A record`);
      const opt = r.packet.additionals?.find((a) => a.type === 'OPT');
      assert.ok(opt, 'EDNS answered with EDNS');
    });

    it('over TCP: the full answer, no TC', async () => {
      const a = await tcpQuery(port, query('big.service.mesh', 'A'));
      assert.equal(a.flag_tc, false);
      assert.equal(a.answers?.length, 60);
      const srv = await tcpQuery(port, query('big.service.mesh', 'SRV'));
      assert.equal(srv.flag_tc, false);
      assert.equal(srv.answers?.length, 60);
      assert.equal(srv.additionals?.length, 60);
    });
  });

  describe('bad input', () => {
    it('drops garbage shorter than a header, answers FORMERR when the id is readable, and keeps serving', async () => {
      const before = server.stats.malformed;
      assert.equal(await udpExchange(port, Buffer.from([1, 2, 3, 4, 5]), 500), undefined);
      const junk = Buffer.alloc(40, 0xff);
      junk.writeUInt16BE(0x1234, 0);
      junk.writeUInt16BE(0x0100, 2); // a query (QR clear), opcode QUERY
      const formerr = await udpExchange(port, junk);
      assert.ok(formerr);
      assert.equal(formerr.packet.id, 0x1234);
      assert.equal(rcodeOf(formerr.packet), FORMERR);
      assert.equal(server.stats.malformed, before + 2);
      assert.equal(rcodeOf(await udpQuery(port, query('web.service.mesh', 'A'))), NOERROR);
    });

    it('FORMERR for a query with no question', async () => {
      const r = await udpQuery(port, { id: 77, type: 'query', flags: 0, questions: [] });
      assert.equal(rcodeOf(r), FORMERR);
      assert.equal(r.id, 77);
    });

    it('NOTIMP for an opcode other than QUERY', async () => {
      const msg = dnsPacket.encode(query('web.service.mesh', 'A'));
      msg.writeUInt16BE((msg.readUInt16BE(2) & ~0x7800) | (4 << 11), 2); // opcode 4: NOTIFY
      const r = await udpExchange(port, msg);
      assert.ok(r);
      assert.equal(rcodeOf(r.packet), NOTIMP);
    });

    it('never answers a response (QR set)', async () => {
      const msg = dnsPacket.encode({ ...query('web.service.mesh', 'A'), type: 'response' });
      assert.equal(await udpExchange(port, msg, 500), undefined);
    });

    it('BADVERS for an EDNS version other than 0', async () => {
      const q = query('web.service.mesh', 'A', { edns: 1232 });
      const opt = q.additionals?.[0];
      assert.ok(opt?.type === 'OPT');
      opt.ednsVersion = 1;
      const r = await udpQuery(port, q);
      const replyOpt = r.additionals?.find((a) => a.type === 'OPT');
      assert.ok(replyOpt?.type === 'OPT');
      assert.equal((replyOpt.extendedRcode << 4) | rcodeOf(r), 16);
      assert.equal(r.answers?.length, 0);
    });

    it('TCP: a length prefix over the query bound closes the connection', async () => {
      const s = await tcpConnect(port);
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(dnsLimits.queryBytesMax + 1);
      s.write(prefix);
      await closedByPeer(s);
    });
  });

  describe('TCP connections', () => {
    it('several queries on one connection, pipelined, and one split byte by byte', async () => {
      const answers = await tcpQueries(port, [
        query('web.service.mesh', 'A'),
        query('nope.service.mesh', 'A'),
        query('node-a.node.mesh', 'A'),
      ]);
      assert.deepEqual(answers.map(rcodeOf), [NOERROR, NXDOMAIN, NOERROR]);

      const s = await tcpConnect(port);
      try {
        const reply = readFrames(s, 1);
        for (const byte of frame(query('db.service.mesh', 'A'))) {
          s.write(Buffer.from([byte]));
          await new Promise((r) => setImmediate(r));
        }
        const [r] = await reply;
        assert.equal(r && rcodeOf(r), NOERROR);
      } finally {
        s.destroy();
      }
    });
  });

  it('counts queries and NXDOMAIN answers', async () => {
    const before = { ...server.stats };
    await udpQuery(port, query('nope.service.mesh', 'A'));
    await udpQuery(port, query('web.service.mesh', 'A'));
    assert.equal(server.stats.queries, before.queries + 2);
    assert.equal(server.stats.nxdomain, before.nxdomain + 1);
  });
});

async function readFramesAfterWrite(s: Awaited<ReturnType<typeof tcpConnect>>): Promise<void> {
  const reply = readFrames(s, 1);
  s.write(frame(query('web.service.mesh', 'A')));
  await reply;
}

describe('DNS server lifecycle', () => {
  it('close() closes UDP, TCP and open connections, and resolves', async () => {
    const server = await startDnsServer({ host: '127.0.0.1', port: 0, catalog: meshCatalog(), log });
    const port = server.address.port;
    const conn = await tcpConnect(port);
    const connClosed = closedByPeer(conn);
    await server.close();
    await connClosed;
    assert.equal(await udpExchange(port, query('web.service.mesh', 'A'), 500), undefined);
    await assert.rejects(tcpConnect(port), /ECONNREFUSED/);
    await server.close(); // idempotent
  });

  it('a custom domain and TTL', async () => {
    const server = await startDnsServer({
      host: '127.0.0.1',
      port: 0,
      catalog: meshCatalog(),
      log,
      domain: 'Mesh.Internal.',
      ttlSec: 0,
    });
    try {
      const r = await udpQuery(server.address.port, query('web.service.mesh.internal', 'A'));
      assert.equal(r.answers?.length, 2);
      assert.ok(r.answers?.every((a) => 'ttl' in a && a.ttl === 0));
      const outside = await udpQuery(server.address.port, query('web.service.mesh', 'A'));
      assert.equal(rcodeOf(outside), REFUSED);
    } finally {
      await server.close();
    }
  });

  it('a port in use is an error that names it and the flag', async () => {
    const first = await startDnsServer({ host: '127.0.0.1', port: 0, catalog: meshCatalog(), log });
    try {
      await assert.rejects(
        startDnsServer({ host: '127.0.0.1', port: first.address.port, catalog: meshCatalog(), log }),
        (err: Error) => /in use/.test(err.message) && /--dns/.test(err.message),
      );
    } finally {
      await first.close();
    }
  });

  it(`refuses TCP connections beyond ${dnsLimits.tcpConnectionsMax} by closing them`, async () => {
    // A server of its own, so no connection of another test still counts against the limit.
    const server = await startDnsServer({ host: '127.0.0.1', port: 0, catalog: meshCatalog(), log });
    const port = server.address.port;
    const open = await Promise.all(
      Array.from({ length: dnsLimits.tcpConnectionsMax }, () => tcpConnect(port)),
    );
    try {
      // Once each has its answer, the server holds all of them.
      await Promise.all(open.map((s) => readFramesAfterWrite(s)));
      const extra = await tcpConnect(port);
      await closedByPeer(extra);
    } finally {
      for (const s of open) s.destroy();
      await server.close();
    }
  });

  it('a catalog that throws gets SERVFAIL, and the server keeps serving', async () => {
    const catalog = meshCatalog();
    let fail = true;
    const flaky = {
      healthyInstances: (s: string, t: string | undefined) => {
        if (fail) throw new Error('catalog broke');
        return catalog.healthyInstances(s, t);
      },
      node: (n: string) => catalog.node(n),
    };
    const server = await startDnsServer({ host: '127.0.0.1', port: 0, catalog: flaky, log });
    try {
      assert.equal(rcodeOf(await udpQuery(server.address.port, query('web.service.mesh', 'A'))), 2);
      fail = false;
      assert.equal(rcodeOf(await udpQuery(server.address.port, query('web.service.mesh', 'A'))), NOERROR);
    } finally {
      await server.close();
    }
  });
});
