// Service definitions as operators write them (a file under --config-dir, or the body of
// PUT /v1/agent/service/register) → the validated, normalised ServiceDefinition. Every problem is
// reported with its field path ("checks[1].interval") and the reason; nothing throws.
//
// The format follows Consul's where it can: a service object, `check` or `checks`, and the check's
// type named by which of `http`, `tcp`, `grpc`, `ttl` or `args` it has.
import { durationMs } from '../duration.js';
import { describe, field, fieldName, isObj, type Obj, utf8Length } from '../state/text.js';
import type { ValidationError } from '../state/types.js';
import {
  CHECK_STATUSES,
  type CheckDefinition,
  type CheckSpec,
  type CheckStatus,
  SERVICE_PROTOCOLS,
  type ServiceDefinition,
  type ServiceProtocol,
  type Upstream,
} from './types.js';

export const DEFINITION_LIMITS = Object.freeze({
  /** Service names are DNS labels (NAME.service.mesh), so 63 characters. */
  nameLengthMax: 63,
  /** Service and check ids: free-form but printable, as Consul's. */
  idLengthMax: 128,
  /** Tags are DNS labels too (TAG.NAME.service.mesh). 64 tags is far above real use. */
  tagsMax: 64,
  tagLengthMax: 63,
  /** As Consul's service meta: 64 entries, keys ≤ 128 characters, values ≤ 512. */
  metaEntriesMax: 64,
  metaKeyLengthMax: 128,
  metaValueLengthMax: 512,
  upstreamsMax: 64,
  checksPerServiceMax: 32,
  /** A host name or IP literal. */
  addressLengthMax: 253,
  urlLengthMax: 2048,
  headersMax: 32,
  headerValueLengthMax: 1024,
  argsMax: 64,
  argLengthMax: 4096,
  /** A probe more often than every 100 ms is a mistake that would load the service for nothing. */
  intervalMsMin: 100,
  /** Thresholds above 100 consecutive results would hide a dead service for too long to be intended. */
  thresholdMax: 100,
  /** Definitions in one file. */
  servicesPerFileMax: 1024,
});

/** Check defaults, as Consul's: probe every 10 s; a probe may take 5 s (never more than the interval). */
export const CHECK_DEFAULTS = Object.freeze({
  intervalMs: 10_000,
  timeoutMs: 5_000,
  /** Until a check has passed, the instance does not take traffic (Consul starts checks critical too). */
  initialStatus: 'critical' as CheckStatus,
  successBeforePassing: 0,
  failuresBeforeCritical: 0,
});

/** Lower-case letters, digits and '-', not starting or ending with '-': a DNS label. */
export const SERVICE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const TAG_PATTERN = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/;
const ID_PATTERN = /^[^\s/\p{Cc}]+$/u;

const SERVICE_FIELDS = [
  'id',
  'name',
  'address',
  'port',
  'tags',
  'meta',
  'protocol',
  'upstreams',
  'check',
  'checks',
] as const;
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

class Problems {
  readonly list: ValidationError[] = [];
  add(path: string, message: string): void {
    this.list.push({ field: path, message });
  }
}

function at(parent: string, child: string): string {
  return parent === '' ? child : `${parent}.${child}`;
}

function onlyFields(o: Obj, allowed: readonly string[], path: string, p: Problems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      p.add(at(path, fieldName(k)), `unknown field; known fields: ${[...allowed].sort().join(', ')}`);
    }
  }
}

function text(s: unknown, max: number): s is string {
  return typeof s === 'string' && s.length <= max && utf8Length(s) >= 0;
}

function optString(o: Obj, key: string, path: string, max: number, p: Problems): string | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  if (!text(v, max)) {
    p.add(at(path, key), `must be a string of at most ${max} characters, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function port(v: unknown, path: string, p: Problems): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    p.add(path, `must be a port number from 1 to 65535, got ${describe(v)}`);
    return 0;
  }
  return v;
}

function optBool(o: Obj, key: string, path: string, p: Problems): boolean {
  const v = field(o, key);
  if (v === undefined) return false;
  if (typeof v !== 'boolean') {
    p.add(at(path, key), `must be true or false, got ${describe(v)}`);
    return false;
  }
  return v;
}

function optDuration(o: Obj, key: string, path: string, p: Problems): number | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const ms = durationMs(v);
  if (ms === undefined) {
    p.add(at(path, key), `must be a duration like "10s", "500ms" or "1m", got ${describe(v)}`);
  }
  return ms;
}

function optCount(o: Obj, key: string, path: string, p: Problems): number | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  const max = DEFINITION_LIMITS.thresholdMax;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    p.add(at(path, key), `must be a whole number from 0 to ${max}, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function stringList(
  v: unknown,
  path: string,
  max: number,
  p: Problems,
  each: (s: string) => string | undefined,
) {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    p.add(path, `must be a list, got ${describe(v)}`);
    return [];
  }
  if (v.length > max) {
    p.add(path, `at most ${max} entries, got ${v.length}`);
    return [];
  }
  const out: string[] = [];
  v.forEach((s, i) => {
    const problem = typeof s === 'string' ? each(s) : `must be a string, got ${describe(s)}`;
    if (problem === undefined) out.push(s as string);
    else p.add(`${path}[${i}]`, problem);
  });
  return out;
}

function stringMap(
  v: unknown,
  path: string,
  p: Problems,
  entriesMax: number,
  keyMax: number,
  valueMax: number,
) {
  const out: Record<string, string> = {};
  if (v === undefined) return out;
  if (!isObj(v)) {
    p.add(path, `must be a map of strings, got ${describe(v)}`);
    return out;
  }
  const keys = Object.keys(v);
  if (keys.length > entriesMax) {
    p.add(path, `at most ${entriesMax} entries, got ${keys.length}`);
    return out;
  }
  for (const k of keys) {
    const value = v[k];
    if (k.length === 0 || !text(k, keyMax)) p.add(path, `keys must be 1 to ${keyMax} characters`);
    else if (!text(value, valueMax))
      p.add(`${path}.${fieldName(k)}`, `must be a string of at most ${valueMax} characters`);
    else out[k] = value;
  }
  return out;
}

/** A host name or an IP literal (v6 without brackets). */
export function addressProblem(s: string): string | undefined {
  if (s.length === 0 || s.length > DEFINITION_LIMITS.addressLengthMax) {
    return `must be 1 to ${DEFINITION_LIMITS.addressLengthMax} characters`;
  }
  if (s.includes(':')) return /^[0-9A-Fa-f:.]+$/.test(s) ? undefined : 'is not a valid IPv6 address';
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(s)) return 'is not a host name or IP address';
  return undefined;
}

/** "host:port" for tcp and grpc checks; grpc may add "/service". */
function hostPortProblem(s: string): string | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return 'must be HOST:PORT (IPv6 in brackets)';
  const n = Number(m[2]);
  if (n < 1 || n > 65535) return 'port must be from 1 to 65535';
  return undefined;
}

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
      const headers = stringMap(
        field(o, 'header'),
        at(path, 'header'),
        p,
        DEFINITION_LIMITS.headersMax,
        128,
        DEFINITION_LIMITS.headerValueLengthMax,
      );
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

function upstreams(v: unknown, path: string, p: Problems): Upstream[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > DEFINITION_LIMITS.upstreamsMax) {
    p.add(path, `must be a list of at most ${DEFINITION_LIMITS.upstreamsMax} upstreams`);
    return [];
  }
  const out: Upstream[] = [];
  const ports = new Set<number>();
  v.forEach((u, i) => {
    const up = `${path}[${i}]`;
    if (!isObj(u)) {
      p.add(up, 'must be an object like { "service": "api", "localPort": 9191 }');
      return;
    }
    onlyFields(u, ['service', 'localPort'], up, p);
    const service = field(u, 'service');
    if (typeof service !== 'string' || !SERVICE_NAME_PATTERN.test(service) || service.length > 63) {
      p.add(
        at(up, 'service'),
        `must be a service name (lower-case letters, digits and '-'), got ${describe(service)}`,
      );
      return;
    }
    const localPort = port(field(u, 'localPort'), at(up, 'localPort'), p);
    if (localPort === 0) return;
    if (ports.has(localPort))
      p.add(at(up, 'localPort'), `port ${localPort} is already used by another upstream`);
    ports.add(localPort);
    out.push({ service, localPort });
  });
  return out;
}

/** One service object → a definition, or the list of problems. `path` prefixes every field. */
export function parseService(v: unknown, path = ''): ServiceDefinition | ValidationError[] {
  const p = new Problems();
  if (!isObj(v)) {
    p.add(path, `a service definition must be an object, got ${describe(v)}`);
    return p.list;
  }
  onlyFields(v, SERVICE_FIELDS, path, p);
  const name = field(v, 'name');
  if (name === undefined) p.add(at(path, 'name'), 'is required');
  else if (
    typeof name !== 'string' ||
    name.length > DEFINITION_LIMITS.nameLengthMax ||
    !SERVICE_NAME_PATTERN.test(name)
  ) {
    p.add(
      at(path, 'name'),
      `must be 1 to ${DEFINITION_LIMITS.nameLengthMax} lower-case letters, digits or '-' (a DNS label), got ${describe(name)}`,
    );
  }
  const id =
    optString(v, 'id', path, DEFINITION_LIMITS.idLengthMax, p) ?? (typeof name === 'string' ? name : '');
  if (field(v, 'id') !== undefined && !ID_PATTERN.test(id)) {
    p.add(at(path, 'id'), 'must not be empty or hold spaces, slashes or control characters');
  }
  const address = optString(v, 'address', path, DEFINITION_LIMITS.addressLengthMax, p) ?? '';
  if (address !== '') {
    const bad = addressProblem(address);
    if (bad !== undefined) p.add(at(path, 'address'), `${bad}, got ${describe(address)}`);
  }
  if (field(v, 'port') === undefined)
    p.add(at(path, 'port'), 'is required (the port the instance listens on)');
  const portNumber = field(v, 'port') === undefined ? 0 : port(field(v, 'port'), at(path, 'port'), p);
  const tags = stringList(field(v, 'tags'), at(path, 'tags'), DEFINITION_LIMITS.tagsMax, p, (s) =>
    s.length <= DEFINITION_LIMITS.tagLengthMax && TAG_PATTERN.test(s)
      ? undefined
      : `must be 1 to ${DEFINITION_LIMITS.tagLengthMax} letters, digits, '_' or '-' (tags are DNS labels), got ${describe(s)}`,
  );
  const meta = stringMap(
    field(v, 'meta'),
    at(path, 'meta'),
    p,
    DEFINITION_LIMITS.metaEntriesMax,
    DEFINITION_LIMITS.metaKeyLengthMax,
    DEFINITION_LIMITS.metaValueLengthMax,
  );
  const protocol = field(v, 'protocol');
  if (protocol !== undefined && !(SERVICE_PROTOCOLS as readonly unknown[]).includes(protocol)) {
    p.add(at(path, 'protocol'), `must be one of ${SERVICE_PROTOCOLS.join(', ')}, got ${describe(protocol)}`);
  }
  const ups = upstreams(field(v, 'upstreams'), at(path, 'upstreams'), p);
  const checks = serviceChecks(v, path, id, p);
  if (p.list.length > 0) return p.list;
  return {
    id,
    name: name as string,
    address,
    port: portNumber,
    tags: [...new Set(tags)],
    meta,
    protocol: protocol as ServiceProtocol | undefined,
    upstreams: ups,
    checks,
  };
}

function serviceChecks(v: Obj, path: string, serviceId: string, p: Problems): CheckDefinition[] {
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

/**
 * A file's content: one service (`{ "service": {...} }`), several (`{ "services": [...] }`), or a
 * bare service object. Returns the definitions or every problem found.
 */
export function parseServiceFile(v: unknown): ServiceDefinition[] | ValidationError[] {
  let items: Array<{ value: unknown; path: string }>;
  if (isObj(v) && Object.keys(v).length === 1 && field(v, 'service') !== undefined) {
    items = [{ value: v.service, path: 'service' }];
  } else if (isObj(v) && Object.keys(v).length === 1 && field(v, 'services') !== undefined) {
    const list = v.services;
    if (!Array.isArray(list))
      return [{ field: 'services', message: 'must be a list of service definitions' }];
    if (list.length > DEFINITION_LIMITS.servicesPerFileMax) {
      return [
        { field: 'services', message: `at most ${DEFINITION_LIMITS.servicesPerFileMax} services per file` },
      ];
    }
    items = list.map((value, i) => ({ value, path: `services[${i}]` }));
  } else {
    items = [{ value: v, path: '' }];
  }
  const defs: ServiceDefinition[] = [];
  const problems: ValidationError[] = [];
  for (const item of items) {
    const r = parseService(item.value, item.path);
    if (Array.isArray(r)) problems.push(...r);
    else defs.push(r);
  }
  if (problems.length > 0) return problems;
  const dup = duplicateIds(defs);
  return dup.length > 0 ? dup : defs;
}

/** Service ids and check ids must be unique on an agent. */
export function duplicateIds(defs: readonly ServiceDefinition[]): ValidationError[] {
  const problems: ValidationError[] = [];
  const services = new Set<string>();
  const checks = new Set<string>();
  for (const d of defs) {
    if (services.has(d.id)) problems.push({ field: 'id', message: `duplicate service id ${describe(d.id)}` });
    services.add(d.id);
    for (const c of d.checks) {
      if (checks.has(c.id))
        problems.push({ field: 'checks.id', message: `duplicate check id ${describe(c.id)}` });
      checks.add(c.id);
    }
  }
  return problems;
}
