import { StateMachine } from '../../../src/core/state/state-machine.js';
import type { StateMachineOptions } from '../../../src/core/state/types.js';

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

/** A machine with the commands applied at indices 1, 2, … (asserts each one succeeds). */
export function machineWith(cmds: unknown[], options: StateMachineOptions = {}): StateMachine {
  const m = new StateMachine(options);
  cmds.forEach((c, i) => {
    const r = m.apply(i + 1, c);
    if (!r.ok) throw new Error(`setup command ${i + 1} failed: ${r.message}`);
  });
  return m;
}

/** Everything a reader can observe, for comparing two machines. */
export function observe(m: StateMachine, prefixes: readonly string[]): unknown {
  return {
    applied: m.appliedIndex,
    kv: m.kvList(''),
    config: m.configList(),
    kvIndex: prefixes.map((p) => [p, m.kvIndex(p), m.kvKeyIndex(p)]),
    configIndex: [
      m.configIndex(),
      m.configIndex('service-defaults'),
      m.configIndex('proxy-defaults'),
      m.configIndex('service-defaults', 'web'),
      m.configIndex('proxy-defaults', 'global'),
    ],
  };
}
