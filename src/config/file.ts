// Reading a config file: JSON or YAML by extension (.json / .yaml / .yml), else JSON then YAML.
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML, { YAMLError } from 'yaml';
import { MeshError } from '../api/types.js';
import { limits } from './defaults.js';
import { describe } from './host-port.js';

function fileError(path: string, message: string): MeshError {
  return new MeshError('bad_request', `config file ${path}: ${message}`);
}

function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0] ?? m;
}

/** "LINE:COL" (both from 1, as editors count) of a character offset in `text`. */
export function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `${line}:${offset - before.lastIndexOf('\n')}`;
}

/** The offset V8 reports in a JSON.parse message ("... in JSON at position 12"), if any. */
function jsonReportedOffset(err: unknown): number | undefined {
  const m = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Where JSON.parse failed. V8 gives the position for most mistakes but not for an unexpected
 * token ("Unexpected token '}', ..."), the commonest one (a trailing comma, a missing value). There
 * it is found as the shortest prefix no text could complete: a prefix either parses, or fails only
 * because it ended (at its own length), until it takes in the bad character. At most ~21 parses,
 * and only on the error path.
 */
function jsonErrorOffset(text: string, err: unknown): number | undefined {
  const reported = jsonReportedOffset(err);
  if (reported !== undefined) return reported;
  const completable = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length));
      return true;
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('Unexpected end of JSON input')) return true;
      const at = jsonReportedOffset(e);
      return at !== undefined && at >= length;
    }
  };
  let good = 0;
  let bad = text.length;
  // The whole text is completable only when it failed by ending early: point at its end.
  if (completable(bad)) return text.length;
  while (bad - good > 1) {
    const mid = Math.floor((good + bad) / 2);
    if (completable(mid)) good = mid;
    else bad = mid;
  }
  return bad - 1;
}

/**
 * Decode the text of a JSON or YAML document by its extension (`.json`, `.yaml`, `.yml`; anything
 * else, standard input too, is tried as JSON, then as YAML). A syntax error becomes
 * "LABEL:LINE:COL: not valid YAML: ...", the form editors and terminals jump to.
 */
export function decodeDocument(text: string, ext: string, label: string): unknown {
  // YAML 1.2 core schema: "no" and "on" stay strings; duplicate keys are an error.
  // prettyErrors would append a multi-line excerpt to the message; the offset in `pos` is enough.
  const yaml = (t: string): unknown =>
    YAML.parse(t, { uniqueKeys: true, prettyErrors: false, maxAliasCount: 100 });
  const asJson = ext === '.json';
  try {
    if (asJson) return JSON.parse(text);
    if (ext === '.yaml' || ext === '.yml') return yaml(text);
    try {
      return JSON.parse(text);
    } catch {
      return yaml(text);
    }
  } catch (err) {
    const offset = err instanceof YAMLError ? err.pos[0] : asJson ? jsonErrorOffset(text, err) : undefined;
    const where = offset === undefined ? label : `${label}:${lineColumn(text, offset)}`;
    throw new MeshError('bad_request', `${where}: not valid ${asJson ? 'JSON' : 'YAML'}: ${firstLine(err)}`);
  }
}

/** The top-level mapping of the file. Throws MeshError('bad_request') naming the file. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw fileError(path, 'not a regular file');
    if (st.size > limits.configFileBytesMax) {
      throw fileError(path, `larger than ${limits.configFileBytesMax} bytes; is this the right file?`);
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof MeshError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw fileError(path, code === 'ENOENT' ? 'no such file' : `cannot read it (${firstLine(err)})`);
  }

  const data = decodeDocument(text, extname(path).toLowerCase(), `config file ${path}`);

  // An empty YAML file is null: treat it as "no settings" rather than an error.
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw fileError(path, `expected a mapping of keys to values at the top level, got ${describe(data)}`);
  }
  return data as Record<string, unknown>;
}
