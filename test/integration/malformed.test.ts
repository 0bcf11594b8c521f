// Malformed input never takes an agent down: garbage on the cluster port, oversized, truncated and
// ill-shaped membership messages over a real libp2p stream, and bad HTTP API parameters.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { multiaddr } from '@multiformats/multiaddr';
import { LocalCluster, waitFor } from '../../cluster-sim/launcher.js';
import type { Host } from '../../src/agent/host.js';
import { MEMBERSHIP_PROTOCOL } from '../../src/membership/service.js';
import { encode } from '../../src/wire/codec.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { loopbackHost } from '../helpers/net.js';

describe('malformed input', { timeout: 120_000 }, () => {
  const cluster = new LocalCluster();
  let client: Host;

  before(async () => {
    await cluster.add();
    await cluster.add();
    for (const a of cluster.agents) await cluster.ready(a);
    assert.ok(await waitFor(() => cluster.allSeeAlive(2), 20_000, 100));
    client = await loopbackHost();
  });

  after(async () => {
    await client?.stop();
    await cluster.stop();
  });

  const target = () => cluster.agents[0]!;
  const self = async () => {
    const res = await fetch(`http://127.0.0.1:${target().httpPort}/v1/agent/self`);
    assert.equal(res.status, 200, 'the agent still answers');
    return (await res.json()) as { stats: Record<string, number> };
  };

  it('survives raw garbage on the cluster port', async () => {
    for (const payload of [
      Buffer.alloc(0),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.alloc(70_000, 0xff),
    ]) {
      await new Promise<void>((resolve) => {
        const sock = connect(target().clusterPort, '127.0.0.1', () => {
          sock.end(payload);
        });
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        sock.setTimeout(3_000, () => sock.destroy());
      });
    }
    await self();
  });

  async function sendRaw(bytes: Uint8Array): Promise<void> {
    const ma = multiaddr(`/ip4/127.0.0.1/tcp/${target().clusterPort}`);
    const conn = await client.dial(ma);
    const stream = await conn.newStream(MEMBERSHIP_PROTOCOL);
    stream.send(bytes);
    await stream.close().catch(() => undefined);
  }

  it('drops oversized, truncated and ill-shaped membership messages and counts them', async () => {
    const before = (await self()).stats;
    // Oversized: a length prefix far above the frame limit.
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 0x7fffffff, false);
    await sendRaw(huge);
    // Truncated: the prefix promises more than arrives before the stream closes.
    const truncated = encodeFrame(encode({ t: 'ping', seq: 1, target: 'x', suspect: false })).subarray(0, 9);
    await sendRaw(truncated);
    // Not msgpack, and msgpack of the wrong shape.
    await sendRaw(encodeFrame(new Uint8Array([0xc1, 0xc1, 0xc1])));
    await sendRaw(encodeFrame(encode({ t: 'ping', seq: -5, target: 42 })));
    await sendRaw(encodeFrame(encode({ t: 'no-such-message' })));
    await sendRaw(
      encodeFrame(encode({ t: 'push-pull', join: true, reply: false, states: [{ info: 'nope' }] })),
    );
    // The agent reads the streams when it gets to them: wait for the counts rather than a fixed time.
    const counted = (x: typeof before): number => (x.malformed ?? 0) + (x.messagesMalformed ?? 0);
    let after = before;
    assert.ok(
      await waitFor(
        async () => {
          after = (await self()).stats;
          return counted(after) >= counted(before) + 5;
        },
        10_000,
        100,
      ),
      `malformed messages are counted (before ${JSON.stringify(before)}, after ${JSON.stringify(after)})`,
    );
    // The cluster is still intact.
    assert.ok(await waitFor(() => cluster.allSeeAlive(2), 10_000, 100));
  });

  it('answers bad API parameters with JSON errors and keeps running', async () => {
    const base = `http://127.0.0.1:${target().httpPort}`;
    const cases: Array<[string, string, number]> = [
      ['PUT', '/v1/agent/join', 400],
      ['PUT', '/v1/agent/join?address=not-an-address', 400],
      ['GET', '/v1/no/such/route', 404],
      ['DELETE', '/v1/agent/members', 405],
      ['GET', '/v1/agent/members?status=sleeping', 400],
    ];
    for (const [method, path, status] of cases) {
      const res = await fetch(base + path, { method });
      assert.equal(res.status, status, `${method} ${path}`);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(typeof body.error.code, 'string');
      assert.ok(body.error.message.length > 0);
    }
    await self();
  });
});
