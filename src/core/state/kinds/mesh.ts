// mesh: settings of the mesh as a whole. There is one entry, named "global" (as proxy-defaults).
import { field } from '../text.js';
import type { ValidationError } from '../types.js';
import { checkEnum, specObject } from './fields.js';
import { INTENTION_ACTIONS, type IntentionAction } from './service-intentions.js';
import { objectAt, optEnum } from './spec-fields.js';
import type { KindModule } from './types.js';

export interface MeshSpec {
  /** The decision for a call no service-intentions rule matches. */
  defaultIntention?: IntentionAction;
  /** How the instances' agents treat the requests they take in (Consul's mesh HTTP.Incoming). */
  http?: {
    incoming?: { requestNormalization?: { headersWithUnderscoresAction?: HeadersWithUnderscoresAction } };
  };
}

/**
 * What an instance's agent does with a request header whose name holds an underscore (Envoy's
 * headers_with_underscores_action, which Consul's mesh entry sets): pass it on (ALLOW, the
 * default), answer 400 (REJECT_REQUEST), or remove the header (DROP_HEADER). Many servers (CGI,
 * PHP, Django, nginx's fastcgi) read `x_user` and `x-user` as one name, while intentions compare
 * names as sent: a permission on `x-user` cannot see `x_user`.
 */
export const HEADERS_WITH_UNDERSCORES_ACTIONS = ['ALLOW', 'REJECT_REQUEST', 'DROP_HEADER'] as const;
export type HeadersWithUnderscoresAction = (typeof HEADERS_WITH_UNDERSCORES_ACTIONS)[number];

/** A stored mesh spec's action (read leniently: the entry was validated when written). */
export function headersWithUnderscoresAction(spec: unknown): HeadersWithUnderscoresAction {
  const v = (spec as MeshSpec | undefined)?.http?.incoming?.requestNormalization
    ?.headersWithUnderscoresAction;
  return v === 'REJECT_REQUEST' || v === 'DROP_HEADER' ? v : 'ALLOW';
}

/** The only name a mesh entry may have. */
export const MESH_NAME = 'global';

/**
 * Allow when unset, so a new cluster works before anyone writes an intention; an operator who
 * wants zero trust sets deny once the allow rules are in place.
 */
export const DEFAULT_INTENTION: IntentionAction = 'allow';

const FIELDS = ['defaultIntention', 'http'] as const;

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  checkEnum(o, 'defaultIntention', INTENTION_ACTIONS, errors);
  const http = field(o, 'http');
  if (http === undefined) return errors;
  // http.incoming.requestNormalization.headersWithUnderscoresAction, each level an object.
  const incoming = objectAt(http, 'http', ['incoming'], errors);
  const inc = incoming === undefined ? undefined : field(incoming, 'incoming');
  if (inc === undefined) return errors;
  const norm = objectAt(inc, 'http.incoming', ['requestNormalization'], errors);
  const rn = norm === undefined ? undefined : field(norm, 'requestNormalization');
  if (rn === undefined) return errors;
  const path = 'http.incoming.requestNormalization';
  const r = objectAt(rn, path, ['headersWithUnderscoresAction'], errors);
  if (r !== undefined)
    optEnum(r, 'headersWithUnderscoresAction', path, HEADERS_WITH_UNDERSCORES_ACTIONS, errors);
  return errors;
}

function validateName(name: string): ValidationError | undefined {
  if (name === MESH_NAME) return undefined;
  return { field: 'name', message: `must be "${MESH_NAME}" (mesh is cluster-wide: there is one entry)` };
}

export const mesh: KindModule = {
  kind: 'mesh',
  description:
    'Mesh-wide settings (one entry, named "global"): the default intention (allow or deny), and how agents treat header names with underscores.',
  validate,
  validateName,
};
