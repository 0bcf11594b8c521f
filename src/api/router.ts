// A table-driven router: a route is one row { method, path, query, handler }. Paths are exact, or
// end in "/*" to take the rest of the path as `ctx.rest` (for key-value style routes).
import type { Logger } from 'pino';
import type { AgentApi } from './types.js';
import { MeshError } from './types.js';

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface RequestContext {
  agent: AgentApi;
  query: URLSearchParams;
  /** The request body, at most the server's body limit. Empty when none was sent. */
  body: Buffer;
  /** For "/*" routes: the percent-decoded rest of the path after the prefix. */
  rest: string;
  /** Aborted when the client goes away, so long operations stop. */
  signal: AbortSignal;
  log: Logger;
  onLeave: (() => void) | undefined;
}

export interface Reply {
  status?: number;
  body: unknown;
  /** Extra response headers (e.g. X-Mesh-Index). */
  headers?: Record<string, string>;
  /** Send these bytes as application/octet-stream instead of `body` as JSON. */
  raw?: Uint8Array;
  /** Runs after the answer has been sent (e.g. leave, which stops the agent). Errors are logged. */
  afterSend?: () => void | Promise<void>;
}

export type Handler = (ctx: RequestContext) => Reply | Promise<Reply>;

export interface Route {
  method: Method;
  path: string;
  /** Query parameters this route accepts; any other is a 400, so a typo is never silently ignored. */
  query?: readonly string[];
  handler: Handler;
}

export type Match = { route: Route; rest: string } | { allow: Method[] } | undefined;

export class Router {
  private readonly exact = new Map<string, Route[]>();
  private readonly prefixes: Array<{ prefix: string; routes: Route[] }> = [];

  constructor(routes: readonly Route[]) {
    for (const r of routes) {
      if (r.path.endsWith('/*')) {
        const prefix = r.path.slice(0, -1);
        let entry = this.prefixes.find((p) => p.prefix === prefix);
        if (!entry) {
          entry = { prefix, routes: [] };
          this.prefixes.push(entry);
        }
        entry.routes.push(r);
      } else {
        const list = this.exact.get(r.path) ?? [];
        list.push(r);
        this.exact.set(r.path, list);
      }
    }
    // Longest prefix first, so /v1/kv/a/* wins over /v1/kv/*.
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  match(method: string, path: string): Match {
    let candidates = this.exact.get(path);
    let rest = '';
    if (!candidates) {
      const p = this.prefixes.find((e) => path.startsWith(e.prefix));
      if (!p) return undefined;
      candidates = p.routes;
      try {
        rest = decodeURIComponent(path.slice(p.prefix.length));
      } catch {
        throw new MeshError('bad_request', 'the path is not valid percent-encoding');
      }
    }
    const route = candidates.find((r) => r.method === method);
    return route ? { route, rest } : { allow: candidates.map((r) => r.method) };
  }
}

/** 400 for a query parameter the route does not accept. */
export function checkQuery(route: Route, query: URLSearchParams): void {
  const allowed = route.query ?? [];
  for (const key of query.keys()) {
    if (!allowed.includes(key)) {
      const accepted = allowed.length > 0 ? `accepts: ${allowed.join(', ')}` : 'takes no query parameters';
      throw new MeshError(
        'bad_request',
        `unknown query parameter ${JSON.stringify(key.slice(0, 100))} (${route.method} ${route.path} ${accepted})`,
      );
    }
  }
}
