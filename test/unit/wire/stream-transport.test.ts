// StreamTransport between two real libp2p hosts (TCP, Noise, Yamux on 127.0.0.1), as the cluster
// protocols use it. The host joins Noise's length and ciphertext into one write and sends Yamux
// window updates only once half the receive window is used (src/agent/host.ts): bulk frames far
// larger than the window and bursts of small ones must still arrive whole and in order, both ways.
import '../../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { Host } from '../../../src/agent/host.js';
import { decode } from '../../../src/wire/codec.js';
import { StreamTransport } from '../../../src/wire/stream-transport.js';
import { loopbackHost } from '../../helpers/net.js';

const PROTOCOL = '/mesh/test-transport/1.0.0';
const log = pino({ level: 'silent' });
const limits = {
  frameBytesMax: 16 * 1024 * 1024,
  queuedPerPeerMax: 4096,
  openTimeoutMs: 5_000,
  streamsMax: 8,
};

interface End {
  host: Host;
  transport: StreamTransport;
  got: Uint8Array[];
  address: string;
}

async function end(): Promise<End> {
  const host = await loopbackHost();
  const got: Uint8Array[] = [];
  const transport = new StreamTransport(PROTOCOL, host, (_from, frame) => got.push(frame), log, limits);
  await transport.start();
  const port = host.getMultiaddrs()[0]?.toString().split('/')[4]; // /ip4/127.0.0.1/tcp/PORT/p2p/…
  return { host, transport, got, address: `127.0.0.1:${port}` };
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(pred(), what);
}

describe('StreamTransport over libp2p', { timeout: 60_000 }, () => {
  let a: End;
  let b: End;
  before(async () => {
    a = await end();
    b = await end();
  });
  after(async () => {
    for (const x of [a, b]) {
      await x?.transport.stop();
      await x?.host.stop();
    }
  });

  it('delivers frames many times the yamux window, whole, both ways', async () => {
    const big = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
    const sizes = [3 * 1024 * 1024, 700_000, 1];
    for (const [i, n] of sizes.entries()) a.transport.send(b.host.peerId.toString(), b.address, big(n, i));
    for (const [i, n] of sizes.entries())
      b.transport.send(a.host.peerId.toString(), a.address, big(n, i + 7));
    await until(
      () => b.got.length === sizes.length && a.got.length === sizes.length,
      'all big frames arrive',
    );
    for (const [i, n] of sizes.entries()) {
      assert.deepEqual(Buffer.from(decode(b.got[i] as Uint8Array) as Uint8Array), Buffer.from(big(n, i)));
      assert.deepEqual(Buffer.from(decode(a.got[i] as Uint8Array) as Uint8Array), Buffer.from(big(n, i + 7)));
    }
    b.got.length = 0;
    a.got.length = 0;
  });

  it('delivers a burst of small frames in order', async () => {
    const n = 3_000;
    for (let i = 0; i < n; i++)
      a.transport.send(b.host.peerId.toString(), b.address, { i, pad: 'x'.repeat(200) });
    await until(() => b.got.length === n, `all ${n} small frames arrive`);
    assert.deepEqual(
      b.got.map((f) => (decode(f) as { i: number }).i),
      Array.from({ length: n }, (_, i) => i),
    );
  });
});
