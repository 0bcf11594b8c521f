// msgpack encoding for every protocol message. Decoding yields `unknown`: the caller validates
// the shape before anything reaches a core. Records/structures extensions are off so a message is
// plain maps and arrays that any peer version can read.
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes msgpack; returns an Error (never throws) for malformed bytes. */
export function decode(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    return new DecodeError((err as Error).message);
  }
}

export class DecodeError extends Error {}
