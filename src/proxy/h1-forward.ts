// Relay one HTTP/1.1 request to an upstream and its response back, streaming both bodies. Used on
// both sides of a mesh hop: the caller's agent → the callee's agent, and the callee's agent → the
// local instance.

import {
  type Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type ServerResponse,
} from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only: never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** Headers of `h` without hop-by-hop ones, those named in Connection, and `drop`. */
export function endToEndHeaders(h: IncomingHttpHeaders, drop: readonly string[] = []): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  const named = new Set(
    String(h.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim()),
  );
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k) || drop.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

export interface H1Target {
  agent: Agent;
  host: string;
  port: number;
  path: string;
  headers: IncomingHttpHeaders;
  timeoutMs: number;
  /** A response with a status for which this is true is discarded, not relayed (the caller retries). */
  retryOn?: (status: number) => boolean;
}

/** What happened, for metrics and retries: the status sent, or why none was. */
export type H1Outcome =
  | { status: number; sentResponse: true }
  | {
      status: number;
      sentResponse: false;
      connectFailed: boolean;
      message: string;
      retryable?: true;
      /** A pooled keep-alive socket the peer had closed: the request never reached it. */
      staleSocket?: true;
    };

/** Hop-independent rule: a request without a body can be sent again; one with a body streams once. */
export function hasBody(h: IncomingHttpHeaders): boolean {
  const len = h['content-length'];
  return (len !== undefined && len !== '0') || h['transfer-encoding'] !== undefined;
}

export const EMPTY_BODY = Buffer.alloc(0);

/** Sent again at most this often when a reused keep-alive socket turns out closed. */
export const STALE_SOCKET_RETRIES_MAX = 1;

/**
 * Send `req` to `t`. Resolves when the response has been relayed (sentResponse) or when the
 * upstream failed before answering (the caller decides: retry or answer 502/504 itself).
 * `buffered` replays a body already read (retries of small bodies); otherwise req is piped.
 */
export function forwardH1(
  req: IncomingMessage,
  res: ServerResponse,
  t: H1Target,
  buffered?: Buffer,
): Promise<H1Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (o: H1Outcome): void => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    const up = request({
      agent: t.agent,
      host: t.host,
      port: t.port,
      method: req.method,
      path: t.path,
      headers: t.headers,
      timeout: t.timeoutMs,
    });
    let connected = false;
    up.once('socket', (s) => {
      if (!s.connecting) connected = true;
      else s.once('connect', () => (connected = true));
    });
    up.on('timeout', () => up.destroy(new Error(`no response within ${t.timeoutMs} ms`)));
    up.on('error', (err) => {
      if (res.headersSent) {
        res.destroy(err);
        settle({ status: res.statusCode, sentResponse: true });
      } else {
        const timedOut = err.message.startsWith('no response within');
        settle({
          status: timedOut ? 504 : 502,
          sentResponse: false,
          connectFailed: !connected,
          message: err.message,
          // The race every keep-alive client has: the server closed an idle socket as we reused it.
          ...(up.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET'
            ? { staleSocket: true as const }
            : {}),
        });
      }
    });
    up.on('response', (ur) => {
      const status = ur.statusCode ?? 502;
      if (t.retryOn?.(status)) {
        ur.resume();
        settle({
          status,
          sentResponse: false,
          connectFailed: false,
          message: `status ${status}`,
          retryable: true,
        });
        return;
      }
      res.writeHead(ur.statusCode ?? 502, endToEndHeaders(ur.headers));
      ur.pipe(res);
      ur.on('error', (err) => res.destroy(err));
      res.once('close', () => {
        if (!res.writableFinished) up.destroy();
        settle({ status: ur.statusCode ?? 502, sentResponse: true });
      });
    });
    // The client went away: stop the upstream call too.
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    if (buffered !== undefined) up.end(buffered);
    else req.pipe(up);
  });
}

/** Answer with a short plain-text error (when nothing was sent yet). */
export function replyError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
