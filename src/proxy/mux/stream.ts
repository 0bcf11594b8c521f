// One HTTP/1.1 connection carried inside a mux session: what the relay sees as a socket. It has
// the socket's surface the relay uses (write, end, destroy, pause, resume; 'connect', 'data',
// 'drain', 'end', 'close', 'error') and none of a Node stream's machinery: a write becomes a frame
// in the session's next batch, a frame read becomes a 'data' event.
//
// Flow control, per stream and per direction, as HTTP/2 and yamux do it: a sender may have at most
// STREAM_LIMITS.windowBytes unacknowledged; the receiver acknowledges (WINDOW) bytes as its
// consumer takes them. A paused stream stops acknowledging, so its sender stops: one slow client
// holds only its own stream, never the session, and the bytes held for it are bounded by the window.
// A write past the window is queued and write() returns false, so the relay waits for 'drain'.
//
// Like a net.Socket made without allowHalfOpen: a FIN read ends this side too, and the stream
// closes once both FINs have passed (or at once on RST). Events that follow a call (destroy's
// 'close', a FIN's 'end') are emitted on the next tick, as a socket's are, so no handler runs
// inside the caller's own call.
import { EventEmitter } from 'node:events';
import { ResetCode } from './frame.js';

/** The error code of a stream the peer agent refused before serving it (its session was full). */
export const REFUSED_CODE = 'EMUXREFUSED';

export const STREAM_LIMITS = Object.freeze({
  /**
   * Bytes a sender may have in flight per stream before the receiver acknowledges them: the most
   * a receiving agent holds for a stream whose consumer stopped reading. 128 KiB keeps one body
   * at 1 Gbit/s over a LAN round trip of up to 1 ms and, with SESSION_LIMITS.streamsMax streams,
   * bounds what one session can make its receiver hold (64 MiB).
   */
  windowBytes: 128 * 1024,
});

/** What a stream asks of its session (session.ts). */
export interface StreamOwner {
  readonly remoteAddress: string;
  /** Queue a DATA frame (string payloads are written straight into the batch). */
  sendData(id: number, data: Buffer | string, encoding: BufferEncoding, bytes: number): void;
  sendWindow(id: number, bytes: number): void;
  sendFin(id: number): void;
  sendRst(id: number, code: number): void;
  /** The session's socket has more queued than it wants: writers should wait for 'drain'. */
  readonly congested: boolean;
  /** The stream is closed both ways or reset: it leaves the session's table. */
  forget(id: number): void;
  /** The session takes no new work: an idle stream should be closed, not reused. */
  readonly retired: boolean;
}

type Chunk = { data: Buffer | string; encoding: BufferEncoding; bytes: number };

export class MuxStream extends EventEmitter {
  /** Bytes this side may still send before the peer acknowledges more. */
  private sendWindow = STREAM_LIMITS.windowBytes;
  /** Writes waiting for window. */
  private queued: Chunk[] = [];
  private queuedBytes = 0;
  /** Bytes taken by the consumer and not yet acknowledged. */
  private takenBytes = 0;
  /** Received while paused, not yet taken (never acknowledged until taken). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** A write after the end or a reset has been reported (once, as a socket does). */
  private writeFailed = false;
  private paused = false;
  private flushScheduled = false;
  private needDrain = false;
  /** This side sent FIN (after its queued writes). */
  private finPending = false;
  writableEnded = false;
  private finSent = false;
  private finRead = false;
  destroyed = false;
  connecting = true;

  constructor(
    readonly id: number,
    private readonly owner: StreamOwner,
  ) {
    super();
  }

  get remoteAddress(): string {
    return this.owner.remoteAddress;
  }

  /** Its session was retired (client.ts): not to be reused once idle. */
  get retired(): boolean {
    return this.owner.retired;
  }

  /** The session is up: the stream can carry bytes ('connect', as a socket's). */
  opened(): void {
    if (this.destroyed || !this.connecting) return;
    this.connecting = false;
    this.emit('connect');
  }

  write(data: Buffer | string, encoding?: BufferEncoding | (() => void)): boolean {
    if (this.writableEnded || this.destroyed) {
      this.failWrite();
      return false;
    }
    let enc: BufferEncoding = typeof encoding === 'string' ? encoding : 'utf8';
    if (typeof data === 'string' && enc !== 'latin1' && enc !== 'utf8' && enc !== 'ascii') {
      // Only encodings whose byte length is exact go into the batch as text.
      data = Buffer.from(data, enc);
      enc = 'latin1';
    }
    const bytes = typeof data === 'string' ? Buffer.byteLength(data, enc) : data.length;
    if (bytes === 0) return true;
    if (this.queuedBytes === 0 && bytes <= this.sendWindow) {
      this.sendWindow -= bytes;
      this.owner.sendData(this.id, data, enc, bytes);
    } else {
      this.queued.push({ data, encoding: enc, bytes });
      this.queuedBytes += bytes;
      this.sendQueued();
    }
    if (this.queuedBytes > 0 || this.owner.congested) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  end(data?: Buffer | string | (() => void), encoding?: BufferEncoding): this {
    if (this.writableEnded || this.destroyed) return this;
    if (data !== undefined && typeof data !== 'function') this.write(data, encoding);
    this.writableEnded = true;
    this.finPending = true;
    this.sendQueued();
    return this;
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    if (!(this.finSent && this.finRead)) this.owner.sendRst(this.id, ResetCode.Cancel);
    this.closeNow(err);
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    if (this.held.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flushHeld());
    }
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  /** A socket's; a stream's timing is the relay ticker's and its session's. */
  setTimeout(_ms: number, _cb?: () => void): this {
    return this;
  }

  // --- from the session ---

  /** DATA arrived; false when the peer overran its window (the session resets the stream). */
  onData(payload: Buffer): boolean {
    if (this.destroyed || this.finRead) return true;
    // Everything not yet acknowledged counts against the window: taken and held alike.
    if (this.takenBytes + this.heldBytes + payload.length > STREAM_LIMITS.windowBytes) return false;
    if (this.paused || this.held.length > 0) {
      // Copied, so a held payload does not keep the session's whole read alive.
      this.held.push(Buffer.from(payload));
      this.heldBytes += payload.length;
      return true;
    }
    this.deliver(payload);
    return true;
  }

  onWindow(bytes: number): void {
    if (this.destroyed) return;
    this.sendWindow += bytes;
    this.sendQueued();
  }

  onFin(): void {
    if (this.destroyed || this.finRead) return;
    this.finRead = true;
    if (this.finSent) {
      // Both sides are done: bytes still held could never be answered.
      this.held = [];
      this.heldBytes = 0;
      this.maybeClosed();
      return;
    }
    if (this.held.length > 0) return; // 'end' follows the held bytes (flushHeld)
    process.nextTick(() => this.ended());
  }

  onRst(code: number): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const refused = code === ResetCode.Refused;
    const err = new Error(
      refused
        ? 'the peer agent refused the stream (too many on this connection)'
        : 'the peer agent reset the stream',
    ) as NodeJS.ErrnoException;
    // A refused stream carried nothing to the instance: the relay sends its request again.
    err.code = refused ? REFUSED_CODE : 'ECONNRESET';
    this.closeNow(err);
  }

  /** The session is gone: the stream fails as a socket whose connection dropped. */
  onSessionClosed(err: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closeNow(err);
  }

  /** The session's socket drained: a writer told to wait may go on. */
  onSessionDrain(): void {
    if (this.needDrain && this.queuedBytes === 0 && !this.destroyed && !this.owner.congested) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  // ---

  private deliver(payload: Buffer): void {
    this.takenBytes += payload.length;
    this.emit('data', payload);
    // Acknowledged in halves of the window: one WINDOW frame per 64 KiB taken, not per read. The
    // sender so always has at least half a window left while the consumer keeps up.
    if (this.takenBytes >= STREAM_LIMITS.windowBytes / 2 && !this.destroyed) {
      this.owner.sendWindow(this.id, this.takenBytes);
      this.takenBytes = 0;
    }
  }

  private flushHeld(): void {
    this.flushScheduled = false;
    while (!this.paused && !this.destroyed && this.held.length > 0) {
      const b = this.held.shift() as Buffer;
      this.heldBytes -= b.length;
      this.deliver(b);
    }
    if (this.held.length === 0 && this.finRead && !this.destroyed) this.ended();
  }

  private ended(): void {
    if (this.destroyed) return;
    if (this.queuedBytes > 0) {
      // The peer is done and stopped taking bytes: what waits for its window never goes out.
      this.destroy();
      return;
    }
    this.emit('end');
    // No half-open streams: the peer's FIN ends this side too.
    if (!this.writableEnded) this.end();
    else this.maybeClosed();
  }

  private sendQueued(): void {
    while (this.queued.length > 0 && !this.destroyed) {
      const c = this.queued[0] as Chunk;
      if (c.bytes > this.sendWindow) {
        if (this.sendWindow === 0) break;
        // Send what the window allows now; the rest waits for the next WINDOW.
        const buf = typeof c.data === 'string' ? Buffer.from(c.data, c.encoding) : c.data;
        const n = this.sendWindow;
        this.owner.sendData(this.id, buf.subarray(0, n), 'latin1', n);
        this.queued[0] = { data: buf.subarray(n), encoding: 'latin1', bytes: c.bytes - n };
        this.sendWindow = 0;
        this.queuedBytes -= n;
        break;
      }
      this.queued.shift();
      this.queuedBytes -= c.bytes;
      this.sendWindow -= c.bytes;
      this.owner.sendData(this.id, c.data, c.encoding, c.bytes);
    }
    if (this.queuedBytes > 0 || this.destroyed) return;
    if (this.finPending) {
      this.finPending = false;
      this.finSent = true;
      this.owner.sendFin(this.id);
      this.maybeClosed();
    }
    this.onSessionDrain();
  }

  private maybeClosed(): void {
    if (this.finSent && this.finRead && !this.destroyed) {
      this.destroyed = true;
      this.closeNow(undefined);
    }
  }

  /** A write after the end or a reset fails as a socket's does: an error on the next tick, once. */
  private failWrite(): void {
    if (this.writeFailed) return;
    this.writeFailed = true;
    const err = new Error('write on a stream that has ended') as NodeJS.ErrnoException;
    err.code = 'EPIPE';
    process.nextTick(() => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  private closeNow(err: Error | undefined): void {
    this.owner.forget(this.id);
    this.held = [];
    this.heldBytes = 0;
    this.queued = [];
    this.queuedBytes = 0;
    process.nextTick(() => {
      // Unlike a socket's, an error nobody listens for is not thrown: the relay always listens,
      // and a stream must never take the proxy down.
      if (err !== undefined && this.listenerCount('error') > 0) this.emit('error', err);
      this.emit('close', err !== undefined);
    });
  }
}
