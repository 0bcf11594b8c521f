// The order `mesh config get` prints an entry's fields in: `kind` and `name`, then the kind's
// fields as docs/configuration-entries.md lists them (a test keeps the two in step). The stored
// spec is canonical, its keys sorted, which put `connectTimeoutMs` before `protocol` and, inside a
// list item, `action` and `description` before the `name` that says what the item is about.

/** Top-level fields of each kind, in the order of its table in docs/configuration-entries.md. */
export const ENTRY_FIELD_ORDER: Readonly<Record<string, readonly string[]>> = {
  'service-defaults': [
    'protocol',
    'connectTimeoutMs',
    'maxConnections',
    'localRequestTimeoutMs',
    'meta',
    'rateLimits',
    'upstreamConfig',
  ],
  'proxy-defaults': ['protocol', 'config'],
  'service-router': ['routes', 'retryBudget'],
  'service-splitter': ['splits'],
  'service-resolver': [
    'subsets',
    'defaultSubset',
    'redirect',
    'failover',
    'loadBalancer',
    'passiveHealthCheck',
    'connectTimeoutMs',
    'requestTimeoutMs',
  ],
  'service-intentions': ['sources'],
  mesh: ['defaultIntention', 'http'],
  'ca-roots': ['trustDomain', 'activeRootId', 'roots'],
};

/** Keys that say what a nested object is about (a source's, an override's, a header condition's). */
const IDENTIFYING_KEYS = ['name', 'id'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A copy of `v` whose objects lead with their identifying key; other keys keep their order. */
function nameFirst(v: unknown, depthLeft: number): unknown {
  if (depthLeft === 0) return v;
  if (Array.isArray(v)) return v.map((x) => nameFirst(x, depthLeft - 1));
  if (!isPlainObject(v)) return v;
  const keys = Object.keys(v);
  const first = IDENTIFYING_KEYS.filter((k) => keys.includes(k));
  const ordered = [...first, ...keys.filter((k) => !first.includes(k))];
  // defineProperty keeps a "__proto__" key plain data, as canonical() does.
  const out: Record<string, unknown> = {};
  for (const k of ordered)
    Object.defineProperty(out, k, {
      value: nameFirst(v[k], depthLeft - 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return out;
}

/** Bound on the nesting walked; specs are at most 32 levels deep (STATE_LIMITS.specDepthMax). */
const DEPTH_MAX = 64;

/**
 * The entry as a file: kind, name, then the kind's fields in the documented order, then any field
 * this CLI does not know (from a newer agent) in stored order.
 */
export function entryFileOrder(
  kind: string,
  name: string,
  spec: Record<string, unknown>,
): Record<string, unknown> {
  const known = ENTRY_FIELD_ORDER[kind] ?? [];
  const keys = Object.keys(spec);
  const ordered = [...known.filter((k) => keys.includes(k)), ...keys.filter((k) => !known.includes(k))];
  const out: Record<string, unknown> = { kind, name };
  for (const k of ordered) {
    if (k === 'kind' || k === 'name') continue;
    Object.defineProperty(out, k, {
      value: nameFirst(spec[k], DEPTH_MAX),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
