// What every client command shares: where output goes, how it finds the agent, and how it reads
// what the user hands it (standard input, small files, index options). Kept apart from main.ts so
// the command groups (kv.ts, config.ts, raft.ts) can register themselves without a cycle.
import { readFile, stat } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ApiClient, defaultHttpAddr } from '../api/client.js';
import { MeshError } from '../api/types.js';
import { ANY_SERVICE } from '../core/state/kinds/service-intentions.js';
import { SERVICE_NAME_LENGTH_MAX, serviceNameProblem } from '../core/state/kinds/spec-fields.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** Where a command reads `-` from; tests replace it, the process reads its standard input. */
export type ReadStdin = (bytesMax: number) => Promise<Uint8Array>;

export function httpOption(): Option {
  return new Option('--http <addr>', 'address of the agent HTTP API')
    .env('MESH_HTTP_ADDR')
    .default(defaultHttpAddr);
}

/** A subcommand that talks to the agent: it takes --http like every other. */
export function clientCommand(parent: Command, name: string, description: string): Command {
  return parent.command(name).description(description).addOption(httpOption());
}

/** An empty MESH_HTTP_ADDR counts as unset. */
export function clientFor(opts: { http: string }): ApiClient {
  return new ApiClient(opts.http || defaultHttpAddr);
}

/** Commander parser for an index option (`--cas N`): a safe integer of at least `min`. */
export function parseIndex(min: number): (value: string) => number {
  return (value) => {
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/**
 * Commander parser for an argument that names a service, checked before the agent is asked so a
 * typo is a usage error (exit 2) naming the argument, as a bad option value is. `wildcard`: `*`
 * (every service) is accepted, as intention rules take it.
 */
export function parseServiceName(wildcard: boolean): (value: string) => string {
  return (value) => {
    if (value === ANY_SERVICE) {
      if (wildcard) return value;
      throw new InvalidArgumentError('a call is made by and to one service: give its name, not "*"');
    }
    if (serviceNameProblem(value) === undefined) return value;
    throw new InvalidArgumentError(
      `not a service name: 1 to ${SERVICE_NAME_LENGTH_MAX} lower-case letters, digits or '-', not starting or ending with '-'${wildcard ? ', or "*" for every service' : ''}`,
    );
  };
}

/** Read a whole stream, refusing more than `bytesMax` bytes (it stops reading there). */
export async function readBounded(
  stream: AsyncIterable<Uint8Array | string>,
  bytesMax: number,
  what: string,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += bytes.length;
    if (total > bytesMax)
      throw new MeshError('payload_too_large', `${what} is larger than ${bytesMax} bytes`);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks, total);
}

/** What every message calls the file argument `-`: one name, whichever step of reading it fails. */
export const stdinName = 'standard input';

/** A file argument as messages name it: its path, or `standard input` for `-`. */
export function sourceName(file: string): string {
  return file === '-' ? stdinName : file;
}

export const processStdin: ReadStdin = (bytesMax) => readBounded(process.stdin, bytesMax, stdinName);

/** A file's bytes, refusing a file larger than `bytesMax`; errors name the file. */
export async function readSmallFile(path: string, bytesMax: number): Promise<Uint8Array> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new MeshError('bad_request', `${path}: not a regular file`);
    if (st.size > bytesMax) {
      throw new MeshError(
        'payload_too_large',
        `${path}: larger than ${bytesMax} bytes; is this the right file?`,
      );
    }
    return await readFile(path);
  } catch (err) {
    if (err instanceof MeshError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : `cannot read it (${(err as Error).message})`;
    throw new MeshError('bad_request', `${path}: ${reason}`);
  }
}

/** The bytes as text when they are valid UTF-8, else undefined. */
export function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Ends a command with this exit code after it printed its answer (no error message). */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
