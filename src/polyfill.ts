// What every entry point needs before anything else runs: import this module first (the agent and
// CLI, the tests, the simulator, the benchmarks).
//
// Node 20 lacks Promise.withResolvers, which libp2p 3's dependencies call (createLibp2p throws
// without it). Node 22+ has it natively.
//
// Regexes of routes, intentions and rate limits are written by operators and matched against what
// callers send. V8 backtracks: `(a+)+` against a crafted 2 KiB path would hold the proxy thread for
// longer than anyone waits. With these two V8 flags, a match that has backtracked 50,000 times
// (V8's --regexp-backtracks-before-fallback) finishes on V8's linear-time engine instead, the one
// Chrome ships for the same purpose, and a write can check that its pattern is one that engine
// matches (the `l` flag; linearRegexProblem in src/core/state/write-checks.ts). Patterns that
// never backtrack much keep the fast engine. V8 flags hold for the whole process: the proxy worker
// thread has them too.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine');
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}
const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = <T>(): Resolvers<T> => {
    let resolve!: Resolvers<T>['resolve'];
    let reject!: Resolvers<T>['reject'];
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
