// The CA's certificates through Node's real TLS stack (OpenSSL) on 127.0.0.1, configured exactly as the
// notes at the top of src/ca/x509.ts tell the proxy to: mutual TLS, identity by SPIFFE URI, rotation
// through a cross-signed root.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import * as tls from 'node:tls';
import { peerServiceOf, type SpiffeIdentity } from '../../../src/ca/spiffe.js';
import { type CaRoot, createLeafKeyAndCsr, createRoot, crossSign, signLeaf } from '../../../src/ca/x509.js';

const TD = '3f9c2a1e.mesh';
const DAY_MS = 86_400_000;
const HANDSHAKE_TIMEOUT_MS = 5_000;

interface Identity {
  service: string;
  keyPem: string;
  /** Leaf first, then intermediates (the cross-signed root during a rotation). */
  chainPem: string;
}

async function issue(root: CaRoot, service: string, crossPem?: string): Promise<Identity> {
  const { keyPem, csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service });
  const leaf = await signLeaf({
    csrPem,
    caCertPem: root.certPem,
    caKeyPem: root.keyPem,
    trustDomain: TD,
    service,
    nowMs: Date.now(), // OpenSSL checks validity against the real clock
    ttlMs: DAY_MS,
  });
  return { service, keyPem, chainPem: crossPem === undefined ? leaf.certPem : leaf.certPem + crossPem };
}

/** The client's identity check: the peer must be `service` in our trust domain, by its URI SAN. */
function expectPeer(service: string) {
  return (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    const peer = peerServiceOf(cert);
    if (peer?.trustDomain === TD && peer.service === service) return undefined;
    return new Error(
      `peer is ${peer ? `${peer.service}@${peer.trustDomain}` : 'no mesh service'}, want ${service}`,
    );
  };
}

interface Outcome {
  ok: boolean;
  error?: string;
  /** What each side read from the other's certificate. */
  serverSaw?: SpiffeIdentity;
  clientSaw?: SpiffeIdentity;
  handshakeMs?: number;
}

/** One connection, server and client in this process. Success means the client received the server's
 * greeting, which the server sends only after it accepted the client's certificate (in TLS 1.3 the
 * client finishes its handshake before the server has judged the client certificate). */
async function connect(opts: {
  server?: Identity;
  serverCa: string[];
  client?: Identity;
  clientCa: string[];
  expectService: string;
}): Promise<Outcome> {
  let serverSaw: SpiffeIdentity | undefined;
  let serverError: string | undefined;
  const server = tls.createServer(
    {
      key: opts.server?.keyPem,
      cert: opts.server?.chainPem,
      ca: opts.serverCa,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (socket) => {
      serverSaw = peerServiceOf(socket.getPeerCertificate());
      socket.end('hello');
    },
  );
  server.on('tlsClientError', (err) => {
    serverError = err.message;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const startMs = performance.now();
  const clientSide = await new Promise<Outcome>((resolve) => {
    let handshakeMs: number | undefined;
    let clientSaw: SpiffeIdentity | undefined;
    let received = '';
    const client = tls.connect({
      host: '127.0.0.1',
      port,
      key: opts.client?.keyPem,
      cert: opts.client?.chainPem,
      ca: opts.clientCa,
      servername: `${opts.expectService}.svc.${TD}`,
      checkServerIdentity: expectPeer(opts.expectService),
      minVersion: 'TLSv1.3',
    });
    const timer = setTimeout(() => client.destroy(new Error('timeout')), HANDSHAKE_TIMEOUT_MS);
    const done = (outcome: Outcome) => {
      clearTimeout(timer);
      client.destroy();
      resolve(outcome);
    };
    client.on('secureConnect', () => {
      handshakeMs = performance.now() - startMs;
      clientSaw = peerServiceOf(client.getPeerCertificate());
    });
    client.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    client.on('end', () => {
      if (received === 'hello') done({ ok: true, clientSaw, handshakeMs });
      else done({ ok: false, error: 'closed without greeting' });
    });
    client.on('error', (err) => done({ ok: false, error: err.message }));
  });
  // close() resolves once the server's side of the connection is gone, so by then it has reported
  // why it refused the client (the client itself often sees only "socket hang up").
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (clientSide.ok) return { ...clientSide, serverSaw };
  return { ok: false, error: serverError ?? clientSide.error };
}

describe('mutual TLS with mesh certificates', () => {
  it('connects two services, each knowing the other by its SPIFFE identity', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 365 * DAY_MS });
    const web = await issue(root, 'web');
    const api = await issue(root, 'api');
    const out = await connect({
      server: api,
      serverCa: [root.certPem],
      client: web,
      clientCa: [root.certPem],
      expectService: 'api',
    });
    assert.equal(out.error, undefined);
    assert.deepEqual(out.serverSaw, { trustDomain: TD, service: 'web' });
    assert.deepEqual(out.clientSaw, { trustDomain: TD, service: 'api' });
  });

  it('refuses the wrong service, an untrusted root, and a client without a certificate', async () => {
    const root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 365 * DAY_MS });
    const stranger = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 365 * DAY_MS });
    const web = await issue(root, 'web');
    const api = await issue(root, 'api');
    const fakeApi = await issue(stranger, 'api');
    const fakeWeb = await issue(stranger, 'web');
    const ca = [root.certPem];

    const wrongService = await connect({
      server: api,
      serverCa: ca,
      client: web,
      clientCa: ca,
      expectService: 'db',
    });
    assert.match(wrongService.error ?? '', /peer is api@3f9c2a1e\.mesh, want db/);
    const untrustedServer = await connect({
      server: fakeApi,
      serverCa: ca,
      client: web,
      clientCa: ca,
      expectService: 'api',
    });
    assert.match(
      untrustedServer.error ?? '',
      /unable to (get local issuer certificate|verify the first certificate)/,
    );
    const untrustedClient = await connect({
      server: api,
      serverCa: ca,
      client: fakeWeb,
      clientCa: ca,
      expectService: 'api',
    });
    // The server destroys the socket without an event or alert (Node's rejectUnauthorized on a server),
    // so the client sees only the hang-up.
    assert.equal(untrustedClient.ok, false);
    assert.match(untrustedClient.error ?? '', /socket hang up|ECONNRESET/);
    const anonymous = await connect({ server: api, serverCa: ca, clientCa: ca, expectService: 'api' });
    assert.equal(anonymous.ok, false);
    assert.match(anonymous.error ?? '', /peer did not return a certificate/);
  });

  it('keeps old and new agents talking through a root rotation', async () => {
    const a = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 365 * DAY_MS });
    const b = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 365 * DAY_MS });
    const crossPem = await crossSign({
      newRootCertPem: b.certPem,
      oldRootCertPem: a.certPem,
      oldRootKeyPem: a.keyPem,
      nowMs: Date.now(),
      ttlMs: 365 * DAY_MS,
    });
    const oldOnly = [a.certPem];
    const both = [a.certPem, b.certPem];
    const bothNewFirst = [b.certPem, a.certPem];
    const newOnly = [b.certPem];
    const webA = await issue(a, 'web');
    const apiA = await issue(a, 'api');
    const webB = await issue(b, 'web', crossPem); // new leaves carry the cross-signed root
    const apiB = await issue(b, 'api', crossPem);
    const apiBBare = await issue(b, 'api');
    const cases: Array<[string, Parameters<typeof connect>[0], boolean]> = [
      [
        'old client → new server',
        { server: apiB, serverCa: both, client: webA, clientCa: oldOnly, expectService: 'api' },
        true,
      ],
      [
        'new client → old server',
        { server: apiA, serverCa: oldOnly, client: webB, clientCa: both, expectService: 'api' },
        true,
      ],
      [
        'updated peers, old leaf',
        { server: apiA, serverCa: both, client: webA, clientCa: both, expectService: 'api' },
        true,
      ],
      [
        'updated peers, new leaf',
        { server: apiB, serverCa: both, client: webB, clientCa: both, expectService: 'api' },
        true,
      ],
      [
        'bundle order is irrelevant',
        { server: apiA, serverCa: bothNewFirst, client: webB, clientCa: bothNewFirst, expectService: 'api' },
        true,
      ],
      [
        'after A is dropped, cross still sent',
        { server: apiB, serverCa: newOnly, client: webB, clientCa: newOnly, expectService: 'api' },
        true,
      ],
      [
        'old client, new leaf without cross',
        { server: apiBBare, serverCa: both, client: webA, clientCa: oldOnly, expectService: 'api' },
        false,
      ],
      [
        'after A is dropped, old leaf',
        { server: apiA, serverCa: both, client: webB, clientCa: newOnly, expectService: 'api' },
        false,
      ],
    ];
    for (const [name, options, expectOk] of cases) {
      const out = await connect(options);
      assert.equal(out.ok, expectOk, `${name}: ${out.error ?? 'connected'}`);
      if (expectOk) assert.deepEqual(out.clientSaw, { trustDomain: TD, service: 'api' }, name);
    }
  });

  it('prints how long each step takes (informational)', async () => {
    const runs = 20;
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const startMs = performance.now();
      for (let i = 0; i < runs; i++) await fn();
      return (performance.now() - startMs) / runs;
    };
    const root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: 365 * DAY_MS });
    const { csrPem } = await createLeafKeyAndCsr({ trustDomain: TD, service: 'web' });
    const rootMs = await time(() => createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: DAY_MS }));
    const csrMs = await time(() => createLeafKeyAndCsr({ trustDomain: TD, service: 'web' }));
    const signMs = await time(() =>
      signLeaf({
        csrPem,
        caCertPem: root.certPem,
        caKeyPem: root.keyPem,
        trustDomain: TD,
        service: 'web',
        nowMs: Date.now(),
        ttlMs: DAY_MS,
      }),
    );
    const web = await issue(root, 'web');
    const api = await issue(root, 'api');
    const handshakes: number[] = [];
    for (let i = 0; i < runs; i++) {
      const out = await connect({
        server: api,
        serverCa: [root.certPem],
        client: web,
        clientCa: [root.certPem],
        expectService: 'api',
      });
      assert.ok(out.ok && out.handshakeMs !== undefined);
      handshakes.push(out.handshakeMs);
    }
    handshakes.sort((x, y) => x - y);
    const median = handshakes[Math.floor(runs / 2)]!;
    console.log(
      `ms per call (mean of ${runs}): createRoot ${rootMs.toFixed(2)}, createLeafKeyAndCsr ${csrMs.toFixed(2)}, ` +
        `signLeaf ${signMs.toFixed(2)}, mTLS handshake (median, client side) ${median.toFixed(2)}`,
    );
  });
});
