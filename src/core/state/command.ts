// Validation of commands. The shell calls validateCommand before proposing (and answers 400 with
// the field); every agent calls it again when the command is committed, so a command that slipped
// past an older or buggy shell becomes an `invalid` result, never a crash. Never throws.
import { canonical, estimateSize } from './canonical.js';
import { kindModule, unknownKind } from './kinds/index.js';
import { NAME_PATTERN, STATE_LIMITS } from './limits.js';
import { RID_PATTERN } from './requests.js';
import { describe, err, field, fieldName, isObj, joinField, type Obj, utf8Length } from './text.js';
import type { Command, CommandOp, ValidationError } from './types.js';

const FIELDS: Readonly<Record<CommandOp, readonly string[]>> = {
  'kv-set': ['op', 'key', 'value', 'cas'],
  'kv-delete': ['op', 'key', 'cas'],
  'kv-delete-tree': ['op', 'prefix'],
  'config-set': ['op', 'kind', 'name', 'spec', 'cas'],
  'config-delete': ['op', 'kind', 'name', 'cas'],
};
const OPS = Object.keys(FIELDS) as CommandOp[];

/** Tell a validation error from a command. */
export function isValidationError(v: Command | ValidationError): v is ValidationError {
  return !Object.hasOwn(v, 'op');
}

/**
 * Check a KV key (or, with `isPrefix`, a delete-tree prefix, which may be empty): at most
 * STATE_LIMITS.keyBytesMax UTF-8 bytes, no leading '/', valid Unicode.
 */
export function checkKey(v: unknown, path: string, isPrefix = false): ValidationError | undefined {
  if (typeof v !== 'string') return err(path, `must be a string, not ${describe(v)}`);
  if (v.length === 0 && !isPrefix) return err(path, 'must not be empty');
  if (v.startsWith('/')) return err(path, "must not start with '/'");
  const max = STATE_LIMITS.keyBytesMax;
  // Every UTF-16 unit is at least one byte, so a long string is rejected before it is scanned.
  const bytes = v.length > max ? max + 1 : utf8Length(v);
  if (bytes < 0) return err(path, 'must be valid Unicode (it holds an unpaired surrogate)');
  if (bytes > max) return err(path, `must be at most ${max} bytes of UTF-8`);
  return undefined;
}

/** Check a configuration kind (pattern and length) and that it is known. */
export function checkKind(v: unknown, path = 'kind'): ValidationError | undefined {
  if (typeof v !== 'string') return err(path, `must be a string, not ${describe(v)}`);
  if (kindModule(v) === undefined) return { ...unknownKind(v), field: path };
  return undefined;
}

/** Check an entry name: the common pattern and length, then the kind's own rule. Kind must be known. */
export function checkName(kind: string, v: unknown, path = 'name'): ValidationError | undefined {
  if (typeof v !== 'string') return err(path, `must be a string, not ${describe(v)}`);
  if (v.length === 0) return err(path, 'must not be empty');
  if (v.length > STATE_LIMITS.nameLengthMax) {
    return err(path, `must be at most ${STATE_LIMITS.nameLengthMax} characters`);
  }
  if (!NAME_PATTERN.test(v) && !kindModule(kind)?.extraNames?.includes(v)) {
    return err(path, "must be lower-case letters, digits, '.', '_' and '-', starting with a letter or digit");
  }
  const own = kindModule(kind)?.validateName?.(v);
  return own === undefined ? undefined : { ...own, field: path };
}

/**
 * Check a spec for a known kind: size bound, then the kind's rules. Fields of the errors are
 * `path` + the field inside the spec. Returns the stored (normalised, canonical) form or the first
 * problem. `name` (the entry's, already checked) lets the kind check the two together.
 */
export function checkSpec(
  kind: string,
  spec: unknown,
  path: string,
  name?: string,
): { spec: unknown } | ValidationError {
  const max = STATE_LIMITS.specBytesMax;
  if (estimateSize(spec, max) > max) {
    return err(path === '' ? 'spec' : path, `must be at most ${max} bytes encoded (or nested too deeply)`);
  }
  const mod = kindModule(kind);
  if (mod === undefined) return unknownKind(kind);
  const problems = mod.validate(spec);
  if (problems.length === 0 && name !== undefined && mod.validateEntry !== undefined)
    problems.push(...mod.validateEntry(name, spec));
  const first = problems[0];
  if (first !== undefined) return { field: joinField(path, first.field), message: first.message };
  return { spec: canonical(mod.normalise ? mod.normalise(spec) : spec) };
}

function checkCas(o: Obj, isDelete: boolean): number | undefined | ValidationError {
  const v = field(o, 'cas');
  if (v === undefined) return undefined;
  const min = isDelete ? 1 : 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    return err(
      'cas',
      isDelete
        ? 'must be a positive integer (the modifyIndex of the entry to delete)'
        : 'must be a non-negative integer (0: only if absent; n: only if its modifyIndex is n)',
    );
  }
  return v;
}

function command(v: unknown): Command | ValidationError {
  const c = commandBody(v);
  if (isValidationError(c)) return c;
  const rid = field(v as Obj, 'rid');
  if (rid === undefined) return c;
  if (typeof rid !== 'string' || !RID_PATTERN.test(rid)) {
    return err('rid', "must be 1 to 64 letters, digits, '.', '_', ':' or '-'");
  }
  return { ...c, rid };
}

function commandBody(v: unknown): Command | ValidationError {
  if (!isObj(v)) return err('command', `must be an object, not ${describe(v)}`);
  const op = field(v, 'op');
  if (typeof op !== 'string' || !(OPS as string[]).includes(op)) {
    return err('op', `must be one of ${OPS.join(', ')}`);
  }
  const c = op as CommandOp;
  const allowed = FIELDS[c];
  for (const k of Object.keys(v)) {
    // `rid` is the proposing agent's, on every op (requests.ts); clients never write it.
    if (!allowed.includes(k) && k !== 'rid')
      return err(fieldName(k), `unknown field; ${c} takes ${allowed.join(', ')}`);
  }
  switch (c) {
    case 'kv-set': {
      const key = field(v, 'key');
      const bad = checkKey(key, 'key');
      if (bad) return bad;
      const value = field(v, 'value');
      if (!(value instanceof Uint8Array)) return err('value', `must be bytes, not ${describe(value)}`);
      if (value.byteLength > STATE_LIMITS.valueBytesMax) {
        return err('value', `must be at most ${STATE_LIMITS.valueBytesMax} bytes`);
      }
      const cas = checkCas(v, false);
      if (typeof cas === 'object') return cas;
      return withCas({ op: c, key: key as string, value }, cas);
    }
    case 'kv-delete': {
      const key = field(v, 'key');
      const bad = checkKey(key, 'key');
      if (bad) return bad;
      const cas = checkCas(v, true);
      if (typeof cas === 'object') return cas;
      return withCas({ op: c, key: key as string }, cas);
    }
    case 'kv-delete-tree': {
      const prefix = field(v, 'prefix');
      const bad = checkKey(prefix, 'prefix', true);
      if (bad) return bad;
      return { op: c, prefix: prefix as string };
    }
    case 'config-set':
    case 'config-delete': {
      const kind = field(v, 'kind');
      const badKind = checkKind(kind);
      if (badKind) return badKind;
      const name = field(v, 'name');
      const badName = checkName(kind as string, name);
      if (badName) return badName;
      const cas = checkCas(v, c === 'config-delete');
      if (typeof cas === 'object') return cas;
      if (c === 'config-delete') return withCas({ op: c, kind: kind as string, name: name as string }, cas);
      const spec = checkSpec(kind as string, field(v, 'spec'), 'spec', name as string);
      if (!('spec' in spec)) return spec;
      return withCas({ op: c, kind: kind as string, name: name as string, spec: spec.spec }, cas);
    }
  }
}

/** Leave `cas` out when absent, so the command encodes without an undefined field. */
function withCas<T extends Command>(c: T, cas: number | undefined): T {
  return cas === undefined ? c : { ...c, cas };
}

/**
 * Validate a decoded command: a fresh command (specs in their stored, canonical form; KV values
 * not copied) or the first problem found, naming its field. Never throws.
 */
export function validateCommand(v: unknown): Command | ValidationError {
  try {
    return command(v);
  } catch (e) {
    // Only exotic input (proxies, throwing getters) gets here; decoded msgpack never does.
    return err('command', `unreadable (${e instanceof Error ? e.message : 'unknown error'})`);
  }
}
