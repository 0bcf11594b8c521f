// /v1/agent/service*, /v1/agent/check*, /v1/agent/reload: the services registered on this agent.
// /v1/catalog/*, /v1/health/*: every agent's services, answered from this agent's memory (the
// catalog spreads by gossip); blocking queries (`?index=&wait=`) wake on the next change.

import type { LocalServices } from '../catalog/local.js';
import type { CatalogQuery } from '../catalog/query.js';
import type { CatalogService } from '../catalog/service.js';
import type { CheckStatus } from '../core/catalog/types.js';
import { BLOCKING_QUERY, blockingParams, flag, indexHeader } from './query-params.js';
import type { Reply, RequestContext, Route } from './router.js';
import { MeshError } from './types.js';

export interface CatalogRoutesInit {
  catalog: CatalogService;
  query: CatalogQuery;
  local: LocalServices;
}

/** TTL notes are kept like check output: 4 KiB. */
const NOTE_LENGTH_MAX = 4096;

function jsonBody(ctx: RequestContext, what: string): unknown {
  const text = ctx.body.toString('utf8');
  if (text.trim() === '') throw new MeshError('bad_request', `the body must be a JSON ${what}`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MeshError('bad_request', `the body must be a JSON ${what}: ${(err as Error).message}`);
  }
}

function serviceName(ctx: RequestContext): string {
  const name = ctx.rest;
  if (name === '' || name.includes('/'))
    throw new MeshError('bad_request', 'give a service name: /v1/catalog/service/<name>');
  return name;
}

function oneTag(ctx: RequestContext): string | undefined {
  const tags = ctx.query.getAll('tag');
  if (tags.length > 1) throw new MeshError('bad_request', 'give "tag" at most once');
  return tags[0];
}

export function catalogRoutes(init: CatalogRoutesInit): Route[] {
  const { catalog, query, local } = init;

  async function blocking(ctx: RequestContext, indexOf: () => number): Promise<Record<string, string>> {
    const { minIndex, waitMs } = blockingParams(ctx);
    if (minIndex !== undefined) await catalog.watch(indexOf, minIndex, waitMs, ctx.signal);
    return indexHeader(indexOf());
  }

  /** A TTL report route: `verb` is the path word (pass, warn, fail). */
  function ttl(verb: string, status: CheckStatus): Route {
    return {
      method: 'PUT',
      path: `/v1/agent/check/${verb}/*`,
      query: ['note'],
      handler: (ctx) => {
        const note = ctx.query.get('note') ?? '';
        if (note.length > NOTE_LENGTH_MAX)
          throw new MeshError('bad_request', `"note" is longer than ${NOTE_LENGTH_MAX} characters`);
        if (ctx.rest === '')
          throw new MeshError('bad_request', `give a check id: /v1/agent/check/${verb}/<id>`);
        return { body: local.report(ctx.rest, status, note) };
      },
    };
  }

  /** A whole-catalog read that blocks on the catalog's index. */
  function catalogList(path: string, body: () => unknown): Route {
    return {
      method: 'GET',
      path,
      query: BLOCKING_QUERY,
      handler: async (ctx) => {
        const headers = await blocking(ctx, () => query.index());
        return { body: body(), headers };
      },
    };
  }

  const instancesOf =
    (healthRoute: boolean) =>
    async (ctx: RequestContext): Promise<Reply> => {
      const name = serviceName(ctx);
      const headers = await blocking(ctx, () => query.serviceIndex(name));
      const tag = oneTag(ctx);
      const body = healthRoute
        ? query.instances(name, { passingOnly: flag(ctx, 'passing'), healthy: flag(ctx, 'healthy'), tag })
        : query.instances(name, { tag });
      return { body, headers };
    };

  return [
    { method: 'GET', path: '/v1/agent/services', handler: () => ({ body: query.localServices() }) },
    { method: 'GET', path: '/v1/agent/checks', handler: () => ({ body: query.localChecks() }) },
    {
      method: 'PUT',
      path: '/v1/agent/service/register',
      handler: async (ctx) => {
        const def = await local.register(jsonBody(ctx, 'service definition'));
        return { body: { id: def.id, name: def.name } };
      },
    },
    {
      method: 'PUT',
      path: '/v1/agent/service/deregister/*',
      handler: async (ctx) => {
        if (ctx.rest === '')
          throw new MeshError('bad_request', 'give a service id: /v1/agent/service/deregister/<id>');
        await local.deregister(ctx.rest);
        return { body: { deregistered: ctx.rest } };
      },
    },
    ttl('pass', 'passing'),
    ttl('warn', 'warning'),
    ttl('fail', 'critical'),
    { method: 'PUT', path: '/v1/agent/reload', handler: async () => ({ body: await local.reload() }) },
    catalogList('/v1/catalog/services', () => query.services()),
    {
      method: 'GET',
      path: '/v1/catalog/service/*',
      query: [...BLOCKING_QUERY, 'tag'],
      handler: instancesOf(false),
    },
    {
      method: 'GET',
      path: '/v1/health/service/*',
      query: [...BLOCKING_QUERY, 'tag', 'passing', 'healthy'],
      handler: instancesOf(true),
    },
    catalogList('/v1/catalog/nodes', () => query.nodes()),
  ];
}
