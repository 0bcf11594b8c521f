// Configuration entry files (JSON or YAML, as operators write them): the spec's fields sit beside
// `kind` and `name` at the top level, as in Consul's config entry files:
//   { "kind": "service-defaults", "name": "web", "protocol": "http" }
// splitEntryFile turns that into the { kind, name, spec } a config-set command carries, checking
// everything on the way, with fields named as they appear in the file ("protocol", not
// "spec.protocol").
import { checkKind, checkName, checkSpec } from './command.js';
import { describe, field, isObj } from './text.js';
import type { ValidationError } from './types.js';

export interface EntryFile {
  kind: string;
  name: string;
  /** The spec in its stored (canonical) form. */
  spec: unknown;
}

/** Consul writes these capitalised; point such files at our spelling instead of "unknown field". */
const CONSUL_SPELLINGS: Readonly<Record<string, string>> = { Kind: 'kind', Name: 'name' };

/** Split and validate a decoded entry file; never throws. */
export function splitEntryFile(v: unknown): EntryFile | ValidationError {
  try {
    if (!isObj(v)) return { field: '', message: `an entry file must hold an object, not ${describe(v)}` };
    for (const [theirs, ours] of Object.entries(CONSUL_SPELLINGS)) {
      if (Object.hasOwn(v, theirs) && !Object.hasOwn(v, ours)) {
        return { field: theirs, message: `field names are lower camel case here: write "${ours}"` };
      }
    }
    const kind = field(v, 'kind');
    const badKind = checkKind(kind);
    if (badKind) return badKind;
    const name = field(v, 'name');
    const badName = checkName(kind as string, name);
    if (badName) return badName;
    const rest: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      // defineProperty-free copy that keeps "__proto__" a plain key.
      if (k !== 'kind' && k !== 'name')
        Object.defineProperty(rest, k, { value: v[k], enumerable: true, writable: true, configurable: true });
    }
    const spec = checkSpec(kind as string, rest, '', name as string);
    if (!('spec' in spec)) return spec;
    return { kind: kind as string, name: name as string, spec: spec.spec };
  } catch (e) {
    return {
      field: '',
      message: `unreadable entry file (${e instanceof Error ? e.message : 'unknown error'})`,
    };
  }
}
