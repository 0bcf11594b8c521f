// The field checks shared by service and check definitions: each records its problem with the
// field path and returns a usable value, so one pass reports every problem. Nothing throws.
import { durationMs, durationMsMax, durationMsUnchecked } from '../duration.js';
import { LB_WEIGHT_MAX } from '../routing/lb-common.js';
import { checkStringMap, type MapBounds } from '../state/kinds/fields.js';
import { SERVICE_DEFAULTS_LIMITS } from '../state/kinds/service-defaults.js';
import { describe, field, fieldName, type Obj, utf8Length } from '../state/text.js';
import type { ValidationError } from '../state/types.js';
import type { InstanceWeights } from './types.js';

export const DEFINITION_LIMITS = Object.freeze({
  /** Service names are DNS labels (NAME.service.mesh), so 63 characters. */
  nameLengthMax: 63,
  /** Service and check ids: free-form but printable, as Consul's. */
  idLengthMax: 128,
  /** Tags are DNS labels too (TAG.NAME.service.mesh). 64 tags is far above real use. */
  tagsMax: 64,
  tagLengthMax: 63,
  /** Service meta has the bounds of service-defaults' meta (Consul's: 64 entries, keys ≤ 128
   * characters, values ≤ 512). */
  meta: SERVICE_DEFAULTS_LIMITS.meta,
  upstreamsMax: 64,
  checksPerServiceMax: 32,
  /** A host name or IP literal. */
  addressLengthMax: 253,
  urlLengthMax: 2048,
  /** HTTP check headers. */
  header: Object.freeze({ entriesMax: 32, keyLengthMax: 128, valueLengthMax: 1024 }),
  argsMax: 64,
  argLengthMax: 4096,
  /** A probe more often than every 100 ms is a mistake that would load the service for nothing. */
  intervalMsMin: 100,
  /** Thresholds above 100 consecutive results would hide a dead service for too long to be intended. */
  thresholdMax: 100,
  /** Definitions in one file. */
  servicesPerFileMax: 1024,
  /**
   * Largest service weight: the balancers' bound (LB_WEIGHT_MAX, which keeps ring_hash point
   * counts and round-robin sums small). Consul allows up to 65535 for DNS; shares of 1 to 1000
   * already express 0.1% steps.
   */
  weightMax: LB_WEIGHT_MAX,
});

/** Lower-case letters, digits and '-', not starting or ending with '-': a DNS label. */
export const SERVICE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
/**
 * The destination of an upstream that is an HTTP proxy port: each request goes to the service its
 * Host (or absolute-form target) names, so a client that honours http_proxy reaches every HTTP
 * service of the mesh through one port, without an upstream per destination.
 */
export const ANY_SERVICE = '*';
export const TAG_PATTERN = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/;
export const ID_PATTERN = /^[^\s/\p{Cc}]+$/u;

export class Problems {
  readonly list: ValidationError[] = [];
  add(path: string, message: string): void {
    this.list.push({ field: path, message });
  }
}

export function at(parent: string, child: string): string {
  return parent === '' ? child : `${parent}.${child}`;
}

export function onlyFields(o: Obj, allowed: readonly string[], path: string, p: Problems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      p.add(at(path, fieldName(k)), `unknown field; known fields: ${[...allowed].sort().join(', ')}`);
    }
  }
}

export function text(s: unknown, max: number): s is string {
  return typeof s === 'string' && s.length <= max && utf8Length(s) >= 0;
}

export function optString(o: Obj, key: string, path: string, max: number, p: Problems): string | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  if (!text(v, max)) {
    p.add(at(path, key), `must be a string of at most ${max} characters, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

export function port(v: unknown, path: string, p: Problems): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    p.add(path, `must be a port number from 1 to 65535, got ${describe(v)}`);
    return 0;
  }
  return v;
}

export function optBool(o: Obj, key: string, path: string, p: Problems): boolean {
  const v = field(o, key);
  if (v === undefined) return false;
  if (typeof v !== 'boolean') {
    p.add(at(path, key), `must be true or false, got ${describe(v)}`);
    return false;
  }
  return v;
}

export function optDuration(o: Obj, key: string, path: string, p: Problems): number | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const ms = durationMs(v);
  if (ms === undefined) {
    // A negative or too long duration is written correctly; say so rather than show the format again.
    p.add(
      at(path, key),
      durationMsUnchecked(v) === undefined
        ? `must be a duration like "10s", "500ms" or "1m", got ${describe(v)}`
        : `must be from 0ms to ${durationMsMax}ms (about 24.8 days), got ${describe(v)}`,
    );
  }
  return ms;
}

export function optCount(o: Obj, key: string, path: string, p: Problems): number | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const max = DEFINITION_LIMITS.thresholdMax;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    p.add(at(path, key), `must be a whole number from 0 to ${max}, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

export function stringList(
  v: unknown,
  path: string,
  max: number,
  p: Problems,
  each: (s: string) => string | undefined,
) {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    p.add(path, `must be a list, got ${describe(v)}`);
    return [];
  }
  if (v.length > max) {
    p.add(path, `at most ${max} entries, got ${v.length}`);
    return [];
  }
  const out: string[] = [];
  v.forEach((s, i) => {
    const problem = typeof s === 'string' ? each(s) : `must be a string, got ${describe(s)}`;
    if (problem === undefined) out.push(s as string);
    else p.add(`${path}[${i}]`, problem);
  });
  return out;
}

/** An optional map of strings (meta, headers), checked by the configuration entries' rule. */
export function stringMap(
  o: Obj,
  key: string,
  path: string,
  p: Problems,
  bounds: MapBounds,
): Record<string, string> {
  const errors: ValidationError[] = [];
  checkStringMap(o, key, bounds, errors);
  for (const e of errors) p.add(at(path, e.field), e.message);
  return errors.length > 0 ? {} : ((field(o, key) as Record<string, string> | undefined) ?? {});
}

/** A host name or an IP literal (v6 without brackets). */
export function addressProblem(s: string): string | undefined {
  if (s.length === 0 || s.length > DEFINITION_LIMITS.addressLengthMax) {
    return `must be 1 to ${DEFINITION_LIMITS.addressLengthMax} characters`;
  }
  if (s.includes(':')) return /^[0-9A-Fa-f:.]+$/.test(s) ? undefined : 'is not a valid IPv6 address';
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(s)) return 'is not a host name or IP address';
  return undefined;
}

/** "host:port" for tcp and grpc checks; grpc may add "/service". */
export function hostPortProblem(s: string): string | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return 'must be HOST:PORT (IPv6 in brackets)';
  const n = Number(m[2]);
  if (n < 1 || n > 65535) return 'port must be from 1 to 65535';
  return undefined;
}

/** A definition's `weights`: each field optional (default 1), passing 1 to weightMax, warning 0 to it. */
export function weights(o: Obj, path: string, p: Problems): InstanceWeights | undefined {
  const v = field(o, 'weights');
  if (v === undefined) return undefined;
  const wp = at(path, 'weights');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    p.add(wp, `must be an object like { "passing": 10, "warning": 1 }, got ${describe(v)}`);
    return undefined;
  }
  const w = v as Obj;
  onlyFields(w, ['passing', 'warning'], wp, p);
  const one = (key: 'passing' | 'warning', min: number): number => {
    const x = field(w, key);
    if (x === undefined) return 1;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > DEFINITION_LIMITS.weightMax) {
      const zero = min === 0 ? ' (0: no calls while it warns)' : '';
      p.add(
        at(wp, key),
        `must be a whole number from ${min} to ${DEFINITION_LIMITS.weightMax}${zero}, got ${describe(x)}`,
      );
      return 1;
    }
    return x;
  };
  return { passing: one('passing', 1), warning: one('warning', 0) };
}
