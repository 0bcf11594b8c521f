// Fault injection on a service-router route (Istio's HTTPFaultInjection, Envoy's fault filter):
// the caller's agent delays a share of the route's requests, or answers a share of them with an
// error itself, so an operator can see how callers cope with a slow or failing service without
// touching it. The decision per request lives in core/routing/fault.ts.
import { describe, field } from '../text.js';
import { at, type Errors, objectAt, optInt } from './spec-fields.js';

export interface FaultDelaySpec {
  /** Share of the route's requests delayed, 0 to 100 (fractions allowed: 0.5 is one in 200). */
  percent: number;
  /** How long each is held before it goes on. */
  fixedDelayMs: number;
}

export interface FaultAbortSpec {
  /** Share of the route's requests answered with the error, 0 to 100. */
  percent: number;
  /** The status an HTTP request gets; unset: the one `grpcStatus` stands for. */
  httpStatus?: number;
  /** The status a gRPC call gets, by number (14) or name (UNAVAILABLE); unset: the one `httpStatus` stands for. */
  grpcStatus?: number | string;
}

export interface FaultSpec {
  delay?: FaultDelaySpec;
  abort?: FaultAbortSpec;
}

/** gRPC's status codes by number (google.rpc.Code); 0 OK is not an error to inject. */
export const GRPC_STATUS_NAMES = Object.freeze([
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const);

export const FAULT_LIMITS = Object.freeze({
  /**
   * A minute: a delayed request holds its caller's connection and a timer at the agent for the
   * whole delay, and a delay longer than the callers' own timeouts tests nothing more.
   */
  fixedDelayMsMax: 60_000,
  /** Envoy's bounds on an injected abort's status. */
  httpStatusMin: 200,
  httpStatusMax: 599,
  /** Statuses whose answers have no body (RFC 9110 §15.3.5, §15.3.6, §15.4.5): refused for an abort. */
  bodilessStatuses: [204, 205, 304] as readonly number[],
});

const FIELDS = ['delay', 'abort'] as const;
const DELAY_FIELDS = ['percent', 'fixedDelayMs'] as const;
const ABORT_FIELDS = ['percent', 'httpStatus', 'grpcStatus'] as const;

function checkPercent(o: Record<string, unknown>, path: string, errors: Errors): void {
  const v = field(o, 'percent');
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 100) return;
  const share = 'a number from 0 to 100 (the share of requests, in percent)';
  errors.push({
    field: at(path, 'percent'),
    message: v === undefined ? `is required: ${share}` : `must be ${share}, got ${describe(v)}`,
  });
}

/** A gRPC status as the abort names it (1–16, or its name in capitals), or undefined. */
export function grpcStatusCode(v: unknown): number | undefined {
  if (typeof v === 'number')
    return Number.isInteger(v) && v >= 1 && v < GRPC_STATUS_NAMES.length ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const i = (GRPC_STATUS_NAMES as readonly string[]).indexOf(v);
  return i >= 1 ? i : undefined;
}

function checkAbort(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, ABORT_FIELDS, errors);
  if (o === undefined) return;
  checkPercent(o, path, errors);
  optInt(o, 'httpStatus', path, FAULT_LIMITS.httpStatusMin, FAULT_LIMITS.httpStatusMax, errors);
  const http = field(o, 'httpStatus');
  if (typeof http === 'number' && FAULT_LIMITS.bodilessStatuses.includes(http))
    errors.push({
      field: at(path, 'httpStatus'),
      message: `must not be ${http}: an answer with that status carries no body, and the abort's answer has one`,
    });
  const grpc = field(o, 'grpcStatus');
  if (grpc !== undefined && grpcStatusCode(grpc) === undefined)
    errors.push({
      field: at(path, 'grpcStatus'),
      message: `must be a gRPC status from 1 to 16, or its name (${GRPC_STATUS_NAMES.slice(1).join(', ')}); got ${describe(grpc)}`,
    });
  if (field(o, 'httpStatus') === undefined && grpc === undefined)
    errors.push({
      field: path,
      message: 'needs httpStatus, grpcStatus or both (what the aborted requests get)',
    });
}

/** Check a route's `fault` at `path`. */
export function checkFault(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, FIELDS, errors);
  if (o === undefined) return;
  const delay = field(o, 'delay');
  const abort = field(o, 'abort');
  if (delay === undefined && abort === undefined) {
    errors.push({ field: path, message: 'needs a delay, an abort or both' });
    return;
  }
  if (delay !== undefined) {
    const d = objectAt(delay, at(path, 'delay'), DELAY_FIELDS, errors);
    if (d !== undefined) {
      checkPercent(d, at(path, 'delay'), errors);
      if (field(d, 'fixedDelayMs') === undefined)
        errors.push({ field: at(at(path, 'delay'), 'fixedDelayMs'), message: 'is required' });
      optInt(d, 'fixedDelayMs', at(path, 'delay'), 1, FAULT_LIMITS.fixedDelayMsMax, errors);
    }
  }
  if (abort !== undefined) checkAbort(abort, at(path, 'abort'), errors);
}
