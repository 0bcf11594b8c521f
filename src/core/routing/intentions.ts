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

import { DEFAULT_INTENTION, MESH_NAME } from '../state/kinds/mesh.js';
import { ANY_SERVICE, type IntentionAction } from '../state/kinds/service-intentions.js';
import { isObj } from '../state/text.js';
import type { Lookup } from './types.js';

export const INTENTION_PRECEDENCE = Object.freeze({
  exactToExact: 9,
  anyToExact: 8,
  exactToAny: 6,
  anyToAny: 5,
});

export interface IntentionDecision {
  action: IntentionAction;
  /** The rule that decided, for logs and `mesh intention check`: "intention web→api deny", "default allow". */
  reason: string;
}

export interface IntentionRow {
  source: string;
  destination: string;
  action: IntentionAction;
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
  action: IntentionAction;
  description: string;
}

/** The well-formed sources of a stored service-intentions spec. */
function rules(spec: unknown): Rule[] {
  if (!isObj(spec) || !Object.hasOwn(spec, 'sources') || !Array.isArray(spec.sources)) return [];
  const out: Rule[] = [];
  for (const s of spec.sources as unknown[]) {
    if (!isObj(s)) continue;
    const { name, action, description } = s;
    if (typeof name !== 'string' || (action !== 'allow' && action !== 'deny')) continue;
    out.push({ name, action, description: typeof description === 'string' ? description : '' });
  }
  return out;
}

function describeRule(source: string, destination: string, action: IntentionAction): string {
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
  for (const [list, src, dst] of candidates) {
    const r = list.find((x) => x.name === src);
    if (r !== undefined) return { action: r.action, reason: describeRule(src, dst, r.action) };
  }
  const d = meshDefault(lookup);
  return {
    action: d.action,
    reason: d.set ? `default ${d.action} (mesh ${MESH_NAME})` : `default ${d.action}`,
  };
}

/**
 * The same decision over listed rows (as the proxy receives them) and a default action. Rows are
 * matched by precedence, so their order does not matter.
 */
export function decideIntentionFromRows(
  rows: readonly { source: string; destination: string; action: IntentionAction }[],
  defaultAction: IntentionAction,
  source: string,
  destination: string,
): IntentionDecision {
  let best: { source: string; destination: string; action: IntentionAction } | undefined;
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
  if (best !== undefined)
    return { action: best.action, reason: describeRule(best.source, best.destination, best.action) };
  return { action: defaultAction, reason: `default ${defaultAction}` };
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
