// An upstream port that is taken: the listener reports its error in the status and tries again
// every LISTEN_RETRY_MS (5 s), logging each failure once, however many snapshots come meanwhile;
// once the port is free it opens on its own.
import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import { connectRetry, snapshots, until } from './harness.js';

describe('an upstream port in use', () => {
  it('is retried on its own timer, not on every snapshot, and opens once freed', async () => {
    const failures: string[] = [];
    const engine = new ProxyEngine({
      connectionsMax: 16,
      log: (level, msg) => {
        if (msg === 'upstream listener failed') failures.push(level);
      },
    });
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const port = (squatter.address() as AddressInfo).port;
    const snap = snapshots('listen.mesh', () => '');
    const withPort = () =>
      snap({
        roots: [],
        upstreams: [{ source: 'web', destination: 'api', bindHost: '127.0.0.1', port, protocol: 'http' }],
      });
    try {
      await engine.start('127.0.0.1', 0);
      engine.apply(withPort());
      await until(() => failures.length === 1, 'the bind failure logged');
      const address = `127.0.0.1:${port}`;
      assert.match(engine.status().upstreams.find((u) => u.address === address)?.error ?? '', /EADDRINUSE/);
      // Snapshots in a row (health changes, say) within the retry interval: no new attempt each.
      for (let i = 0; i < 10; i++) {
        engine.apply(withPort());
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(failures.length, 1, 'one failure logged, not one per snapshot');
      await new Promise((r) => squatter.close(r));
      await until(
        () => engine.status().upstreams.find((u) => u.address === address)?.error === '',
        'the listener opened after the port was freed',
      );
      (await connectRetry(port)).destroy();
    } finally {
      engine.stop();
      squatter.close();
    }
  });
});
