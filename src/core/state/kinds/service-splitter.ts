// service-splitter: divide calls to one service (the entry's name) between services or subsets by
// weight, as Consul's kind of the same name: canary releases, blue/green moves, migrations. Works
// for every protocol: per request for http/http2/grpc, per connection for tcp.
import { field } from '../text.js';
import type { ValidationError } from '../types.js';
import { specObject } from './fields.js';
import { checkHeaderModifierFields, type HeaderModifiers } from './header-modifiers.js';
import { validateServiceEntryName } from './service-router.js';
import { at, item, listAt, objectAt, optServiceName, optSubsetName } from './spec-fields.js';
import type { KindModule } from './types.js';

export interface Split {
  /** Percentage of the calls, 0 to 100 with at most two decimals (0.01 % granularity). */
  weight: number;
  /** Default: the splitter's own service. */
  service?: string;
  /** Default: the destination resolver's default subset. */
  serviceSubset?: string;
  /** Headers the caller's agent changes on the split's requests (Consul's RequestHeaders). */
  requestHeaders?: HeaderModifiers;
  /** Headers the caller's agent changes on the answers to them (Consul's ResponseHeaders). */
  responseHeaders?: HeaderModifiers;
}

export interface ServiceSplitterSpec {
  splits: Split[];
}

export const SERVICE_SPLITTER_LIMITS = Object.freeze({
  splitsMin: 1,
  /** A split is drawn by a walk over the list per call; 32 ways is far beyond any rollout plan. */
  splitsMax: 32,
  weightMax: 100,
  /** Weights are percentages with two decimals, so the sum may be off by rounding only. */
  weightSumTolerance: 0.01,
});

const FIELDS = ['splits'] as const;
const SPLIT_FIELDS = ['weight', 'service', 'serviceSubset', 'requestHeaders', 'responseHeaders'] as const;

/** A weight with at most two decimals (allowing for binary floating point: 0.07 * 100 ≠ 7 exactly). */
function hasTwoDecimals(w: number): boolean {
  return Math.abs(w * 100 - Math.round(w * 100)) < 1e-6;
}

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  const splits = field(o, 'splits');
  if (splits === undefined) {
    errors.push({ field: 'splits', message: 'is required: list the services or subsets and their weights' });
    return errors;
  }
  const { splitsMin, splitsMax, weightMax, weightSumTolerance } = SERVICE_SPLITTER_LIMITS;
  const list = listAt(splits, 'splits', splitsMin, splitsMax, errors);
  if (list === undefined) return errors;
  let sum = 0;
  let allWeightsValid = true;
  list.forEach((s, i) => {
    const path = item('splits', i);
    const o = objectAt(s, path, SPLIT_FIELDS, errors);
    if (o === undefined) {
      allWeightsValid = false;
      return;
    }
    const w = field(o, 'weight');
    if (w === undefined) {
      errors.push({ field: at(path, 'weight'), message: `is required: a percentage from 0 to ${weightMax}` });
      allWeightsValid = false;
    } else if (typeof w !== 'number' || !Number.isFinite(w) || w < 0 || w > weightMax || !hasTwoDecimals(w)) {
      errors.push({
        field: at(path, 'weight'),
        message: `must be a number from 0 to ${weightMax} with at most two decimals, got ${String(w)}`,
      });
      allWeightsValid = false;
    } else sum += w;
    optServiceName(o, 'service', path, errors);
    optSubsetName(o, 'serviceSubset', path, errors);
    checkHeaderModifierFields(o, path, errors);
  });
  // The sum is only meaningful when every weight could be read.
  if (allWeightsValid && Math.abs(sum - 100) > weightSumTolerance) {
    errors.push({
      field: 'splits',
      message: `weights must add up to 100, they add up to ${Number(sum.toFixed(2))}`,
    });
  }
  return errors;
}

export const serviceSplitter: KindModule = {
  kind: 'service-splitter',
  description: 'Split calls to one service between services or subsets by weight (canary, migration).',
  validate,
  validateName: validateServiceEntryName,
};
