// Catalog messages and their validation at the edge. Decoded wire data is `unknown` until one of
// the parse functions accepts it; they return a reason string instead of throwing.
import { isObj, utf8Length } from '../state/text.js';
import { CHECK_OUTPUT_BYTES_MAX } from './check-state.js';
import { addressProblem, DEFINITION_LIMITS, SERVICE_NAME_PATTERN } from './definition.js';
import {
  CHECK_STATUSES,
  type CheckState,
  type CheckType,
  type Instance,
  type InstanceWeights,
  SERVICE_PROTOCOLS,
  type ServiceProtocol,
} from './types.js';

export type NodeId = string;

/** Everything one agent hosts, at one version. Instances sorted by id. */
export interface NodeRecord {
  node: NodeId;
  version: number;
  instances: Instance[];
}

/**
 * What changed on one agent between `base` and `version`, published on the gossip topic by that
 * agent. `truncated` deltas carry no instances (the change was too big for one gossip message):
 * receivers fetch the whole record from the agent instead.
 */
export interface Delta {
  node: NodeId;
  base: number;
  version: number;
  upserts: Instance[];
  removes: string[];
  truncated: boolean;
}

/**
 * Point-to-point messages (anti-entropy and repair):
 * - `digest`: the sender's version of every record it holds. The receiver answers with `records`
 *   holding what it has newer, and `want` naming the nodes the sender has newer.
 * - `records`: full records; when `want` is not empty the receiver answers with those records
 *   (and an empty `want`, which bounds an exchange to three messages).
 * - `pull`: ask for the full records of these nodes (after a gap in a node's deltas).
 */
export type CatalogMessage =
  | { t: 'digest'; versions: Array<[NodeId, number]> }
  | { t: 'records'; records: NodeRecord[]; want: NodeId[] }
  | { t: 'pull'; nodes: NodeId[] };

export const WIRE_LIMITS = Object.freeze({
  /** Agents tracked: as the membership table's bound. */
  nodesMax: 10_000,
  /** Instances one agent may host (registration refuses more). A record of this many instances
   * with typical definitions (~300 bytes) is ~1.2 MB, well inside the 4 MiB frame. */
  instancesPerNodeMax: 4096,
  /** Instances in one `records` message; what does not fit goes in the next exchange. */
  instancesPerMessageMax: 8192,
  /** Node ids per `pull` / `want`. */
  nodesPerRequestMax: 1024,
  checksPerInstanceMax: DEFINITION_LIMITS.checksPerServiceMax,
  /** Check output kept and gossiped (the runner truncates to it). */
  checkOutputBytesMax: CHECK_OUTPUT_BYTES_MAX,
  nodeIdLengthMax: 128,
});

const isVersion = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNodeId = (v: unknown): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= WIRE_LIMITS.nodeIdLengthMax;
const CHECK_TYPES: readonly CheckType[] = ['http', 'tcp', 'grpc', 'script', 'ttl'];

function str(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max && utf8Length(v) >= 0;
}

function parseCheckState(v: unknown): CheckState | string {
  if (!isObj(v)) return 'check: not an object';
  const { id, name, type, status, output } = v;
  if (!str(id, DEFINITION_LIMITS.idLengthMax) || id.length === 0) return 'check.id: bad';
  if (!str(name, 256)) return 'check.name: bad';
  if (!CHECK_TYPES.includes(type as CheckType)) return 'check.type: bad';
  if (!(CHECK_STATUSES as readonly unknown[]).includes(status)) return 'check.status: bad';
  if (!str(output, WIRE_LIMITS.checkOutputBytesMax)) return 'check.output: bad';
  return { id, name, type: type as CheckType, status: status as CheckState['status'], output };
}

/** An instance as gossiped; the same bounds as a registration. */
export function parseInstance(v: unknown): Instance | string {
  if (!isObj(v)) return 'instance: not an object';
  const { id, name, address, port, tags, meta, protocol, weights, checks } = v;
  if (!str(id, DEFINITION_LIMITS.idLengthMax) || id.length === 0) return 'instance.id: bad';
  if (!str(name, DEFINITION_LIMITS.nameLengthMax) || !SERVICE_NAME_PATTERN.test(name))
    return 'instance.name: bad';
  if (!str(address, DEFINITION_LIMITS.addressLengthMax) || (address !== '' && addressProblem(address)))
    return 'instance.address: bad';
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    return 'instance.port: bad';
  if (!Array.isArray(tags) || tags.length > DEFINITION_LIMITS.tagsMax) return 'instance.tags: bad';
  if (!tags.every((t) => str(t, DEFINITION_LIMITS.tagLengthMax))) return 'instance.tags: bad';
  if (!isObj(meta)) return 'instance.meta: bad';
  const keys = Object.keys(meta);
  if (keys.length > DEFINITION_LIMITS.meta.entriesMax) return 'instance.meta: too many entries';
  for (const k of keys) {
    if (!str(k, DEFINITION_LIMITS.meta.keyLengthMax) || !str(meta[k], DEFINITION_LIMITS.meta.valueLengthMax))
      return 'instance.meta: bad entry';
  }
  if (protocol !== undefined && protocol !== null && !SERVICE_PROTOCOLS.includes(protocol as ServiceProtocol))
    return 'instance.protocol: bad';
  const w = parseWeights(weights);
  if (!Array.isArray(checks) || checks.length > WIRE_LIMITS.checksPerInstanceMax)
    return 'instance.checks: bad';
  const parsed: CheckState[] = [];
  for (const c of checks) {
    const r = parseCheckState(c);
    if (typeof r === 'string') return r;
    parsed.push(r);
  }
  return {
    id,
    name,
    address,
    port,
    tags: tags as string[],
    meta: meta as Record<string, string>,
    protocol: (protocol ?? undefined) as ServiceProtocol | undefined,
    ...(w !== undefined ? { weights: w } : {}),
    checks: parsed,
  };
}

/** A gossiped weight: a whole number from `min`, capped at this version's weightMax; else undefined. */
function weightOf(x: unknown, min: number): number | undefined {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min) return undefined;
  return Math.min(x, DEFINITION_LIMITS.weightMax);
}

/**
 * Gossiped weights. Never a reason to refuse the instance (that would drop every instance of its
 * node): weights this version cannot read, as a later version's larger ones or other fields might
 * be, are capped, or read as absent (1 and 1).
 */
function parseWeights(v: unknown): InstanceWeights | undefined {
  if (!isObj(v)) return undefined;
  const passing = weightOf(v.passing, 1);
  const warning = weightOf(v.warning, 0);
  return passing === undefined || warning === undefined ? undefined : { passing, warning };
}

/** An instance as sent: an unset protocol or weights is left out (msgpack has no `undefined`). */
export function instanceToWire(i: Instance): Record<string, unknown> {
  const { protocol, weights, ...rest } = i;
  return {
    ...rest,
    ...(protocol !== undefined ? { protocol } : {}),
    ...(weights !== undefined ? { weights } : {}),
  };
}

function parseInstances(v: unknown, max: number): Instance[] | string {
  if (!Array.isArray(v) || v.length > max) return 'instances: not a list within bounds';
  const out: Instance[] = [];
  for (const i of v) {
    const r = parseInstance(i);
    if (typeof r === 'string') return r;
    out.push(r);
  }
  return out;
}

function parseRecord(v: unknown): NodeRecord | string {
  if (!isObj(v)) return 'record: not an object';
  if (!isNodeId(v.node)) return 'record.node: bad';
  if (!isVersion(v.version)) return 'record.version: bad';
  const instances = parseInstances(v.instances, WIRE_LIMITS.instancesPerNodeMax);
  if (typeof instances === 'string') return instances;
  return { node: v.node, version: v.version, instances };
}

export function parseDelta(v: unknown): Delta | string {
  if (!isObj(v)) return 'delta: not an object';
  const { node, base, version, removes, truncated } = v;
  if (!isNodeId(node)) return 'delta.node: bad';
  if (!isVersion(base) || !isVersion(version) || version <= base) return 'delta: bad versions';
  if (typeof truncated !== 'boolean') return 'delta.truncated: bad';
  const upserts = parseInstances(v.upserts, WIRE_LIMITS.instancesPerNodeMax);
  if (typeof upserts === 'string') return upserts;
  if (!Array.isArray(removes) || removes.length > WIRE_LIMITS.instancesPerNodeMax)
    return 'delta.removes: bad';
  if (!removes.every((r) => str(r, DEFINITION_LIMITS.idLengthMax))) return 'delta.removes: bad';
  return { node, base, version, upserts, removes: removes as string[], truncated };
}

function parseNodeList(v: unknown): NodeId[] | string {
  if (!Array.isArray(v) || v.length > WIRE_LIMITS.nodesPerRequestMax) return 'node list: bad';
  if (!v.every(isNodeId)) return 'node list: bad id';
  return v as NodeId[];
}

export function parseCatalogMessage(v: unknown): CatalogMessage | string {
  if (!isObj(v)) return 'message: not an object';
  switch (v.t) {
    case 'digest': {
      const versions = v.versions;
      if (!Array.isArray(versions) || versions.length > WIRE_LIMITS.nodesMax) return 'digest.versions: bad';
      for (const e of versions) {
        if (!Array.isArray(e) || e.length !== 2 || !isNodeId(e[0]) || !isVersion(e[1]))
          return 'digest.versions: bad entry';
      }
      return { t: 'digest', versions: versions as Array<[NodeId, number]> };
    }
    case 'records': {
      if (!Array.isArray(v.records) || v.records.length > WIRE_LIMITS.nodesMax) return 'records: bad';
      const records: NodeRecord[] = [];
      let total = 0;
      for (const r of v.records) {
        const rec = parseRecord(r);
        if (typeof rec === 'string') return rec;
        total += rec.instances.length;
        records.push(rec);
      }
      if (total > WIRE_LIMITS.instancesPerMessageMax + WIRE_LIMITS.instancesPerNodeMax)
        return 'records: too many';
      const want = parseNodeList(v.want);
      if (typeof want === 'string') return want;
      return { t: 'records', records, want };
    }
    case 'pull': {
      const nodes = parseNodeList(v.nodes);
      if (typeof nodes === 'string') return nodes;
      return { t: 'pull', nodes };
    }
    default:
      return 'message: unknown type';
  }
}

/** A message as sent. */
export function messageToWire(m: CatalogMessage): unknown {
  if (m.t !== 'records') return m;
  return { ...m, records: m.records.map(recordToWire) };
}

function recordToWire(r: NodeRecord): unknown {
  return { ...r, instances: r.instances.map(instanceToWire) };
}

export function deltaToWire(d: Delta): unknown {
  return { ...d, upserts: d.upserts.map(instanceToWire) };
}
