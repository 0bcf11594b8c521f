// Service definitions as operators write them (a file under --config-dir, or the body of
// PUT /v1/agent/service/register) → the validated, normalised ServiceDefinition. Every problem is
// reported with its field path ("checks[1].interval") and the reason; nothing throws.
//
// The format follows Consul's where it can: a service object, `check` or `checks`, and the check's
// type named by which of `http`, `tcp`, `grpc`, `ttl` or `args` it has.
import { describe, field, isObj } from '../state/text.js';
import type { ValidationError } from '../state/types.js';
import { serviceChecks } from './check-definition.js';
import {
  ANY_SERVICE,
  addressProblem,
  at,
  DEFINITION_LIMITS,
  ID_PATTERN,
  onlyFields,
  optString,
  Problems,
  port,
  SERVICE_NAME_PATTERN,
  stringList,
  stringMap,
  TAG_PATTERN,
  weights,
} from './definition-fields.js';
import { SERVICE_PROTOCOLS, type ServiceDefinition, type ServiceProtocol, type Upstream } from './types.js';

export { CHECK_DEFAULTS } from './check-definition.js';
export { ANY_SERVICE, addressProblem, DEFINITION_LIMITS, SERVICE_NAME_PATTERN } from './definition-fields.js';

const SERVICE_FIELDS = [
  'id',
  'name',
  'address',
  'port',
  'tags',
  'meta',
  'protocol',
  'weights',
  'upstreams',
  'check',
  'checks',
] as const;

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
    if (
      typeof service !== 'string' ||
      (service !== ANY_SERVICE && (!SERVICE_NAME_PATTERN.test(service) || service.length > 63))
    ) {
      p.add(
        at(up, 'service'),
        `must be a service name (lower-case letters, digits and '-') or "${ANY_SERVICE}" (an HTTP proxy port that routes by Host), got ${describe(service)}`,
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
  const meta = stringMap(v, 'meta', path, p, DEFINITION_LIMITS.meta);
  const protocol = field(v, 'protocol');
  if (protocol !== undefined && !(SERVICE_PROTOCOLS as readonly unknown[]).includes(protocol)) {
    p.add(at(path, 'protocol'), `must be one of ${SERVICE_PROTOCOLS.join(', ')}, got ${describe(protocol)}`);
  }
  const w = weights(v, path, p);
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
    ...(w !== undefined ? { weights: w } : {}),
    upstreams: ups,
    checks,
  };
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
  const dup = clashes(defs);
  return dup.length > 0 ? dup : defs;
}

/**
 * What must not clash among the services of one agent: service ids, check ids, and upstream ports.
 * The agent listens once on each `localPort`, so two services naming one port for different
 * callers or destinations would leave one of them calling with the other's identity or reaching
 * the other's destination. Instances of one service (same name) may share an upstream port for the
 * same destination: the listener is the same.
 */
export function clashes(defs: readonly ServiceDefinition[]): ValidationError[] {
  const problems: ValidationError[] = [];
  const services = new Set<string>();
  const checks = new Set<string>();
  const ports = new UpstreamPorts();
  for (const d of defs) {
    if (services.has(d.id)) problems.push({ field: 'id', message: `duplicate service id ${describe(d.id)}` });
    services.add(d.id);
    for (const c of d.checks) {
      if (checks.has(c.id))
        problems.push({ field: 'checks.id', message: `duplicate check id ${describe(c.id)}` });
      checks.add(c.id);
    }
    problems.push(...ports.claim(d));
  }
  return problems;
}

/** The upstream ports of an agent's services so far: each held by one caller for one destination. */
export class UpstreamPorts {
  private readonly held = new Map<number, { id: string; name: string; destination: string }>();

  /**
   * Take `d`'s upstream ports; where another service holds one for another caller or destination,
   * the problems instead (and nothing of `d` is taken).
   */
  claim(d: ServiceDefinition): ValidationError[] {
    const problems: ValidationError[] = [];
    for (const u of d.upstreams) {
      const held = this.held.get(u.localPort);
      if (held !== undefined && (held.name !== d.name || held.destination !== u.service))
        problems.push({
          field: 'upstreams.localPort',
          message:
            `localPort ${u.localPort} is used by service ${describe(held.id)} (upstream ${describe(held.destination)}) ` +
            `and by service ${describe(d.id)} (upstream ${describe(u.service)}); each upstream needs a port of its own`,
        });
    }
    if (problems.length > 0) return problems;
    for (const u of d.upstreams)
      if (!this.held.has(u.localPort))
        this.held.set(u.localPort, { id: d.id, name: d.name, destination: u.service });
    return problems;
  }
}
