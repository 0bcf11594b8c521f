// proxy-defaults: settings for every proxy in the cluster. There is one entry, named "global"
// (as in Consul); service-defaults override it per service.
import type { ValidationError } from '../types.js';
import { checkEnum, checkScalarMap, PROTOCOLS, type Protocol, specObject } from './fields.js';
import type { KindModule } from './types.js';

export interface ProxyDefaultsSpec {
  /** Protocol of services without their own service-defaults protocol (default tcp). */
  protocol?: Protocol;
  /** Opaque proxy settings, passed to the proxy as they are. */
  config?: Record<string, string | number | boolean>;
}

/** The only name a proxy-defaults entry may have. */
export const PROXY_DEFAULTS_NAME = 'global';

export const PROXY_DEFAULTS_LIMITS = Object.freeze({
  config: { entriesMax: 64, keyLengthMax: 128, valueLengthMax: 4096 },
});

const FIELDS = ['protocol', 'config'] as const;

function validate(spec: unknown): ValidationError[] {
  const errors: ValidationError[] = [];
  const o = specObject(spec, FIELDS, errors);
  if (o === undefined) return errors;
  checkEnum(o, 'protocol', PROTOCOLS, errors);
  checkScalarMap(o, 'config', PROXY_DEFAULTS_LIMITS.config, errors);
  return errors;
}

function validateName(name: string): ValidationError | undefined {
  if (name === PROXY_DEFAULTS_NAME) return undefined;
  return {
    field: 'name',
    message: `must be "${PROXY_DEFAULTS_NAME}" (proxy-defaults is cluster-wide: there is one entry)`,
  };
}

export const proxyDefaults: KindModule = {
  kind: 'proxy-defaults',
  description: 'Cluster-wide proxy settings (one entry, named "global"): default protocol, proxy config.',
  validate,
  validateName,
};
