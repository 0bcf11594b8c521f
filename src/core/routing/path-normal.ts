// The path an HTTP server will most likely act on, for L7 intentions. A caller can write one path
// in several ways that servers treat alike: `/%61dmin/`, `//admin/`, `/x/../admin/`,
// `http://api/admin/` (absolute form), `/admin#x` (a fragment, which URL parsers drop),
// `/admin;v=1/` (path parameters, which Tomcat drops), `\admin\` (Windows servers). A permission that denies `/admin/` must see through them, as
// Envoy's path normalisation does for Consul. The request itself is forwarded unchanged; the
// intention decides on both the path as sent and this form of it (intentions.ts).

import type { RequestInfo } from './types.js';

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** The path part of an absolute-form target (RFC 9112 §3.2.2), else the path as given. */
function originForm(path: string): string {
  if (path.startsWith('/')) return path;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(path);
  if (m === null) return path;
  const rest = path.slice(m[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * Percent-escapes of unreserved characters and of "/" decoded (RFC 3986 §6.2.2.2; many servers
 * also decode %2F), the others upper-cased. An escape that is not two hex digits is left.
 */
function decodeEscapes(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(/%([0-9A-Fa-f]{2})/g, (whole, hex: string) => {
    const c = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(c) || c === '/' ? c : whole.toUpperCase();
  });
}

/** Each segment's `;` parameters removed (`/admin;jsessionid=1/x` → `/admin/x`). */
function withoutParams(path: string): string {
  return path.includes(';') ? path.replace(/;[^/]*/g, '') : path;
}

/** Dot segments removed (RFC 3986 §5.2.4) and runs of "/" merged; a path that climbs above the root stays at it. */
function removeDots(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  // segments[0] is '' (the path starts with "/"); the last one decides a trailing "/".
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    const last = i === segments.length - 1;
    if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else if (s === '.' || (s === '' && !last)) {
      if (last) out.push('');
    } else out.push(s);
  }
  return `/${out.join('/')}`;
}

/**
 * The normal form of a request path (without its query): origin form, escapes of unreserved
 * characters and "/" decoded, dot segments removed, "//" merged. A path that is already in normal
 * form is returned as it is (the same string), so callers can compare by identity.
 */
export function normalizePath(path: string): string {
  const origin = originForm(path.includes('\\') ? path.replaceAll('\\', '/') : path);
  if (!origin.startsWith('/')) return path; // `*` (OPTIONS *) or something no server maps to a file
  const hash = origin.indexOf('#');
  const bare = hash < 0 ? origin : origin.slice(0, hash);
  const decoded = withoutParams(decodeEscapes(bare));
  const normal = decoded.includes('//') || decoded.includes('/.') ? removeDots(decoded) : decoded;
  return normal === path ? path : normal;
}

/**
 * `req` with its path in normal form: `req` itself when it already is. The copy reads every other
 * field through its prototype, so a lazily built header object stays lazy.
 */
export function withNormalPath(req: RequestInfo): RequestInfo {
  const path = normalizePath(req.path);
  return path === req.path ? req : (Object.create(req, { path: { value: path } }) as RequestInfo);
}
