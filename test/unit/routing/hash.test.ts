// murmur3_32 against the reference implementation's published vectors, and its UTF-8 encoding
// against TextEncoder.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import { murmur3_32, murmur3_32Bytes } from '../../../src/core/routing/hash.js';

// Vectors of MurmurHash3_x86_32 (SMHasher; also listed on Wikipedia's MurmurHash page).
const VECTORS: [string, number, number][] = [
  ['', 0, 0],
  ['', 1, 0x514e28b7],
  ['', 0xffffffff, 0x81f16f39],
  ['\0\0\0\0', 0, 0x2362f9de],
  ['aaaa', 0x9747b28c, 0x5a97808a],
  ['Hello, world!', 0x9747b28c, 0x24884cba],
  ['ππππππππ', 0x9747b28c, 0xd58063c1],
  ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ['hello', 0, 0x248bfa47],
];

describe('murmur3_32', () => {
  it('matches the reference vectors (string and byte forms)', () => {
    for (const [text, seed, expected] of VECTORS) {
      assert.equal(murmur3_32(text, seed), expected, `${JSON.stringify(text)} seed ${seed}`);
      assert.equal(murmur3_32Bytes(new TextEncoder().encode(text), seed), expected);
    }
  });

  it('hashes the UTF-8 bytes, lone surrogates as U+FFFD, like TextEncoder', () => {
    const rng = new SeededRng(7);
    const samples = ['héllo wörld 😀', '\ud800', 'a\udc00b', '\ud83d\ude00\ud83d', '€', '\u07ff\u0800\uffff'];
    for (let n = 0; n < 500; n++) {
      let s = '';
      const length = Math.floor(rng.next() * 12);
      for (let i = 0; i < length; i++) s += String.fromCharCode(Math.floor(rng.next() * 0x10000));
      samples.push(s);
    }
    for (const s of samples) assert.equal(murmur3_32(s, 3), murmur3_32Bytes(new TextEncoder().encode(s), 3));
  });

  it('returns unsigned 32-bit values spread evenly over buckets', () => {
    const bucketCount = 16;
    const buckets = new Array<number>(bucketCount).fill(0);
    const keyCount = 16_000;
    for (let i = 0; i < keyCount; i++) {
      const h = murmur3_32(`key-${i}`);
      assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
      buckets[h >>> 28] = (buckets[h >>> 28] as number) + 1;
    }
    // Expected 1000 per bucket, σ ≈ 31: ±150 is a ~5σ bound.
    for (const b of buckets) assert.ok(Math.abs(b - keyCount / bucketCount) < 150, `bucket ${b}`);
  });
});
