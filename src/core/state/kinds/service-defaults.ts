// service-defaults: settings for every instance of one service (the entry's name is the service
// name), as Consul's kind of the same name. Unset fields fall back to proxy-defaults, then to the
// built-in defaults below.
import { field } from '../text.js';
import type { ValidationError } from '../types.js';
import {
  checkEnum,
  checkPositiveInt,
  checkStringMap,
  PROTOCOLS,
  type Protocol,
  specObject,
} from './fields.js';
import { checkRateLimits, type RateLimitsSpec } from './rate-limits.js';
import type { KindModule } from './types.js';
import { checkUpstreamConfig, type UpstreamConfigSpec } from './upstream-config.js';

export interface ServiceDefaultsSpec {
  /** How the proxy treats the service's traffic (default tcp). */
  protocol?: Protocol;
  /** Free-form labels for operators and tooling; not interpreted by the mesh. */
  meta?: Record<string, string>;
  /** Time for the callee's agent to connect to a local instance. */
  connectTimeoutMs?: number;
  /** Concurrent connections the callee's agent opens to the service's local instances. */
  maxConnections?: number;
  /** Timeout of one HTTP/gRPC request to a local instance (L7 protocols only). */
  localRequestTimeoutMs?: number;
  /** Requests a second each instance takes (L7 protocols only), as Consul's RateLimits. */
  rateLimits?: RateLimitsSpec;
  /** How this service's agent treats its calls to other services: circuit-breaker limits (Consul's UpstreamConfig). */
  upstreamConfig?: UpstreamConfigSpec;
}

export const SERVICE_DEFAULTS_LIMITS = Object.freeze({
  /** As Consul's service meta: 64 entries, keys ≤ 128 characters, values ≤ 512. */
  meta: { entriesMax: 64, keyLengthMax: 128, valueLengthMax: 512 },
  /** Ten minutes: a connect that takes longer is a hung network, not a slow service. */
  connectTimeoutMsMax: 600_000,
  /** 2^31 − 1: the largest delay a Node timer holds, and far above any real connection count. */
  maxConnectionsMax: 2_147_483_647,
  localRequestTimeoutMsMax: 2_147_483_647,
});

const FIELDS = [
  'protocol',
  'meta',
  'connectTimeoutMs',
  'maxConnections',
  'localRequestTimeoutMs',
  'rateLimits',
  'upstreamConfig',
] as const;

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  checkEnum(o, 'protocol', PROTOCOLS, errors);
  checkStringMap(o, 'meta', SERVICE_DEFAULTS_LIMITS.meta, errors);
  checkPositiveInt(o, 'connectTimeoutMs', SERVICE_DEFAULTS_LIMITS.connectTimeoutMsMax, errors);
  checkPositiveInt(o, 'maxConnections', SERVICE_DEFAULTS_LIMITS.maxConnectionsMax, errors);
  checkPositiveInt(o, 'localRequestTimeoutMs', SERVICE_DEFAULTS_LIMITS.localRequestTimeoutMsMax, errors);
  const limits = field(o, 'rateLimits');
  if (limits !== undefined) checkRateLimits(limits, 'rateLimits', errors);
  const upstream = field(o, 'upstreamConfig');
  if (upstream !== undefined) checkUpstreamConfig(upstream, 'upstreamConfig', errors);
  return errors;
}

export const serviceDefaults: KindModule = {
  kind: 'service-defaults',
  description:
    'Settings for every instance of one service: protocol, timeouts, connection limit, rate limits, limits on its calls to others, metadata.',
  validate,
};
