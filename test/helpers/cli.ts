// Shared helpers for CLI and API-client tests: run the real `mesh` program as a process, capture
// the in-process CLI's output, and match MeshErrors by code and message.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MeshError } from '../../src/api/types.js';

const meshBin = fileURLToPath(new URL('../../bin/mesh.js', import.meta.url));

/** Run `mesh ARGS` (no MESH_HTTP_ADDR from the environment), feeding `stdin`; never rejects. */
export function mesh(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [meshBin, ...args],
      { timeout: 20_000, env: { ...process.env, MESH_HTTP_ADDR: '' } },
      (err, stdout, stderr) => {
        const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(stdin);
  });
}

/**
 * Run `mesh ARGS` with a standard output nobody reads: the pipe's read end is closed before the
 * program starts writing, as `head -1` closes it after one line. Resolves the exit status and stderr.
 */
export function meshToClosedPipe(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [meshBin, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MESH_HTTP_ADDR: '' },
      timeout: 20_000,
    });
    // Node starts in tens of milliseconds, so the read end is closed before the first write.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** An Io sink for `main()` that records what the CLI prints. */
export function captureIo() {
  const io = { stdout: [] as string[], stderr: [] as string[] };
  return {
    io,
    sink: { out: (t: string) => io.stdout.push(t), err: (t: string) => io.stderr.push(t) },
  };
}

/** For assert.rejects: the error is a MeshError with `code` and, if given, a matching message. */
export function isMeshError(code: string, message?: RegExp | string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MeshError, String(err));
    assert.equal(err.code, code);
    if (typeof message === 'string') assert.equal(err.message, message);
    else if (message) assert.match(err.message, message);
    return true;
  };
}
