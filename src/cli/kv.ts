// `mesh kv`: read and write the replicated key-value store.
import type { Command } from 'commander';
import type { ApiClient } from '../api/client.js';
import type { KvEntryView } from '../api/types.js';
import { MeshError } from '../api/types.js';
import { STATE_LIMITS } from '../core/state/limits.js';
import {
  clientCommand,
  clientFor,
  type Io,
  parseIndex,
  processStdin,
  type ReadStdin,
  utf8OrUndefined,
} from './context.js';

/** An entry for people and scripts: the value as text when it is UTF-8, else base64 and says so. */
export interface KvEntryOutput {
  key: string;
  value: string;
  encoding?: 'base64';
  createIndex: number;
  modifyIndex: number;
}

export function decodeEntry(e: KvEntryView): KvEntryOutput {
  const text = utf8OrUndefined(Buffer.from(e.value, 'base64'));
  return text === undefined
    ? {
        key: e.key,
        value: e.value,
        encoding: 'base64',
        createIndex: e.createIndex,
        modifyIndex: e.modifyIndex,
      }
    : { key: e.key, value: text, createIndex: e.createIndex, modifyIndex: e.modifyIndex };
}

export async function kvPutCommand(
  client: ApiClient,
  key: string,
  value: Uint8Array | string,
  opts: { cas?: number },
): Promise<string> {
  if (await client.kvPut(key, value, opts)) return `Success! Data written to: ${key}`;
  const why =
    opts.cas === 0
      ? 'it already exists (--cas 0 writes only a new key)'
      : `its modify index is not ${opts.cas} (it changed or was deleted since); read it again and retry`;
  throw new MeshError('bad_request', `did not write ${JSON.stringify(key)}: ${why}`);
}

/**
 * The value as printed by `mesh kv get`: text as is, with one newline at the end (a value that
 * already ends in one gets no second). Bytes that are not UTF-8 are printed as base64 and `warning`
 * says so, since a terminal would mangle them.
 */
export async function kvGetCommand(
  client: ApiClient,
  key: string,
  opts: { consistent?: boolean; json?: boolean },
): Promise<{ text: string; warning?: string }> {
  const entry = await client.kvGet(key, opts);
  if (entry === undefined) throw new MeshError('not_found', `key ${JSON.stringify(key)} not found`);
  const out = decodeEntry(entry);
  if (opts.json) return { text: JSON.stringify(out, null, 2) };
  if (out.encoding === 'base64') {
    return {
      text: out.value,
      warning: `note: the value of ${JSON.stringify(key)} is not UTF-8 text; printed as base64 (decode with base64 -d)`,
    };
  }
  return { text: out.value.endsWith('\n') ? out.value.slice(0, -1) : out.value };
}

export async function kvDeleteCommand(
  client: ApiClient,
  key: string,
  opts: { recurse?: boolean; cas?: number },
): Promise<string> {
  if (await client.kvDelete(key, opts)) {
    return opts.recurse ? `Success! Deleted keys with prefix: ${key}` : `Success! Deleted key: ${key}`;
  }
  throw new MeshError(
    'bad_request',
    `did not delete ${JSON.stringify(key)}: its modify index is not ${opts.cas} (it changed or does not exist)`,
  );
}

/** One key per line (empty when there is none), or the JSON array of decoded entries. */
export async function kvListCommand(
  client: ApiClient,
  prefix: string,
  opts: { consistent?: boolean; json?: boolean },
): Promise<string> {
  if (opts.json) return JSON.stringify((await client.kvList(prefix, opts)).map(decodeEntry), null, 2);
  return (await client.kvKeys(prefix, opts)).join('\n');
}

export function registerKvCommands(program: Command, io: Io, readStdin: ReadStdin = processStdin): void {
  const kv = program.command('kv').description('read and write the replicated key-value store');

  clientCommand(kv, 'put', 'write a value; it is read from standard input when VALUE is omitted or "-"')
    .argument('<key>', 'the key, e.g. app/web/max-conns')
    .argument('[value]', 'the value as text')
    .option(
      '--cas <index>',
      'write only if the modify index is INDEX (0: only if the key is new)',
      parseIndex(0),
    )
    .action(async (key: string, value: string | undefined, opts: { http: string; cas?: number }) => {
      const bytes =
        value === undefined || value === '-' ? await readStdin(STATE_LIMITS.valueBytesMax) : value;
      io.out(await kvPutCommand(clientFor(opts), key, bytes, opts));
    });

  clientCommand(kv, 'get', 'print the value of a key')
    .argument('<key>')
    .option('--consistent', 'read through the leader (never stale)')
    .option('--json', 'print the entry with its indexes as JSON')
    .action(async (key: string, opts: { http: string; consistent?: boolean; json?: boolean }) => {
      const r = await kvGetCommand(clientFor(opts), key, opts);
      if (r.warning !== undefined) io.err(r.warning);
      io.out(r.text);
    });

  clientCommand(kv, 'delete', 'delete a key, or with --recurse every key that starts with KEY')
    .argument('<key>')
    .option('--recurse', 'delete every key that starts with KEY')
    .option('--cas <index>', 'delete only if the modify index is INDEX', parseIndex(1))
    .action(async (key: string, opts: { http: string; recurse?: boolean; cas?: number }) => {
      io.out(await kvDeleteCommand(clientFor(opts), key, opts));
    });

  clientCommand(kv, 'list', 'list the keys that start with PREFIX (all keys when it is omitted)')
    .argument('[prefix]', 'key prefix', '')
    .option('--consistent', 'read through the leader (never stale)')
    .option('--json', 'print the entries, with values and indexes, as a JSON array')
    .action(async (prefix: string, opts: { http: string; consistent?: boolean; json?: boolean }) => {
      const text = await kvListCommand(clientFor(opts), prefix, opts);
      if (text !== '') io.out(text);
    });
}
