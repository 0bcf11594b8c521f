// The Raft client protocol (/mesh/raft-client/1.0.0): how any agent reaches the leader. A write or
// a consistent read on a non-leader is forwarded here; membership changes (a voter leaving) and
// leader transfers too. Request/response over the shared stream transport, matched by id, every
// call bounded by a timeout and the number in flight.
import type { Logger } from 'pino';
import type { Host } from '../agent/host.js';
import { isMeshErrorCode } from '../api/errors.js';
import { MeshError, type MeshErrorCode } from '../api/types.js';
import type { CaRequest } from '../ca/manager.js';
import type { ConfChange } from '../core/raft/types.js';
import { DecodeError, decode } from '../wire/codec.js';
import { StreamTransport } from '../wire/stream-transport.js';

export const RAFT_CLIENT_PROTOCOL = '/mesh/raft-client/1.0.0';

export type ClientRequest =
  | { op: 'propose'; cmd: unknown }
  | { op: 'read-index' }
  | { op: 'conf'; cc: ConfChange }
  | { op: 'transfer'; to: string }
  /** Committed entries from `from` (a replica repairing a gap), or the snapshot if compacted. */
  | { op: 'fetch'; from: number }
  /** Does the answering agent hold Raft state (is a cluster already bootstrapped)? */
  | { op: 'has-state' }
  /** The cluster CA (src/ca/manager.ts): a key for a voter, a leaf signature, a rotation. */
  | CaRequest;

export function isCaRequest(r: ClientRequest): r is CaRequest {
  return r.op === 'ca-key' || r.op === 'ca-sign' || r.op === 'ca-rotate';
}

const HEX64 = /^[0-9a-f]{64}$/;
/** A CSR is ~500 bytes of PEM; the signer checks it again (X509_LIMITS). */
const CSR_PEM_MAX = 8 * 1024;

type Wire =
  | { t: 'req'; id: number; req: ClientRequest }
  | { t: 'res'; id: number; ok: true; value: unknown }
  | { t: 'res'; id: number; ok: false; code: MeshErrorCode; message: string };

export type ClientHandler = (req: ClientRequest, from: string) => Promise<unknown>;

const IN_FLIGHT_MAX = 10_000;

export class RaftClient {
  private readonly transport: StreamTransport;
  private seq = 0;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  malformed = 0;

  constructor(
    host: Host,
    private readonly handler: ClientHandler,
    private readonly log: Logger,
  ) {
    this.transport = new StreamTransport(
      RAFT_CLIENT_PROTOCOL,
      host,
      (from, frame) => this.onFrame(from, frame),
      log,
      {
        frameBytesMax: 8 * 1024 * 1024,
        queuedPerPeerMax: 4096,
        openTimeoutMs: 2_000,
        streamsMax: 256,
      },
    );
  }

  start(): Promise<void> {
    return this.transport.start();
  }

  async stop(): Promise<void> {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new MeshError('unavailable', 'the agent is stopping'));
    }
    this.pending.clear();
    await this.transport.stop();
  }

  /** Send `req` to agent `to` (at `address`) and wait for its answer. */
  call(to: string, address: string, req: ClientRequest, timeoutMs: number): Promise<unknown> {
    if (this.pending.size >= IN_FLIGHT_MAX) {
      return Promise.reject(new MeshError('unavailable', 'too many requests to the leader in flight; retry'));
    }
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MeshError('unavailable', `the leader did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.transport.send(to, address, { t: 'req', id, req } satisfies Wire);
    });
  }

  private onFrame(from: string, frame: Uint8Array): void {
    const v = decode(frame);
    const w = v instanceof DecodeError ? undefined : parseWire(v);
    if (!w) {
      this.malformed++;
      this.log.warn({ from }, 'malformed raft client message dropped');
      return;
    }
    if (w.t === 'res') {
      const p = this.pending.get(w.id);
      if (!p) return;
      this.pending.delete(w.id);
      clearTimeout(p.timer);
      if (w.ok) p.resolve(w.value);
      else p.reject(new MeshError(w.code, w.message));
      return;
    }
    this.handler(w.req, from).then(
      (value) => this.transport.send(from, '', { t: 'res', id: w.id, ok: true, value } satisfies Wire),
      (err: Error) => {
        const code: MeshErrorCode = err instanceof MeshError ? err.code : 'internal';
        this.transport.send(from, '', {
          t: 'res',
          id: w.id,
          ok: false,
          code,
          message: err.message,
        } satisfies Wire);
      },
    );
  }
}

function parseWire(v: unknown): Wire | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'number' || !Number.isSafeInteger(o.id)) return undefined;
  if (o.t === 'res') {
    if (o.ok === true) return { t: 'res', id: o.id, ok: true, value: o.value };
    if (o.ok === false && isMeshErrorCode(o.code) && typeof o.message === 'string') {
      return { t: 'res', id: o.id, ok: false, code: o.code, message: o.message.slice(0, 1000) };
    }
    return undefined;
  }
  if (o.t !== 'req' || typeof o.req !== 'object' || o.req === null) return undefined;
  const r = o.req as Record<string, unknown>;
  switch (r.op) {
    case 'propose':
      return { t: 'req', id: o.id, req: { op: 'propose', cmd: r.cmd } };
    case 'read-index':
      return { t: 'req', id: o.id, req: { op: 'read-index' } };
    case 'has-state':
      return { t: 'req', id: o.id, req: { op: 'has-state' } };
    case 'ca-key':
      return typeof r.rootId === 'string' && HEX64.test(r.rootId)
        ? { t: 'req', id: o.id, req: { op: 'ca-key', rootId: r.rootId } }
        : undefined;
    case 'ca-sign':
      return typeof r.service === 'string' &&
        r.service.length <= 64 &&
        typeof r.csrPem === 'string' &&
        r.csrPem.length <= CSR_PEM_MAX
        ? { t: 'req', id: o.id, req: { op: 'ca-sign', service: r.service, csrPem: r.csrPem } }
        : undefined;
    case 'ca-rotate':
      return { t: 'req', id: o.id, req: { op: 'ca-rotate' } };
    case 'fetch':
      return typeof r.from === 'number' && Number.isSafeInteger(r.from) && r.from > 0
        ? { t: 'req', id: o.id, req: { op: 'fetch', from: r.from } }
        : undefined;
    case 'transfer':
      return typeof r.to === 'string' && r.to.length <= 128
        ? { t: 'req', id: o.id, req: { op: 'transfer', to: r.to } }
        : undefined;
    case 'conf': {
      const cc = r.cc as Record<string, unknown> | null;
      if (!cc || typeof cc.node !== 'string' || cc.node.length > 128) return undefined;
      if (cc.op !== 'add-learner' && cc.op !== 'promote' && cc.op !== 'remove') return undefined;
      return { t: 'req', id: o.id, req: { op: 'conf', cc: { op: cc.op, node: cc.node } } };
    }
    default:
      return undefined;
  }
}
