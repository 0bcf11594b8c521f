// Fixtures for the in-process proxy tests: certificates from a real root, local "instances" (HTTP/1.1,
// h2c, TCP echo) that record what reaches them, and clients whose every wait is bounded.
import assert from 'node:assert/strict';
import {
  type Agent,
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
} from 'node:http';
import {
  type ClientHttp2Session,
  createServer as createH2Server,
  type IncomingHttpHeaders as H2Headers,
  connect as h2connect,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Socket,
} from 'node:net';
import { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CaRoot, createLeafKeyAndCsr, signLeaf } from '../../../src/ca/x509.js';
import { SeededRng } from '../../../src/core/rand.js';
import { retryBackoffMs } from '../../../src/core/routing/retry-backoff.js';
import { EMPTY_SNAPSHOT } from '../../../src/proxy/routing.js';
import type {
  ProxyCert,
  ProxyEndpoint,
  ProxyLocalInstance,
  ProxyProtocol,
  ProxySnapshot,
} from '../../../src/proxy/types.js';

/** Bound on any single wait in these tests: far above what loopback needs, short of a hung run. */
export const WAIT_MS = 10_000;
const RETRY_EVERY_MS = 20;
const DAY_MS = 86_400_000;

export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A leaf for `service` from `root`, in the shape the proxy snapshot carries. */
/** Polls `done` every 5 ms until it holds, failing after WAIT_MS (the loop ends either way). */
export async function until(done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  while (!(await done())) {
    assert.ok(performance.now() < deadline, `${what}, within ${WAIT_MS} ms`);
    await sleep(5);
  }
}

export async function issue(root: CaRoot, trustDomain: string, service: string): Promise<ProxyCert> {
  const { keyPem, csrPem } = await createLeafKeyAndCsr({ trustDomain, service });
  const leaf = await signLeaf({
    csrPem,
    caCertPem: root.certPem,
    caKeyPem: root.keyPem,
    trustDomain,
    service,
    nowMs: Date.now(), // OpenSSL checks validity against the real clock
    ttlMs: DAY_MS,
  });
  return { certPem: leaf.certPem, keyPem, chainPem: [], notAfterMs: leaf.notAfterMs };
}

/** `n` distinct ports free a moment ago (bound together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createNetServer());
  const ports = await Promise.all(
    servers.map(
      (s) =>
        new Promise<number>((resolve) =>
          s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)),
        ),
    ),
  );
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** A TCP connection to 127.0.0.1:port, retried while nothing listens there yet (a listener opening). */
export async function connectRetry(port: number): Promise<Socket> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const s = netConnect({ host: '127.0.0.1', port });
    const outcome = await new Promise<Error | undefined>((resolve) => {
      s.once('connect', () => resolve(undefined));
      s.once('error', resolve);
    });
    if (outcome === undefined) return s;
    s.destroy();
    if ((outcome as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw outcome;
    await sleep(RETRY_EVERY_MS);
  }
}

/** Resolves once a connect to `port` is refused (its listener closed). */
export async function waitRefused(port: number): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const s = netConnect({ host: '127.0.0.1', port });
    const code = await new Promise<string | undefined>((resolve) => {
      s.once('connect', () => resolve(undefined));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    });
    s.destroy();
    if (code === 'ECONNREFUSED') return;
    if (Date.now() > deadline) throw new Error(`port ${port} still accepts connections`);
    await sleep(RETRY_EVERY_MS);
  }
}

export interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Instance {
  name: string;
  port: number;
  /** Requests (or, for echo, connections) that reached it. */
  seen: Seen[];
  close(): Promise<void>;
}

/** An HTTP/1.1 instance answering `200 <name> <path>`. */
export async function httpInstance(name: string): Promise<Instance> {
  const seen: Seen[] = [];
  const server = createHttpServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString();
      seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(`${name} ${req.url}`);
    });
  });
  // An Upgrade (as WebSocket does) switches to echoing raw bytes after the 101.
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: '' });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
    socket.on('error', () => undefined);
  });
  const port = await listen(server);
  return {
    name,
    port,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** How an h2c instance answers gRPC calls (`content-type: application/grpc`). */
export interface GrpcAnswer {
  /** The `grpc-status` of every call: 0 with a body and trailers, otherwise trailers-only. */
  grpcStatus: number;
  /** How long each call waits for its answer. */
  delayMs: number;
}

/** How long an h2c instance takes to answer a `/slow…` path. */
export const SLOW_ANSWER_MS = 300;

/** How an h2c instance answers plain HTTP/2 requests, besides the paths h2Instance names. */
export interface H2Answer {
  /** How long each request waits for its answer. */
  delayMs?: number;
  /**
   * Every answer is cut after its head and the first bytes of its body: by a reset of the stream
   * (RST_STREAM INTERNAL_ERROR), or by the instance dropping its connection, as a crash would.
   */
  cut?: 'reset' | 'crash';
  /** With `cut`: how many body bytes go out before the cut (default: a line of text). */
  bodyBytes?: number;
}

/** How long after the first body bytes a cut answer is cut (h2Instance's `cut`). */
const CUT_AFTER_MS = 50;

/**
 * An h2c instance answering `200 <name> <path>` with a trailer `x-checksum: c0ffee` (see
 * `/no-trailers`); `/slow…` is answered after SLOW_ANSWER_MS, `/hang…` never, until the caller
 * gives up. With `grpc`, gRPC calls get that answer instead, with `x-served-by` in their first
 * HEADERS frame; `h2` changes how the other requests are answered.
 */
export async function h2Instance(name: string, grpc?: GrpcAnswer, h2: H2Answer = {}): Promise<Instance> {
  const seen: Seen[] = [];
  const sessions = new Set<ServerHttp2Session>();
  const server = createH2Server();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    seen.push({
      method: String(headers[':method']),
      path: String(headers[':path']),
      headers: headers as IncomingHttpHeaders,
      body: '',
    });
    stream.resume();
    if (String(headers[':path']).startsWith('/hang')) return;
    if (grpc !== undefined && String(headers['content-type']).startsWith('application/grpc')) {
      setTimeout(() => answerGrpc(stream, name, grpc.grpcStatus), grpc.delayMs);
      return;
    }
    const path = String(headers[':path']);
    if (h2.cut !== undefined) {
      const cut = h2.cut;
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-served-by': name });
      stream.write(
        h2.bodyBytes === undefined ? `${name} ${path} (cut here)` : Buffer.alloc(h2.bodyBytes, 120),
      );
      // On a timer, not the write's callback: a large body is not all written while the caller
      // does not read.
      setTimeout(() => {
        if (cut === 'reset') stream.destroy(new Error('cut'));
        else stream.session?.destroy();
      }, CUT_AFTER_MS);
      return;
    }
    const delayMs = path.startsWith('/slow') ? SLOW_ANSWER_MS : (h2.delayMs ?? 0);
    if (delayMs > 0) setTimeout(() => answerH2(stream, name, path), delayMs);
    else answerH2(stream, name, path);
  });
  const port = await listen(server);
  return {
    name,
    port,
    seen,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

function answerH2(stream: ServerHttp2Stream, name: string, path: string): void {
  if (stream.destroyed) return;
  // `/no-trailers…` answers without trailers, as most plain HTTP/2 services do.
  const trailers = !path.startsWith('/no-trailers');
  stream.respond(
    { ':status': 200, 'content-type': 'text/plain', 'x-served-by': name },
    { waitForTrailers: trailers },
  );
  if (trailers) stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'c0ffee' }));
  stream.end(`${name} ${path}`);
}

function answerGrpc(stream: ServerHttp2Stream, name: string, grpcStatus: number): void {
  if (stream.destroyed) return;
  const head = { ':status': 200, 'content-type': 'application/grpc', 'x-served-by': name };
  if (grpcStatus !== 0) {
    stream.respond({ ...head, 'grpc-status': String(grpcStatus) }, { endStream: true });
    return;
  }
  stream.respond(head, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  // One empty message: a zero compressed-flag byte and a zero length.
  stream.end(Buffer.alloc(5));
}

/** A TCP instance that echoes every byte back; `seen` gets one entry per connection. */
export async function echoInstance(name: string): Promise<Instance> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  // Half-open, like a server that answers what it read once the client has finished sending.
  const server = createNetServer({ allowHalfOpen: true }, (s) => {
    seen.push({ method: '', path: '', headers: {}, body: '' });
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    s.pipe(s);
  });
  const port = await listen(server);
  return {
    name,
    port,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

function listen(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): AddressInfo | string | null;
}): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

export interface Reply {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
  reusedSocket: boolean;
}

export interface CallOptions {
  agent?: Agent;
  headers?: Record<string, string>;
  method?: string;
  /** Sent in pieces of `chunkBytes` (chunked transfer encoding unless a content-length header is set). */
  body?: string;
  chunkBytes?: number;
}

/** A request to 127.0.0.1:port`path` over HTTP/1.1 (a fresh connection unless `agent`); GET by default. */
export function get(port: number, path: string, opts: CallOptions = {}): Promise<Reply> {
  const done = new Promise<Reply>((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        agent: opts.agent ?? false,
        headers: opts.headers ?? {},
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(parts).toString(),
            headers: res.headers,
            reusedSocket: req.reusedSocket,
          }),
        );
      },
    );
    req.on('error', reject);
    const body = opts.body ?? '';
    const step = opts.chunkBytes ?? Math.max(1, body.length);
    for (let at = 0; at < body.length; at += step) req.write(body.slice(at, at + step));
    req.end();
  });
  return within(done, WAIT_MS, `${opts.method ?? 'GET'} :${port}${path}`);
}

export interface H2Reply {
  headers: H2Headers;
  body: string;
  trailers: H2Headers;
}

/** One h2c request to 127.0.0.1:port on a new session, closed afterwards. */
export async function h2Get(port: number, path: string): Promise<H2Reply> {
  const session = h2connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    return await within(
      new Promise<H2Reply>((resolve, reject) => {
        const req = session.request({ ':path': path, ':method': 'GET' });
        let headers: H2Headers = {};
        let trailers: H2Headers = {};
        const parts: Buffer[] = [];
        req.on('response', (h) => (headers = h));
        req.on('trailers', (t) => (trailers = t));
        req.on('data', (c: Buffer) => parts.push(c));
        req.on('error', reject);
        req.on('end', () => resolve({ headers, body: Buffer.concat(parts).toString(), trailers }));
        req.end();
      }),
      WAIT_MS,
      `h2 GET :${port}${path}`,
    );
  } finally {
    session.destroy();
  }
}

/** Write `data` on `s` and resolve with the first `data.length` bytes read back. */
export function echo(s: Socket, data: string): Promise<string> {
  const got = new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString();
      if (buf.length >= data.length) {
        s.off('data', onData);
        resolve(buf);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error(`closed after ${JSON.stringify(buf)}`)));
  });
  s.write(data);
  return within(got, WAIT_MS, `echo of ${JSON.stringify(data)}`);
}

/** Resolves with what `s` received once it closes (bounded). */
export function untilClosed(s: Socket): Promise<string> {
  return within(
    new Promise<string>((resolve) => {
      let buf = '';
      s.on('error', () => undefined);
      s.on('data', (c: Buffer) => (buf += c.toString()));
      s.once('close', () => resolve(buf));
    }),
    WAIT_MS,
    'connection close',
  );
}

/** The value of one series in Prometheus text (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const have = line.slice(name.length + 1, close).split(',');
    if (want.every((w) => have.includes(w))) return Number(line.slice(close + 1).trim());
  }
  return 0;
}

/**
 * Snapshots for a test's engines: each call a new version, over the empty snapshot, trusting the
 * root `rootPem()` gives (read per call: tests make the root in `before`).
 */
export function snapshots(
  trustDomain: string,
  rootPem: () => string,
): (change: Partial<ProxySnapshot>) => ProxySnapshot {
  let version = 1;
  return (change) => ({
    ...EMPTY_SNAPSHOT,
    version: { raft: ++version, catalog: version },
    trustDomain,
    roots: [rootPem()],
    ...change,
  });
}

/** Instance `instanceId` of `service`, behind the agent whose inbound listener is `inbound` (or on this agent). */
export function endpointAt(
  service: string,
  instanceId: string,
  inbound: string,
  local = false,
): ProxyEndpoint {
  return {
    id: `${local ? 'caller' : 'callee'}/${instanceId}`,
    instanceId,
    service,
    inbound,
    local,
    healthy: true,
    passing: true,
    tags: [],
    meta: {},
  };
}

/** A local instance `id` of `service` on 127.0.0.1:port, with generous timeouts. */
export function localInstance(
  id: string,
  service: string,
  port: number,
  protocol: ProxyProtocol,
): ProxyLocalInstance {
  return {
    id,
    service,
    host: '127.0.0.1',
    port,
    protocol,
    requestTimeoutMs: WAIT_MS,
    connectTimeoutMs: WAIT_MS,
  };
}

/** One gRPC-shaped call (an empty message) to `path` on `session`, with `headers`: the grpc-status it ended with. */
export function grpcStatusOf(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':path': path,
      ':method': 'POST',
      'content-type': 'application/grpc',
      ...headers,
    });
    let status = '';
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) status = String(t['grpc-status']);
    });
    req.on('error', reject);
    req.on('close', () => resolve(status));
    req.resume();
    req.end(Buffer.alloc(5));
  });
}

/**
 * Where an engine under test takes the draws of its faults and retry back-off: a seeded sequence,
 * or the pinned value while one is set (`pin(undefined)` goes back to the sequence).
 */
export function pinnableDraw(seed: number): { draw: () => number; pin(v: number | undefined): void } {
  const rng = new SeededRng(seed);
  let pinned: number | undefined;
  return {
    draw: () => pinned ?? rng.next(),
    pin: (v) => {
      pinned = v;
    },
  };
}

/** The highest draw: each retry then waits the most its back-off allows. */
export const TOP_DRAW = 1 - Number.EPSILON;

/** What retries 1 to n wait in all when every draw is TOP_DRAW (4 retries: 24 + 74 + 174 + 249 ms). */
export function backoffFloorMs(retries: number): number {
  let ms = 0;
  for (let k = 1; k <= retries; k++) ms += retryBackoffMs(k, TOP_DRAW);
  return ms;
}

/** The answer that opens a CONNECT tunnel, as a client reads it. */
export const ESTABLISHED = 'HTTP/1.1 200 Connection established\r\n\r\n';

/**
 * An HTTP/2 session through a CONNECT tunnel to `target` on the HTTP proxy port at `port`. The
 * client does not wait for the 200: its preface follows the CONNECT head at once, so the agent
 * gets bytes past the head with it; the 200 is taken off before HTTP/2 reads the rest.
 */
export async function h2Tunnel(port: number, target: string): Promise<ClientHttp2Session> {
  const socket = await connectRetry(port);
  socket.on('error', () => undefined);
  let head = '';
  let opened = false;
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, done) {
      socket.write(chunk, () => done());
    },
    final(done) {
      socket.end();
      done();
    },
    destroy(err, done) {
      socket.destroy();
      done(err);
    },
  });
  socket.on('data', (b: Buffer) => {
    if (opened) {
      d.push(b);
      return;
    }
    head += b.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    opened = true;
    if (head.slice(0, end + 4) !== ESTABLISHED) {
      d.destroy(new Error(`CONNECT answered ${JSON.stringify(head.slice(0, 80))}`));
      return;
    }
    if (head.length > end + 4) d.push(Buffer.from(head.slice(end + 4), 'latin1'));
  });
  socket.once('end', () => d.push(null));
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  return h2connect(`http://${target}`, { createConnection: () => d });
}
