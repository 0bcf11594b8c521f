// The passive health check of service-resolver (Consul's PassiveHealthCheck, Envoy's outlier
// detection by consecutive failures): each caller's agent counts the calls to an instance that
// failed in a row, and stops sending it calls for a while once they reach maxFailures. The
// instance stays healthy in the catalog; only that agent's proxy avoids it. The timing math lives
// in core/routing/outlier.ts.
import { field } from '../text.js';
import { at, type Errors, objectAt, optInt } from './spec-fields.js';

export interface PassiveHealthCheck {
  /** Failed calls in a row that eject an instance (default 5). */
  maxFailures?: number;
  /** The first ejection's length; each ejection in a row doubles it (default 30 s). */
  baseEjectionTimeMs?: number;
  /** Longest ejection (default 300 s). */
  maxEjectionTimeMs?: number;
  /** Most instances of the service ejected at once, in percent; one may always be (default 10). */
  maxEjectionPercent?: number;
}

export const PASSIVE_HEALTH_DEFAULTS = Object.freeze({
  /** Envoy's consecutive_5xx default: one bad call in a burst is not enough, five in a row is. */
  maxFailures: 5,
  /** Envoy's base_ejection_time: long enough for a restart to finish. */
  baseEjectionTimeMs: 30_000,
  /** Envoy's max_ejection_time: an instance is always retried within five minutes. */
  maxEjectionTimeMs: 300_000,
  /** Envoy's default: a wave of failures ejects a few instances, not the whole service. */
  maxEjectionPercent: 10,
});

export const PASSIVE_HEALTH_LIMITS = Object.freeze({
  maxFailuresMax: 1_000,
  /** One day: longer is an instance that should be deregistered, not ejected. */
  ejectionTimeMsMax: 86_400_000,
});

const FIELDS = ['maxFailures', 'baseEjectionTimeMs', 'maxEjectionTimeMs', 'maxEjectionPercent'] as const;

/** Check a resolver's `passiveHealthCheck` at `path`. */
export function checkPassiveHealthCheck(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, FIELDS, errors);
  if (o === undefined) return;
  optInt(o, 'maxFailures', path, 1, PASSIVE_HEALTH_LIMITS.maxFailuresMax, errors);
  optInt(o, 'baseEjectionTimeMs', path, 1, PASSIVE_HEALTH_LIMITS.ejectionTimeMsMax, errors);
  optInt(o, 'maxEjectionTimeMs', path, 1, PASSIVE_HEALTH_LIMITS.ejectionTimeMsMax, errors);
  optInt(o, 'maxEjectionPercent', path, 0, 100, errors);
  // Compared as they will apply, defaults included: a base alone above the default max is refused
  // rather than silently capped.
  const baseSet = field(o, 'baseEjectionTimeMs');
  const maxSet = field(o, 'maxEjectionTimeMs');
  const base = baseSet ?? PASSIVE_HEALTH_DEFAULTS.baseEjectionTimeMs;
  const max = maxSet ?? PASSIVE_HEALTH_DEFAULTS.maxEjectionTimeMs;
  if (typeof base !== 'number' || typeof max !== 'number' || base <= max) return;
  if (baseSet !== undefined)
    errors.push({
      field: at(path, 'baseEjectionTimeMs'),
      message: `must not exceed maxEjectionTimeMs (${max}${maxSet === undefined ? ', the default' : ''})`,
    });
  else
    errors.push({
      field: at(path, 'maxEjectionTimeMs'),
      message: `must be at least baseEjectionTimeMs (${base}, the default)`,
    });
}
