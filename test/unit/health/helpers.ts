// Shared by the health tests: check definitions, polling, and a throwaway self-signed certificate.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { CheckDefinition, CheckSpec } from '../../../src/core/catalog/types.js';

export const silentLog = pino({ level: 'silent' });

export function checkDef(id: string, spec: CheckSpec, over: Partial<CheckDefinition> = {}): CheckDefinition {
  return {
    id,
    name: id,
    serviceId: 'web',
    spec,
    intervalMs: 50,
    timeoutMs: 1000,
    successBeforePassing: 0,
    failuresBeforeCritical: 0,
    initialStatus: 'critical',
    ...over,
  };
}

/** Poll until `cond` holds; generous bound, since CI machines stall. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const OPENSSL = '/usr/bin/openssl';

export interface SelfSigned {
  key: Buffer;
  cert: Buffer;
}

/** A self-signed certificate for 127.0.0.1, or a reason to skip when openssl is not there. */
export function selfSignedCert(): SelfSigned | { skip: string } {
  if (!existsSync(OPENSSL)) return { skip: `${OPENSSL} not found; cannot make a self-signed certificate` };
  const dir = mkdtempSync(join(tmpdir(), 'mesh-health-tls-'));
  try {
    execFileSync(
      OPENSSL,
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } catch (err) {
    return {
      skip: `openssl failed to make a certificate: ${err instanceof Error ? err.message : String(err)}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
