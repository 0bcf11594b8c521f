// The proxy snapshot of an agent with an HTTP proxy port ("*" upstream): a chain for every service
// it could be asked for (with instances, or named only by a configuration entry), each for its own
// protocol (http ones by Host, the others through CONNECT tunnels), and the chains of explicit
// upstreams kept as they are.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Catalog } from '../../../src/core/catalog/catalog.js';
import type { Instance, ServiceProtocol } from '../../../src/core/catalog/types.js';
import { StateMachine } from '../../../src/core/state/state-machine.js';
import { buildSnapshot, discoveryChain, endpointsOf } from '../../../src/proxy/snapshot.js';

const instance = (name: string, protocol: ServiceProtocol | undefined): Instance => ({
  id: `${name}-1`,
  name,
  address: '',
  port: 8000,
  tags: [],
  meta: {},
  protocol,
  checks: [],
});

function snapshotWith(upstreams: Array<{ service: string; localPort: number }>, clientDefaults?: unknown) {
  const catalog = new Catalog('self', 0);
  catalog.setLocal([instance('web', 'http'), instance('echo', 'tcp'), instance('greeter', 'grpc')]);
  const sm = new StateMachine();
  // A service that exists only in configuration: a router in front of web.
  sm.apply(1, { op: 'config-set', kind: 'service-defaults', name: 'front', spec: { protocol: 'http' } });
  sm.apply(2, {
    op: 'config-set',
    kind: 'service-resolver',
    name: 'front',
    spec: { redirect: { service: 'web' } },
  });
  if (clientDefaults !== undefined)
    sm.apply(3, { op: 'config-set', kind: 'service-defaults', name: 'client', spec: clientDefaults });
  return buildSnapshot({
    local: () => [
      {
        source: 'api',
        definition: { ...instance('client', undefined), checks: [], upstreams },
      },
    ],
    catalog,
    member: (id) => ({
      id,
      name: id,
      address: '127.0.0.1:1',
      zone: '',
      meta: { inbound: '127.0.0.1:2' },
      status: 'alive',
      incarnation: 0,
      statusChangedAtMs: 0,
    }),
    selfId: 'self',
    state: () => sm,
    protocolOf: (name, own) =>
      own ?? ((sm.configGet('service-defaults', name)?.spec as { protocol?: string })?.protocol || 'tcp'),
    roots: () => undefined,
    certs: () => ({}),
  });
}

describe('the proxy snapshot with an HTTP proxy port', () => {
  it('compiles a chain for every service, configuration-only ones included, each for its protocol', () => {
    const s = snapshotWith([{ service: '*', localPort: 15001 }]);
    assert.deepEqual(Object.keys(s.chains).sort(), ['echo', 'front', 'greeter', 'web']);
    assert.deepEqual(Object.fromEntries(Object.values(s.chains).map((c) => [c.service, c.protocol])), {
      echo: 'tcp',
      front: 'http',
      greeter: 'grpc',
      web: 'http',
    });
    assert.equal(s.chains.front?.targets[0]?.service, 'web', 'front redirects to web');
    assert.deepEqual(
      s.endpoints.web?.map((e) => e.id),
      ['self/web-1'],
    );
    assert.deepEqual(s.upstreams, [
      { source: 'client', destination: '*', bindHost: '127.0.0.1', port: 15001, protocol: 'http' },
    ]);
  });

  it('keeps an explicit upstream’s chain and protocol, and compiles nothing more without a "*" upstream', () => {
    const both = snapshotWith([
      { service: 'greeter', localPort: 9001 },
      { service: '*', localPort: 15001 },
    ]);
    assert.equal(both.chains.greeter?.protocol, 'grpc');
    assert.deepEqual(Object.keys(both.chains).sort(), ['echo', 'front', 'greeter', 'web']);
    const explicit = snapshotWith([{ service: 'web', localPort: 9002 }]);
    assert.deepEqual(Object.keys(explicit.chains), ['web']);
  });

  it("gives each upstream its circuit breakers from the caller's upstreamConfig, and the HTTP proxy port the whole config", () => {
    const upstreamConfig = {
      defaults: { limits: { maxConnections: 50 } },
      overrides: [{ name: 'greeter', limits: { maxConcurrentRequests: 5 } }],
    };
    const s = snapshotWith(
      [
        { service: 'greeter', localPort: 9001 },
        { service: 'web', localPort: 9002 },
        { service: '*', localPort: 15001 },
      ],
      { upstreamConfig },
    );
    assert.deepEqual(
      s.upstreams.map((u) => [u.destination, u.limits]),
      [
        ['greeter', { maxConcurrentRequests: 5 }],
        ['web', { maxConnections: 50 }],
        ['*', { maxConnections: 50 }],
      ],
    );
    assert.deepEqual(s.upstreamConfigs, { client: upstreamConfig });
    const none = snapshotWith([{ service: 'web', localPort: 9002 }]);
    assert.equal(none.upstreams[0]?.limits, undefined);
    assert.equal(none.upstreamConfigs, undefined);
  });
});

/** One TTL check in `status`: the instance's health. */
const check = (status: 'passing' | 'warning' | 'critical') => ({
  id: 'c',
  name: 'c',
  type: 'ttl' as const,
  status,
  output: '',
});

describe('the discovery chain the API shows', () => {
  it('counts each target’s instances, and those that may take calls by its subset’s rule', () => {
    const catalog = new Catalog('self', 0);
    const web = (id: string, version: string, status: 'passing' | 'warning' | 'critical'): Instance => ({
      ...instance('web', 'http'),
      id,
      meta: { version },
      checks: [check(status)],
    });
    catalog.setLocal([web('a', 'v1', 'passing'), web('b', 'v1', 'critical'), web('c', 'v2', 'warning')]);
    const sm = new StateMachine();
    sm.apply(1, {
      op: 'config-set',
      kind: 'service-resolver',
      name: 'web',
      spec: {
        subsets: {
          v1: { filter: { meta: { version: 'v1' } } },
          v2: { filter: { meta: { version: 'v2' } }, onlyPassing: true },
        },
        defaultSubset: 'v1',
        failover: { v1: { targets: [{ serviceSubset: 'v2' }] } },
      },
    });
    const member = (inbound: boolean) => (id: string) => ({
      id,
      name: id,
      address: '127.0.0.1:1',
      zone: '',
      meta: (inbound ? { inbound: '127.0.0.1:2' } : {}) as Record<string, string>,
      status: 'alive' as const,
      incarnation: 0,
      statusChangedAtMs: 0,
    });
    const view = (inbound: boolean) =>
      discoveryChain(
        {
          catalog,
          member: member(inbound),
          selfId: 'self',
          state: () => sm,
          protocolOf: (_n, own) => own ?? 'tcp',
        },
        'web',
      );
    const v = view(true);
    assert.equal(v.index, 1);
    assert.equal(v.chain.protocol, 'http', 'the instances’ own protocol');
    assert.deepEqual(v.chain.errors, []);
    assert.deepEqual(v.instances, { 'v1.web': { total: 2, healthy: 1 }, 'v2.web': { total: 1, healthy: 0 } });
    // Instances on agents without an inbound listener cannot be called: not counted.
    assert.deepEqual(view(false).instances, {
      'v1.web': { total: 0, healthy: 0 },
      'v2.web': { total: 0, healthy: 0 },
    });
  });
});

describe('instance weights in the snapshot', () => {
  const member = (id: string) => ({
    id,
    name: id,
    address: '127.0.0.1:1',
    zone: '',
    meta: { inbound: '127.0.0.1:2' },
    status: 'alive' as const,
    incarnation: 0,
    statusChangedAtMs: 0,
  });

  it('gives each endpoint its weight at its health; a warning weight of 0 takes it out of rotation', () => {
    const catalog = new Catalog('self', 0);
    const web = (
      id: string,
      status: 'passing' | 'warning',
      weights?: { passing: number; warning: number },
    ): Instance => ({
      ...instance('web', 'http'),
      id,
      checks: [check(status)],
      ...(weights !== undefined ? { weights } : {}),
    });
    catalog.setLocal([
      web('heavy', 'passing', { passing: 10, warning: 1 }),
      web('plain', 'passing'),
      web('warned', 'warning', { passing: 10, warning: 3 }),
      web('drained', 'warning', { passing: 10, warning: 0 }),
    ]);
    const got = endpointsOf({ catalog, member, selfId: 'self' }, 'web').map((e) => [
      e.instanceId,
      e.weight ?? 1,
      e.healthy,
    ]);
    assert.deepEqual(got, [
      // Out of rotation by `healthy`; the weight field is only carried above 1.
      ['drained', 1, false],
      ['heavy', 10, true],
      ['plain', 1, true],
      ['warned', 3, true],
    ]);
  });
});
