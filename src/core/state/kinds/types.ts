import type { ValidationError } from '../types.js';

/**
 * One kind of configuration entry. A new kind is one module file plus one line in KINDS (index.ts)
 * and a section in docs/configuration-entries.md.
 *
 * Every function is pure and deterministic: replicas run them on apply, so the same input must give
 * the same answer on every agent.
 */
export interface KindModule {
  /** The `kind` string of entries of this kind, e.g. "service-defaults". */
  readonly kind: string;
  /** One line for operators (listed by the API and the CLI). */
  readonly description: string;
  /**
   * Every problem with a spec; empty when valid. Fields are relative to the spec ("protocol",
   * "meta.team"; '' for the spec itself). Must not throw for any input.
   */
  validate(spec: unknown): ValidationError[];
  /** Rules for the entry's name beyond the common pattern (e.g. proxy-defaults: only "global"). */
  validateName?(name: string): ValidationError | undefined;
  /**
   * Rules that need both the name and a spec that passed `validate` (service-intentions: no L7
   * permissions on the "*" entry). Fields as for `validate`. Must not throw.
   */
  validateEntry?(name: string, spec: unknown): ValidationError[];
  /**
   * Names accepted although the common name pattern refuses them (service-intentions: "*", which
   * stands for every service). validateName still runs on them.
   */
  readonly extraNames?: readonly string[];
  /**
   * The stored form of a spec that passed `validate`. Without it the spec is stored as a canonical
   * copy. Must not fill in defaults: the stored form would then depend on the agent's version.
   */
  normalise?(spec: unknown): unknown;
  /**
   * Written only by the agents themselves (through Raft like any entry), never through the config
   * API or CLI: e.g. ca-roots, which the leader maintains.
   */
  readonly managed?: boolean;
}
