// service-intentions: which services may call one service (the entry's name), as Consul's kind of
// the same name. The name may be "*": its sources apply to every destination, below the rules of
// the destination's own entry. What happens when no rule matches is the mesh entry's
// defaultIntention.
import { field } from '../text.js';
import type { ValidationError } from '../types.js';
import { specObject } from './fields.js';
import { at, item, listAt, objectAt, optEnum, optText, serviceNameProblem } from './spec-fields.js';
import type { KindModule } from './types.js';

export const INTENTION_ACTIONS = ['allow', 'deny'] as const;
export type IntentionAction = (typeof INTENTION_ACTIONS)[number];

/** The name that stands for every service, as a source or as the entry's destination. */
export const ANY_SERVICE = '*';

export interface IntentionSource {
  /** A service name, or "*" for every caller. */
  name: string;
  action: IntentionAction;
  /** Why the rule exists, for the next operator. */
  description?: string;
}

export interface ServiceIntentionsSpec {
  sources: IntentionSource[];
}

export const SERVICE_INTENTIONS_LIMITS = Object.freeze({
  sourcesMin: 1,
  /** Sources are searched per new connection; 256 callers of one service is far beyond usual. */
  sourcesMax: 256,
  descriptionLengthMax: 512,
});

const FIELDS = ['sources'] as const;
const SOURCE_FIELDS = ['name', 'action', 'description'] as const;

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
    if (field(src, 'action') === undefined) {
      errors.push({
        field: at(path, 'action'),
        message: `is required: one of ${INTENTION_ACTIONS.join(', ')}`,
      });
    } else optEnum(src, 'action', path, INTENTION_ACTIONS, errors);
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

export const serviceIntentions: KindModule = {
  kind: 'service-intentions',
  description: 'Which services may call one service ("*": every service): allow or deny per caller.',
  validate,
  validateName,
  extraNames: [ANY_SERVICE],
};
