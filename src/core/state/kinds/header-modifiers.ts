// Header modifiers (Consul's HTTPHeaderModifiers): `requestHeaders` and `responseHeaders` of a
// service-router route's destination and of a service-splitter split. The caller's agent applies
// them to the request it sends and to the response it relays back: `remove` first, then `set`
// (replacing every value of the name), then `add` (appending a value, as a repeated header).
// Values are sent as written: Envoy's %VARIABLE% substitutions are not supported, so a `%` must be
// written `%%` (as in Envoy) and a lone one is refused rather than sent as the operator did not mean.
import { describe, field, fieldName, isObj } from '../text.js';
import { at, type Errors, item, listAt, objectAt } from './spec-fields.js';

export interface HeaderModifiers {
  /** Name → value, appended (a second line when the header is there already). */
  add?: Record<string, string>;
  /** Name → value, replacing every value the header had. */
  set?: Record<string, string>;
  /** Names removed, every value. */
  remove?: string[];
}

/** A modifier as the proxy applies it: lowercase names, `%%` read as `%`. */
export interface HeaderOps {
  /** Removed first, every value: `remove`'s names and `set`'s. */
  remove: string[];
  /** Then appended, in order: `set`'s lines, then `add`'s. */
  add: Array<[string, string]>;
}

export const HEADER_MODIFIER_LIMITS = Object.freeze({
  /** Names in `add` and `set` together, and in `remove`: a handful is what routes use. */
  entriesMax: 16,
  nameLengthMax: 128,
  /** 16 × 1 KiB keeps a modifier far inside a 64 KiB request head. */
  valueLengthMax: 1_024,
});

/** An HTTP field name (RFC 9110 §5.1: a token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value this agent can send as it is: visible Latin-1, spaces and tabs inside, none at the ends. */
const VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;

/**
 * Headers a modifier may not touch: the framing and hop-by-hop ones each hop makes for itself, the
 * Host the instance is called by, and the agents' own (traceparent is continued by every agent;
 * x-mesh-instance names the instance picked).
 */
const HOP_BY_HOP = [
  // Hop-by-hop whenever a message says Connection: close.
  'close',
  'connection',
  'content-length',
  'http2-settings',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];
const REQUEST_RESERVED: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  'host',
  'traceparent',
  'x-mesh-instance',
]);
const RESPONSE_RESERVED: ReadonlySet<string> = new Set(HOP_BY_HOP);

const FIELDS = ['add', 'set', 'remove'] as const;

function nameProblem(name: string, reserved: ReadonlySet<string>): string | undefined {
  if (name.length > HEADER_MODIFIER_LIMITS.nameLengthMax)
    return `header names are at most ${HEADER_MODIFIER_LIMITS.nameLengthMax} characters`;
  if (!TOKEN.test(name))
    return `${describe(name)} is not a header name (letters, digits and !#$%&'*+.^_\`|~-)`;
  if (reserved.has(name.toLowerCase()))
    return `${name.toLowerCase()} is set by each hop itself and cannot be changed`;
  return undefined;
}

function valueProblem(v: unknown): string | undefined {
  if (typeof v !== 'string') return `must be a string, got ${describe(v)}`;
  if (v.length > HEADER_MODIFIER_LIMITS.valueLengthMax)
    return `must be at most ${HEADER_MODIFIER_LIMITS.valueLengthMax} characters, got ${v.length}`;
  if (!VALUE.test(v))
    return 'must be printable Latin-1 text, no control characters (tabs inside only), nothing but text at either end';
  if (/%(?!%)/.test(v.replace(/%%/g, '')))
    return "holds a lone '%': variables such as %DOWNSTREAM_REMOTE_ADDRESS% are not supported; write %% for a literal %";
  return undefined;
}

/** Check a `requestHeaders` (`which` request) or `responseHeaders` modifier at `path`. */
export function checkHeaderModifiers(
  v: unknown,
  path: string,
  which: 'request' | 'response',
  errors: Errors,
): void {
  const o = objectAt(v, path, FIELDS, errors);
  if (o === undefined) return;
  const reserved = which === 'request' ? REQUEST_RESERVED : RESPONSE_RESERVED;
  let lines = 0;
  const seen = new Map<string, string>();
  for (const key of ['set', 'add'] as const) {
    const m = field(o, key);
    if (m === undefined) continue;
    const p = at(path, key);
    if (!isObj(m)) {
      errors.push({ field: p, message: `must be a map of header names to values, got ${describe(m)}` });
      continue;
    }
    for (const [name, value] of Object.entries(m)) {
      const np = `${p}.${fieldName(name)}`;
      lines++;
      const bad = nameProblem(name, reserved) ?? valueProblem(value);
      if (bad !== undefined) {
        errors.push({ field: np, message: bad });
        continue;
      }
      // One name twice (in set and add, or in two cases) makes the order of the lines matter in a
      // way the map cannot say: refused.
      const lower = name.toLowerCase();
      const first = seen.get(lower);
      if (first !== undefined) errors.push({ field: np, message: `${lower} is already given at ${first}` });
      else seen.set(lower, np);
    }
  }
  if (lines > HEADER_MODIFIER_LIMITS.entriesMax)
    errors.push({
      field: path,
      message: `at most ${HEADER_MODIFIER_LIMITS.entriesMax} headers in add and set together, got ${lines}`,
    });
  const remove = field(o, 'remove');
  if (remove === undefined) return;
  const list = listAt(remove, at(path, 'remove'), 0, HEADER_MODIFIER_LIMITS.entriesMax, errors);
  list?.forEach((name, i) => {
    const bad =
      typeof name === 'string' ? nameProblem(name, reserved) : `must be a header name, got ${describe(name)}`;
    if (bad !== undefined) errors.push({ field: item(at(path, 'remove'), i), message: bad });
  });
}

/** Check the `requestHeaders` and `responseHeaders` of `o` (a route destination or a split) at `path`. */
export function checkHeaderModifierFields(o: Record<string, unknown>, path: string, errors: Errors): void {
  const request = field(o, 'requestHeaders');
  if (request !== undefined) checkHeaderModifiers(request, at(path, 'requestHeaders'), 'request', errors);
  const response = field(o, 'responseHeaders');
  if (response !== undefined) checkHeaderModifiers(response, at(path, 'responseHeaders'), 'response', errors);
}

/** The ops of a validated modifier; undefined when it changes nothing. */
export function headerOps(m: HeaderModifiers | undefined): HeaderOps | undefined {
  if (m === undefined) return undefined;
  const literal = (v: string): string => v.replace(/%%/g, '%');
  // An empty value adds nothing (Envoy's default, keep_empty_value false): `set` to "" removes.
  const lines = (o: Record<string, string> | undefined): Array<[string, string]> =>
    Object.entries(o ?? {}).map(([n, v]): [string, string] => [n.toLowerCase(), literal(v)]);
  const set = lines(m.set);
  const add = lines(m.add).filter(([, v]) => v !== '');
  const remove = [...new Set([...(m.remove ?? []).map((n) => n.toLowerCase()), ...set.map(([n]) => n)])];
  if (remove.length === 0 && add.length === 0 && set.length === 0) return undefined;
  return { remove, add: [...set.filter(([, v]) => v !== ''), ...add] };
}
