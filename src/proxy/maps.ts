// The get-or-make step of the proxy's nested lookups (metrics series, intention decisions, local
// instances, peer targets): nested maps keyed by the snapshot's own strings instead of one joined
// key, which would be a new string to flatten and hash on every request.

/** A Map or a WeakMap. */
interface Keyed<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): unknown;
}

/** The value under `key`, made with `make` and stored when absent. On a hot path pass a function made once, not a new closure. */
export function entryOf<K, V>(map: Keyed<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/** A new empty Map: the `make` of entryOf for a nested map level. */
export const newMap = <K, V>(): Map<K, V> => new Map<K, V>();
