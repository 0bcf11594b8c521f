// Path-aware field checks for the nested kinds (routers, splitters, resolvers, intentions). Each
// records its problem under the full field path relative to the spec ("routes[2].match.http") and
// returns the value only when it is usable, so one pass reports every problem. Nothing throws.
import { SERVICE_NAME_PATTERN } from '../../catalog/definition-fields.js';
import { describe, field, fieldName, isObj, type Obj, utf8Length } from '../text.js';
import type { ValidationError } from '../types.js';

export type Errors = ValidationError[];

/** Service names are DNS labels, as in service definitions (NAME.service.mesh): 63 characters. */
export const SERVICE_NAME_LENGTH_MAX = 63;

/** "parent.child", or the child alone at the top of the spec. */
export function at(parent: string, child: string): string {
  return parent === '' ? fieldName(child) : `${parent}.${fieldName(child)}`;
}

export function item(parent: string, index: number): string {
  return `${parent}[${index}]`;
}

/** `v` as an object with only `allowed` fields, or undefined (the problem recorded at `path`). */
export function objectAt(
  v: unknown,
  path: string,
  allowed: readonly string[],
  errors: Errors,
): Obj | undefined {
  if (!isObj(v)) {
    errors.push({ field: path, message: `must be an object, got ${describe(v)}` });
    return undefined;
  }
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) {
      errors.push({
        field: at(path, k),
        message: `unknown field; known fields: ${[...allowed].sort().join(', ')}`,
      });
    }
  }
  return v;
}

/**
 * A list of `min` to `max` items, or undefined. The length is checked before any item is looked at,
 * so an oversized list costs one error, not one per item.
 */
export function listAt(
  v: unknown,
  path: string,
  min: number,
  max: number,
  errors: Errors,
): unknown[] | undefined {
  if (!Array.isArray(v)) {
    errors.push({ field: path, message: `must be a list, got ${describe(v)}` });
    return undefined;
  }
  if (v.length < min || v.length > max) {
    const range = min === 0 ? `at most ${max}` : `${min} to ${max}`;
    errors.push({ field: path, message: `must hold ${range} entries, got ${v.length}` });
    return undefined;
  }
  return v;
}

/** Problem with a string of 1..max characters (well-formed Unicode), or undefined. */
export function textProblem(v: unknown, max: number): string | undefined {
  if (typeof v !== 'string') return `must be a string, got ${describe(v)}`;
  if (v.length === 0) return 'must not be empty';
  if (v.length > max) return `must be at most ${max} characters, got ${v.length}`;
  if (utf8Length(v) < 0) return 'must be valid Unicode (it holds an unpaired surrogate)';
  return undefined;
}

/** An optional non-empty string of at most `max` characters. */
export function optText(o: Obj, key: string, path: string, max: number, errors: Errors): string | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const problem = textProblem(v, max);
  if (problem !== undefined) {
    errors.push({ field: at(path, key), message: problem });
    return undefined;
  }
  return v as string;
}

export function optBool(o: Obj, key: string, path: string, errors: Errors): boolean | undefined {
  const v = field(o, key);
  if (v === undefined || typeof v === 'boolean') return v;
  errors.push({ field: at(path, key), message: `must be true or false, got ${describe(v)}` });
  return undefined;
}

/** An optional integer in [min, max]. */
export function optInt(o: Obj, key: string, path: string, min: number, max: number, errors: Errors): void {
  const v = field(o, key);
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    errors.push({
      field: at(path, key),
      message: `must be a whole number from ${min} to ${max}, got ${describe(v)}`,
    });
  }
}

/** An optional field that must be one of `values`. */
export function optEnum(o: Obj, key: string, path: string, values: readonly string[], errors: Errors): void {
  const v = field(o, key);
  if (v === undefined) return;
  if (typeof v !== 'string' || !values.includes(v)) {
    errors.push({ field: at(path, key), message: `must be one of ${values.join(', ')}, got ${describe(v)}` });
  }
}

/** Problem with a service name (the catalog's rule: a DNS label of at most 63 characters), or undefined. */
export function serviceNameProblem(v: unknown): string | undefined {
  if (typeof v === 'string' && v.length <= SERVICE_NAME_LENGTH_MAX && SERVICE_NAME_PATTERN.test(v)) {
    return undefined;
  }
  return `must be a service name: 1 to ${SERVICE_NAME_LENGTH_MAX} lower-case letters, digits or '-', not starting or ending with '-', got ${describe(v)}`;
}

/** Subset names appear in target ids ("v2.api") and DNS, so they follow the same DNS-label rule. */
export function subsetNameProblem(v: unknown): string | undefined {
  if (typeof v === 'string' && v.length <= SERVICE_NAME_LENGTH_MAX && SERVICE_NAME_PATTERN.test(v)) {
    return undefined;
  }
  return `must be a subset name: 1 to ${SERVICE_NAME_LENGTH_MAX} lower-case letters, digits or '-', not starting or ending with '-', got ${describe(v)}`;
}

export function optServiceName(o: Obj, key: string, path: string, errors: Errors): string | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const problem = serviceNameProblem(v);
  if (problem !== undefined) errors.push({ field: at(path, key), message: problem });
  return problem === undefined ? (v as string) : undefined;
}

export function optSubsetName(o: Obj, key: string, path: string, errors: Errors): string | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const problem = subsetNameProblem(v);
  if (problem !== undefined) errors.push({ field: at(path, key), message: problem });
  return problem === undefined ? (v as string) : undefined;
}

/** At most one of `keys` may be set on `o`; the problem is recorded on the object's path. */
export function atMostOne(o: Obj, keys: readonly string[], path: string, errors: Errors): void {
  const set = keys.filter((k) => field(o, k) !== undefined);
  if (set.length > 1) {
    errors.push({
      field: path,
      message: `set at most one of ${keys.join(', ')}; found ${set.join(' and ')}`,
    });
  }
}

/**
 * The one regular expression dialect of routes, used by validation and by the router alike so
 * what validates also compiles: JavaScript syntax, no flags, anchored to match the whole value
 * (as Envoy's safe_regex), so "/api/v[0-9]+" does not also match "/x/api/v1/y".
 */
export function fullMatchRegex(source: string): RegExp | undefined {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch {
    return undefined;
  }
}

/** An optional regular expression of at most `max` characters that compiles. */
export function optRegex(o: Obj, key: string, path: string, max: number, errors: Errors): void {
  const v = field(o, key);
  if (v === undefined) return;
  const problem = textProblem(v, max);
  if (problem !== undefined) {
    errors.push({ field: at(path, key), message: problem });
    return;
  }
  // Compile the bare source too: "a)(b" is invalid alone but would compile inside the wrapper.
  let bare = true;
  try {
    new RegExp(v as string);
  } catch {
    bare = false;
  }
  if (!bare || fullMatchRegex(v as string) === undefined) {
    errors.push({ field: at(path, key), message: `is not a valid regular expression (JavaScript syntax)` });
  }
}
