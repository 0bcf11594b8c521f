// The L4 preamble between agents: the callee reads the instance id the caller chose, and every byte
// after it reaches the instance unchanged, however TCP happens to cut the stream into chunks.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SeededRng } from '../../../src/core/rand.js';
import { encodePreamble, PREAMBLE_BYTES_MAX, readPreamble } from '../../../src/proxy/preamble.js';

/** Generous: a preamble in memory is read within a turn of the event loop. */
const READ_TIMEOUT_MS = 5_000;
const PROPERTY_RUNS = 200;

/** `buf` cut at random places into 1..`piecesMax` chunks (empty chunks never: TCP has none). */
function chunked(buf: Buffer, rng: SeededRng, piecesMax: number): Buffer[] {
  const cuts = new Set<number>();
  const n = rng.int(piecesMax);
  for (let i = 0; i < n && buf.length > 1; i++) cuts.add(1 + rng.int(buf.length - 1));
  const at = [0, ...[...cuts].sort((a, b) => a - b), buf.length];
  const out: Buffer[] = [];
  for (let i = 1; i < at.length; i++) out.push(buf.subarray(at[i - 1], at[i]));
  return out;
}

/** Write each chunk in its own turn, so the reader sees them as separate 'data' events. */
async function feed(stream: PassThrough, chunks: readonly Buffer[], end = true): Promise<void> {
  for (const c of chunks) {
    stream.write(c);
    await nextTurn();
  }
  if (end) stream.end();
}

/** Everything the next reader gets from `stream` until its end. */
async function rest(stream: PassThrough): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function header(len: number, magic = 'MSH1'): Buffer {
  const h = Buffer.alloc(6);
  h.write(magic, 0, 'latin1');
  h.writeUInt16BE(len, 4);
  return h;
}

function withBody(body: string, magic = 'MSH1'): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([header(b.length, magic), b]);
}

async function rejection(bytes: Buffer, timeoutMs = READ_TIMEOUT_MS): Promise<string> {
  const s = new PassThrough();
  const read = readPreamble(s, timeoutMs);
  void feed(s, [bytes], false);
  const err = await read.then(
    () => assert.fail('the preamble was accepted'),
    (e: unknown) => e as Error,
  );
  s.destroy();
  return err.message;
}

describe('preamble', () => {
  it('round-trips an instance id and leaves the following bytes to the next reader', async () => {
    const s = new PassThrough();
    const read = readPreamble(s, READ_TIMEOUT_MS);
    const payload = Buffer.from('GET / HTTP/1.1\r\n\r\n');
    await feed(s, [Buffer.concat([encodePreamble('web-1'), payload])]);
    assert.deepEqual(await read, { instanceId: 'web-1' });
    assert.deepEqual(await rest(s), payload);
  });

  it('reads a preamble that arrives one byte at a time, followed by more chunks', async () => {
    const s = new PassThrough();
    const read = readPreamble(s, READ_TIMEOUT_MS);
    const pre = encodePreamble('api/instance-7');
    const bytes = Buffer.concat([pre, Buffer.from('abc')]);
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const fed = feed(s, [...chunks, Buffer.from('def')]);
    assert.deepEqual(await read, { instanceId: 'api/instance-7' });
    const [tail] = await Promise.all([rest(s), fed]);
    assert.equal(tail.toString(), 'abcdef');
  });

  it('holds for random ids, payloads and chunkings (seeded)', async () => {
    const rng = new SeededRng(20240601);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_./é"\\';
    for (let run = 0; run < PROPERTY_RUNS; run++) {
      const idLength = 1 + rng.int(128);
      let id = '';
      for (let i = 0; i < idLength; i++) id += alphabet[rng.int(alphabet.length)];
      const payload = Buffer.alloc(rng.int(64));
      for (let i = 0; i < payload.length; i++) payload[i] = rng.int(256);
      const s = new PassThrough();
      const read = readPreamble(s, READ_TIMEOUT_MS);
      const fed = feed(s, chunked(Buffer.concat([encodePreamble(id), payload]), rng, 12));
      assert.deepEqual(await read, { instanceId: id }, `run ${run}`);
      const [tail] = await Promise.all([rest(s), fed]);
      assert.deepEqual(tail, payload, `run ${run}: the bytes after the preamble`);
    }
  });

  it('refuses to encode an id that would not fit', () => {
    assert.throws(() => encodePreamble('x'.repeat(PREAMBLE_BYTES_MAX)), /too long/);
  });

  it('rejects a stream that does not start with the magic', async () => {
    assert.match(await rejection(Buffer.from('GET / HTTP/1.1\r\n\r\n')), /not a mesh preamble/);
    assert.match(await rejection(withBody('{"i":"a"}', 'MSH2')), /not a mesh preamble/);
  });

  it('rejects an oversized length without waiting for the body', async () => {
    assert.match(await rejection(header(PREAMBLE_BYTES_MAX + 1)), /exceeds/);
  });

  it('rejects a body that is not JSON', async () => {
    assert.match(await rejection(withBody('{"i":')), /not JSON/);
  });

  it('rejects a preamble that names no instance', async () => {
    for (const body of ['{}', '[]', '{"i":""}', '{"i":7}', `{"i":"${'x'.repeat(129)}"}`]) {
      assert.match(await rejection(withBody(body)), /names no instance/, body);
    }
    // JSON null is refused too (its message says "not JSON": it fails on reading `.i`).
    assert.match(await rejection(withBody('null')), /^preamble /);
  });

  it('gives up after the timeout when the preamble stops half-way', async () => {
    const started = Date.now();
    const msg = await rejection(encodePreamble('web-1').subarray(0, 7), 50);
    assert.match(msg, /no preamble within 50 ms/);
    assert.ok(Date.now() - started < READ_TIMEOUT_MS);
  });

  it('rejects when the connection closes first', async () => {
    const s = new PassThrough();
    const read = readPreamble(s, READ_TIMEOUT_MS);
    s.write(encodePreamble('web-1').subarray(0, 3));
    s.destroy();
    await assert.rejects(read, /closed before the preamble/);
  });
});
