// The local HTTP API (node:http). The server knows only AgentApi, so tests drive it with a fake.
// It never throws on input: every request ends in a JSON answer or a closed socket.
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { HostPort } from '../agent/agent-config.js';
import { errorBody, statusForCode } from './errors.js';
import { checkQuery, type Reply, type Route, Router } from './router.js';
import { agentRoutes } from './routes-agent.js';
import { type AgentApi, MeshError } from './types.js';

export interface HttpServerOptions {
  agent: AgentApi;
  host: string;
  port: number;
  log: Logger;
  /** Called after a `PUT /v1/agent/leave` has been answered and agent.leave() has finished. */
  onLeave?: () => void;
  /** Extra routes (tests, later features). */
  routes?: readonly Route[];
}

export interface HttpServer {
  address: HostPort;
  close(): Promise<void>;
}

/** Bounds. Requests are small JSON documents from the CLI on the same host. */
export const httpLimits = {
  bodyBytesMax: 1024 * 1024,
  /** Whole request (headers and body) must arrive within this; stops slow-loris clients. */
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  connectionsMax: 1024,
  /** On close, in-flight requests get this long to finish before their sockets are cut. */
  closeGraceMs: 2_000,
};

/** Every route the API serves: add a table here to add routes. */
const allRoutes: readonly Route[] = [...agentRoutes];

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body ?? null)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** A raw body (e.g. a KV value with ?raw), sent as application/octet-stream. */
function sendRaw(
  res: ServerResponse,
  status: number,
  raw: Uint8Array,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'application/octet-stream',
    'content-length': raw.length,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(raw);
}

function sendError(res: ServerResponse, err: MeshError, headers: Record<string, string> = {}): void {
  send(res, statusForCode(err.code), errorBody(err), headers);
}

/** Read the body up to the limit; resolves undefined when it is too large. */
function readBody(req: IncomingMessage, bytesMax: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > bytesMax) {
        done = true;
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks));
      done = true;
    });
    // A client that goes away mid-body ends in 'error' (ECONNRESET) or just 'close'.
    const gone = (err?: Error): void => {
      if (!done) reject(err ?? new Error('the client closed the connection'));
      done = true;
    };
    req.on('error', gone);
    req.on('close', () => gone());
  });
}

function tooLarge(bytesMax: number): MeshError {
  return new MeshError('payload_too_large', `request body is larger than ${bytesMax} bytes`);
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const log = opts.log;
  const router = new Router([...allRoutes, ...(opts.routes ?? [])]);
  const sockets = new Set<Socket>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? '';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));

    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > httpLimits.bodyBytesMax) {
      sendError(res, tooLarge(httpLimits.bodyBytesMax), { connection: 'close' });
      return;
    }
    const match = router.match(method, path);
    if (match === undefined) {
      throw new MeshError('not_found', `no such endpoint: ${method} ${path.slice(0, 200)}`);
    }
    if ('allow' in match) {
      sendError(
        res,
        new MeshError(
          'method_not_allowed',
          `${method.slice(0, 20)} is not allowed on ${path}; use ${match.allow.join(' or ')}`,
        ),
        { allow: match.allow.join(', ') },
      );
      return;
    }
    checkQuery(match.route, query);
    const body = await readBody(req, httpLimits.bodyBytesMax);
    if (body === undefined) {
      sendError(res, tooLarge(httpLimits.bodyBytesMax), { connection: 'close' });
      return;
    }

    // Only blocking queries and joins wait on the client; most requests never read the signal,
    // so it is made on first use (an AbortController per request showed in write profiles).
    let abort: AbortController | undefined;
    const signal = (): AbortSignal => {
      if (abort) return abort.signal;
      const ac = new AbortController();
      abort = ac;
      const gone = (): void => {
        if (!res.writableFinished) ac.abort(new MeshError('unavailable', 'the client went away'));
      };
      if (res.destroyed) gone();
      else res.on('close', gone);
      return ac.signal;
    };
    const reply: Reply = await match.route.handler({
      agent: opts.agent,
      query,
      body,
      rest: match.rest,
      get signal() {
        return signal();
      },
      log,
      onLeave: opts.onLeave,
    });
    const after = reply.afterSend;
    if (after) {
      res.on('finish', () => {
        Promise.resolve()
          .then(after)
          .catch((err: unknown) => log.error({ err }, `after ${method} ${path}`));
      });
    }
    if (reply.raw !== undefined) sendRaw(res, reply.status ?? 200, reply.raw, reply.headers);
    else send(res, reply.status ?? 200, reply.body, reply.headers);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.destroyed || req.socket.destroyed) {
        // Nobody to answer: the client went away, which is its business, not an agent error.
        log.debug({ err, method: req.method }, 'client went away before the answer');
        return;
      }
      if (err instanceof MeshError) {
        sendError(res, err);
        return;
      }
      // The message of an unexpected error may expose internals; the log has it, the client does not.
      log.error({ err, method: req.method, url: req.url?.slice(0, 200) }, 'internal error in HTTP API');
      sendError(res, new MeshError('internal', 'internal error; see the agent log'));
    });
  });
  server.requestTimeout = httpLimits.requestTimeoutMs;
  server.headersTimeout = httpLimits.headersTimeoutMs;
  server.maxConnections = httpLimits.connectionsMax;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // Malformed requests: answer in JSON like every other error, then close the connection.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // The code matches the status, so a client that programs against `code` can tell them apart.
    let error = new MeshError('bad_request', 'malformed HTTP request');
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      error = new MeshError(
        'request_header_fields_too_large',
        'the request line and headers are too large (over 16 KiB): is a key or name that long?',
      );
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      error = new MeshError('request_timeout', 'the request did not arrive in time');
    }
    const status = statusForCode(error.code);
    const text = `${JSON.stringify(errorBody(error))}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
    log.debug({ code: err.code }, 'malformed HTTP request');
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const where = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
      const why =
        err.code === 'EADDRINUSE' ? 'the address is in use (is another agent running?)' : err.message;
      reject(new MeshError('unavailable', `cannot start the HTTP API on ${where}: ${why}; set --http`));
    };
    server.once('error', onError);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'HTTP server error'));
  const info = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  // A closure, not a method: callers keep `close` apart from this object.
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      const cut = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, httpLimits.closeGraceMs);
      cut.unref();
    });
    return closing;
  };
  return { address: { host: info.address, port: info.port }, close };
}
