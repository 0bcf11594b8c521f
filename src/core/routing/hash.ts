// String hashing for the routing core: MurmurHash3 x86 32-bit (Austin Appleby's reference
// `MurmurHash3_x86_32`) over the UTF-8 encoding of the string.
//
// Why this hash: it is fast in JS (32-bit multiplies via Math.imul, no allocation), passes
// SMHasher's distribution and avalanche tests, and has published test vectors, so another
// implementation (Go, Rust, a sidecar written in anything) can place keys on the same ring.
// Why UTF-8 rather than UTF-16 code units: the bytes are what every other language hashes for
// the same text; lone surrogates are encoded as U+FFFD, as TextEncoder does, so the result
// equals murmur3_32Bytes(new TextEncoder().encode(text)). Not for cryptography: an attacker who
// controls keys can build collisions.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** One 4-byte block mixed into the running state (the reference body loop). */
function mixBlock(h: number, block: number): number {
  let k = Math.imul(block, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  let x = h ^ k;
  x = (x << 13) | (x >>> 19);
  return (Math.imul(x, 5) + 0xe6546b64) | 0;
}

/** The tail (1–3 bytes, already packed little-endian) and the finaliser `fmix32`. */
function finish(h: number, tail: number, tailBytes: number, lengthBytes: number): number {
  let x = h;
  if (tailBytes > 0) {
    let k = Math.imul(tail, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    x ^= k;
  }
  x ^= lengthBytes;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** MurmurHash3 x86 32-bit of the bytes, as an unsigned 32-bit integer. */
export function murmur3_32Bytes(bytes: Uint8Array, seed = 0): number {
  let h = seed | 0;
  const blocksEnd = bytes.length - (bytes.length % 4);
  for (let i = 0; i < blocksEnd; i += 4) {
    const block =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    h = mixBlock(h, block);
  }
  let tail = 0;
  for (let i = blocksEnd; i < bytes.length; i++) tail |= (bytes[i] as number) << (8 * (i - blocksEnd));
  return finish(h, tail, bytes.length - blocksEnd, bytes.length);
}

/**
 * MurmurHash3 x86 32-bit of the UTF-8 encoding of `text`, as an unsigned 32-bit integer.
 * Encodes on the fly (no buffer), so hashing costs no allocation whatever the length.
 */
export function murmur3_32(text: string, seed = 0): number {
  let h = seed | 0;
  let block = 0; // bytes not yet mixed, packed little-endian
  let blockBytes = 0;
  let lengthBytes = 0;
  const units = text.length;
  for (let i = 0; i < units; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const next = i + 1 < units ? text.charCodeAt(i + 1) : 0;
      if (cp <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        cp = 0xfffd; // lone surrogate: what TextEncoder emits
      }
    }
    // The UTF-8 bytes of cp, first byte lowest, and how many there are.
    let packed: number;
    let count: number;
    if (cp < 0x80) {
      packed = cp;
      count = 1;
    } else if (cp < 0x800) {
      packed = 0xc0 | (cp >>> 6) | ((0x80 | (cp & 0x3f)) << 8);
      count = 2;
    } else if (cp < 0x10000) {
      packed = 0xe0 | (cp >>> 12) | ((0x80 | ((cp >>> 6) & 0x3f)) << 8) | ((0x80 | (cp & 0x3f)) << 16);
      count = 3;
    } else {
      packed =
        0xf0 |
        (cp >>> 18) |
        ((0x80 | ((cp >>> 12) & 0x3f)) << 8) |
        ((0x80 | ((cp >>> 6) & 0x3f)) << 16) |
        ((0x80 | (cp & 0x3f)) << 24);
      count = 4;
    }
    for (let j = 0; j < count; j++) {
      block |= ((packed >>> (8 * j)) & 0xff) << (8 * blockBytes);
      blockBytes++;
      if (blockBytes === 4) {
        h = mixBlock(h, block);
        block = 0;
        blockBytes = 0;
      }
    }
    lengthBytes += count;
  }
  return finish(h, block, blockBytes, lengthBytes);
}
