// Fault injection per request: a route's `fault` (kinds/fault.ts) compiled to plain data, and the
// draw that says whether one request is delayed, aborted, both (delayed, then aborted, as Envoy's
// fault filter does) or neither. The caller's agent draws the random numbers; nothing here does.
import { type FaultSpec, grpcStatusCode } from '../state/kinds/fault.js';

export interface CompiledFault {
  /** Share of requests delayed, in percent (0: none). */
  delayPercent: number;
  delayMs: number;
  /** Share of requests aborted, in percent (0: none). */
  abortPercent: number;
  /** What an aborted HTTP request gets. */
  abortHttpStatus: number;
  /** What an aborted gRPC call gets (its grpc-status, in a trailers-only answer). */
  abortGrpcStatus: number;
}

/**
 * The HTTP status each gRPC status stands for, by code (google.rpc.Code's mapping, which Envoy and
 * grpc-gateway use); 1 CANCELLED is nginx's 499 "client closed request".
 */
export const GRPC_AS_HTTP: readonly number[] = Object.freeze([
  200, // 0 OK
  499, // 1 CANCELLED
  500, // 2 UNKNOWN
  400, // 3 INVALID_ARGUMENT
  504, // 4 DEADLINE_EXCEEDED
  404, // 5 NOT_FOUND
  409, // 6 ALREADY_EXISTS
  403, // 7 PERMISSION_DENIED
  429, // 8 RESOURCE_EXHAUSTED
  400, // 9 FAILED_PRECONDITION
  409, // 10 ABORTED
  400, // 11 OUT_OF_RANGE
  501, // 12 UNIMPLEMENTED
  500, // 13 INTERNAL
  503, // 14 UNAVAILABLE
  500, // 15 DATA_LOSS
  401, // 16 UNAUTHENTICATED
]);

/**
 * The gRPC status a gRPC client reports for an HTTP status in place of an answer (gRPC's
 * "HTTP to gRPC status code mapping"; Envoy answers a gRPC call's local errors by the same table).
 */
export function httpAsGrpc(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/** A validated spec as the proxy applies it: both answers of an abort worked out. */
export function compileFault(spec: FaultSpec): CompiledFault {
  const grpc = spec.abort?.grpcStatus === undefined ? undefined : grpcStatusCode(spec.abort.grpcStatus);
  const http = spec.abort?.httpStatus;
  return {
    delayPercent: spec.delay?.percent ?? 0,
    delayMs: spec.delay?.fixedDelayMs ?? 0,
    abortPercent: spec.abort?.percent ?? 0,
    abortHttpStatus: http ?? GRPC_AS_HTTP[grpc ?? 14] ?? 503,
    abortGrpcStatus: grpc ?? (http === undefined ? 14 : httpAsGrpc(http)),
  };
}

export interface FaultDecision {
  /** Hold the request this long first (0: no delay). */
  delayMs: number;
  /** Then answer it with the fault's error instead of sending it on. */
  abort: boolean;
}

/** Most requests: no fault (one shared object, nothing allocated). */
export const NO_FAULT: FaultDecision = Object.freeze({ delayMs: 0, abort: false });

/** Whether a share of `percent` takes a request, for a draw in [0, 1): 100 takes every one, 0 none. */
function takes(percent: number, rand: number): boolean {
  return percent > 0 && rand * 100 < percent;
}

/** One request's fault, from two independent draws in [0, 1) (one for the delay, one for the abort). */
export function decideFault(f: CompiledFault, randDelay: number, randAbort: number): FaultDecision {
  const delayMs = takes(f.delayPercent, randDelay) ? f.delayMs : 0;
  const abort = takes(f.abortPercent, randAbort);
  return delayMs === 0 && !abort ? NO_FAULT : { delayMs, abort };
}
