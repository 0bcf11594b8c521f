// Two real ProxyEngines in this process — a caller agent (service web) and a callee agent (echo, api,
// h2api, canary) — with real local instances behind the callee, over mTLS on 127.0.0.1. Every case
// is something an operator would see: bytes and requests arriving, denials, refused strangers,
// traffic splits, unhealthy instances skipped, listeners following the snapshot.
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { type ClientHttp2Session, connect as h2connect, constants as h2constants } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain, type Lookup } from '../../../src/core/routing/chain.js';
import type { LbPolicy } from '../../../src/core/routing/lb-common.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import { TCP_LIMITS, tcpTicker } from '../../../src/proxy/tcp-close.js';
import type {
  ProxyEndpoint,
  ProxyLocalInstance,
  ProxyProtocol,
  ProxySnapshot,
  ProxyUpstream,
} from '../../../src/proxy/types.js';
import {
  connectRetry,
  echo,
  echoInstance,
  freePorts,
  get,
  type H2Answer,
  h2Get,
  h2Instance,
  httpInstance,
  type Instance,
  issue,
  metricValue,
  SLOW_ANSWER_MS,
  until,
  untilClosed,
  WAIT_MS,
  waitRefused,
  within,
} from './harness.js';

const TD = '5e1f00d2.mesh';
const HOUR_MS = 3_600_000;
const SPLIT_REQUESTS = 1_000;
const SPLIT_CONCURRENCY = 16;
/** Sequential gRPC calls in the ewma test. */
const GRPC_LB_CALLS = 30;
const noEntries: Lookup = () => undefined;
/** How long the metrics test keeps an upgraded connection open past its 101. */
const UPGRADE_HELD_MS = 200;

/** One gRPC-shaped call (an empty message) on `session`; resolves with who served it (`x-served-by`). */
function grpcCallServedBy(session: ClientHttp2Session): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':path': '/demo.Greeter/SayHello',
      ':method': 'POST',
      'content-type': 'application/grpc',
    });
    let by = '';
    req.on('response', (h) => (by = String(h['x-served-by'] ?? '')));
    req.on('error', reject);
    req.on('close', () => resolve(by));
    req.resume();
    req.end(Buffer.alloc(5));
  });
}

/** An HTTP/2 GET on `session`: which instance answered, and whether the answer came whole (not reset). */
function h2ServedBy(session: ClientHttp2Session, path: string): Promise<{ by: string; whole: boolean }> {
  return new Promise((resolve) => {
    const req = session.request({ ':path': path, ':method': 'GET' });
    let by = '';
    let ended = false;
    req.on('response', (h) => (by = String(h['x-served-by'] ?? '')));
    req.on('end', () => (ended = true));
    req.on('error', () => undefined);
    req.on('close', () => resolve({ by, whole: ended && req.rstCode === h2constants.NGHTTP2_NO_ERROR }));
    req.resume();
    req.end();
  });
}

/** Ask for an upgrade to the harness's echo protocol on `s`; resolves with the answer's head. */
function askUpgrade(s: Socket): Promise<string> {
  return new Promise<string>((resolve) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.write('GET /chat HTTP/1.1\r\nhost: api\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n');
  });
}

interface Logged {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

describe('ProxyEngine (caller and callee in process)', () => {
  let root: CaRoot;
  let caller: ProxyEngine;
  let callee: ProxyEngine;
  let calleeInbound = '';
  const logs: Logged[] = [];
  const inst: Record<string, Instance> = {};
  const port: Record<'echo' | 'api' | 'h2api' | 'canary', number> = { echo: 0, api: 0, h2api: 0, canary: 0 };
  let calleeBase: ProxySnapshot;
  let callerBase: ProxySnapshot;
  let version = 1;

  const localOf = (id: string, service: string, protocol: ProxyProtocol): ProxyLocalInstance => ({
    id,
    service,
    host: '127.0.0.1',
    port: (inst[id] as Instance).port,
    protocol,
    requestTimeoutMs: WAIT_MS,
    connectTimeoutMs: WAIT_MS,
  });
  const endpoint = (
    instanceId: string,
    service: string,
    o: { healthy?: boolean; meta?: Record<string, string> } = {},
  ): ProxyEndpoint => ({
    id: `callee/${instanceId}`,
    instanceId,
    service,
    inbound: calleeInbound,
    local: false,
    healthy: o.healthy ?? true,
    passing: o.healthy ?? true,
    tags: [],
    meta: o.meta ?? {},
  });
  const upstream = (destination: keyof typeof port, protocol: ProxyProtocol): ProxyUpstream => ({
    source: 'web',
    destination,
    bindHost: '127.0.0.1',
    port: port[destination],
    protocol,
  });
  /** The snapshot with a new version, so each apply is a change the engine must take in. */
  const next = (s: ProxySnapshot, change: Partial<ProxySnapshot> = {}): ProxySnapshot => ({
    ...s,
    ...change,
    version: { raft: ++version, catalog: version },
  });

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    const [web, echoCert, api, h2api, canary] = await Promise.all(
      ['web', 'echo', 'api', 'h2api', 'canary'].map((s) => issue(root, TD, s)),
    );
    inst['echo-1'] = await echoInstance('echo-1');
    for (const id of ['api-1', 'api-2', 'canary-v1', 'canary-v2']) inst[id] = await httpInstance(id);
    inst['h2api-1'] = await h2Instance('h2api-1');

    const log = (level: string, msg: string, fields: Record<string, unknown>): void => {
      logs.push({ level, msg, fields });
    };
    callee = new ProxyEngine({ connectionsMax: 256, log });
    caller = new ProxyEngine({ connectionsMax: 256, log });
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    calleeInbound = `${a.host}:${a.port}`;

    const common = {
      trustDomain: TD,
      roots: [root.certPem],
      intentions: {},
      mesh: undefined,
      accessLogs: false,
    };
    calleeBase = {
      ...common,
      version: { raft: 1, catalog: 1 },
      certs: { echo: echoCert!, api: api!, h2api: h2api!, canary: canary! },
      upstreams: [],
      chains: {},
      endpoints: {},
      local: [
        localOf('echo-1', 'echo', 'tcp'),
        localOf('api-1', 'api', 'http'),
        localOf('api-2', 'api', 'http'),
        localOf('h2api-1', 'h2api', 'http2'),
        localOf('canary-v1', 'canary', 'http'),
        localOf('canary-v2', 'canary', 'http'),
      ],
    };
    const canaryEntries: Lookup = (kind, name) => {
      if (name !== 'canary') return undefined;
      if (kind === 'service-resolver') {
        return {
          defaultSubset: 'v1',
          subsets: {
            v1: { filter: { meta: { version: 'v1' } } },
            v2: { filter: { meta: { version: 'v2' } } },
          },
        };
      }
      if (kind === 'service-splitter') {
        return {
          splits: [
            { weight: 90, serviceSubset: 'v1' },
            { weight: 10, serviceSubset: 'v2' },
          ],
        };
      }
      return undefined;
    };
    const canaryChain = compileChain(canaryEntries, 'canary', 'http');
    assert.deepEqual(canaryChain.errors, []);
    const free = await freePorts(4);
    [port.echo, port.api, port.h2api, port.canary] = free as [number, number, number, number];
    callerBase = {
      ...common,
      version: { raft: 1, catalog: 1 },
      certs: { web: web! },
      upstreams: [
        upstream('echo', 'tcp'),
        upstream('api', 'http'),
        upstream('h2api', 'http2'),
        upstream('canary', 'http'),
      ],
      chains: {
        echo: compileChain(noEntries, 'echo', 'tcp'),
        api: compileChain(noEntries, 'api', 'http'),
        h2api: compileChain(noEntries, 'h2api', 'http2'),
        canary: canaryChain,
      },
      endpoints: {
        echo: [endpoint('echo-1', 'echo')],
        // api-2 is down: it must never get a request while api-1 is up.
        api: [endpoint('api-1', 'api'), endpoint('api-2', 'api', { healthy: false })],
        h2api: [endpoint('h2api-1', 'h2api')],
        canary: [
          endpoint('canary-v1', 'canary', { meta: { version: 'v1' } }),
          endpoint('canary-v2', 'canary', { meta: { version: 'v2' } }),
        ],
      },
      local: [],
    };
    callee.apply(calleeBase);
    caller.apply(callerBase);
    for (const p of [port.api, port.h2api, port.canary]) (await connectRetry(p)).destroy();
  });

  after(async () => {
    caller?.stop();
    callee?.stop();
    await Promise.all(Object.values(inst).map((i) => i.close()));
  });

  it('relays TCP bytes both ways: upstream port → callee inbound → instance', async () => {
    const s = await connectRetry(port.echo);
    try {
      assert.equal(await echo(s, 'hello through the mesh'), 'hello through the mesh');
      const big = 'x'.repeat(256 * 1024);
      assert.equal(await echo(s, big), big);
    } finally {
      s.destroy();
    }
    const text = await caller.metrics.text();
    const labels = { direction: 'outbound', source: 'web', destination: 'echo' };
    assert.ok(metricValue(text, 'mesh_proxy_connections_total', { ...labels, result: 'ok' }) >= 1);
    assert.ok(metricValue(text, 'mesh_proxy_tcp_bytes_total', { ...labels, flow: 'received' }) >= 256 * 1024);
  });

  it('resumes the TLS session with the callee for a new connection, until the caller’s certificate is renewed', async () => {
    const handshakes = async (resumed: 'true' | 'false'): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_peer_handshakes_total', { resumed });
    const calleeSawWeb = async (): Promise<number> =>
      metricValue(await callee.metrics.text(), 'mesh_proxy_connections_total', {
        direction: 'inbound',
        source: 'web',
        destination: 'echo',
        result: 'ok',
      });
    const echoOnce = async (text: string): Promise<void> => {
      const s = await connectRetry(port.echo);
      try {
        assert.equal(await echo(s, text), text);
      } finally {
        s.destroy();
      }
    };
    await echoOnce('first');
    const [resumed, full, seen] = [await handshakes('true'), await handshakes('false'), await calleeSawWeb()];
    await echoOnce('second');
    assert.equal(await handshakes('true'), resumed + 1, 'the second connection resumed a session');
    assert.equal(await handshakes('false'), full);
    // The callee still knows who calls on a resumed session: its intention check and metrics see web.
    assert.equal(await calleeSawWeb(), seen + 1);
    // Connections one after another keep resuming. With each ticket used once they did not (every
    // third was full), which is why the caller offers its newest ticket again (peer-tls.ts).
    for (const text of ['third', 'fourth', 'fifth', 'sixth']) await echoOnce(text);
    assert.equal(await handshakes('true'), resumed + 5, 'every later connection resumed too');
    assert.equal(await handshakes('false'), full);
    // A renewed certificate is a new client context: the next handshake is full, checked anew.
    callerBase = next(callerBase, { certs: { web: await issue(root, TD, 'web') } });
    caller.apply(callerBase);
    await echoOnce('after renewal');
    assert.equal(await handshakes('false'), full + 1, 'a full handshake with the renewed certificate');
    assert.equal(await handshakes('true'), resumed + 5);
  });

  it('refuses a resumed session for a service the callee no longer serves; the caller then drops the ticket', async () => {
    const handshakes = async (resumed: 'true' | 'false'): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_peer_handshakes_total', { resumed });
    /** Sends a line through the upstream port; what came back before the connection closed. */
    const tryEcho = async (): Promise<string> => {
      const s = await connectRetry(port.echo);
      s.on('error', () => undefined);
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        s.destroy();
      });
      s.write('anyone there?');
      await untilClosed(s);
      return got;
    };
    assert.equal(await tryEcho(), 'anyone there?', 'a session with the callee for echo is held');
    const { echo: _gone, ...certs } = calleeBase.certs;
    callee.apply(next(calleeBase, { certs }));
    try {
      const resumed = await handshakes('true');
      assert.equal(await tryEcho(), '', 'the resumed session was refused');
      assert.equal(await handshakes('true'), resumed + 1);
      assert.ok(
        logs.some((l) => l.msg === 'inbound connection for a service this agent does not serve refused'),
      );
      // The ticket is gone: a full handshake, which the callee refuses before it completes. Tried
      // three times in all (the one instance each time), then the client's connection is closed.
      const retries = (): number => logs.filter((l) => l.msg.startsWith('outbound connect failed')).length;
      const retriesBefore = retries();
      assert.equal(await tryEcho(), '');
      assert.equal(await handshakes('true'), resumed + 1, 'the ticket was not offered again');
      assert.equal(retries() - retriesBefore, 2);
    } finally {
      callee.apply(next(calleeBase));
    }
    assert.equal(await tryEcho(), 'anyone there?');
  });

  it('relays a TCP half-close both ways: the instance answers after the client has finished sending', async () => {
    const s = netConnect({ port: port.echo, host: '127.0.0.1', allowHalfOpen: true });
    s.on('error', () => undefined);
    const sent = Buffer.alloc(1024 * 1024, 'h');
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    const ended = new Promise<boolean>((r) => {
      s.on('end', () => r(true));
      s.on('close', () => r(false));
    });
    // Everything, then FIN: the echo sends it back and ends only after reading that FIN.
    s.end(sent);
    const gotEnd = await ended;
    s.destroy();
    assert.equal(gotEnd, true, 'the client saw the end of the answer');
    assert.equal(Buffer.concat(parts).length, sent.length);
  });

  it('relays an HTTP/1.1 request with a traceparent and without the mesh instance header', async () => {
    const before = inst['api-1']!.seen.length;
    const r = await get(port.api, '/users?id=7', { headers: { 'x-mesh-instance': 'api-2' } });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'api-1 /users?id=7');
    assert.equal(r.headers['x-served-by'], 'api-1');
    const seen = inst['api-1']!.seen.slice(before);
    assert.equal(seen.length, 1);
    assert.match(String(seen[0]!.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(seen[0]!.headers['x-mesh-instance'], undefined);
  });

  it('calls an instance on its own agent directly, with a traceparent and without the mesh instance header', async () => {
    // The callee's service canary calls api, whose instance api-1 runs on the same agent.
    const [localPort] = (await freePorts(1)) as [number];
    const withLocal = next(calleeBase, {
      upstreams: [
        { source: 'canary', destination: 'api', bindHost: '127.0.0.1', port: localPort, protocol: 'http' },
      ],
      chains: { api: compileChain(noEntries, 'api', 'http') },
      endpoints: { api: [{ ...endpoint('api-1', 'api'), local: true }] },
    });
    callee.apply(withLocal);
    try {
      (await connectRetry(localPort)).destroy();
      const before = inst['api-1']!.seen.length;
      for (let i = 0; i < 3; i++) {
        const r = await get(localPort, `/local?n=${i}`);
        assert.equal(r.status, 200);
        assert.equal(r.body, `api-1 /local?n=${i}`);
      }
      const seen = inst['api-1']!.seen.slice(before);
      assert.equal(seen.length, 3);
      for (const s of seen) {
        assert.match(String(s.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        assert.equal(s.headers['x-mesh-instance'], undefined);
      }
    } finally {
      callee.apply(next(calleeBase));
    }
  });

  it('answers an HTTP/1.1 client that shuts down its sending side after the request', async () => {
    const s = netConnect({ port: port.api, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    const ended = new Promise<void>((r) => s.on('end', () => r()));
    s.on('error', () => undefined);
    s.end('GET /half-closed HTTP/1.1\r\nhost: api\r\n\r\n');
    await ended;
    s.destroy();
    assert.match(data, /^HTTP\/1\.1 200 [\s\S]*api-1 \/half-closed\r\n0\r\n\r\n$/);
  });

  it('counts an HTTP client connection as open while it is, and no longer once it closes', async () => {
    const open = async (): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_connections_open', { direction: 'outbound' });
    // Earlier tests' client connections are closing: start from none (bounded wait, 5 s).
    for (let i = 0; i < 100 && (await open()) !== 0; i++) await sleep(50);
    const before = await open();
    assert.equal(before, 0);
    const s = await connectRetry(port.api);
    const answered = new Promise<void>((resolve) => {
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('api-1 /count')) resolve();
      });
    });
    s.write('GET /count HTTP/1.1\r\nhost: api\r\n\r\n');
    await answered;
    assert.equal(await open(), before + 1);
    s.destroy();
    // Bounded wait (5 s) for the agent's side of the connection to close.
    for (let i = 0; i < 100 && (await open()) !== before; i++) await sleep(50);
    assert.equal(await open(), before);
  });

  it('counts the requests it refuses unread, by status: malformed, unsupported version, CONNECT on an upstream port', async () => {
    const unread = async (code: string): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_requests_refused_unread_total', {
        direction: 'outbound',
        code,
      });
    const before = { 400: await unread('400'), 505: await unread('505'), 405: await unread('405') };
    const heads: Array<[string, keyof typeof before]> = [
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
      ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
      ['CONNECT api:80 HTTP/1.1\r\nHost: api:80\r\n\r\n', 405],
    ];
    for (const [head, status] of heads) {
      const s = await connectRetry(port.api);
      s.write(head);
      assert.match(await untilClosed(s), new RegExp(`^HTTP/1\\.1 ${status} `));
    }
    for (const status of [400, 505, 405] as const)
      assert.equal(await unread(String(status)), before[status] + 1);
  });

  it('passes an HTTP Upgrade (WebSocket) through: after the 101, bytes flow both ways', async () => {
    const s = await connectRetry(port.api);
    assert.match(await askUpgrade(s), /^HTTP\/1\.1 101 /);
    assert.equal(await echo(s, 'frames after the upgrade'), 'frames after the upgrade');
    s.destroy();
  });

  it('counts an upgrade as a request with code 101 on both agents, timed to its 101, not for as long as the connection lasts', async () => {
    const labels = { source: 'web', destination: 'api', code: '101' };
    const seen = async (engine: ProxyEngine, direction: string) => {
      const text = await engine.metrics.text();
      const of = (name: string): number => metricValue(text, name, { direction, ...labels });
      return {
        counted: of('mesh_proxy_requests_total'),
        timed: of('mesh_proxy_request_duration_seconds_count'),
        seconds: of('mesh_proxy_request_duration_seconds_sum'),
      };
    };
    const open = async (): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_connections_open', { direction: 'outbound' });
    const out = await seen(caller, 'outbound');
    const into = await seen(callee, 'inbound');
    const openBefore = await open();
    const logged = logs.length;
    const atInstance = inst['api-1']!.seen.length;
    caller.apply(next(callerBase, { accessLogs: true }));
    const s = await connectRetry(port.api);
    try {
      const sentMs = performance.now();
      const head = await askUpgrade(s);
      const toAnswerS = (performance.now() - sentMs) / 1_000;
      assert.match(head, /^HTTP\/1\.1 101 /);
      // The upgraded connection outlives its 101 by far more than the 101 took.
      assert.equal(await echo(s, 'frames after the upgrade'), 'frames after the upgrade');
      await sleep(UPGRADE_HELD_MS);
      // Counted and timed once on each side while the connection is still open: at the 101.
      for (const [was, now] of [
        [out, await seen(caller, 'outbound')],
        [into, await seen(callee, 'inbound')],
      ] as const) {
        assert.equal(now.counted, was.counted + 1);
        assert.equal(now.timed, was.timed + 1);
        assert.ok(now.seconds - was.seconds <= toAnswerS + 1e-6, `${now.seconds - was.seconds} s`);
      }
      // The request itself is a request: a traceparent, an access log line with its 101.
      assert.match(
        String(inst['api-1']!.seen[atInstance]?.headers.traceparent),
        /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
      );
      const line = logs.slice(logged).find((l) => l.msg === 'request' && l.fields.status === 101);
      assert.equal(line?.fields.destination, 'api');
      assert.ok((line?.fields.durationMs as number) <= toAnswerS * 1_000 + 1e-3);
    } finally {
      s.destroy();
      caller.apply(next(callerBase));
    }
    await until(async () => (await open()) === openBefore, 'the upgraded connection closed');
    // Its end counts nothing more.
    assert.equal((await seen(caller, 'outbound')).counted, out.counted + 1);
    assert.equal((await seen(callee, 'inbound')).counted, into.counted + 1);
  });

  it('relays request bodies, chunked or with a length', async () => {
    const body = 'line of a streamed upload\n'.repeat(4_000);
    const before = inst['api-1']!.seen.length;
    const chunked = await get(port.api, '/upload', { method: 'POST', body, chunkBytes: 1_000 });
    assert.equal(chunked.status, 200);
    const sized = await get(port.api, '/upload', {
      method: 'PUT',
      body,
      headers: { 'content-length': String(Buffer.byteLength(body)) },
    });
    assert.equal(sized.status, 200);
    const seen = inst['api-1']!.seen.slice(before);
    assert.deepEqual(
      seen.map((s) => [s.method, s.body.length]),
      [
        ['POST', body.length],
        ['PUT', body.length],
      ],
    );
    assert.equal(seen[0]!.body, body);
  });

  it('continues the caller’s trace across the hop', async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const before = inst['api-1']!.seen.length;
    const r = await get(port.api, '/t', { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` } });
    assert.equal(r.status, 200);
    const tp = String(inst['api-1']!.seen[before]?.headers.traceparent);
    assert.equal(tp.split('-')[1], trace);
    assert.notEqual(tp.split('-')[2], '00f067aa0ba902b7');
  });

  it('relays an HTTP/2 request with its trailers', async () => {
    const before = inst['h2api-1']!.seen.length;
    const r = await h2Get(port.h2api, '/grpc.Health/Check');
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['x-served-by'], 'h2api-1');
    assert.equal(r.body, 'h2api-1 /grpc.Health/Check');
    assert.equal(r.trailers['x-checksum'], 'c0ffee');
    const seen = inst['h2api-1']!.seen.slice(before);
    assert.equal(seen.length, 1);
    assert.match(String(seen[0]!.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(seen[0]!.headers['x-mesh-instance'], undefined);
  });

  it('counts the connections it opens to its instances: one per TCP connection, HTTP ones reused', async () => {
    const opened = async (service: string, protocol: string): Promise<number> =>
      metricValue(await callee.metrics.text(), 'mesh_proxy_instance_connections_total', {
        service,
        protocol,
      });
    const tcp = await opened('echo', 'tcp');
    for (const text of ['one', 'two']) {
      const s = await connectRetry(port.echo);
      try {
        assert.equal(await echo(s, text), text);
      } finally {
        s.destroy();
      }
    }
    assert.equal(
      await opened('echo', 'tcp'),
      tcp + 2,
      'a connection to the instance per relayed TCP connection',
    );
    // An instance no earlier test has called (its pool is cold), called by a service on its agent.
    inst['fresh-1'] = await httpInstance('fresh-1');
    const [freshPort] = (await freePorts(1)) as [number];
    callee.apply(
      next(calleeBase, {
        upstreams: [
          {
            source: 'canary',
            destination: 'fresh',
            bindHost: '127.0.0.1',
            port: freshPort,
            protocol: 'http',
          },
        ],
        chains: { fresh: compileChain(noEntries, 'fresh', 'http') },
        endpoints: { fresh: [{ ...endpoint('fresh-1', 'fresh'), local: true }] },
        local: [...calleeBase.local, localOf('fresh-1', 'fresh', 'http')],
      }),
    );
    try {
      (await connectRetry(freshPort)).destroy();
      assert.equal(await opened('fresh', 'http'), 0);
      for (let i = 0; i < 5; i++) assert.equal((await get(freshPort, `/pooled?n=${i}`)).status, 200);
      // One request at a time: the first opens a connection, the others find it idle in the pool
      // (a second is allowed for a request that arrives before the first is handed back).
      const n = await opened('fresh', 'http');
      assert.ok(n >= 1 && n <= 2, `5 requests one at a time opened ${n} connections`);
    } finally {
      callee.apply(next(calleeBase));
    }
    // HTTP/2 from the other agent to a fresh instance: one session carries every call.
    inst['fresh2-1'] = await h2Instance('fresh2-1');
    const [fresh2Port] = (await freePorts(1)) as [number];
    callee.apply(
      next(calleeBase, {
        certs: { ...calleeBase.certs, fresh2: await issue(root, TD, 'fresh2') },
        local: [...calleeBase.local, localOf('fresh2-1', 'fresh2', 'http2')],
      }),
    );
    caller.apply(
      next(callerBase, {
        upstreams: [
          ...callerBase.upstreams,
          {
            source: 'web',
            destination: 'fresh2',
            bindHost: '127.0.0.1',
            port: fresh2Port,
            protocol: 'http2',
          },
        ],
        chains: { ...callerBase.chains, fresh2: compileChain(noEntries, 'fresh2', 'http2') },
        endpoints: { ...callerBase.endpoints, fresh2: [endpoint('fresh2-1', 'fresh2')] },
      }),
    );
    try {
      (await connectRetry(fresh2Port)).destroy();
      assert.equal(await opened('fresh2', 'http2'), 0);
      for (let i = 0; i < 3; i++)
        assert.equal((await h2Get(fresh2Port, '/grpc.Health/Check')).headers[':status'], 200);
      assert.equal(
        await opened('fresh2', 'http2'),
        1,
        'one HTTP/2 session to the instance carries the calls',
      );
    } finally {
      caller.apply(next(callerBase));
      callee.apply(next(calleeBase));
    }
    // The caller's agent has no instances: it opened none.
    assert.doesNotMatch(await caller.metrics.text(), /^mesh_proxy_instance_connections_total\{/m);
  });

  it('counts a gRPC call its caller cancels before any answer as cancelled (499, CANCELLED), not as the instance failing', async () => {
    const count = async (grpcStatus: string): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_grpc_requests_total', {
        direction: 'outbound',
        grpc_status: grpcStatus,
      });
    const [cancelledBefore, unavailableBefore] = [await count('1'), await count('14')];
    const before = inst['h2api-1']!.seen.length;
    const session = h2connect(`http://127.0.0.1:${port.h2api}`);
    session.on('error', () => undefined);
    try {
      const req = session.request({
        ':path': '/hang/demo.Greeter/SayHello',
        ':method': 'POST',
        'content-type': 'application/grpc',
      });
      req.on('error', () => undefined);
      // Cancelled once the instance has the call, as a gRPC client whose deadline passed does.
      await until(() => inst['h2api-1']!.seen.length > before, 'the call reaches the instance');
      req.close(h2constants.NGHTTP2_CANCEL);
      await until(async () => (await count('1')) > cancelledBefore, 'the cancelled call is counted');
    } finally {
      session.destroy();
    }
    assert.equal(await count('1'), cancelledBefore + 1);
    assert.equal(await count('14'), unavailableBefore, 'not counted as UNAVAILABLE');
    const text = await caller.metrics.text();
    assert.ok(metricValue(text, 'mesh_proxy_requests_total', { direction: 'outbound', code: '499' }) >= 1);
  });

  it('keeps serving when a caller resets its HTTP/2 stream with an error code, on either agent', async () => {
    // A stream reset with a code other than CANCEL makes Node emit 'error' on the server's stream:
    // unheard, that error ended the proxy's thread (and every call through it).
    const resetWhileHeld = async (session: ClientHttp2Session, what: string): Promise<void> => {
      session.on('error', () => undefined);
      const before = inst['h2api-1']!.seen.length;
      const req = session.request({ ':path': `/hang/${what}`, ':method': 'POST' });
      req.on('error', () => undefined);
      await until(() => inst['h2api-1']!.seen.length > before, `the ${what} call reaches the instance`);
      req.close(h2constants.NGHTTP2_INTERNAL_ERROR);
      await new Promise((r) => req.once('close', r));
      session.destroy();
    };
    await resetWhileHeld(h2connect(`http://127.0.0.1:${port.h2api}`), 'outbound');
    const web = await issue(root, TD, 'web');
    const inboundPort = Number(calleeInbound.split(':')[1]);
    await resetWhileHeld(
      h2connect(`https://127.0.0.1:${inboundPort}`, {
        createConnection: () =>
          tlsConnect({
            host: '127.0.0.1',
            port: inboundPort,
            servername: `h2api.svc.${TD}`,
            ALPNProtocols: ['h2'],
            key: web.keyPem,
            cert: web.certPem,
            rejectUnauthorized: false,
          }),
      }),
      'inbound',
    );
    const r = await h2Get(port.h2api, '/after-resets');
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body, 'h2api-1 /after-resets');
  });

  it('moves HTTP/2 calls to a session with the renewed certificate; a call under way finishes on the old one', async () => {
    const handshakes = async (): Promise<number> => {
      const text = await caller.metrics.text();
      return (
        metricValue(text, 'mesh_proxy_peer_handshakes_total', { resumed: 'true' }) +
        metricValue(text, 'mesh_proxy_peer_handshakes_total', { resumed: 'false' })
      );
    };
    const renewed = next(callerBase, { certs: { web: await issue(root, TD, 'web') } });
    assert.equal((await h2Get(port.h2api, '/warm')).headers[':status'], 200);
    const before = await handshakes();
    const seen = inst['h2api-1']!.seen.length;
    let slowSettled = false;
    const slow = h2Get(port.h2api, '/slow/under-way').finally(() => (slowSettled = true));
    await until(
      () => inst['h2api-1']!.seen.slice(seen).some((x) => x.path === '/slow/under-way'),
      'the slow call reaches the instance',
    );
    assert.equal(slowSettled, false, `the slow call is under way (answered after ${SLOW_ANSWER_MS} ms)`);
    caller.apply(renewed);
    try {
      const after = await h2Get(port.h2api, '/after-renewal');
      assert.equal(after.body, 'h2api-1 /after-renewal');
      const r = await slow;
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.body, 'h2api-1 /slow/under-way');
      assert.equal(r.trailers['x-checksum'], 'c0ffee');
      // The call after the renewal connected anew, proving the new certificate.
      assert.equal(await handshakes(), before + 1);
    } finally {
      caller.apply(next(callerBase));
    }
  });

  it('relays an HTTP/2 response without trailers', async () => {
    const r = await h2Get(port.h2api, '/no-trailers');
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body, 'h2api-1 /no-trailers');
  });

  it('enforces a deny intention: HTTP/1.1 and HTTP/2 403, TCP closed, counted; nothing reaches the instance', async () => {
    const deny = { sources: [{ name: 'web', action: 'deny' }] };
    const deniedOf = async (destination: string): Promise<number> =>
      metricValue(await callee.metrics.text(), 'mesh_proxy_intention_denied_total', {
        source: 'web',
        destination,
      });
    const apiBefore = inst['api-1']!.seen.length;
    const echoBefore = inst['echo-1']!.seen.length;
    const h2Before = inst['h2api-1']!.seen.length;
    const [deniedApi0, deniedEcho0, deniedH20] = [
      await deniedOf('api'),
      await deniedOf('echo'),
      await deniedOf('h2api'),
    ];
    callee.apply(next(calleeBase, { intentions: { api: deny, echo: deny, h2api: deny } }));
    try {
      const r = await get(port.api, '/secret');
      assert.equal(r.status, 403);
      assert.match(r.body, /deny/);
      assert.match(r.body, /web → api/);

      const s = await connectRetry(port.echo);
      s.write('let me in');
      assert.equal(await untilClosed(s), '', 'a denied TCP connection gets no bytes back');

      assert.equal(inst['api-1']!.seen.length, apiBefore);
      assert.equal(inst['echo-1']!.seen.length, echoBefore);
      assert.equal(await deniedOf('api'), deniedApi0 + 1);
      assert.equal(await deniedOf('echo'), deniedEcho0 + 1);

      const h2 = await h2Get(port.h2api, '/grpc.Health/Check');
      assert.equal(h2.headers[':status'], 403);
      assert.match(h2.body, /web → h2api/);
      assert.equal(inst['h2api-1']!.seen.length, h2Before);
      assert.equal(await deniedOf('h2api'), deniedH20 + 1);
    } finally {
      callee.apply(next(calleeBase));
    }
    const r = await get(port.api, '/open-again');
    assert.equal(r.status, 200, 'removing the intention lets calls through again');
  });

  describe('the inbound listener', () => {
    const request = 'GET /direct HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n';
    const inboundPort = (): number => Number(calleeInbound.split(':')[1]);
    const reachedApi = (): number => inst['api-1']!.seen.length + inst['api-2']!.seen.length;

    /** Speak HTTP/1.1 over mTLS to the callee's inbound as `cert` would; what came back until close. */
    const callDirect = async (cert?: { keyPem: string; certPem: string }): Promise<string> => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port: inboundPort(),
        servername: `api.svc.${TD}`,
        ALPNProtocols: ['http/1.1'],
        ...(cert ? { key: cert.keyPem, cert: cert.certPem } : {}),
        // The server is not what is tested here; its refusal of the client is.
        rejectUnauthorized: false,
      });
      s.on('secureConnect', () => s.write(request));
      return untilClosed(s as Socket);
    };

    /**
     * Runs `call`, which must be refused: no HTTP answer, nothing at the instances, and (when the
     * handshake itself fails) one more handshake failure in the proxy status.
     */
    const refused = async (call: () => Promise<string>, handshakeFails: boolean): Promise<void> => {
      const before = reachedApi();
      const failures = callee.status().handshakeFailures;
      assert.doesNotMatch(await call(), /HTTP\/1\.1/);
      assert.equal(reachedApi(), before, 'the request reached an instance');
      if (handshakeFails) assert.equal(callee.status().handshakeFailures, failures + 1);
    };

    it('answers a caller with a certificate of the mesh (the control case)', async () => {
      const before = reachedApi();
      const reply = await callDirect(await issue(root, TD, 'web'));
      assert.match(reply, /^HTTP\/1\.1 200/);
      assert.match(reply, /api-1 \/direct/);
      assert.equal(reachedApi(), before + 1);
    });

    it('refuses plain TCP (no TLS)', async () => {
      await refused(async () => {
        const s = await connectRetry(inboundPort());
        s.write(request);
        return untilClosed(s);
      }, true);
    });

    it('refuses TLS without a client certificate', async () => {
      await refused(() => callDirect(), true);
    });

    it('refuses a certificate from another root', async () => {
      const stranger = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
      await refused(async () => callDirect(await issue(stranger, TD, 'web')), true);
    });

    it('refuses a certificate of the same root for another trust domain', async () => {
      // The chain is valid, so the handshake succeeds; the identity check then closes the connection.
      await refused(async () => callDirect(await issue(root, 'elsewhere.mesh', 'web')), false);
    });
  });

  it(`splits ${SPLIT_REQUESTS} requests 90/10 between subsets v1 and v2`, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: SPLIT_CONCURRENCY });
    const count: Record<string, number> = {};
    try {
      let sent = 0;
      const worker = async (): Promise<void> => {
        while (sent < SPLIT_REQUESTS) {
          sent++;
          const r = await get(port.canary, '/', { agent });
          assert.equal(r.status, 200);
          const who = String(r.headers['x-served-by']);
          count[who] = (count[who] ?? 0) + 1;
        }
      };
      await Promise.all(Array.from({ length: SPLIT_CONCURRENCY }, worker));
    } finally {
      agent.destroy();
    }
    const v1 = count['canary-v1'] ?? 0;
    const v2 = count['canary-v2'] ?? 0;
    assert.equal(v1 + v2, SPLIT_REQUESTS, JSON.stringify(count));
    // Expected 100 ± 9.5 (one standard deviation): 5 % and 15 % are more than 5 deviations away.
    assert.ok(v2 >= SPLIT_REQUESTS * 0.05 && v2 <= SPLIT_REQUESTS * 0.15, JSON.stringify(count));
  });

  it('sends nothing to an unhealthy instance, and answers 503 when none is healthy', async () => {
    const down = inst['api-2']!.seen.length;
    for (let i = 0; i < 50; i++) assert.equal((await get(port.api, `/n${i}`)).status, 200);
    assert.equal(inst['api-2']!.seen.length, down, 'the unhealthy instance got traffic');

    const apiSeen = inst['api-1']!.seen.length;
    caller.apply(
      next(callerBase, {
        endpoints: {
          ...callerBase.endpoints,
          api: [endpoint('api-1', 'api', { healthy: false }), endpoint('api-2', 'api', { healthy: false })],
        },
      }),
    );
    try {
      const r = await get(port.api, '/anyone');
      assert.equal(r.status, 503);
      assert.match(r.body, /no healthy instance of api/);
      assert.equal(inst['api-1']!.seen.length, apiSeen);
    } finally {
      caller.apply(next(callerBase));
    }
    assert.equal((await get(port.api, '/back')).status, 200);
  });

  it('closes the listener of a removed upstream; an open TCP connection carries on while it drains', async () => {
    const s = await connectRetry(port.echo);
    try {
      assert.equal(await echo(s, 'before'), 'before');
      caller.apply(
        next(callerBase, { upstreams: callerBase.upstreams.filter((u) => u.destination !== 'echo') }),
      );
      await waitRefused(port.echo);
      assert.deepEqual(
        caller
          .status()
          .upstreams.map((u) => u.destination)
          .sort(),
        ['api', 'canary', 'h2api'],
      );
      assert.equal(
        await echo(s, 'after'),
        'after',
        'an open connection outlives its listener (engine-drain.test.ts: until the drain deadline)',
      );
    } finally {
      s.destroy();
      caller.apply(next(callerBase));
    }
    const again = await connectRetry(port.echo);
    try {
      assert.equal(await echo(again, 'reopened'), 'reopened');
    } finally {
      again.destroy();
    }
  });

  it('keeps a kept upstream’s connections working across a snapshot', async () => {
    const s = await connectRetry(port.echo);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal(await echo(s, 'one'), 'one');
      assert.equal((await get(port.api, '/one', { agent })).status, 200);
      caller.apply(next(callerBase));
      callee.apply(next(calleeBase));
      assert.equal(await echo(s, 'two'), 'two');
      const r = await get(port.api, '/two', { agent });
      assert.equal(r.status, 200);
      assert.equal(r.reusedSocket, true, 'the keep-alive connection was dropped');
    } finally {
      s.destroy();
      agent.destroy();
    }
  });

  it('routes by path, header and query to subsets, rewriting the matched prefix (service-router)', async () => {
    const entries: Lookup = (kind, name) => {
      if (name !== 'canary') return undefined;
      if (kind === 'service-resolver')
        return {
          defaultSubset: 'v1',
          subsets: {
            v1: { filter: { meta: { version: 'v1' } } },
            v2: { filter: { meta: { version: 'v2' } } },
          },
        };
      if (kind === 'service-router')
        return {
          routes: [
            {
              match: { http: { pathPrefix: '/beta/', header: [{ name: 'x-track', exact: 'beta' }] } },
              destination: { serviceSubset: 'v2', prefixRewrite: '/' },
            },
            { match: { http: { methods: ['DELETE'] } }, destination: { serviceSubset: 'v2' } },
            {
              match: { http: { queryParam: [{ name: 'pin', exact: 'v2' }] } },
              destination: { serviceSubset: 'v2' },
            },
          ],
        };
      return undefined;
    };
    const chain = compileChain(entries, 'canary', 'http');
    assert.deepEqual(chain.errors, []);
    caller.apply(next(callerBase, { chains: { ...callerBase.chains, canary: chain } }));
    try {
      const cases: Array<[string, { method?: string; headers?: Record<string, string> }, string]> = [
        ['/beta/items', { headers: { 'x-track': 'beta' } }, 'canary-v2 /items'],
        ['/beta/items', {}, 'canary-v1 /beta/items'],
        ['/beta/items', { headers: { 'x-track': 'alpha' } }, 'canary-v1 /beta/items'],
        ['/gone', { method: 'DELETE' }, 'canary-v2 /gone'],
        ['/q?pin=v2', {}, 'canary-v2 /q?pin=v2'],
        ['/q?pin=v1', {}, 'canary-v1 /q?pin=v1'],
      ];
      for (const [path, o, want] of cases) {
        const r = await get(port.canary, path, o);
        assert.equal(r.body, want, `${o.method ?? 'GET'} ${path} ${JSON.stringify(o.headers ?? {})}`);
      }
    } finally {
      caller.apply(next(callerBase));
    }
  });

  it('sends every call with one hash key to one instance (ring_hash by header)', async () => {
    const entries: Lookup = (kind, name) =>
      kind === 'service-resolver' && name === 'api'
        ? {
            loadBalancer: {
              policy: 'ring_hash',
              hashPolicies: [{ field: 'header', fieldValue: 'x-user-id' }],
            },
          }
        : undefined;
    const chain = compileChain(entries, 'api', 'http');
    assert.deepEqual(chain.errors, []);
    caller.apply(
      next(callerBase, {
        chains: { ...callerBase.chains, api: chain },
        endpoints: { ...callerBase.endpoints, api: [endpoint('api-1', 'api'), endpoint('api-2', 'api')] },
      }),
    );
    try {
      const byUser = new Map<string, Set<string>>();
      for (let round = 0; round < 4; round++) {
        for (let u = 0; u < 20; u++) {
          const r = await get(port.api, '/who', { headers: { 'x-user-id': `user-${u}` } });
          assert.equal(r.status, 200);
          const served = byUser.get(`user-${u}`) ?? new Set<string>();
          served.add(String(r.headers['x-served-by']));
          byUser.set(`user-${u}`, served);
        }
      }
      for (const [user, served] of byUser) assert.equal(served.size, 1, `${user} reached ${[...served]}`);
      const used = new Set([...byUser.values()].flatMap((s) => [...s]));
      // 20 keys on two instances: all on one would happen about twice in a million runs.
      assert.deepEqual([...used].sort(), ['api-1', 'api-2'], 'the keys spread over both instances');
    } finally {
      caller.apply(next(callerBase));
    }
  });

  it('under ewma, stops sending gRPC calls to an instance that fails each at once (UNAVAILABLE in an HTTP 200)', async () => {
    // gsvc-bad answers UNAVAILABLE at once, gsvc-ok answers OK after 5 ms: by latency alone the
    // failing instance looks the fastest and would draw the calls.
    inst['gsvc-ok'] = await h2Instance('gsvc-ok', { grpcStatus: 0, delayMs: 5 });
    inst['gsvc-bad'] = await h2Instance('gsvc-bad', { grpcStatus: 14, delayMs: 0 });
    const [gsvcPort] = (await freePorts(1)) as [number];
    const entries: Lookup = (kind, name) =>
      kind === 'service-resolver' && name === 'gsvc' ? { loadBalancer: { policy: 'ewma' } } : undefined;
    const chain = compileChain(entries, 'gsvc', 'grpc');
    assert.deepEqual(chain.errors, []);
    callee.apply(
      next(calleeBase, {
        certs: { ...calleeBase.certs, gsvc: await issue(root, TD, 'gsvc') },
        local: [...calleeBase.local, localOf('gsvc-ok', 'gsvc', 'grpc'), localOf('gsvc-bad', 'gsvc', 'grpc')],
      }),
    );
    caller.apply(
      next(callerBase, {
        upstreams: [
          ...callerBase.upstreams,
          { ...upstream('echo', 'grpc'), destination: 'gsvc', port: gsvcPort },
        ],
        chains: { ...callerBase.chains, gsvc: chain },
        endpoints: {
          ...callerBase.endpoints,
          gsvc: [endpoint('gsvc-ok', 'gsvc'), endpoint('gsvc-bad', 'gsvc')],
        },
      }),
    );
    const served = new Map<string, number>();
    const session = h2connect(`http://127.0.0.1:${gsvcPort}`);
    session.on('error', () => undefined);
    try {
      (await connectRetry(gsvcPort)).destroy();
      for (let i = 0; i < GRPC_LB_CALLS; i++) {
        const by = await within(grpcCallServedBy(session), WAIT_MS, `gRPC call ${i}`);
        served.set(by, (served.get(by) ?? 0) + 1);
      }
    } finally {
      session.destroy();
      callee.apply(next(calleeBase));
      caller.apply(next(callerBase));
    }
    // The failing instance may take the first call (both start level), then never again: its
    // failure counts as 1 s against the other's ~5 ms. Counted by latency only, it took ~all.
    assert.ok((served.get('gsvc-bad') ?? 0) <= 2, `gsvc-bad served ${served.get('gsvc-bad')} calls`);
    assert.equal((served.get('gsvc-ok') ?? 0) + (served.get('gsvc-bad') ?? 0), GRPC_LB_CALLS);
  });

  /**
   * Serves HTTP/2 service `svc` from the callee's instances `ids` (made by h2Instance with `answers`)
   * through an upstream port of the caller, runs `fn` with a session to that port, then takes it
   * all down. Names of their own per test: the balancer keeps its estimates per service and instance.
   */
  const withH2Service = async (
    svc: string,
    answers: Record<string, H2Answer>,
    policy: LbPolicy | undefined,
    fn: (session: ClientHttp2Session) => Promise<void>,
  ): Promise<void> => {
    const ids = Object.keys(answers);
    for (const id of ids) inst[id] = await h2Instance(id, undefined, answers[id]);
    const [h2Port] = (await freePorts(1)) as [number];
    const entries: Lookup = (kind, name) =>
      policy !== undefined && kind === 'service-resolver' && name === svc
        ? { loadBalancer: { policy } }
        : undefined;
    const chain = compileChain(entries, svc, 'http2');
    assert.deepEqual(chain.errors, []);
    callee.apply(
      next(calleeBase, {
        certs: { ...calleeBase.certs, [svc]: await issue(root, TD, svc) },
        local: [...calleeBase.local, ...ids.map((id) => localOf(id, svc, 'http2'))],
      }),
    );
    caller.apply(
      next(callerBase, {
        upstreams: [
          ...callerBase.upstreams,
          { ...upstream('echo', 'http2'), destination: svc, port: h2Port },
        ],
        chains: { ...callerBase.chains, [svc]: chain },
        endpoints: { ...callerBase.endpoints, [svc]: ids.map((id) => endpoint(id, svc)) },
      }),
    );
    const session = h2connect(`http://127.0.0.1:${h2Port}`);
    session.on('error', () => undefined);
    try {
      (await connectRetry(h2Port)).destroy();
      await fn(session);
    } finally {
      session.destroy();
      callee.apply(next(calleeBase));
      caller.apply(next(callerBase));
      for (const id of ids) {
        await inst[id]?.close();
        delete inst[id];
      }
    }
  };

  for (const cut of ['reset', 'crash'] as const) {
    it(`under ewma, moves HTTP/2 calls off an instance whose answers are cut midway (${cut}); the caller sees a reset, not a whole answer`, async () => {
      // The cut instance starts each answer at once and cuts it; the other answers whole after 5 ms.
      // Counted as successes, the cut answers would make the cut instance look the fastest.
      const [ok, bad] = [`h2-ok-${cut}`, `h2-cut-${cut}`];
      const served = new Map<string, number>();
      await withH2Service(
        `h2svc-${cut}`,
        { [ok]: { delayMs: 5 }, [bad]: { cut } },
        'ewma',
        async (session) => {
          for (let i = 0; i < GRPC_LB_CALLS; i++) {
            const r = await within(h2ServedBy(session, `/call/${i}`), WAIT_MS, `HTTP/2 call ${i}`);
            served.set(r.by, (served.get(r.by) ?? 0) + 1);
            assert.equal(r.whole, r.by === ok, `call ${i} by ${r.by}: whole ${r.whole}`);
          }
        },
      );
      assert.ok((served.get(bad) ?? 0) <= 2, `${bad} served ${served.get(bad)} calls`);
      assert.equal((served.get(ok) ?? 0) + (served.get(bad) ?? 0), GRPC_LB_CALLS);
    });
  }

  it('resets, rather than leaves waiting, a slow-reading caller whose answer the instance cuts while held back', async () => {
    // 8 MiB cannot pass the flow-control windows of a caller that does not read: the cut comes
    // while both agents hold part of the answer back.
    await withH2Service(
      'h2svc-held',
      { 'h2-held': { cut: 'crash', bodyBytes: 8 * 1024 * 1024 } },
      undefined,
      async (session) => {
        const req = session.request({ ':path': '/big', ':method': 'GET' });
        req.on('error', () => undefined);
        let ended = false;
        req.on('end', () => (ended = true));
        const closed = new Promise((r) => req.once('close', r));
        await within(new Promise((r) => req.once('response', r)), WAIT_MS, 'the head of the answer');
        req.pause();
        await sleep(300);
        req.resume();
        await within(closed, WAIT_MS, 'the call ends');
        assert.equal(ended, false, 'the cut answer did not end as whole');
        assert.notEqual(req.rstCode, h2constants.NGHTTP2_NO_ERROR);
      },
    );
  });

  it('finishes a request in flight across a config change that sends new requests elsewhere', async () => {
    const apiSeen = inst['api-2']!.seen.length;
    // A request whose body is still coming when the change lands: routed, sent on, not answered.
    let req: ReturnType<typeof httpRequest> | undefined;
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req = httpRequest(
        { host: '127.0.0.1', port: port.api, path: '/in-flight', method: 'POST', agent: false },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write('first half, ');
    });
    // Time for the head and the first bytes to reach api-1 (the test holds either way).
    await sleep(200);
    const moved = next(callerBase, {
      chains: { ...callerBase.chains, api: compileChain(noEntries, 'api', 'http') },
      endpoints: {
        ...callerBase.endpoints,
        api: [endpoint('api-1', 'api', { healthy: false }), endpoint('api-2', 'api')],
      },
    });
    caller.apply(moved);
    callee.apply(next(calleeBase));
    try {
      req?.end('second half');
      const r = await within(answered, WAIT_MS, 'the request in flight');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'api-1 /in-flight', 'finished where it was sent before the change');
      const last = inst['api-1']!.seen.at(-1);
      assert.equal(last?.body, 'first half, second half', 'its body arrived whole');
      const after = await get(port.api, '/after-change');
      assert.equal(after.body, 'api-2 /after-change', 'new requests follow the new configuration');
      assert.equal(inst['api-2']!.seen.length, apiSeen + 1);
    } finally {
      caller.apply(next(callerBase));
    }
  });

  it('closes a relayed TCP connection on both agents after an hour without a byte either way', async () => {
    const s = await connectRetry(port.echo);
    s.on('error', () => undefined);
    const realNow = performance.now.bind(performance);
    try {
      assert.equal(await echo(s, 'then silence'), 'then silence');
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      // A sweep now finds the bytes just relayed; the next, an hour on, finds none since.
      tcpTicker.tick();
      performance.now = () => realNow() + TCP_LIMITS.idleTimeoutMs + 1_000;
      tcpTicker.tick();
      performance.now = realNow;
      await within(closed, WAIT_MS, 'the idle connection closing');
      const idle = logs.filter(
        (l) => l.msg === 'idle TCP connection closed' && l.fields.destination === 'echo',
      );
      assert.deepEqual(idle.map((l) => l.fields.direction).sort(), ['inbound', 'outbound']);
    } finally {
      performance.now = realNow;
      s.destroy();
    }
    const again = await connectRetry(port.echo);
    try {
      assert.equal(await echo(again, 'a new one works'), 'a new one works');
    } finally {
      again.destroy();
    }
  });
});
