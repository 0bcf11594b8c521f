// Health check definitions inside a service definition: the check type is named by which of
// `http`, `tcp`, `grpc`, `ttl` or `args` is present (as in Consul); defaults are filled and every
// problem is reported with its field path.
import { describe, field, isObj, type Obj } from '../state/text.js';
import {
  at,
  DEFINITION_LIMITS,
  hostPortProblem,
  ID_PATTERN,
  onlyFields,
  optBool,
  optCount,
  optDuration,
  optString,
  type Problems,
  stringList,
  stringMap,
  text,
} from './definition-fields.js';
import { CHECK_STATUSES, type CheckDefinition, type CheckSpec, type CheckStatus } from './types.js';

/** Check defaults, as Consul's: probe every 10 s; a probe may take 5 s (never more than the interval). */
export const CHECK_DEFAULTS = Object.freeze({
  intervalMs: 10_000,
  timeoutMs: 5_000,
  /** Until a check has passed, the instance does not take traffic (Consul starts checks critical too). */
  initialStatus: 'critical' as CheckStatus,
  successBeforePassing: 0,
  failuresBeforeCritical: 0,
});

const CHECK_FIELDS = [
  'id',
  'name',
  'http',
  'method',
  'header',
  'tlsSkipVerify',
  'tcp',
  'grpc',
  'grpcUseTls',
  'args',
  'ttl',
  'interval',
  'timeout',
  'successBeforePassing',
  'failuresBeforeCritical',
  'status',
] as const;
const CHECK_TYPES = ['http', 'tcp', 'grpc', 'ttl', 'args'] as const;

function checkSpec(o: Obj, path: string, p: Problems): CheckSpec | undefined {
  const present = CHECK_TYPES.filter((t) => field(o, t) !== undefined);
  if (present.length !== 1) {
    p.add(
      path,
      present.length === 0
        ? 'give exactly one of http, tcp, grpc, ttl or args (the check type)'
        : `give exactly one check type, got ${present.join(' and ')}`,
    );
    return undefined;
  }
  const type = present[0]!;
  const misplaced = (keys: readonly string[], owner: string) => {
    for (const k of keys)
      if (field(o, k) !== undefined) p.add(at(path, k), `only applies to ${owner} checks`);
  };
  if (type !== 'http') misplaced(['method', 'header'], 'http');
  if (type !== 'http' && type !== 'grpc') misplaced(['tlsSkipVerify'], 'http and grpc');
  if (type !== 'grpc') misplaced(['grpcUseTls'], 'grpc');
  switch (type) {
    case 'http': {
      const url = optString(o, 'http', path, DEFINITION_LIMITS.urlLengthMax, p);
      if (url === undefined) return undefined;
      if (!/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) {
        p.add(at(path, 'http'), `must be an http:// or https:// URL, got ${describe(url)}`);
        return undefined;
      }
      const method = optString(o, 'method', path, 16, p) ?? 'GET';
      if (!/^[A-Z]+$/.test(method)) p.add(at(path, 'method'), 'must be an upper-case HTTP method, e.g. GET');
      const headers = stringMap(o, 'header', path, p, DEFINITION_LIMITS.header);
      return { type, url, method, headers, tlsSkipVerify: optBool(o, 'tlsSkipVerify', path, p) };
    }
    case 'tcp': {
      const address = optString(o, 'tcp', path, DEFINITION_LIMITS.addressLengthMax + 8, p);
      const bad = address === undefined ? undefined : hostPortProblem(address);
      if (bad !== undefined) p.add(at(path, 'tcp'), `${bad}, got ${describe(address)}`);
      return address === undefined || bad !== undefined ? undefined : { type, address };
    }
    case 'grpc': {
      const target = optString(o, 'grpc', path, DEFINITION_LIMITS.addressLengthMax + 136, p);
      if (target === undefined) return undefined;
      const slash = target.indexOf('/');
      const address = slash < 0 ? target : target.slice(0, slash);
      const service = slash < 0 ? '' : target.slice(slash + 1);
      const bad = hostPortProblem(address);
      if (bad !== undefined) {
        p.add(at(path, 'grpc'), `must be HOST:PORT or HOST:PORT/SERVICE: ${bad}, got ${describe(target)}`);
        return undefined;
      }
      return {
        type,
        address,
        service,
        tls: optBool(o, 'grpcUseTls', path, p),
        tlsSkipVerify: optBool(o, 'tlsSkipVerify', path, p),
      };
    }
    case 'ttl': {
      const ttlMs = optDuration(o, 'ttl', path, p);
      if (ttlMs === undefined) return undefined;
      if (ttlMs < DEFINITION_LIMITS.intervalMsMin) {
        p.add(at(path, 'ttl'), `must be at least ${DEFINITION_LIMITS.intervalMsMin}ms`);
        return undefined;
      }
      return { type, ttlMs };
    }
    case 'args': {
      const args = stringList(field(o, 'args'), at(path, 'args'), DEFINITION_LIMITS.argsMax, p, (s) =>
        text(s, DEFINITION_LIMITS.argLengthMax) && !s.includes('\0')
          ? undefined
          : `must be at most ${DEFINITION_LIMITS.argLengthMax} characters without NUL`,
      );
      if (args.length === 0) {
        if (Array.isArray(field(o, 'args')) && (field(o, 'args') as unknown[]).length === 0) {
          p.add(at(path, 'args'), 'must name the program to run: ["/path/to/program", "arg", ...]');
        }
        return undefined;
      }
      return { type: 'script', args };
    }
  }
}

function checkDefinition(
  v: unknown,
  path: string,
  serviceId: string,
  p: Problems,
): CheckDefinition | undefined {
  if (!isObj(v)) {
    p.add(path, `must be an object, got ${describe(v)}`);
    return undefined;
  }
  onlyFields(v, CHECK_FIELDS, path, p);
  const before = p.list.length;
  const spec = checkSpec(v, path, p);
  const id = optString(v, 'id', path, DEFINITION_LIMITS.idLengthMax, p);
  if (id !== undefined && !ID_PATTERN.test(id))
    p.add(at(path, 'id'), 'must not be empty or hold spaces or slashes');
  const name = optString(v, 'name', path, 128, p);
  const interval = optDuration(v, 'interval', path, p);
  const timeout = optDuration(v, 'timeout', path, p);
  const success = optCount(v, 'successBeforePassing', path, p);
  const failures = optCount(v, 'failuresBeforeCritical', path, p);
  const status = field(v, 'status');
  if (status !== undefined && !(CHECK_STATUSES as readonly unknown[]).includes(status)) {
    p.add(at(path, 'status'), `must be one of ${CHECK_STATUSES.join(', ')}, got ${describe(status)}`);
  }
  if (interval !== undefined && interval < DEFINITION_LIMITS.intervalMsMin) {
    p.add(at(path, 'interval'), `must be at least ${DEFINITION_LIMITS.intervalMsMin}ms`);
  }
  if (spec?.type === 'ttl') {
    for (const k of ['interval', 'timeout', 'successBeforePassing', 'failuresBeforeCritical']) {
      if (field(v, k) !== undefined)
        p.add(at(path, k), 'does not apply to ttl checks (the service reports its status)');
    }
  }
  if (p.list.length > before || spec === undefined) return undefined;
  const intervalMs = interval ?? CHECK_DEFAULTS.intervalMs;
  const timeoutMs = timeout ?? Math.min(CHECK_DEFAULTS.timeoutMs, intervalMs);
  if (timeoutMs > intervalMs) {
    p.add(at(path, 'timeout'), `must not be longer than the interval (${intervalMs}ms)`);
    return undefined;
  }
  return {
    id: id ?? '',
    name: name ?? defaultCheckName(spec),
    serviceId,
    spec,
    intervalMs,
    timeoutMs,
    successBeforePassing: success ?? CHECK_DEFAULTS.successBeforePassing,
    failuresBeforeCritical: failures ?? CHECK_DEFAULTS.failuresBeforeCritical,
    initialStatus: (status as CheckStatus | undefined) ?? CHECK_DEFAULTS.initialStatus,
  };
}

function defaultCheckName(spec: CheckSpec): string {
  switch (spec.type) {
    case 'http':
      return `HTTP ${spec.method} ${spec.url}`;
    case 'tcp':
      return `TCP ${spec.address}`;
    case 'grpc':
      return `gRPC health ${spec.address}${spec.service ? `/${spec.service}` : ''}`;
    case 'script':
      return `Script ${spec.args[0]}`;
    case 'ttl':
      return 'TTL';
  }
}

export function serviceChecks(v: Obj, path: string, serviceId: string, p: Problems): CheckDefinition[] {
  const one = field(v, 'check');
  const many = field(v, 'checks');
  if (one !== undefined && many !== undefined) {
    p.add(at(path, 'check'), 'give either check or checks, not both');
    return [];
  }
  const list: unknown[] =
    one !== undefined ? [one] : many === undefined ? [] : Array.isArray(many) ? many : [];
  if (many !== undefined && !Array.isArray(many)) p.add(at(path, 'checks'), 'must be a list of checks');
  if (list.length > DEFINITION_LIMITS.checksPerServiceMax) {
    p.add(at(path, 'checks'), `at most ${DEFINITION_LIMITS.checksPerServiceMax} checks per service`);
    return [];
  }
  const out: CheckDefinition[] = [];
  list.forEach((c, i) => {
    const cpath = one !== undefined ? at(path, 'check') : `${at(path, 'checks')}[${i}]`;
    const def = checkDefinition(c, cpath, serviceId, p);
    if (def) out.push(def);
  });
  // Default ids as Consul: service:<id>, and service:<id>:<n> (from 1) when there are several.
  out.forEach((c, i) => {
    if (c.id === '') c.id = out.length === 1 ? `service:${serviceId}` : `service:${serviceId}:${i + 1}`;
  });
  const seen = new Set<string>();
  out.forEach((c, i) => {
    if (seen.has(c.id)) p.add(`${at(path, 'checks')}[${i}].id`, `duplicate check id ${describe(c.id)}`);
    seen.add(c.id);
  });
  return out;
}
