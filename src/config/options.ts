// The table of configuration options: one row per config-file key / CLI flag, with its parser.
// A parser receives the raw value (a string from a flag, any YAML/JSON value from a file) and a
// `what` prefix for its error messages, and returns the typed value.
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import type { HostPort, LogLevel } from '../agent/agent-config.js';
import { MeshError } from '../api/types.js';
import { parseClusterKey } from './cluster-key.js';
import { limits, logLevels } from './defaults.js';
import { type DurationRange, parseDurationMs } from './duration.js';
import { describe, parseHostPort, validateJoinAddress } from './host-port.js';

/** What the operator set, flags or file; every field optional until defaults are applied. */
export interface Settings {
  nodeName: string;
  dataDir: string;
  bind: HostPort;
  advertise: HostPort;
  http: HostPort;
  join: string[];
  clusterKey: Uint8Array;
  zone: string;
  logLevel: LogLevel;
  retryJoinIntervalMs: number;
  retryJoinMaxIntervalMs: number;
  retryJoinMaxAttempts: number;
  leaveTimeoutMs: number;
  dev: boolean;
  bootstrap: boolean;
  bootstrapExpect: number;
  voters: number;
  configDir: string;
  enableScriptChecks: boolean;
  dns: HostPort | 'off';
  inbound: HostPort;
  caLeafTtlMs: number;
}

export type Source = { kind: 'flag' } | { kind: 'file'; dir: string };

export interface OptionSpec {
  /** Config-file key and flag name: `node-name` ↔ `--node-name`. */
  key: string;
  /** commander's camelCase name for the flag: `nodeName`. */
  flag: string;
  prop: keyof Settings;
  parse(v: unknown, what: string, source: Source): Settings[keyof Settings];
}

function fail(what: string, expected: string, v: unknown): never {
  throw new MeshError('bad_request', `${what}: expected ${expected}, got ${describe(v)}`);
}

function label(maxLength: number, allowEmpty: boolean) {
  return (v: unknown, what: string): string => {
    if (typeof v !== 'string') fail(what, 'a string', v);
    const ok =
      (allowEmpty || v.length > 0) && v.length <= maxLength && /^[^\s\p{Cc}]*$/u.test(v) && !v.includes('/');
    if (!ok) fail(what, `up to ${maxLength} characters with no spaces, slashes or control characters`, v);
    return v;
  };
}

function dir(v: unknown, what: string, source: Source): string {
  if (typeof v !== 'string' || v.length === 0 || v.includes('\0')) fail(what, 'a directory path', v);
  // Relative paths in a config file are relative to the file, so the file can move with its data.
  return isAbsolute(v) ? v : resolve(source.kind === 'file' ? source.dir : process.cwd(), v);
}

function listenAddress(v: unknown, what: string): HostPort {
  const hp = parseHostPort(v, what);
  // The agent listens on a socket address; a DNS name would have to be resolved to one anyway,
  // and resolving at start hides which interface was meant.
  if (isIP(hp.host) === 0 && hp.host !== 'localhost') fail(what, 'an IP address to listen on, as IP:PORT', v);
  return hp;
}

function advertiseAddress(v: unknown, what: string): HostPort {
  const hp = parseHostPort(v, what);
  if (hp.host === '0.0.0.0' || hp.host === '::') {
    fail(what, 'an address other agents can dial (not 0.0.0.0 or ::)', v);
  }
  return hp;
}

function joinList(v: unknown, what: string): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) fail(what, 'an address or a list of addresses', v);
  if (list.length > limits.joinAddressesMax) fail(what, `at most ${limits.joinAddressesMax} addresses`, v);
  return list.map((a, i) => validateJoinAddress(a, Array.isArray(v) ? `${what}[${i}]` : what));
}

/**
 * A whole number from `min` to `max`. Flags arrive as strings, and a quoted number in a config file
 * means the same number (as "1500" does for a duration), so every count reads "5" as 5: one rule
 * for every numeric setting, wherever it is written.
 */
function wholeNumber(v: unknown, what: string): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) fail(what, 'a whole number', v);
  return n;
}

function count(min: number, max: number) {
  return (v: unknown, what: string): number => {
    const n = wholeNumber(v, what);
    if (n < min || n > max)
      throw new MeshError('bad_request', `${what}: must be from ${min} to ${max}, got ${describe(v)}`);
    return n;
  };
}

function voterCount(v: unknown, what: string): number {
  const n = wholeNumber(v, what);
  // An even voter count tolerates no more failures than the odd count below it, and costs more.
  if (![1, 3, 5, 7].includes(n)) {
    throw new MeshError(
      'bad_request',
      `${what}: must be an odd number from 1 to 7 (1, 3, 5 or 7), got ${describe(v)}`,
    );
  }
  return n;
}

function dnsAddress(v: unknown, what: string): HostPort | 'off' {
  // `off` turns the DNS server off, e.g. where another resolver owns the port.
  if (v === 'off' || v === false || v === 'false') return 'off';
  return listenAddress(v, what);
}

function duration(range: DurationRange) {
  return (v: unknown, what: string): number => parseDurationMs(v, what, range);
}

function logLevel(v: unknown, what: string): LogLevel {
  if (typeof v !== 'string' || !(logLevels as readonly string[]).includes(v)) {
    fail(what, `one of ${logLevels.join(', ')}`, v);
  }
  return v as LogLevel;
}

/** A quoted "true" or "false" means the same as the bare word, like a quoted number. */
function bool(v: unknown, what: string): boolean {
  if (v === 'true' || v === 'false') return v === 'true';
  if (typeof v !== 'boolean') fail(what, 'true or false', v);
  return v;
}

function opt(key: string, prop: keyof Settings, parse: OptionSpec['parse']): OptionSpec {
  const flag = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return { key, flag, prop, parse };
}

export const options: readonly OptionSpec[] = [
  opt('node-name', 'nodeName', label(limits.nodeNameLengthMax, false)),
  opt('data-dir', 'dataDir', dir),
  opt('bind', 'bind', listenAddress),
  opt('advertise', 'advertise', advertiseAddress),
  opt('http', 'http', listenAddress),
  opt('join', 'join', joinList),
  opt('cluster-key', 'clusterKey', parseClusterKey),
  opt('zone', 'zone', label(limits.zoneLengthMax, true)),
  opt('log-level', 'logLevel', logLevel),
  opt(
    'retry-join-interval',
    'retryJoinIntervalMs',
    duration({ minMs: 1, maxMs: limits.retryJoinIntervalMsMax, minWhy: 'a zero wait is a busy loop' }),
  ),
  opt(
    'retry-join-max-interval',
    'retryJoinMaxIntervalMs',
    duration({ minMs: 1, maxMs: limits.retryJoinIntervalMsMax }),
  ),
  opt('retry-join-max-attempts', 'retryJoinMaxAttempts', count(0, limits.retryJoinMaxAttemptsMax)),
  opt('leave-timeout', 'leaveTimeoutMs', duration({ minMs: 0, maxMs: limits.leaveTimeoutMsMax })),
  opt('dev', 'dev', bool),
  opt('bootstrap', 'bootstrap', bool),
  opt('bootstrap-expect', 'bootstrapExpect', count(1, 9)),
  opt('voters', 'voters', voterCount),
  opt('config-dir', 'configDir', dir),
  opt('enable-script-checks', 'enableScriptChecks', bool),
  opt('dns', 'dns', dnsAddress),
  opt('inbound', 'inbound', listenAddress),
  opt('ca-leaf-ttl', 'caLeafTtlMs', duration({ minMs: limits.caLeafTtlMsMin, maxMs: limits.caLeafTtlMsMax })),
];

export const optionKeys: readonly string[] = options.map((o) => o.key);

/** For an unknown key: the known key it most likely meant (camelCase, snake_case, a typo), if any. */
export function suggestKey(key: string): string | undefined {
  const normal = key
    .replace(/([a-z])([A-Z])/g, '$1-$2')
    .replace(/_/g, '-')
    .toLowerCase();
  if (optionKeys.includes(normal)) return normal;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of optionKeys) {
    const d = editDistance(normal, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3 || a.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}
