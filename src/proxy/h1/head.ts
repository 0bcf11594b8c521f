// HTTP/1.1 message heads (RFC 9112): parse a request or response head from raw bytes, read the
// headers that frame its body (body.ts decides the framing from them), and write the head to
// forward. The proxy relays bodies byte for byte, so it needs only the head and the framing, not
// Node's full HTTP machinery (which costs ~3× the CPU per hop).
// Strict where a lenient reading lets two parties disagree about where a message ends (request
// smuggling): bare LF, obs-fold, space before the colon, Content-Length with Transfer-Encoding,
// conflicting Content-Lengths, chunked not last: all refused. So is an HTTP/1.1 request with no
// Host, more than one, or one that is not a host (RFC 9112 §3.2): two parties could route it
// to different places.

import { allOf, CHARS, escapeRegExp, FieldScan, trimOws } from './fields.js';

export { trimOws };

/** The scan every head goes through; one per thread (heads are parsed one at a time). */
const FIELDS = new FieldScan();

export const H1_LIMITS = Object.freeze({
  /** Whole head, request or status line included (Node's default max header size is 16 KiB). */
  headBytesMax: 64 * 1024,
  headersMax: 256,
  /** Empty lines tolerated before a request line (RFC 9112 §2.2 allows at least one). */
  leadingEmptyLinesMax: 4,
});

export interface Head {
  /** Request method ('' in a response). */
  method: string;
  /** Request target ('' in a response). */
  target: string;
  /** Response status (0 in a request). */
  status: number;
  reason: string;
  /** The x of HTTP/1.x. */
  minor: 0 | 1;
  /**
   * The header lines as received, each preceded by CRLF (so '' when there are none, and the start
   * line plus this plus CRLF CRLF is the head). Forwarded as it is when nothing must be dropped.
   */
  block: string;
  /** Header names as received, their lowercase forms, and values (OWS trimmed), in order. Made on first use. */
  readonly names: string[];
  readonly lower: string[];
  readonly values: string[];
  /** Content-Length when present (and no Transfer-Encoding). */
  contentLength: number | undefined;
  /** Transfer-Encoding ends in chunked. */
  chunked: boolean;
  /** The connection ends after this message (Connection: close, or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** Connection: upgrade with an Upgrade header. */
  upgrade: boolean;
  /** Lowercase tokens of the Connection header: headers named there are hop-by-hop too. */
  connection: readonly string[];
  /** A header literally named "close" (which `Connection: close` makes hop-by-hop too). */
  closeNamed: boolean;
  /** The first traceparent and instance header values (OWS trimmed), found while parsing. */
  traceparent: string | undefined;
  instance: string | undefined;
  /** The first Keep-Alive header's value (OWS trimmed): a server's idle timeout hint, `timeout=5`. */
  keepAlive: string | undefined;
  /**
   * Lines forwardBlock may leave out without searching the block again (FieldScan.drops; empty
   * when the scan found none), or undefined when the block was rewritten after the scan.
   */
  drops: readonly number[] | undefined;
}

export type HeadResult =
  | { kind: 'partial' }
  | { kind: 'error'; status: number; message: string }
  | { kind: 'head'; head: Head; size: number };

/** Every Content-Length line of a block. */
const ANY_CONTENT_LENGTH = /\r\ncontent-length:[^\r]*/gi;
/** A Content-Length value: 15 digits reach far past any body this relays (and stay exact as a number). */
const DECIMAL_DIGITS_MAX = 15;
const isDecimal = (v: string): boolean => v.length <= DECIMAL_DIGITS_MAX && allOf(v, CHARS.digit, 1);
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** Reads up to this long are decoded whole to find the end of the head. */
const SHORT_READ_BYTES = 2048;
const NO_TOKENS: readonly string[] = Object.freeze([]);
/** A block the scan found nothing to leave out of (most requests: no Connection header at all). */
const NO_DROPS: readonly number[] = Object.freeze([]);

const fail = (status: number, message: string): HeadResult => ({ kind: 'error', status, message });

class ParsedHead implements Head {
  method = '';
  target = '';
  status = 0;
  reason = '';
  minor: 0 | 1 = 1;
  block = '';
  contentLength: number | undefined = undefined;
  chunked = false;
  close = false;
  upgrade = false;
  connection = NO_TOKENS;
  closeNamed = false;
  traceparent: string | undefined = undefined;
  instance: string | undefined = undefined;
  keepAlive: string | undefined = undefined;
  drops: readonly number[] | undefined = undefined;
  private fields: { names: string[]; lower: string[]; values: string[] } | undefined = undefined;
  /** The block `fields` was made from: a block rewritten since (replaceHeader) is split again. */
  private fieldsOf = '';

  get names(): string[] {
    return this.split().names;
  }
  get lower(): string[] {
    return this.split().lower;
  }
  get values(): string[] {
    return this.split().values;
  }

  /** The block as arrays (route matching on headers, and heads that need line-by-line forwarding). */
  private split(): { names: string[]; lower: string[]; values: string[] } {
    if (this.fields && this.fieldsOf === this.block) return this.fields;
    const f = { names: [] as string[], lower: [] as string[], values: [] as string[] };
    // The block was validated: every line has a colon after a non-empty name.
    const lines = this.block.split('\r\n');
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      f.names.push(name);
      f.lower.push(name.toLowerCase());
      f.values.push(trimOws(line.slice(colon + 1)));
    }
    this.fields = f;
    this.fieldsOf = this.block;
    return f;
  }
}

/**
 * Parse one head at `buf[start..limit)`: 'partial' until the blank line has arrived. The head keeps
 * no reference to `buf` (its fields are strings), so `buf` may be a read buffer that is reused.
 */
export function parseHead(
  buf: Buffer,
  start: number,
  type: 'request' | 'response',
  limit = buf.length,
): HeadResult {
  let from = start;
  if (type === 'request') {
    for (
      let i = 0;
      i < H1_LIMITS.leadingEmptyLinesMax && from + 1 < limit && buf[from] === 13 && buf[from + 1] === 10;
      i++
    )
      from += 2;
  }
  // A short read (a head and perhaps a small body: most of them) is decoded whole and searched as
  // text, which costs less than searching the bytes and then decoding the head.
  let end: number;
  let text: string;
  if (limit - from <= SHORT_READ_BYTES) {
    const all = buf.toString('latin1', from, limit);
    const at = all.indexOf('\r\n\r\n');
    end = at < 0 ? -1 : from + at;
    text = at < 0 ? '' : all.slice(0, at);
  } else {
    end = buf.indexOf(CRLFCRLF, from);
    if (end + 4 > limit) end = -1;
    text = end < 0 ? '' : buf.toString('latin1', from, end);
  }
  if (end < 0 || end + 4 - start > H1_LIMITS.headBytesMax) {
    // A head with a bare LF never shows CRLF CRLF: refused now rather than waited on until the idle timeout.
    if (end < 0 && bareLf(buf, from, limit))
      return fail(type === 'request' ? 400 : 502, 'bare LF in the head');
    if (limit - start <= H1_LIMITS.headBytesMax) return { kind: 'partial' };
    return fail(type === 'request' ? 431 : 502, `head longer than ${H1_LIMITS.headBytesMax} bytes`);
  }
  const eol = text.indexOf('\r\n');
  const first = eol < 0 ? text : text.slice(0, eol);
  if (first.includes('\n') || first.includes('\r')) return fail(400, 'bare CR or LF in the start line');
  const head = new ParsedHead();
  const bad = type === 'request' ? parseRequestLine(first, head) : parseStatusLine(first, head);
  if (bad) return bad;
  const block = eol < 0 ? '' : text.slice(eol);
  const f = FIELDS.scan(buf, eol < 0 ? end : from + eol, end, text, from, H1_LIMITS.headersMax);
  if (f.lines > H1_LIMITS.headersMax) return fail(431, `more than ${H1_LIMITS.headersMax} headers`);
  if (f.malformed) return blockError(block);
  head.block = block;
  head.drops = f.drops ?? NO_DROPS;
  head.closeNamed = f.closeNamed;
  head.traceparent = f.traceparent;
  head.instance = f.instance;
  head.keepAlive = f.keepAlive;
  let connection: readonly string[] | undefined;
  if (f.connection !== undefined) for (const v of f.connection) connection = connectionTokens(v, connection);
  if (connection) {
    // Forwarding drops the headers the Connection header names: a message that names its own
    // framing or authority would reach the next hop without the header this hop read it by.
    const own = framingNamed(connection);
    if (own !== undefined) return fail(type === 'request' ? 400 : 502, `the Connection header names ${own}`);
    head.connection = connection;
  }
  const framing = framingOf(head, f.transferEncoding ?? NO_TOKENS, f.contentLength ?? NO_TOKENS, type);
  if (framing) return framing;
  if (type === 'request') {
    const bad = hostError(head.minor, head.method === 'CONNECT', f.hosts, f.host);
    if (bad) return bad;
  }
  const keepAlive = head.connection.includes('keep-alive');
  head.close = head.connection.includes('close') || (head.minor === 0 && !keepAlive);
  head.upgrade = f.upgrade && head.connection.includes('upgrade');
  return { kind: 'head', head, size: end + 4 - start };
}

/** The first Connection token that names a header this hop frames or routes the message by. */
function framingNamed(tokens: readonly string[]): string | undefined {
  for (const t of tokens) if (t === 'content-length' || t === 'transfer-encoding' || t === 'host') return t;
  return undefined;
}

/**
 * RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host, and it names a host (HTTP/1.0 may have none).
 * A CONNECT may have none: its authority is its request-target (RFC 9110 §9.3.6), which is what
 * the HTTP proxy port reads it by, as Envoy does; a Host that names another is refused there.
 */
function hostError(minor: 0 | 1, connect: boolean, hosts: number, host: string): HeadResult | undefined {
  if (hosts === 0)
    return minor === 1 && !connect ? fail(400, 'no Host header in an HTTP/1.1 request') : undefined;
  if (hosts > 1) return fail(400, 'more than one Host header');
  if (!allOf(host, CHARS.host)) return fail(400, `invalid Host header "${host.slice(0, 40)}"`);
  return undefined;
}

/** An LF not preceded by CR in `buf[from..limit)` (read only while a head is incomplete). */
function bareLf(buf: Buffer, from: number, limit: number): boolean {
  for (let i = buf.indexOf(10, from); i >= 0 && i < limit; i = buf.indexOf(10, i + 1))
    if (i === from || buf[i - 1] !== 13) return true;
  return false;
}

const KEEP_ALIVE: readonly string[] = Object.freeze(['keep-alive']);
const CLOSE: readonly string[] = Object.freeze(['close']);

/** The lowercase tokens of a Connection value after `before`'s. A lone keep-alive or close (nearly every message) allocates nothing. */
function connectionTokens(value: string, before: readonly string[] | undefined): readonly string[] {
  if (before === undefined && !value.includes(',')) {
    const tok = value.toLowerCase();
    if (tok === 'keep-alive') return KEEP_ALIVE;
    if (tok === 'close') return CLOSE;
  }
  const out = before === undefined ? [] : [...before];
  for (const t of value.split(',')) {
    const tok = trimOws(t).toLowerCase();
    if (tok !== '') out.push(tok);
  }
  return out;
}

/** What is wrong with a header block the scan refused, line by line (too many lines, first). */
function blockError(block: string): HeadResult {
  const lines = block.split('\r\n');
  if (lines.length - 1 > H1_LIMITS.headersMax) return fail(431, `more than ${H1_LIMITS.headersMax} headers`);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) return fail(400, `header line ${i} has no name`);
    const name = line.slice(0, colon);
    // Covers obs-fold (a line starting with whitespace) and whitespace before the colon.
    if (!allOf(name, CHARS.token, 1)) return fail(400, `header name "${name.slice(0, 40)}" is not a token`);
    if (!allOf(line.slice(colon + 1), CHARS.value))
      return fail(400, `header ${name} has a control character in its value`);
  }
  return fail(400, 'malformed header block');
}

function parseRequestLine(line: string, head: Head): HeadResult | undefined {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  if (a <= 0 || b <= a + 1 || line.indexOf(' ', b + 1) >= 0) return fail(400, 'malformed request line');
  const method = line.slice(0, a);
  const target = line.slice(a + 1, b);
  const version = line.slice(b + 1);
  if (!allOf(method, CHARS.token, 1)) return fail(400, 'malformed method');
  if (!allOf(target, CHARS.target, 1)) return fail(400, 'malformed request target');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0')
    return fail(505, `unsupported version ${version.slice(0, 16)}`);
  head.method = method;
  head.target = target;
  head.minor = version === 'HTTP/1.1' ? 1 : 0;
  return undefined;
}

const digit = (line: string, i: number): number => line.charCodeAt(i) - 48;

/** `HTTP/1.x NNN reason` (the reason and its space optional), read by character rather than by pattern. */
function parseStatusLine(line: string, head: Head): HeadResult | undefined {
  const minor = digit(line, 7);
  const s0 = digit(line, 9);
  const s1 = digit(line, 10);
  const s2 = digit(line, 11);
  const ok =
    line.startsWith('HTTP/1.') &&
    (minor === 0 || minor === 1) &&
    line.charCodeAt(8) === 32 &&
    s0 >= 1 &&
    s0 <= 9 &&
    s1 >= 0 &&
    s1 <= 9 &&
    s2 >= 0 &&
    s2 <= 9 &&
    (line.length === 12 || line.charCodeAt(12) === 32);
  if (!ok) return fail(502, 'malformed status line');
  const reason = line.length > 13 ? line.slice(13) : '';
  if (!allOf(reason, CHARS.value)) return fail(502, 'control character in the reason phrase');
  head.minor = minor;
  head.status = s0 * 100 + s1 * 10 + s2;
  head.reason = reason;
  return undefined;
}

/** RFC 9112 §6.3, strictly: one framing, or the message is refused. */
function framingOf(
  head: Head,
  te: readonly string[],
  cl: readonly string[],
  type: 'request' | 'response',
): HeadResult | undefined {
  const status = type === 'request' ? 400 : 502;
  if (te.length > 0) {
    if (cl.length > 0) return fail(status, 'both Transfer-Encoding and Content-Length');
    if (head.minor === 0) return fail(status, 'Transfer-Encoding in an HTTP/1.0 message');
    const codings = te
      .join(',')
      .split(',')
      .map((c) => trimOws(c).toLowerCase())
      .filter((c) => c !== '');
    const chunkedAt = codings.indexOf('chunked');
    if (chunkedAt >= 0 && chunkedAt !== codings.length - 1)
      return fail(status, 'chunked is not the last coding');
    if (chunkedAt < 0) {
      // A request must be chunked to have a knowable end; a response without chunked runs to close.
      if (type === 'request') return fail(501, `unsupported Transfer-Encoding ${codings.join(', ')}`);
      return undefined;
    }
    head.chunked = true;
    return undefined;
  }
  if (cl.length === 1 && isDecimal(cl[0] as string)) {
    // One Content-Length with one value: nearly every message with a body.
    head.contentLength = Number(cl[0]);
  } else if (cl.length > 0) {
    const all = cl.join(',').split(',').map(trimOws);
    const first = all[0] as string;
    if (!isDecimal(first) || all.some((v) => v !== first))
      return fail(status, `invalid Content-Length ${cl.join(', ').slice(0, 40)}`);
    head.contentLength = Number(first);
    // Repeated, or a list of equal values: forwarded as one field with one value (RFC 9110 §8.6),
    // which a recipient that refuses repeats (Node's parser does) also reads.
    head.block = `${head.block.replace(ANY_CONTENT_LENGTH, '')}\r\ncontent-length: ${first}`;
    // The scan's line offsets no longer fit the block.
    head.drops = undefined;
  }
  return undefined;
}

/** `lines` ("Name: value") as a header block: each preceded by CRLF. */
export function linesBlock(lines: readonly string[]): string {
  let out = '';
  for (const l of lines) out += `\r\n${l}`;
  return out;
}

/** Per header name: its first line's value. */
const valuePatterns = new Map<string, RegExp>();

/** The value of the first header `lower` (lowercase), if any. */
export function headerValue(h: Head, lower: string): string | undefined {
  let re = valuePatterns.get(lower);
  if (re === undefined) {
    re = new RegExp(`\\r\\n${escapeRegExp(lower)}:([^\\r]*)`, 'i');
    // Names come from this program, not from requests: a handful.
    if (valuePatterns.size < 64) valuePatterns.set(lower, re);
  }
  const m = re.exec(h.block);
  return m === null ? undefined : trimOws(m[1] as string);
}

/** A head as text: the start line, the header block (see Head.block), the blank line. */
export function writeHead(startLine: string, block: string): string {
  return `${startLine}${block}\r\n\r\n`;
}

/** Per header name: every line of it. */
const linePatterns = new Map<string, RegExp>();

/**
 * Replace every `lower` header of a parsed head by one line `lower: value`, as a proxy that must
 * generate a field itself (Host from an absolute-form target, RFC 9112 §3.2.2). Only for a header
 * the head's parsed fields (framing, Connection, Keep-Alive, traceparent) do not come from: those
 * are not read again. `value` must be a valid field value: it is not checked here.
 */
export function replaceHeader(h: Head, lower: string, value: string): void {
  let every = linePatterns.get(lower);
  if (every === undefined) {
    every = new RegExp(`\\r\\n${escapeRegExp(lower)}:[^\\r]*`, 'gi');
    // Names come from this program, not from requests: a handful.
    if (linePatterns.size < 64) linePatterns.set(lower, every);
  }
  h.block = `${h.block.replace(every, '')}\r\n${lower}: ${value}`;
  // The scan's line offsets no longer fit the block.
  h.drops = undefined;
}

/**
 * Remove every header whose lowercase name is in `lower` from a parsed head, so that everything
 * that reads the head afterwards (intentions, rate limits, forwarding) sees it without them. Only
 * for headers the head's parsed fields (framing, Connection, Keep-Alive, traceparent) do not come
 * from. The kept lines are written back name: value (their original whitespace is not kept).
 */
export function removeHeaders(h: Head, lower: ReadonlySet<string>): void {
  const { names, values } = h;
  const low = h.lower;
  let block = '';
  for (let i = 0; i < low.length; i++)
    if (!lower.has(low[i] as string)) block += `\r\n${names[i]}: ${values[i]}`;
  h.block = block;
  // The scan's line offsets no longer fit the block.
  h.drops = undefined;
}
