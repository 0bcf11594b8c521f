// Intentions: may service A call service B? The most specific rule decides, as in Consul:
//
//   precedence 9  web → api   (exact source, exact destination)
//              8  *   → api   (any source, exact destination)
//              6  web → *     (exact source, any destination)
//              5  *   → *
//   otherwise the mesh entry's defaultIntention (allow when unset).
//
// Destination rules sit in the destination's service-intentions entry; "any destination" rules in
// the entry named "*". Stored specs are read leniently (a malformed source is skipped) because
// they passed validation when written.
//
// A rule with permissions (an L7 intention) decides each HTTP or gRPC request: its first permission
// whose match fits, else the mesh's default. At L4 (a tcp connection, `mesh intention check`) it
// denies, as Consul's does: a connection has no requests to match.

import type { HttpMatch } from '../state/kinds/http-match.js';
import { DEFAULT_INTENTION, MESH_NAME } from '../state/kinds/mesh.js';
import {
  ANY_SERVICE,
  type IntentionAction,
  type IntentionPermission,
} from '../state/kinds/service-intentions.js';
import { isObj } from '../state/text.js';
import { compileMatch, parseQuery, type RequestPredicate } from './match.js';
import { withNormalPath } from './path-normal.js';
import type { Lookup, RequestInfo } from './types.js';

export const INTENTION_PRECEDENCE = Object.freeze({
  exactToExact: 9,
  anyToExact: 8,
  exactToAny: 6,
  anyToAny: 5,
});

export interface IntentionDecision {
  /** For a connection (L4). A rule with permissions denies here; its requests are decided by `l7`. */
  action: IntentionAction;
  /** The rule that decided, for logs and `mesh intention check`: "intention web→api deny", "default allow". */
  reason: string;
  /** Set when the deciding rule has permissions: how each request is decided (decideRequest). */
  l7?: L7Rule;
}

/** An L7 intention: its permissions in order, and what a request none matches gets. */
export interface L7Rule {
  /** "intention web→api". */
  rule: string;
  permissions: readonly IntentionPermission[];
  otherwise: { action: IntentionAction; reason: string };
}

export interface IntentionRow {
  source: string;
  destination: string;
  /** `permissions` for an L7 intention (listed in `permissions`). */
  action: IntentionAction | 'permissions';
  permissions?: IntentionPermission[];
  /** '' when the rule has none. */
  description: string;
  precedence: number;
}

export function intentionPrecedence(source: string, destination: string): number {
  const p = INTENTION_PRECEDENCE;
  if (destination === ANY_SERVICE) return source === ANY_SERVICE ? p.anyToAny : p.exactToAny;
  return source === ANY_SERVICE ? p.anyToExact : p.exactToExact;
}

interface Rule {
  name: string;
  action: IntentionAction | 'permissions';
  /** Set (and non-empty) when action is 'permissions'. */
  permissions?: IntentionPermission[];
  description: string;
}

const isAction = (v: unknown): v is IntentionAction => v === 'allow' || v === 'deny';

/** The well-formed permissions of a stored source, or undefined when it has none that are. */
function permissionsOf(v: unknown): IntentionPermission[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: IntentionPermission[] = [];
  for (const p of v as unknown[]) {
    if (isObj(p) && isAction(p.action) && isObj(p.http))
      out.push({ action: p.action, http: p.http as HttpMatch });
  }
  return out.length > 0 ? out : undefined;
}

/** The well-formed sources of a stored service-intentions spec. */
function rules(spec: unknown): Rule[] {
  if (!isObj(spec) || !Object.hasOwn(spec, 'sources') || !Array.isArray(spec.sources)) return [];
  const out: Rule[] = [];
  for (const s of spec.sources as unknown[]) {
    if (!isObj(s)) continue;
    const { name, action, description } = s;
    if (typeof name !== 'string') continue;
    const text = typeof description === 'string' ? description : '';
    const permissions = isAction(action) ? undefined : permissionsOf(s.permissions);
    if (isAction(action)) out.push({ name, action, description: text });
    else if (permissions !== undefined)
      out.push({ name, action: 'permissions', permissions, description: text });
  }
  return out;
}

function describeRule(source: string, destination: string, action: string): string {
  return `intention ${source}→${destination} ${action}`;
}

/** The mesh entry's default and whether it was set, for the reason text. */
function meshDefault(lookup: Lookup): { action: IntentionAction; set: boolean } {
  const spec = lookup('mesh', MESH_NAME);
  const v = isObj(spec) && Object.hasOwn(spec, 'defaultIntention') ? spec.defaultIntention : undefined;
  return v === 'allow' || v === 'deny' ? { action: v, set: true } : { action: DEFAULT_INTENTION, set: false };
}

/** Whether `source` may call `destination`, and which rule says so. */
export function decideIntention(lookup: Lookup, source: string, destination: string): IntentionDecision {
  const exactDest = rules(lookup('service-intentions', destination));
  const anyDest = destination === ANY_SERVICE ? exactDest : rules(lookup('service-intentions', ANY_SERVICE));
  // In precedence order: the first rule found decides.
  const candidates: Array<[Rule[], string, string]> = [
    [exactDest, source, destination],
    [exactDest, ANY_SERVICE, destination],
    [anyDest, source, ANY_SERVICE],
    [anyDest, ANY_SERVICE, ANY_SERVICE],
  ];
  const d = meshDefault(lookup);
  const byDefault = {
    action: d.action,
    reason: d.set ? `default ${d.action} (mesh ${MESH_NAME})` : `default ${d.action}`,
  };
  for (const [list, src, dst] of candidates) {
    const r = list.find((x) => x.name === src);
    if (r === undefined) continue;
    if (r.action !== 'permissions') return { action: r.action, reason: describeRule(src, dst, r.action) };
    return l7Decision(`intention ${src}→${dst}`, r.permissions ?? [], byDefault);
  }
  return byDefault;
}

/** An L7 rule made ready for requests: each permission's match compiled once. */
export interface CompiledL7Rule {
  /** The first permission whose predicate accepts a request decides it. */
  permissions: ReadonlyArray<{
    test: RequestPredicate;
    verdict: { action: IntentionAction; reason: string };
  }>;
  otherwise: { action: IntentionAction; reason: string };
  /** Whether any permission reads the query string (parsed per request only then). */
  readsQuery: boolean;
}

export function compileL7Rule(r: L7Rule): CompiledL7Rule {
  return {
    permissions: r.permissions.map((p, i) => ({
      test: compileMatch(p.http),
      verdict: { action: p.action, reason: `${r.rule} permission ${i + 1} ${p.action}` },
    })),
    otherwise: {
      action: r.otherwise.action,
      reason: `${r.rule}: no permission matched; ${r.otherwise.reason}`,
    },
    readsQuery: r.permissions.some((p) => (p.http.queryParam?.length ?? 0) > 0),
  };
}

type Verdict = { action: IntentionAction; reason: string };

/**
 * How an L7 rule decides one request: its first permission that matches, else the default. A path
 * not in normal form (`/%61dmin/`, `//admin/`, `/x/../admin/`, `http://api/admin/`) is decided
 * both as sent and in normal form (path-normal.ts), and allowed only if both are: whichever way
 * the instance reads it, a deny holds.
 */
export function decideRequest(r: CompiledL7Rule, req: RequestInfo): Verdict {
  const query = r.readsQuery ? parseQuery(req.query) : EMPTY_QUERY;
  const asSent = firstMatch(r, req, query);
  if (asSent.action === 'deny') return asSent;
  const normal = withNormalPath(req);
  if (normal === req) return asSent;
  const alt = firstMatch(r, normal, query);
  return alt.action === 'deny' ? alt : asSent;
}

function firstMatch(r: CompiledL7Rule, req: RequestInfo, query: ReadonlyMap<string, string>): Verdict {
  for (const p of r.permissions) if (p.test(req, query)) return p.verdict;
  return r.otherwise;
}

const EMPTY_QUERY: ReadonlyMap<string, string> = new Map();

/**
 * The same decision over listed rows (as the proxy receives them) and a default action. Rows are
 * matched by precedence, so their order does not matter.
 */
export function decideIntentionFromRows(
  rows: readonly Pick<IntentionRow, 'source' | 'destination' | 'action' | 'permissions'>[],
  defaultAction: IntentionAction,
  source: string,
  destination: string,
): IntentionDecision {
  let best: Pick<IntentionRow, 'source' | 'destination' | 'action' | 'permissions'> | undefined;
  let bestPrecedence = 0;
  for (const r of rows) {
    const fits =
      (r.source === source || r.source === ANY_SERVICE) &&
      (r.destination === destination || r.destination === ANY_SERVICE);
    if (!fits) continue;
    const p = intentionPrecedence(r.source, r.destination);
    if (p > bestPrecedence) {
      best = r;
      bestPrecedence = p;
    }
  }
  const byDefault = { action: defaultAction, reason: `default ${defaultAction}` };
  if (best === undefined) return byDefault;
  if (best.action !== 'permissions')
    return { action: best.action, reason: describeRule(best.source, best.destination, best.action) };
  return l7Decision(`intention ${best.source}→${best.destination}`, best.permissions ?? [], byDefault);
}

function l7Decision(
  rule: string,
  permissions: readonly IntentionPermission[],
  otherwise: { action: IntentionAction; reason: string },
): IntentionDecision {
  return {
    action: 'deny',
    reason: `${rule} has L7 permissions: a connection without requests is denied`,
    l7: { rule, permissions, otherwise },
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every intention of every service-intentions entry: most specific first, then by destination and source. */
export function listIntentions(
  entries: Iterable<{ kind: string; name: string; spec: unknown }>,
): IntentionRow[] {
  const rows: IntentionRow[] = [];
  for (const e of entries) {
    if (e.kind !== 'service-intentions') continue;
    for (const r of rules(e.spec)) {
      rows.push({
        source: r.name,
        destination: e.name,
        action: r.action,
        ...(r.permissions !== undefined ? { permissions: r.permissions } : {}),
        description: r.description,
        precedence: intentionPrecedence(r.name, e.name),
      });
    }
  }
  return rows.sort(
    (a, b) =>
      b.precedence - a.precedence ||
      compareText(a.destination, b.destination) ||
      compareText(a.source, b.source),
  );
}
