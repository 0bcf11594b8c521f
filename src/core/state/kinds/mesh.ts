// mesh: settings of the mesh as a whole. There is one entry, named "global" (as proxy-defaults).
import type { ValidationError } from '../types.js';
import { checkEnum, specObject } from './fields.js';
import { INTENTION_ACTIONS, type IntentionAction } from './service-intentions.js';
import type { KindModule } from './types.js';

export interface MeshSpec {
  /** The decision for a call no service-intentions rule matches. */
  defaultIntention?: IntentionAction;
}

/** The only name a mesh entry may have. */
export const MESH_NAME = 'global';

/**
 * Allow when unset, so a new cluster works before anyone writes an intention; an operator who
 * wants zero trust sets deny once the allow rules are in place.
 */
export const DEFAULT_INTENTION: IntentionAction = 'allow';

const FIELDS = ['defaultIntention'] as const;

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  checkEnum(o, 'defaultIntention', INTENTION_ACTIONS, errors);
  return errors;
}

function validateName(name: string): ValidationError | undefined {
  if (name === MESH_NAME) return undefined;
  return { field: 'name', message: `must be "${MESH_NAME}" (mesh is cluster-wide: there is one entry)` };
}

export const mesh: KindModule = {
  kind: 'mesh',
  description: 'Mesh-wide settings (one entry, named "global"): the default intention (allow or deny).',
  validate,
  validateName,
};
