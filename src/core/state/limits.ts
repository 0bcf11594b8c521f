// Bounds of the configuration state. Every one is part of the replicated contract: a command is
// accepted or rejected by the same rule on every agent, so changing a value is a protocol change.
export const STATE_LIMITS = Object.freeze({
  /** KV key length in UTF-8 bytes (Consul's practical limit; keys are also LevelDB keys and URL paths). */
  keyBytesMax: 512,
  /** KV value size: 512 KiB, as Consul. Config belongs in KV; blobs do not (every agent holds every value). */
  valueBytesMax: 512 * 1024,
  /** Configuration kind and name length in characters (both are ASCII by their pattern). */
  kindLengthMax: 128,
  nameLengthMax: 128,
  /** Estimated encoded size of a configuration spec: 256 KiB. */
  specBytesMax: 256 * 1024,
  /** Nesting depth of a spec; deeper input is rejected before anything recurses over it. */
  specDepthMax: 32,
  /** Live KV keys: 1,000,000 (at the key and value maxima that would already be far beyond RAM). */
  kvEntriesMax: 1_000_000,
  /** Live configuration entries: 100,000 (one per service per kind is the expected shape). */
  configEntriesMax: 100_000,
  /** Deletions remembered per key for blocking queries; older ones fold into a floor index. */
  kvTombstonesMax: 100_000,
  configTombstonesMax: 10_000,
  /**
   * Request ids remembered so that a write proposed again after a leader failure applies once. A
   * retry comes once a new leader is known (~1 s after a leader dies) and never more than 8 s
   * (the write's deadline) after its first copy. 20,000 writes is ~5 s at the most this cluster
   * has committed (3,707 a second with 64 writers, `BENCH_ONLY=seq npm run bench:raft`, 3439bb9),
   * and all 8 s below ~2,500 a second. Results are ~50 bytes (a failure's message up to a few
   * hundred): a few MB of state and snapshot at most. A copy later than that applies again.
   */
  requestsMax: 20_000,
});

/** Names of kinds and entries: lower-case, digits, '.', '_', '-', starting with a letter or digit. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
