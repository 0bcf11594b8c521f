// Field checks shared by the kind modules. Each pushes the problems it finds onto `errors`, with
// field paths relative to the spec, and never throws.
import { field, fieldName, isObj, type Obj, utf8Length } from '../text.js';
import type { ValidationError } from '../types.js';

/** The spec as an object with only `allowed` fields, or undefined (with the error recorded). */
export function specObject(
  spec: unknown,
  allowed: readonly string[],
  errors: ValidationError[],
): Obj | undefined {
  if (!isObj(spec)) {
    errors.push({ field: '', message: 'must be an object' });
    return undefined;
  }
  for (const k of Object.keys(spec)) {
    if (!allowed.includes(k)) {
      errors.push({
        field: fieldName(k),
        message: `unknown field; known fields: ${[...allowed].sort().join(', ')}`,
      });
    }
  }
  return spec;
}

/** An optional field that must be one of `values`. */
export function checkEnum(o: Obj, key: string, values: readonly string[], errors: ValidationError[]): void {
  const v = field(o, key);
  if (v === undefined) return;
  if (typeof v !== 'string' || !values.includes(v)) {
    errors.push({ field: key, message: `must be one of ${values.join(', ')}` });
  }
}

/** An optional field that must be an integer in [1, max]. */
export function checkPositiveInt(o: Obj, key: string, max: number, errors: ValidationError[]): void {
  const v = field(o, key);
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max) {
    errors.push({ field: key, message: `must be an integer from 1 to ${max}` });
  }
}

export interface MapBounds {
  entriesMax: number;
  keyLengthMax: number;
  /** Longest string value, in characters. */
  valueLengthMax: number;
}

/** A string checked for length (characters) and well-formed Unicode; the problem, or undefined. */
function stringProblem(s: string, max: number): string | undefined {
  if (s.length > max) return `longer than ${max} characters`;
  if (utf8Length(s) < 0) return 'not valid Unicode (unpaired surrogate)';
  return undefined;
}

/**
 * An optional map from non-empty keys to values accepted by `value` (which returns a problem or
 * undefined). Checks the entry count before looking at any entry.
 */
function checkMap(
  o: Obj,
  key: string,
  bounds: MapBounds,
  what: string,
  value: (v: unknown) => string | undefined,
  errors: ValidationError[],
): void {
  const m = field(o, key);
  if (m === undefined) return;
  if (!isObj(m)) {
    errors.push({ field: key, message: `must be a map of ${what}` });
    return;
  }
  const keys = Object.keys(m);
  if (keys.length > bounds.entriesMax) {
    errors.push({ field: key, message: `more than ${bounds.entriesMax} entries` });
    return;
  }
  for (const k of keys) {
    if (k.length === 0) {
      errors.push({ field: key, message: 'keys must not be empty' });
      continue;
    }
    const path = `${key}.${fieldName(k)}`;
    const kp = stringProblem(k, bounds.keyLengthMax);
    if (kp !== undefined) {
      errors.push({ field: path, message: `key ${kp}` });
      continue;
    }
    const vp = value(m[k]);
    if (vp !== undefined) errors.push({ field: path, message: vp });
  }
}

/** An optional map of strings (service metadata and the like). */
export function checkStringMap(o: Obj, key: string, bounds: MapBounds, errors: ValidationError[]): void {
  checkMap(
    o,
    key,
    bounds,
    'strings',
    (v) => (typeof v === 'string' ? stringProblem(v, bounds.valueLengthMax) : 'must be a string'),
    errors,
  );
}

/** An optional map of strings, finite numbers and booleans (opaque proxy settings). */
export function checkScalarMap(o: Obj, key: string, bounds: MapBounds, errors: ValidationError[]): void {
  checkMap(
    o,
    key,
    bounds,
    'strings, numbers and booleans',
    (v) => {
      if (typeof v === 'string') return stringProblem(v, bounds.valueLengthMax);
      if (typeof v === 'number') return Number.isFinite(v) ? undefined : 'must be a finite number';
      if (typeof v === 'boolean') return undefined;
      return 'must be a string, a number or a boolean';
    },
    errors,
  );
}

/** Protocols the proxy speaks; shared by every kind that selects one. */
export const PROTOCOLS = ['tcp', 'http', 'http2', 'grpc'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/** Without a protocol setting, traffic is proxied at L4: safe for any protocol, no L7 features. */
export const DEFAULT_PROTOCOL: Protocol = 'tcp';
