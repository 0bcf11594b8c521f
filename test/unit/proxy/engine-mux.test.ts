// HTTP/1.1 between agents over mesh-mux/1, with real engines in this process: concurrent client
// connections share one mTLS connection to the peer agent; a peer agent that predates the
// protocol is still reached (one connection per request, no failed request); an upgrade sent on
// a mux stream is refused, since its bytes could not be framed.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import { MuxSession } from '../../../src/proxy/mux/session.js';
import { ALPN_MUX, serverName } from '../../../src/proxy/peer-tls.js';
import type { Pools } from '../../../src/proxy/pools.js';
import { EMPTY_SNAPSHOT } from '../../../src/proxy/routing.js';
import type { ProxyCert, ProxyEndpoint, ProxySnapshot } from '../../../src/proxy/types.js';
import { connectRetry, freePorts, get, issue, metricValue, WAIT_MS, within } from './harness.js';

const TD = 'mux.mesh';
const HOUR_MS = 3_600_000;
const CONCURRENT = 24;
/** Many flow-control windows' worth, so both directions stall and resume many times. */
const BIG_BYTES = 6 * 1024 * 1024;
const bigBody = Buffer.alloc(BIG_BYTES);
// Printable ASCII: the upload goes as a string, the same bytes in any encoding.
for (let i = 0; i < BIG_BYTES; i++) bigBody[i] = 32 + ((i * 7) % 95);
const fingerprint = (c: PeerCertificate | X509Certificate | object | null): string =>
  c !== null && 'fingerprint256' in c ? String(c.fingerprint256) : 'none';
const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('HTTP/1.1 between agents over mesh-mux/1', () => {
  let root: CaRoot;
  let web: ProxyCert;
  let apiCert: ProxyCert;
  const caller = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  let calleeInbound = '';
  let upstreamPort = 0;
  let inFlight = 0;
  let mostInFlight = 0;
  // The instance holds each request 50 ms, so the caller's requests overlap. It also answers
  // `GET /big` with BIG_BYTES of a known pattern and a POST with its body's length and digest.
  const instance = createHttpServer((req, res) => {
    if (req.url === '/big') {
      res.end(bigBody);
      return;
    }
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        hash.update(c);
      });
      req.on('end', () => res.end(`${n} ${hash.digest('hex')}`));
      return;
    }
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end(`api ${req.url}`);
    }, 50);
  });
  // An agent of an older version: answers as `api` but offers only http/1.1.
  let legacy: ReturnType<typeof createHttpsServer>;

  const endpoint = (inbound: string): ProxyEndpoint => ({
    id: `callee/api-1`,
    instanceId: 'api-1',
    service: 'api',
    inbound,
    local: false,
    healthy: true,
    passing: true,
    tags: [],
    meta: {},
  });
  const base = (change: Partial<ProxySnapshot>): ProxySnapshot => ({
    ...EMPTY_SNAPSHOT,
    version: { raft: 1, catalog: 1 },
    trustDomain: TD,
    roots: [root.certPem],
    ...change,
  });
  let version = 1;
  const callerSnapshot = (inbound: string): ProxySnapshot =>
    base({
      version: { raft: ++version, catalog: version },
      certs: { web },
      upstreams: [
        { source: 'web', destination: 'api', bindHost: '127.0.0.1', port: upstreamPort, protocol: 'http' },
      ],
      chains: { api: compileChain(() => undefined, 'api', 'http') },
      endpoints: { api: [endpoint(inbound)] },
    });

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    [web, apiCert] = (await Promise.all(['web', 'api'].map((s) => issue(root, TD, s)))) as [
      ProxyCert,
      ProxyCert,
    ];
    await new Promise<void>((r) => instance.listen(0, '127.0.0.1', r));
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    calleeInbound = `${a.host}:${a.port}`;
    [upstreamPort] = (await freePorts(1)) as [number];
    const instancePort = (instance.address() as AddressInfo).port;
    callee.apply(
      base({
        certs: { api: apiCert },
        local: [
          {
            id: 'api-1',
            service: 'api',
            host: '127.0.0.1',
            port: instancePort,
            protocol: 'http',
            requestTimeoutMs: WAIT_MS,
            connectTimeoutMs: WAIT_MS,
          },
        ],
      }),
    );
    legacy = createHttpsServer(
      {
        key: apiCert.keyPem,
        cert: apiCert.certPem,
        ca: [root.certPem],
        requestCert: true,
        ALPNProtocols: ['http/1.1'],
      },
      (req, res) => res.end(`legacy ${req.url}`),
    );
    await new Promise<void>((r) => legacy.listen(0, '127.0.0.1', r));
    caller.apply(callerSnapshot(calleeInbound));
    (await connectRetry(upstreamPort)).destroy();
  });

  after(async () => {
    caller.stop();
    callee.stop();
    instance.closeAllConnections();
    instance.close();
    legacy.closeAllConnections();
    legacy.close();
  });

  it(`carries ${CONCURRENT} concurrent client connections over one mTLS connection to the peer agent`, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENT });
    try {
      const replies = await Promise.all(
        Array.from({ length: CONCURRENT }, (_, i) => get(upstreamPort, `/r${i}`, { agent })),
      );
      assert.deepEqual(
        replies.map((r) => `${r.status} ${r.body}`),
        replies.map((_, i) => `200 api /r${i}`),
      );
      assert.ok(mostInFlight > 1, `the requests overlapped at the instance (${mostInFlight} at once)`);
      const inbound = metricValue(await callee.metrics.text(), 'mesh_proxy_connections_open', {
        direction: 'inbound',
      });
      assert.equal(inbound, 1, 'one mTLS connection between the agents');
      const mux = async (engine: ProxyEngine, name: string, role: string): Promise<number> =>
        metricValue(await engine.metrics.text(), name, { role });
      assert.equal(await mux(caller, 'mesh_proxy_mux_sessions_open', 'caller'), 1);
      assert.equal(await mux(callee, 'mesh_proxy_mux_sessions_open', 'callee'), 1);
      // The client's keep-alive connections are pooled streams, open on both agents.
      assert.ok((await mux(caller, 'mesh_proxy_mux_streams_open', 'caller')) >= mostInFlight);
      assert.ok((await mux(callee, 'mesh_proxy_mux_streams_open', 'callee')) >= 1);
    } finally {
      agent.destroy();
    }
  });

  it('relays a body of many windows each way intact, to a client that stops reading for a while', async () => {
    const down = await within(
      new Promise<Buffer>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: upstreamPort, path: '/big', agent: false },
          (res) => {
            const parts: Buffer[] = [];
            let paused = false;
            res.on('data', (c: Buffer) => {
              parts.push(c);
              if (!paused) {
                // Stop reading after the first chunk: every window on the path fills, then drains.
                paused = true;
                res.pause();
                setTimeout(() => res.resume(), 300);
              }
            });
            res.on('end', () => resolve(Buffer.concat(parts)));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end();
      }),
      WAIT_MS,
      'GET /big',
    );
    assert.equal(down.length, BIG_BYTES);
    assert.equal(digest(down), digest(bigBody));
    const up = await get(upstreamPort, '/upload', {
      method: 'POST',
      body: bigBody.toString('latin1'),
      headers: { 'content-length': String(BIG_BYTES) },
    });
    assert.equal(up.body, `${BIG_BYTES} ${digest(bigBody)}`);
  });

  it('moves to a new mTLS connection once the calling service has a new certificate', async () => {
    const inboundOpen = async (): Promise<number> =>
      metricValue(await callee.metrics.text(), 'mesh_proxy_connections_open', { direction: 'inbound' });
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const burst = async (tag: string): Promise<string[]> =>
      (
        await Promise.all(Array.from({ length: 4 }, (_, i) => get(upstreamPort, `/${tag}${i}`, { agent })))
      ).map((r) => `${r.status} ${r.body}`);
    try {
      assert.deepEqual(await burst('old'), [
        '200 api /old0',
        '200 api /old1',
        '200 api /old2',
        '200 api /old3',
      ]);
      assert.equal(await inboundOpen(), 1);
      web = await issue(root, TD, 'web');
      caller.apply(callerSnapshot(calleeInbound));
      assert.deepEqual(await burst('new'), [
        '200 api /new0',
        '200 api /new1',
        '200 api /new2',
        '200 api /new3',
      ]);
      // The old session closes once its idle streams are dropped (bounded wait, 5 s). The callee
      // may see it closed a moment before the caller's own socket reports its close: wait for both.
      const mux = (caller as unknown as { pools: Pools }).pools.mux;
      for (let i = 0; i < 100 && ((await inboundOpen()) !== 1 || mux.sessions().length !== 1); i++)
        await sleep(50);
      assert.equal(await inboundOpen(), 1, 'one session left');
      const sessions = mux.sessions();
      assert.deepEqual(
        sessions.map((m) => fingerprint((m.socket as TLSSocket).getCertificate())),
        [fingerprint(new X509Certificate(web.certPem))],
        'the session left proves the new certificate',
      );
    } finally {
      agent.destroy();
    }
  });

  it('reaches a peer agent that predates mesh-mux/1, without failing a request', async () => {
    const legacyInbound = `127.0.0.1:${(legacy.address() as AddressInfo).port}`;
    caller.apply(callerSnapshot(legacyInbound));
    try {
      for (let i = 0; i < 3; i++) {
        const r = await get(upstreamPort, `/old${i}`);
        assert.equal(`${r.status} ${r.body}`, `200 legacy /old${i}`);
      }
    } finally {
      caller.apply(callerSnapshot(calleeInbound));
    }
  });

  it('refuses an upgrade sent on a mux stream with 400, and serves the session on', async () => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: Number(calleeInbound.split(':')[1]),
      servername: serverName('api', TD),
      ALPNProtocols: [ALPN_MUX],
      key: web.keyPem,
      cert: web.certPem,
      ca: [root.certPem],
      checkServerIdentity: () => undefined,
    });
    const session = new MuxSession(socket, 'caller');
    socket.once('secureConnect', () => session.markReady());
    const ask = (request: string): Promise<string> => {
      const s = session.openStream();
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      s.once('connect', () => s.write(request));
      return within(new Promise((resolve) => s.once('end', () => resolve(got))), WAIT_MS, 'reply');
    };
    try {
      const refused = await ask(
        'GET /ws HTTP/1.1\r\nhost: api\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n',
      );
      assert.match(refused, /^HTTP\/1\.1 400 [\s\S]*an upgrade needs a connection of its own/);
      const served = await ask('GET /after HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n');
      assert.match(served, /^HTTP\/1\.1 200 [\s\S]*api \/after$/);
    } finally {
      socket.destroy();
    }
  });
});
