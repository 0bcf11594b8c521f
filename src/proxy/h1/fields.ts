// One pass over a head's header block, byte by byte: it checks every line against the grammar of
// RFC 9112 §5 (a token, a colon, a field value free of CR, LF and other controls) and notes the
// lines the relay acts on: framing (Content-Length, Transfer-Encoding), the connection's fate
// (Connection, Upgrade), the authority (Host), hop-by-hop headers (dropped when forwarding) and
// the headers the mesh sets itself (traceparent, the instance header). It replaces three passes of
// regular expressions over the block's text (validate, find the framing headers, drop hop-by-hop
// lines), which were the largest part of parsing a head. Then forwardBlock leaves those lines out
// of the block it forwards, by the offsets the scan noted.

import type { Head } from './head.js';

/** Set by the caller's agent: which of the callee agent's instances was picked. Never passed on to an instance. */
export const INSTANCE_HEADER = 'x-mesh-instance';

/** Kinds of the lines `FieldScan.drops` lists: a mask of them says which lines to leave out. */
export const LINE = Object.freeze({
  /** Hop-by-hop (RFC 9110 §7.6.1): Connection, Keep-Alive, Proxy-Connection, TE, Upgrade, Proxy-Authorization, Proxy-Authenticate. */
  hop: 1,
  traceparent: 2,
  instance: 4,
});

const isOws = (c: number): boolean => c === 32 || c === 9;

/**
 * `v` without leading and trailing OWS, which is spaces and tabs only (RFC 9110 §5.6.3). Not
 * String.trim: on latin1 text it also strips \xa0, so `Host: api\xa0` would be read as `api` here
 * while the bytes forwarded, and the instance, say otherwise.
 */
export function trimOws(v: string): string {
  let a = 0;
  let b = v.length;
  while (a < b && isOws(v.charCodeAt(a))) a++;
  while (b > a && isOws(v.charCodeAt(b - 1))) b--;
  return a === 0 && b === v.length ? v : v.slice(a, b);
}

/** Character classes of CLASS, one bit each. */
export const CHARS = Object.freeze({
  /** A token character (RFC 9110 §5.6.2). */
  token: 1,
  /** A field-value character (§5.5): HTAB, SP, VCHAR, obs-text. */
  value: 2,
  /** A request-target character: VCHAR or obs-text (no space, tab or control). */
  target: 4,
  /** A Host character: uri-host [":" port] (RFC 3986 §3.2.2: reg-name, IPv4, or an IP literal in brackets). */
  host: 8,
  /** A decimal digit. */
  digit: 16,
});
const TCHAR = CHARS.token;
const VCHAR = CHARS.value;
/** Per byte: the CHARS classes it belongs to. */
const CLASS = (() => {
  const t = new Uint8Array(256);
  const add = (chars: string, bit: number): void => {
    for (const c of chars) t[c.charCodeAt(0)] = (t[c.charCodeAt(0)] as number) | bit;
  };
  const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  add(`${alnum}!#$%&'*+-.^_\`|~`, CHARS.token);
  add(`${alnum}-._~%!$&'()*+,;=:[]`, CHARS.host);
  add('0123456789', CHARS.digit);
  t[9] = (t[9] as number) | VCHAR;
  for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) t[c] = (t[c] as number) | VCHAR;
  for (let c = 0x21; c <= 0xff; c++) if (c !== 0x7f) t[c] = (t[c] as number) | CHARS.target;
  return t;
})();

/**
 * Every character of `s` is of class `bit` (CHARS), and there are at least `min` of them. A loop
 * over a table costs a fraction of a regular expression's test on the short strings of a head.
 */
export function allOf(s: string, bit: number, min = 0): boolean {
  if (s.length < min) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || ((CLASS[c] as number) & bit) === 0) return false;
  }
  return true;
}

// What a name is, once its length and bytes have matched one of these (lowercase) names.
const CONTENT_LENGTH = 1;
const TRANSFER_ENCODING = 2;
const CONNECTION = 3;
const UPGRADE = 4;
const HOST = 5;
const HOP = 6;
const TRACEPARENT = 7;
const INSTANCE = 8;
const CLOSE = 9;
const KEEP_ALIVE = 10;

const NAMES: ReadonlyArray<readonly [string, number]> = [
  ['content-length', CONTENT_LENGTH],
  ['transfer-encoding', TRANSFER_ENCODING],
  ['connection', CONNECTION],
  ['upgrade', UPGRADE],
  ['host', HOST],
  ['keep-alive', KEEP_ALIVE],
  ['proxy-connection', HOP],
  ['te', HOP],
  ['proxy-authorization', HOP],
  ['proxy-authenticate', HOP],
  ['traceparent', TRACEPARENT],
  [INSTANCE_HEADER, INSTANCE],
  ['close', CLOSE],
];

/**
 * The names above as bytes, each at a slot of its length and first letter: no two share both, so a
 * line's name is compared with one candidate at most (most names, with none).
 */
const NAME_LENGTH_MAX = 31;
const slotOf = (length: number, first: number): number => (length << 5) | (first & 31);
const SLOTS: Array<{ bytes: Uint8Array; kind: number } | undefined> = Array.from(
  { length: (NAME_LENGTH_MAX + 1) << 5 },
  () => undefined,
);
for (const [name, kind] of NAMES) {
  const slot = slotOf(name.length, name.charCodeAt(0));
  if (SLOTS[slot] !== undefined || name.length > NAME_LENGTH_MAX)
    throw new Error(`fields: no slot of its own for ${name}`);
  SLOTS[slot] = { bytes: Buffer.from(name, 'latin1'), kind };
}

/** `buf[at..at+want.length)` equals `want` (lowercase letters and '-'), in any case. */
function sameName(buf: Uint8Array, at: number, want: Uint8Array): boolean {
  // A token's bytes OR 0x20 equal a lowercase letter only for that letter in either case, and
  // equal '-' only for '-' (CR, the other byte that would, is no token character).
  for (let i = 0; i < want.length; i++) if (((buf[at + i] as number) | 0x20) !== want[i]) return false;
  return true;
}

function kindOf(buf: Uint8Array, at: number, length: number): number {
  if (length > NAME_LENGTH_MAX) return 0;
  const c = SLOTS[slotOf(length, buf[at] as number)];
  return c !== undefined && sameName(buf, at, c.bytes) ? c.kind : 0;
}

/**
 * What one scan found. One instance is reused for every head (the proxy's thread parses one head at
 * a time): read it before the next scan. Values are OWS-trimmed.
 */
export class FieldScan {
  /** The block broke the grammar: the caller says where, from the text. */
  malformed = false;
  lines = 0;
  /** Values of each header that may repeat, in order; undefined when absent. */
  contentLength: string[] | undefined = undefined;
  transferEncoding: string[] | undefined = undefined;
  connection: string[] | undefined = undefined;
  hosts = 0;
  host = '';
  upgrade = false;
  /** A header literally named "close" (which `Connection: close` would make hop-by-hop). */
  closeNamed = false;
  traceparent: string | undefined = undefined;
  instance: string | undefined = undefined;
  /** The first Keep-Alive value (a server's `timeout=N`: how long it keeps an idle connection). */
  keepAlive: string | undefined = undefined;
  /**
   * Lines forwarding may leave out, as [start, end, kind] triples: offsets into the block (from
   * the CRLF before the line to the end of its value) and a LINE kind. Undefined when there are none.
   */
  drops: number[] | undefined = undefined;

  private reset(): void {
    this.malformed = false;
    this.lines = 0;
    this.contentLength = undefined;
    this.transferEncoding = undefined;
    this.connection = undefined;
    this.hosts = 0;
    this.host = '';
    this.upgrade = false;
    this.closeNamed = false;
    this.traceparent = undefined;
    this.instance = undefined;
    this.keepAlive = undefined;
    this.drops = undefined;
  }

  /**
   * Scan the block at `buf[start..end)`: header lines, each preceded by CRLF (start === end when
   * there are none). `text` is the same bytes decoded as latin1 from `buf[textStart..]`, for values.
   * Stops at `linesMax` + 1 lines.
   */
  scan(buf: Uint8Array, start: number, end: number, text: string, textStart: number, linesMax: number): this {
    this.reset();
    let i = start;
    while (i < end) {
      if (i + 2 > end || buf[i] !== 13 || buf[i + 1] !== 10) return this.broken();
      const lineStart = i;
      i += 2;
      const nameStart = i;
      while (i < end && ((CLASS[buf[i] as number] as number) & TCHAR) !== 0) i++;
      if (i === nameStart || i === end || buf[i] !== 58) return this.broken();
      const nameEnd = i;
      i++;
      const valueStart = i;
      while (i < end && ((CLASS[buf[i] as number] as number) & VCHAR) !== 0) i++;
      // The value ends at the block's end or at the CR of the next line's CRLF, checked above.
      if (i < end && buf[i] !== 13) return this.broken();
      if (++this.lines > linesMax) return this;
      const kind = kindOf(buf, nameStart, nameEnd - nameStart);
      if (kind === 0) continue;
      let value = '';
      if (kind !== HOP && kind !== UPGRADE && kind !== CLOSE) {
        // Trimmed on the bytes, so the value is sliced once (RFC 9110 §5.6.3: OWS is SP and HTAB).
        let a = valueStart;
        let b = i;
        while (a < b && isOws(buf[a] as number)) a++;
        while (b > a && isOws(buf[b - 1] as number)) b--;
        value = text.slice(a - textStart, b - textStart);
      }
      switch (kind) {
        case CONTENT_LENGTH:
          if (this.contentLength === undefined) this.contentLength = [value];
          else this.contentLength.push(value);
          break;
        case TRANSFER_ENCODING:
          if (this.transferEncoding === undefined) this.transferEncoding = [value];
          else this.transferEncoding.push(value);
          break;
        case CONNECTION:
          if (this.connection === undefined) this.connection = [value];
          else this.connection.push(value);
          this.drop(lineStart - start, i - start, LINE.hop);
          break;
        case UPGRADE:
          this.upgrade = true;
          this.drop(lineStart - start, i - start, LINE.hop);
          break;
        case HOST:
          this.hosts++;
          this.host = value;
          break;
        case HOP:
          this.drop(lineStart - start, i - start, LINE.hop);
          break;
        case TRACEPARENT:
          this.traceparent ??= value;
          this.drop(lineStart - start, i - start, LINE.traceparent);
          break;
        case INSTANCE:
          this.instance ??= value;
          this.drop(lineStart - start, i - start, LINE.instance);
          break;
        case KEEP_ALIVE:
          this.keepAlive ??= value;
          this.drop(lineStart - start, i - start, LINE.hop);
          break;
        default:
          this.closeNamed = true;
      }
    }
    return this;
  }

  private broken(): this {
    this.malformed = true;
    return this;
  }

  private drop(start: number, end: number, kind: number): void {
    if (this.drops === undefined) this.drops = [start, end, kind];
    else this.drops.push(start, end, kind);
  }
}

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded. Transfer-Encoding stays: bodies are
 * relayed as framed. Trailer is end-to-end (§6.6.2): it announces the trailers, which are relayed.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Per drop set: matches a whole header line (with its leading CRLF) that is hop-by-hop or dropped. */
const dropPatterns = new WeakMap<ReadonlySet<string>, RegExp>();

function dropPattern(drop: ReadonlySet<string>): RegExp {
  let re = dropPatterns.get(drop);
  if (re === undefined) {
    const names = [...HOP_BY_HOP, ...drop].map(escapeRegExp).join('|');
    re = new RegExp(`\\r\\n(?:${names}):[^\\r]*`, 'gi');
    dropPatterns.set(drop, re);
  }
  return re;
}

/** Per drop set: the LINE kinds it adds to the hop-by-hop lines, or -1 when it names other headers. */
const dropMasks = new WeakMap<ReadonlySet<string>, number>();

function dropMask(drop: ReadonlySet<string>): number {
  let mask = dropMasks.get(drop);
  if (mask === undefined) {
    mask = LINE.hop;
    for (const name of drop) {
      if (name === 'traceparent') mask |= LINE.traceparent;
      else if (name === INSTANCE_HEADER) mask |= LINE.instance;
      else if (!HOP_BY_HOP.has(name)) mask = -1;
      if (mask < 0) break;
    }
    dropMasks.set(drop, mask);
  }
  return mask;
}

/**
 * The header block of `h` to forward: without hop-by-hop headers, headers the Connection header
 * names, and `drop` (lowercase). With `keepUpgrade`, Upgrade and `Connection: upgrade` stay (a
 * WebSocket handshake is relayed as such). When the Connection header names nothing beyond the
 * usual hop-by-hop headers (`keep-alive` and `close` from most clients and servers), the lines to
 * leave out are the ones the parse noted (or, for a `drop` of other names, found by one pattern
 * over the text); otherwise the block is rebuilt line by line.
 */
export function forwardBlock(h: Head, drop: ReadonlySet<string>, keepUpgrade = false): string {
  if (!keepUpgrade && namesOnlyDropped(h.connection, drop)) {
    // A header literally named "close" is rare enough to take the slow way.
    if (!h.closeNamed || !h.connection.includes('close')) {
      const mask = h.drops === undefined ? -1 : dropMask(drop);
      if (mask < 0) return h.block.replace(dropPattern(drop), '');
      return cutLines(h.block, h.drops as readonly number[], mask);
    }
  }
  let out = '';
  for (let i = 0; i < h.lower.length; i++) {
    const name = h.lower[i] as string;
    const keep =
      (keepUpgrade && name === 'upgrade') ||
      !(drop.has(name) || HOP_BY_HOP.has(name) || h.connection.includes(name));
    if (keep) out += `\r\n${h.names[i]}: ${h.values[i]}`;
  }
  if (keepUpgrade) out += '\r\nConnection: upgrade';
  return out;
}

/** Every Connection token names a header forwarding leaves out anyway (or is `close`). */
function namesOnlyDropped(tokens: readonly string[], drop: ReadonlySet<string>): boolean {
  for (const t of tokens) if (t !== 'close' && !HOP_BY_HOP.has(t) && !drop.has(t)) return false;
  return true;
}

/** `block` without the lines of `drops` (FieldScan.drops) whose kind is in `mask`. */
function cutLines(block: string, drops: readonly number[], mask: number): string {
  let out = '';
  let at = 0;
  for (let i = 0; i < drops.length; i += 3) {
    if (((drops[i + 2] as number) & mask) === 0) continue;
    out += block.slice(at, drops[i] as number);
    at = drops[i + 1] as number;
  }
  return at === 0 ? block : out + block.slice(at);
}
