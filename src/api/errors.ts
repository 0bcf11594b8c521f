// How MeshError codes map to HTTP statuses and back; shared by the server and the client so the
// two can never disagree.
import { MeshError, type MeshErrorCode } from './types.js';

const statusByCode: Record<MeshErrorCode, number> = {
  bad_request: 400,
  /** The caller is not allowed to do this (a CA key to a non-voter, a leaf for a service it does not host). */
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  /** The request (headers and body) did not arrive in time; the connection is closed. */
  request_timeout: 408,
  /** The request line and headers are over Node's limit (16 KiB), e.g. a 100 KB URL. */
  request_header_fields_too_large: 431,
  /** The request contradicts what exists (a duplicate id, a service owned by a config file). */
  conflict: 409,
  internal: 500,
  /** The agent reached no seed: a gateway-style failure of an upstream, not of this request. */
  join_failed: 502,
  unavailable: 503,
};

export function statusForCode(code: MeshErrorCode): number {
  return statusByCode[code];
}

export function isMeshErrorCode(v: unknown): v is MeshErrorCode {
  return typeof v === 'string' && Object.hasOwn(statusByCode, v);
}

/** The JSON body of every error answer: `{"error": {"code": "...", "message": "..."}}`. */
export interface ErrorBody {
  error: { code: MeshErrorCode; message: string };
}

export function errorBody(err: MeshError): ErrorBody {
  return { error: { code: err.code, message: err.message } };
}

/** Decode an error body; undefined when the JSON is not one. */
export function parseErrorBody(v: unknown): MeshError | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const e = (v as { error?: unknown }).error;
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (!isMeshErrorCode(code) || typeof message !== 'string') return undefined;
  return new MeshError(code, message);
}
