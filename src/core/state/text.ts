// Small helpers shared by the validators: plain-object checks, UTF-8 length without an encoder,
// and printable field names. Nothing here throws for any input.
import type { ValidationError } from './types.js';

export type Obj = Record<string, unknown>;

/** A plain object (prototype Object.prototype or null): not an array, Map, Date or byte array. */
export function isObj(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** An own property only, so "__proto__" or "toString" in input never reads the prototype chain. */
export function field(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/**
 * UTF-8 length of a string in bytes, or -1 when it holds an unpaired surrogate. Such strings
 * cannot survive UTF-8 encoding (msgpack would turn them into U+FFFD), so what the leader validated
 * would differ from what replicas store; they are rejected instead.
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1;
      n += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else n += 3;
  }
  return n;
}

/** A user-supplied name used in a field path, cut short so an error message stays readable. */
export function fieldName(k: string): string {
  return k.length > 64 ? `${k.slice(0, 64)}…` : k;
}

/** Join a parent path and a child field ("spec" + "meta.team"). */
export function joinField(parent: string, child: string): string {
  if (parent === '') return child;
  if (child === '') return parent;
  return `${parent}.${child}`;
}

/** A short description of an unexpected value for messages. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 32 ? `${v.slice(0, 32)}…` : v);
  if (v === null) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v;
}

export function err(field: string, message: string): ValidationError {
  return { field, message };
}

/** "field: message", the form an apply result or a log line carries. */
export function formatValidationError(e: ValidationError): string {
  return e.field === '' ? e.message : `${e.field}: ${e.message}`;
}
