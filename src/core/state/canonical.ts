// The stored form of specs: a deep copy of plain data with object keys sorted, so equal specs are
// equal records however their input was ordered, and nothing the caller keeps aliases the state.
import { STATE_LIMITS } from './limits.js';
import { isObj, utf8Length } from './text.js';

/**
 * A canonical deep copy of validated plain data: objects get sorted keys (undefined values
 * dropped), arrays and byte arrays are copied, scalars kept. Throws past the depth bound, which a
 * validated spec never reaches (validation rejects it first).
 */
export function canonical(v: unknown, depth = 0): unknown {
  if (depth > STATE_LIMITS.specDepthMax) throw new Error('canonical: spec nested too deeply');
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map((x) => canonical(x, depth + 1));
  if (isObj(v)) {
    const keys = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort();
    // fromEntries defines own properties, so a "__proto__" key stays plain data.
    return Object.fromEntries(keys.map((k) => [k, canonical(v[k], depth + 1)]));
  }
  return v;
}

/** Freeze a value and everything inside it (byte arrays cannot be frozen; they are private copies). */
export function deepFreeze<T>(v: T, depth = 0): T {
  if (depth > STATE_LIMITS.specDepthMax) throw new Error('deepFreeze: nested too deeply');
  if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v)) return v;
  for (const x of Object.values(v)) deepFreeze(x, depth + 1);
  return Object.freeze(v);
}

/**
 * An estimate of the msgpack-encoded size of a value, stopping as soon as it passes `limit` (so
 * huge input costs little) and returning Infinity past the depth bound. Each value counts its
 * content plus a 5-byte header, an upper bound of msgpack's headers for these sizes.
 */
export function estimateSize(v: unknown, limit: number, depth = 0): number {
  if (depth > STATE_LIMITS.specDepthMax) return Number.POSITIVE_INFINITY;
  if (typeof v === 'string') return 5 + stringBytes(v, limit);
  if (typeof v === 'number' || typeof v === 'bigint') return 9;
  if (v instanceof Uint8Array) return 5 + v.byteLength;
  if (typeof v !== 'object' || v === null) return 1;
  let size = 5;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && size <= limit; i++) size += estimateSize(v[i], limit - size, depth + 1);
    return size;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  for (let i = 0; i < keys.length && size <= limit; i++) {
    const k = keys[i]!;
    size += 5 + stringBytes(k, limit) + estimateSize(o[k], limit - size, depth + 1);
  }
  return size;
}

/** UTF-8 bytes of a string; a string longer than `limit` characters is at least that many bytes. */
function stringBytes(s: string, limit: number): number {
  if (s.length > limit) return s.length;
  const n = utf8Length(s);
  return n < 0 ? 3 * s.length : n;
}
