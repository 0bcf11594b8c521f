// Query names of the DNS interface and the addresses they carry. Pure: no I/O, no catalog, so the
// whole naming scheme (the part an operator types into dig) can be tested line by line.
import { isIP } from 'node:net';

/** What a query name asks for, before the catalog is consulted. */
export type Lookup =
  /** The domain itself: holds the SOA. */
  | { kind: 'apex' }
  /** A name that exists only because names below it exist (`service.mesh`, `_tcp.service.mesh`). */
  | { kind: 'empty' }
  | { kind: 'service'; service: string; tag: string | undefined }
  | { kind: 'node'; node: string }
  | { kind: 'addr'; ip: IpAddress }
  /** Under the domain but fits no form: NXDOMAIN. */
  | { kind: 'nxdomain' }
  /** Not under the domain: we are not a recursive resolver. */
  | { kind: 'outside' };

/** An IP literal in the canonical text dns-packet encodes, with its bytes for the `.addr.` label. */
export interface IpAddress {
  family: 4 | 6;
  text: string;
  bytes: Uint8Array;
}

/** What an instance's `address` turns into on the wire. */
export type Target = { kind: 'ip'; ip: IpAddress } | { kind: 'host'; name: string };

/** RFC 1035: 63 bytes in a label, 253 characters in a name written without the final dot. */
const labelBytesMax = 63;
const nameCharsMax = 253;
/** Letters, digits, '-' and '_' (SRV-style labels), not starting or ending with '-'. */
const hostLabelPattern = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/i;
/** Printable ASCII other than space: what a query label may hold for us to echo it back intact. */
const printableLabelPattern = /^[\x21-\x7e]+$/;

/** RFC 2782 names the protocol where Consul's form puts the tag; `_tcp` means "any tag", as in Consul. */
const anyTagProtocolLabel = '_tcp';

function stripFinalDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** A host name we can put on the wire as a CNAME or SRV target (no final dot, lower case). */
export function hostName(s: string): string | undefined {
  const name = stripFinalDot(s).toLowerCase();
  if (name.length === 0 || name.length > nameCharsMax) return undefined;
  return name.split('.').every((l) => hostLabelPattern.test(l)) ? name : undefined;
}

/** The served domain in canonical form ("mesh", "mesh.internal"); throws on a name that is not one. */
export function normalizeDomain(domain: string): string {
  const name = hostName(domain.startsWith('.') ? domain.slice(1) : domain);
  if (name === undefined) {
    throw new Error(
      `DNS domain must be a DNS name such as "mesh", got ${JSON.stringify(domain.slice(0, 100))}`,
    );
  }
  return name;
}

/**
 * Whether a decoded query name can be encoded back byte for byte. dns-packet decodes labels as UTF-8
 * and joins them with '.', so a binary label could re-encode longer than 63 bytes and corrupt the
 * answer; we refuse such names rather than echo something else.
 */
export function isEchoableName(name: string): boolean {
  if (name === '.') return true;
  const labels = stripFinalDot(name).split('.');
  return labels.every(
    (l) => l.length > 0 && Buffer.byteLength(l) <= labelBytesMax && printableLabelPattern.test(l),
  );
}

/** Parse a query name against the served domain (already normalised). Case-insensitive. */
export function parseQueryName(qname: string, domain: string): Lookup {
  const name = stripFinalDot(qname).toLowerCase();
  if (name === domain) return { kind: 'apex' };
  if (!name.endsWith(`.${domain}`)) return { kind: 'outside' };
  const labels = name.slice(0, -(domain.length + 1)).split('.');
  const kind = labels.pop();
  const rest = labels;
  if (rest.some((l) => l.length === 0)) return { kind: 'nxdomain' };
  switch (kind) {
    case 'service':
      return serviceLookup(rest);
    case 'node':
      // Node names default to the host name, which may hold dots: everything before `.node` is the name.
      return rest.length === 0 ? { kind: 'empty' } : { kind: 'node', node: rest.join('.') };
    case 'addr': {
      if (rest.length === 0) return { kind: 'empty' };
      const ip = rest.length === 1 ? parseAddrLabel(rest[0]!) : undefined;
      return ip === undefined ? { kind: 'nxdomain' } : { kind: 'addr', ip };
    }
    default:
      return { kind: 'nxdomain' };
  }
}

function serviceLookup(rest: string[]): Lookup {
  const [first, second] = rest;
  if (first === undefined) return { kind: 'empty' };
  if (second === undefined) {
    // `_tcp.service.mesh` exists as the parent of `_web._tcp.service.mesh`; answering NXDOMAIN would
    // let a resolver that follows RFC 8020 deny every name below it.
    return first.startsWith('_') ? { kind: 'empty' } : { kind: 'service', service: first, tag: undefined };
  }
  if (rest.length > 2) return { kind: 'nxdomain' };
  if (first.length > 1 && first.startsWith('_') && second.length > 1 && second.startsWith('_')) {
    const tag = second === anyTagProtocolLabel ? undefined : second.slice(1);
    return { kind: 'service', service: first.slice(1), tag };
  }
  return { kind: 'service', service: second, tag: first };
}

/** An instance or node address as it goes on the wire; undefined when it is neither an IP nor a host name. */
export function parseTarget(address: string): Target | undefined {
  const ip = parseIp(address);
  if (ip !== undefined) return { kind: 'ip', ip };
  const name = hostName(address);
  return name === undefined ? undefined : { kind: 'host', name };
}

/** An IPv4 or IPv6 literal; an IPv6 zone ("%eth0") is dropped, as it means nothing off the host. */
export function parseIp(address: string): IpAddress | undefined {
  const text = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  const family = isIP(text);
  if (family === 4) {
    const bytes = Uint8Array.from(text.split('.').map(Number));
    return { family: 4, text: bytes.join('.'), bytes };
  }
  if (family === 6) {
    const bytes = ipv6Bytes(text);
    return bytes === undefined ? undefined : ipFromBytes(bytes);
  }
  return undefined;
}

function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length === 4) return { family: 4, text: bytes.join('.'), bytes };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return { family: 6, text: groups.join(':'), bytes };
}

/** The 16 bytes of an IPv6 literal that node:net already accepted (so only the forms it allows). */
function ipv6Bytes(text: string): Uint8Array | undefined {
  let s = text;
  // An embedded IPv4 tail ("::ffff:10.0.0.1") becomes two hex groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = tail.split('.').map(Number);
    const hi = ((v4[0]! << 8) | v4[1]!).toString(16);
    const lo = ((v4[2]! << 8) | v4[3]!).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (h: string | undefined): string[] => (h === undefined || h === '' ? [] : h.split(':'));
  const head = groupsOf(halves[0]);
  const rear = groupsOf(halves[1]);
  const zeros = halves.length === 2 ? 8 - head.length - rear.length : 0;
  const groups = [...head, ...new Array<string>(zeros).fill('0'), ...rear];
  if (groups.length !== 8 || zeros < 0) return undefined;
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    const v = Number.parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  }
  return bytes;
}

/** The `.addr.` label for an IP, as Consul writes it: the address bytes in hex (8 or 32 digits). */
export function addrLabel(ip: IpAddress): string {
  return Buffer.from(ip.bytes).toString('hex');
}

/** The inverse of addrLabel; undefined for anything but 8 or 32 hex digits. */
export function parseAddrLabel(label: string): IpAddress | undefined {
  if (!/^([0-9a-f]{8}|[0-9a-f]{32})$/i.test(label)) return undefined;
  return ipFromBytes(Uint8Array.from(Buffer.from(label, 'hex')));
}
