// Shared fixtures of the routing tests: an in-memory entry store and instances.
import type { CheckStatus } from '../../../src/core/catalog/types.js';
import type { Lookup } from '../../../src/core/routing/index.js';

/** A lookup over entries written as [kind, name, spec]. */
export function lookupOf(entries: ReadonlyArray<readonly [string, string, unknown]>): Lookup {
  const m = new Map(entries.map(([kind, name, spec]) => [`${kind}/${name}`, spec]));
  return (kind, name) => m.get(`${kind}/${name}`);
}

export interface TestInstance {
  id: string;
  service: string;
  tags: string[];
  meta: Record<string, string>;
  status: CheckStatus;
}

export function inst(
  id: string,
  service: string,
  opts: { tags?: string[]; meta?: Record<string, string>; status?: CheckStatus } = {},
): TestInstance {
  return { id, service, tags: opts.tags ?? [], meta: opts.meta ?? {}, status: opts.status ?? 'passing' };
}

export const statusOf = (i: TestInstance): CheckStatus => i.status;

/** instancesOf over a flat list. */
export function byService(list: readonly TestInstance[]): (service: string) => TestInstance[] {
  return (service) => list.filter((i) => i.service === service);
}
