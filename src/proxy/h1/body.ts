// Where a relayed body ends, decided from its head (RFC 9112 §6.3). The proxy forwards body bytes as
// they are (chunk framing included), so it only has to count: a fixed length, or the chunked grammar
// of RFC 9112 §7.1 walked byte by byte (sizes, extensions, trailers), with a bound on every line.
import type { Head } from './head.js';

/** How a body is delimited (from its head): a byte count, chunked, until the connection closes, or none at all. */
export type BodyKind =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'close' };

// The kinds without a length, made once: a request costs no object for them.
const NONE: BodyKind = Object.freeze({ kind: 'none' });
const CHUNKED: BodyKind = Object.freeze({ kind: 'chunked' });
const CLOSE: BodyKind = Object.freeze({ kind: 'close' });

export function requestBody(h: Head): BodyKind {
  if (h.chunked) return CHUNKED;
  if (h.contentLength !== undefined && h.contentLength > 0)
    return { kind: 'length', length: h.contentLength };
  return NONE;
}

/** The body of a response to a request with `method` (RFC 9112 §6.3 items 1–7). */
export function responseBody(h: Head, method: string): BodyKind {
  if (method === 'HEAD' || h.status < 200 || h.status === 204 || h.status === 304) return NONE;
  if (h.chunked) return CHUNKED;
  if (h.contentLength !== undefined)
    return h.contentLength > 0 ? { kind: 'length', length: h.contentLength } : NONE;
  return CLOSE;
}

export const BODY_LIMITS = Object.freeze({
  /** A chunk-size line, extensions included. */
  chunkLineBytesMax: 4096,
  /** All trailer lines together. */
  trailerBytesMax: 16 * 1024,
  /** Hex digits of a chunk size: 12 digits is 256 TiB, far past any real chunk. */
  chunkSizeDigitsMax: 12,
});

enum S {
  Size,
  /** Whitespace after the size digits: only more of it, a `;` (an extension) or the line's end may follow. */
  SizeWs,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  EndLf,
  Done,
}

export type FrameStep = { used: number; done: boolean } | { error: string };

/**
 * What every successful push returns: one object for the thread, overwritten by the next push
 * (callers read it at once), so counting a body's bytes allocates nothing.
 */
const STEP = { used: 0, done: false };

function stepped(used: number, done: boolean): FrameStep {
  STEP.used = used;
  STEP.done = done;
  return STEP;
}

/** Counts the bytes of one body; `push` says how many of `chunk[from..]` belong to it, and whether it ended. */
export class BodyFramer {
  private state: S;
  private remaining: number;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;

  constructor(readonly body: BodyKind) {
    this.remaining = body.kind === 'length' ? body.length : 0;
    // A zero length is a body that has already ended (the relay maps it to 'none' anyway).
    const empty = body.kind === 'none' || (body.kind === 'length' && body.length === 0);
    this.state = body.kind === 'chunked' ? S.Size : empty ? S.Done : S.Data;
  }

  get done(): boolean {
    return this.state === S.Done;
  }

  /** The step returned is the thread's one step object (see STEP): read it before the next push. */
  push(chunk: Uint8Array, from = 0): FrameStep {
    if (this.body.kind === 'close') return stepped(chunk.length - from, false);
    if (this.body.kind !== 'chunked') {
      const used = Math.min(this.remaining, chunk.length - from);
      this.remaining -= used;
      if (this.remaining === 0) this.state = S.Done;
      return stepped(used, this.state === S.Done);
    }
    let i = from;
    while (i < chunk.length && this.state !== S.Done) {
      if (this.state === S.Data) {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.state = S.DataCr;
        continue;
      }
      const err = this.step(chunk[i] as number);
      if (err) return { error: err };
      i++;
    }
    return stepped(i - from, this.state === S.Done);
  }

  /** One byte of framing (everything but chunk data). */
  private step(c: number): string | undefined {
    switch (this.state) {
      case S.Size:
      case S.SizeWs:
      case S.Ext: {
        if (++this.lineBytes > BODY_LIMITS.chunkLineBytesMax) return 'chunk-size line too long';
        if (c === 13) {
          if (this.digits === 0) return 'chunk size missing';
          this.state = S.SizeLf;
          return undefined;
        }
        if (this.state === S.Ext)
          return (c < 32 && c !== 9) || c === 127 ? 'control character in a chunk extension' : undefined;
        if (this.state === S.SizeWs) {
          // RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS ext-name [ ... ] ). "3 4" is no size a
          // back end would read the same way.
          if (c === 59) this.state = S.Ext;
          else if (c !== 32 && c !== 9) return 'invalid chunk size';
          return undefined;
        }
        const v = hexValue(c);
        if (v >= 0) {
          if (++this.digits > BODY_LIMITS.chunkSizeDigitsMax) return 'chunk size too large';
          this.remaining = this.remaining * 16 + v;
          return undefined;
        }
        if ((c === 59 || c === 32 || c === 9) && this.digits > 0) {
          this.state = c === 59 ? S.Ext : S.SizeWs;
          return undefined;
        }
        return 'invalid chunk size';
      }
      case S.SizeLf:
        if (c !== 10) return 'chunk-size line not ended by CRLF';
        this.lineBytes = 0;
        this.digits = 0;
        this.state = this.remaining === 0 ? S.TrailerStart : S.Data;
        return undefined;
      case S.DataCr:
        if (c !== 13) return 'chunk data not followed by CRLF';
        this.state = S.DataLf;
        return undefined;
      case S.DataLf:
        if (c !== 10) return 'chunk data not followed by CRLF';
        this.state = S.Size;
        return undefined;
      case S.TrailerStart:
      case S.Trailer:
        if (++this.trailerBytes > BODY_LIMITS.trailerBytesMax) return 'trailers too long';
        if (c === 13) {
          this.state = this.state === S.TrailerStart ? S.EndLf : S.TrailerLf;
          return undefined;
        }
        if (c === 10 || c === 0) return 'control character in a trailer';
        this.state = S.Trailer;
        return undefined;
      case S.TrailerLf:
        if (c !== 10) return 'trailer line not ended by CRLF';
        this.state = S.TrailerStart;
        return undefined;
      case S.EndLf:
        if (c !== 10) return 'chunked body not ended by CRLF';
        this.state = S.Done;
        return undefined;
      default:
        return 'unexpected state';
    }
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
