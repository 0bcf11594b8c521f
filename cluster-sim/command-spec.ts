// The shape of a `npm run cluster` command and the parsing its arguments share (cluster-commands.ts).

export type Outcome = 'continue' | 'quit';

/** A mistake in a command line or a state that forbids it: printed as one line, the loop goes on. */
export class CommandError extends Error {}

export interface CommandSpec {
  usage: string;
  help: string;
  /** More forms of the same command, each a line of help. */
  also?: Array<[string, string]>;
  /** Fewest and most arguments; outside them the command prints its usage. */
  arity?: [number, number];
  run: (args: string[], usage: string) => Promise<Outcome | undefined>;
}

/** Argument `token` as an integer from `min` to `max`, or a CommandError that names `what`. */
export function int(
  token: string | undefined,
  what: string,
  min: number,
  max: number,
  usage: string,
): number {
  if (token === undefined) throw new CommandError(`missing ${what} (usage: ${usage})`);
  const n = /^\d+$/.test(token) ? Number(token) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new CommandError(
      `${what}: expected an integer from ${min} to ${max}, got ${JSON.stringify(token)}`,
    );
  return n;
}
