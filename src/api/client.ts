// The HTTP API client used by the CLI. Every failure becomes a MeshError with a message the CLI can
// print as is.
import { parseErrorBody } from './errors.js';
import type { AgentSelfView, JoinResult, MemberView } from './types.js';
import { MeshError } from './types.js';

export interface ApiClientOptions {
  /** Per request; the agent is local, so a slow answer means it is stuck. */
  timeoutMs?: number;
  /** A join dials remote seeds and may take longer than other calls. */
  joinTimeoutMs?: number;
}

export const defaultHttpAddr = '127.0.0.1:7500';
const defaultTimeoutMs = 10_000;
const defaultJoinTimeoutMs = 60_000;
/** Answers are small JSON documents; a huge one means something else answered. */
const responseBytesMax = 64 * 1024 * 1024;

/** "127.0.0.1:7500", "[::1]:7500", "localhost:7500" or "http://host:port" → "http://host:port". */
export function normalizeBaseUrl(addr: string): string {
  const withScheme = /^https?:\/\//i.test(addr) ? addr : `http://${addr}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new MeshError(
      'bad_request',
      `--http: expected HOST:PORT or http://HOST:PORT, got ${JSON.stringify(addr)}`,
    );
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new MeshError(
      'bad_request',
      `--http: expected HOST:PORT or http://HOST:PORT, got ${JSON.stringify(addr)}`,
    );
  }
  return `${url.protocol}//${url.host}`;
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly joinTimeoutMs: number;

  constructor(addr: string, opts: ApiClientOptions = {}) {
    this.baseUrl = normalizeBaseUrl(addr);
    this.timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    this.joinTimeoutMs = opts.joinTimeoutMs ?? Math.max(this.timeoutMs, defaultJoinTimeoutMs);
  }

  self(): Promise<AgentSelfView> {
    return this.request('GET', '/v1/agent/self') as Promise<AgentSelfView>;
  }

  members(opts: { status?: string } = {}): Promise<MemberView[]> {
    const q = new URLSearchParams();
    if (opts.status !== undefined) q.set('status', opts.status);
    return this.request('GET', '/v1/agent/members', q) as Promise<MemberView[]>;
  }

  join(addresses: string[]): Promise<JoinResult> {
    const q = new URLSearchParams();
    for (const a of addresses) q.append('address', a);
    return this.request('PUT', '/v1/agent/join', q, this.joinTimeoutMs) as Promise<JoinResult>;
  }

  async leave(): Promise<void> {
    await this.request('PUT', '/v1/agent/leave');
  }

  /** One request; the answer's JSON (unvalidated: the agent is trusted, the shapes are its own). */
  async request(
    method: string,
    path: string,
    query?: URLSearchParams,
    timeoutMs = this.timeoutMs,
  ): Promise<unknown> {
    const qs = query && query.size > 0 ? `?${query}` : '';
    const url = `${this.baseUrl}${path}${qs}`;
    let res: Response;
    try {
      res = await fetch(url, { method, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw this.unreachable(err, timeoutMs);
    }
    let text: string;
    try {
      const declared = Number(res.headers.get('content-length') ?? 0);
      if (declared > responseBytesMax) throw new Error('too large');
      text = await res.text();
    } catch (err) {
      if (isTimeout(err)) throw this.unreachable(err, timeoutMs);
      throw new MeshError(
        'unavailable',
        `the agent at ${this.baseUrl} sent an unreadable answer to ${method} ${path}`,
      );
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new MeshError(
        'internal',
        `unexpected answer from ${this.baseUrl} (HTTP ${res.status}, not JSON); is a mesh agent listening there?`,
      );
    }
    if (res.ok) return data;
    throw (
      parseErrorBody(data) ??
      new MeshError(
        'internal',
        `unexpected answer from ${this.baseUrl}: HTTP ${res.status} ${res.statusText}`,
      )
    );
  }

  private unreachable(err: unknown, timeoutMs: number): MeshError {
    if (isTimeout(err)) {
      return new MeshError(
        'unavailable',
        `the agent at ${this.baseUrl} did not answer within ${timeoutMs / 1000}s (is it overloaded or stuck?)`,
      );
    }
    return new MeshError(
      'unavailable',
      `no agent answered at ${this.baseUrl} (is \`mesh agent\` running? set --http or MESH_HTTP_ADDR)`,
    );
  }
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
}
