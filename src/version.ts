// The package version, for `mesh --version` and the agent's `version` (GET /v1/agent/self).
// This module runs from three places: dist/src/version.js (tsc), dist/mesh.mjs (the esbuild bundle,
// where import.meta.url is the bundle's) and dist/proxy-worker.mjs. A path relative to this file
// is right for only one of them, so search upward for the project's own package.json instead.
import { readFileSync } from 'node:fs';

/** The package name that marks the project's package.json (not some other one on the way up). */
const packageName = 'mesh';
/**
 * Directories searched, this module's own first. The deepest caller is dist/src/version.js, two
 * below the project root; 4 leaves room for a different layout without walking the whole disk.
 */
const searchDepthMax = 4;

function versionIn(url: URL): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: unknown; version?: unknown };
    return pkg.name === packageName && typeof pkg.version === 'string' ? pkg.version : undefined;
  } catch {
    return undefined; // no package.json here (or an unreadable one): look further up
  }
}

/** The version in the nearest package.json named `mesh` above `from`, or 'unknown'. */
export function findPackageVersion(from: URL | string = import.meta.url): string {
  let dir = new URL('.', from);
  for (let depth = 0; depth <= searchDepthMax; depth++) {
    const version = versionIn(new URL('package.json', dir));
    if (version !== undefined) return version;
    const parent = new URL('..', dir);
    if (parent.href === dir.href) break; // the file system root
    dir = parent;
  }
  return 'unknown';
}

let cached: string | undefined;

/** This program's version; read once. */
export function packageVersion(): string {
  cached ??= findPackageVersion();
  return cached;
}
