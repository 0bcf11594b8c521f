// Relay one HTTP/2 stream (HTTP/2 or gRPC) to an upstream session and the response back, with
// trailers (gRPC puts its status in them) and streaming in both directions. Used on both sides of a
// mesh hop.

import {
  type ClientHttp2Session,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { GRPC_AS_HTTP } from '../core/routing/fault.js';
import type { HeaderOps } from '../core/state/kinds/header-modifiers.js';
import type { ReplayBody } from './h2-body.js';
import { modifyH2Headers } from './header-ops.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = constants;

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2), and pseudo-headers set anew. */
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
  ':authority',
  ':scheme',
  ':method',
  ':path',
]);

/**
 * The 'error' listener of every stream a caller opens. Node emits 'error' on a server stream its
 * caller resets with a code other than CANCEL (and 'close' after it, which the relay acts on).
 */
export const ignoreStreamError = (): void => undefined;

export function isGrpc(headers: IncomingHttpHeaders): boolean {
  return String(headers['content-type'] ?? '').startsWith('application/grpc');
}

/** Request headers for the upstream: end-to-end ones, `extra`, and the pseudo-headers. */
export function upstreamHeaders(
  h: IncomingHttpHeaders,
  path: string,
  authority: string,
  extra: OutgoingHttpHeaders,
  drop: readonly string[] = [],
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {
    ':method': h[':method'] ?? 'GET',
    ':path': path,
    ':scheme': 'http',
    ':authority': authority,
  };
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || DROP.has(k) || drop.includes(k) || k.startsWith(':')) continue;
    out[k] = v;
  }
  return Object.assign(out, extra);
}

/**
 * Answer an error on a stream: for gRPC a trailers-only response with `grpcStatus` (14
 * UNAVAILABLE, 4 DEADLINE_EXCEEDED, 7 PERMISSION_DENIED), else an HTTP status with a text body.
 */
export function replyH2Error(
  stream: ServerHttp2Stream,
  grpc: boolean,
  httpStatus: number,
  grpcStatus: number,
  message: string,
  extra?: Record<string, string>,
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(NGHTTP2_CANCEL);
    return;
  }
  if (grpc) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatus),
        'grpc-message': grpcMessage(message),
        ...extra,
      },
      { endStream: true },
    );
    return;
  }
  stream.respond({ ':status': httpStatus, 'content-type': 'text/plain; charset=utf-8', ...extra });
  stream.end(`${message}\n`);
}

export type H2Outcome =
  /**
   * `cut`: the upstream's stream ended abnormally after its response began (a reset, or its
   * connection lost), not by this side's doing; the caller got a reset, not a whole answer.
   */
  | { status: number; grpcStatus: string; sentResponse: true; cut?: true }
  | {
      status: number;
      sentResponse: false;
      message: string;
      timedOut: boolean;
      cancelled?: true;
      /** The answer was withheld from the caller because `H2Attempt.retryOn` chose to retry it. */
      retryable?: true;
      /** A withheld gRPC answer's status. */
      grpcStatus?: string;
      /**
       * The request never reached the service: no connection to the peer agent could be made, or
       * the peer refused the stream (REFUSED_STREAM: RFC 9113 §8.7 says it was not processed).
       */
      connectFailed?: true;
      /** This agent's own failure (headers Node refused): says nothing of the instance. */
      local?: true;
    };

/** How one attempt of a call that may be retried is made. */
export interface H2Attempt {
  /** The caller's body, kept for another attempt; unset: the caller's stream is piped once. */
  body?: ReplayBody;
  /**
   * Asked when the response head comes, before the caller sees any of it: true withholds the
   * answer (the attempt ends with `retryable`). `grpcStatus` is set for a trailers-only answer.
   */
  retryOn?: (status: number, grpcStatus: string | undefined) => boolean;
  /** Changes to the response's headers before the caller gets them (a route's responseHeaders). */
  responseHeaders?: readonly HeaderOps[];
}

/** Node's refusals of headers it was given to send (not of the session): this agent's doing, not the peer's. */
const REFUSED_HEADERS: ReadonlySet<string> = new Set([
  'ERR_HTTP2_HEADER_SINGLE_VALUE',
  'ERR_HTTP2_INVALID_CONNECTION_HEADERS',
  'ERR_HTTP2_INVALID_HEADER_VALUE',
  'ERR_HTTP2_INVALID_PSEUDOHEADER',
]);

/** Sessions that completed their connection: a stream failing on any other never reached a peer. */
const connectedSessions = new WeakSet<ClientHttp2Session>();
const watchedSessions = new WeakSet<ClientHttp2Session>();

function watchConnect(session: ClientHttp2Session): void {
  if (!session.connecting) connectedSessions.add(session);
  else if (!watchedSessions.has(session)) {
    watchedSessions.add(session);
    session.once('connect', () => connectedSessions.add(session));
  }
}

/**
 * The status a stream the caller cancelled (RST_STREAM, or a gRPC deadline of its own) before any
 * response is counted with: nginx's 499 "client closed request". Not the upstream's failure.
 */
export const CALLER_CANCELLED_STATUS = 499;

/**
 * gRPC's status for a call whose caller got no response from upstream: 1 CANCELLED (by the
 * caller), 4 DEADLINE_EXCEEDED, or 14 UNAVAILABLE; for an answer withheld for a retry that did not
 * happen after all, the status that answer carried.
 */
export const failedGrpcStatus = (o: {
  timedOut: boolean;
  cancelled?: true;
  retryable?: true;
  grpcStatus?: string;
}): number =>
  o.retryable === true && o.grpcStatus !== undefined && Number.isInteger(Number(o.grpcStatus))
    ? Number(o.grpcStatus)
    : o.cancelled
      ? 1
      : o.timedOut
        ? 4
        : 14;

/** The HTTP status each gRPC status stands for (core/routing/fault.ts), by `grpc-status` as it comes on the wire. */
const GRPC_AS_HTTP_WIRE: ReadonlyMap<string, number> = new Map(
  GRPC_AS_HTTP.map((http, code) => [String(code), http]),
);

/**
 * Whether an exchange counts against the instance that served it (for the ewma balancer): an HTTP
 * status of 500 or more, or, for gRPC, a `grpc-status` that stands for one (2 UNKNOWN,
 * 4 DEADLINE_EXCEEDED, 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE, 15 DATA_LOSS). gRPC answers
 * its errors with HTTP 200, so without this an instance failing every call at once would look like
 * the fastest one and draw the traffic. A caller's cancel (499) is not the instance's failure, and
 * neither is a call that ended without a `grpc-status` (a stream its caller reset midway ends so) or
 * with a value outside gRPC's codes: only what the server said counts.
 */
export function failsInstance(grpc: boolean, o: H2Outcome): boolean {
  if (!o.sentResponse && o.local === true) return false;
  if (o.status >= 500) return true;
  // Of the answers the caller did not get, those withheld for a retry were the instance's.
  if (!o.sentResponse) return o.retryable === true && grpc && grpcAsHttp(o.grpcStatus) >= 500;
  if (o.cut === true) return true;
  if (!grpc) return false;
  return grpcAsHttp(o.grpcStatus) >= 500;
}

const grpcAsHttp = (grpcStatus: string | undefined): number =>
  grpcStatus === undefined ? 0 : (GRPC_AS_HTTP_WIRE.get(grpcStatus) ?? 0);

/**
 * What a caller's gRPC client reports for a stream reset with INTERNAL_ERROR, as this agent passes
 * on an answer the upstream cut: INTERNAL (gRPC over HTTP/2, "Errors": the RST_STREAM code mapping).
 */
const GRPC_INTERNAL = '13';

/**
 * The `grpc-status` a gRPC call ended with, for the metrics: the upstream's ('' if none came); for
 * an answer the upstream cut midway, INTERNAL, which is what the caller saw; or the one this agent
 * answered with. Undefined when the call is not gRPC.
 */
export function grpcStatusOf(grpc: boolean, o: H2Outcome): string | undefined {
  if (!grpc) return undefined;
  if (!o.sentResponse) return String(failedGrpcStatus(o));
  return o.cut === true ? GRPC_INTERNAL : o.grpcStatus;
}

/**
 * Forward `stream` to `session`. Resolves when the exchange ends or fails before any response.
 * `timeoutMs` bounds the wait for the response headers, not the whole (maybe streaming) exchange.
 * An attempt that ends before any response (`sentResponse: false`) leaves the caller's stream as it
 * found it, with no listener of its own: another attempt may follow.
 */
export function forwardH2(
  stream: ServerHttp2Stream,
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  timeoutMs: number,
  attempt: H2Attempt = {},
): Promise<H2Outcome> {
  return new Promise((resolve) => {
    const { body, retryOn, responseHeaders } = attempt;
    let settled = false;
    let status = 0;
    let grpcStatus = '';
    const settle = (o: H2Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!o.sentResponse) leave();
      resolve(o);
    };
    watchConnect(session);
    let up: ReturnType<ClientHttp2Session['request']>;
    try {
      up = session.request(headers, { endStream: false });
    } catch (err) {
      // A session closed since it was handed out: nothing was sent, and nothing is set up yet. Or
      // headers Node refuses (none a validated header change makes): not a connect failure, which
      // would be retried on every instance.
      const message = (err as Error).message;
      const headers = REFUSED_HEADERS.has((err as NodeJS.ErrnoException).code ?? '');
      resolve({
        status: 502,
        sentResponse: false,
        message,
        timedOut: false,
        ...(headers ? { local: true as const } : { connectFailed: true as const }),
      });
      return;
    }
    /** This side reset the upstream stream: its caller left, or no response came in time. */
    let resetHere = false;
    const resetUpstream = (): void => {
      resetHere = true;
      up.close(NGHTTP2_CANCEL);
    };
    /** The answer was withheld for a retry: this attempt has nothing more to do with the caller. */
    let held = false;
    /**
     * The answer came whole: its END_STREAM arrived (with the head, with the trailers, or as the end
     * of the body). A reset after that (RFC 9113 §8.1 lets a server stop a request body so) cuts nothing.
     */
    let whole = false;
    /**
     * The upstream stream was cut after its response began: it ended with a code other than
     * NO_ERROR (a reset; Node closes the streams of a lost connection with CANCEL) that this side
     * did not send, before the answer came whole. (A body without trailers whose END_STREAM and a
     * reset come in one read looks cut: Node's streams do not tell the two apart.)
     */
    const cut = (): boolean => status > 0 && !whole && !resetHere && up.rstCode !== NGHTTP2_NO_ERROR;
    /** Passes a cut on as a reset (RST_STREAM INTERNAL_ERROR): ending the stream would say the answer was whole. */
    const resetCaller = (): void => {
      if (!stream.destroyed) stream.destroy(new Error('the upstream stream was cut'));
    };
    const timer = setTimeout(() => {
      resetUpstream();
      if (!stream.headersSent)
        settle({
          status: 504,
          sentResponse: false,
          message: `no response within ${timeoutMs} ms`,
          timedOut: true,
        });
    }, timeoutMs);
    let trailers: OutgoingHttpHeaders | undefined;
    const sendTrailers = (): void => {
      // Without trailers, empty ones end the stream (Node sends an empty DATA frame with
      // END_STREAM). stream.close() here left the client waiting forever once the request body had
      // been read: Node 20 then sends neither END_STREAM nor RST_STREAM.
      stream.sendTrailers(trailers ?? {});
    };
    up.on('response', (h, flags) => {
      // Node emits a head read before this side's reset went out (the timeout's, or the caller's
      // cancel) after the call was settled and maybe answered: it must not answer again.
      if (settled) {
        up.resume();
        return;
      }
      // The timeout bounds the wait for the response head: a long gRPC stream is not cut off.
      clearTimeout(timer);
      status = Number(h[':status'] ?? 0);
      const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      // A caller gone (or going: closed, not yet destroyed) gets nothing; its close resets the upstream.
      if (stream.destroyed || stream.closed) return;
      if (retryOn?.(status, endStream && grpcStatus !== '' ? grpcStatus : undefined) === true) {
        // Withheld: the caller sees nothing of this answer, and the next attempt answers it.
        // The stream is reset even when the answer ended it: the request body may still be
        // going out, and a half-closed stream would stay open.
        held = true;
        resetUpstream();
        up.resume();
        const how = grpcStatus !== '' ? `grpc-status ${grpcStatus}` : `status ${status}`;
        settle({
          status,
          sentResponse: false,
          message: `answered ${how}`,
          timedOut: false,
          retryable: true,
          ...(grpcStatus !== '' ? { grpcStatus } : {}),
        });
        return;
      }
      // The answer goes to the caller now: no attempt can follow, and the kept body is not needed.
      body?.release();
      const out: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(h)) if (v !== undefined && !DROP.has(k)) out[k] = v;
      if (responseHeaders !== undefined) modifyH2Headers(out, responseHeaders);
      // Headers Node refuses to send (none a validated header change makes, but a throw here
      // would end the proxy thread): the caller gets 502 from the attempt's end instead.
      const respond = (options: { endStream?: boolean; waitForTrailers?: boolean }): boolean => {
        try {
          stream.respond(out, options);
          return true;
        } catch (err) {
          resetUpstream();
          up.resume();
          const message = `the answer's headers could not be relayed: ${(err as Error).message}`;
          settle({ status: 502, sentResponse: false, message, timedOut: false, local: true });
          return false;
        }
      };
      // A trailers-only answer (gRPC errors: the status in the one HEADERS frame) stays one.
      if (endStream) {
        if (respond({ endStream: true })) whole = true;
        return;
      }
      if (!respond({ waitForTrailers: true })) return;
      stream.once('wantTrailers', sendTrailers);
      up.pipe(stream, { end: false });
      // Node ends the readable side of a cut stream too: whether it was cut decides how to end.
      up.once('end', () => {
        if (cut()) return resetCaller();
        whole = true;
        if (!stream.destroyed) stream.end();
      });
    });
    up.on('trailers', (t) => {
      trailers = {};
      for (const [k, v] of Object.entries(t))
        if (v !== undefined && v !== null && !k.startsWith(':')) trailers[k] = v as string | string[];
      if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
      // Trailers come with END_STREAM.
      whole = true;
    });
    /** The caller went away (or cancelled) before a response: whatever happens upstream then is its doing. */
    let callerGone = false;
    const cancelled = (): boolean => {
      if (!callerGone) return false;
      settle({
        status: CALLER_CANCELLED_STATUS,
        sentResponse: false,
        message: 'the caller cancelled the call',
        timedOut: false,
        cancelled: true,
      });
      return true;
    };
    /** Failed before any response: did the request reach the service at all? */
    const failedBefore = (message: string): H2Outcome =>
      !connectedSessions.has(session) || up.rstCode === NGHTTP2_REFUSED_STREAM
        ? { status: 502, sentResponse: false, message, timedOut: false, connectFailed: true }
        : { status: 502, sentResponse: false, message, timedOut: false };
    up.on('error', (err) => {
      if (held || cancelled()) return;
      if (!stream.headersSent) settle(failedBefore(err.message));
      else if (cut()) resetCaller();
    });
    up.on('close', () => {
      if (held) return;
      // A stream cut while its caller read slowly closes without 'end' (Node drops what it held):
      // whatever ended it, an answer that never came whole must not leave the caller waiting.
      if (status > 0 && !whole && !resetHere) resetCaller();
      if (status > 0)
        settle({ status, grpcStatus, sentResponse: true, ...(cut() ? { cut: true as const } : {}) });
      else if (!cancelled()) settle(failedBefore('the upstream closed the stream'));
    });
    // The caller went away (or cancelled): cancel upstream.
    const onCallerClose = (): void => {
      if (status === 0) callerGone = true;
      if (!up.closed) resetUpstream();
    };
    stream.on('close', onCallerClose);
    /**
     * This attempt ends without a response: the caller's stream is left for the next one. (A
     * piped body has no next attempt: the agent answers the error on the stream.)
     */
    const leave = (): void => {
      stream.off('close', onCallerClose);
      body?.detach(up);
    };
    if (body !== undefined) body.attach(up);
    else stream.pipe(up);
  });
}

/**
 * A `grpc-message` value (gRPC over HTTP/2, "Percent-Encoded"): the message's UTF-8 bytes, those
 * outside 0x20–0x7E and `%` itself as `%XX`, the rest as they are. encodeURIComponent escaped
 * spaces and `:` too, which clients (grpc-js decodes with decodeURI) showed as `mesh%3A …`.
 */
export function grpcMessage(message: string): string {
  let out = '';
  for (const b of Buffer.from(message, 'utf8'))
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}
