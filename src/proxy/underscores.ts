// Header names with underscores at the instance's agent (the mesh entry's
// http.incoming.requestNormalization.headersWithUnderscoresAction, Envoy's
// headers_with_underscores_action): many servers read `x_user` as `x-user` (CGI's HTTP_X_USER), while
// intentions and routes compare names as sent, so a permission on `x-user` cannot see `x_user`.
// REJECT_REQUEST answers such a request 400; DROP_HEADER removes those headers before intentions,
// rate limits and the instance see them (as Envoy's codec does). The default, ALLOW, passes them on
// and costs nothing per request. Trailers are not looked at (intentions never read them).

import type { IncomingHttpHeaders } from 'node:http2';
import type { Head } from './h1/head.js';

/** The status a request refused for an underscore in a header name gets (gRPC: 13 INTERNAL, as Envoy). */
export const UNDERSCORE_REJECT_STATUS = 400;
export const UNDERSCORE_REJECT_GRPC_STATUS = 13;

/** Why the request was refused, naming the headers (at most a few: a caller could send many). */
export function underscoreRefusal(names: readonly string[]): string {
  const shown = names.slice(0, 4).join(', ');
  const more = names.length > 4 ? ` and ${names.length - 4} more` : '';
  return `mesh: header names with underscores are refused here (the mesh entry's headersWithUnderscoresAction is REJECT_REQUEST): ${shown}${more}`;
}

/** A header line whose name (before the colon) holds an underscore; values may hold any. */
const UNDERSCORE_NAME = /\r\n[^:\r]*_[^:\r]*:/;

/** The lowercase names of an HTTP/1.1 head's headers that hold an underscore, once each; undefined when none. */
export function h1UnderscoreNames(h: Head): string[] | undefined {
  // Most heads have no such name: one search of the raw lines settles it, without splitting them.
  if (!UNDERSCORE_NAME.test(h.block)) return undefined;
  const out = [...new Set(h.lower.filter((name) => name.includes('_')))];
  return out.length > 0 ? out : undefined;
}

/** The names of an HTTP/2 request's headers that hold an underscore; undefined when none. */
export function h2UnderscoreNames(headers: IncomingHttpHeaders): string[] | undefined {
  const out = Object.keys(headers).filter((name) => name.includes('_'));
  return out.length > 0 ? out : undefined;
}
