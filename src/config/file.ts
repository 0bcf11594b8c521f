// Reading a config file: JSON or YAML by extension (.json / .yaml / .yml), else JSON then YAML.
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML from 'yaml';
import { MeshError } from '../api/types.js';
import { limits } from './defaults.js';
import { describe } from './host-port.js';

function fileError(path: string, message: string): MeshError {
  return new MeshError('bad_request', `config file ${path}: ${message}`);
}

function parseJson(text: string): unknown {
  return JSON.parse(text);
}

function parseYaml(text: string): unknown {
  // YAML 1.2 core schema: "no" and "on" stay strings; duplicate keys are an error.
  return YAML.parse(text, { uniqueKeys: true, prettyErrors: false, maxAliasCount: 100 });
}

function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0] ?? m;
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

  const ext = extname(path).toLowerCase();
  let data: unknown;
  try {
    if (ext === '.json') data = parseJson(text);
    else if (ext === '.yaml' || ext === '.yml') data = parseYaml(text);
    else {
      try {
        data = parseJson(text);
      } catch {
        data = parseYaml(text);
      }
    }
  } catch (err) {
    const format = ext === '.json' ? 'JSON' : 'YAML';
    throw fileError(path, `not valid ${format}: ${firstLine(err)}`);
  }

  // An empty YAML file is null: treat it as "no settings" rather than an error.
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw fileError(path, `expected a mapping of keys to values at the top level, got ${describe(data)}`);
  }
  return data as Record<string, unknown>;
}
