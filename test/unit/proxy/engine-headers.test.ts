// Header changes of routes and splits with real engines in this process: the caller's agent sets,
// adds and removes request headers before the instance sees them, and changes the answer's
// headers before the caller sees them, over HTTP/1.1 (through the instance's agent, and straight
// to an instance on the same agent) and HTTP/2; requests the route does not cover are untouched.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import type { ServiceRouterSpec } from '../../../src/core/state/kinds/service-router.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import type { ProxyCert } from '../../../src/proxy/types.js';
import {
  connectRetry,
  endpointAt,
  freePorts,
  get,
  grpcStatusOf,
  h2Get,
  h2Instance,
  httpInstance,
  type Instance,
  issue,
  localInstance,
  snapshots,
  WAIT_MS,
  within,
} from './harness.js';

const TD = 'headers.mesh';
const HOUR_MS = 3_600_000;

/** /changed/… gets every kind of change; anything else goes as it came. */
const ROUTER: ServiceRouterSpec = {
  routes: [
    {
      match: { http: { pathPrefix: '/changed/' } },
      destination: {
        requestHeaders: {
          set: { 'x-env': 'canary', 'x-pct': '50%%' },
          add: { 'x-added': 'yes' },
          remove: ['x-secret'],
        },
        responseHeaders: { set: { 'x-served-by': 'hidden' }, add: { 'x-route': 'changed' } },
      },
    },
    // Values added to headers the message has already, which Node sends once only over HTTP/2.
    {
      match: { http: { pathPrefix: '/joined/' } },
      destination: {
        requestHeaders: { add: { 'user-agent': 'mesh' } },
        responseHeaders: { add: { 'content-type': 'charset=x' } },
      },
    },
    {
      match: { http: { pathPrefix: '/demo.Greeter/' } },
      destination: {
        requestHeaders: { add: { 'user-agent': 'mesh', cookie: 'c=3' }, set: { 'x-env': 'canary' } },
      },
    },
    {
      match: { http: { pathPrefix: '/abort/' } },
      fault: { abort: { percent: 100, httpStatus: 503 } },
      destination: { responseHeaders: { add: { 'x-route': 'changed' } } },
    },
  ],
};

describe('header changes of routes, at the caller', () => {
  let root: CaRoot;
  const caller = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const inst: Record<string, Instance> = {};
  const ports: Record<string, number> = {};
  const snap = snapshots(TD, () => root.certPem);
  const lookup = (kind: string): unknown => (kind === 'service-router' ? ROUTER : undefined);

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    const certs: Record<string, ProxyCert> = {};
    for (const s of ['web', 'api', 'near', 'h2api']) certs[s] = await issue(root, TD, s);
    inst.api = await httpInstance('api');
    inst.near = await httpInstance('near');
    inst.h2api = await h2Instance('h2api', { grpcStatus: 0, delayMs: 0 });
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    const inbound = `${a.host}:${a.port}`;
    const free = await freePorts(3);
    for (const [i, d] of ['api', 'near', 'h2api'].entries()) ports[d] = free[i] as number;
    callee.apply(
      snap({
        certs: { api: certs.api as ProxyCert, h2api: certs.h2api as ProxyCert },
        local: [
          localInstance('api-1', 'api', (inst.api as Instance).port, 'http'),
          localInstance('h2api-1', 'h2api', (inst.h2api as Instance).port, 'http2'),
        ],
      }),
    );
    caller.apply(
      snap({
        certs: { web: certs.web as ProxyCert, near: certs.near as ProxyCert },
        upstreams: [
          {
            source: 'web',
            destination: 'api',
            bindHost: '127.0.0.1',
            port: ports.api as number,
            protocol: 'http',
          },
          {
            source: 'web',
            destination: 'near',
            bindHost: '127.0.0.1',
            port: ports.near as number,
            protocol: 'http',
          },
          {
            source: 'web',
            destination: 'h2api',
            bindHost: '127.0.0.1',
            port: ports.h2api as number,
            protocol: 'http2',
          },
        ],
        chains: {
          api: compileChain(lookup, 'api', 'http'),
          near: compileChain(lookup, 'near', 'http'),
          h2api: compileChain(lookup, 'h2api', 'http2'),
        },
        endpoints: {
          api: [endpointAt('api', 'api-1', inbound)],
          near: [endpointAt('near', 'near-1', inbound, true)],
          h2api: [endpointAt('h2api', 'h2api-1', inbound)],
        },
        local: [localInstance('near-1', 'near', (inst.near as Instance).port, 'http')],
      }),
    );
    for (const p of Object.values(ports)) (await connectRetry(p)).destroy();
  });

  after(async () => {
    caller.stop();
    callee.stop();
    for (const i of Object.values(inst)) await i.close();
  });

  const sent = { 'x-env': 'prod', 'x-secret': 'token', 'x-added': 'first', 'x-kept': 'k' };

  for (const dest of ['api', 'near'] as const) {
    it(`HTTP/1.1 (${dest === 'api' ? "through the instance's agent" : 'an instance on the same agent'}): the instance sees the request changed, the caller the answer`, async () => {
      const r = await get(ports[dest] as number, '/changed/x', { headers: sent });
      assert.equal(r.status, 200, r.body);
      const seen = (inst[dest] as Instance).seen.at(-1)?.headers ?? {};
      assert.equal(seen['x-env'], 'canary', 'set replaces');
      assert.equal(seen['x-pct'], '50%', '%% is a literal %');
      assert.equal(seen['x-added'], 'first, yes', 'add appends');
      assert.equal(seen['x-secret'], undefined, 'remove removes');
      assert.equal(seen['x-kept'], 'k');
      assert.equal(r.headers['x-served-by'], 'hidden');
      assert.equal(r.headers['x-route'], 'changed');
      const plain = await get(ports[dest] as number, '/plain', { headers: sent });
      const untouched = (inst[dest] as Instance).seen.at(-1)?.headers ?? {};
      assert.equal(untouched['x-secret'], 'token');
      assert.equal(untouched['x-env'], 'prod');
      assert.equal(plain.headers['x-served-by'], dest);
      assert.equal(plain.headers['x-route'], undefined);
    });
  }

  it('HTTP/1.1: a header the client names in its Connection header is set or added by the agent alone', async () => {
    const r = await get(ports.api as number, '/changed/conn', {
      headers: { connection: 'x-env, x-added', 'x-env': 'prod', 'x-added': 'client' },
    });
    assert.equal(r.status, 200, r.body);
    const seen = (inst.api as Instance).seen.at(-1)?.headers ?? {};
    assert.equal(seen['x-env'], 'canary');
    assert.equal(seen['x-added'], 'yes', 'the client’s hop-by-hop line dropped, the agent’s sent');
  });

  it('leaves an answer the caller’s agent makes itself unchanged', async () => {
    const r = await get(ports.api as number, '/abort/x');
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-route'], undefined);
  });

  it('HTTP/2: a value added to a header the message has is joined to it, on the request and the answer', async () => {
    const r = await h2Get(ports.h2api as number, '/joined/z');
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['content-type'], 'text/plain, charset=x');
    assert.equal(
      (inst.h2api as Instance).seen.at(-1)?.headers['user-agent'],
      'mesh',
      'h2Get sends none: added',
    );
    const session = h2connect(`http://127.0.0.1:${ports.h2api}`);
    session.on('error', () => undefined);
    try {
      const status = await within(
        grpcStatusOf(session, '/demo.Greeter/SayHello', { 'user-agent': 'grpc-node/1', cookie: 'a=1' }),
        WAIT_MS,
        'a gRPC call',
      );
      assert.equal(status, '0');
      const seen = (inst.h2api as Instance).seen.at(-1)?.headers ?? {};
      assert.equal(seen['user-agent'], 'grpc-node/1, mesh');
      assert.equal(seen.cookie, 'a=1; c=3', 'cookies joined as cookies are');
      assert.equal(seen['x-env'], 'canary');
    } finally {
      session.destroy();
    }
  });

  it('HTTP/2: the instance sees the request changed, the caller the answer', async () => {
    const r = await h2Get(ports.h2api as number, '/changed/y');
    assert.equal(r.headers[':status'], 200);
    const seen = (inst.h2api as Instance).seen.at(-1)?.headers ?? {};
    assert.equal(seen['x-env'], 'canary');
    assert.equal(seen['x-added'], 'yes');
    assert.equal(r.headers['x-served-by'], 'hidden');
    assert.equal(r.headers['x-route'], 'changed');
    assert.equal(r.trailers['x-checksum'], 'c0ffee', 'trailers still relayed');
    const plain = await h2Get(ports.h2api as number, '/plain');
    assert.equal(plain.headers['x-served-by'], 'h2api');
  });
});
