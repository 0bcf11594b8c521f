// /v1/agent/*: this agent and its view of the cluster.

import { validateJoinAddress } from '../config/host-port.js';
import type { MemberStatus } from '../core/membership/types.js';
import type { Reply, RequestContext, Route } from './router.js';
import { MeshError } from './types.js';

const memberStatuses: readonly MemberStatus[] = ['alive', 'suspect', 'failed', 'left'];
/** A join names a handful of seeds; hundreds is a mistake or abuse. */
const joinAddressesMax = 64;

function members(ctx: RequestContext): Reply {
  const wanted = ctx.query.getAll('status');
  if (wanted.length > 1) throw new MeshError('bad_request', 'give "status" at most once');
  const status = wanted[0];
  if (status !== undefined && !(memberStatuses as readonly string[]).includes(status)) {
    throw new MeshError(
      'bad_request',
      `"status" must be one of ${memberStatuses.join(', ')}, got ${JSON.stringify(status.slice(0, 100))}`,
    );
  }
  const list = ctx.agent.members();
  return { body: status === undefined ? list : list.filter((m) => m.status === status) };
}

async function join(ctx: RequestContext): Promise<Reply> {
  const addresses = ctx.query.getAll('address');
  if (addresses.length === 0) {
    throw new MeshError('bad_request', 'give at least one "address" to join, e.g. ?address=10.0.0.1:7400');
  }
  if (addresses.length > joinAddressesMax) {
    throw new MeshError('bad_request', `give at most ${joinAddressesMax} addresses`);
  }
  for (const a of addresses) validateJoinAddress(a, '"address"');
  return { body: await ctx.agent.join(addresses, ctx.signal) };
}

function leave(ctx: RequestContext): Reply {
  return {
    body: { leaving: true },
    afterSend: async () => {
      await ctx.agent.leave();
      ctx.onLeave?.();
    },
  };
}

export const agentRoutes: readonly Route[] = [
  { method: 'GET', path: '/v1/agent/self', handler: (ctx) => ({ body: ctx.agent.self() }) },
  { method: 'GET', path: '/v1/agent/members', query: ['status'], handler: members },
  { method: 'PUT', path: '/v1/agent/join', query: ['address'], handler: join },
  { method: 'PUT', path: '/v1/agent/leave', handler: leave },
];
