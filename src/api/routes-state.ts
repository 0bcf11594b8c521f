// /v1/kv/*, /v1/config/*, /v1/raft/*: the replicated configuration. Reads are answered from this
// agent's copy and carry X-Mesh-Index (the Raft index they reflect); `?consistent` reads go through
// the leader (ReadIndex); `?index=N&wait=D` blocks until the data changes past N (like Consul).
// Writes go through Raft, forwarded to the leader when this agent is not the leader.
import {
  checkKind,
  formatValidationError,
  isValidationError,
  kindModule,
  splitEntryFile,
  validateCommand,
  writeCheck,
} from '../core/state/index.js';
import type { ApplyResult, Command, ConfigEntry, KvEntry } from '../core/state/types.js';
import type { ControlPlane } from '../raft/control-plane.js';
import { BLOCKING_QUERY, blockingParams, flag, indexHeader, nonNegInt } from './query-params.js';
import type { Reply, RequestContext, Route } from './router.js';
import { MeshError } from './types.js';

const READ_QUERY = ['consistent', ...BLOCKING_QUERY] as const;

/** Consistency and blocking for a read. */
async function readPoint(cp: ControlPlane, ctx: RequestContext, indexOf: () => number): Promise<void> {
  const { minIndex, waitMs } = blockingParams(ctx);
  if (minIndex !== undefined) await cp.watch(indexOf, minIndex, waitMs, ctx.signal);
  if (flag(ctx, 'consistent')) await cp.consistent();
}

function kvView(e: KvEntry) {
  return {
    key: e.key,
    value: Buffer.from(e.value).toString('base64'),
    createIndex: e.createIndex,
    modifyIndex: e.modifyIndex,
  };
}

function configView(e: ConfigEntry) {
  return { kind: e.kind, name: e.name, spec: e.spec, createIndex: e.createIndex, modifyIndex: e.modifyIndex };
}

/**
 * Validate at the edge (400 naming the field) before anything is proposed, with the rules that
 * apply only to new writes (write-checks.ts) on top of those every agent applies. `previous`: the
 * spec of the entry the command replaces, whose patterns are in force already.
 */
export function checked(cmd: unknown, previous?: unknown): Command {
  const c = validateCommand(cmd);
  if (isValidationError(c)) throw new MeshError('bad_request', formatValidationError(c));
  const bad = writeCheck(c, previous);
  if (bad) throw new MeshError('bad_request', formatValidationError(bad));
  return c;
}

export function writeOutcome(r: ApplyResult): boolean {
  if (r.ok) return true;
  if (r.code === 'cas-failed') return false;
  if (r.code === 'not-found') throw new MeshError('not_found', r.message);
  throw new MeshError('bad_request', r.message);
}

/**
 * Why a check-and-set write of an entry was refused, from what is stored now: `cas=0` (Consul's
 * "create only") met an entry that exists, or the entry was modified after, or deleted since, the
 * index the writer read.
 */
export function casFailed(what: string, cas: number, now: ConfigEntry | undefined): MeshError {
  const why =
    cas === 0
      ? `${what} exists already${now ? ` (modify index ${now.modifyIndex})` : ''}, and a cas of 0 writes only a new entry`
      : now === undefined
        ? `${what} does not exist (any more), so it cannot be at modify index ${cas}`
        : `${what} was modified at index ${now.modifyIndex}, after the index ${cas} the write expected (read it again)`;
  return new MeshError('bad_request', `check-and-set failed, nothing was written: ${why}`);
}

export function stateRoutes(cp: ControlPlane): Route[] {
  const sm = () => cp.raft.state;

  async function kvGet(ctx: RequestContext): Promise<Reply> {
    const key = ctx.rest;
    const recurse = flag(ctx, 'recurse');
    const keysOnly = flag(ctx, 'keys');
    const indexOf = () => (recurse || keysOnly ? sm().kvIndex(key) : sm().kvKeyIndex(key));
    await readPoint(cp, ctx, indexOf);
    const headers = indexHeader(indexOf());
    if (keysOnly) return { body: sm().kvKeyList(key), headers };
    if (recurse) return { body: sm().kvList(key).map(kvView), headers };
    if (key === '') throw new MeshError('bad_request', 'give a key: /v1/kv/<key>, or ?recurse to list');
    const e = sm().kvGet(key);
    if (!e)
      return {
        status: 404,
        body: { error: { code: 'not_found', message: `key "${key}" not found` } },
        headers,
      };
    if (flag(ctx, 'raw')) return { raw: e.value, body: undefined, headers };
    return { body: [kvView(e)], headers };
  }

  async function kvPut(ctx: RequestContext): Promise<Reply> {
    const cas = nonNegInt(ctx, 'cas');
    const cmd = checked({
      op: 'kv-set',
      key: ctx.rest,
      value: new Uint8Array(ctx.body),
      ...(cas !== undefined ? { cas } : {}),
    });
    return { body: writeOutcome(await cp.write(cmd)) };
  }

  async function kvDelete(ctx: RequestContext): Promise<Reply> {
    const cas = nonNegInt(ctx, 'cas');
    const cmd = flag(ctx, 'recurse')
      ? checked({ op: 'kv-delete-tree', prefix: ctx.rest })
      : checked({ op: 'kv-delete', key: ctx.rest, ...(cas !== undefined ? { cas } : {}) });
    const r = await cp.write(cmd);
    if (!r.ok && r.code === 'not-found') return { body: true };
    return { body: writeOutcome(r) };
  }

  function kindName(rest: string): { kind: string | undefined; name: string | undefined } {
    const parts = rest.split('/').filter((p) => p !== '');
    if (parts.length > 2)
      throw new MeshError('bad_request', 'config paths are /v1/config/<kind> or /v1/config/<kind>/<name>');
    return { kind: parts[0], name: parts[1] };
  }

  async function configGet(ctx: RequestContext): Promise<Reply> {
    const { kind, name } = kindName(ctx.rest);
    // A misspelt kind has no entries: say so, rather than answer an empty list or "not found".
    const badKind = kind === undefined ? undefined : checkKind(kind);
    if (badKind) throw new MeshError('bad_request', formatValidationError(badKind));
    const indexOf = () => sm().configIndex(kind, name);
    await readPoint(cp, ctx, indexOf);
    const headers = indexHeader(indexOf());
    if (kind !== undefined && name !== undefined) {
      const e = sm().configGet(kind, name);
      if (!e)
        return {
          status: 404,
          body: { error: { code: 'not_found', message: `config entry ${kind}/${name} not found` } },
          headers,
        };
      return { body: configView(e), headers };
    }
    return { body: sm().configList(kind).map(configView), headers };
  }

  /** Kinds the agents write themselves (ca-roots) are read-only through the config API. */
  function refuseManaged(kind: string): void {
    if (kindModule(kind)?.managed) {
      throw new MeshError(
        'bad_request',
        `${kind} entries are managed by the agents and cannot be written directly (see \`mesh ca\`)`,
      );
    }
  }

  async function configPut(ctx: RequestContext): Promise<Reply> {
    let doc: unknown;
    try {
      doc = JSON.parse(ctx.body.toString('utf8'));
    } catch (err) {
      throw new MeshError('bad_request', `the body must be a JSON config entry: ${(err as Error).message}`);
    }
    const { kind, name } = kindName(ctx.rest);
    // A managed kind is refused before its fields are read: an operator writing ca-roots needs to
    // learn that the agents write it, not which of its fields was wrong.
    if (kind !== undefined) refuseManaged(kind);
    const docKind = (doc as { kind?: unknown } | null)?.kind;
    if (typeof docKind === 'string') refuseManaged(docKind);
    if (kind !== undefined && doc && typeof doc === 'object' && !Array.isArray(doc)) {
      doc = { kind, ...(name !== undefined ? { name } : {}), ...(doc as object) };
    }
    const entry = splitEntryFile(doc);
    if ('field' in entry) throw new MeshError('bad_request', formatValidationError(entry));
    if ((kind !== undefined && entry.kind !== kind) || (name !== undefined && entry.name !== name)) {
      throw new MeshError('bad_request', "the entry's kind and name must match the path");
    }
    const cas = nonNegInt(ctx, 'cas');
    const cmd = checked(
      {
        op: 'config-set',
        kind: entry.kind,
        name: entry.name,
        spec: entry.spec,
        ...(cas !== undefined ? { cas } : {}),
      },
      sm().configGet(entry.kind, entry.name)?.spec,
    );
    const r = await cp.write(cmd);
    if (!writeOutcome(r))
      throw casFailed(`${entry.kind}/${entry.name}`, cas ?? 0, sm().configGet(entry.kind, entry.name));
    return { body: { index: r.index } };
  }

  async function configDelete(ctx: RequestContext): Promise<Reply> {
    const { kind, name } = kindName(ctx.rest);
    if (kind === undefined || name === undefined)
      throw new MeshError('bad_request', 'give /v1/config/<kind>/<name>');
    refuseManaged(kind);
    const cas = nonNegInt(ctx, 'cas');
    const r = await cp.write(
      checked({ op: 'config-delete', kind, name, ...(cas !== undefined ? { cas } : {}) }),
    );
    if (!r.ok && r.code === 'not-found') return { body: true };
    return { body: writeOutcome(r) };
  }

  async function transfer(ctx: RequestContext): Promise<Reply> {
    const to = ctx.query.get('to') ?? undefined;
    let target: string | undefined;
    if (to !== undefined) {
      const peer = cp.peers().find((p) => p.name === to || p.id === to);
      if (!peer) throw new MeshError('bad_request', `"${to}" is not a raft voter (see mesh raft peers)`);
      target = peer.id;
    }
    return { body: { leader: await cp.transferLeader(target) } };
  }

  return [
    { method: 'GET', path: '/v1/kv/*', query: [...READ_QUERY, 'recurse', 'keys', 'raw'], handler: kvGet },
    { method: 'PUT', path: '/v1/kv/*', query: ['cas'], handler: kvPut },
    { method: 'DELETE', path: '/v1/kv/*', query: ['cas', 'recurse'], handler: kvDelete },
    { method: 'GET', path: '/v1/config', query: READ_QUERY, handler: configGet },
    { method: 'PUT', path: '/v1/config', query: ['cas'], handler: configPut },
    { method: 'GET', path: '/v1/config/*', query: READ_QUERY, handler: configGet },
    { method: 'PUT', path: '/v1/config/*', query: ['cas'], handler: configPut },
    { method: 'DELETE', path: '/v1/config/*', query: ['cas'], handler: configDelete },
    { method: 'GET', path: '/v1/raft/peers', handler: () => ({ body: cp.peers() }) },
    { method: 'GET', path: '/v1/raft/status', handler: () => ({ body: cp.status() }) },
    { method: 'GET', path: '/v1/raft/applied', handler: () => ({ body: cp.appliedAll() }) },
    { method: 'POST', path: '/v1/raft/transfer-leader', query: ['to'], handler: transfer },
  ];
}
