// The frames of `mesh-mux/1`, the protocol that carries many HTTP/1.1 connections between two
// agents over one mTLS connection (session.ts says why). Every frame is a 9-byte header, then (for
// DATA only) its payload:
//
//   type    u8   DATA 0 · WINDOW 1 · FIN 2 · RST 3 · PING 4 · PING_ACK 5
//   stream  u32  big-endian; the caller's agent numbers its streams 1, 2, 3, ... (0 for PING)
//   value   u32  DATA: payload length · WINDOW: bytes the receiver frees · RST: a reason code ·
//                PING and PING_ACK: an opaque number the answer repeats · FIN: 0
//
// The reader is incremental (a frame may arrive split across reads) and bounded: a payload over
// FRAME_LIMITS.payloadBytesMax or an unknown type ends the session with an error naming the
// offset, as a malformed peer message must.

export const FrameType = Object.freeze({ Data: 0, Window: 1, Fin: 2, Rst: 3, Ping: 4, PingAck: 5 });
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FRAME_HEADER_BYTES = 9;

export const FRAME_LIMITS = Object.freeze({
  /**
   * Largest DATA payload. A write larger than this is sent as several frames; one socket read of
   * Node's (64 KiB) then holds at most one whole frame, and a frame never delays another stream's
   * frames by more than one such read.
   */
  payloadBytesMax: 64 * 1024,
});

/** Why a stream was reset (RST's value). */
export const ResetCode = Object.freeze({
  /** The stream's owner closed it before its exchange ended (a client gone, a timeout). */
  Cancel: 0,
  /** The receiving agent already serves as many streams on this session as it allows. */
  Refused: 1,
  /** The sender overran the window it was given. */
  FlowControl: 2,
  /** DATA for a stream the receiver has already closed. */
  Closed: 3,
});

export interface Frame {
  type: FrameType;
  stream: number;
  /** DATA: the payload's length; otherwise the frame's value. */
  value: number;
  /** DATA only: a view into the bytes pushed (the reader never reuses them; a partial frame is copied). */
  payload?: Buffer;
}

/** Write one frame's header at `at` in `out`. */
export function writeHeader(out: Buffer, at: number, type: FrameType, stream: number, value: number): void {
  out[at] = type;
  out.writeUInt32BE(stream, at + 1);
  out.writeUInt32BE(value, at + 5);
}

/** One whole frame as bytes (tests, and frames sent outside a batch). */
export function encodeFrame(f: Frame): Buffer {
  const payload = f.type === FrameType.Data ? (f.payload ?? Buffer.alloc(0)) : undefined;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + (payload?.length ?? 0));
  writeHeader(out, 0, f.type, f.stream, payload ? payload.length : f.value);
  payload?.copy(out, FRAME_HEADER_BYTES);
  return out;
}

export class FrameError extends Error {
  readonly code = 'EMUXPROTO';
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into frames. `push` calls `onFrame` for every whole frame and keeps the
 * rest (at most one header and one payload) for the next push. A payload is a view into the
 * pushed bytes when it arrived whole, else a copy of its parts.
 */
export class FrameReader {
  private held: Buffer = EMPTY;
  /** Bytes consumed so far, for error messages. */
  private offset = 0;
  private failed = false;

  constructor(private readonly onFrame: (f: Frame) => void) {}

  /** Feed bytes; throws FrameError on a malformed frame (the reader is then unusable). */
  push(chunk: Buffer): void {
    if (this.failed) throw new FrameError('the frame reader already failed');
    let buf = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    let at = 0;
    const end = buf.length;
    while (end - at >= FRAME_HEADER_BYTES) {
      const type = buf[at] as number;
      const stream = buf.readUInt32BE(at + 1);
      const value = buf.readUInt32BE(at + 5);
      if (type > FrameType.PingAck) this.fail(`unknown frame type ${type}`, at);
      if (type !== FrameType.Data) {
        at += FRAME_HEADER_BYTES;
        this.onFrame({ type: type as FrameType, stream, value });
        continue;
      }
      if (value > FRAME_LIMITS.payloadBytesMax)
        this.fail(`a DATA frame of ${value} bytes (at most ${FRAME_LIMITS.payloadBytesMax})`, at);
      if (end - at - FRAME_HEADER_BYTES < value) break;
      const from = at + FRAME_HEADER_BYTES;
      at = from + value;
      this.onFrame({ type: FrameType.Data, stream, value, payload: buf.subarray(from, at) });
    }
    this.offset += at;
    // What is left is one partial frame: copied, so the caller's buffer is not held.
    this.held = at === end ? EMPTY : Buffer.from(buf.subarray(at));
    buf = EMPTY;
  }

  /** Bytes held for an incomplete frame (for tests and bounds). */
  get heldBytes(): number {
    return this.held.length;
  }

  private fail(message: string, at: number): never {
    this.failed = true;
    this.held = EMPTY;
    throw new FrameError(`${message} at byte ${this.offset + at} of the session`);
  }
}
