// Retries of HTTP/2 and gRPC calls, with real engines in this process: an answer the route retries
// (a gRPC status named in retryOn, an HTTP status in retryOnStatusCodes) is withheld from the
// caller and the call, body included, goes to another instance; a body larger than the kept bound
// is not retried; a failed connection is retried with retryOnConnectFailure; the retry budget
// still binds.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  type ClientHttp2Session,
  createServer as createH2Server,
  connect as h2connect,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CaRoot, createRoot } from '../../../src/ca/x509.js';
import { compileChain } from '../../../src/core/routing/chain.js';
import type { Lookup } from '../../../src/core/routing/types.js';
import type { ServiceRouterSpec } from '../../../src/core/state/kinds/service-router.js';
import { ProxyEngine } from '../../../src/proxy/engine.js';
import { H2_BODY_LIMITS } from '../../../src/proxy/h2-body.js';
import type { ProxyCert, ProxyEndpoint } from '../../../src/proxy/types.js';
import {
  backoffFloorMs,
  connectRetry,
  endpointAt,
  freePorts,
  issue,
  metricValue,
  pinnableDraw,
  snapshots,
  TOP_DRAW,
  WAIT_MS,
  within,
} from './harness.js';

const TD = 'h2retry.mesh';
const HOUR_MS = 3_600_000;
const CALLS = 20;
const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * How an instance answers: gRPC OK with the digest of the body it read, or a failure at once (or,
 * with `afterBody`, once it has read the whole body).
 */
type Answer =
  | { kind: 'ok' }
  | { kind: 'grpc'; status: number; afterBody?: true }
  | { kind: 'http'; status: number };

interface Instance {
  name: string;
  port: number;
  /** Calls that reached this instance. */
  calls: number;
  close(): Promise<void>;
}

/** An h2c instance: `ok` reads the whole body and answers its digest; the others fail at the head. */
async function instance(name: string, answer: Answer): Promise<Instance> {
  const server = createH2Server();
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (x) => {
    sessions.add(x);
    x.once('close', () => sessions.delete(x));
  });
  const self: Instance = { name, port: 0, calls: 0, close: async () => undefined };
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    self.calls++;
    stream.on('error', () => undefined);
    const grpc = String(headers['content-type']).startsWith('application/grpc');
    if (answer.kind === 'grpc') {
      const fail = (): void =>
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': String(answer.status),
            'x-served-by': name,
          },
          { endStream: true },
        );
      if (answer.afterBody !== true) return fail();
      stream.resume();
      stream.on('end', fail);
      return;
    }
    if (answer.kind === 'http') {
      stream.respond({ ':status': answer.status, 'x-served-by': name });
      stream.end(`${name} failed`);
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const head = { ':status': 200, 'x-served-by': name };
      if (!grpc) {
        stream.respond(head);
        stream.end(digest(Buffer.concat(chunks)));
        return;
      }
      stream.respond({ ...head, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(digest(Buffer.concat(chunks)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self.port = (server.address() as AddressInfo).port;
  self.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      // Sessions the engine pooled would keep the server open.
      for (const x of sessions) x.destroy();
    });
  return self;
}

interface CallResult {
  status: number;
  grpcStatus: string;
  by: string;
  body: string;
}

/** One call on `session`: `body` sent in `parts` writes `gapMs` apart; what came back. */
function call(
  session: ClientHttp2Session,
  body: Buffer,
  opts: { grpc: boolean; parts?: number; gapMs?: number },
): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':path': '/demo.Greeter/SayHello',
      ':method': 'POST',
      ...(opts.grpc ? { 'content-type': 'application/grpc' } : {}),
    });
    const out: CallResult = { status: 0, grpcStatus: '', by: '', body: '' };
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      out.by = String(h['x-served-by'] ?? '');
      if (h['grpc-status'] !== undefined) out.grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) out.grpcStatus = String(t['grpc-status']);
    });
    req.setEncoding('utf8');
    req.on('data', (d: string) => (out.body += d));
    req.on('error', reject);
    req.on('close', () => resolve(out));
    const parts = opts.parts ?? 1;
    const size = Math.ceil(body.length / parts);
    void (async () => {
      for (let i = 0; i < parts; i++) {
        if (i > 0 && opts.gapMs !== undefined) await sleep(opts.gapMs);
        req.write(body.subarray(i * size, (i + 1) * size));
      }
      req.end();
    })();
  });
}

describe('retries of HTTP/2 and gRPC calls', () => {
  let root: CaRoot;
  let certs: Record<string, ProxyCert>;
  const draws = pinnableDraw(11);
  const caller = new ProxyEngine({ connectionsMax: 256, log: () => undefined, draw: draws.draw });
  const callee = new ProxyEngine({ connectionsMax: 256, log: () => undefined });
  let inbound = '';
  const snap = snapshots(TD, () => root.certPem);
  const endpoint = (id: string, service: string, at = inbound): ProxyEndpoint => endpointAt(service, id, at);

  before(async () => {
    root = await createRoot({ trustDomain: TD, nowMs: Date.now(), ttlMs: HOUR_MS });
    certs = {};
    for (const s of ['web', 'gsvc', 'hsvc']) certs[s] = await issue(root, TD, s);
    const a = await callee.start('127.0.0.1', 0);
    await caller.start('127.0.0.1', 0);
    inbound = `${a.host}:${a.port}`;
  });

  after(() => {
    caller.stop();
    callee.stop();
  });

  /**
   * Serves `svc` (protocol `protocol`) from instances answering as `answers` says, behind a
   * service-router `router`, to the caller's upstream port; runs `fn` with a session to that port.
   * `extra` endpoints (not served by the callee) are offered to the caller too.
   */
  const withService = async (
    svc: 'gsvc' | 'hsvc',
    protocol: 'grpc' | 'http2',
    answers: Record<string, Answer>,
    router: ServiceRouterSpec,
    fn: (session: ClientHttp2Session, inst: Record<string, Instance>) => Promise<void>,
    extra: ProxyEndpoint[] = [],
  ): Promise<void> => {
    const inst: Record<string, Instance> = {};
    for (const [id, a] of Object.entries(answers)) inst[id] = await instance(id, a);
    const [port] = (await freePorts(1)) as [number];
    const lookup: Lookup = (kind, name) => (kind === 'service-router' && name === svc ? router : undefined);
    const chain = compileChain(lookup, svc, protocol);
    assert.deepEqual(chain.errors, []);
    callee.apply(
      snap({
        certs: { [svc]: certs[svc] as ProxyCert },
        local: Object.values(inst).map((i) => ({
          id: i.name,
          service: svc,
          host: '127.0.0.1',
          port: i.port,
          protocol,
          requestTimeoutMs: WAIT_MS,
          connectTimeoutMs: WAIT_MS,
        })),
      }),
    );
    caller.apply(
      snap({
        certs: { web: certs.web as ProxyCert },
        upstreams: [{ source: 'web', destination: svc, bindHost: '127.0.0.1', port, protocol }],
        chains: { [svc]: chain },
        endpoints: { [svc]: [...Object.keys(inst).map((id) => endpoint(id, svc)), ...extra] },
      }),
    );
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      (await connectRetry(port)).destroy();
      await fn(session, inst);
    } finally {
      session.destroy();
      caller.apply(snap({}));
      callee.apply(snap({}));
      for (const i of Object.values(inst)) await i.close();
    }
  };

  const retries = async (destination: string, result: string): Promise<number> =>
    metricValue(await caller.metrics.text(), 'mesh_proxy_retries_total', {
      source: 'web',
      destination,
      result,
    });

  it('sends a gRPC call answered UNAVAILABLE to another instance, body included, when retryOn names unavailable', async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 2, retryOn: ['unavailable'] } }],
    };
    const sentBefore = await retries('gsvc', 'sent');
    await withService(
      'gsvc',
      'grpc',
      { 'g-ok': { kind: 'ok' }, 'g-down': { kind: 'grpc', status: 14 } },
      router,
      async (session, inst) => {
        for (let i = 0; i < CALLS; i++) {
          const body = Buffer.from(`message ${i} `.repeat(50 + i));
          const r = await within(call(session, body, { grpc: true }), WAIT_MS, `call ${i}`);
          assert.deepEqual(r, { status: 200, grpcStatus: '0', by: 'g-ok', body: digest(body) }, `call ${i}`);
        }
        // Round robin over two instances: half the first attempts went to the failing one.
        assert.ok(
          (inst['g-down'] as Instance).calls >= CALLS / 4,
          `g-down saw ${inst['g-down']?.calls} calls`,
        );
        assert.equal((inst['g-ok'] as Instance).calls, CALLS);
      },
    );
    assert.ok((await retries('gsvc', 'sent')) - sentBefore >= CALLS / 4);
  });

  it('waits a back-off before each retry: with every draw at its top, 25, 75, 175 and 250 ms at the most', async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 4, retryOn: ['unavailable'] } }],
      retryBudget: { minRetriesPerSecond: 1_000 },
    };
    draws.pin(TOP_DRAW);
    try {
      await withService(
        'gsvc',
        'grpc',
        { 'g-down': { kind: 'grpc', status: 14 } },
        router,
        async (session, inst) => {
          const t0 = performance.now();
          const r = await within(call(session, Buffer.from('x'), { grpc: true }), WAIT_MS, 'the call');
          const tookMs = performance.now() - t0;
          assert.equal(r.grpcStatus, '14');
          assert.equal((inst['g-down'] as Instance).calls, 5, 'the first attempt and four retries');
          // The waits alone: without a back-off five attempts take a few milliseconds.
          // Less a millisecond a wait: Node may fire a timer up to 1 ms early by its rounding.
          assert.ok(tookMs >= backoffFloorMs(4) - 4, `five attempts in ${tookMs.toFixed(0)} ms`);
        },
      );
    } finally {
      draws.pin(undefined);
    }
  });

  it('passes UNAVAILABLE on when the route retries other codes only, and counts it as 14', async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 2, retryOn: ['deadline-exceeded'] } }],
    };
    const sentBefore = await retries('gsvc', 'sent');
    const count14 = async (): Promise<number> =>
      metricValue(await caller.metrics.text(), 'mesh_proxy_grpc_requests_total', {
        direction: 'outbound',
        source: 'web',
        destination: 'gsvc',
        grpc_status: '14',
      });
    const unavailableBefore = await count14();
    await withService(
      'gsvc',
      'grpc',
      { 'g-down2': { kind: 'grpc', status: 14 } },
      router,
      async (session) => {
        const r = await within(call(session, Buffer.from('x'), { grpc: true }), WAIT_MS, 'call');
        assert.equal(r.grpcStatus, '14');
        assert.equal(r.by, 'g-down2', "the instance's own answer, not one the agent made");
      },
    );
    assert.equal((await count14()) - unavailableBefore, 1);
    assert.equal(await retries('gsvc', 'sent'), sentBefore, 'no retry went out');
  });

  it('keeps sending a streamed body that was still arriving when the first attempt failed', async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 1, retryOn: ['unavailable'] } }],
    };
    await withService(
      'gsvc',
      'grpc',
      { 's-down': { kind: 'grpc', status: 14 }, 's-ok': { kind: 'ok' } },
      router,
      async (session, inst) => {
        // s-down answers as soon as the call's head reaches it; the parts come 150 ms apart, so the
        // retry starts with part of the body kept and the rest still to come.
        for (let i = 0; i < 4; i++) {
          const body = Buffer.from(`part of a stream ${i};`.repeat(400));
          const r = await within(
            call(session, body, { grpc: true, parts: 4, gapMs: 150 }),
            WAIT_MS,
            `call ${i}`,
          );
          assert.deepEqual(r, { status: 200, grpcStatus: '0', by: 's-ok', body: digest(body) }, `call ${i}`);
        }
        assert.ok((inst['s-down'] as Instance).calls > 0, 'some first attempts went to s-down');
      },
    );
  });

  it(`does not retry a call whose body outgrew the ${H2_BODY_LIMITS.replayBytesMax} bytes kept`, async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 2, retryOn: ['unavailable'] } }],
    };
    // b-down reads the whole body before it fails the call: by then the agent has seen it outgrow the bound.
    const answers: Record<string, Answer> = {
      'b-down': { kind: 'grpc', status: 14, afterBody: true },
      'b-ok': { kind: 'ok' },
    };
    await withService('gsvc', 'grpc', answers, router, async (session, inst) => {
      const big = Buffer.alloc(H2_BODY_LIMITS.replayBytesMax + 1, 97);
      const sentBefore = await retries('gsvc', 'sent');
      const results = [];
      for (let i = 0; i < 4; i++) {
        results.push(await within(call(session, big, { grpc: true, parts: 4 }), WAIT_MS, `call ${i}`));
      }
      const down = results.filter((r) => r.by === 'b-down');
      assert.equal(
        down.length,
        (inst['b-down'] as Instance).calls,
        'each call that reached b-down was answered by it',
      );
      assert.ok(down.length > 0);
      for (const r of down) assert.equal(r.grpcStatus, '14');
      for (const r of results.filter((x) => x.by === 'b-ok')) assert.equal(r.body, digest(big));
      assert.equal(await retries('gsvc', 'sent'), sentBefore, 'no retry went out');
    });
  });

  it('retries an HTTP/2 call on a status in retryOnStatusCodes; the caller never sees the 503', async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 1, retryOnStatusCodes: [503] } }],
    };
    await withService(
      'hsvc',
      'http2',
      { 'h-ok': { kind: 'ok' }, 'h-down': { kind: 'http', status: 503 } },
      router,
      async (session, inst) => {
        for (let i = 0; i < CALLS; i++) {
          const body = Buffer.from(`upload ${i}`);
          const r = await within(call(session, body, { grpc: false }), WAIT_MS, `call ${i}`);
          assert.deepEqual(r, { status: 200, grpcStatus: '', by: 'h-ok', body: digest(body) }, `call ${i}`);
        }
        assert.ok((inst['h-down'] as Instance).calls > 0);
      },
    );
  });

  it('retries a call whose instance cannot be reached with retryOnConnectFailure', async () => {
    const [closed] = (await freePorts(1)) as [number];
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 1, retryOn: ['connect-failure'] } }],
    };
    await withService(
      'gsvc',
      'grpc',
      { 'c-ok': { kind: 'ok' } },
      router,
      async (session) => {
        for (let i = 0; i < 6; i++) {
          const body = Buffer.from(`hello ${i}`);
          const r = await within(call(session, body, { grpc: true }), WAIT_MS, `call ${i}`);
          assert.deepEqual(r, { status: 200, grpcStatus: '0', by: 'c-ok', body: digest(body) }, `call ${i}`);
        }
      },
      [endpoint('c-gone', 'gsvc', `127.0.0.1:${closed}`)],
    );
  });

  it('lets the failure through once the retry budget is spent, and counts it', async () => {
    const router: ServiceRouterSpec = {
      routes: [{ destination: { numRetries: 2, retryOn: ['unavailable'] } }],
      retryBudget: { retryRatio: 0, minRetriesPerSecond: 0 },
    };
    const refusedBefore = await retries('gsvc', 'budget_exhausted');
    await withService('gsvc', 'grpc', { 'x-down': { kind: 'grpc', status: 14 } }, router, async (session) => {
      const r = await within(call(session, Buffer.from('x'), { grpc: true }), WAIT_MS, 'call');
      assert.equal(r.grpcStatus, '14');
    });
    assert.equal((await retries('gsvc', 'budget_exhausted')) - refusedBefore, 1);
  });
});
