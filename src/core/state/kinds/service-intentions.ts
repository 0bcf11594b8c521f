// service-intentions: which services may call one service (the entry's name), as Consul's kind of
// the same name. The name may be "*": its sources apply to every destination, below the rules of
// the destination's own entry. What happens when no rule matches is the mesh entry's
// defaultIntention. A source either allows or denies (an L4 intention: every connection and
// request), or lists permissions (an L7 intention: each HTTP or gRPC request by path, method and
// headers), as in Consul.
import { field } from '../text.js';
import type { ValidationError } from '../types.js';
import { specObject } from './fields.js';
import { checkHttpMatch, type HttpMatch } from './http-match.js';
import { at, item, listAt, objectAt, optEnum, optText, serviceNameProblem } from './spec-fields.js';
import type { KindModule } from './types.js';

export const INTENTION_ACTIONS = ['allow', 'deny'] as const;
export type IntentionAction = (typeof INTENTION_ACTIONS)[number];

/** The name that stands for every service, as a source or as the entry's destination. */
export const ANY_SERVICE = '*';

export interface IntentionSource {
  /** A service name, or "*" for every caller. */
  name: string;
  /** Exactly one of `action` (L4) and `permissions` (L7) is set. */
  action?: IntentionAction;
  /**
   * L7: tried in order per request, the first whose `http` matches decides; a request none matches
   * gets the mesh's defaultIntention. A tcp connection from this source is denied (it has no
   * requests to match), as in Consul.
   */
  permissions?: IntentionPermission[];
  /** Why the rule exists, for the next operator. */
  description?: string;
}

export interface IntentionPermission {
  action: IntentionAction;
  /** What the request must look like (every condition given must hold); `{}` matches all. */
  http: HttpMatch;
}

export interface ServiceIntentionsSpec {
  sources: IntentionSource[];
}

export const SERVICE_INTENTIONS_LIMITS = Object.freeze({
  sourcesMin: 1,
  /** Sources are searched per new connection; 256 callers of one service is far beyond usual. */
  sourcesMax: 256,
  descriptionLengthMax: 512,
  /** Permissions are tried one by one per request, so their number bounds the work per request. */
  permissionsMax: 32,
});

const FIELDS = ['sources'] as const;
const SOURCE_FIELDS = ['name', 'action', 'permissions', 'description'] as const;
const PERMISSION_FIELDS = ['action', 'http'] as const;

function checkPermissions(v: unknown, path: string, errors: ValidationError[]): void {
  const list = listAt(v, path, 1, SERVICE_INTENTIONS_LIMITS.permissionsMax, errors);
  list?.forEach((p, i) => {
    const pp = item(path, i);
    const perm = objectAt(p, pp, PERMISSION_FIELDS, errors);
    if (perm === undefined) return;
    requireAction(perm, pp, errors);
    const http = field(perm, 'http');
    if (http === undefined) {
      errors.push({
        field: at(pp, 'http'),
        message:
          'is required: what the request must look like (pathPrefix, methods, header…; {} for every request)',
      });
    } else checkHttpMatch(http, at(pp, 'http'), errors, true);
  });
}

function requireAction(o: Record<string, unknown>, path: string, errors: ValidationError[]): void {
  if (field(o, 'action') === undefined) {
    errors.push({
      field: at(path, 'action'),
      message: `is required: one of ${INTENTION_ACTIONS.join(', ')}`,
    });
  } else optEnum(o, 'action', path, INTENTION_ACTIONS, errors);
}

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  const sources = field(o, 'sources');
  if (sources === undefined) {
    errors.push({ field: 'sources', message: 'is required: list the calling services and allow or deny' });
    return errors;
  }
  const { sourcesMin, sourcesMax, descriptionLengthMax } = SERVICE_INTENTIONS_LIMITS;
  const list = listAt(sources, 'sources', sourcesMin, sourcesMax, errors);
  const seen = new Map<string, number>();
  list?.forEach((s, i) => {
    const path = item('sources', i);
    const src = objectAt(s, path, SOURCE_FIELDS, errors);
    if (src === undefined) return;
    const name = field(src, 'name');
    if (name === undefined) {
      errors.push({ field: at(path, 'name'), message: 'is required: a service name or "*"' });
    } else if (name !== ANY_SERVICE) {
      const problem = serviceNameProblem(name);
      if (problem !== undefined) errors.push({ field: at(path, 'name'), message: `${problem} (or "*")` });
    }
    if (typeof name === 'string') {
      // Two rules for one caller would leave the outcome to their order; refuse instead.
      const first = seen.get(name);
      if (first !== undefined) {
        errors.push({
          field: at(path, 'name'),
          message: `duplicates sources[${first}]; keep one rule per source`,
        });
      } else seen.set(name, i);
    }
    const permissions = field(src, 'permissions');
    if (permissions === undefined) requireAction(src, path, errors);
    else if (field(src, 'action') !== undefined) {
      // Consul: for one source an L4 and an L7 intention are mutually exclusive.
      errors.push({
        field: path,
        message: 'set either action (every call) or permissions (per request), not both',
      });
    } else checkPermissions(permissions, at(path, 'permissions'), errors);
    optText(src, 'description', path, descriptionLengthMax, errors);
  });
  return errors;
}

function validateName(name: string): ValidationError | undefined {
  if (name === ANY_SERVICE) return undefined;
  const problem = serviceNameProblem(name);
  return problem === undefined
    ? undefined
    : { field: 'name', message: `${problem} (or "*" for every service)` };
}

/**
 * Consul's rule: permissions need one destination to match requests of. On the "*" entry they
 * would also refuse every tcp connection from that source across the mesh.
 */
function validateEntry(name: string, spec: unknown): ValidationError[] {
  if (name !== ANY_SERVICE) return [];
  const sources = field(spec as Record<string, unknown>, 'sources');
  const errors: ValidationError[] = [];
  if (!Array.isArray(sources)) return errors;
  sources.forEach((s, i) => {
    if (
      typeof s === 'object' &&
      s !== null &&
      field(s as Record<string, unknown>, 'permissions') !== undefined
    )
      errors.push({
        field: at(item('sources', i), 'permissions'),
        message:
          'is not allowed on the "*" entry (as in Consul): write L7 permissions on the entry of each destination',
      });
  });
  return errors;
}

export const serviceIntentions: KindModule = {
  kind: 'service-intentions',
  description:
    'Which services may call one service ("*": every service): allow or deny per caller, or per request by path, method and headers.',
  validate,
  validateName,
  validateEntry,
  extraNames: [ANY_SERVICE],
};
