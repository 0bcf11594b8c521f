// service-defaults rate limits with real engines in this process: the instance's agent refuses
// requests over the instance's limit with 429 (gRPC RESOURCE_EXHAUSTED), a route's limit counts
// apart from the instance's, the same-agent path counts against the same instance, and each
// refusal is counted.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import type { InstanceRateLimits } from '../../../src/core/routing/rate-limit.js';
import type { Protocol } from '../../../src/core/state/kinds/fields.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import type {
  ProxyCert,
  ProxyEndpoint,
  ProxyLocalInstance,
  ProxySnapshot,
} from '../../../src/proxy/types.js';
import {
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
  snapshots,
  WAIT_MS,
  within,
} from './harness.js';

const TD = 'ratelimit.mesh';
const HOUR_MS = 3_600_000;
/** Sent at once: with 1 request a second and bursts of 2, at most 2 + the seconds they take pass. */
const CONCURRENT = 20;

const LIMITS: InstanceRateLimits = {
  instance: { requestsPerSecond: 1, requestsMaxBurst: 2 },
  routes: [{ match: { pathPrefix: '/reports/' }, requestsPerSecond: 1, requestsMaxBurst: 1 }],
};

describe('service-defaults rate limits in the proxy', () => {
  let root: CaRoot;
  let certs: Record<string, ProxyCert>;
  const caller = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  let inbound = '';
  const inst: Record<string, Instance> = {};
  let apiPort = 0;
  let greeterPort = 0;
  const snap = snapshots(TD, () => root.certPem);
  const endpoint = (service: string): ProxyEndpoint => endpointAt(service, `${service}-1`, inbound);
  const local = (service: string, protocol: Protocol): ProxyLocalInstance => ({
    ...localInstance(`${service}-1`, service, (inst[service] as Instance).port, protocol),
    rateLimits: LIMITS,
  });

  const callerSnapshot = (): ProxySnapshot =>
    snap({
      certs: { web: certs.web as ProxyCert },
      upstreams: [
        { source: 'web', destination: 'api', bindHost: '127.0.0.1', port: apiPort, protocol: 'http' },
        {
          source: 'web',
          destination: 'greeter',
          bindHost: '127.0.0.1',
          port: greeterPort,
          protocol: 'grpc',
        },
      ],
      chains: {
        api: compileChain(() => undefined, 'api', 'http'),
        greeter: compileChain(() => undefined, 'greeter', 'grpc'),
      },
      endpoints: { api: [endpoint('api')], greeter: [endpoint('greeter')] },
    });

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    certs = {};
    for (const s of ['web', 'api', 'greeter']) certs[s] = await issue(root, TD, s);
    inst.api = await httpInstance('api');
    inst.greeter = await h2Instance('greeter', { grpcStatus: 0, delayMs: 0 });
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    inbound = `${a.host}:${a.port}`;
    [apiPort, greeterPort] = (await freePorts(2)) as [number, number];
    callee.apply(
      snap({
        certs: { api: certs.api as ProxyCert, greeter: certs.greeter as ProxyCert },
        local: [local('api', 'http'), local('greeter', 'grpc')],
      }),
    );
    caller.apply(callerSnapshot());
    for (const p of [apiPort, greeterPort]) (await connectRetry(p)).destroy();
  });

  after(async () => {
    caller.stop();
    callee.stop();
    for (const i of Object.values(inst)) await i.close();
  });

  /** `CONCURRENT` GETs of `path` at once: the statuses, and how long they took. */
  const burst = async (path: string): Promise<{ statuses: number[]; seconds: number; bodies: string[] }> => {
    const t0 = performance.now();
    const replies = await within(
      Promise.all(Array.from({ length: CONCURRENT }, () => get(apiPort, path))),
      WAIT_MS,
      `${CONCURRENT} GETs of ${path}`,
    );
    return {
      statuses: replies.map((r) => r.status),
      bodies: replies.map((r) => r.body),
      seconds: (performance.now() - t0) / 1000,
    };
  };

  it('refuses HTTP requests over the instance’s limit with 429, and a route’s limit counts apart', async () => {
    const before = metricValue(await callee.metrics.text(), 'mesh_proxy_rate_limited_total', {
      service: 'api',
    });
    const seen = (inst.api as Instance).seen.length;
    const all = await burst('/catalog');
    const passed = all.statuses.filter((s) => s === 200).length;
    assert.ok(passed >= 1, 'the burst lets some through');
    assert.ok(passed <= 2 + Math.ceil(all.seconds), `${passed} passed in ${all.seconds.toFixed(1)} s`);
    assert.equal(passed + all.statuses.filter((s) => s === 429).length, CONCURRENT, all.statuses.join(' '));
    assert.match(
      all.bodies.find((b) => b.startsWith('mesh:')) ?? '',
      /rate limit of api exceeded \(1 requests a second, bursts of 2\)/,
    );
    assert.equal(
      (inst.api as Instance).seen.length - seen,
      passed,
      'refused requests never reached the instance',
    );
    // /reports/ has a bucket of its own: the instance's being empty does not refuse it.
    const reports = await within(get(apiPort, '/reports/q1'), WAIT_MS, 'GET /reports/q1');
    assert.equal(reports.status, 200, reports.body);
    const again = await burst('/reports/q2');
    assert.ok(again.statuses.includes(429));
    assert.match(
      again.bodies.find((b) => b.startsWith('mesh:')) ?? '',
      /rate limit of api \/reports\/\* exceeded/,
    );
    const after = metricValue(await callee.metrics.text(), 'mesh_proxy_rate_limited_total', {
      service: 'api',
    });
    assert.equal(after - before, CONCURRENT - passed + again.statuses.filter((s) => s === 429).length);
  });

  it('counts calls on the same-agent path against the instance too', async () => {
    inst.apiLocal = await httpInstance('api-local');
    const [port] = (await freePorts(1)) as [number];
    try {
      caller.apply(
        snap({
          certs: { web: certs.web as ProxyCert },
          upstreams: [{ source: 'web', destination: 'api', bindHost: '127.0.0.1', port, protocol: 'http' }],
          chains: { api: compileChain(() => undefined, 'api', 'http') },
          endpoints: {
            api: [{ ...endpoint('api'), id: 'caller/api-local', instanceId: 'api-local', local: true }],
          },
          local: [{ ...local('api', 'http'), id: 'api-local', port: inst.apiLocal.port }],
        }),
      );
      (await connectRetry(port)).destroy();
      const replies = await within(
        Promise.all(Array.from({ length: CONCURRENT }, () => get(port, '/catalog'))),
        WAIT_MS,
        'GETs on the same-agent path',
      );
      const statuses = replies.map((r) => r.status);
      assert.ok(statuses.includes(200) && statuses.includes(429), statuses.join(' '));
      assert.equal(inst.apiLocal.seen.length, statuses.filter((s) => s === 200).length);
    } finally {
      caller.apply(callerSnapshot());
      await inst.apiLocal.close();
      delete inst.apiLocal;
    }
  });

  it('refuses gRPC calls over the limit with RESOURCE_EXHAUSTED', async () => {
    (await connectRetry(greeterPort)).destroy();
    const session = h2connect(`http://127.0.0.1:${greeterPort}`);
    session.on('error', () => undefined);
    const call = (): Promise<string> => grpcStatusOf(session, '/demo.Greeter/SayHello');
    try {
      const statuses = await within(
        Promise.all(Array.from({ length: CONCURRENT }, call)),
        WAIT_MS,
        'gRPC calls',
      );
      assert.ok(statuses.includes('0'), statuses.join(' '));
      assert.ok(statuses.includes('8'), statuses.join(' '));
      assert.deepEqual([...new Set(statuses)].sort(), ['0', '8']);
    } finally {
      session.destroy();
    }
  });
});
