// What the data-plane integration tests share: the CLI and API of a real agent, and small
// instances to put behind the mesh (an HTTP server that names its version, a TCP echo server, a
// gRPC server built with @grpc/grpc-js).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  request,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { type AgentProc, MESH_BIN, waitFor } from '../../cluster-sim/launcher.js';

const run = promisify(execFile);

/** Run `mesh ARGS --http <agent>`; the exit code and output, never a throw. */
export async function meshCli(
  a: AgentProc,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MESH_BIN, ...args, '--http', `127.0.0.1:${a.httpPort}`], {
      timeout: 30_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export async function api(
  a: AgentProc,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${a.httpPort}${path}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

export async function register(a: AgentProc, definition: Record<string, unknown>): Promise<void> {
  const r = await api(a, 'PUT', '/v1/agent/service/register', definition);
  if (r.status !== 200)
    throw new Error(`register ${JSON.stringify(definition)}: ${r.status} ${JSON.stringify(r.json)}`);
}

export async function putConfig(a: AgentProc, kind: string, name: string, spec: object): Promise<void> {
  const r = await api(a, 'PUT', '/v1/config', { kind, name, ...(spec as object) });
  if (r.status !== 200) throw new Error(`config ${kind}/${name}: ${r.status} ${JSON.stringify(r.json)}`);
}

/** One GET with a fresh connection; status and body (status 0 when the connection failed). */
export function httpGet(
  port: number,
  path = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
    req.end();
  });
}

export interface VersionServer {
  server: HttpServer;
  port: number;
  /** Requests served, by path. */
  hits: number;
  /** What /health answers: 200 while true, 500 otherwise. */
  healthy: boolean;
  /** Headers of the last request to a path other than /health. */
  lastHeaders: Record<string, string | string[] | undefined>;
  /** While true, every request but /health gets a 500 (a broken instance whose check still passes). */
  failing: boolean;
  /** While set, every request but /health is held here unanswered (a slow instance); `release` answers them. */
  held: ServerResponse[] | undefined;
}

/** Answers the requests `s` holds and stops holding. */
export function release(s: VersionServer): void {
  const held = s.held ?? [];
  s.held = undefined;
  for (const res of held) res.writeHead(200).end('released');
}

/** An HTTP server answering `{"version": V}` (and /health for its check). */
export async function versionServer(version: string): Promise<VersionServer> {
  const s: VersionServer = {
    server: createHttpServer(),
    port: 0,
    hits: 0,
    healthy: true,
    lastHeaders: {},
    failing: false,
    held: undefined,
  };
  s.server.on('request', (req, res) => {
    if (req.url === '/health') {
      res.writeHead(s.healthy ? 200 : 500).end();
      return;
    }
    s.hits++;
    s.lastHeaders = req.headers;
    if (s.failing) {
      res.writeHead(500).end('broken');
      return;
    }
    if (s.held !== undefined) {
      s.held.push(res);
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ version, path: req.url }));
  });
  await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
  s.port = (s.server.address() as { port: number }).port;
  return s;
}

export async function echoServer(): Promise<{ server: NetServer; port: number; connections: number }> {
  const e = { server: createNetServer(), port: 0, connections: 0 };
  e.server.on('connection', (c) => {
    e.connections++;
    c.pipe(c);
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => e.server.listen(0, '127.0.0.1', r));
  e.port = (e.server.address() as { port: number }).port;
  return e;
}

const identity = (b: Buffer): Buffer => b;
const RAW = {
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
} as const;
/** gRPC methods with raw byte messages, no .proto file needed: unary SayHello and bidirectional Chat. */
const GREETER = {
  sayHello: { path: '/demo.Greeter/SayHello', requestStream: false, responseStream: false, ...RAW },
  chat: { path: '/demo.Greeter/Chat', requestStream: true, responseStream: true, ...RAW },
} as const;

/** The name SayHello answers with NOT_FOUND (a trailers-only answer: HTTP status 200, grpc-status 5). */
export const GRPC_MISSING_NAME = 'missing';

/** What a grpcServer is doing: set `failing` to answer every SayHello UNAVAILABLE. */
export interface GrpcServerState {
  failing: boolean;
  /** SayHello calls that reached this server. */
  calls: number;
}

/**
 * SayHello answers `hello NAME` (`hello NAME from LABEL` with a label; NOT_FOUND for
 * GRPC_MISSING_NAME; UNAVAILABLE while `state.failing`); Chat answers each message as it comes,
 * upper-cased, and ends when the client does.
 */
export async function grpcServer(
  label?: string,
): Promise<{ server: grpc.Server; port: number; state: GrpcServerState }> {
  const server = new grpc.Server();
  const state: GrpcServerState = { failing: false, calls: 0 };
  server.addService(GREETER as unknown as grpc.ServiceDefinition, {
    sayHello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      state.calls++;
      const name = call.request.toString();
      if (state.failing) cb({ code: grpc.status.UNAVAILABLE, details: `${label ?? 'greeter'} is failing` });
      else if (name === GRPC_MISSING_NAME)
        cb({ code: grpc.status.NOT_FOUND, details: `no one called ${name}` });
      else cb(null, Buffer.from(label === undefined ? `hello ${name}` : `hello ${name} from ${label}`));
    },
    chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(Buffer.from(m.toString().toUpperCase())));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port, state };
}

/**
 * Chat on 127.0.0.1:port: send each of `messages` only once the answer to the one before has come
 * back, so the call passes only if both directions stream (nothing waits for the other side to end).
 */
export function grpcChat(
  port: number,
  messages: readonly string[],
): Promise<string[] | { code: number; details: string }> {
  const Client = grpc.makeGenericClientConstructor(GREETER as unknown as grpc.ServiceDefinition, 'Greeter');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
    chat: (opts: grpc.CallOptions) => grpc.ClientDuplexStream<Buffer, Buffer>;
    close: () => void;
  };
  return new Promise((resolve) => {
    const answers: string[] = [];
    const call = client.chat({ deadline: Date.now() + 10_000 });
    const next = (): void => {
      const m = messages[answers.length];
      if (m === undefined) call.end();
      else call.write(Buffer.from(m));
    };
    call.on('data', (b: Buffer) => {
      answers.push(b.toString());
      next();
    });
    call.on('error', (err: grpc.ServiceError) => {
      client.close();
      resolve({ code: err.code, details: err.details });
    });
    call.on('end', () => {
      client.close();
      resolve(answers);
    });
    next();
  });
}

/** Call SayHello on 127.0.0.1:port; the answer or the gRPC status code of the failure. */
export function grpcHello(
  port: number,
  name: string,
  via?: { proxyPort: number; target: string },
): Promise<{ text: string } | { code: number; details: string }> {
  const Client = grpc.makeGenericClientConstructor(GREETER as unknown as grpc.ServiceDefinition, 'Greeter');
  const client = withGrpcProxy(
    via?.proxyPort,
    () => new Client(via?.target ?? `127.0.0.1:${port}`, grpc.credentials.createInsecure()),
  ) as unknown as {
    sayHello: (
      req: Buffer,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
    ) => void;
    close: () => void;
  };
  return new Promise((resolve) => {
    client.sayHello(Buffer.from(name), { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { text: res?.toString() ?? '' });
    });
  });
}

/**
 * `make()` with grpc-js told to reach its target through the HTTP proxy on 127.0.0.1:`proxyPort`
 * (as `grpc_proxy=http://127.0.0.1:PORT` would: a CONNECT per connection). grpc-js reads the
 * variables when a channel is made, so they are set for that moment only.
 */
function withGrpcProxy<T>(proxyPort: number | undefined, make: () => T): T {
  if (proxyPort === undefined) return make();
  const saved = { grpc_proxy: process.env.grpc_proxy, no_grpc_proxy: process.env.no_grpc_proxy };
  process.env.grpc_proxy = `http://127.0.0.1:${proxyPort}`;
  // A no_proxy of the machine's must not exempt the target.
  process.env.no_grpc_proxy = 'none.invalid';
  try {
    return make();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

/** True once `n` calls in a row answered `want` (bounded by `timeoutMs`; `everyMs` between misses). */
export async function inARow(
  call: () => Promise<string>,
  want: string,
  n: number,
  timeoutMs: number,
  everyMs = 10,
): Promise<boolean> {
  let run = 0;
  return waitFor(
    async () => {
      run = (await call()) === want ? run + 1 : 0;
      return run >= n;
    },
    timeoutMs,
    everyMs,
  );
}

/**
 * Write each entry (the lines of a YAML entry file) to a file and `mesh config put` it on `a`, as an
 * operator would; the files are removed afterwards. Fails the test on a refused entry.
 */
export async function putEntryFiles(a: AgentProc, entries: string[][]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-entries-'));
  try {
    for (const [i, lines] of entries.entries()) {
      const file = join(dir, `${i}.yaml`);
      writeFileSync(file, [...lines, ''].join('\n'));
      const put = await meshCli(a, 'config', 'put', file);
      assert.equal(put.code, 0, put.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Whether a GET of `path` on `port` (with `headers`) answers `status` within `ms`: for a change
 * that takes effect once configuration or gossip reaches the agents. Asked every 100 ms.
 */
export function untilStatus(
  port: number,
  status: number,
  path = '/',
  headers: Record<string, string> = {},
  ms = 20_000,
): Promise<boolean> {
  return waitFor(async () => (await httpGet(port, path, headers)).status === status, ms, 100);
}
