// Request matching: a route's HttpMatch compiled once (regexes built, names lower-cased) into a
// predicate over RequestInfo. All conditions of a match must hold.
import type { HeaderMatch, HttpMatch, QueryMatch } from '../state/kinds/service-router.js';
import { fullMatchRegex } from '../state/kinds/spec-fields.js';
import type { RequestInfo } from './types.js';

export type RequestPredicate = (req: RequestInfo, query: QueryParams) => boolean;

/** Query parameters decoded once per request: the first value of each name (as Envoy matches). */
export type QueryParams = ReadonlyMap<string, string>;

/** Bound on parameters read from one query string; the rest are ignored (a match sees the first). */
export const QUERY_PARAMS_READ_MAX = 256;

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    // A malformed escape: match on the raw text rather than failing the request.
    return s;
  }
}

export function parseQuery(query: string): QueryParams {
  const out = new Map<string, string>();
  const q = query.startsWith('?') ? query.slice(1) : query;
  if (q === '') return out;
  const parts = q.split('&', QUERY_PARAMS_READ_MAX);
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decode(part.slice(eq + 1));
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

/** The request path without its query string. */
export function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/** A header's value, names compared case-insensitively; repeated headers joined with "," (RFC 9110). */
export function headerValue(headers: RequestInfo['headers'], lowerName: string): string | undefined {
  // Own properties only: a header named "constructor" must not read Object.prototype.
  let v = Object.hasOwn(headers, lowerName) ? headers[lowerName] : undefined;
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === lowerName) {
        v = headers[k];
        break;
      }
    }
  }
  if (typeof v === 'string') return v;
  return Array.isArray(v) ? v.join(',') : undefined;
}

const NEVER = (): boolean => false;

/** Value test of a header or query condition; undefined means "is present". */
function valueTest(m: HeaderMatch | QueryMatch): ((v: string) => boolean) | undefined {
  if (m.exact !== undefined) {
    const exact = m.exact;
    return (v) => v === exact;
  }
  if (m.regex !== undefined) {
    // Validation compiled it already; a pattern that still fails (a newer agent's syntax) never matches.
    const re = fullMatchRegex(m.regex);
    return re === undefined ? NEVER : (v) => re.test(v);
  }
  if ('prefix' in m && m.prefix !== undefined) {
    const prefix = m.prefix;
    return (v) => v.startsWith(prefix);
  }
  if ('suffix' in m && m.suffix !== undefined) {
    const suffix = m.suffix;
    return (v) => v.endsWith(suffix);
  }
  return undefined;
}

/** present: false asks for absence; otherwise the value (or mere presence) must match. */
function presence(
  m: HeaderMatch | QueryMatch,
  get: (req: RequestInfo, q: QueryParams) => string | undefined,
) {
  const test = valueTest(m);
  const wantAbsent = m.present === false;
  return (req: RequestInfo, q: QueryParams): boolean => {
    const v = get(req, q);
    if (wantAbsent) return v === undefined;
    if (v === undefined) return false;
    return test === undefined ? true : test(v);
  };
}

function headerPredicate(m: HeaderMatch): RequestPredicate {
  const name = m.name.toLowerCase();
  const p = presence(m, (req) => headerValue(req.headers, name));
  return m.invert === true ? (req, q) => !p(req, q) : p;
}

function queryPredicate(m: QueryMatch): RequestPredicate {
  const name = m.name;
  return presence(m, (_req, q) => q.get(name));
}

function pathPredicate(m: HttpMatch): RequestPredicate | undefined {
  const fold = m.caseInsensitive === true;
  if (m.pathExact !== undefined) {
    const exact = fold ? asciiLower(m.pathExact) : m.pathExact;
    return fold ? (req) => asciiLower(pathOnly(req.path)) === exact : (req) => pathOnly(req.path) === exact;
  }
  if (m.pathPrefix !== undefined) {
    const prefix = fold ? asciiLower(m.pathPrefix) : m.pathPrefix;
    return fold
      ? (req) => asciiLower(pathOnly(req.path)).startsWith(prefix)
      : (req) => pathOnly(req.path).startsWith(prefix);
  }
  if (m.pathRegex !== undefined) {
    const re = fullMatchRegex(m.pathRegex);
    return re === undefined ? NEVER : (req) => re.test(pathOnly(req.path));
  }
  return undefined;
}

/**
 * A-Z as a-z, nothing else: what caseInsensitive folds (as Envoy does). Keeps the length, so a
 * prefix matched without case is cut from the path at its own length.
 */
function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32)) : s;
}

/** Compile a match; no match (undefined) accepts every request. */
export function compileMatch(m: HttpMatch | undefined): RequestPredicate {
  if (m === undefined) return () => true;
  const tests: RequestPredicate[] = [];
  const path = pathPredicate(m);
  if (path !== undefined) tests.push(path);
  if (m.methods !== undefined && m.methods.length > 0) {
    const methods = new Set(m.methods);
    tests.push((req) => methods.has(req.method.toUpperCase()));
  }
  for (const h of m.header ?? []) tests.push(headerPredicate(h));
  for (const qp of m.queryParam ?? []) tests.push(queryPredicate(qp));
  return (req, q) => tests.every((t) => t(req, q));
}

/** The path to forward after a route's prefixRewrite: the matched part replaced, the rest kept. */
export function rewritePath(
  path: string,
  m: HttpMatch | undefined,
  prefixRewrite: string | undefined,
): string {
  if (prefixRewrite === undefined || m === undefined) return path;
  const q = path.indexOf('?');
  const bare = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? '' : path.slice(q);
  const matched = m.pathPrefix ?? m.pathExact;
  if (matched === undefined) return path;
  const starts =
    m.caseInsensitive === true ? asciiLower(bare).startsWith(asciiLower(matched)) : bare.startsWith(matched);
  if (!starts) return path;
  return `${prefixRewrite}${bare.slice(matched.length)}${query}`;
}
