// Consistent hashing (ring_hash): a ketama-style ring of virtual nodes, as Envoy's ring_hash.
//
// Every endpoint owns points on a 32-bit circle at murmur3_32(`${id}_${i}`) (Envoy's "address_i"
// scheme); a request key hashes to a position and goes to the owner of the first point at or after
// it. An endpoint's point count is round(weight × p), at least 1, where p (points per unit of
// weight) is a power of two: the smallest that makes the ring reach minimumRingSize, halved while
// it exceeds the maximum. Because p only changes when the total weight crosses a power-of-two
// boundary, adding or removing one of N endpoints leaves every other endpoint's points where they
// were, and only ~1/N of keys move (Envoy rescales on every change, which moves more).
// The ring depends only on the set of (id, weight), not on list order or history, so every proxy
// with the same endpoints maps a key to the same endpoint.
import type { Rng } from '../membership/types.js';
import { murmur3_32 } from './hash.js';
import { effectiveWeight, type LbContext, type LbEndpoint, pickWeightedRandom } from './lb-common.js';
import { BaseBalancer } from './lb-simple.js';

export const RING_SIZE_MIN_DEFAULT = 1024;
export const RING_SIZE_MAX_DEFAULT = 8_388_608;
/**
 * Cap on points actually built, whatever maximumRingSize says: a rebuild hashes and sorts every
 * point on the proxy’s event loop (~25 ms at 64k points), and 64k points already give each of 1,000
 * endpoints ~64 points, a share error of a few percent.
 */
export const RING_POINTS_MAX = 65_536;
/** Slot indexes are packed under the hash in one float64 sort key (2^32 × 2^20 < 2^53). */
export const RING_ENDPOINTS_MAX = 1 << 20;

export interface RingSlot {
  readonly id: string;
  /** Sum of effective weights of the list entries with this id. */
  readonly weight: number;
  /** The caller's object for this id from the latest list (refreshed on every same-set check). */
  endpoint: LbEndpoint;
  checkStamp: number;
  checkWeight: number;
}

export interface Ring {
  /** Point positions, ascending. */
  readonly hashes: Uint32Array;
  /** owners[i] = index in `slots` of the endpoint owning hashes[i]. */
  readonly owners: Uint32Array;
  /** One slot per distinct id, sorted by id. */
  readonly slots: readonly RingSlot[];
  readonly slotById: ReadonlyMap<string, number>;
}

export interface RingSizeLimits {
  minimumRingSize: number;
  maximumRingSize: number;
}

/** Validated limits with defaults, both clamped to RING_POINTS_MAX (see there). Throws on bad input. */
export function ringSizeLimits(
  opts: { minimumRingSize?: number; maximumRingSize?: number } = {},
): RingSizeLimits {
  const min = opts.minimumRingSize ?? RING_SIZE_MIN_DEFAULT;
  const max = opts.maximumRingSize ?? RING_SIZE_MAX_DEFAULT;
  for (const [name, v] of [
    ['minimumRingSize', min],
    ['maximumRingSize', max],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1))
      throw new Error(`lb: ringHash.${name} must be a positive integer, got ${v}`);
  }
  if (min > max) throw new Error(`lb: ringHash.minimumRingSize (${min}) exceeds maximumRingSize (${max})`);
  return { minimumRingSize: Math.min(min, RING_POINTS_MAX), maximumRingSize: Math.min(max, RING_POINTS_MAX) };
}

/** Points per unit of weight for a ring of total weight `totalWeight` (a power of two, see header). */
export function pointsPerWeightUnit(totalWeight: number, limits: RingSizeLimits): number {
  if (!(totalWeight > 0)) throw new Error(`lb: ring total weight must be positive, got ${totalWeight}`);
  let p = 1;
  // Each loop runs at most ~50 times: sizes are ≤ 2^16 and weights ≥ 1.
  while (totalWeight * p < limits.minimumRingSize) p *= 2;
  while (p > Number.MIN_VALUE && totalWeight * p > limits.maximumRingSize) p /= 2;
  return p;
}

/** Build the ring of `endpoints` (non-empty). O(P log P) for P points. */
export function buildRing(endpoints: readonly LbEndpoint[], limits: RingSizeLimits): Ring {
  const weightById = new Map<string, { weight: number; endpoint: LbEndpoint }>();
  for (const ep of endpoints) {
    const known = weightById.get(ep.id);
    if (known === undefined) weightById.set(ep.id, { weight: effectiveWeight(ep), endpoint: ep });
    else known.weight += effectiveWeight(ep);
  }
  if (weightById.size === 0) throw new Error('lb: cannot build a ring without endpoints');
  if (weightById.size > RING_ENDPOINTS_MAX)
    throw new Error(`lb: ring_hash supports at most ${RING_ENDPOINTS_MAX} endpoints`);
  const ids = [...weightById.keys()].sort();
  const slots: RingSlot[] = [];
  const slotById = new Map<string, number>();
  let totalWeight = 0;
  for (const id of ids) {
    const { weight, endpoint } = weightById.get(id) as { weight: number; endpoint: LbEndpoint };
    slotById.set(id, slots.length);
    slots.push({ id, weight, endpoint, checkStamp: 0, checkWeight: 0 });
    totalWeight += weight;
  }
  const p = pointsPerWeightUnit(totalWeight, limits);
  const counts = slots.map((s) => Math.max(1, Math.round(s.weight * p)));
  const total = counts.reduce((a, b) => a + b, 0);
  // Rounding adds at most ½ point per endpoint and the floor of 1 at most 1 more.
  if (total > limits.maximumRingSize + 2 * slots.length)
    throw new Error(`lb: ring of ${total} points exceeds its bound`);
  const keys = new Float64Array(total);
  let k = 0;
  for (let s = 0; s < slots.length; s++) {
    const id = (slots[s] as RingSlot).id;
    const count = counts[s] as number;
    for (let i = 0; i < count; i++) keys[k++] = murmur3_32(`${id}_${i}`) * RING_ENDPOINTS_MAX + s;
  }
  // Typed-array sort is numeric; equal hashes (rare at 2^32) are ordered by slot, i.e. by id.
  keys.sort();
  const hashes = new Uint32Array(total);
  const owners = new Uint32Array(total);
  for (let i = 0; i < total; i++) {
    const key = keys[i] as number;
    const slot = key % RING_ENDPOINTS_MAX;
    hashes[i] = (key - slot) / RING_ENDPOINTS_MAX;
    owners[i] = slot;
  }
  return { hashes, owners, slots, slotById };
}

/** Index of the first point at or after `keyHash`, wrapping to 0 past the last. Binary search. */
export function ringIndexOf(ring: Ring, keyHash: number): number {
  let lo = 0;
  let hi = ring.hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ring.hashes[mid] as number) < keyHash) lo = mid + 1;
    else hi = mid;
  }
  return lo === ring.hashes.length ? 0 : lo;
}

/**
 * Whether `endpoints` is the ring's set of (id, summed weight). O(n), no allocation. As a side
 * effect each slot's `endpoint` becomes the caller's current object for that id.
 */
export function ringMatches(ring: Ring, endpoints: readonly LbEndpoint[], stamp: number): boolean {
  let distinct = 0;
  for (const ep of endpoints) {
    const index = ring.slotById.get(ep.id);
    if (index === undefined) return false;
    const slot = ring.slots[index] as RingSlot;
    if (slot.checkStamp !== stamp) {
      slot.checkStamp = stamp;
      slot.checkWeight = 0;
      slot.endpoint = ep;
      distinct++;
    }
    slot.checkWeight += effectiveWeight(ep);
  }
  if (distinct !== ring.slots.length) return false;
  for (const slot of ring.slots) if (slot.checkWeight !== slot.weight) return false;
  return true;
}

/**
 * ring_hash balancer: the ring is rebuilt only when the set of (id, weight) changes (checked in
 * O(n) per pick; a rebuild is O(P log P)). With `ctx.hashKey` the key's point picks the endpoint;
 * on retries it walks on along the ring to the next endpoint not excluded, so a retried key still
 * lands consistently. Without a key there is nothing to be consistent about: weighted random.
 */
export class RingHashBalancer extends BaseBalancer {
  readonly policy = 'ring_hash' as const;
  private readonly limits: RingSizeLimits;
  private ring: Ring | undefined;
  private checkStamp = 0;
  private rebuildCount = 0;

  constructor(rng: Rng, opts: { minimumRingSize?: number; maximumRingSize?: number } = {}) {
    super(rng);
    this.limits = ringSizeLimits(opts);
  }

  pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined {
    const list = this.candidates(endpoints, ctx, exclude);
    if (ctx.hashKey === undefined || list.length <= 1) return pickWeightedRandom(list, this.rng);
    const ring = this.ringFor(endpoints);
    const start = ringIndexOf(ring, murmur3_32(ctx.hashKey));
    const length = ring.hashes.length;
    for (let step = 0; step < length; step++) {
      const slot = ring.slots[ring.owners[(start + step) % length] as number] as RingSlot;
      if (exclude === undefined || !exclude.has(slot.id)) return slot.endpoint;
    }
    // Every endpoint is excluded: retrying one beats failing (same rule as withoutExcluded).
    return (ring.slots[ring.owners[start] as number] as RingSlot).endpoint;
  }

  /** Points in the current ring and how many times it was built (diagnostics and tests). */
  ringStats(): { points: number; rebuilds: number } {
    return { points: this.ring?.hashes.length ?? 0, rebuilds: this.rebuildCount };
  }

  private ringFor(endpoints: readonly LbEndpoint[]): Ring {
    this.checkStamp++;
    if (this.ring !== undefined && ringMatches(this.ring, endpoints, this.checkStamp)) return this.ring;
    this.ring = buildRing(endpoints, this.limits);
    this.rebuildCount++;
    return this.ring;
  }
}
