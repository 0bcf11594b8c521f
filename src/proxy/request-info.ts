// What routing and L7 intentions read of a request (RequestInfo), made from an HTTP/1.1 head or
// HTTP/2 headers, on both sides of a hop.

import type { IncomingHttpHeaders } from 'node:http2';
import type { RequestInfo } from '../core/routing/types.js';
import type { Head } from './h1/head.js';

/** A request target as path and query (the query without its "?"; "" when there is none). */
export function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

/** Request headers as an object (lowercase names, repeats joined), for route matching and hashing. */
function headerObject(h: Head): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (let i = 0; i < h.lower.length; i++) {
    const k = h.lower[i] as string;
    const prev = out[k];
    out[k] = prev === undefined ? (h.values[i] as string) : `${String(prev)}, ${h.values[i]}`;
  }
  return out;
}

/** What routing reads of an HTTP/1.1 request; the header object is built only when a route or ring_hash policy reads it. */
export class H1RequestInfo implements RequestInfo {
  private built: IncomingHttpHeaders | undefined = undefined;

  constructor(
    readonly path: string,
    readonly query: string,
    readonly method: string,
    private readonly head: Head,
  ) {}

  /** With `:authority` (the Host) and `:method`, as HTTP/2 has them, so a match reads either protocol alike. */
  get headers(): IncomingHttpHeaders {
    if (this.built === undefined) {
      const h = headerObject(this.head);
      if (h.host !== undefined) h[':authority'] = h.host;
      h[':method'] = this.method;
      this.built = h;
    }
    return this.built;
  }
}

/** An HTTP/2 request's facts, from its headers, with `host` (the `:authority`) as HTTP/1.1 has it. */
export function h2RequestInfo(headers: IncomingHttpHeaders): RequestInfo {
  const { path, query } = splitUrl(String(headers[':path'] ?? '/'));
  let built: IncomingHttpHeaders | undefined;
  return {
    path,
    query,
    method: String(headers[':method'] ?? 'GET'),
    get headers(): IncomingHttpHeaders {
      built ??=
        headers.host === undefined && headers[':authority'] !== undefined
          ? { ...headers, host: headers[':authority'] }
          : headers;
      return built;
    },
  };
}

/** An HTTP/1.1 request's facts, from its head as received. */
export function h1RequestInfo(head: Head): RequestInfo {
  const { path, query } = splitUrl(head.target);
  return new H1RequestInfo(path, query, head.method, head);
}
