// The end of a relayed TCP connection (L4, both agents): one side's close reaches the other.
import type { Duplex } from 'node:stream';

/**
 * The other side of a relayed TCP connection has closed. A socket its pipe already ended (the
 * other side sent FIN) is closed once its last bytes are written, not cut before them; one it did
 * not end (the other side failed) is closed now.
 */
export function closeAfterFlush(s: Duplex): void {
  if (s.destroyed) return;
  if (!s.writableEnded || s.writableFinished) {
    s.destroy();
    return;
  }
  s.once('finish', () => s.destroy());
  s.once('error', () => s.destroy());
}
