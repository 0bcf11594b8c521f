// The data plane's API: the cluster CA (/v1/ca/*), intentions (/v1/intentions*), discovery chains
// (/v1/discovery-chain/<service>), the proxy's state (/v1/agent/proxy) and metrics
// (/v1/agent/metrics, JSON or Prometheus text).
//
// Intentions are service-intentions config entries (one per destination); the routes here edit
// one source rule inside an entry with check-and-set, retried when another write raced us.

import type { DataPlane } from '../agent/data-plane.js';
import { decideIntention, listIntentions } from '../core/routing/intentions.js';
import type { CaRootsSpec } from '../core/state/kinds/ca-roots.js';
import { ANY_SERVICE } from '../core/state/kinds/service-intentions.js';
import { serviceNameProblem } from '../core/state/kinds/spec-fields.js';
import type { ControlPlane } from '../raft/control-plane.js';
import type { Reply, RequestContext, Route } from './router.js';
import { checked, writeOutcome } from './routes-state.js';
import { type AgentApi, MeshError } from './types.js';

/** Check-and-set attempts for one intention edit before giving up (each re-reads the entry). */
const CAS_ATTEMPTS_MAX = 5;
const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface SourceRule {
  name: string;
  action?: 'allow' | 'deny';
  permissions?: unknown[];
  description?: string;
}

function need(ctx: RequestContext, key: string): string {
  const all = ctx.query.getAll(key);
  if (all.length !== 1 || all[0] === '')
    throw new MeshError('bad_request', `give "${key}" once, e.g. ?source=web&destination=api`);
  return all[0] as string;
}

/**
 * A service named by a query parameter, checked here so the error names the parameter (not the
 * entry field it becomes) and a name no service can have is refused by check and delete too,
 * instead of answering for, or deleting, a rule that cannot exist. `*` (every service) is for
 * rules: a call, which check decides, comes from one service to one service.
 */
function serviceParam(ctx: RequestContext, key: string, wildcard: boolean): string {
  const name = need(ctx, key);
  if (name === ANY_SERVICE) {
    if (wildcard) return name;
    throw new MeshError('bad_request', `"${key}" must name one service: a call is not made by or to "*"`);
  }
  const problem = serviceNameProblem(name);
  if (problem !== undefined)
    throw new MeshError('bad_request', `"${key}" ${problem}${wildcard ? ' (or "*")' : ''}`);
  return name;
}

/** What a PUT or DELETE of one intention did; `was` is the action of the rule it replaced. */
interface IntentionEdit {
  index: number;
  change: 'created' | 'updated' | 'unchanged' | 'deleted';
  was?: string;
}

const sameRule = (a: SourceRule, b: SourceRule): boolean =>
  a.action === b.action && a.permissions === undefined && (a.description ?? '') === (b.description ?? '');

function rootsView(r: CaRootsSpec | undefined) {
  if (!r) return { trustDomain: '', activeRootId: '', roots: [] };
  return {
    trustDomain: r.trustDomain,
    activeRootId: r.activeRootId,
    roots: r.roots.map((x) => ({
      id: x.id,
      active: x.id === r.activeRootId,
      notAfter: new Date(x.notAfterMs).toISOString(),
      crossSigned: x.crossSignedPem !== undefined,
      rotatedOutAt: x.rotatedOutAtMs === undefined ? null : new Date(x.rotatedOutAtMs).toISOString(),
      certPem: x.certPem,
    })),
  };
}

/** Agent counters as Prometheus gauges (mesh_agent_*), next to the proxy's own metrics. */
function agentGauges(agent: AgentApi): string {
  const self = agent.self();
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
  };
  // One family with a status label: as separate names, `members_failed` collided with the
  // `membersFailed` counter below, and Prometheus refuses a scrape that repeats a metric name.
  lines.push(
    '# HELP mesh_agent_members members this agent sees, by status',
    '# TYPE mesh_agent_members gauge',
  );
  for (const [status, n] of Object.entries(self.members))
    lines.push(`mesh_agent_members{status="${status}"} ${n}`);
  for (const [k, v] of Object.entries(self.stats)) {
    if (typeof v !== 'number') continue;
    const name = `mesh_agent_${k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()}`;
    gauge(name, `agent counter ${k}`, v);
  }
  gauge('mesh_agent_memory_rss_bytes', 'resident set size of the agent process', self.memory.rss ?? 0);
  return `${lines.join('\n')}\n`;
}

export function meshRoutes(dp: DataPlane, cp: ControlPlane): Route[] {
  const sm = () => cp.raft.state;

  async function editIntention(
    source: string,
    destination: string,
    rule: SourceRule | undefined,
  ): Promise<IntentionEdit> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
      const entry = sm().configGet('service-intentions', destination);
      const all = (entry?.spec as { sources?: SourceRule[] } | undefined)?.sources ?? [];
      const old = all.find((s) => s.name === source);
      // `mesh intention allow|deny` would silently drop an L7 rule's permissions: as Consul's CLI,
      // refuse, and leave it to the entry (delete stays possible).
      if (rule !== undefined && all.some((s) => s.name === source && s.permissions !== undefined)) {
        throw new MeshError(
          'conflict',
          `the intention ${source} → ${destination} has L7 permissions: edit them in the service-intentions entry (mesh config get service-intentions ${destination}, then mesh config put), or delete the intention first`,
        );
      }
      // Nothing to do: say so rather than write (a delete of no rule, an allow that is in place).
      if (entry !== undefined && old !== undefined && rule !== undefined && sameRule(old, rule))
        return { index: entry.modifyIndex, change: 'unchanged', ...(old.action ? { was: old.action } : {}) };
      if (old === undefined && rule === undefined) return { index: sm().appliedIndex, change: 'unchanged' };
      const prev = all.filter((s) => s.name !== source);
      const sources = rule ? [...prev, rule] : prev;
      const cas = entry?.modifyIndex ?? 0;
      const cmd =
        sources.length === 0
          ? checked({ op: 'config-delete', kind: 'service-intentions', name: destination, cas })
          : checked(
              { op: 'config-set', kind: 'service-intentions', name: destination, spec: { sources }, cas },
              entry?.spec,
            );
      const r = await cp.write(cmd);
      if (writeOutcome(r)) {
        const change = rule === undefined ? 'deleted' : old === undefined ? 'created' : 'updated';
        return { index: r.index, change, ...(old?.action ? { was: old.action } : {}) };
      }
      // Someone changed the entry meanwhile: catch up with the leader and edit again.
      await cp.consistent();
    }
    throw new MeshError('conflict', `intentions for ${destination} kept changing; retry`);
  }

  async function putIntention(ctx: RequestContext): Promise<Reply> {
    const source = serviceParam(ctx, 'source', true);
    const destination = serviceParam(ctx, 'destination', true);
    let body: { action?: unknown; description?: unknown };
    try {
      body = JSON.parse(ctx.body.toString('utf8') || '{}') as typeof body;
    } catch (err) {
      throw new MeshError(
        'bad_request',
        `the body must be JSON {"action": "allow"|"deny"}: ${(err as Error).message}`,
      );
    }
    if (body.action !== 'allow' && body.action !== 'deny') {
      throw new MeshError('bad_request', 'action: must be "allow" or "deny"');
    }
    if (body.description !== undefined && typeof body.description !== 'string') {
      throw new MeshError('bad_request', 'description: must be a string');
    }
    const rule: SourceRule = {
      name: source,
      action: body.action,
      ...(body.description ? { description: body.description } : {}),
    };
    return { body: await editIntention(source, destination, rule) };
  }

  async function deleteIntention(ctx: RequestContext): Promise<Reply> {
    const source = serviceParam(ctx, 'source', true);
    const destination = serviceParam(ctx, 'destination', true);
    return { body: await editIntention(source, destination, undefined) };
  }

  function checkIntention(ctx: RequestContext): Reply {
    const source = serviceParam(ctx, 'source', false);
    const destination = serviceParam(ctx, 'destination', false);
    const d = decideIntention((kind, name) => sm().configGet(kind, name)?.spec, source, destination);
    return { body: { allowed: d.action === 'allow', reason: d.reason } };
  }

  function chain(ctx: RequestContext): Reply {
    const service = ctx.rest;
    const problem = serviceNameProblem(service);
    if (problem !== undefined)
      throw new MeshError('bad_request', `give /v1/discovery-chain/<service>, where <service> ${problem}`);
    return { body: dp.discoveryChain(service) };
  }

  async function metrics(ctx: RequestContext): Promise<Reply> {
    const format = ctx.query.get('format');
    if (format !== null && format !== 'prometheus') {
      throw new MeshError('bad_request', '"format" must be "prometheus" (or left out for JSON)');
    }
    if (format === 'prometheus') {
      const text = agentGauges(ctx.agent) + (await dp.proxy.metrics());
      return { raw: Buffer.from(text), body: undefined, headers: { 'content-type': PROMETHEUS_TYPE } };
    }
    return { body: { agent: ctx.agent.self().stats, ca: dp.ca.counters, leaves: dp.leaves.counters } };
  }

  return [
    { method: 'GET', path: '/v1/ca/roots', handler: () => ({ body: rootsView(dp.ca.roots()) }) },
    {
      method: 'POST',
      path: '/v1/ca/rotate',
      handler: async () => ({ body: { activeRootId: await dp.ca.rotate() } }),
    },
    {
      method: 'GET',
      path: '/v1/intentions',
      handler: () => ({ body: listIntentions(sm().configList('service-intentions')) }),
    },
    {
      method: 'GET',
      path: '/v1/intentions/check',
      query: ['source', 'destination'],
      handler: checkIntention,
    },
    { method: 'PUT', path: '/v1/intentions/exact', query: ['source', 'destination'], handler: putIntention },
    {
      method: 'DELETE',
      path: '/v1/intentions/exact',
      query: ['source', 'destination'],
      handler: deleteIntention,
    },
    { method: 'GET', path: '/v1/discovery-chain/*', handler: chain },
    { method: 'GET', path: '/v1/agent/proxy', handler: async () => ({ body: await dp.proxy.status() }) },
    { method: 'GET', path: '/v1/agent/metrics', query: ['format'], handler: metrics },
  ];
}
