// Parsing of the "HOST:PORT" strings used by --bind, --advertise, --http and --join.
// Pure: no I/O, so the HTTP API can reuse it to validate join addresses.
import { isIPv4, isIPv6 } from 'node:net';
import type { HostPort } from '../agent/agent-config.js';
import { MeshError } from '../api/types.js';

/** RFC 1035 bounds: 253 characters in a name, 63 in a label. */
const dnsNameLengthMax = 253;
const dnsLabel = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
/** Longest string we will look at; anything longer is not an address. */
const addressLengthMax = 1024;

function bad(what: string, s: unknown, hint = ''): MeshError {
  const shown = typeof s === 'string' ? JSON.stringify(s.slice(0, 200)) : describe(s);
  return new MeshError('bad_request', `${what}: expected HOST:PORT, got ${shown}${hint}`);
}

/** A short, safe rendering of a value for an error message. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);
  return `${typeof v} ${String(v)}`;
}

export function isDnsName(host: string): boolean {
  if (host.length === 0 || host.length > dnsNameLengthMax) return false;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const labels = name.split('.');
  if (!labels.every((l) => dnsLabel.test(l))) return false;
  // "999.1.1.1" or "10.0.0" is a mistyped IPv4 address, not a name.
  return !labels.every((l) => /^\d+$/.test(l));
}

/**
 * Parse "1.2.3.4:7400", "[::1]:7400" or "node-1.example.com:7400". Port 0 is allowed (the OS picks
 * a free port); callers that dial use `minPort: 1`. `what` prefixes the error message, e.g.
 * `--bind` or `config file /etc/mesh.yaml: "bind"`.
 */
export function parseHostPort(s: unknown, what: string, opts: { minPort?: number } = {}): HostPort {
  if (typeof s !== 'string' || s.length > addressLengthMax) throw bad(what, s);
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') throw bad(what, s, ' (IPv6 form is [ADDRESS]:PORT)');
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (!isIPv6(host)) throw bad(what, s, ` (${JSON.stringify(host)} is not an IPv6 address)`);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) throw bad(what, s, ' (the port is missing)');
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) throw bad(what, s, ' (write IPv6 addresses in brackets: [::1]:7400)');
    if (!isIPv4(host) && !isDnsName(host)) {
      throw bad(what, s, ` (${JSON.stringify(host)} is neither an IPv4 address nor a DNS name)`);
    }
  }
  const minPort = opts.minPort ?? 0;
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= minPort && port <= 65535)) {
    throw bad(what, s, ` (port must be a number from ${minPort} to 65535)`);
  }
  return { host, port };
}

/** "host:port" with brackets around IPv6, the inverse of parseHostPort. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * Check a seed address for --join / PUT /v1/agent/join: host:port, [v6]:port, dns:port (port 1..65535),
 * or a multiaddr ("/ip4/10.0.0.1/tcp/7400/p2p/12D3..."). Returned unchanged; the agent resolves it.
 */
export function validateJoinAddress(s: unknown, what: string): string {
  if (typeof s === 'string' && s.startsWith('/')) {
    // A light syntactic check: /proto/value pairs, no empty parts. The agent parses it fully.
    const parts = s.slice(1).split('/');
    if (s.length <= addressLengthMax && parts.length >= 2 && parts.every((p) => p.length > 0)) return s;
    throw new MeshError(
      'bad_request',
      `${what}: ${describe(s)} is not a valid multiaddr (expected e.g. /ip4/10.0.0.1/tcp/7400)`,
    );
  }
  parseHostPort(s, what, { minPort: 1 });
  return s as string;
}
