// Checks made when a command is written, on top of validateCommand, and never when one is applied.
// Apply (and snapshot restore) must accept everything an older version committed, or agents of two
// versions would hold different state; a rule that tightens what may be written therefore belongs
// here, where it refuses the write at the agent the user talks to and leaves stored entries alone.
import { linearRegexProblem } from './kinds/spec-fields.js';
import { isObj } from './text.js';
import type { Command, ValidationError } from './types.js';

/** Fields that hold a regular expression, in every kind that has one (HTTP matches: routes, intentions). */
const REGEX_FIELDS: ReadonlySet<string> = new Set(['pathRegex', 'regex']);

/**
 * Nesting of a spec the walk follows at most. Specs are bounded in size by validation (specBytesMax),
 * and the kinds nest five levels at most (routes[].match.http.header[].regex); this bounds the walk
 * in case a future kind nests more.
 */
const DEPTH_MAX = 32;

/** The first problem a write-time rule finds in a validated command, or undefined. */
export function writeCheck(c: Command): ValidationError | undefined {
  if (c.op !== 'config-set') return undefined;
  return regexIn(c.spec, 'spec', 0);
}

function regexIn(v: unknown, path: string, depth: number): ValidationError | undefined {
  if (depth > DEPTH_MAX) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const bad = regexIn(v[i], `${path}[${i}]`, depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  if (!isObj(v)) return undefined;
  for (const [k, x] of Object.entries(v)) {
    const at = `${path}.${k}`;
    if (REGEX_FIELDS.has(k) && typeof x === 'string') {
      const problem = linearRegexProblem(x);
      if (problem !== undefined) return { field: at, message: problem };
    } else {
      const bad = regexIn(x, at, depth + 1);
      if (bad) return bad;
    }
  }
  return undefined;
}
