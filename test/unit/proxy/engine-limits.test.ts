// The callers' circuit breakers (service-defaults upstreamConfig limits) with real engines in this
// process: past maxConcurrentRequests an HTTP/1.1 request or a gRPC call is refused at the caller's
// agent with 503 (UNAVAILABLE) and x-mesh-overloaded, never reaching the instance; past
// maxConnections an HTTP/1.1 request waits its turn (at most maxPendingRequests of them, at most
// its route's timeout) and a TCP connection is closed; a caller that leaves stops waiting; a raised
// limit lets waiting requests through at once; the HTTP proxy port takes a destination's override;
// every refusal is counted. A thousand requests waiting behind one whose destination then loses
// every instance are all answered, and the slots all come back; pipelined requests on one
// connection do not refuse each other.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { type AddressInfo, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import type { ServiceRouterSpec } from '../../../src/core/state/kinds/service-router.js';
import type { UpstreamLimits } from '../../../src/core/state/kinds/upstream-config.js';
import { TUNNEL_LIMITS } from '../../../src/proxy/connect-tunnel.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import type { ProxyCert, ProxySnapshot, ProxyUpstream } from '../../../src/proxy/types.js';
import {
  connectRetry,
  ESTABLISHED,
  echo,
  echoInstance,
  endpointAt,
  freePorts,
  get,
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
  within,
} from './harness.js';

const TD = 'limits.mesh';
const HOUR_MS = 3_600_000;
/** The route timeout of `/wait/…` requests to `queue`: how long they may wait for a connection. */
const WAIT_ROUTE_MS = 300;
/** How long each gRPC call to `greeter` takes: the second call comes while the first is in flight. */
const GRPC_MS = 1_500;
/** How long the caller's HTTP/2 tunnels may sit with no call in flight: shorter than GRPC_MS. */
const TUNNEL_IDLE_MS = 500;

const QUEUE_ROUTER: ServiceRouterSpec = {
  routes: [{ match: { http: { pathPrefix: '/wait/' } }, destination: { requestTimeoutMs: WAIT_ROUTE_MS } }],
};
/** How long `/late/…` requests to `long` are held by a fault before they meet the circuit breaker. */
const LATE_MS = 300;
const LONG_ROUTER: ServiceRouterSpec = {
  routes: [
    { match: { http: { pathPrefix: '/late/' } }, fault: { delay: { percent: 100, fixedDelayMs: LATE_MS } } },
  ],
};

/** An HTTP/1.1 instance that holds every request until the test lets it go. */
function heldInstance() {
  const held: Array<{ path: string; res: ServerResponse }> = [];
  const seen: string[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    held.push({ path: req.url ?? '', res });
  });
  return {
    server,
    seen,
    held,
    port: 0,
    /** Answers every request held so far. */
    release(): void {
      for (const h of held.splice(0)) h.res.end(`held ${h.path}`);
    },
  };
}

describe('circuit breakers at the caller (upstreamConfig limits)', () => {
  let root: CaRoot;
  let certs: Record<string, ProxyCert>;
  // Room for the thousand waiting requests of the long-queue test, each on a connection of its own.
  // Tunnels idle for TUNNEL_IDLE_MS are closed (the agent's default is 60 s).
  const caller = new ProxyEngine({
    connectionsMax: 2_048,
    log: () => undefined,
    tunnelIdleTimeoutMs: TUNNEL_IDLE_MS,
  });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const inst = heldInstance();
  let greeter: Instance;
  let echoer: Instance;
  let inbound = '';
  const ports: Record<string, number> = {};
  const snap = snapshots(TD, () => root.certPem);
  const lookup = (kind: string, name: string): unknown =>
    kind !== 'service-router'
      ? undefined
      : name === 'queue'
        ? QUEUE_ROUTER
        : name === 'long'
          ? LONG_ROUTER
          : undefined;
  /** As buildSnapshot gives them from web's upstreamConfig: the HTTP proxy port's for api are the same. */
  let limits: Record<string, UpstreamLimits> = {
    api: { maxConcurrentRequests: 2 },
    queue: { maxConnections: 1, maxPendingRequests: 1 },
    one: { maxConcurrentRequests: 1 },
    long: { maxConnections: 1 },
    greeter: { maxConcurrentRequests: 1 },
    echo: { maxConnections: 1 },
  };
  /** Destinations whose instances the caller's snapshot leaves out (all gone). */
  const gone = new Set<string>();
  const HTTP = ['api', 'queue', 'one', 'long'];
  const text = (): Promise<string> => caller.metrics.text();
  const refused = async (destination: string, limit: string): Promise<number> =>
    metricValue(await text(), 'mesh_proxy_upstream_limit_refused_total', {
      source: 'web',
      destination,
      limit,
    });
  const gauge = async (name: string, destination: string): Promise<number> =>
    metricValue(await text(), name, { source: 'web', destination });
  const openOutbound = async (): Promise<number> =>
    metricValue(await text(), 'mesh_proxy_connections_open', { direction: 'outbound' });

  const callerSnapshot = (): ProxySnapshot => {
    const up = (destination: string, protocol: ProxyUpstream['protocol']): ProxyUpstream => ({
      source: 'web',
      destination,
      bindHost: '127.0.0.1',
      port: ports[destination] as number,
      protocol,
      ...(limits[destination] !== undefined ? { limits: limits[destination] } : {}),
    });
    return snap({
      certs: { web: certs.web as ProxyCert },
      upstreams: [
        ...HTTP.map((d) => up(d, 'http')),
        up('greeter', 'grpc'),
        up('echo', 'tcp'),
        {
          source: 'web',
          destination: '*',
          bindHost: '127.0.0.1',
          port: ports['*'] as number,
          protocol: 'http',
        },
      ],
      // The HTTP proxy port's: api by Host, greeter and echo through CONNECT tunnels.
      upstreamConfigs: {
        web: {
          overrides: (['api', 'greeter', 'echo'] as const).map((name) => ({
            name,
            limits: limits[name] as UpstreamLimits,
          })),
        },
      },
      chains: {
        ...Object.fromEntries(HTTP.map((d) => [d, compileChain(lookup, d, 'http')])),
        greeter: compileChain(lookup, 'greeter', 'grpc'),
        echo: compileChain(lookup, 'echo', 'tcp'),
      },
      endpoints: Object.fromEntries(
        [...HTTP, 'greeter', 'echo'].map((s) => [s, gone.has(s) ? [] : [endpointAt(s, `${s}-1`, inbound)]]),
      ),
    });
  };

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    certs = {};
    for (const s of ['web', ...HTTP, 'greeter', 'echo']) certs[s] = await issue(root, TD, s);
    await new Promise<void>((r) => inst.server.listen(0, '127.0.0.1', r));
    inst.port = (inst.server.address() as AddressInfo).port;
    greeter = await h2Instance('greeter', { grpcStatus: 0, delayMs: GRPC_MS });
    echoer = await echoInstance('echo');
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    inbound = `${a.host}:${a.port}`;
    const names = [...HTTP, 'greeter', 'echo', '*'];
    const free = await freePorts(names.length);
    for (const [i, d] of names.entries()) ports[d] = free[i] as number;
    callee.apply(
      snap({
        certs: Object.fromEntries([...HTTP, 'greeter', 'echo'].map((s) => [s, certs[s] as ProxyCert])),
        local: [
          ...HTTP.map((d) => localInstance(`${d}-1`, d, inst.port, 'http')),
          localInstance('greeter-1', 'greeter', greeter.port, 'grpc'),
          localInstance('echo-1', 'echo', echoer.port, 'tcp'),
        ],
      }),
    );
    caller.apply(callerSnapshot());
    for (const p of Object.values(ports)) (await connectRetry(p)).destroy();
  });

  after(async () => {
    inst.release();
    caller.stop();
    callee.stop();
    inst.server.closeAllConnections();
    await new Promise((r) => inst.server.close(r));
    await greeter.close();
    await echoer.close();
  });

  it('refuses an HTTP/1.1 request past maxConcurrentRequests at once: 503, x-mesh-overloaded, never sent', async () => {
    const first = get(ports.api as number, '/a/1');
    const second = get(ports.api as number, '/a/2');
    await until(() => inst.held.length === 2, 'two requests at the instance');
    assert.equal(await gauge('mesh_proxy_upstream_limit_active', 'api'), 2);
    const third = await get(ports.api as number, '/a/3');
    assert.equal(third.status, 503, third.body);
    assert.equal(third.headers['x-mesh-overloaded'], 'true');
    assert.match(
      third.body,
      /^mesh: web has 2 requests in flight to api already \(upstreamConfig limits\.maxConcurrentRequests of service-defaults web\)/,
    );
    assert.ok(!inst.seen.includes('/a/3'));
    assert.equal(await refused('api', 'maxConcurrentRequests'), 1);
    inst.release();
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
    // The slots came back, and the gate is forgotten once idle.
    const again = get(ports.api as number, '/a/4');
    await until(() => inst.held.length === 1, 'the next request at the instance');
    inst.release();
    assert.equal((await again).status, 200);
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_active', 'api')) === 0,
      'nothing in flight',
    );
  });

  it('queues an HTTP/1.1 request past maxConnections, refuses one past maxPendingRequests, and serves the queue in turn', async () => {
    const first = get(ports.queue as number, '/q/1');
    await until(() => inst.held.length === 1, 'the first request at the instance');
    const second = get(ports.queue as number, '/q/2');
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_pending', 'queue')) === 1,
      'the second waiting',
    );
    const third = await get(ports.queue as number, '/q/3');
    assert.equal(third.status, 503);
    assert.equal(third.headers['x-mesh-overloaded'], 'true');
    assert.match(
      third.body,
      /^mesh: the 1 connections from web to queue are all in use and 1 requests already wait for one \(upstreamConfig limits\.maxPendingRequests of service-defaults web, default 1024\)/,
    );
    assert.equal(await refused('queue', 'maxPendingRequests'), 1);
    assert.deepEqual(
      inst.seen.filter((p) => p.startsWith('/q/')),
      ['/q/1'],
      'only the first reached the instance',
    );
    inst.release();
    assert.equal((await first).status, 200);
    await until(() => inst.held.length === 1, 'the waiting request sent on');
    assert.equal(inst.held[0]?.path, '/q/2');
    inst.release();
    assert.equal((await second).body, 'held /q/2');
  });

  it("gives up waiting at the route's timeout with 503, counted under maxConnections", async () => {
    const first = get(ports.queue as number, '/q/long');
    await until(() => inst.held.length === 1, 'the first request at the instance');
    const t0 = performance.now();
    const waited = await get(ports.queue as number, '/wait/1');
    const tookMs = performance.now() - t0;
    assert.equal(waited.status, 503);
    assert.match(waited.body, /^mesh: none of the 1 connections from web to queue came free within 300 ms/);
    assert.ok(tookMs >= WAIT_ROUTE_MS - 2, `refused after ${tookMs.toFixed(0)} ms`);
    assert.equal(await refused('queue', 'maxConnections'), 1);
    assert.ok(!inst.seen.includes('/wait/1'));
    inst.release();
    assert.equal((await first).status, 200);
  });

  it('stops waiting for a caller that leaves: nothing is sent for it', async () => {
    const first = get(ports.queue as number, '/q/stay');
    await until(() => inst.held.length === 1, 'the first request at the instance');
    const s = connect(ports.queue as number, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write('GET /q/left HTTP/1.1\r\nhost: queue\r\n\r\n');
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_pending', 'queue')) === 1,
      'the request waiting',
    );
    s.resetAndDestroy();
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_pending', 'queue')) === 0,
      'the wait given up',
    );
    inst.release();
    assert.equal((await first).status, 200);
    const next = get(ports.queue as number, '/q/next');
    await until(() => inst.held.length === 1, 'the next request at the instance');
    inst.release();
    assert.equal((await next).status, 200);
    assert.ok(!inst.seen.includes('/q/left'));
  });

  it('lets waiting requests through as soon as a new snapshot raises the limit', async () => {
    const first = get(ports.queue as number, '/q/r1');
    await until(() => inst.held.length === 1, 'the first request at the instance');
    const second = get(ports.queue as number, '/q/r2');
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_pending', 'queue')) === 1,
      'the second waiting',
    );
    limits = { ...limits, queue: { maxConnections: 2, maxPendingRequests: 1 } };
    caller.apply(callerSnapshot());
    await until(() => inst.held.length === 2, 'the waiting request sent on without another call');
    inst.release();
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
  });

  it('counts the HTTP proxy port’s requests to a destination with its upstream port’s, by its override', async () => {
    const first = get(ports['*'] as number, '/h/1', { headers: { host: 'api' } });
    const second = get(ports.api as number, '/h/2');
    await until(() => inst.held.length === 2, 'two requests at the instance');
    const third = await get(ports['*'] as number, '/h/3', { headers: { host: 'api' } });
    assert.equal(third.status, 503, third.body);
    assert.match(third.body, /web has 2 requests in flight to api/);
    inst.release();
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
  });

  it('serves pipelined requests on one connection one after the other, neither refusing the next', async () => {
    const s = connect(ports.one as number, '127.0.0.1');
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    await new Promise((r) => s.once('connect', r));
    s.write('GET /p/1 HTTP/1.1\r\nhost: one\r\n\r\nGET /p/2 HTTP/1.1\r\nhost: one\r\n\r\n');
    try {
      for (const path of ['/p/1', '/p/2']) {
        await until(() => inst.held.length === 1, `${path} at the instance`);
        assert.equal(inst.held[0]?.path, path);
        inst.release();
      }
      // The second answer follows the first's body directly: counted anywhere, not at line starts.
      await until(() => (got.match(/HTTP\/1\.1 \d+/g)?.length ?? 0) === 2, 'two answers');
      assert.deepEqual(got.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 200'], got);
    } finally {
      s.destroy();
    }
  });

  it('answers a thousand waiting requests when their destination loses every instance, and gives every slot back', async () => {
    const WAITING = 1_000;
    const first = get(ports.long as number, '/l/first');
    await until(() => inst.held.length === 1, 'the first request at the instance');
    const rest = Array.from({ length: WAITING }, (_, i) => get(ports.long as number, `/l/${i}`));
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_pending', 'long')) === WAITING,
      'all waiting',
    );
    gone.add('long');
    caller.apply(callerSnapshot());
    inst.release();
    assert.equal((await first).status, 200);
    // Each goes on as the one before frees its slot, and fails at once: no instance left.
    const answers = await within(Promise.all(rest), WAIT_MS, 'every waiting request answered');
    assert.deepEqual(
      [...new Set(answers.map((r) => r.status))],
      [503],
      'every waiting request answered 503 (no instance), none left to time out',
    );
    assert.match(answers[WAITING - 1]?.body ?? '', /no healthy instance|no instance/);
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_active', 'long')) === 0,
      'every slot back',
    );
    gone.delete('long');
    caller.apply(callerSnapshot());
    const after = get(ports.long as number, '/l/after');
    await until(() => inst.held.length === 1, 'a new request at the instance at once');
    inst.release();
    assert.equal((await after).status, 200);
  });

  it('counts a request held by a fault across a snapshot by the new limits, whether or not the pair had calls in flight', async () => {
    for (const busy of [true, false]) {
      limits = { ...limits, long: { maxConnections: 1 } };
      caller.apply(callerSnapshot());
      const calls = busy ? [get(ports.long as number, '/l/busy')] : [];
      if (busy) await until(() => inst.held.length === 1, 'a request in flight');
      // Held by its fault while the limit goes up: it carries the snapshot of before.
      calls.push(get(ports.long as number, '/late/1'));
      await until(() => caller.faultsHeld === 1, 'the late request held by its fault');
      limits = { ...limits, long: { maxConnections: 10 } };
      caller.apply(callerSnapshot());
      await until(
        () => inst.held.length === (busy ? 2 : 1),
        `the late request at the instance (busy: ${busy})`,
      );
      calls.push(get(ports.long as number, '/l/new-1'), get(ports.long as number, '/l/new-2'));
      await until(
        () => inst.held.length === (busy ? 4 : 3),
        `new requests not queued behind the old limit (busy: ${busy})`,
      );
      inst.release();
      for (const r of await Promise.all(calls)) assert.equal(r.status, 200);
    }
    limits = { ...limits, long: { maxConnections: 1 } };
    caller.apply(callerSnapshot());
  });

  it('refuses a gRPC call past maxConcurrentRequests with UNAVAILABLE', async () => {
    const session = h2connect(`http://127.0.0.1:${ports.greeter}`);
    session.on('error', () => undefined);
    try {
      const first = within(grpcStatusOf(session, '/demo.Greeter/One'), WAIT_MS, 'the first call');
      await until(() => greeter.seen.length === 1, 'the first call at the instance');
      assert.equal(
        await within(grpcStatusOf(session, '/demo.Greeter/Two'), WAIT_MS, 'the second call'),
        '14',
      );
      assert.equal(await first, '0');
      assert.equal(greeter.seen.length, 1, 'the refused call never reached the instance');
      assert.equal(await refused('greeter', 'maxConcurrentRequests'), 1);
      await until(
        async () => (await gauge('mesh_proxy_upstream_limit_active', 'greeter')) === 0,
        'the slot back',
      );
      assert.equal(
        await within(grpcStatusOf(session, '/demo.Greeter/Three'), WAIT_MS, 'the third call'),
        '0',
      );
    } finally {
      session.destroy();
    }
  });

  it('closes a TCP connection past maxConnections, and takes one again once the first closes', async () => {
    const first = await connectRetry(ports.echo as number);
    assert.equal(await echo(first, 'ping'), 'ping');
    const second = await connectRetry(ports.echo as number);
    assert.equal(await untilClosed(second), '');
    assert.equal(await refused('echo', 'maxConnections'), 1);
    first.destroy();
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_active', 'echo')) === 0,
      'the first closed',
    );
    const third = await connectRetry(ports.echo as number);
    assert.equal(await echo(third, 'pong'), 'pong');
    third.destroy();
  });

  it('CONNECT on the HTTP proxy port: calls in an HTTP/2 tunnel (its preface sent before the 200) and a tcp tunnel count against their destination', async () => {
    const any = ports['*'] as number;
    const before = await refused('greeter', 'maxConcurrentRequests');
    const session = await h2Tunnel(any, 'greeter:50051');
    session.on('error', () => undefined);
    try {
      const seen = greeter.seen.length;
      const first = within(grpcStatusOf(session, '/demo.Greeter/T1'), WAIT_MS, 'the first call');
      await until(() => greeter.seen.length === seen + 1, 'the first call at the instance');
      assert.equal(await within(grpcStatusOf(session, '/demo.Greeter/T2'), WAIT_MS, 'the second call'), '14');
      assert.equal(await first, '0');
      assert.equal(await refused('greeter', 'maxConcurrentRequests'), before + 1);
      assert.equal(await within(grpcStatusOf(session, '/demo.Greeter/T3'), WAIT_MS, 'the third call'), '0');
    } finally {
      session.destroy();
    }
    // A tcp tunnel: echo's one connection is taken, so the tunnel is refused before it opens.
    const held = await connectRetry(ports.echo as number);
    assert.equal(await echo(held, 'ping'), 'ping');
    const openBefore = await openOutbound();
    const over = await connectRetry(any);
    over.write('CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\n\r\n');
    const answer = await untilClosed(over);
    assert.match(answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(answer, /\r\nx-mesh-overloaded: true\r\n/);
    assert.match(answer, /mesh: web has 1 connections open to echo already/);
    // …and the agent's side of it is gone too, not left half-open.
    await until(async () => (await openOutbound()) === openBefore, 'the refused tunnel closed at the agent');
    held.destroy();
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_active', 'echo')) === 0,
      'the first closed',
    );
    // Bytes sent right behind the head go through first.
    const tunnel = await connectRetry(any);
    let got = '';
    const onData = (b: Buffer): void => {
      got += b.toString();
    };
    tunnel.on('data', onData);
    tunnel.write('CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\n\r\nahead');
    await until(() => got === `${ESTABLISHED}ahead`, 'the 200, then the echo of the bytes ahead');
    tunnel.off('data', onData);
    assert.equal(await echo(tunnel, 'pong'), 'pong');
    tunnel.destroy();
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_active', 'echo')) === 0,
      'the tunnel closed',
    );
  });

  it('CONNECT on the HTTP proxy port: the target names the service, Host or not; a Host that names another is refused, saying so', async () => {
    const any = ports['*'] as number;
    // HTTP/1.1 with no Host: the target is the authority (RFC 9110 §9.3.6), as Envoy takes it.
    const bare = await connectRetry(any);
    let got = '';
    bare.on('data', (b: Buffer) => {
      got += b.toString();
    });
    bare.write('CONNECT echo:7 HTTP/1.1\r\n\r\nahead');
    await until(() => got === `${ESTABLISHED}ahead`, 'the 200 to a CONNECT without a Host, then the echo');
    bare.destroy();
    await until(
      async () => (await gauge('mesh_proxy_upstream_limit_active', 'echo')) === 0,
      'the tunnel closed',
    );
    const refusedAny = async (): Promise<number> =>
      metricValue(await text(), 'mesh_proxy_requests_total', { destination: '*', code: '400' });
    const before = await refusedAny();
    const other = await connectRetry(any);
    other.write('CONNECT echo:7 HTTP/1.1\r\nHost: api\r\n\r\n');
    const answer = await untilClosed(other);
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /the Host header "api" names another authority than the CONNECT target "echo:7"/);
    assert.equal(await refusedAny(), before + 1);
  });

  it('closes an HTTP/2 tunnel with no call in flight once idle, and one whose call outlasted the timeout once that call ends', async () => {
    const any = ports['*'] as number;
    const quiet = await h2Tunnel(any, 'greeter:50051');
    quiet.on('error', () => undefined);
    await within(new Promise((r) => quiet.once('close', r)), WAIT_MS, 'a tunnel with no call closed');
    const busy = await h2Tunnel(any, 'greeter:50051');
    busy.on('error', () => undefined);
    let closed = false;
    const gone = new Promise((r) => busy.once('close', r));
    void gone.then(() => {
      closed = true;
    });
    // The call takes GRPC_MS, three times the idle timeout: the tunnel stays open for it.
    assert.equal(await within(grpcStatusOf(busy, '/demo.Greeter/Long'), WAIT_MS, 'the long call'), '0');
    assert.equal(closed, false, 'open while its call was in flight');
    await within(gone, WAIT_MS, 'closed once idle after the call');
    // A client that asks for a tunnel and then says nothing, not even its FIN once the agent has
    // ended the session: the agent closes the connection itself, a grace period later.
    const openBefore = await openOutbound();
    // Half-open allowed: the client's socket does not answer the agent's FIN with its own.
    const silent = connect({ host: '127.0.0.1', port: any, allowHalfOpen: true });
    silent.on('error', () => undefined);
    let heard = '';
    silent.on('data', (b: Buffer) => {
      heard += b.toString('latin1');
    });
    const finned = new Promise((r) => silent.once('end', r));
    await within(new Promise((r) => silent.once('connect', r)), WAIT_MS, 'connected');
    silent.write('CONNECT greeter:50051 HTTP/1.1\r\nHost: greeter:50051\r\n\r\n');
    await within(finned, WAIT_MS, 'the agent ends the idle tunnel');
    assert.ok(heard.startsWith(ESTABLISHED), heard);
    await until(
      async () => (await openOutbound()) === openBefore,
      `the agent closed it within ${TUNNEL_LIMITS.closeGraceMs} ms of its FIN`,
    );
    silent.destroy();
  });
});
