// Fault injection with real engines in this process: a service-router route's `fault` delays or
// aborts its requests at the caller's agent, for HTTP/1.1 and gRPC; an aborted request never
// reaches the instance; a share below 100% takes about that share; a caller that leaves during a
// delay is let go; each fault is counted. Also the HTTP/1.1 retries' back-off, which waits as a
// delay does (HTTP/2 and gRPC: engine-h2-retry.test.ts).
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { constants, connect as h2connect } from 'node:http2';
import { type AddressInfo, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import type { ServiceRouterSpec } from '../../../src/core/state/kinds/service-router.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import type { ProxyCert, ProxyEndpoint, ProxySnapshot } from '../../../src/proxy/types.js';
import {
  backoffFloorMs,
  connectRetry,
  endpointAt,
  freePorts,
  get,
  grpcStatusOf,
  h2Instance,
  httpInstance,
  type Instance,
  issue,
  localInstance,
  metricValue,
  pinnableDraw,
  snapshots,
  TOP_DRAW,
  until,
  WAIT_MS,
  within,
} from './harness.js';

const TD = 'fault.mesh';
const HOUR_MS = 3_600_000;
const DELAY_MS = 300;
/**
 * The delay of the routes callers leave during: long enough that only their leaving, never the
 * delay's end, can release the hold within HOLD_MS / 2.
 */
const HOLD_MS = 5_000;
/** Requests sent to the route that aborts half: 200 expected, 6 standard deviations (±60) allowed. */
const SHARE_REQUESTS = 400;

const API_ROUTER: ServiceRouterSpec = {
  routes: [
    { match: { http: { pathPrefix: '/abort/' } }, fault: { abort: { percent: 100, httpStatus: 418 } } },
    {
      match: { http: { pathPrefix: '/delay/' } },
      fault: { delay: { percent: 100, fixedDelayMs: DELAY_MS } },
    },
    {
      match: { http: { pathPrefix: '/both/' } },
      fault: {
        delay: { percent: 100, fixedDelayMs: DELAY_MS },
        abort: { percent: 100, grpcStatus: 'UNAVAILABLE' },
      },
    },
    { match: { http: { pathPrefix: '/half/' } }, fault: { abort: { percent: 50, httpStatus: 503 } } },
    { match: { http: { pathPrefix: '/hold/' } }, fault: { delay: { percent: 100, fixedDelayMs: HOLD_MS } } },
  ],
};

const GREETER_ROUTER: ServiceRouterSpec = {
  routes: [
    {
      match: { http: { pathPrefix: '/demo.Greeter/Hold' } },
      fault: { delay: { percent: 100, fixedDelayMs: HOLD_MS } },
    },
    {
      match: { http: { pathExact: '/demo.Greeter/Abort' } },
      fault: { abort: { percent: 100, grpcStatus: 'RESOURCE_EXHAUSTED' } },
    },
    // Only an HTTP status: a gRPC caller gets the code its client would map it to (403 → 7).
    {
      match: { http: { pathExact: '/demo.Greeter/Forbid' } },
      fault: { abort: { percent: 100, httpStatus: 403 } },
    },
    {
      match: { http: { pathPrefix: '/demo.Greeter/Delay' } },
      fault: { delay: { percent: 100, fixedDelayMs: DELAY_MS } },
    },
  ],
};

const ROUTERS: Record<string, ServiceRouterSpec> = {
  api: API_ROUTER,
  greeter: GREETER_ROUTER,
  down: {
    routes: [{ destination: { numRetries: 4, retryOnStatusCodes: [503] } }],
    retryBudget: { minRetriesPerSecond: 1_000 },
  },
};

describe('fault injection and retry back-off in the proxy', () => {
  let root: CaRoot;
  let certs: Record<string, ProxyCert>;
  const draws = pinnableDraw(5);
  const caller = new ProxyEngine({ connectionsMax: 256, log: () => undefined, draw: draws.draw });
  const held = (): number => caller.faultsHeld;
  /** The hold ends well before its delay would: only the caller's leaving can have ended it. */
  const releasedEarly = (): Promise<void> =>
    within(
      until(() => held() === 0, 'the hold released'),
      HOLD_MS / 2,
      'the hold released before its delay ran out',
    );
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  let inbound = '';
  const inst: Record<string, Instance> = {};
  let apiPort = 0;
  let greeterPort = 0;
  let downPort = 0;
  /** An HTTP/1.1 instance answering every request 503 at once. */
  const down = { calls: 0, server: createHttpServer(), port: 0 };
  const snap = snapshots(TD, () => root.certPem);
  const endpoint = (service: string): ProxyEndpoint => endpointAt(service, `${service}-1`, inbound);
  const lookup = (kind: string, name: string): unknown =>
    kind === 'service-router' ? ROUTERS[name] : undefined;
  const faults = async (destination: string, fault: string): Promise<number> =>
    metricValue(await caller.metrics.text(), 'mesh_proxy_faults_total', {
      source: 'web',
      destination,
      fault,
    });

  const callerSnapshot = (): ProxySnapshot =>
    snap({
      certs: { web: certs.web as ProxyCert },
      upstreams: [
        { source: 'web', destination: 'api', bindHost: '127.0.0.1', port: apiPort, protocol: 'http' },
        { source: 'web', destination: 'greeter', bindHost: '127.0.0.1', port: greeterPort, protocol: 'grpc' },
        { source: 'web', destination: 'down', bindHost: '127.0.0.1', port: downPort, protocol: 'http' },
      ],
      chains: {
        api: compileChain(lookup, 'api', 'http'),
        greeter: compileChain(lookup, 'greeter', 'grpc'),
        down: compileChain(lookup, 'down', 'http'),
      },
      endpoints: { api: [endpoint('api')], greeter: [endpoint('greeter')], down: [endpoint('down')] },
    });

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    certs = {};
    for (const s of ['web', 'api', 'greeter', 'down']) certs[s] = await issue(root, TD, s);
    inst.api = await httpInstance('api');
    down.server.on('request', (_q, res) => {
      down.calls++;
      res.writeHead(503).end('down');
    });
    await new Promise<void>((r) => down.server.listen(0, '127.0.0.1', r));
    down.port = (down.server.address() as AddressInfo).port;
    inst.greeter = await h2Instance('greeter', { grpcStatus: 0, delayMs: 0 });
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    inbound = `${a.host}:${a.port}`;
    [apiPort, greeterPort, downPort] = (await freePorts(3)) as [number, number, number];
    callee.apply(
      snap({
        certs: {
          api: certs.api as ProxyCert,
          greeter: certs.greeter as ProxyCert,
          down: certs.down as ProxyCert,
        },
        local: [
          localInstance('api-1', 'api', (inst.api as Instance).port, 'http'),
          localInstance('greeter-1', 'greeter', (inst.greeter as Instance).port, 'grpc'),
          localInstance('down-1', 'down', down.port, 'http'),
        ],
      }),
    );
    const s = callerSnapshot();
    assert.deepEqual(s.chains.api?.errors, []);
    assert.deepEqual(s.chains.greeter?.errors, []);
    caller.apply(s);
    for (const p of [apiPort, greeterPort, downPort]) (await connectRetry(p)).destroy();
  });

  after(async () => {
    caller.stop();
    callee.stop();
    for (const i of Object.values(inst)) await i.close();
    down.server.closeAllConnections();
    await new Promise((r) => down.server.close(r));
  });

  const seenPaths = (): string[] => (inst.api as Instance).seen.map((s) => s.path);

  it('answers an aborted request itself: the instance never sees it', async () => {
    const before = await faults('api', 'abort');
    const r = await get(apiPort, '/abort/x');
    assert.equal(r.status, 418);
    assert.match(r.body, /fault injected \(service-router api routes\[0\]\.fault\.abort\)/);
    assert.ok(!seenPaths().includes('/abort/x'));
    assert.equal((await faults('api', 'abort')) - before, 1);
    // Other routes are untouched.
    assert.equal((await get(apiPort, '/plain')).status, 200);
  });

  it('holds a delayed request, then sends it on', async () => {
    const before = await faults('api', 'delay');
    const t0 = performance.now();
    const r = await get(apiPort, '/delay/x');
    const tookMs = performance.now() - t0;
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'api /delay/x');
    // A lower bound only (the delay is the point); timers may fire a millisecond early by rounding.
    assert.ok(tookMs >= DELAY_MS - 2, `answered after ${tookMs.toFixed(0)} ms`);
    assert.equal((await faults('api', 'delay')) - before, 1);
  });

  it('delays, then aborts, with the HTTP status a gRPC-only abort stands for', async () => {
    const t0 = performance.now();
    const r = await get(apiPort, '/both/x');
    assert.ok(performance.now() - t0 >= DELAY_MS - 2);
    assert.equal(r.status, 503, r.body); // UNAVAILABLE
    assert.ok(!seenPaths().includes('/both/x'));
  });

  it('aborts about the share it is given', async () => {
    let aborted = 0;
    for (let i = 0; i < SHARE_REQUESTS; i++) {
      const r = await get(apiPort, `/half/${i}`);
      if (r.status === 503) aborted++;
      else assert.equal(r.status, 200, r.body);
    }
    assert.ok(Math.abs(aborted - SHARE_REQUESTS / 2) <= 60, `${aborted} of ${SHARE_REQUESTS} aborted`);
    assert.equal(seenPaths().filter((p) => p.startsWith('/half/')).length, SHARE_REQUESTS - aborted);
  });

  it('lets a caller that leaves during the delay go: nothing is sent, the request counts as 499', async () => {
    const text = async (): Promise<string> => caller.metrics.text();
    const cancelled = async (): Promise<number> =>
      metricValue(await text(), 'mesh_proxy_requests_total', {
        direction: 'outbound',
        destination: 'api',
        code: '499',
      });
    const before = await cancelled();
    const s = connect(apiPort, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write('GET /hold/left HTTP/1.1\r\nhost: api\r\n\r\n');
    await until(() => held() === 1, 'the request held');
    // A reset, as a caller that gives up and exits: a half-close (FIN) still asks for the answer.
    s.resetAndDestroy();
    await releasedEarly();
    await until(async () => (await cancelled()) > before, 'the request counted as 499');
    assert.ok(!seenPaths().includes('/hold/left'), 'the delayed request was never sent');
    assert.equal((await get(apiPort, '/plain')).status, 200);
  });

  it('answers a body that breaks its framing during the delay with one 400, and sends nothing', async () => {
    const s = connect(apiPort, '127.0.0.1');
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    const closed = new Promise((r) => s.once('close', r));
    await new Promise((r) => s.once('connect', r));
    s.write('POST /hold/body HTTP/1.1\r\nhost: api\r\ntransfer-encoding: chunked\r\n\r\n');
    await until(() => held() === 1, 'the request held');
    s.write('zz\r\nnot a chunk\r\n');
    await within(closed, HOLD_MS / 2, 'the connection closed after the 400, before the delay ran out');
    assert.equal(got.match(/^HTTP\/1\.1 /gm)?.length, 1, got);
    assert.match(got, /^HTTP\/1\.1 400 /);
    await releasedEarly();
    assert.ok(!seenPaths().includes('/hold/body'));
  });

  it('lets a gRPC caller that cancels during the delay go: nothing is sent', async () => {
    const session = h2connect(`http://127.0.0.1:${greeterPort}`);
    session.on('error', () => undefined);
    try {
      const req = session.request({
        ':path': '/demo.Greeter/HoldLeft',
        ':method': 'POST',
        'content-type': 'application/grpc',
      });
      req.on('error', () => undefined);
      req.end(Buffer.alloc(5));
      await until(() => held() === 1, 'the call held');
      req.close(constants.NGHTTP2_CANCEL);
      await releasedEarly();
      assert.ok(!(inst.greeter as Instance).seen.some((x) => x.path === '/demo.Greeter/HoldLeft'));
    } finally {
      session.destroy();
    }
  });

  it('aborts gRPC calls with their grpc-status, and delays them', async () => {
    const session = h2connect(`http://127.0.0.1:${greeterPort}`);
    session.on('error', () => undefined);
    try {
      const call = (m: string): Promise<string> =>
        within(grpcStatusOf(session, `/demo.Greeter/${m}`), WAIT_MS, `gRPC ${m}`);
      assert.equal(await call('Abort'), '8');
      assert.equal(await call('Forbid'), '7');
      const t0 = performance.now();
      assert.equal(await call('Delay'), '0');
      assert.ok(performance.now() - t0 >= DELAY_MS - 2);
      assert.equal(await call('SayHello'), '0');
      const paths = (inst.greeter as Instance).seen.map((s) => s.path);
      assert.ok(!paths.includes('/demo.Greeter/Abort') && !paths.includes('/demo.Greeter/Forbid'));
      assert.ok(paths.includes('/demo.Greeter/Delay'));
      assert.equal(await faults('greeter', 'abort'), 2);
    } finally {
      session.destroy();
    }
  });
  it('waits a back-off before each HTTP/1.1 retry: with every draw at its top, 25, 75, 175 and 250 ms at the most', async () => {
    draws.pin(TOP_DRAW);
    try {
      const t0 = performance.now();
      const r = await get(downPort, '/x');
      const tookMs = performance.now() - t0;
      assert.equal(r.status, 503);
      assert.equal(down.calls, 5, 'the first attempt and four retries');
      // The waits alone: without a back-off five attempts take a few milliseconds.
      // Less a millisecond a wait: Node may fire a timer up to 1 ms early by its rounding.
      assert.ok(tookMs >= backoffFloorMs(4) - 4, `five attempts in ${tookMs.toFixed(0)} ms`);
    } finally {
      draws.pin(undefined);
    }
  });
});
