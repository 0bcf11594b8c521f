// HTTP/2 sessions to peer agents, retired when a snapshot replaces what they prove themselves with
// (Pools.retireH2Unless): calls already asked of a retired session are still sent and answered,
// even while it is connecting, and the next call gets a new session.
import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Pools } from '../../../src/proxy/pools.js';
import { h2Instance, type Instance, WAIT_MS, within } from './harness.js';

/** One GET on `session`: its status and body. */
function call(session: ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, ':method': 'GET' });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
    req.end();
  });
}

const closed = (s: ClientHttp2Session): Promise<void> =>
  s.closed && s.destroyed ? Promise.resolve() : new Promise((r) => s.once('close', () => r()));

describe('Pools: HTTP/2 sessions retired on new credentials', () => {
  let inst: Instance;
  let pools: Pools;
  const open = () => netConnect({ host: '127.0.0.1', port: inst.port });

  before(async () => {
    inst = await h2Instance('h2-1');
  });
  after(async () => {
    pools?.close();
    await inst?.close();
  });

  it('sends the calls asked of a session retired while it is still connecting, then closes it', async () => {
    pools = new Pools();
    const old = pools.h2Session('peer|web', 'api', { open, credentials: { credentials: 'old' } });
    assert.equal(old.connecting, true, 'retired before its connection is up');
    const queued = [1, 2, 3].map((i) => call(old, `/queued/${i}`));
    pools.retireH2Unless(new Set());
    assert.deepEqual(
      await within(Promise.all(queued), WAIT_MS, 'the queued calls'),
      [1, 2, 3].map((i) => ({ status: 200, body: `h2-1 /queued/${i}` })),
    );
    const fresh = pools.h2Session('peer|web', 'api', { open, credentials: { credentials: 'new' } });
    assert.notEqual(fresh, old, 'the next call gets a new session');
    assert.deepEqual(await within(call(fresh, '/next'), WAIT_MS, 'a call on the new session'), {
      status: 200,
      body: 'h2-1 /next',
    });
    await within(closed(old), WAIT_MS, 'the retired session closes');
  });

  it('keeps a session whose credentials are live, and one made without any (to a local instance)', async () => {
    pools = new Pools();
    const credentials = {};
    const peer = pools.h2Session('peer|web', 'api', { open, credentials });
    const local = pools.h2Session('local|api-1', `127.0.0.1:${inst.port}`);
    await within(call(peer, '/a'), WAIT_MS, 'a call to the peer');
    await within(call(local, '/b'), WAIT_MS, 'a call to the local instance');
    pools.retireH2Unless(new Set([credentials]));
    assert.equal(pools.h2Session('peer|web', 'api', { open, credentials }), peer);
    pools.retireH2Unless(new Set());
    assert.equal(pools.h2Session('local|api-1', `127.0.0.1:${inst.port}`), local);
    assert.notEqual(pools.h2Session('peer|web', 'api', { open, credentials }), peer);
  });
});
