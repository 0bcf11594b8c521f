// The HTTP API client used by the CLI. Every failure becomes a MeshError with a message the CLI can
// print as is.
import { parseErrorBody } from './errors.js';
import type {
  AgentSelfView,
  CatalogServiceView,
  CheckView,
  ConfigEntryView,
  ConfigWriteResult,
  DiscoveryChainView,
  InstanceView,
  JoinResult,
  KvEntryView,
  LocalServiceView,
  MemberView,
  NodeView,
  RaftPeerView,
  RaftStatusView,
  TransferLeaderResult,
} from './types.js';
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

/**
 * A KV key as a URL path: each '/'-separated segment percent-encoded, the separators kept, so a key
 * holding '?', '#', '%' or spaces reaches the agent unchanged. Segments "." and ".." are refused:
 * every URL parser (fetch included) folds them away, so "a/../b" would silently address "b".
 */
export function encodeKeyPath(key: string): string {
  const segments = key.split('/');
  if (segments.some((s) => s === '.' || s === '..')) {
    throw new MeshError(
      'bad_request',
      `key ${JSON.stringify(key)}: a path segment "." or ".." cannot be sent over HTTP; rename the key`,
    );
  }
  return segments.map(encodeURIComponent).join('/');
}

/** Query parameters: `true` is sent as a bare flag (`?recurse`), false/undefined are left out. */
export type QueryParams = Record<string, string | number | boolean | undefined>;

export function queryString(params: QueryParams): string {
  const parts: string[] = [];
  for (const [name, v] of Object.entries(params)) {
    if (v === undefined || v === false) continue;
    parts.push(
      v === true ? encodeURIComponent(name) : `${encodeURIComponent(name)}=${encodeURIComponent(v)}`,
    );
  }
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

/** A check-and-set index: 0 means "only if absent", n "only if its modify index is n". */
function checkCas(cas: number | undefined, min: number): void {
  if (cas !== undefined && (!Number.isSafeInteger(cas) || cas < min)) {
    throw new MeshError('bad_request', `cas: must be an integer >= ${min}, got ${cas}`);
  }
}

export interface ReadOptions {
  /** Answer through the leader (linearizable) instead of from this agent's replica. */
  consistent?: boolean;
}

/** One answer: its status and decoded JSON. */
interface Answer {
  status: number;
  data: unknown;
}

interface CallOptions {
  query?: string;
  body?: Uint8Array | string;
  contentType?: string;
  timeoutMs?: number;
  /** Statuses answered as data instead of thrown (404 for a missing key). */
  accept?: readonly number[];
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

  /** The entry at `key`; undefined when there is none. */
  async kvGet(key: string, opts: ReadOptions = {}): Promise<KvEntryView | undefined> {
    const a = await this.call('GET', `/v1/kv/${encodeKeyPath(key)}`, {
      query: queryString({ consistent: opts.consistent }),
      accept: [404],
    });
    if (a.status === 404) return undefined;
    const entries = a.data as KvEntryView[];
    if (!Array.isArray(entries) || entries.length !== 1) {
      throw this.unexpected(`GET /v1/kv/${key}`, 'expected an array of one entry');
    }
    return entries[0];
  }

  /** Every entry whose key starts with `prefix` ('' for all), sorted by key. */
  async kvList(prefix: string, opts: ReadOptions = {}): Promise<KvEntryView[]> {
    const a = await this.call('GET', `/v1/kv/${encodeKeyPath(prefix)}`, {
      query: queryString({ recurse: true, consistent: opts.consistent }),
    });
    if (!Array.isArray(a.data)) throw this.unexpected(`GET /v1/kv/${prefix}?recurse`, 'expected an array');
    return a.data as KvEntryView[];
  }

  /** The keys starting with `prefix`, without their values. */
  async kvKeys(prefix: string, opts: ReadOptions = {}): Promise<string[]> {
    const a = await this.call('GET', `/v1/kv/${encodeKeyPath(prefix)}`, {
      query: queryString({ keys: true, consistent: opts.consistent }),
    });
    if (!Array.isArray(a.data) || !a.data.every((k) => typeof k === 'string')) {
      throw this.unexpected(`GET /v1/kv/${prefix}?keys`, 'expected an array of strings');
    }
    return a.data as string[];
  }

  /** Write a value (a string is sent as UTF-8). False when the check-and-set `cas` failed. */
  async kvPut(key: string, value: Uint8Array | string, opts: { cas?: number } = {}): Promise<boolean> {
    checkCas(opts.cas, 0);
    const a = await this.call('PUT', `/v1/kv/${encodeKeyPath(key)}`, {
      query: queryString({ cas: opts.cas }),
      body: value,
      contentType: 'application/octet-stream',
    });
    return this.boolean(a, `PUT /v1/kv/${key}`);
  }

  /**
   * Delete one key, or with `recurse` every key starting with `key`. False when the check-and-set
   * `cas` failed (the key changed or is gone). Deleting a missing key without `cas` is true.
   */
  async kvDelete(key: string, opts: { recurse?: boolean; cas?: number } = {}): Promise<boolean> {
    checkCas(opts.cas, 1);
    if (opts.recurse && opts.cas !== undefined) {
      throw new MeshError(
        'bad_request',
        'cas cannot be combined with recurse (a tree has no single modify index)',
      );
    }
    const a = await this.call('DELETE', `/v1/kv/${encodeKeyPath(key)}`, {
      query: queryString({ recurse: opts.recurse, cas: opts.cas }),
    });
    return this.boolean(a, `DELETE /v1/kv/${key}`);
  }

  /**
   * Write a configuration entry given as in an entry file: `kind`, `name` and the spec's fields
   * side by side. The agent validates it; a bad field is a MeshError('bad_request') naming it.
   */
  async configPut(entry: Record<string, unknown>, opts: { cas?: number } = {}): Promise<ConfigWriteResult> {
    checkCas(opts.cas, 0);
    const a = await this.call('PUT', '/v1/config', {
      query: queryString({ cas: opts.cas }),
      body: JSON.stringify(entry),
      contentType: 'application/json',
    });
    const r = a.data as ConfigWriteResult;
    if (typeof r !== 'object' || r === null || typeof r.index !== 'number') {
      throw this.unexpected('PUT /v1/config', 'expected {"index": N}');
    }
    return r;
  }

  /** One entry; undefined when there is none. */
  async configGet(kind: string, name: string, opts: ReadOptions = {}): Promise<ConfigEntryView | undefined> {
    const a = await this.call('GET', `/v1/config/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`, {
      query: queryString({ consistent: opts.consistent }),
      accept: [404],
    });
    return a.status === 404 ? undefined : (a.data as ConfigEntryView);
  }

  /** The entries of one kind, or of every kind. */
  async configList(kind?: string, opts: ReadOptions = {}): Promise<ConfigEntryView[]> {
    const path = kind === undefined ? '/v1/config' : `/v1/config/${encodeURIComponent(kind)}`;
    const a = await this.call('GET', path, { query: queryString({ consistent: opts.consistent }) });
    if (!Array.isArray(a.data)) throw this.unexpected(`GET ${path}`, 'expected an array');
    return a.data as ConfigEntryView[];
  }

  async configDelete(kind: string, name: string): Promise<boolean> {
    const path = `/v1/config/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`;
    return this.boolean(await this.call('DELETE', path), `DELETE ${path}`);
  }

  /** The discovery chain of `service` as the agent's proxy compiles it. */
  async discoveryChain(service: string): Promise<DiscoveryChainView> {
    const path = `/v1/discovery-chain/${encodeURIComponent(service)}`;
    const a = await this.call('GET', path);
    const v = a.data as DiscoveryChainView;
    const c = v?.chain;
    const ok =
      typeof v === 'object' &&
      v !== null &&
      typeof v.instances === 'object' &&
      v.instances !== null &&
      typeof c === 'object' &&
      c !== null &&
      [c.routes, c.targets, c.errors].every(Array.isArray);
    if (!ok)
      throw this.unexpected(
        `GET ${path}`,
        'expected {"index", "chain": {"routes", "targets", "errors"}, "instances"}',
      );
    return v;
  }

  async raftPeers(): Promise<RaftPeerView[]> {
    const a = await this.call('GET', '/v1/raft/peers');
    if (!Array.isArray(a.data)) throw this.unexpected('GET /v1/raft/peers', 'expected an array');
    return a.data as RaftPeerView[];
  }

  async raftStatus(): Promise<RaftStatusView> {
    return (await this.call('GET', '/v1/raft/status')).data as RaftStatusView;
  }

  /** Hand leadership to `to` (a name or id), or to the most up-to-date voter. */
  async raftTransferLeader(to?: string): Promise<TransferLeaderResult> {
    const a = await this.call('POST', '/v1/raft/transfer-leader', { query: queryString({ to }) });
    return a.data as TransferLeaderResult;
  }

  async agentServices(): Promise<LocalServiceView[]> {
    return this.list('/v1/agent/services') as Promise<LocalServiceView[]>;
  }

  async agentChecks(): Promise<CheckView[]> {
    return this.list('/v1/agent/checks') as Promise<CheckView[]>;
  }

  /** Register (or replace) a service on this agent; the agent validates it and names a bad field. */
  async serviceRegister(definition: unknown): Promise<{ id: string; name: string }> {
    const a = await this.call('PUT', '/v1/agent/service/register', {
      body: JSON.stringify(definition),
      contentType: 'application/json',
    });
    return a.data as { id: string; name: string };
  }

  async serviceDeregister(id: string): Promise<void> {
    await this.call('PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
  }

  /** A TTL check's status, as the service reports it. */
  async checkUpdate(status: 'pass' | 'warn' | 'fail', id: string, note?: string): Promise<CheckView> {
    const a = await this.call('PUT', `/v1/agent/check/${status}/${encodeURIComponent(id)}`, {
      query: queryString({ note }),
    });
    return a.data as CheckView;
  }

  /** Re-read the agent's --config-dir. */
  async reload(): Promise<{ services: number; files: number }> {
    return (await this.call('PUT', '/v1/agent/reload')).data as { services: number; files: number };
  }

  async catalogServices(): Promise<CatalogServiceView[]> {
    return this.list('/v1/catalog/services') as Promise<CatalogServiceView[]>;
  }

  /** Instances of a service cluster-wide; `healthy` keeps passing and warning ones. */
  async catalogInstances(
    name: string,
    opts: { healthy?: boolean; tag?: string } = {},
  ): Promise<InstanceView[]> {
    const path = `/v1/health/service/${encodeURIComponent(name)}`;
    return this.list(path, queryString({ healthy: opts.healthy, tag: opts.tag })) as Promise<InstanceView[]>;
  }

  async catalogNodes(): Promise<NodeView[]> {
    return this.list('/v1/catalog/nodes') as Promise<NodeView[]>;
  }

  private async list(path: string, query = ''): Promise<unknown[]> {
    const a = await this.call('GET', path, { query });
    if (!Array.isArray(a.data)) throw this.unexpected(`GET ${path}`, 'expected an array');
    return a.data;
  }

  /** One request; the answer's JSON (unvalidated: the agent is trusted, the shapes are its own). */
  async request(
    method: string,
    path: string,
    query?: URLSearchParams,
    timeoutMs = this.timeoutMs,
  ): Promise<unknown> {
    const qs = query && query.size > 0 ? `?${query}` : '';
    return (await this.call(method, path, { query: qs, timeoutMs })).data;
  }

  /** One request with a JSON body; the answer's JSON. */
  async send(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
    timeoutMs = this.timeoutMs,
  ): Promise<unknown> {
    const qs = query.size > 0 ? `?${query}` : '';
    const opts = { query: qs, timeoutMs, body: JSON.stringify(body), contentType: 'application/json' };
    return (await this.call(method, path, opts)).data;
  }

  private boolean(a: Answer, what: string): boolean {
    if (typeof a.data !== 'boolean') throw this.unexpected(what, 'expected true or false');
    return a.data;
  }

  private unexpected(what: string, expected: string): MeshError {
    return new MeshError('internal', `unexpected answer from ${this.baseUrl} to ${what}: ${expected}`);
  }

  private async call(method: string, path: string, opts: CallOptions = {}): Promise<Answer> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const url = `${this.baseUrl}${path}${opts.query ?? ''}`;
    const init: RequestInit = { method, signal: AbortSignal.timeout(timeoutMs) };
    if (opts.body !== undefined) {
      // A copy: fetch takes only ArrayBuffer-backed bytes, and a value is at most 512 KiB.
      init.body = typeof opts.body === 'string' ? opts.body : new Uint8Array(opts.body);
      init.headers = { 'content-type': opts.contentType ?? 'application/octet-stream' };
    }
    let res: Response;
    try {
      res = await fetch(url, init);
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
    if (res.ok) return { status: res.status, data };
    const error = parseErrorBody(data);
    // Only the agent's own "not found" counts as an answer; any other 404 stays an error.
    if (opts.accept?.includes(res.status) && error?.code === 'not_found') {
      return { status: res.status, data };
    }
    throw (
      error ??
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
