// A fake agent HTTP API for the replicated state routes (/v1/kv, /v1/config, /v1/raft), following
// the routes' contract: reads carry X-Mesh-Index, a missing key is a 404 JSON error, CAS failures
// answer false, a bad field is a 400 naming it, and `unavailable` makes every request a 503 (no
// leader). It records each request so tests can check what the client sent.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RaftPeerView, RaftStatusView } from '../../src/api/types.js';
import { KIND_NAMES } from '../../src/core/state/index.js';

interface Stored {
  value: Buffer;
  createIndex: number;
  modifyIndex: number;
}

interface StoredEntry {
  kind: string;
  name: string;
  spec: Record<string, unknown>;
  createIndex: number;
  modifyIndex: number;
}

export interface SeenRequest {
  method: string;
  /** Path and query exactly as sent (still percent-encoded). */
  url: string;
  contentType: string | undefined;
  body: Buffer;
}

const valueBytesMax = 512 * 1024;
const protocols = ['tcp', 'http', 'http2', 'grpc'];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const fakePeers: RaftPeerView[] = [
  {
    id: '12D3KooWB',
    name: 'web-2',
    address: '10.0.0.6:7400',
    role: 'voter',
    voter: true,
    matchIndex: 41,
    appliedIndex: 41,
    status: 'alive',
  },
  {
    id: '12D3KooWA',
    name: 'web-1',
    address: '10.0.0.5:7400',
    role: 'leader',
    voter: true,
    matchIndex: 42,
    appliedIndex: 42,
    status: 'alive',
  },
  {
    id: '12D3KooWC',
    name: 'db-1',
    address: '10.0.0.7:7400',
    role: 'learner',
    voter: false,
    matchIndex: 7,
    appliedIndex: -1,
    status: 'failed',
  },
];

export class FakeStateServer {
  readonly kv = new Map<string, Stored>();
  readonly config = new Map<string, StoredEntry>();
  readonly seen: SeenRequest[] = [];
  index = 10;
  /** When set, every request is answered 503 unavailable (no leader). */
  unavailable = false;
  leader = '12D3KooWA';
  private server: Server | undefined;
  addr = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.addr = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server?.close(() => r()) ?? r());
  }

  /** Write as a committed put would, for test setup. */
  put(key: string, value: string | Buffer): void {
    const old = this.kv.get(key);
    this.index++;
    this.kv.set(key, {
      value: Buffer.from(value),
      createIndex: old?.createIndex ?? this.index,
      modifyIndex: this.index,
    });
  }

  status(): RaftStatusView {
    return {
      id: '12D3KooWA',
      term: 3,
      role: this.leader === '12D3KooWA' ? 'leader' : 'follower',
      leader: this.leader,
      leaderName: fakePeers.find((p) => p.id === this.leader)?.name ?? '',
      commit: 42,
      applied: 42,
      lastIndex: 42,
      firstIndex: 1,
      conf: { voters: ['12D3KooWA', '12D3KooWB'], learners: ['12D3KooWC'] },
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    this.seen.push({ method, url, contentType: req.headers['content-type'], body });
    const u = new URL(url, 'http://fake');
    try {
      if (this.unavailable)
        throw new HttpError(503, 'unavailable', 'no raft leader: the cluster has no quorum');
      const answer = this.route(method, decodeURIComponent(u.pathname), u.searchParams, body);
      res.writeHead(answer.status ?? 200, {
        'content-type': 'application/json',
        'x-mesh-index': String(this.index),
      });
      res.end(`${JSON.stringify(answer.body)}\n`);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'internal', String(err));
      res.writeHead(e.status, { 'content-type': 'application/json', 'x-mesh-index': String(this.index) });
      res.end(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
    }
  }

  private route(
    method: string,
    path: string,
    q: URLSearchParams,
    body: Buffer,
  ): { status?: number; body: unknown } {
    const cas = q.has('cas') ? Number(q.get('cas')) : undefined;
    if (path.startsWith('/v1/kv/')) {
      const key = path.slice('/v1/kv/'.length);
      if (method === 'GET') {
        const view = (k: string, s: Stored) => ({
          key: k,
          value: s.value.toString('base64'),
          createIndex: s.createIndex,
          modifyIndex: s.modifyIndex,
        });
        const under = [...this.kv].filter(([k]) => k.startsWith(key)).sort(([a], [b]) => (a < b ? -1 : 1));
        if (q.has('keys')) return { body: under.map(([k]) => k) };
        if (q.has('recurse')) return { body: under.map(([k, s]) => view(k, s)) };
        const s = this.kv.get(key);
        if (!s) throw new HttpError(404, 'not_found', `key ${JSON.stringify(key)} not found`);
        return { body: [view(key, s)] };
      }
      if (method === 'PUT') {
        if (key === '' || key.startsWith('/'))
          throw new HttpError(400, 'bad_request', "key: must not be empty or start with '/'");
        if (body.length > valueBytesMax) throw new HttpError(413, 'payload_too_large', 'value: too large');
        const old = this.kv.get(key);
        if (cas !== undefined && (old?.modifyIndex ?? 0) !== cas) return { body: false };
        this.put(key, body);
        return { body: true };
      }
      if (method === 'DELETE') {
        if (q.has('recurse')) {
          for (const k of [...this.kv.keys()]) if (k.startsWith(key)) this.kv.delete(k);
          this.index++;
          return { body: true };
        }
        const old = this.kv.get(key);
        if (cas !== undefined && old !== undefined && old.modifyIndex !== cas) return { body: false };
        this.kv.delete(key);
        this.index++;
        return { body: true };
      }
    }
    if (path === '/v1/config' && method === 'PUT') return { body: { index: this.putConfig(body, cas) } };
    if (path === '/v1/config' || path.startsWith('/v1/config/')) {
      const [kind, name] = path.slice('/v1/config/'.length).split('/');
      const all = [...this.config.values()].sort((a, b) =>
        a.kind !== b.kind ? (a.kind < b.kind ? -1 : 1) : a.name < b.name ? -1 : 1,
      );
      if (method === 'GET' && name !== undefined) {
        const e = this.config.get(`${kind}/${name}`);
        if (!e) throw new HttpError(404, 'not_found', `config entry ${kind}/${name} not found`);
        return { body: e };
      }
      if (method === 'GET') return { body: kind ? all.filter((e) => e.kind === kind) : all };
      if (method === 'DELETE' && name !== undefined) {
        this.config.delete(`${kind}/${name}`);
        this.index++;
        return { body: true };
      }
    }
    if (path === '/v1/raft/peers' && method === 'GET') return { body: fakePeers };
    if (path === '/v1/raft/status' && method === 'GET') return { body: this.status() };
    if (path === '/v1/raft/transfer-leader' && method === 'POST') {
      const to = q.get('to');
      const target =
        to === null
          ? fakePeers.find((p) => p.voter && p.id !== this.leader)
          : fakePeers.find((p) => p.name === to || p.id === to);
      if (!target?.voter)
        throw new HttpError(400, 'bad_request', `"${to}" is not a raft voter (see mesh raft peers)`);
      this.leader = target.id;
      return { body: { leader: target.id } };
    }
    throw new HttpError(404, 'not_found', `no such endpoint: ${method} ${path}`);
  }

  private putConfig(body: Buffer, cas: number | undefined): number {
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new HttpError(
        400,
        'bad_request',
        `the body must be a JSON config entry: ${(err as Error).message}`,
      );
    }
    const { kind, name, ...spec } = doc as Record<string, unknown>;
    if (kind !== 'service-defaults' && kind !== 'proxy-defaults') {
      throw new HttpError(
        400,
        'bad_request',
        `kind: unknown kind ${JSON.stringify(kind)}; known kinds: ${KIND_NAMES.join(', ')}`,
      );
    }
    if (typeof name !== 'string') throw new HttpError(400, 'bad_request', 'name: must be a string');
    if (spec.protocol !== undefined && !protocols.includes(spec.protocol as string)) {
      throw new HttpError(400, 'bad_request', `protocol: must be one of ${protocols.join(', ')}`);
    }
    const old = this.config.get(`${kind}/${name}`);
    if (cas !== undefined && (old?.modifyIndex ?? 0) !== cas) {
      throw new HttpError(
        400,
        'bad_request',
        `check-and-set failed: ${kind}/${name} changed since index ${cas}`,
      );
    }
    this.index++;
    this.config.set(`${kind}/${name}`, {
      kind,
      name,
      spec,
      createIndex: old?.createIndex ?? this.index,
      modifyIndex: this.index,
    });
    return this.index;
  }
}
