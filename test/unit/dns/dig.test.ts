// Against a real resolver client: BIND's dig, as an operator would check the agent by hand.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { type DnsServer, startDnsServer } from '../../../src/dns/server.js';
import { FakeCatalog } from './client.js';

const run = promisify(execFile);
const skipReason = 'dig not installed (apt-get install dnsutils)';

/** Whether `dig` runs at all; found through PATH, as an operator would run it. */
async function digAvailable(): Promise<boolean> {
  try {
    await run('dig', ['-v'], { timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

describe('DNS server against dig', () => {
  let server: DnsServer;
  let hasDig = false;

  before(async () => {
    hasDig = await digAvailable();
    const catalog = new FakeCatalog();
    catalog.services.set('web', [
      { node: 'node-a', address: '10.0.0.1', port: 8080, tags: ['v1'] },
      { node: 'node-b', address: '10.0.0.2', port: 8081, tags: ['v2'] },
    ]);
    catalog.services.set(
      'big',
      Array.from({ length: 60 }, (_, i) => ({
        node: `n${i}`,
        address: `10.1.0.${i + 1}`,
        port: 9000 + i,
        tags: [],
      })),
    );
    catalog.nodes.set('node-a', '10.0.0.1');
    server = await startDnsServer({ host: '127.0.0.1', port: 0, catalog, log: pino({ level: 'silent' }) });
  });
  after(() => server.close());

  /** dig's output; +tries=1 +time=3 keeps a broken server from stalling the test for long. */
  async function dig(t: TestContext, ...args: string[]): Promise<string | undefined> {
    if (!hasDig) {
      t.skip(skipReason);
      return undefined;
    }
    const { stdout } = await run(
      'dig',
      ['@127.0.0.1', '-p', String(server.address.port), '+tries=1', '+time=3', ...args],
      { timeout: 20_000 },
    );
    return stdout;
  }

  it('SRV +short over UDP', async (t) => {
    const out = await dig(t, 'web.service.mesh', 'SRV', '+short');
    if (out === undefined) return;
    assert.deepEqual(out.trim().split('\n').sort(), [
      '1 1 8080 0a000001.addr.mesh.',
      '1 1 8081 0a000002.addr.mesh.',
    ]);
  });

  it('A +short over TCP, tag filter', async (t) => {
    const out = await dig(t, '+tcp', 'v2.web.service.mesh', 'A', '+short');
    if (out === undefined) return;
    assert.equal(out.trim(), '10.0.0.2');
  });

  it('node lookup, and an SRV target name', async (t) => {
    const node = await dig(t, 'node-a.node.mesh', '+short');
    if (node === undefined) return;
    assert.equal(node.trim(), '10.0.0.1');
    assert.equal((await dig(t, '0a000002.addr.mesh', '+short'))?.trim(), '10.0.0.2');
  });

  it('NXDOMAIN status with the SOA in the authority section', async (t) => {
    const out = await dig(t, 'nope.service.mesh', 'A');
    if (out === undefined) return;
    assert.match(out, /status: NXDOMAIN/);
    assert.match(out, /AUTHORITY SECTION:\nmesh\.\s+5\s+IN\s+SOA\s+ns\.mesh\. hostmaster\.mesh\./);
  });

  it('REFUSED outside the domain', async (t) => {
    const out = await dig(t, 'example.com', 'A');
    if (out === undefined) return;
    assert.match(out, /status: REFUSED/);
  });

  it('a truncated UDP answer makes dig retry over TCP and get all 60 records', async (t) => {
    const out = await dig(t, '+noedns', 'big.service.mesh', 'A');
    if (out === undefined) return;
    assert.match(out, /Truncated, retrying in TCP mode/);
    assert.match(out, /ANSWER: 60,/);
    assert.match(out, /\(TCP\)/);
  });

  it('+ignore shows the TC flag on the UDP answer', async (t) => {
    const out = await dig(t, '+noedns', '+ignore', 'big.service.mesh', 'A');
    if (out === undefined) return;
    assert.match(out, /flags: qr aa tc rd;/);
  });
});
