// gRPC check: the standard grpc.health.v1.Health/Check call over HTTP/2, on a session opened for
// this probe and closed after it. The two one-field protobuf messages are encoded by hand; pulling
// in a gRPC library for them would cost more than these few lines.
//
// SERVING passes. Any other serving status, a grpc-status other than 0 (OK), a malformed answer or
// a transport error is critical, with the reason in the output.
import http2 from 'node:http2';
import { formatHostPort, parseHostPort } from '../config/host-port.js';
import { GRPC_STATUS_NAMES } from '../core/state/kinds/fault.js';
import { abortPhrase, deadline, type ProbeResult, reason } from './probe-common.js';

/** Largest response body accepted, in bytes. A HealthCheckResponse is 7 bytes framed; this leaves
 *  room for fields a newer server might add, and stops a misbehaving server from filling memory. */
export const GRPC_RESPONSE_BYTES_MAX = 4 * 1024;
/** gRPC message framing: 1 byte compressed flag + 4 bytes big-endian length. */
const GRPC_FRAME_HEADER_BYTES = 5;
/** A varint of a 32-bit value takes at most 5 bytes; longer ones (up to 10) are 64-bit. */
const VARINT_BYTES_MAX = 10;

const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
const SERVING_STATUS: Readonly<Record<number, string>> = {
  0: 'UNKNOWN',
  1: 'SERVING',
  2: 'NOT_SERVING',
  3: 'SERVICE_UNKNOWN',
};

export interface GrpcCheck {
  address: string;
  service: string;
  tls: boolean;
  tlsSkipVerify: boolean;
}

export async function grpcProbe(
  spec: GrpcCheck,
  timeoutMs: number,
  parent: AbortSignal,
): Promise<ProbeResult> {
  const prefix = `gRPC health check ${spec.address}${spec.service ? ` service ${JSON.stringify(spec.service)}` : ''}`;
  let authority: string;
  try {
    const hp = parseHostPort(spec.address, 'grpc check address', { minPort: 1 });
    authority = `${spec.tls ? 'https' : 'http'}://${formatHostPort(hp)}`;
  } catch (err) {
    return { status: 'critical', output: `${prefix}: ${reason(err)}` };
  }
  const d = deadline(timeoutMs, parent);
  let session: http2.ClientHttp2Session | undefined;
  try {
    session = http2.connect(authority, {
      ...(spec.tls ? { rejectUnauthorized: !spec.tlsSkipVerify, ALPNProtocols: ['h2'] } : {}),
    });
    const answer = await call(session, encodeHealthCheckRequest(spec.service), d.signal);
    return judge(prefix, answer);
  } catch (err) {
    const why = d.cause();
    return { status: 'critical', output: `${prefix}: ${why ? abortPhrase(why, timeoutMs) : reason(err)}` };
  } finally {
    // destroy, not close: the one stream is done (or abandoned) and nothing else may use this session.
    session?.destroy();
    d.dispose();
  }
}

interface Answer {
  httpStatus: number;
  contentType: string;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  body: Buffer;
}

function call(session: http2.ClientHttp2Session, message: Uint8Array, signal: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    session.on('error', reject);
    const stream = session.request(
      {
        ':method': 'POST',
        ':path': HEALTH_CHECK_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      },
      { signal },
    );
    const chunks: Buffer[] = [];
    let size = 0;
    let httpStatus = 0;
    let contentType = '';
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    const takeStatus = (h: http2.IncomingHttpHeaders): void => {
      const s = h['grpc-status'];
      const m = h['grpc-message'];
      if (typeof s === 'string') grpcStatus = s;
      if (typeof m === 'string') grpcMessage = decodeGrpcMessage(m);
    };
    stream.on('response', (h) => {
      httpStatus = Number(h[':status'] ?? 0);
      contentType = String(h['content-type'] ?? '');
      // A trailers-only answer (an error before any message) carries grpc-status in the headers.
      takeStatus(h);
    });
    stream.on('trailers', takeStatus);
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > GRPC_RESPONSE_BYTES_MAX) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new Error(`response larger than ${GRPC_RESPONSE_BYTES_MAX} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    stream.on('error', reject);
    stream.on('close', () => {
      if (httpStatus === 0) {
        reject(new Error(`stream closed without a response (HTTP/2 code ${stream.rstCode})`));
        return;
      }
      resolve({ httpStatus, contentType, grpcStatus, grpcMessage, body: Buffer.concat(chunks) });
    });
    stream.end(frame(message));
  });
}

function judge(prefix: string, a: Answer): ProbeResult {
  if (a.httpStatus !== 200) return { status: 'critical', output: `${prefix}: HTTP status ${a.httpStatus}` };
  if (!a.contentType.startsWith('application/grpc')) {
    return {
      status: 'critical',
      output: `${prefix}: not a gRPC answer (content-type ${JSON.stringify(a.contentType)})`,
    };
  }
  if (a.grpcStatus === undefined)
    return { status: 'critical', output: `${prefix}: answer without grpc-status` };
  if (a.grpcStatus !== '0') {
    const code = Number(a.grpcStatus);
    const name = GRPC_STATUS_NAMES[code] ?? 'unknown code';
    const msg = a.grpcMessage ? `: ${a.grpcMessage}` : '';
    return { status: 'critical', output: `${prefix}: grpc-status ${a.grpcStatus} (${name})${msg}` };
  }
  const decoded = decodeHealthCheckResponse(a.body);
  if (typeof decoded === 'string') return { status: 'critical', output: `${prefix}: ${decoded}` };
  const name = SERVING_STATUS[decoded] ?? `status ${decoded}`;
  return { status: decoded === 1 ? 'passing' : 'critical', output: `${prefix}: ${name}` };
}

/** `HealthCheckRequest { string service = 1; }`; the empty service is the default and is omitted. */
export function encodeHealthCheckRequest(service: string): Uint8Array {
  if (service === '') return new Uint8Array(0);
  const name = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), Buffer.from(encodeVarint(name.length)), name]);
}

/** One gRPC length-prefixed message, uncompressed. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(GRPC_FRAME_HEADER_BYTES + message.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  out.set(message, GRPC_FRAME_HEADER_BYTES);
  return out;
}

/**
 * The serving status of a framed `HealthCheckResponse { ServingStatus status = 1; }`, or a string
 * saying why the body is not one. Unknown fields are skipped, as protobuf requires; a missing
 * status field is 0 (UNKNOWN), the proto3 default.
 */
export function decodeHealthCheckResponse(body: Uint8Array): number | string {
  if (body.length < GRPC_FRAME_HEADER_BYTES) return 'answer without a message';
  const view = Buffer.from(body.buffer, body.byteOffset, body.length);
  if (view.readUInt8(0) !== 0) return 'compressed message (compression was not offered)';
  const len = view.readUInt32BE(1);
  if (len !== body.length - GRPC_FRAME_HEADER_BYTES) {
    return `message length ${len} does not match the ${body.length - GRPC_FRAME_HEADER_BYTES} bytes received`;
  }
  const msg = view.subarray(GRPC_FRAME_HEADER_BYTES);
  let status = 0;
  let at = 0;
  // Each pass consumes at least one byte, so the loop ends within msg.length passes.
  while (at < msg.length) {
    const key = readVarint(msg, at);
    if (key === undefined) return 'malformed protobuf field key';
    at = key.next;
    const field = Math.floor(key.value / 8);
    const wire = key.value % 8;
    if (wire === 0) {
      const v = readVarint(msg, at);
      if (v === undefined) return 'malformed protobuf varint';
      at = v.next;
      if (field === 1) status = v.value;
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
    } else if (wire === 2) {
      const l = readVarint(msg, at);
      if (l === undefined) return 'malformed protobuf length';
      at = l.next + l.value;
    } else {
      return `unsupported protobuf wire type ${wire}`;
    }
    if (at > msg.length) return 'truncated protobuf field';
  }
  return status;
}

function encodeVarint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function readVarint(buf: Uint8Array, start: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < VARINT_BYTES_MAX && start + i < buf.length; i++) {
    const b = buf[start + i]!;
    value += (b & 0x7f) * scale;
    scale *= 0x80;
    if ((b & 0x80) === 0) return { value, next: start + i + 1 };
  }
  return undefined;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec). */
function decodeGrpcMessage(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
}
