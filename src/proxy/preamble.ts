// The preamble of an L4 (`mesh-tcp`) connection between agents: after the TLS handshake the caller
// names the instance it chose, then the bytes of the call follow unchanged. HTTP calls carry the
// same in request headers instead, so their connections can be pooled per agent.
//
// Format: "MSH1", a 2-byte big-endian length, then that many bytes of JSON {"i": instance id}.

import type { Duplex } from 'node:stream';

const MAGIC = Buffer.from('MSH1');
/** An instance id is at most 128 characters: a preamble is never long. */
export const PREAMBLE_BYTES_MAX = 1024;
const HEADER_BYTES = MAGIC.length + 2;

export function encodePreamble(instanceId: string): Buffer {
  const body = Buffer.from(JSON.stringify({ i: instanceId }));
  if (body.length > PREAMBLE_BYTES_MAX) throw new Error('preamble too long');
  const head = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(head);
  head.writeUInt16BE(body.length, MAGIC.length);
  return Buffer.concat([head, body]);
}

/**
 * Read the preamble from `socket`; bytes after it are pushed back for whoever reads next.
 * Rejects on a malformed or oversized preamble, a close, or after `timeoutMs`.
 */
export function readPreamble(socket: Duplex, timeoutMs: number): Promise<{ instanceId: string }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | undefined, v?: { instanceId: string }, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      if (err) reject(err);
      else resolve(v as { instanceId: string });
    };
    const onClose = (): void => done(new Error('closed before the preamble'));
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (buf.length >= MAGIC.length && !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
        done(new Error('not a mesh preamble'));
        return;
      }
      if (buf.length < HEADER_BYTES) return;
      const len = buf.readUInt16BE(MAGIC.length);
      if (len > PREAMBLE_BYTES_MAX) {
        done(new Error(`preamble of ${len} bytes exceeds ${PREAMBLE_BYTES_MAX}`));
        return;
      }
      if (buf.length < HEADER_BYTES + len) return;
      let id: unknown;
      try {
        id = (JSON.parse(buf.subarray(HEADER_BYTES, HEADER_BYTES + len).toString()) as { i?: unknown } | null)
          ?.i;
      } catch {
        done(new Error('preamble is not JSON'));
        return;
      }
      if (typeof id !== 'string' || id.length === 0 || id.length > 128) {
        done(new Error('preamble names no instance'));
        return;
      }
      done(undefined, { instanceId: id }, buf.subarray(HEADER_BYTES + len));
    };
    const timer = setTimeout(() => done(new Error(`no preamble within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}
