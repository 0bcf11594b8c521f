// Framing and codec: property tests. Any sequence of frames, cut into chunks at any boundaries,
// decodes to the same frames; oversized lengths are refused before buffering; arbitrary bytes
// never make the decoder throw anything but the typed error.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hostPortToMultiaddr, multiaddrToAddress, parseAddress, swarmKey } from '../../../src/agent/host.js';
import { DecodeError, decode, encode } from '../../../src/wire/codec.js';
import { encodeFrame, FrameDecoder, FrameTooLargeError } from '../../../src/wire/frame.js';
import { chunked } from '../../helpers/bytes.js';

describe('FrameDecoder', () => {
  it('reassembles any frames split at any chunk boundaries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (payloads, cuts) => {
          const all = Buffer.concat(payloads.map((p) => encodeFrame(p)));
          const dec = new FrameDecoder(1024);
          const got: Uint8Array[] = [];
          for (const c of chunked(all, cuts)) got.push(...dec.push(c).map((f) => Uint8Array.from(f)));
          assert.deepEqual(
            got,
            payloads.map((p) => Uint8Array.from(p)),
          );
          assert.equal(dec.pendingBytes, 0);
        },
      ),
    );
  });

  it('refuses a length above the limit before the payload arrives', () => {
    const dec = new FrameDecoder(100);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 101, false);
    assert.throws(() => dec.push(header), FrameTooLargeError);
  });

  it('keeps a truncated frame pending instead of emitting it', () => {
    const dec = new FrameDecoder(100);
    const f = encodeFrame(new Uint8Array([1, 2, 3, 4, 5]));
    assert.deepEqual(dec.push(f.subarray(0, 7)), []);
    assert.equal(dec.pendingBytes, 7);
  });

  it('never throws anything but FrameTooLargeError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const dec = new FrameDecoder(256);
        try {
          for (const c of chunks) dec.push(c);
        } catch (err) {
          assert.ok(err instanceof FrameTooLargeError);
        }
      }),
    );
  });
});

describe('msgpack codec', () => {
  it('round-trips plain JSON-like values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        // msgpack has no -0; JSON-like values otherwise survive unchanged. "__proto__" keys are
        // dropped on decode on purpose (see the next test), so they are left out here.
        const text = JSON.stringify(v);
        fc.pre(!text.includes('"__proto__"'));
        const normalised = JSON.parse(text);
        assert.deepEqual(decode(encode(normalised)), normalised);
      }),
    );
  });

  it('never lets a decoded "__proto__" key change an object\'s prototype', () => {
    const bytes = encode(JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}'));
    const v = decode(bytes) as Record<string, unknown>;
    assert.equal(v.ok, 1);
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(v.polluted, undefined);
  });

  it('reports truncated msgpack as a DecodeError value', () => {
    const whole = encode({ t: 'ping', seq: 1, target: 'x' });
    assert.ok(decode(whole.subarray(0, whole.length - 2)) instanceof DecodeError);
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        assert.doesNotThrow(() => decode(bytes));
      }),
    );
  });
});

describe('addresses', () => {
  it('parses host:port and [v6]:port, refuses the rest', () => {
    assert.deepEqual(parseAddress('10.0.0.5:7400'), { host: '10.0.0.5', port: 7400 });
    assert.deepEqual(parseAddress('[::1]:7400'), { host: '::1', port: 7400 });
    assert.deepEqual(parseAddress('node-a.example:7400'), { host: 'node-a.example', port: 7400 });
    assert.equal(parseAddress('10.0.0.5'), undefined);
    assert.equal(parseAddress('10.0.0.5:99999'), undefined);
    assert.equal(parseAddress(''), undefined);
  });

  it('maps addresses to multiaddrs and back', () => {
    assert.equal(
      hostPortToMultiaddr({ host: '127.0.0.1', port: 7400 }).toString(),
      '/ip4/127.0.0.1/tcp/7400',
    );
    assert.equal(hostPortToMultiaddr({ host: '::1', port: 7400 }).toString(), '/ip6/::1/tcp/7400');
    assert.equal(
      hostPortToMultiaddr({ host: 'seed.example', port: 7400 }).toString(),
      '/dns/seed.example/tcp/7400',
    );
    assert.equal(multiaddrToAddress(hostPortToMultiaddr({ host: '::1', port: 7 })), '[::1]:7');
  });

  it('builds the libp2p swarm key from a 32-byte cluster key', () => {
    const key = new Uint8Array(32).fill(0xab);
    const text = new TextDecoder().decode(swarmKey(key));
    assert.equal(text, `/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}`);
    assert.throws(() => swarmKey(new Uint8Array(16)), /32 bytes/);
  });
});
