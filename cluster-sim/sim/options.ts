// Option parsing shared by the simulator's commands.
import { InvalidArgumentError } from 'commander';

/** A commander parser for an integer in [lo, hi], with a message that says the range. */
export function intIn(lo: number, hi: number): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < lo || n > hi)
      throw new InvalidArgumentError(`an integer in [${lo}, ${hi}]`);
    return n;
  };
}
