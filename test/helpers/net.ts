import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createHost, type Host } from '../../src/agent/host.js';

/** A port nothing listens on: bind one, then close it. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A started libp2p host with a fresh identity on 127.0.0.1 (random port), no cluster key. */
export async function loopbackHost(connectionsMax = 16): Promise<Host> {
  const host = await createHost({
    privateKey: await generateKeyPair('Ed25519'),
    bind: { host: '127.0.0.1', port: 0 },
    advertise: { host: '127.0.0.1', port: 0 },
    clusterKey: undefined,
    connectionsMax,
  });
  await host.start();
  return host;
}
