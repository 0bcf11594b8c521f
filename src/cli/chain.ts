// `mesh config chain SERVICE`: the discovery chain of a service as an agent's proxy compiles it,
// read back as text: the routes in the order they are tried, the targets they lead to with their
// instances, and, when the entries do not compile, why (the proxy then routes every call straight
// to the service). Consul answers the same question with GET /v1/discovery-chain/<service>.
import type { ApiClient } from '../api/client.js';
import type { DiscoveryChainView } from '../api/types.js';
import type { ChainTarget, CompiledRoute, NextHop, WeightedTarget } from '../core/routing/types.js';
import type { HeaderOps } from '../core/state/kinds/header-modifiers.js';
import type { HeaderMatch, HttpMatch, QueryMatch } from '../core/state/kinds/http-match.js';
import { formatTable } from './table.js';

/** A value as shown: bare when plain (letters, digits, `.`, `_`, `-`, `/`), else JSON-quoted, so a `, ` inside cannot read as the separator. */
function shown(v: string): string {
  return /^[A-Za-z0-9._/-]+$/.test(v) ? v : JSON.stringify(v);
}

/** Status codes as runs: 500–599 as one range, not a hundred numbers. */
export function codesText(codes: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < codes.length; ) {
    let j = i;
    while (j + 1 < codes.length && (codes[j + 1] as number) === (codes[j] as number) + 1) j++;
    out.push(j - i >= 2 ? `${codes[i]}-${codes[j]}` : codes.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return out.join(',');
}

/** A header or query condition's test, in a word or two ("present" when it names none). */
function condText(c: {
  present?: boolean;
  exact?: string;
  prefix?: string;
  suffix?: string;
  regex?: string;
}): string {
  if (c.present === false) return 'absent';
  if (c.exact !== undefined) return `= ${JSON.stringify(c.exact)}`;
  if (c.prefix !== undefined) return `starts ${JSON.stringify(c.prefix)}`;
  if (c.suffix !== undefined) return `ends ${JSON.stringify(c.suffix)}`;
  if (c.regex !== undefined) return `~ ${JSON.stringify(c.regex)}`;
  return 'present';
}

const headerText = (h: HeaderMatch): string =>
  `${h.invert === true ? 'not ' : ''}header ${h.name} ${condText(h)}`;
const queryText = (q: QueryMatch): string => `query ${q.name} ${condText(q)}`;

/** A route's match in a few words; "(default)" for the route every other request takes. */
export function matchText(m: HttpMatch | undefined): string {
  if (m === undefined) return '(default)';
  const parts: string[] = [];
  const anyCase = m.caseInsensitive === true ? ' (any case)' : '';
  if (m.pathExact !== undefined) parts.push(`path ${shown(m.pathExact)}${anyCase}`);
  if (m.pathPrefix !== undefined) parts.push(`path ${shown(m.pathPrefix)}*${anyCase}`);
  if (m.pathRegex !== undefined) parts.push(`path ~ ${JSON.stringify(m.pathRegex)}`);
  if (m.methods !== undefined && m.methods.length > 0) parts.push(m.methods.join('|'));
  for (const h of m.header ?? []) parts.push(headerText(h));
  for (const q of m.queryParam ?? []) parts.push(queryText(q));
  return parts.length > 0 ? parts.join(', ') : 'any request';
}

/**
 * Header changes by name: `x-env set, x-debug removed, x-tag added` (a set is compiled to a removal
 * and an addition of one name, and read back as such); undefined when there are none.
 */
function headerChangesText(ops: readonly HeaderOps[] | undefined): string | undefined {
  if (ops === undefined || ops.length === 0) return undefined;
  const parts: string[] = [];
  for (const op of ops) {
    const added = new Set(op.add.map(([n]) => n));
    for (const n of op.remove) parts.push(`${n} ${added.has(n) ? 'set' : 'removed'}`);
    for (const n of added) if (!op.remove.includes(n)) parts.push(`${n} added`);
  }
  return parts.join(', ');
}

function shareText(s: WeightedTarget): string {
  // Nested splits multiply their weights: shown to two decimals, not as 0.30000000000000004.
  const base = `${Math.round(s.weight * 100) / 100}% ${s.targetId}`;
  const req = headerChangesText(s.requestHeaders);
  const resp = headerChangesText(s.responseHeaders);
  const changes = [...(req ? [`request ${req}`] : []), ...(resp ? [`response ${resp}`] : [])];
  return changes.length > 0 ? `${base} (${changes.join('; ')})` : base;
}

function hopText(next: NextHop): string {
  return next.type === 'target' ? next.targetId : next.splits.map(shareText).join(', ');
}

/** What a route does besides choosing the destination: rewrite, timeout, retries, fault. */
export function settingsText(r: CompiledRoute): string {
  const parts: string[] = [];
  if (r.prefixRewrite !== undefined) parts.push(`rewrite to ${shown(r.prefixRewrite)}`);
  if (r.requestTimeoutMs !== undefined) parts.push(`timeout ${r.requestTimeoutMs} ms`);
  if (r.numRetries > 0) {
    const on = [
      ...(r.retryOnStatusCodes.length > 0 ? [codesText(r.retryOnStatusCodes)] : []),
      ...(r.retryOnConnectFailure ? ['connect failure'] : []),
      ...(r.retryOnGrpcCodes.length > 0 ? [`grpc ${codesText(r.retryOnGrpcCodes)}`] : []),
    ];
    parts.push(
      `${r.numRetries} ${r.numRetries === 1 ? 'retry' : 'retries'} on ${on.join(' or ') || 'nothing'}`,
    );
  }
  const f = r.fault;
  if (f !== undefined) {
    if (f.delayPercent > 0) parts.push(`delay ${f.delayPercent}% ${f.delayMs} ms`);
    if (f.abortPercent > 0)
      parts.push(`abort ${f.abortPercent}% (${f.abortHttpStatus}, grpc ${f.abortGrpcStatus})`);
  }
  const req = headerChangesText(r.requestHeaders === undefined ? undefined : [r.requestHeaders]);
  if (req !== undefined) parts.push(`request headers: ${req}`);
  const resp = headerChangesText(r.responseHeaders === undefined ? undefined : [r.responseHeaders]);
  if (resp !== undefined) parts.push(`response headers: ${resp}`);
  return parts.join('; ');
}

function filterText(t: ChainTarget): string {
  const f = t.filter;
  if (f === undefined) return '-';
  const parts = [...(f.tags ?? []).map((tag) => `tag ${tag}`)];
  for (const [k, v] of Object.entries(f.meta ?? {})) parts.push(`${shown(k)}=${shown(v)}`);
  return parts.join(', ') || '-';
}

export function formatChain(v: DiscoveryChainView): string {
  const c = v.chain;
  const out = [`Discovery chain of ${c.service} (${c.protocol}), from the configuration at index ${v.index}`];
  if (c.errors.length > 0) {
    out.push(
      '',
      `The entries do not compile: every call goes straight to ${c.service}, with default settings, until they are fixed:`,
      ...c.errors.map((e) => `  - ${e}`),
    );
  }
  out.push(
    '',
    c.protocol === 'tcp' ? 'Connections (tcp has no requests to route):' : 'Routes, first match wins:',
    formatTable(
      ['#', 'MATCH', 'DESTINATION', 'SETTINGS'],
      c.routes.map((r, i) => [String(i), matchText(r.match), hopText(r.next), settingsText(r)]),
    ),
    '',
    'Targets:',
    formatTable(
      ['TARGET', 'SERVICE', 'FILTER', 'BALANCER', 'FAILOVER', 'INSTANCES'],
      c.targets.map((t) => {
        const n = v.instances[t.id] ?? { total: 0, healthy: 0 };
        return [
          t.id,
          t.service,
          filterText(t),
          t.loadBalancer.policy,
          t.failover.join(', ') || '-',
          `${n.healthy} of ${n.total} ${t.onlyPassing ? 'passing' : 'healthy'}`,
        ];
      }),
    ),
  );
  return out.join('\n');
}

export async function chainCommand(
  client: ApiClient,
  service: string,
  opts: { json?: boolean },
): Promise<string> {
  const view = await client.discoveryChain(service);
  return opts.json ? JSON.stringify(view, null, 2) : formatChain(view);
}
