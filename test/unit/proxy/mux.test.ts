// mesh-mux/1: the frame codec (property tests: any frames, split anywhere, read back the same;
// malformed bytes rejected with their offset) and sessions over a real loopback connection: many
// streams in few writes, per-stream flow control, FIN and RST, limits, and a peer sending garbage.
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import {
  encodeFrame,
  FRAME_LIMITS,
  type Frame,
  FrameError,
  FrameReader,
  FrameType,
} from '../../../src/proxy/mux/frame.js';
import { MuxSession, SESSION_LIMITS } from '../../../src/proxy/mux/session.js';
import { MuxStream, STREAM_LIMITS } from '../../../src/proxy/mux/stream.js';
import { chunked } from '../../helpers/bytes.js';
import { within } from './harness.js';

const WAIT_MS = 10_000;

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Data),
    stream: fc.nat(),
    value: fc.constant(0),
    payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  }),
  fc.record({
    type: fc.constantFrom(FrameType.Window, FrameType.Fin, FrameType.Rst, FrameType.Ping, FrameType.PingAck),
    stream: fc.nat(),
    value: fc.nat(),
  }),
);

describe('mesh-mux/1 frames', () => {
  it('reads back any sequence of frames, however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (frames, points) => {
          const bytes = Buffer.concat(frames.map(encodeFrame));
          const got: Frame[] = [];
          const reader = new FrameReader((f) =>
            got.push(f.payload ? { ...f, payload: Buffer.from(f.payload) } : f),
          );
          for (const part of chunked(bytes, points))
            reader.push(Buffer.from(part.buffer, part.byteOffset, part.length));
          assert.equal(reader.heldBytes, 0);
          assert.deepEqual(
            got,
            frames.map((f) =>
              f.type === FrameType.Data ? { ...f, value: (f.payload as Buffer).length } : { ...f },
            ),
          );
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  it('rejects an unknown frame type, naming where it was', () => {
    const reader = new FrameReader(() => undefined);
    const ok = encodeFrame({ type: FrameType.Fin, stream: 1, value: 0 });
    const bad = Buffer.from(ok);
    bad[0] = 9;
    assert.throws(
      () => reader.push(Buffer.concat([ok, bad])),
      (e: unknown) => e instanceof FrameError && /unknown frame type 9 at byte 9 /.test(e.message),
    );
  });

  it('rejects a DATA frame longer than the limit before its payload arrives', () => {
    const reader = new FrameReader(() => undefined);
    const header = encodeFrame({
      type: FrameType.Window,
      stream: 1,
      value: FRAME_LIMITS.payloadBytesMax + 1,
    });
    header[0] = FrameType.Data;
    assert.throws(() => reader.push(header), /a DATA frame of 65537 bytes \(at most 65536\) at byte 0/);
  });
});

/** A stream's session, played by the test: what the stream sent, and the sender's window. */
function fakeOwner() {
  const sent: string[] = [];
  const owner = {
    remoteAddress: '',
    congested: false,
    retired: false,
    /** The peer's view of how much it may still send on the stream. */
    peerWindow: STREAM_LIMITS.windowBytes,
    sendData: (_id: number, _d: unknown, _e: unknown, n: number) => sent.push(`DATA ${n}`),
    sendWindow: (_id: number, n: number) => {
      owner.peerWindow += n;
    },
    sendFin: () => sent.push('FIN'),
    sendRst: () => sent.push('RST'),
    forget: () => sent.push('forget'),
  };
  return { owner, sent };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('mesh-mux/1 streams (driven by hand)', () => {
  it('never holds more than the window for a consumer that pauses after every chunk', async () => {
    const { owner } = fakeOwner();
    const s = new MuxStream(1, owner);
    const chunk = 16 * 1024;
    let taken = 0;
    s.on('data', (d: Buffer) => {
      taken += d.length;
      s.pause();
    });
    let sentTotal = 0;
    for (let cycle = 0; cycle < 50; cycle++) {
      // An honest sender: as much as its window allows.
      while (owner.peerWindow >= chunk) {
        owner.peerWindow -= chunk;
        sentTotal += chunk;
        assert.equal(s.onData(Buffer.alloc(chunk)), true, 'no overrun by a sender within its window');
      }
      const held = sentTotal - taken;
      assert.ok(held <= STREAM_LIMITS.windowBytes, `${held} bytes held after ${cycle} cycles`);
      s.resume();
      await tick();
    }
    assert.ok(taken > 0);
  });

  it('closes when the peer’s FIN arrives after its own, even with bytes held unread', async () => {
    const { owner, sent } = fakeOwner();
    const s = new MuxStream(1, owner);
    const closed = new Promise((r) => s.once('close', r));
    s.pause();
    s.onData(Buffer.from('a pipelined request nobody will read'));
    s.end();
    s.onFin();
    await within(closed, WAIT_MS, 'close');
    assert.deepEqual(sent, ['FIN', 'forget']);
  });

  it('resets when the peer ends while writes wait for its window; a later write fails with EPIPE', async () => {
    const { owner, sent } = fakeOwner();
    const s = new MuxStream(1, owner);
    const errors: string[] = [];
    s.on('error', (e: NodeJS.ErrnoException) => errors.push(String(e.code)));
    const closed = new Promise((r) => s.once('close', r));
    assert.equal(s.write(Buffer.alloc(STREAM_LIMITS.windowBytes + 1000)), false);
    s.onFin();
    await within(closed, WAIT_MS, 'close');
    assert.ok(sent.includes('RST'), sent.join(' '));
    assert.equal(s.write('GET / HTTP/1.1\r\n\r\n'), false);
    await tick();
    assert.deepEqual(errors, ['EPIPE']);
  });
});

/** Bytes each accepted stream received (a stream's 'data' flows from the start, as a socket's). */
const inbox = new WeakMap<MuxStream, Buffer[]>();

/** A caller session and a callee session over one loopback connection. */
async function pair(server: Server, port: number): Promise<{ caller: MuxSession; accepted: MuxStream[] }> {
  const accepted: MuxStream[] = [];
  const calleeSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const callee = await calleeSide;
  new MuxSession(callee, 'callee', (s) => {
    const parts: Buffer[] = [];
    inbox.set(s, parts);
    s.on('data', (d: Buffer) => parts.push(Buffer.from(d)));
    accepted.push(s);
  });
  const caller = new MuxSession(socket, 'caller');
  caller.markReady();
  return { caller, accepted };
}

/** Everything `s` receives until it ends. */
function collect(s: MuxStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(Buffer.from(d)));
  return within(
    new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(parts)))),
    WAIT_MS,
    'stream end',
  );
}

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(20);
  assert.ok(cond(), `${what} within ${WAIT_MS} ms`);
};

describe('mesh-mux/1 sessions', () => {
  let server: Server;
  let port = 0;
  const sockets: Socket[] = [];

  before(async () => {
    server = createServer({ noDelay: true }, (s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });

  it('carries many streams both ways, their frames of one turn in one write', async () => {
    const { caller, accepted } = await pair(server, port);
    const n = 50;
    const streams = Array.from({ length: n }, () => caller.openStream());
    await Promise.all(streams.map((s) => new Promise((r) => s.once('connect', r))));
    const replies = streams.map((s) => collect(s));
    for (const [i, s] of streams.entries()) s.write(`request ${i}`, 'latin1');
    await until(() => accepted.length === n, 'all streams accepted');
    // One turn's 50 writes left as one batch (plus, at most, a second if the turn was split).
    assert.ok(caller.batchesWritten <= 2, `${caller.batchesWritten} batches for ${n} writes`);
    for (const s of accepted) s.end(`reply to ${Buffer.concat(inbox.get(s) ?? []).toString('latin1')}`);
    const got = await Promise.all(replies);
    assert.deepEqual(
      got.map((b) => b.toString('latin1')),
      streams.map((_, i) => `reply to request ${i}`),
    );
    // Both FINs passed: every stream closed on both sides.
    await until(() => caller.streamCount === 0, 'caller streams closed');
    caller.socket.destroy();
  });

  it('stops a sender at the window while the receiver is paused, then delivers every byte in order', async () => {
    const { caller, accepted } = await pair(server, port);
    const s = caller.openStream();
    await new Promise((r) => s.once('connect', r));
    const total = STREAM_LIMITS.windowBytes * 3;
    const body = Buffer.alloc(total);
    for (let i = 0; i < total; i++) body[i] = i % 251;
    s.write(body.subarray(0, 1));
    await until(() => accepted.length === 1, 'stream accepted');
    const r = accepted[0] as MuxStream;
    r.pause();
    const parts = inbox.get(r) as Buffer[];
    await until(() => parts.length === 1, 'the first byte');
    // Past the window: the write is queued and the writer told to wait.
    assert.equal(s.write(body.subarray(1)), false);
    let drained = false;
    s.once('drain', () => {
      drained = true;
    });
    await sleep(200);
    assert.equal(parts.length, 1, 'a paused stream delivers nothing');
    assert.equal(drained, false, 'no drain while the receiver holds a full window');
    const ended = new Promise((res) => r.once('end', res));
    s.end();
    r.resume();
    await within(ended, WAIT_MS, 'end after resume');
    assert.ok(drained);
    assert.ok(Buffer.concat(parts).equals(body));
    caller.socket.destroy();
  });

  it('resets: a destroyed stream fails on the other side with ECONNRESET, and its later DATA is refused', async () => {
    const { caller, accepted } = await pair(server, port);
    const s = caller.openStream();
    await new Promise((r) => s.once('connect', r));
    s.write('hello');
    await until(() => accepted.length === 1, 'stream accepted');
    const r = accepted[0] as MuxStream;
    const failed = new Promise<NodeJS.ErrnoException>((res) => r.once('error', res));
    const closed = new Promise((res) => r.once('close', res));
    s.destroy();
    assert.equal((await within(failed, WAIT_MS, 'reset')).code, 'ECONNRESET');
    await within(closed, WAIT_MS, 'close');
    assert.equal(s.write('more'), false, 'a destroyed stream takes no writes');
    caller.socket.destroy();
  });

  it('holds a place against the destination’s session cap while it takes streams or carries some', async () => {
    const { caller } = await pair(server, port);
    assert.equal(caller.counted, true, 'open');
    const s = caller.openStream();
    await new Promise((r) => s.once('connect', r));
    // Ending (as after its idle time): no new streams, but one is still on it.
    caller.socket.end();
    assert.equal(caller.open, false);
    assert.equal(caller.counted, true, 'still carries a stream');
    s.destroy();
    await until(() => caller.streamCount === 0, 'the stream gone');
    assert.equal(caller.counted, false, 'ending with nothing on it: another session may take its place');
    caller.socket.destroy();
  });

  it('refuses streams past the per-session limit; those within it work', async () => {
    const { caller, accepted } = await pair(server, port);
    const streams = Array.from({ length: SESSION_LIMITS.streamsMax + 1 }, () => caller.openStream());
    await Promise.all(streams.map((s) => new Promise((r) => s.once('connect', r))));
    const last = streams.at(-1) as MuxStream;
    const refused = new Promise<Error>((res) => last.once('error', res));
    for (const s of streams) s.write('x');
    assert.match((await within(refused, WAIT_MS, 'refusal')).message, /refused the stream/);
    await until(() => accepted.length === SESSION_LIMITS.streamsMax, 'streams within the limit accepted');
    const first = streams[0] as MuxStream;
    const reply = collect(first);
    (accepted[0] as MuxStream).end('still here');
    assert.equal((await reply).toString(), 'still here');
    caller.socket.destroy();
  });

  it('closes a session whose peer sends garbage; its streams fail, the process carries on', async () => {
    const accepted: MuxStream[] = [];
    const calleeSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const raw = connect(port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    const session = new MuxSession(await calleeSide, 'callee', (s) => accepted.push(s));
    raw.write(encodeFrame({ type: FrameType.Data, stream: 1, value: 0, payload: Buffer.from('GET') }));
    await until(() => accepted.length === 1, 'stream accepted');
    const failed = new Promise<Error>((res) => (accepted[0] as MuxStream).once('error', res));
    const closed = new Promise((res) => raw.once('close', res));
    raw.write(Buffer.from('this is not a frame at all'));
    assert.match((await within(failed, WAIT_MS, 'stream failure')).message, /unknown frame type/);
    await within(closed, WAIT_MS, 'session closed');
    assert.equal(session.streamCount, 0);
  });

  it('fails a session whose peer stops answering, and keeps one whose peer answers PINGs', async () => {
    const timing = { pingAfterMs: 200, pingTimeoutMs: 300 };
    // A peer that reads and never answers (a host gone without a reset).
    const mute = connect(port, '127.0.0.1');
    await new Promise((r) => mute.once('connect', r));
    const silent = new MuxSession(mute, 'caller', undefined, timing);
    silent.markReady();
    const s = silent.openStream();
    const failed = new Promise<Error>((res) => s.once('error', res));
    s.write('GET / HTTP/1.1\r\n\r\n');
    assert.match(
      (await within(failed, WAIT_MS, 'liveness failure')).message,
      /no answer from the peer agent/,
    );
    // A live peer: an idle stream for several ping intervals, then it still carries bytes.
    const accepted: MuxStream[] = [];
    const calleeSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    new MuxSession(await calleeSide, 'callee', (x) => accepted.push(x));
    const live = new MuxSession(socket, 'caller', undefined, timing);
    live.markReady();
    const idle = live.openStream();
    await new Promise((r) => idle.once('connect', r));
    await sleep(1_200);
    assert.equal(idle.destroyed, false, 'the session survived its quiet time');
    const before = accepted.length;
    idle.write('still there');
    await until(() => accepted.length === before + 1, 'the stream reached the callee');
    socket.destroy();
  });

  it('keeps a session that sat quiet with no streams when a new stream opens on it', async () => {
    // Found by load: the caller's pool closed its idle streams, the session stayed open (it ends
    // after 30 s with none), and 15-30 s after the last frame a burst of requests opened streams
    // on it. The quiet time then already exceeded ping + timeout, so the first tick failed the
    // session and every request on it (502) without a PING ever being sent to a healthy peer.
    const timing = { pingAfterMs: 200, pingTimeoutMs: 300 };
    const accepted: MuxStream[] = [];
    const calleeSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const socket = connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    new MuxSession(await calleeSide, 'callee', (x) => {
      accepted.push(x);
      x.on('data', () => undefined);
      x.once('end', () => x.end());
    });
    const caller = new MuxSession(socket, 'caller', undefined, timing);
    caller.markReady();
    try {
      const first = caller.openStream();
      await new Promise((r) => first.once('connect', r));
      first.end('GET / HTTP/1.1\r\n\r\n');
      await until(() => caller.streamCount === 0, 'the first stream closed at both ends');
      // Quiet with no streams for longer than ping + timeout (and far less than the idle close).
      await sleep(3 * (timing.pingAfterMs + timing.pingTimeoutMs));
      const second = caller.openStream();
      const failed = new Promise<Error>((res) => second.once('error', res));
      second.write('GET / HTTP/1.1\r\n\r\n');
      await until(() => accepted.length === 2, 'the second stream reached the callee');
      const outcome = await Promise.race([failed, sleep(4 * timing.pingAfterMs).then(() => 'alive')]);
      assert.equal(outcome, 'alive', `the session failed: ${(outcome as Error).message}`);
      assert.equal(second.destroyed, false);
    } finally {
      socket.destroy();
    }
  });

  it('fails a session to a dead peer even when each request times out before the PING does', async () => {
    // A review of the fix above: restarting the quiet clock whenever a stream opened on a session
    // with none let requests that time out (closing their stream) and come back keep a session
    // to a vanished host alive for ever, every request a 504.
    const timing = { pingAfterMs: 200, pingTimeoutMs: 300 };
    const mute = connect(port, '127.0.0.1');
    await new Promise((r) => mute.once('connect', r));
    const session = new MuxSession(mute, 'caller', undefined, timing);
    session.markReady();
    let failure: Error | undefined;
    try {
      // Generous: the session should fail ~0.5 s after its last answer (none here).
      const untilMs = performance.now() + 10_000;
      while (failure === undefined && session.open && performance.now() < untilMs) {
        const s = session.openStream();
        s.once('error', (err: Error) => {
          failure = err;
        });
        s.write('GET / HTTP/1.1\r\n\r\n');
        // A request timeout shorter than PING + its timeout: the stream goes before the session would.
        await sleep(250);
        // Not once the session has failed: its streams learn why when its socket has closed.
        if (failure === undefined && session.open) s.destroy();
        await sleep(50);
      }
      for (let i = 0; i < 100 && failure === undefined; i++) await sleep(10);
      assert.match(String(failure?.message), /no answer from the peer agent/);
    } finally {
      mute.destroy();
    }
  });

  it('resets a stream whose sender overruns its window', async () => {
    const accepted: MuxStream[] = [];
    const calleeSide = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const raw = connect(port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    new MuxSession(await calleeSide, 'callee', (s) => {
      s.pause();
      accepted.push(s);
    });
    const got: Buffer[] = [];
    raw.on('data', (d: Buffer) => got.push(d));
    const chunk = Buffer.alloc(FRAME_LIMITS.payloadBytesMax);
    const frames = STREAM_LIMITS.windowBytes / chunk.length + 1;
    for (let i = 0; i < frames; i++)
      raw.write(encodeFrame({ type: FrameType.Data, stream: 1, value: 0, payload: chunk }));
    const rst = encodeFrame({ type: FrameType.Rst, stream: 1, value: 2 });
    await until(() => Buffer.concat(got).includes(rst), 'RST (flow control) sent');
    raw.destroy();
  });
});
