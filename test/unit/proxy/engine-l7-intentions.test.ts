// L7 intentions with real engines in this process: an intention with permissions decides each
// HTTP/1.1 request and each gRPC call at the instance's agent by path, method and headers (the
// first permission that matches, else the mesh default), the same on the same-agent path; a tcp
// connection from such a source is refused, as in Consul. The mesh entry's
// headersWithUnderscoresAction refuses or drops header names with underscores, on both paths.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
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
  echo,
  echoInstance,
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
  untilClosed,
  WAIT_MS,
  within,
} from './harness.js';

const TD = 'l7.mesh';
const HOUR_MS = 3_600_000;

/** web may read api (GET, HEAD) but not /admin/, and POST /orders only as team ops; else the default. */
const API_INTENTIONS = {
  sources: [
    {
      name: 'web',
      permissions: [
        { action: 'deny', http: { pathPrefix: '/admin/' } },
        { action: 'allow', http: { methods: ['GET', 'HEAD'] } },
        {
          action: 'allow',
          http: { pathExact: '/orders', methods: ['POST'], header: [{ name: 'x-team', exact: 'ops' }] },
        },
      ],
    },
  ],
};

/** web may call only SayHello of greeter. */
const GREETER_INTENTIONS = {
  sources: [
    { name: 'web', permissions: [{ action: 'allow', http: { pathExact: '/demo.Greeter/SayHello' } }] },
  ],
};

/** An L7 rule for a tcp service: its connections are refused (no requests to match). */
const ECHO_INTENTIONS = { sources: [{ name: 'web', permissions: [{ action: 'allow', http: {} }] }] };

describe('L7 intentions (permissions) in the proxy', () => {
  let root: CaRoot;
  let certs: Record<string, ProxyCert>;
  const caller = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  let inbound = '';
  const inst: Record<string, Instance> = {};
  const ports: Record<string, number> = {};
  const baseSnap = snapshots(TD, () => root.certPem);
  // Requests no permission matches get the mesh's default: deny.
  const snap = (change: Partial<ProxySnapshot>): ProxySnapshot =>
    baseSnap({
      mesh: { defaultIntention: 'deny' },
      intentions: { api: API_INTENTIONS, greeter: GREETER_INTENTIONS, echo: ECHO_INTENTIONS },
      ...change,
    });
  const endpoint = (service: string, local: boolean): ProxyEndpoint =>
    endpointAt(service, `${service}-1`, inbound, local);
  const localOf = (service: string, protocol: Protocol): ProxyLocalInstance =>
    localInstance(`${service}-1`, service, (inst[service] as Instance).port, protocol);
  const SERVICES: Array<[string, Protocol]> = [
    ['api', 'http'],
    ['greeter', 'grpc'],
    ['echo', 'tcp'],
  ];

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    certs = {};
    for (const s of ['web', 'api', 'greeter', 'echo']) certs[s] = await issue(root, TD, s);
    inst.api = await httpInstance('api');
    inst.greeter = await h2Instance('greeter', { grpcStatus: 0, delayMs: 0 });
    inst.echo = await echoInstance('echo');
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    inbound = `${a.host}:${a.port}`;
    const free = await freePorts(4);
    [ports.api, ports.greeter, ports.echo, ports.apiLocal] = free as [number, number, number, number];
    callee.apply(snap(calleeSnapshot()));
    caller.apply(callerSnapshot());
    for (const p of Object.values(ports)) (await connectRetry(p)).destroy();
  });

  /** The callee serves api, greeter and echo from its local instances. */
  const calleeSnapshot = (): Partial<ProxySnapshot> => ({
    certs: {
      api: certs.api as ProxyCert,
      greeter: certs.greeter as ProxyCert,
      echo: certs.echo as ProxyCert,
    },
    local: SERVICES.map(([s, p]) => localOf(s, p)),
  });

  /** The caller reaches api, greeter and echo through the callee. */
  const callerSnapshot = (): ProxySnapshot =>
    snap({
      certs: { web: certs.web as ProxyCert },
      upstreams: [
        ...SERVICES.map(([s, p]) => ({
          source: 'web',
          destination: s,
          bindHost: '127.0.0.1',
          port: ports[s] as number,
          protocol: p,
        })),
        {
          source: 'web',
          destination: 'api',
          bindHost: '127.0.0.1',
          port: ports.apiLocal as number,
          protocol: 'http',
        },
      ],
      chains: Object.fromEntries(SERVICES.map(([s, p]) => [s, compileChain(() => undefined, s, p)])),
      endpoints: Object.fromEntries(SERVICES.map(([s]) => [s, [endpoint(s, false)]])),
    });

  /** The caller's agent also hosts api (inst.apiLocal): calls take the same-agent path. */
  const sameAgent = (change: Partial<ProxySnapshot>): ProxySnapshot =>
    snap({
      certs: { web: certs.web as ProxyCert },
      upstreams: [
        {
          source: 'web',
          destination: 'api',
          bindHost: '127.0.0.1',
          port: ports.apiLocal as number,
          protocol: 'http',
        },
      ],
      chains: { api: compileChain(() => undefined, 'api', 'http') },
      endpoints: { api: [endpoint('api', true)] },
      local: [{ ...localOf('api', 'http'), port: inst.apiLocal?.port as number }],
      ...change,
    });

  after(async () => {
    caller.stop();
    callee.stop();
    for (const i of Object.values(inst)) await i.close();
  });

  it('decides each HTTP/1.1 request by the first permission that matches, else by the mesh default', async () => {
    const deniedBefore = metricValue(await callee.metrics.text(), 'mesh_proxy_intention_denied_total', {
      source: 'web',
      destination: 'api',
    });
    const port = ports.api as number;
    const cases: Array<[string, string, Record<string, string>, number, RegExp]> = [
      ['GET', '/catalog', {}, 200, /^api \/catalog$/],
      ['GET', '/admin/users', {}, 403, /intention web→api permission 1 deny/],
      ['POST', '/orders', { 'x-team': 'ops' }, 200, /^api \/orders$/],
      ['POST', '/orders', { 'x-team': 'dev' }, 403, /no permission matched; default deny/],
      ['DELETE', '/catalog', {}, 403, /no permission matched; default deny/],
      // The same path written so that servers read it as /admin/users: refused all the same.
      ['GET', '/%61dmin/users', {}, 403, /permission 1 deny/],
      ['GET', '//admin/users', {}, 403, /permission 1 deny/],
      ['GET', '/catalog/../admin/users', {}, 403, /permission 1 deny/],
      ['GET', 'http://api/admin/users', {}, 403, /permission 1 deny/],
    ];
    for (const [method, path, headers, status, body] of cases) {
      const r = await within(get(port, path, { method, headers }), WAIT_MS, `${method} ${path}`);
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.match(r.body, body, `${method} ${path}`);
    }
    const denied = metricValue(await callee.metrics.text(), 'mesh_proxy_intention_denied_total', {
      source: 'web',
      destination: 'api',
    });
    assert.equal(denied - deniedBefore, 7, 'each refused request counted on the instance’s agent');
    assert.ok(
      (inst.api as Instance).seen.every((s) => !s.path.includes('dmin')),
      'no refused request reached the instance',
    );
  });

  it('decides the same on the same-agent path, where the caller’s agent checks for the instance’s', async () => {
    inst.apiLocal = await httpInstance('api-local');
    try {
      caller.apply(sameAgent({}));
      const port = ports.apiLocal as number;
      const ok = await within(get(port, '/catalog'), WAIT_MS, 'GET /catalog');
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.body, 'api-local /catalog');
      const no = await within(get(port, '/admin/x'), WAIT_MS, 'GET /admin/x');
      assert.equal(no.status, 403);
      assert.match(no.body, /intention web→api permission 1 deny/);
      assert.equal(inst.apiLocal.seen.length, 1, 'the refused request never reached the instance');
    } finally {
      caller.apply(callerSnapshot());
      await inst.apiLocal.close();
      delete inst.apiLocal;
    }
  });

  it('decides each gRPC call by its method path: a call no permission allows gets PERMISSION_DENIED', async () => {
    const session = h2connect(`http://127.0.0.1:${ports.greeter}`);
    session.on('error', () => undefined);
    const grpcCall = (path: string): Promise<string> => grpcStatusOf(session, path);
    try {
      assert.equal(await within(grpcCall('/demo.Greeter/SayHello'), WAIT_MS, 'SayHello'), '0');
      assert.equal(await within(grpcCall('/demo.Greeter/Delete'), WAIT_MS, 'Delete'), '7');
    } finally {
      session.destroy();
    }
  });

  it('refuses a tcp connection from a source whose intention has permissions (no requests to match)', async () => {
    // With the mesh default allow, so that only the L7 rule can refuse it.
    callee.apply(snap({ ...calleeSnapshot(), mesh: undefined }));
    try {
      const seen = (inst.echo as Instance).seen.length;
      const s = await connectRetry(ports.echo as number);
      s.write('hello');
      assert.equal(await untilClosed(s), '', 'closed without an echo');
      assert.equal((inst.echo as Instance).seen.length, seen, 'no connection reached the instance');
      // Without the rule the same connection echoes: the refusal was the L7 rule's.
      callee.apply(snap({ ...calleeSnapshot(), mesh: undefined, intentions: {} }));
      const ok = await connectRetry(ports.echo as number);
      assert.equal(await echo(ok, 'hello'), 'hello');
      ok.destroy();
    } finally {
      callee.apply(snap(calleeSnapshot()));
    }
  });
  /** The mesh entry as the callee (or, on the same-agent path, the caller) holds it. */
  const meshWith = (action: string) => ({
    defaultIntention: 'deny',
    http: { incoming: { requestNormalization: { headersWithUnderscoresAction: action } } },
  });

  it('headersWithUnderscoresAction: REJECT_REQUEST answers 400 (gRPC INTERNAL), DROP_HEADER removes the headers', async () => {
    const port = ports.api as number;
    const session = h2connect(`http://127.0.0.1:${ports.greeter}`);
    session.on('error', () => undefined);
    /** A gRPC call with an x_trace header: the grpc-status it ended with. */
    const grpcWith = (path: string): Promise<string> =>
      within(grpcStatusOf(session, path, { x_trace: '1' }), WAIT_MS, `gRPC ${path} with x_trace`);
    try {
      // Default ALLOW: passed on as sent.
      const allowed = await get(port, '/catalog/a', { headers: { x_team: 'ops' } });
      assert.equal(allowed.status, 200);
      assert.equal((inst.api as Instance).seen.at(-1)?.headers.x_team, 'ops');
      callee.apply(snap({ ...calleeSnapshot(), mesh: meshWith('REJECT_REQUEST') }));
      const refused = await get(port, '/catalog/b', { headers: { x_team: 'ops', 'x-ok': '1' } });
      assert.equal(refused.status, 400);
      assert.match(refused.body, /header names with underscores are refused here .*: x_team$/m);
      assert.ok(!(inst.api as Instance).seen.some((x) => x.path === '/catalog/b'), 'not sent on');
      assert.equal(
        (await get(port, '/catalog/c', { headers: { 'x-team': 'ops' } })).status,
        200,
        'hyphens pass',
      );
      assert.equal(await grpcWith('/demo.Greeter/SayHello'), '13');
      assert.equal(
        metricValue(await callee.metrics.text(), 'mesh_proxy_requests_total', {
          direction: 'inbound',
          source: 'web',
          destination: 'api',
          code: '400',
        }),
        1,
      );
      // DROP_HEADER: removed before the checks, so a permission that names x_key cannot be met
      // by a header the instance would never see.
      const withKeyRule = {
        ...snap({}).intentions,
        api: {
          sources: [
            {
              name: 'web',
              permissions: [
                {
                  action: 'allow',
                  http: { pathExact: '/secret', header: [{ name: 'x_key', present: true }] },
                },
                ...(API_INTENTIONS.sources[0]?.permissions ?? []),
              ],
            },
          ],
        },
      };
      callee.apply(snap({ ...calleeSnapshot(), intentions: withKeyRule }));
      assert.equal(
        (await get(port, '/secret', { method: 'POST', headers: { x_key: '1' } })).status,
        200,
        'met while allowed',
      );
      callee.apply(snap({ ...calleeSnapshot(), intentions: withKeyRule, mesh: meshWith('DROP_HEADER') }));
      assert.equal(
        (await get(port, '/secret', { method: 'POST', headers: { x_key: '1' } })).status,
        403,
        'dropped before the check',
      );
      const dropped = await get(port, '/catalog/d', { headers: { x_team: 'ops', 'x-team': 'dev' } });
      assert.equal(dropped.status, 200, dropped.body);
      const seen = (inst.api as Instance).seen.find((x) => x.path === '/catalog/d');
      assert.equal(seen?.headers.x_team, undefined, 'x_team dropped');
      assert.equal(seen?.headers['x-team'], 'dev', 'x-team kept');
      assert.equal(await grpcWith('/demo.Greeter/SayHello?dropped'), '0');
      const call = (inst.greeter as Instance).seen.find((x) => x.path === '/demo.Greeter/SayHello?dropped');
      assert.ok(call !== undefined && call.headers.x_trace === undefined, 'x_trace dropped over HTTP/2');
    } finally {
      session.destroy();
      callee.apply(snap(calleeSnapshot()));
    }
  });

  it('headersWithUnderscoresAction applies on the same-agent path too', async () => {
    inst.apiLocal = await httpInstance('api-local');
    const local = (action: string): ProxySnapshot => sameAgent({ mesh: meshWith(action) });
    try {
      const port = ports.apiLocal as number;
      caller.apply(local('REJECT_REQUEST'));
      assert.equal((await get(port, '/catalog', { headers: { x_team: 'ops' } })).status, 400);
      assert.equal(inst.apiLocal.seen.length, 0);
      caller.apply(local('DROP_HEADER'));
      const r = await get(port, '/catalog', { headers: { x_team: 'ops', 'x-team': 'dev' } });
      assert.equal(r.status, 200, r.body);
      assert.equal(inst.apiLocal.seen[0]?.headers.x_team, undefined);
      assert.equal(inst.apiLocal.seen[0]?.headers['x-team'], 'dev');
    } finally {
      caller.apply(callerSnapshot());
      await inst.apiLocal.close();
      delete inst.apiLocal;
    }
  });
});
