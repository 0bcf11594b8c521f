// Length-prefixed framing for long-lived streams: a 4-byte big-endian length, then the payload.
// The decoder enforces a maximum frame size before buffering, so a peer cannot make us hold an
// arbitrarily large message.

export class FrameTooLargeError extends Error {
  constructor(
    readonly sizeBytes: number,
    readonly sizeBytesMax: number,
  ) {
    super(`frame of ${sizeBytes} bytes exceeds the limit of ${sizeBytesMax} bytes`);
  }
}

export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, false);
  out.set(payload, 4);
  return out;
}

/** Incremental decoder: push chunks, get complete frames. Throws FrameTooLargeError. */
export class FrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);

  constructor(readonly frameBytesMax: number) {}

  push(chunk: Uint8Array): Uint8Array[] {
    this.buf = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
    const frames: Uint8Array[] = [];
    // Bounded: every iteration consumes at least 4 bytes of the finite buffer.
    while (this.buf.length >= 4) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset, 4).getUint32(0, false);
      if (len > this.frameBytesMax) throw new FrameTooLargeError(len, this.frameBytesMax);
      if (this.buf.length < 4 + len) break;
      frames.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return frames;
  }

  /** Bytes held for an incomplete frame (non-zero at stream end means a truncated message). */
  get pendingBytes(): number {
    return this.buf.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
