// The request-matching part of service-router: which HTTP requests a route applies to. Split from
// service-router.ts because the match is the larger half of the kind and the router core reads its
// types without caring about destinations.
import { field, type Obj } from '../text.js';
import {
  at,
  atMostOne,
  type Errors,
  item,
  listAt,
  objectAt,
  optBool,
  optRegex,
  optText,
  textProblem,
} from './spec-fields.js';

export interface HeaderMatch {
  /** Header name; compared case-insensitively, as HTTP does. */
  name: string;
  /** true: the header is sent (any value); false: it is not sent. */
  present?: boolean;
  exact?: string;
  prefix?: string;
  suffix?: string;
  /** Must match the whole value. */
  regex?: string;
  /** Negates the whole condition. */
  invert?: boolean;
}

export interface QueryMatch {
  /** Parameter name; case-sensitive, as the URL is. */
  name: string;
  present?: boolean;
  exact?: string;
  regex?: string;
}

export interface HttpMatch {
  pathExact?: string;
  /** A plain string prefix: "/api" also matches "/apis". End it with "/" to mean one directory. */
  pathPrefix?: string;
  /** Must match the whole path (without the query string). */
  pathRegex?: string;
  /**
   * pathExact and pathPrefix compare without case (Consul's CaseInsensitive; routes only). Not with
   * pathRegex: the bounded-time regex engine has no case-insensitive mode (write [Aa] instead).
   */
  caseInsensitive?: boolean;
  /** Upper-case method names; empty or unset means any method. */
  methods?: string[];
  header?: HeaderMatch[];
  queryParam?: QueryMatch[];
}

export const HTTP_MATCH_LIMITS = Object.freeze({
  /** URL paths beyond 2 KiB are rejected by most servers anyway. */
  pathLengthMax: 2048,
  /**
   * A match's cost grows with the pattern's size times the value's once V8 falls back to its
   * linear-time engine (src/polyfill.ts; write-checks.ts refuses patterns it cannot take), so a
   * short bound keeps it small. 256 characters is ample for path and header patterns.
   */
  regexLengthMax: 256,
  methodsMax: 16,
  methodLengthMax: 32,
  headersMax: 16,
  queryParamsMax: 16,
  /** Header and query parameter names. */
  nameLengthMax: 256,
  /** Header and query parameter values to compare against (8 KiB is a common header size cap). */
  valueLengthMax: 8192,
});

const MATCH_FIELDS = ['http'] as const;
const HTTP_FIELDS = [
  'pathExact',
  'pathPrefix',
  'pathRegex',
  'caseInsensitive',
  'methods',
  'header',
  'queryParam',
] as const;
/**
 * An intention permission's: Consul's, without queryParam. Servers read a repeated query parameter
 * differently (first, last, all), so a deny on one could be passed by repeating it.
 */
const PERMISSION_HTTP_FIELDS = ['pathExact', 'pathPrefix', 'pathRegex', 'methods', 'header'] as const;
const HEADER_FIELDS = ['name', 'present', 'exact', 'prefix', 'suffix', 'regex', 'invert'] as const;
const QUERY_FIELDS = ['name', 'present', 'exact', 'regex'] as const;

/** An HTTP token (RFC 9110), with an optional leading ':' for HTTP/2 pseudo-headers (":authority"). */
const HEADER_NAME_PATTERN = /^:?[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Upper-case, as methods are case-sensitive and every standard one is upper-case. */
const METHOD_PATTERN = /^[A-Z][A-Z0-9_-]*$/;

function checkPath(o: Obj, key: string, path: string, errors: Errors): void {
  const v = optText(o, key, path, HTTP_MATCH_LIMITS.pathLengthMax, errors);
  if (v !== undefined && !v.startsWith('/')) {
    errors.push({
      field: at(path, key),
      message: `must start with "/", got ${JSON.stringify(v.slice(0, 32))}`,
    });
  }
}

function checkMethods(o: Obj, path: string, errors: Errors): void {
  const v = field(o, 'methods');
  if (v === undefined) return;
  const list = listAt(v, at(path, 'methods'), 0, HTTP_MATCH_LIMITS.methodsMax, errors);
  list?.forEach((m, i) => {
    const p = item(at(path, 'methods'), i);
    const problem = textProblem(m, HTTP_MATCH_LIMITS.methodLengthMax);
    if (problem !== undefined) errors.push({ field: p, message: problem });
    else if (!METHOD_PATTERN.test(m as string)) {
      errors.push({
        field: p,
        message: `must be an upper-case HTTP method such as GET or POST, got ${JSON.stringify(m)}`,
      });
    }
  });
}

function checkValueFields(o: Obj, keys: readonly string[], path: string, errors: Errors): void {
  for (const k of keys) {
    if (k === 'regex') optRegex(o, k, path, HTTP_MATCH_LIMITS.regexLengthMax, errors);
    else optText(o, k, path, HTTP_MATCH_LIMITS.valueLengthMax, errors);
  }
}

function checkHeader(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, HEADER_FIELDS, errors);
  if (o === undefined) return;
  const name = field(o, 'name');
  if (name === undefined) errors.push({ field: at(path, 'name'), message: 'is required' });
  else {
    const problem = textProblem(name, HTTP_MATCH_LIMITS.nameLengthMax);
    if (problem !== undefined) errors.push({ field: at(path, 'name'), message: problem });
    else if (!HEADER_NAME_PATTERN.test(name as string)) {
      errors.push({
        field: at(path, 'name'),
        message: "must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)",
      });
    }
  }
  optBool(o, 'present', path, errors);
  optBool(o, 'invert', path, errors);
  checkValueFields(o, ['exact', 'prefix', 'suffix', 'regex'], path, errors);
  atMostOne(o, ['present', 'exact', 'prefix', 'suffix', 'regex'], path, errors);
}

function checkQuery(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, QUERY_FIELDS, errors);
  if (o === undefined) return;
  if (field(o, 'name') === undefined) errors.push({ field: at(path, 'name'), message: 'is required' });
  else optText(o, 'name', path, HTTP_MATCH_LIMITS.nameLengthMax, errors);
  optBool(o, 'present', path, errors);
  checkValueFields(o, ['exact', 'regex'], path, errors);
  atMostOne(o, ['present', 'exact', 'regex'], path, errors);
}

function checkEach(
  o: Obj,
  key: string,
  path: string,
  max: number,
  each: (v: unknown, path: string, errors: Errors) => void,
  errors: Errors,
): void {
  const v = field(o, key);
  if (v === undefined) return;
  const list = listAt(v, at(path, key), 0, max, errors);
  list?.forEach((x, i) => {
    each(x, item(at(path, key), i), errors);
  });
}

/** pathExact, pathPrefix, pathRegex of `h` (at `hp`): each well formed, at most one of them. */
export function checkPathFields(h: Obj, hp: string, errors: Errors): void {
  checkPath(h, 'pathExact', hp, errors);
  checkPath(h, 'pathPrefix', hp, errors);
  optRegex(h, 'pathRegex', hp, HTTP_MATCH_LIMITS.regexLengthMax, errors);
  atMostOne(h, ['pathExact', 'pathPrefix', 'pathRegex'], hp, errors);
}

/** Check a route's `match` ({ http?: HttpMatch }) at `path`. */
export function checkRouteMatch(v: unknown, path: string, errors: Errors): void {
  const m = objectAt(v, path, MATCH_FIELDS, errors);
  if (m === undefined) return;
  const httpValue = field(m, 'http');
  if (httpValue === undefined) return;
  checkHttpMatch(httpValue, at(path, 'http'), errors);
}

/**
 * Check an HttpMatch at `hp`: a route's `match.http`, or (`permission`) an intention permission's
 * `http`, which has no queryParam.
 */
export function checkHttpMatch(httpValue: unknown, hp: string, errors: Errors, permission = false): void {
  const h = objectAt(httpValue, hp, permission ? PERMISSION_HTTP_FIELDS : HTTP_FIELDS, errors);
  if (h === undefined) return;
  checkPathFields(h, hp, errors);
  if (
    !permission &&
    optBool(h, 'caseInsensitive', hp, errors) === true &&
    field(h, 'pathRegex') !== undefined
  )
    errors.push({
      field: at(hp, 'caseInsensitive'),
      message:
        "applies to pathExact and pathPrefix only: regexes run on V8's linear-time engine, which has no case-insensitive mode; write both cases into pathRegex ([Aa]pi)",
    });
  checkMethods(h, hp, errors);
  checkEach(h, 'header', hp, HTTP_MATCH_LIMITS.headersMax, checkHeader, errors);
  checkEach(h, 'queryParam', hp, HTTP_MATCH_LIMITS.queryParamsMax, checkQuery, errors);
}
