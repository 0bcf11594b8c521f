// `mesh config`: write, read, list and delete configuration entries (service-defaults, ...).
import { extname } from 'node:path';
import { Argument, type Command } from 'commander';
import YAML from 'yaml';
import type { ApiClient } from '../api/client.js';
import type { ConfigEntryView } from '../api/types.js';
import { MeshError } from '../api/types.js';
import { decodeDocument } from '../config/file.js';
import { KIND_NAMES } from '../core/state/kinds/index.js';
import { chainCommand } from './chain.js';
import {
  clientCommand,
  clientFor,
  type Io,
  parseIndex,
  parseServiceName,
  processStdin,
  type ReadStdin,
  readSmallFile,
  sourceName,
  utf8OrUndefined,
} from './context.js';
import { entryFileOrder } from './entry-order.js';
import { formatTable } from './table.js';

/** An entry file is a few KiB; 1 MiB is the agent's request body limit, so more cannot be sent. */
const entryFileBytesMax = 1024 * 1024;

/** `source` is the file argument as given; `-` is named `standard input`. */
function fileError(source: string, message: string): MeshError {
  return new MeshError('bad_request', `${sourceName(source)}: ${message}`);
}

/**
 * Decode a document file: JSON for .json, YAML for .yaml/.yml, otherwise (and for standard input)
 * JSON, then YAML, by the rule of the agent's config file. It must hold one object; `what` names it
 * in the error.
 */
export function parseDocument(source: string, bytes: Uint8Array, what: string): Record<string, unknown> {
  const text = utf8OrUndefined(bytes);
  if (text === undefined) throw fileError(source, 'not UTF-8 text');
  const ext = source === '-' ? '' : extname(source).toLowerCase();
  const data = decodeDocument(text, ext, sourceName(source));
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw fileError(source, `${what} file must hold one object`);
  }
  return data as Record<string, unknown>;
}

/**
 * Decode an entry file. Only the shape the CLI needs is checked here (an object with a string kind
 * and name); the agent validates the rest and names the field it rejects.
 */
export function parseEntryFile(source: string, bytes: Uint8Array): Record<string, unknown> {
  const entry = parseDocument(source, bytes, 'an entry');
  for (const field of ['kind', 'name'] as const) {
    if (typeof entry[field] !== 'string' || entry[field] === '') {
      throw fileError(source, `${field}: must be a non-empty string`);
    }
  }
  return entry;
}

export async function configPutCommand(
  client: ApiClient,
  source: string,
  bytes: Uint8Array,
  opts: { cas?: number },
): Promise<string> {
  const entry = parseEntryFile(source, bytes);
  const where = `${entry.kind as string}/${entry.name as string}`;
  try {
    const { index } = await client.configPut(entry, opts);
    return `Config entry written: ${where} (index ${index})`;
  } catch (err) {
    // The agent's message names the field; say which file it is about.
    if (err instanceof MeshError && err.code === 'bad_request') {
      throw fileError(source, err.message);
    }
    throw err;
  }
}

/** An entry as an entry file (it can be given back to `mesh config put`), indexes in a comment. */
export function formatEntry(e: ConfigEntryView): string {
  const head = `# ${e.kind}/${e.name}: created at index ${e.createIndex}, modified at index ${e.modifyIndex}`;
  return `${head}\n${YAML.stringify(entryFileOrder(e.kind, e.name, e.spec)).trimEnd()}`;
}

export function formatEntries(entries: readonly ConfigEntryView[]): string {
  const sorted = [...entries].sort((a, b) =>
    a.kind !== b.kind ? (a.kind < b.kind ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  return formatTable(
    ['KIND', 'NAME', 'MODIFY-INDEX'],
    sorted.map((e) => [e.kind, e.name, String(e.modifyIndex)]),
  );
}

export async function configGetCommand(
  client: ApiClient,
  kind: string,
  name: string,
  opts: { consistent?: boolean; json?: boolean },
): Promise<string> {
  const entry = await client.configGet(kind, name, opts);
  if (entry === undefined) throw new MeshError('not_found', `config entry ${kind}/${name} not found`);
  return opts.json ? JSON.stringify(entry, null, 2) : formatEntry(entry);
}

export async function configListCommand(
  client: ApiClient,
  kind: string | undefined,
  opts: { consistent?: boolean; json?: boolean },
): Promise<string> {
  const entries = await client.configList(kind, opts);
  return opts.json ? JSON.stringify(entries, null, 2) : formatEntries(entries);
}

export async function configDeleteCommand(client: ApiClient, kind: string, name: string): Promise<string> {
  if (await client.configDelete(kind, name)) return `Config entry deleted: ${kind}/${name}`;
  throw new MeshError('internal', `the agent did not delete ${kind}/${name}`);
}

/**
 * A KIND argument: one of the kinds this CLI knows, checked before the agent is asked, so a typo is
 * a usage error (exit 2) listing the kinds instead of an empty list or "not found".
 */
function kindArgument(spec: string): Argument {
  return new Argument(spec, 'the kind of entry').choices(KIND_NAMES);
}

export function registerConfigCommands(program: Command, io: Io, readStdin: ReadStdin = processStdin): void {
  const config = program
    .command('config')
    .description('write, read, list and delete configuration entries (see docs/configuration-entries.md)');

  clientCommand(config, 'put', 'write the configuration entry of a JSON or YAML file ("-": standard input)')
    .argument('<file>', 'entry file: kind, name and the settings of the kind')
    .option(
      '--cas <index>',
      'write only if the modify index is INDEX (0: only if the entry is new)',
      parseIndex(0),
    )
    .action(async (file: string, opts: { http: string; cas?: number }) => {
      const bytes =
        file === '-' ? await readStdin(entryFileBytesMax) : await readSmallFile(file, entryFileBytesMax);
      io.out(await configPutCommand(clientFor(opts), file, bytes, opts));
    });

  clientCommand(config, 'get', 'print one configuration entry')
    .addArgument(kindArgument('<kind>'))
    .argument('<name>')
    .option('--consistent', 'read through the leader (never stale)')
    .option('--json', 'print the entry as the API answers it')
    .action(
      async (kind: string, name: string, opts: { http: string; consistent?: boolean; json?: boolean }) => {
        io.out(await configGetCommand(clientFor(opts), kind, name, opts));
      },
    );

  clientCommand(config, 'list', 'list the configuration entries of one kind, or of all kinds')
    .addArgument(kindArgument('[kind]'))
    .option('--consistent', 'read through the leader (never stale)')
    .option('--json', 'print the entries as the API answers them')
    .action(
      async (kind: string | undefined, opts: { http: string; consistent?: boolean; json?: boolean }) => {
        io.out(await configListCommand(clientFor(opts), kind, opts));
      },
    );

  clientCommand(
    config,
    'chain',
    'show where calls to a service go: its routes, targets and instances as the agent compiles them, and why entries do not compile',
  )
    .argument('<service>', 'a service name', parseServiceName(false))
    .option('--json', 'print the chain as the API answers it')
    .action(async (service: string, opts: { http: string; json?: boolean }) => {
      io.out(await chainCommand(clientFor(opts), service, opts));
    });

  clientCommand(config, 'delete', 'delete one configuration entry')
    .addArgument(kindArgument('<kind>'))
    .argument('<name>')
    .action(async (kind: string, name: string, opts: { http: string }) => {
      io.out(await configDeleteCommand(clientFor(opts), kind, name));
    });
}
