// The data plane on real agents: `client` on n01 calls `web` (HTTP, two versions on n02 and n03),
// `echo` (TCP) and `greeter` (gRPC, @grpc/grpc-js) through its upstream ports; every call goes
// n01's proxy → mTLS → the callee's agent → the instance. Intentions refuse and permit; a 90/10
// split holds over 1,000 requests; a plain or wrongly-signed connection to an inbound port is
// refused; the agent's Prometheus endpoint counts the traffic.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type AgentProc, freePort, LocalCluster, waitFor } from '../../cluster-sim/launcher.js';
import { createLeafKeyAndCsr, createRoot, signLeaf } from '../../src/ca/x509.js';
import {
  api,
  echoServer,
  GRPC_MISSING_NAME,
  grpcChat,
  grpcHello,
  grpcServer,
  httpGet,
  meshCli,
  putConfig,
  putEntryFiles,
  register,
  release,
  untilStatus,
  type VersionServer,
  versionServer,
} from '../helpers/mesh-fixtures.js';

/** A service-router that aborts every SayHello call to greeter with UNAVAILABLE at the caller's agent. */
const GREETER_ABORT_ROUTER = [
  'kind: service-router',
  'name: greeter',
  'routes:',
  '  - match: { http: { pathExact: /demo.Greeter/SayHello } }',
  '    fault: { abort: { percent: 100, grpcStatus: UNAVAILABLE } }',
];

/**
 * Write `first` to 127.0.0.1:`port`; once what came back satisfies `ready`, write `then`; the
 * bytes that came back when `done` is satisfied, the server closed, or 10 s passed.
 */
function rawExchange(
  port: number,
  first: string,
  ready: (got: string) => boolean = () => false,
  then = '',
  done: (got: string) => boolean = () => false,
): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let got = '';
    let sent = false;
    const timer = setTimeout(() => s.destroy(), 10_000);
    s.on('connect', () => s.write(first));
    s.on('data', (d) => {
      got += d.toString();
      if (!sent && ready(got)) {
        sent = true;
        s.write(then);
      }
      if (sent && done(got)) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

/** Bytes sent through a TCP upstream and what came back (closed: the connection was refused). */
function echoOnce(port: number, text: string): Promise<string | 'closed'> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let got = '';
    const timer = setTimeout(() => s.destroy(), 10_000);
    s.on('connect', () => s.write(text));
    s.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got === '' ? 'closed' : got);
    });
  });
}

/**
 * Whether four calls in a row to `port` answer `status` (within 20 s): a change that web's two
 * agents (n02, n03) decide, called in turn, is then in force on both. One answer is not enough:
 * it may come from the agent the change reached first, and the next call go to the other.
 */
function untilBothWeb(
  port: number,
  status: number,
  path = '/',
  headers: Record<string, string> = {},
): Promise<boolean> {
  return waitFor(
    async () => {
      for (let i = 0; i < 4; i++) if ((await httpGet(port, path, headers)).status !== status) return false;
      return true;
    },
    20_000,
    100,
  );
}

/** The agent's Prometheus scrape. */
async function promText(a: AgentProc): Promise<string> {
  return (await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/metrics?format=prometheus`)).text();
}

async function versionOf(port: number): Promise<string> {
  const r = await httpGet(port, '/');
  return r.status === 200 ? (JSON.parse(r.body) as { version: string }).version : `status ${r.status}`;
}

/** `mesh intention check` on agent `a`, until it exits `code` (its copy of the entries catches up). */
async function checkOn(
  a: AgentProc,
  source: string,
  destination: string,
  code: number,
): Promise<{ code: number; stdout: string }> {
  let last = { code: -1, stdout: '' };
  const reached = await waitFor(
    async () => {
      last = await meshCli(a, 'intention', 'check', source, destination);
      return last.code === code;
    },
    20_000,
    100,
  );
  assert.ok(reached, `intention check ${source} ${destination}: exit ${last.code}, ${last.stdout}`);
  return last;
}

describe('the data plane between real agents', { timeout: 240_000 }, () => {
  const cluster = new LocalCluster();
  let n01: AgentProc;
  let n02: AgentProc;
  let n03: AgentProc;
  let v1: VersionServer;
  let v2: VersionServer;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let greeter: Awaited<ReturnType<typeof grpcServer>>;
  const ports = { web: 0, echo: 0, greeter: 0, any: 0 };

  before(async () => {
    await cluster.add(['--bootstrap']);
    await cluster.add();
    await cluster.add();
    [n01, n02, n03] = cluster.agents as [AgentProc, AgentProc, AgentProc];
    for (const a of cluster.agents) await cluster.ready(a);
    [v1, v2, echo, greeter] = await Promise.all([
      versionServer('v1'),
      versionServer('v2'),
      echoServer(),
      grpcServer(),
    ]);
    ports.web = await freePort();
    ports.echo = await freePort();
    ports.greeter = await freePort();
    ports.any = await freePort();
    const check = (p: number) => ({ http: `http://127.0.0.1:${p}/health`, interval: '500ms' });
    await register(n02, {
      name: 'web',
      id: 'web-v1',
      port: v1.port,
      protocol: 'http',
      meta: { version: 'v1' },
      check: check(v1.port),
    });
    await register(n03, {
      name: 'web',
      id: 'web-v2',
      port: v2.port,
      protocol: 'http',
      meta: { version: 'v2' },
      check: check(v2.port),
    });
    await register(n02, { name: 'echo', port: echo.port, protocol: 'tcp' });
    await register(n02, { name: 'greeter', port: greeter.port, protocol: 'grpc' });
    await register(n01, {
      name: 'client',
      port: 1,
      upstreams: [
        { service: 'web', localPort: ports.web },
        { service: 'echo', localPort: ports.echo },
        { service: 'greeter', localPort: ports.greeter },
        // The HTTP proxy port: routes each request by the service its Host names.
        { service: '*', localPort: ports.any },
      ],
    });
  });

  after(async () => {
    if (process.env.MESH_TEST_LOGS)
      for (const a of cluster.agents)
        process.stderr.write(`${a.name}\n${a.output.length} ${a.output.slice(0, 30).join('\n')}\n`);
    await cluster.stop();
    v1?.server.close();
    v2?.server.close();
    echo?.server.close();
    greeter?.server.forceShutdown();
  });

  it('HTTP/1.1: client reaches both versions of web through its upstream port, with a traceparent', async () => {
    const seen = new Set<string>();
    const ok = await waitFor(
      async () => {
        seen.add(await versionOf(ports.web));
        return seen.has('v1') && seen.has('v2');
      },
      60_000,
      100,
    );
    assert.ok(ok, `saw ${[...seen].join(', ')}`);
    assert.match(String(v1.lastHeaders.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(
      v1.lastHeaders['x-mesh-instance'],
      undefined,
      'the mesh header is not passed to the service',
    );
  });

  it('HTTP proxy port ("*"): the Host, or an HTTP_PROXY client\'s absolute target, names the service; other names are refused', async () => {
    const byHost = async (host: string, path = '/') => httpGet(ports.any, path, { host });
    assert.ok(await waitFor(async () => (await byHost('web')).status === 200, 60_000, 100), 'Host: web');
    // Any case, a port, a trailing dot: still web. The path and query reach the instance as sent.
    const r = await byHost('WEB.:8080', '/a/b?c=d');
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { path: string }).path, '/a/b?c=d');
    // A client that uses the port as its HTTP proxy sends the whole URL: the instance gets origin form.
    // …and the Host the URL names, whatever Host the client sent (RFC 9112 §3.2.2).
    const abs = await httpGet(ports.any, 'http://web/x?y=1', { host: 'elsewhere' });
    assert.equal(abs.status, 200, abs.body);
    assert.equal((JSON.parse(abs.body) as { path: string }).path, '/x?y=1');
    const seenHost = (JSON.parse(abs.body) as { version: string }).version === 'v1' ? v1 : v2;
    assert.equal(seenHost.lastHeaders.host, 'web');
    assert.equal(
      (JSON.parse((await httpGet(ports.any, 'http://web', { host: 'web' })).body) as { path: string }).path,
      '/',
    );
    const refused = [
      [await byHost('nosuch'), 404, /no service named "nosuch"/],
      [await byHost('echo'), 404, /"echo" speaks tcp/],
      [await byHost('greeter'), 404, /"greeter" speaks grpc/],
      [await byHost('127.0.0.1:1'), 404, /is not a service name/],
      [await httpGet(ports.any, 'https://web/', { host: 'web' }), 400, /http:\/\/ targets only/],
    ] as const;
    for (const [got, status, message] of refused) {
      assert.equal(got.status, status, got.body);
      assert.match(got.body, message);
    }
    // CONNECT to an HTTP/1.1 service (an https:// URL): refused, and the port still serves the next request.
    const refusedConnect = await rawExchange(ports.any, 'CONNECT web:443 HTTP/1.1\r\nHost: web:443\r\n\r\n');
    assert.match(refusedConnect, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(
      refusedConnect,
      /service "web" speaks http: call http:\/\/web\/… through this port without CONNECT/,
    );
    assert.equal((await byHost('web')).status, 200);
    // The service is chosen per request: one keep-alive connection, three pipelined requests.
    const answers = await new Promise<string>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: ports.any });
      let got = '';
      const timer = setTimeout(() => s.destroy(), 10_000);
      s.on('connect', () =>
        s.write(
          'GET / HTTP/1.1\r\nHost: nosuch\r\n\r\n' +
            'GET /k HTTP/1.1\r\nHost: web\r\n\r\n' +
            'GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n',
        ),
      );
      s.on('data', (d) => (got += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
    });
    assert.deepEqual(
      [...answers.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1]),
      ['404', '200', '404'],
      answers,
    );
    assert.match(answers, /"path":"\/k"/);
    // Counted under the service it reached, and refusals under "*" (a made-up name is no label).
    const text = await promText(n01);
    assert.match(
      text,
      /^mesh_proxy_requests_total\{direction="outbound",source="client",destination="web",code="200"\} [1-9]/m,
    );
    assert.match(
      text,
      /^mesh_proxy_requests_total\{direction="outbound",source="client",destination="\*",code="404"\} ([4-9]|[1-9]\d+)$/m,
    );
    assert.doesNotMatch(text, /destination="nosuch"/);
    // The agent lists the port with its destination "*".
    const proxy = (await api(n01, 'GET', '/v1/agent/proxy')).json as {
      upstreams: Array<{ destination: string; address: string }>;
    };
    assert.ok(proxy.upstreams.some((u) => u.destination === '*' && u.address === `127.0.0.1:${ports.any}`));
  });

  it('HTTP proxy port ("*"): CONNECT opens a tunnel: a gRPC client with grpc_proxy set is routed call by call, a tcp service gets the bytes', async () => {
    // A caller whose agent (n03) has no upstream port of greeter's or echo's: its HTTP proxy port
    // is the only way there.
    const edgePort = await freePort();
    await register(n03, { name: 'edge', port: 1, upstreams: [{ service: '*', localPort: edgePort }] });
    try {
      // A real gRPC client told by grpc_proxy to use the port: it asks CONNECT greeter:50051, then
      // speaks HTTP/2 in the tunnel. The name need not resolve: the mesh picks the instance.
      const via = { proxyPort: edgePort, target: 'greeter:50051' };
      let last: unknown;
      assert.ok(
        await waitFor(
          async () => {
            last = await grpcHello(0, 'tunnel', via);
            return (last as { text?: string }).text === 'hello tunnel';
          },
          30_000,
          200,
        ),
        JSON.stringify(last),
      );
      // Each call in the tunnel is routed on its own: a route's fault applies to SayHello there too.
      try {
        await putEntryFiles(n01, [GREETER_ABORT_ROUTER]);
        assert.ok(
          await waitFor(
            async () => ((await grpcHello(0, 'f', via)) as { code?: number }).code === 14,
            20_000,
            100,
          ),
          'SayHello aborted inside the tunnel',
        );
      } finally {
        assert.equal((await api(n01, 'DELETE', '/v1/config/service-router/greeter')).status, 200);
      }
      assert.ok(
        await waitFor(
          async () => ((await grpcHello(0, 'g', via)) as { text?: string }).text === 'hello g',
          20_000,
          100,
        ),
      );
      // A tcp service: the bytes, those sent right behind the CONNECT head included, reach the
      // instance (an echo server) and come back.
      const echoed = await rawExchange(
        edgePort,
        'CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\n\r\nahead|',
        (got) => got.endsWith('ahead|'),
        'after',
        (got) => got.endsWith('ahead|after'),
      );
      assert.equal(echoed, 'HTTP/1.1 200 Connection established\r\n\r\nahead|after');
      // Refused: a target without a port, a name not in the catalog, a port of one service.
      for (const [port, head, status, message] of [
        [
          ports.any,
          'CONNECT greeter HTTP/1.1\r\nHost: greeter\r\n\r\n',
          400,
          /CONNECT takes a service name and a port/,
        ],
        [ports.any, 'CONNECT nosuch:1 HTTP/1.1\r\nHost: nosuch:1\r\n\r\n', 404, /no service named "nosuch"/],
        [
          ports.any,
          'CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\nContent-Length: 5\r\n\r\nhello',
          400,
          /a CONNECT request has no body/,
        ],
        [ports.web, 'CONNECT web:80 HTTP/1.1\r\nHost: web:80\r\n\r\n', 405, /does not open CONNECT tunnels/],
      ] as const) {
        const got = await rawExchange(port, head);
        assert.match(got, new RegExp(`^HTTP/1\\.1 ${status} `), got);
        assert.match(got, message);
        assert.match(got, /\r\nconnection: close\r\n/i, 'a refused CONNECT closes its connection');
      }
    } finally {
      assert.equal((await meshCli(n03, 'services', 'deregister', 'edge')).code, 0);
    }
  });

  it('TCP: bytes echo through the mesh', async () => {
    const ok = await waitFor(
      async () => (await echoOnce(ports.echo, 'ping over mTLS')) === 'ping over mTLS',
      30_000,
      200,
    );
    assert.ok(ok);
  });

  it('gRPC: a unary call from a real gRPC client reaches the real gRPC server', async () => {
    let last: unknown;
    const ok = await waitFor(
      async () => {
        last = await grpcHello(ports.greeter, 'mesh');
        return (last as { text?: string }).text === 'hello mesh';
      },
      30_000,
      200,
    );
    assert.ok(ok, JSON.stringify(last));
    // An error status (a trailers-only answer) travels through both agents to the client.
    const missing = await grpcHello(ports.greeter, GRPC_MISSING_NAME);
    assert.deepEqual(missing, { code: 5, details: `no one called ${GRPC_MISSING_NAME}` });
  });

  it('gRPC: a bidirectional stream carries each message both ways while the call is open', async () => {
    // Each message is sent only after the answer to the one before came back: a proxy that
    // buffered either direction until the other side ended would stall it until the deadline.
    const messages = Array.from({ length: 20 }, (_, i) => `message ${i}`);
    const answers = await grpcChat(ports.greeter, messages);
    assert.deepEqual(
      answers,
      messages.map((m) => m.toUpperCase()),
    );
  });

  it('a deny intention refuses HTTP with 403, TCP with a closed connection, gRPC with PERMISSION_DENIED; allow permits again', async () => {
    for (const dest of ['web', 'echo', 'greeter'])
      assert.equal((await meshCli(n01, 'intention', 'deny', 'client', dest)).code, 0);
    try {
      await deniedEverywhere();
    } finally {
      // Allowed again whatever happened above: the tests after this one call these services.
      for (const dest of ['web', 'echo', 'greeter'])
        assert.equal((await meshCli(n01, 'intention', 'allow', 'client', dest)).code, 0);
    }
    // Both of web's agents: the next test reads a 403 as its own L7 deny.
    assert.ok(await untilBothWeb(ports.web, 200), 'allowed again');
    assert.ok(await waitFor(async () => (await echoOnce(ports.echo, 'y')) === 'y', 20_000, 100));
    await checkOn(n01, 'client', 'web', 0);
  });

  /** The deny of the test above, in force on every callee's agent, and counted. */
  async function deniedEverywhere(): Promise<void> {
    // n03 answers from its own copy, which the write reaches a moment later.
    const check = await checkOn(n03, 'client', 'web', 1);
    assert.match(check.stdout, /Denied/);
    assert.ok(await untilBothWeb(ports.web, 403), 'HTTP 403 from both of web’s agents');
    const denied = await httpGet(ports.web);
    assert.match(denied.body, /client → web/);
    assert.ok(
      await waitFor(async () => (await echoOnce(ports.echo, 'x')) === 'closed', 20_000, 100),
      'TCP closed',
    );
    // PERMISSION_DENIED itself, not any failure: a passing UNAVAILABLE or deadline must not end the
    // wait before greeter's agent has the deny (the last of the three writes).
    let g: Awaited<ReturnType<typeof grpcHello>> | undefined;
    assert.ok(
      await waitFor(
        async () => {
          g = await grpcHello(ports.greeter, 'x');
          return 'code' in g && g.code === 7;
        },
        20_000,
        100,
      ),
      `gRPC refused with PERMISSION_DENIED: ${JSON.stringify(g)}`,
    );
    // Counted: on the callee's agent as denials (and the gRPC one as PERMISSION_DENIED, HTTP 403
    // there), on the caller's as gRPC status 7 and as 403s with a latency histogram of their own.
    // web runs on n02 and n03: its denials are on either callee, greeter's on n02.
    const [caller, callee, web2] = [await promText(n01), await promText(n02), await promText(n03)];
    for (const [dest, text] of [
      ['web', callee + web2],
      ['greeter', callee],
    ] as const)
      assert.match(
        text,
        new RegExp(
          `^mesh_proxy_intention_denied_total\\{source="client",destination="${dest}"\\} [1-9]`,
          'm',
        ),
      );
    assert.match(
      callee,
      /^mesh_proxy_grpc_requests_total\{direction="inbound",source="client",destination="greeter",grpc_status="7"\} [1-9]/m,
    );
    assert.match(
      caller,
      /^mesh_proxy_grpc_requests_total\{direction="outbound",source="client",destination="greeter",grpc_status="7"\} [1-9]/m,
    );
    assert.match(
      caller,
      /^mesh_proxy_request_duration_seconds_count\{direction="outbound",source="client",destination="web",code="403"\} [1-9]/m,
    );
    const list = await meshCli(n01, 'intention', 'list');
    assert.match(list.stdout, /client\s+web\s+deny/);
  }

  it('L7 intentions: permissions written with mesh config put decide each HTTP request and gRPC call by path and method', async () => {
    const entry = (dest: string, permissions: string[]): string[] => [
      'kind: service-intentions',
      `name: ${dest}`,
      'sources:',
      '  - name: client',
      '    permissions:',
      ...permissions,
    ];
    const entries = [
      entry('web', [
        '      - action: deny',
        '        http:',
        '          pathPrefix: /admin/',
        '      - action: allow',
        '        http:',
        '          methods: [GET]',
      ]),
      entry('greeter', [
        '      - action: deny',
        '        http:',
        '          pathExact: /demo.Greeter/Chat',
        '      - action: allow',
        '        http: {}',
      ]),
    ];
    try {
      await putEntryFiles(n01, entries);
      assert.ok(
        await untilBothWeb(ports.web, 403, '/admin/users'),
        'GET /admin/users refused by both of web’s agents',
      );
      assert.match((await httpGet(ports.web, '/admin/users')).body, /intention client→web permission 1 deny/);
      assert.equal((await httpGet(ports.web, '/')).status, 200, 'GET / allowed by permission 2');
      assert.ok(
        await waitFor(
          async () => {
            const chat = await grpcChat(ports.greeter, ['hi']);
            return !Array.isArray(chat) && chat.code === 7;
          },
          20_000,
          100,
        ),
        'Chat refused with PERMISSION_DENIED',
      );
      assert.deepEqual(await grpcHello(ports.greeter, 'l7'), { text: 'hello l7' }, 'SayHello allowed');
      const list = await meshCli(n01, 'intention', 'list');
      assert.match(list.stdout, /client\s+web\s+L7: 2 permissions\s+9/);
      const check = await checkOn(n03, 'client', 'web', 1);
      assert.match(check.stdout, /Denied \(intention client→web has L7 permissions/);
      // The L4 command would drop the permissions: refused, and the rule stays.
      const allow = await meshCli(n01, 'intention', 'allow', 'client', 'web');
      assert.notEqual(allow.code, 0);
      assert.match(allow.stderr, /has L7 permissions/);
      assert.equal((await httpGet(ports.web, '/admin/users')).status, 403);
    } finally {
      for (const dest of ['web', 'greeter']) {
        assert.equal((await meshCli(n01, 'intention', 'delete', 'client', dest)).code, 0);
        assert.equal((await meshCli(n01, 'intention', 'allow', 'client', dest)).code, 0);
      }
    }
    assert.ok(await untilStatus(ports.web, 200, '/admin/users'), 'an L4 allow again');
  });

  it('the mesh entry’s headersWithUnderscoresAction: REJECT_REQUEST refuses x_user at the instances’ agents', async () => {
    const meshEntry = [
      'kind: mesh',
      'name: global',
      'http:',
      '  incoming:',
      '    requestNormalization:',
      '      headersWithUnderscoresAction: REJECT_REQUEST',
    ];
    try {
      // Waited for: run alone, this test may start before web's leaves and catalog are ready.
      assert.ok(await untilStatus(ports.web, 200, '/', { x_user: 'alice' }, 30_000), 'passed by default');
      await putEntryFiles(n01, [meshEntry]);
      // Decided by web's agents (n02, n03), once the entry reaches them.
      assert.ok(
        await untilBothWeb(ports.web, 400, '/', { x_user: 'alice' }),
        'x_user refused by both of web’s agents',
      );
      assert.match(
        (await httpGet(ports.web, '/', { x_user: 'a' })).body,
        /header names with underscores are refused here/,
      );
      assert.equal((await httpGet(ports.web, '/', { 'x-user': 'alice' })).status, 200, 'x-user passes');
    } finally {
      assert.equal((await api(n01, 'DELETE', '/v1/config/mesh/global')).status, 200);
    }
    assert.ok(
      await untilStatus(ports.web, 200, '/', { x_user: 'alice' }),
      'passed again once the entry is gone',
    );
  });

  it('fault injection: a service-router route written with mesh config put aborts or delays its requests at the caller’s agent', async () => {
    const webRouter = [
      'kind: service-router',
      'name: web',
      'routes:',
      '  - match: { http: { pathPrefix: /flaky/ } }',
      '    fault: { abort: { percent: 100, httpStatus: 503 } }',
      '  - match: { http: { pathPrefix: /slow/ } }',
      '    fault: { delay: { percent: 100, fixedDelayMs: 400 } }',
    ];
    try {
      await putEntryFiles(n01, [webRouter, GREETER_ABORT_ROUTER]);
      assert.ok(await untilStatus(ports.web, 503, '/flaky/a'), 'GET /flaky/a aborted');
      assert.match(
        (await httpGet(ports.web, '/flaky/b')).body,
        /fault injected \(service-router web routes\[0\]\.fault\.abort\)/,
      );
      assert.equal((await httpGet(ports.web, '/')).status, 200, 'other paths untouched');
      const t0 = performance.now();
      assert.equal((await httpGet(ports.web, '/slow/a')).status, 200);
      assert.ok(performance.now() - t0 >= 398, 'GET /slow/a held');
      assert.ok(
        await waitFor(
          async () => ((await grpcHello(ports.greeter, 'f')) as { code?: number }).code === 14,
          20_000,
          100,
        ),
        'SayHello aborted with UNAVAILABLE',
      );
      const text = await promText(n01);
      for (const [dest, fault] of [
        ['web', 'abort'],
        ['web', 'delay'],
        ['greeter', 'abort'],
      ] as const)
        assert.match(
          text,
          new RegExp(
            `^mesh_proxy_faults_total\\{source="client",destination="${dest}",fault="${fault}"\\} [1-9]`,
            'm',
          ),
        );
    } finally {
      for (const name of ['web', 'greeter'])
        assert.equal((await api(n01, 'DELETE', `/v1/config/service-router/${name}`)).status, 200);
    }
    assert.ok(await untilStatus(ports.web, 200, '/flaky/a'), 'no fault once the router is gone');
    assert.ok(
      await waitFor(
        async () => ((await grpcHello(ports.greeter, 'g')) as { text?: string }).text === 'hello g',
        20_000,
        100,
      ),
    );
  });

  it('header changes: a service-router route written with mesh config put (its path matched without case) sets and removes request headers and adds a response header at the caller’s agent', async () => {
    const router = [
      'kind: service-router',
      'name: web',
      'routes:',
      // Matched without case: the requests below ask for /hdr/….
      '  - match: { http: { pathPrefix: /HDR/, caseInsensitive: true } }',
      '    destination:',
      '      requestHeaders: { set: { x-env: canary }, remove: [x-secret] }',
      '      responseHeaders: { add: { x-route: hdr } }',
    ];
    const call = (path: string) =>
      fetch(`http://127.0.0.1:${ports.web}${path}`, { headers: { 'x-secret': 's', 'x-env': 'prod' } });
    try {
      await putEntryFiles(n01, [router]);
      assert.ok(
        await waitFor(async () => (await call('/hdr/1')).headers.get('x-route') === 'hdr', 20_000, 100),
        'the answer carries the added header once the router is in force',
      );
      const r = await call('/hdr/2');
      const { version } = (await r.json()) as { version: string };
      const seen = (version === 'v1' ? v1 : v2).lastHeaders;
      assert.equal(seen['x-env'], 'canary');
      assert.equal(seen['x-secret'], undefined);
      const plain = await call('/plain');
      const other = (await plain.json()) as { version: string };
      assert.equal(plain.headers.get('x-route'), null, 'other paths untouched');
      assert.equal((other.version === 'v1' ? v1 : v2).lastHeaders['x-secret'], 's');
      const chain = await meshCli(n01, 'config', 'chain', 'web');
      assert.match(
        chain.stdout,
        /path \/HDR\/\* \(any case\) +web +request headers: x-secret removed, x-env set; response headers: x-route added/,
      );
    } finally {
      assert.equal((await api(n01, 'DELETE', '/v1/config/service-router/web')).status, 200);
    }
  });

  it('route regexes: (a+)+ against a crafted 2 KiB path is answered; a backreference is refused at mesh config put', async () => {
    const router = (pathRegex: string) => [
      'kind: service-router',
      'name: web',
      'routes:',
      `  - match: { http: { pathRegex: '${pathRegex}' } }`,
      '    fault: { abort: { percent: 100, httpStatus: 503 } }',
    ];
    assert.ok(await untilStatus(ports.web, 200, '/'), 'web answers through the mesh');
    try {
      await putEntryFiles(n01, [router('/(a+)+')]);
      assert.ok(await untilStatus(ports.web, 503, '/aaaa'), 'the route matches /aaaa');
      // 2^2000 steps for a backtracking engine: without the linear-time fallback this request
      // would hold n01's proxy thread (and every other call through it) for good.
      const crafted = await httpGet(ports.web, `/${'a'.repeat(2_000)}!`);
      assert.equal(crafted.status, 200, `crafted path: ${crafted.status} ${crafted.body.slice(0, 200)}`);
      assert.equal((await httpGet(ports.web, '/')).status, 200, 'the proxy still answers');
      const dir = mkdtempSync(join(tmpdir(), 'mesh-regex-'));
      try {
        const file = join(dir, 'router.yaml');
        writeFileSync(file, [...router('/(a)\\1'), ''].join('\n'));
        const put = await meshCli(n01, 'config', 'put', file);
        assert.notEqual(put.code, 0);
        assert.match(put.stderr, /routes\[0\]\.match\.http\.pathRegex: cannot be matched in linear time/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      assert.equal((await httpGet(ports.web, '/aaaa')).status, 503, 'the refused write changed nothing');
    } finally {
      assert.equal((await api(n01, 'DELETE', '/v1/config/service-router/web')).status, 200);
    }
    assert.ok(await untilStatus(ports.web, 200, '/aaaa'), 'no route once the router is gone');
  });

  it('service-defaults rateLimits: the instances’ agents answer 429 over the limit, and count it', async () => {
    await putConfig(n01, 'service-defaults', 'web', {
      protocol: 'http',
      rateLimits: { instanceLevel: { requestsPerSecond: 1, requestsMaxBurst: 1 } },
    });
    const many = () => Promise.all(Array.from({ length: 20 }, () => httpGet(ports.web)));
    try {
      // Each of web's two agents applies the entry when it gets it, and each instance's bucket
      // holds one token (a burst of 1): once both have it, a round of 20 gets one 200 from each
      // instance and 429 for the rest. Rounds 1.1 s apart, so every round starts with full buckets
      // (a round that met the limit halfway through takes the token the next would have had).
      let last: Array<{ status: number; body: string }> = [];
      const statuses = (): string => last.map((r) => r.status).join(' ');
      const shared = await waitFor(
        async () => {
          last = await many();
          const refused = last.filter((r) => r.status === 429).length;
          return last.some((r) => r.status === 200) && refused >= 10 && refused + 4 >= last.length;
        },
        30_000,
        1_100,
      );
      assert.ok(shared, `each instance takes its share, the rest refused: ${statuses()}`);
      assert.ok(
        last.every((r) => r.status === 200 || r.status === 429),
        `nothing but 200 and 429: ${statuses()}`,
      );
      assert.match(
        last.find((r) => r.status === 429)?.body ?? '',
        /rate limit of web exceeded \(1 requests a second/,
      );
      // Counted on the instances' agents (web runs on n02 and n03).
      const text = (await promText(n02)) + (await promText(n03));
      assert.match(text, /^mesh_proxy_rate_limited_total\{service="web"\} [1-9]/m);
    } finally {
      assert.equal((await api(n01, 'DELETE', '/v1/config/service-defaults/web')).status, 200);
    }
    assert.ok(
      await waitFor(async () => (await many()).every((r) => r.status === 200), 20_000, 200),
      'no limit once the entry is gone',
    );
  });

  it('a 90/10 split between the v1 and v2 subsets holds over 1,000 requests', async () => {
    await putConfig(n01, 'service-resolver', 'web', {
      subsets: { v1: { filter: { meta: { version: 'v1' } } }, v2: { filter: { meta: { version: 'v2' } } } },
    });
    await putConfig(n01, 'service-splitter', 'web', {
      splits: [
        { weight: 90, serviceSubset: 'v1' },
        { weight: 10, serviceSubset: 'v2' },
      ],
    });
    const chainOf = (): Promise<{ code: number; stdout: string; stderr: string }> =>
      meshCli(n01, 'config', 'chain', 'web');
    const SPLIT = /^0 +\(default\) +90% v1\.web, 10% v2\.web$/m;
    try {
      // Until n01 has both entries (its proxy takes them with the same snapshot).
      assert.ok(
        await waitFor(async () => SPLIT.test((await chainOf()).stdout), 20_000, 200),
        'the split on n01',
      );
      // How n01's proxy routes calls to web, as an operator reads it.
      const chain = await chainOf();
      assert.equal(chain.code, 0, chain.stderr);
      assert.match(chain.stdout, /^Discovery chain of web \(http\), from the configuration at index \d+$/m);
      assert.match(chain.stdout, /^0 +\(default\) +90% v1\.web, 10% v2\.web$/m);
      assert.match(chain.stdout, /^v1\.web +web +version=v1 +round_robin +- +1 of 1 healthy$/m);
      assert.match(chain.stdout, /^v2\.web +web +version=v2 +round_robin +- +1 of 1 healthy$/m);
      const bad = await api(n01, 'GET', '/v1/discovery-chain/Web_1');
      assert.equal(bad.status, 400);
      const counts: Record<string, number> = {};
      for (let i = 0; i < 1000; i++) {
        const v = await versionOf(ports.web);
        counts[v] = (counts[v] ?? 0) + 1;
      }
      const v2share = (counts.v2 ?? 0) / 1000;
      // Binomial(1000, 0.1): sd ≈ 0.95 %; 5 %–15 % is over five sd either side.
      assert.ok(v2share >= 0.05 && v2share <= 0.15, JSON.stringify(counts));
      assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), 1000, JSON.stringify(counts));
    } finally {
      // Also when an assertion failed: a split left behind would skew every later test.
      await api(n01, 'DELETE', '/v1/config/service-splitter/web');
    }
    assert.ok(
      await waitFor(async () => !SPLIT.test((await chainOf()).stdout), 20_000, 200),
      'the split gone',
    );
  });

  it('service weights: web-v1 registered with weights { passing: 3 } takes three calls in four', async () => {
    const v1def = {
      name: 'web',
      id: 'web-v1',
      port: v1.port,
      protocol: 'http',
      meta: { version: 'v1' },
      check: { http: `http://127.0.0.1:${v1.port}/health`, interval: '500ms' },
    };
    await register(n02, { ...v1def, weights: { passing: 3 } });
    try {
      // The new weights reach n01's catalog by gossip.
      assert.ok(
        await waitFor(
          async () =>
            /^n\S+ +web-v1 +\S+ +\d+ +passing +3\/1 /m.test(
              (await meshCli(n01, 'catalog', 'instances', 'web')).stdout,
            ),
          20_000,
          100,
        ),
        'mesh catalog instances on n01 shows web-v1 with weights 3/1',
      );
      // The caller's agent balances by the new weight once the catalog change reaches it.
      const shareOf = async (n: number): Promise<number> => {
        let one = 0;
        for (let i = 0; i < n; i++) if ((await versionOf(ports.web)) === 'v1') one++;
        return one / n;
      };
      assert.ok(
        await waitFor(async () => Math.abs((await shareOf(40)) - 0.75) < 0.1, 20_000, 100),
        'weights in force',
      );
      // Smooth weighted round robin: exactly 3 in every 4 once in force.
      const share = await shareOf(400);
      assert.ok(Math.abs(share - 0.75) <= 0.02, `web-v1 took ${(share * 100).toFixed(1)}% of 400 calls`);
    } finally {
      await register(n02, v1def);
    }
  });

  it('refuses a plain TCP connection and a certificate from another CA at the inbound port', async () => {
    const members = (await api(n02, 'GET', '/v1/agent/members')).json as Array<{
      name: string;
      meta: Record<string, string>;
    }>;
    const inbound = members.find((m) => m.name === n02.name)?.meta.inbound ?? '';
    const [host, port] = [
      inbound.slice(0, inbound.lastIndexOf(':')),
      Number(inbound.slice(inbound.lastIndexOf(':') + 1)),
    ];
    const before = v1.hits;
    const plain = await new Promise<string>((resolve) => {
      const s = netConnect({ host, port });
      let got = '';
      s.on('connect', () => s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve(got));
      setTimeout(() => s.destroy(), 5_000);
    });
    assert.doesNotMatch(plain, /^HTTP\//, 'no HTTP answer to a plain connection');
    const roots = (await api(n02, 'GET', '/v1/ca/roots')).json as { trustDomain: string };
    const rogue = await createRoot({ trustDomain: roots.trustDomain, nowMs: Date.now(), ttlMs: 3_600_000 });
    const { keyPem, csrPem } = await createLeafKeyAndCsr({
      trustDomain: roots.trustDomain,
      service: 'client',
    });
    const leaf = await signLeaf({
      csrPem,
      caCertPem: rogue.certPem,
      caKeyPem: rogue.keyPem,
      trustDomain: roots.trustDomain,
      service: 'client',
      nowMs: Date.now(),
      ttlMs: 3_600_000,
    });
    const answer = await new Promise<string>((resolve) => {
      const s = tlsConnect({
        host,
        port,
        key: keyPem,
        cert: leaf.certPem,
        servername: `web.svc.${roots.trustDomain}`,
        ALPNProtocols: ['http/1.1'],
        rejectUnauthorized: false,
      });
      let got = '';
      s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nhost: x\r\nx-mesh-instance: web-v1\r\n\r\n'));
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('error', (err) => (got += `error: ${err.message}`));
      s.on('close', () => resolve(got));
      setTimeout(() => s.destroy(), 5_000);
    });
    assert.doesNotMatch(answer, /^HTTP\//, `no HTTP answer to a rogue certificate: ${answer}`);
    assert.equal(v1.hits, before, 'nothing reached the instance');
  });

  it('service-defaults maxConnections caps TCP connections to an instance; one more is refused until one closes', async () => {
    await putConfig(n01, 'service-defaults', 'echo', { protocol: 'tcp', maxConnections: 1 });
    /** A connection through the mesh that has echoed once and stays open (undefined if refused). */
    const held = (): Promise<Socket | undefined> =>
      new Promise((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port: ports.echo });
        const timer = setTimeout(() => s.destroy(), 10_000);
        s.on('error', () => undefined);
        s.on('connect', () => s.write('held'));
        s.once('data', () => {
          clearTimeout(timer);
          resolve(s);
        });
        s.on('close', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    let first: Socket | undefined;
    try {
      // In force once the callee's agent has the entry: the second connection is then refused.
      const capped = await waitFor(
        async () => {
          first?.destroy();
          first = await held();
          return first !== undefined && (await echoOnce(ports.echo, 'second')) === 'closed';
        },
        20_000,
        200,
      );
      assert.ok(capped, 'a second connection was refused while the first was open');
      const metrics = await promText(n02);
      assert.match(
        metrics,
        /mesh_proxy_connections_total\{direction="inbound",source="client",destination="echo",result="overflow"\} [1-9]/,
      );
      first?.destroy();
      assert.ok(
        await waitFor(async () => (await echoOnce(ports.echo, 'after')) === 'after', 10_000, 100),
        'a connection is let in once the first has closed',
      );
    } finally {
      first?.destroy();
      await api(n01, 'DELETE', '/v1/config/service-defaults/echo');
    }
  });

  it('service-defaults upstreamConfig limits (mesh config put): the caller’s agent refuses HTTP past maxConcurrentRequests with 503 and TCP past maxConnections, and mesh proxy status shows them', async () => {
    const entry = [
      'kind: service-defaults',
      'name: client',
      'upstreamConfig:',
      '  overrides:',
      '    - name: web',
      '      limits:',
      '        maxConcurrentRequests: 2',
      '    - name: echo',
      '      limits:',
      '        maxConnections: 1',
    ];
    // A bad limit is refused by name, and nothing is written.
    const dir = mkdtempSync(join(tmpdir(), 'mesh-limits-'));
    try {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, `${entry.slice(0, 7).join('\n')}\n        maxPendingRequests: -1\n`);
      const refused = await meshCli(n01, 'config', 'put', bad);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /upstreamConfig\.overrides\[0\]\.limits\.maxPendingRequests: must be a whole number from 0 to/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await putEntryFiles(n01, [entry]);
    let first: Socket | undefined;
    try {
      assert.ok(
        await waitFor(
          async () => (await meshCli(n01, 'proxy', 'status')).stdout.includes('requests 2'),
          20_000,
          100,
        ),
        'the limits reach the proxy of the caller’s agent',
      );
      // Run alone, this test may come before the caller has its certificate.
      assert.ok(await untilStatus(ports.web, 200), 'web answers through the mesh');
      const status = (await meshCli(n01, 'proxy', 'status')).stdout;
      assert.match(status, /LIMITS/);
      assert.match(status, /client +echo +\S+ +tcp +connections 1 /);
      v1.held = [];
      v2.held = [];
      const two = [httpGet(ports.web), httpGet(ports.web)];
      assert.ok(
        await waitFor(() => (v1.held?.length ?? 0) + (v2.held?.length ?? 0) === 2, 10_000, 20),
        'two requests held at the instances',
      );
      const third = await httpGet(ports.web);
      assert.equal(third.status, 503, third.body);
      assert.match(third.body, /^mesh: client has 2 requests in flight to web already/);
      assert.equal((v1.held?.length ?? 0) + (v2.held?.length ?? 0), 2, 'the third never reached an instance');
      release(v1);
      release(v2);
      for (const r of await Promise.all(two)) assert.equal(r.status, 200);
      // TCP: a second connection while the first is open is closed by the caller's agent.
      first = netConnect({ host: '127.0.0.1', port: ports.echo });
      first.on('error', () => undefined);
      const echoed = new Promise((resolve) => first?.once('data', resolve));
      first.write('held');
      await echoed;
      assert.equal(await echoOnce(ports.echo, 'second'), 'closed');
      const metrics = await promText(n01);
      assert.match(
        metrics,
        /^mesh_proxy_upstream_limit_refused_total\{source="client",destination="web",limit="maxConcurrentRequests"\} 1$/m,
      );
      assert.match(
        metrics,
        /^mesh_proxy_upstream_limit_refused_total\{source="client",destination="echo",limit="maxConnections"\} 1$/m,
      );
    } finally {
      first?.destroy();
      release(v1);
      release(v2);
      assert.equal((await api(n01, 'DELETE', '/v1/config/service-defaults/client')).status, 200);
    }
  });

  it('Prometheus metrics count the requests by source, destination and status', async () => {
    // The calls counted here are made here (the denials are counted in their own test): HTTP 200s,
    // two TCP connections (the second resumes the TLS session of the first, or of an earlier one),
    // and gRPC calls answered OK and NOT_FOUND by the server.
    assert.ok(await untilStatus(ports.web, 200, '/', {}, 30_000), 'HTTP 200');
    // waitFor: the earlier test's maxConnections entry may still be leaving the callee.
    for (const m of ['first', 'second'])
      assert.ok(await waitFor(async () => (await echoOnce(ports.echo, m)) === m, 20_000, 100), `TCP ${m}`);
    assert.ok(
      await waitFor(
        async () => ((await grpcHello(ports.greeter, 'mesh')) as { text?: string }).text === 'hello mesh',
        30_000,
        100,
      ),
      'gRPC OK',
    );
    assert.deepEqual(await grpcHello(ports.greeter, GRPC_MISSING_NAME), {
      code: 5,
      details: `no one called ${GRPC_MISSING_NAME}`,
    });
    const res = await fetch(`http://127.0.0.1:${n01.httpPort}/v1/agent/metrics?format=prometheus`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(
      text,
      /mesh_proxy_requests_total\{direction="outbound",source="client",destination="web",code="200"\} \d+/,
    );
    // Latency by status: each code has a histogram of its own.
    assert.match(
      text,
      /^mesh_proxy_request_duration_seconds_count\{direction="outbound",source="client",destination="web",code="200"\} [1-9]/m,
    );
    assert.match(text, /^mesh_proxy_peer_handshakes_total\{resumed="true"\} [1-9]/m);
    assert.match(text, /^mesh_proxy_peer_handshakes_total\{resumed="false"\} [1-9]/m);
    assert.match(text, /^mesh_agent_members\{status="alive"\} [1-9]/m);
    // The real worker has answered the watchdog's pings all along (one a second, 10 s allowed).
    for (const a of cluster.agents)
      for (const reason of ['exited', 'unresponsive'])
        assert.match(
          await promText(a),
          new RegExp(`^mesh_proxy_worker_restarts_total\\{reason="${reason}"\\} 0$`, 'm'),
          `${a.name} ${reason}`,
        );
    // A scrape that declares a metric twice is refused by Prometheus as a whole.
    const declared = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
    assert.deepEqual(
      declared.filter((n, i) => declared.indexOf(n) !== i),
      [],
    );
    // gRPC calls by grpc-status: OK and NOT_FOUND from the server.
    const grpcOut =
      'mesh_proxy_grpc_requests_total\\{direction="outbound",source="client",destination="greeter"';
    for (const code of [0, 5])
      assert.match(text, new RegExp(`^${grpcOut},grpc_status="${code}"\\} [1-9]`, 'm'));
  });
});
