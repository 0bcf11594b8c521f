// Checks made when a command is written, on top of validateCommand, and never when one is applied.
// Apply (and snapshot restore) must accept everything an older version committed, or agents of two
// versions would hold different state; a rule that tightens what may be written therefore belongs
// here, where it refuses the write at the agent the user talks to and leaves stored entries alone.
import { serviceNameProblem } from './kinds/spec-fields.js';
import { field, isObj } from './text.js';
import type { Command, ValidationError } from './types.js';

/**
 * Kinds named after a service whose apply-time rule for the name is only the common pattern: the
 * service-name rule came after entries of these kinds could be written, so apply must keep taking
 * names such as `my_svc.v1`, while a new write must use a name a service can have, or the entry
 * would never apply to any service. (service-router, -splitter, -resolver and -intentions enforce
 * the rule on apply: they had it from the start.)
 */
const SERVICE_NAMED_ON_WRITE: ReadonlySet<string> = new Set(['service-defaults']);

/**
 * Where each kind holds a regular expression matched against what callers send, as paths through
 * the spec: `name` is a field, `name[]` each item of a list. Keep in step with the kinds that call
 * optRegex (http-match.ts, rate-limits.ts): a site missing here is matched without this check.
 */
const HTTP_MATCH_SITES = ['pathRegex', 'header[].regex', 'queryParam[].regex'];
const REGEX_SITES: Readonly<Record<string, readonly string[]>> = {
  'service-router': HTTP_MATCH_SITES.map((s) => `routes[].match.http.${s}`),
  'service-intentions': HTTP_MATCH_SITES.map((s) => `sources[].permissions[].http.${s}`),
  'service-defaults': ['rateLimits.instanceLevel.routes[].pathRegex'],
};

/**
 * V8's linear-time engine bounds how long a pattern can take, and it matches only patterns without
 * backreferences, lookaround and counted repetition above this (counts of nested groups multiply).
 * A process turns the engine on with V8 flags (src/polyfill.ts): it then switches a pattern that
 * has backtracked too long to that engine, which only works for the patterns it can match.
 */
const LINEAR_REPEAT_MAX = 16;

/**
 * V8's flag for a pattern matched by its linear-time engine. A variable, not a literal: without the
 * engine a literal `/…/l` is a syntax error when the module loads, not a failure this code handles.
 */
const LINEAR_FLAG: string = 'l';

/**
 * Why `source` (as `fullMatchRegex` compiles it) cannot be matched in linear time, or undefined
 * when it can. Asked when an entry is written, never when one is applied: an entry committed by an
 * older version must still apply everywhere. Throws when this process did not turn V8's
 * linear-time engine on, since the answer would then be wrong: that is a bug of the entry point.
 */
export function linearRegexProblem(source: string): string | undefined {
  try {
    new RegExp('', LINEAR_FLAG);
  } catch {
    throw new Error("V8's linear-time regexp engine is off in this process: import src/polyfill.js first");
  }
  try {
    new RegExp(`^(?:${source})$`, LINEAR_FLAG);
    return undefined;
  } catch {
    return (
      'cannot be matched in linear time, which the mesh requires of every pattern it matches against ' +
      'what callers send: remove backreferences (\\1, \\k<name>), lookahead and lookbehind ' +
      `((?=, (?!, (?<=, (?<!) and counted repetition above ${LINEAR_REPEAT_MAX} ({17}, {1,32}; ` +
      'counts of nested groups multiply): write + or * instead'
    );
  }
}

/**
 * The first problem a write-time rule finds in a validated command, or undefined. `previous` is the
 * stored spec the command replaces, if any: a pattern it already holds is in force and is not
 * checked again, so that changing another part of such an entry (`mesh intention allow` adds a
 * source to the entry holding every source of a destination) is not refused for a pattern the
 * write did not bring.
 */
export function writeCheck(c: Command, previous?: unknown): ValidationError | undefined {
  if (c.op !== 'config-set') return undefined;
  if (SERVICE_NAMED_ON_WRITE.has(c.kind)) {
    const problem = serviceNameProblem(c.name);
    if (problem !== undefined) return { field: 'name', message: problem };
  }
  const sites = REGEX_SITES[c.kind];
  if (sites === undefined) return undefined;
  const inForce = new Set<string>();
  if (previous !== undefined)
    for (const site of sites) for (const { value } of valuesAt(previous, site, '')) inForce.add(value);
  for (const site of sites) {
    for (const { value, path } of valuesAt(c.spec, site, 'spec')) {
      if (inForce.has(value)) continue;
      const problem = linearRegexProblem(value);
      if (problem !== undefined) return { field: path, message: problem };
    }
  }
  return undefined;
}

/** The strings at `site` in `v`, each with its path (validated specs: the shapes are known). */
function valuesAt(v: unknown, site: string, path: string): Array<{ value: string; path: string }> {
  let at: Array<{ v: unknown; path: string }> = [{ v, path }];
  for (const step of site.split('.')) {
    const list = step.endsWith('[]');
    const name = list ? step.slice(0, -2) : step;
    const next: Array<{ v: unknown; path: string }> = [];
    for (const x of at) {
      if (!isObj(x.v)) continue;
      const child = field(x.v, name);
      const childPath = x.path === '' ? name : `${x.path}.${name}`;
      if (!list) next.push({ v: child, path: childPath });
      else if (Array.isArray(child))
        for (const [i, item] of child.entries()) next.push({ v: item, path: `${childPath}[${i}]` });
    }
    at = next;
  }
  return at.flatMap((x) => (typeof x.v === 'string' ? [{ value: x.v, path: x.path }] : []));
}
