// The registry of configuration entry kinds. Adding a kind: write its module next to these, add
// one line below, document it in docs/configuration-entries.md.
//
// Adding a kind changes what replicas accept: an agent that does not know a kind records a
// committed entry of it as invalid. Roll a new kind out to every agent before using it.
import type { ValidationError } from '../types.js';
import { caRoots } from './ca-roots.js';
import { mesh } from './mesh.js';
import { proxyDefaults } from './proxy-defaults.js';
import { serviceDefaults } from './service-defaults.js';
import { serviceIntentions } from './service-intentions.js';
import { serviceResolver } from './service-resolver.js';
import { serviceRouter } from './service-router.js';
import { serviceSplitter } from './service-splitter.js';
import type { KindModule } from './types.js';

export type { KindModule } from './types.js';

export const KINDS: Readonly<Record<string, KindModule>> = Object.freeze({
  [caRoots.kind]: caRoots,
  [mesh.kind]: mesh,
  [proxyDefaults.kind]: proxyDefaults,
  [serviceDefaults.kind]: serviceDefaults,
  [serviceIntentions.kind]: serviceIntentions,
  [serviceResolver.kind]: serviceResolver,
  [serviceRouter.kind]: serviceRouter,
  [serviceSplitter.kind]: serviceSplitter,
});

/** Known kinds, sorted. */
export const KIND_NAMES: readonly string[] = Object.freeze(Object.keys(KINDS).sort());

/** The module of a kind, if it is known (own properties only: "constructor" is not a kind). */
export function kindModule(kind: string): KindModule | undefined {
  return Object.hasOwn(KINDS, kind) ? KINDS[kind] : undefined;
}

export function unknownKind(kind: string): ValidationError {
  const shown = kind.length > 64 ? `${kind.slice(0, 64)}…` : kind;
  return {
    field: 'kind',
    message: `unknown kind ${JSON.stringify(shown)}; known kinds: ${KIND_NAMES.join(', ')}`,
  };
}
