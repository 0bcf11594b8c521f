// Removing an upstream port ends its connections, not only its listener: with real engines in this
// process, a snapshot without the caller's upstreams closes an idle HTTP/1.1 keep-alive connection
// at once, answers the request in flight on another with `connection: close` and then closes it,
// sends GOAWAY to an HTTP/2 connection and to an HTTP/2 tunnel of the HTTP proxy port while their
// calls finish, and closes a TCP connection (which has no graceful end) at the drain's deadline.
// Nothing in flight fails, and every connection the caller counted is gone at the end.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { connect as h2connect } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import type { ProxyCert, ProxyProtocol, ProxyUpstream } from '../../../src/proxy/types.js';
import {
  connectRetry,
  echo,
  echoInstance,
  endpointAt,
  freePorts,
  grpcStatusOf,
  h2Instance,
  h2Tunnel,
  type Instance,
  issue,
  localInstance,
  metricValue,
  snapshots,
  until,
  untilClosed,
  WAIT_MS,
  waitRefused,
  within,
} from './harness.js';

const TD = 'drain.mesh';
const HOUR_MS = 3_600_000;
/** How long each gRPC call takes: the drain comes while calls are in flight. */
const GRPC_MS = 800;
/** How long the caller's removed listeners' connections may take to finish (30 s in an agent). */
const CLOSE_AFTER_MS = 1_500;

/** One request on a raw keep-alive connection: the whole response (head and its content-length body). */
function rawGet(s: Socket, path: string): Promise<string> {
  const got = new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(buf);
      if (end < 0 || length === null || buf.length < end + 4 + Number(length[1])) return;
      s.off('data', onData);
      resolve(buf);
    };
    s.on('data', onData);
    s.once('error', reject);
  });
  s.write(`GET ${path} HTTP/1.1\r\nHost: api\r\n\r\n`);
  return within(got, WAIT_MS, `the answer to ${path}`);
}

describe('removing an upstream drains its connections', () => {
  let root: CaRoot;
  let certs: Record<string, ProxyCert>;
  const caller = new ProxyEngine({
    connectionsMax: 256,
    log: () => undefined,
    drainCloseAfterMs: CLOSE_AFTER_MS,
  });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const held: ServerResponse[] = [];
  const api = createHttpServer((req, res) => {
    req.resume();
    if (req.url === '/hold') held.push(res);
    else res.end(`api ${req.url}`);
  });
  let greeter: Instance;
  let echoer: Instance;
  let inbound = '';
  const ports: Record<string, number> = {};
  const snap = snapshots(TD, () => root.certPem);
  const SERVICES: Array<[string, ProxyProtocol]> = [
    ['api', 'http'],
    ['greeter', 'grpc'],
    ['echo', 'tcp'],
  ];
  const openOutbound = async (): Promise<number> =>
    metricValue(await caller.metrics.text(), 'mesh_proxy_connections_open', { direction: 'outbound' });

  const callerSnapshot = (withUpstreams: boolean) => {
    const up = (destination: string, protocol: ProxyProtocol): ProxyUpstream => ({
      source: 'web',
      destination,
      bindHost: '127.0.0.1',
      port: ports[destination] as number,
      protocol,
    });
    return snap({
      certs: { web: certs.web as ProxyCert },
      upstreams: withUpstreams ? [...SERVICES.map(([d, p]) => up(d, p)), up('*', 'http')] : [],
      chains: Object.fromEntries(SERVICES.map(([d, p]) => [d, compileChain(() => undefined, d, p)])),
      endpoints: Object.fromEntries(SERVICES.map(([d]) => [d, [endpointAt(d, `${d}-1`, inbound)]])),
    });
  };

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    certs = {};
    for (const s of ['web', ...SERVICES.map(([d]) => d)]) certs[s] = await issue(root, TD, s);
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    greeter = await h2Instance('greeter', { grpcStatus: 0, delayMs: GRPC_MS });
    echoer = await echoInstance('echo');
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    inbound = `${a.host}:${a.port}`;
    const free = await freePorts(SERVICES.length + 1);
    for (const [i, d] of [...SERVICES.map(([d]) => d), '*'].entries()) ports[d] = free[i] as number;
    callee.apply(
      snap({
        certs: Object.fromEntries(SERVICES.map(([d]) => [d, certs[d] as ProxyCert])),
        local: [
          localInstance('api-1', 'api', (api.address() as AddressInfo).port, 'http'),
          localInstance('greeter-1', 'greeter', greeter.port, 'grpc'),
          localInstance('echo-1', 'echo', echoer.port, 'tcp'),
        ],
      }),
    );
    caller.apply(callerSnapshot(true));
    for (const p of Object.values(ports)) (await connectRetry(p)).destroy();
  });

  after(async () => {
    for (const res of held.splice(0)) res.end();
    caller.stop();
    callee.stop();
    api.closeAllConnections();
    await new Promise((r) => api.close(r));
    await greeter.close();
    await echoer.close();
  });

  it('ends every kind of connection once its work is done, and the last ones at the deadline', async () => {
    await until(async () => (await openOutbound()) === 0, 'no outbound connection left from before');
    // HTTP/1.1: one keep-alive connection idle, one with a request held by the instance.
    const idle = await connectRetry(ports.api as number);
    assert.match(await rawGet(idle, '/first'), /^HTTP\/1\.1 200 [\s\S]*api \/first$/);
    const idleClosed = untilClosed(idle);
    const busy = await connectRetry(ports.api as number);
    busy.on('error', () => undefined);
    const busyAnswer = rawGet(busy, '/hold');
    await until(() => held.length === 1, 'the instance holds the request');
    // HTTP/2: a gRPC call in flight on the upstream port, and one in a tunnel of the HTTP proxy port.
    const direct = h2connect(`http://127.0.0.1:${ports.greeter}`);
    const tunnel = await h2Tunnel(ports['*'] as number, 'greeter:50051');
    const goaways = [direct, tunnel].map((s) => {
      s.on('error', () => undefined);
      return within(new Promise((r) => s.once('goaway', r)), WAIT_MS, 'GOAWAY');
    });
    const calls = [direct, tunnel].map((s) => grpcStatusOf(s, '/demo.Greeter/Hello'));
    // TCP: a connection that works before and after the drain begins.
    const tcp = await connectRetry(ports.echo as number);
    assert.equal(await echo(tcp, 'before'), 'before');
    await until(async () => (await openOutbound()) === 5, 'five connections open at the caller');

    caller.apply(callerSnapshot(false));
    const drainedAtMs = Date.now();

    await idleClosed;
    for (const p of Object.values(ports)) await waitRefused(p);
    await Promise.all(goaways);
    // The calls in flight finish as usual.
    assert.deepEqual(await within(Promise.all(calls), WAIT_MS, 'the calls in flight'), ['0', '0']);
    // The held request is answered, told the connection closes, and the connection closes.
    for (const res of held.splice(0)) res.end('released');
    const answer = await busyAnswer;
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /\r\nconnection: close\r\n/i);
    await untilClosed(busy);
    // TCP has no graceful end: it still carries bytes until the deadline, then is closed.
    assert.equal(await echo(tcp, 'during'), 'during');
    await untilClosed(tcp);
    assert.ok(
      Date.now() - drainedAtMs >= CLOSE_AFTER_MS - 100,
      'the TCP connection was closed by the deadline, not at once',
    );
    await until(async () => (await openOutbound()) === 0, 'every outbound connection closed');
    direct.destroy();
    tunnel.destroy();
  });
});
