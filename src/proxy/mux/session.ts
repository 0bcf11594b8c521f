// A mux session: many HTTP/1.1 connections (streams) between two agents over one mTLS connection
// (ALPN `mesh-mux/1`), as Linkerd carries requests between its proxies over multiplexed
// connections.
//
// Why: with one TLS connection per in-flight request, every request costs each agent a TLS write
// and a TLS read of its own, and Node completes every TLS write asynchronously (an immediate and a
// callback into JavaScript). That was ~35 µs of CPU per request per agent, against ~4 µs for
// HAProxy (docs/benchmarks.md). Here the frames that all streams write during one turn of the
// event loop are sent at its end (setImmediate) as one TLS write: under load, tens of requests
// share one record, one write(2) and one read on the other side.
//
// The caller's agent opens streams; the callee's agent serves each as an HTTP/1.1 connection (the
// relay, inbound.ts). Frames are frame.ts's; flow control is per stream (stream.ts).
//
// Bounded: streams per session (the callee refuses more), a frame's payload (frame.ts), bytes
// queued for the socket before writers are told to wait, and bytes held per stream (the window).
import type { Duplex } from 'node:stream';
import { relayTicker, type Watched } from '../h1/ticker.js';
import {
  FRAME_HEADER_BYTES,
  FRAME_LIMITS,
  type Frame,
  FrameReader,
  FrameType,
  ResetCode,
  writeHeader,
} from './frame.js';
import { MuxStream, type StreamOwner } from './stream.js';

export const SESSION_LIMITS = Object.freeze({
  /**
   * Streams one session carries at once; the callee resets any more (the caller opens another
   * session). With STREAM_LIMITS.windowBytes this bounds what a session can make its receiver hold
   * for stalled consumers: 512 × 128 KiB = 64 MiB.
   */
  streamsMax: 512,
  /**
   * Bytes queued for the socket (this turn's batch plus what the socket has not yet written)
   * beyond which writers are told to wait for 'drain'.
   */
  queuedBytesMax: 512 * 1024,
  /**
   * A session with no streams is closed after this long: by the caller after 30 s (its pool keeps
   * idle streams that long), by the callee after 120 s, so the caller is almost always the one that
   * closes and never sends a request into a session the callee is closing.
   */
  callerIdleMs: 30_000,
  calleeIdleMs: 120_000,
  /** Stream ids the caller uses before it starts a new session (ids are u32 on the wire). */
  streamIdsMax: 0x7fff_ffff,
  /**
   * A caller that has streams on a session and has read nothing from it for this long sends a
   * PING; if nothing at all arrives for pingTimeoutMs after the PING, the peer agent is taken for
   * gone (a host that vanished without a reset) and the session fails, so new streams go to a new
   * one. Only an unanswered PING fails a session: one that sat idle and then got a stream is
   * probed first. Without this, requests would follow each other into a dead connection until TCP
   * gave up (many minutes). 5 + 10 s stays within the default request timeout (15 s).
   */
  pingAfterMs: 5_000,
  pingTimeoutMs: 10_000,
});

/** Small frames are staged here and copied out once per batch; payloads larger than this go by reference. */
const STAGE_BYTES = 16 * 1024;

export type Role = 'caller' | 'callee';

/** The liveness timing (SESSION_LIMITS by default; tests shorten it). */
export interface PingTiming {
  pingAfterMs: number;
  pingTimeoutMs: number;
}

export class MuxSession implements StreamOwner, Watched {
  /** Set by every read (not by writes): the ticker's quiet time is the time since the peer last spoke. */
  active = false;
  /** The PING sent and not yet answered, if any. */
  private pingSent = false;
  /** The quiet time (ticker's) when that PING went out: the peer has pingTimeoutMs from then. */
  private pingSentQuietMs = 0;
  private readonly streams = new Map<number, MuxStream>();
  private readonly reader: FrameReader;
  /** Caller: the next stream id. Callee: the highest id seen (a lower unknown id was closed). */
  private lastId = 0;
  private ready: boolean;
  private closedErr: Error | undefined;
  // This turn's batch: sealed parts, and the staging buffer for small frames.
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private stage = Buffer.allocUnsafe(STAGE_BYTES);
  private staged = 0;
  private flushScheduled = false;
  private drainWanted = false;
  private readonly flush = (): void => this.flushNow();
  /** TLS writes made (tests check that one turn's frames leave together). */
  batchesWritten = 0;
  /** Caller: what the session was opened with (client.ts); a snapshot without it retires the session. */
  credentials: object | undefined;
  /** Caller: no new streams; idle ones are not reused; closed once the last stream has. */
  retired = false;
  /** Caller: the callee refused a stream: it holds as many as it allows, so no new streams here. */
  private full = false;

  constructor(
    readonly socket: Duplex & { remoteAddress?: string },
    readonly role: Role,
    private readonly onStream?: (s: MuxStream) => void,
    private readonly timing: PingTiming = SESSION_LIMITS,
  ) {
    // A callee's socket is already secure; a caller's becomes ready at its handshake (client.ts).
    this.ready = role === 'callee';
    this.reader = new FrameReader((f) => this.onFrame(f));
    socket.on('data', (d: Buffer) => this.read(d));
    socket.on('drain', () => this.drained());
    socket.on('error', (err: Error) => {
      this.closedErr ??= err;
    });
    socket.on('close', () => this.closed());
    relayTicker.watch(this);
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** The caller may open another stream here. */
  get open(): boolean {
    return (
      !this.retired &&
      !this.full &&
      this.closedErr === undefined &&
      !this.socket.destroyed &&
      !this.socket.writableEnded &&
      this.lastId < SESSION_LIMITS.streamIdsMax
    );
  }

  /**
   * Caller: counts against the destination's cap on sessions: it takes new streams, or it still
   * carries some. A session that is ending, failed, out of stream ids or refused full by the
   * callee, and carries nothing, is on its way out and holds no place.
   */
  get counted(): boolean {
    return (
      !this.retired &&
      (this.open || (this.streams.size > 0 && this.closedErr === undefined && !this.socket.destroyed))
    );
  }

  get congested(): boolean {
    const queued = this.partsBytes + this.staged + this.socket.writableLength;
    if (queued < SESSION_LIMITS.queuedBytesMax) return false;
    this.drainWanted = true;
    return true;
  }

  /** Caller: a new stream; it emits 'connect' once the session is up. */
  openStream(): MuxStream {
    if (this.role !== 'caller') throw new Error('only the caller opens streams');
    const id = ++this.lastId;
    const s = new MuxStream(id, this);
    this.streams.set(id, s);
    if (this.ready) process.nextTick(() => s.opened());
    return s;
  }

  /** Caller: the handshake finished and the peer speaks this protocol. */
  markReady(): void {
    if (this.ready) return;
    this.ready = true;
    for (const s of this.streams.values()) s.opened();
  }

  /** Fail the session (and every stream on it) with `err`. */
  fail(err: Error): void {
    this.closedErr ??= err;
    this.socket.destroy();
  }

  /** Caller: stop using this session (its credentials were replaced). */
  retire(): void {
    this.retired = true;
    if (this.streams.size === 0) this.end();
  }

  /** Close the socket after the frames already queued (a stream's last RST, say) have gone out. */
  private end(): void {
    this.flushNow();
    this.socket.end();
  }

  onTick(quietMs: number): void {
    if (this.streams.size > 0) {
      if (this.role !== 'caller') return;
      const { pingAfterMs, pingTimeoutMs } = this.timing;
      // The peer is taken for gone only once a PING went unanswered: never for a silence nobody
      // asked it to break.
      if (this.pingSent && quietMs >= this.pingSentQuietMs + pingTimeoutMs) {
        this.fail(
          new Error(`no answer from the peer agent for ${Math.round(quietMs)} ms (a PING went unanswered)`),
        );
      } else if (quietMs >= pingAfterMs && !this.pingSent) {
        this.pingSent = true;
        this.pingSentQuietMs = quietMs;
        this.control(FrameType.Ping, 0, 0);
      }
      return;
    }
    if (this.retired) {
      this.end();
      return;
    }
    const idleMs = this.role === 'caller' ? SESSION_LIMITS.callerIdleMs : SESSION_LIMITS.calleeIdleMs;
    if (quietMs >= idleMs) this.end();
  }

  // --- StreamOwner: frames from the streams ---

  sendData(id: number, data: Buffer | string, encoding: BufferEncoding, bytes: number): void {
    if (typeof data === 'string') {
      if (bytes <= FRAME_LIMITS.payloadBytesMax && bytes <= STAGE_BYTES - FRAME_HEADER_BYTES) {
        this.room(FRAME_HEADER_BYTES + bytes);
        writeHeader(this.stage, this.staged, FrameType.Data, id, bytes);
        this.stage.write(data, this.staged + FRAME_HEADER_BYTES, bytes, encoding);
        this.staged += FRAME_HEADER_BYTES + bytes;
        this.queued();
        return;
      }
      data = Buffer.from(data, encoding);
    }
    for (let at = 0; at < bytes; at += FRAME_LIMITS.payloadBytesMax) {
      const part = data.subarray(at, Math.min(bytes, at + FRAME_LIMITS.payloadBytesMax));
      this.room(FRAME_HEADER_BYTES + (part.length <= 4096 ? part.length : 0));
      writeHeader(this.stage, this.staged, FrameType.Data, id, part.length);
      this.staged += FRAME_HEADER_BYTES;
      if (part.length <= 4096) {
        part.copy(this.stage, this.staged);
        this.staged += part.length;
      } else {
        // Large: by reference, copied once, when the batch is joined. The relay never reuses a
        // buffer it has written.
        this.seal();
        this.parts.push(part);
        this.partsBytes += part.length;
      }
    }
    this.queued();
  }

  sendWindow(id: number, bytes: number): void {
    this.control(FrameType.Window, id, bytes);
  }

  sendFin(id: number): void {
    this.control(FrameType.Fin, id, 0);
  }

  sendRst(id: number, code: number): void {
    this.control(FrameType.Rst, id, code);
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  // --- writing ---

  private control(type: FrameType, id: number, value: number): void {
    if (this.socket.destroyed) return;
    this.room(FRAME_HEADER_BYTES);
    writeHeader(this.stage, this.staged, type, id, value);
    this.staged += FRAME_HEADER_BYTES;
    this.queued();
  }

  /** Make room for `n` bytes in the staging buffer. */
  private room(n: number): void {
    if (this.staged + n > this.stage.length) this.seal();
  }

  /** Move the staged bytes into the batch's parts (a copy: the staging buffer is reused). */
  private seal(): void {
    if (this.staged === 0) return;
    const b = Buffer.allocUnsafe(this.staged);
    this.stage.copy(b, 0, 0, this.staged);
    this.parts.push(b);
    this.partsBytes += this.staged;
    this.staged = 0;
  }

  private queued(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After every socket read of this turn has been handled: their frames leave together.
    setImmediate(this.flush);
  }

  private flushNow(): void {
    this.flushScheduled = false;
    this.seal();
    const parts = this.parts;
    if (parts.length === 0) return;
    const out = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, this.partsBytes);
    this.parts = [];
    this.partsBytes = 0;
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.batchesWritten++;
    // Before the handshake the TLS socket holds writes and sends them once it is secure.
    this.socket.write(out);
    if (this.drainWanted && !this.congested) this.drained();
  }

  private drained(): void {
    if (this.congested) return;
    this.drainWanted = false;
    for (const s of this.streams.values()) s.onSessionDrain();
  }

  // --- reading ---

  private read(d: Buffer): void {
    this.active = true;
    // Any bytes, even part of a frame, answer the PING: the peer is there.
    this.pingSent = false;
    try {
      this.reader.push(d);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private onFrame(f: Frame): void {
    const s = this.streams.get(f.stream);
    switch (f.type) {
      case FrameType.Ping:
        // Not answered while the peer is not reading what it already has: answers must not pile up.
        if (!this.congested) this.control(FrameType.PingAck, 0, f.value);
        return;
      case FrameType.PingAck:
        return;
      case FrameType.Data: {
        const target = s ?? this.accept(f.stream);
        if (target === undefined) return;
        if (!target.onData(f.payload as Buffer)) {
          this.sendRst(f.stream, ResetCode.FlowControl);
          target.onRst(ResetCode.FlowControl);
        }
        return;
      }
      case FrameType.Window:
        s?.onWindow(f.value);
        return;
      case FrameType.Fin:
        s?.onFin();
        return;
      case FrameType.Rst:
        if (f.value === ResetCode.Refused && this.role === 'caller') this.full = true;
        s?.onRst(f.value);
        return;
    }
  }

  /** DATA for a stream not in the table: a new stream (callee), or one already closed. */
  private accept(id: number): MuxStream | undefined {
    if (this.role === 'caller' || id <= this.lastId) {
      // Answered only while the socket keeps up: a peer that floods frames for closed streams and
      // reads nothing does not make this agent queue an answer to each.
      if (!this.congested) this.sendRst(id, ResetCode.Closed);
      return undefined;
    }
    this.lastId = id;
    if (this.streams.size >= SESSION_LIMITS.streamsMax) {
      if (!this.congested) this.sendRst(id, ResetCode.Refused);
      return undefined;
    }
    const s = new MuxStream(id, this);
    this.streams.set(id, s);
    s.connecting = false;
    this.onStream?.(s);
    return s;
  }

  private closed(): void {
    relayTicker.unwatch(this);
    const err = new Error(
      this.closedErr
        ? `the connection to the peer agent failed: ${this.closedErr.message}`
        : 'the connection to the peer agent closed',
    ) as NodeJS.ErrnoException;
    err.code = (this.closedErr as NodeJS.ErrnoException | undefined)?.code ?? 'ECONNRESET';
    this.closedErr ??= err;
    const all = [...this.streams.values()];
    this.streams.clear();
    for (const s of all) s.onSessionClosed(err);
  }
}
