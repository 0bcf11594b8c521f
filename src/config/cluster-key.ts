// The pre-shared cluster key: 32 random bytes, written as base64 (44 characters) or 64 hex digits.
import { randomBytes } from 'node:crypto';
import { MeshError } from '../api/types.js';

export const clusterKeyBytes = 32;

/** A fresh key in the form `mesh keygen` prints. */
export function generateClusterKey(): string {
  return randomBytes(clusterKeyBytes).toString('base64');
}

/** The key itself is never echoed in the error: it is a secret and may sit in shell history. */
export function parseClusterKey(v: unknown, what: string): Uint8Array {
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^[0-9a-fA-F]{64}$/.test(s)) return new Uint8Array(Buffer.from(s, 'hex'));
    if (/^[A-Za-z0-9+/]{43}=$/.test(s)) {
      const bytes = Buffer.from(s, 'base64');
      if (bytes.length === clusterKeyBytes) return new Uint8Array(bytes);
    }
  }
  const got = typeof v === 'string' ? `a ${v.trim().length}-character string` : typeof v;
  throw new MeshError(
    'bad_request',
    `${what}: expected a 32-byte key as base64 (44 characters) or 64 hex characters, got ${got}; ` +
      'make one with `mesh keygen`',
  );
}
