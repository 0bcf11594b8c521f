// One DNS message in, at most one out: header checks, validation of what dns-packet decoded, EDNS,
// and trimming the answer to the transport's size. No sockets: server.ts moves the bytes.
import dnsPacket, { type Answer, type Packet, type Question } from 'dns-packet';
import { type AnswerContext, type AnswerGroup, answerQuestion, Rcode, type Reply } from './answer.js';
import { dnsLimits } from './limits.js';
import { isEchoableName } from './names.js';

export type Transport = 'udp' | 'tcp';

export interface Outcome {
  /** Bytes to send back (without the TCP length prefix); undefined to stay silent. */
  response: Buffer | undefined;
  rcode: number | undefined;
  truncated: boolean;
  /** Why the message was malformed, for the debug log; undefined for a well-formed one. */
  malformed: string | undefined;
}

/** The one question of a query, with the EDNS facts that shape the answer. */
interface Query {
  question: Question;
  /** The client's EDNS record; undefined when it sent none. */
  edns: { udpPayloadBytes: number; version: number } | undefined;
}

const headerBytes = 12;
const qrBit = 0x8000;
const opcodeMask = 0x7800;
const opcodeQuery = 0;
/** Recursion desired and checking disabled are echoed to the client (RFC 1035, RFC 4035). */
const echoedFlagsMask = dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED;

/** The classes dns-packet can encode back; the other classes decode as "UNKNOWN_n". */
const namedClasses: ReadonlySet<string> = new Set(['IN', 'CS', 'CH', 'HS', 'ANY']);

function silent(malformed: string): Outcome {
  return { response: undefined, rcode: undefined, truncated: false, malformed };
}

export function handleMessage(raw: Buffer, transport: Transport, ctx: AnswerContext): Outcome {
  // Without the id, no answer can be matched to the query: drop.
  if (raw.length < headerBytes) return silent(`${raw.length} bytes, shorter than a DNS header`);
  const id = raw.readUInt16BE(0);
  const flags = raw.readUInt16BE(2);
  // Never answer an answer: two servers would bounce an error back and forth forever.
  if ((flags & qrBit) !== 0) return silent('a response, not a query');
  const header = { id, flags };

  if (raw.length > dnsLimits.queryBytesMax) {
    return bare(header, Rcode.FORMERR, `${raw.length} bytes, over ${dnsLimits.queryBytesMax}`);
  }
  let decoded: unknown;
  try {
    decoded = dnsPacket.decode(raw);
  } catch (err) {
    decoded = undefined;
    if ((flags & opcodeMask) === opcodeQuery) {
      return bare(header, Rcode.FORMERR, `undecodable: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const parsed = validateQuery(decoded);
  // An opcode we do not serve (NOTIFY, UPDATE, ...) is a well-formed message, not garbage.
  if ((flags & opcodeMask) !== opcodeQuery) {
    const question = typeof parsed === 'string' ? undefined : parsed.question;
    return encode(header, Rcode.NOTIMP, question, undefined, emptyReply(), transport, undefined);
  }
  if (typeof parsed === 'string') return bare(header, Rcode.FORMERR, parsed);

  const { question, edns } = parsed;
  if (edns !== undefined && edns.version > 0) {
    // RFC 6891 §6.1.3: a version we do not speak gets BADVERS, with our OPT saying which we do.
    return encode(header, Rcode.BADVERS, question, edns, emptyReply(), transport, undefined);
  }
  // Other classes (CHAOS's version.bind, ...) hold nothing of ours.
  const reply: Reply =
    question.class === 'IN' || question.class === 'ANY'
      ? answerQuestion(question, ctx)
      : { rcode: Rcode.REFUSED, authoritative: false, groups: [], authorities: [] };
  return encode(header, reply.rcode, question, edns, reply, transport, undefined);
}

/** The answer when the query itself cannot be used: the header only, no question echoed. */
function bare(header: { id: number; flags: number }, rcode: number, malformed: string): Outcome {
  return encode(header, rcode, undefined, undefined, emptyReply(), 'udp', malformed);
}

/** A SERVFAIL for a query we failed to answer (a bug or a catalog that threw). */
export function serverFailure(raw: Buffer): Buffer | undefined {
  if (raw.length < headerBytes || (raw.readUInt16BE(2) & qrBit) !== 0) return undefined;
  const header = { id: raw.readUInt16BE(0), flags: raw.readUInt16BE(2) };
  return encode(header, Rcode.SERVFAIL, undefined, undefined, emptyReply(), 'udp', undefined).response;
}

function emptyReply(): Reply {
  return { rcode: Rcode.NOERROR, authoritative: false, groups: [], authorities: [] };
}

/** The decoded query, or why it is malformed. dns-packet's result is untrusted: checked field by field. */
function validateQuery(decoded: unknown): Query | string {
  if (typeof decoded !== 'object' || decoded === null) return 'undecodable';
  const { questions, additionals } = decoded as { questions?: unknown; additionals?: unknown };
  if (!Array.isArray(questions) || questions.length === 0) return 'no question';
  // RFC 9619: a query holds exactly one question; nobody has ever defined how to answer two.
  if (questions.length > 1) return `${questions.length} questions`;
  const q: unknown = questions[0];
  if (typeof q !== 'object' || q === null) return 'undecodable question';
  const { name, type, class: klass } = q as { name?: unknown; type?: unknown; class?: unknown };
  if (typeof name !== 'string' || typeof type !== 'string' || typeof klass !== 'string') {
    return 'undecodable question';
  }
  if (!isEchoableName(name)) return 'a query name with binary labels';
  const question = { name, type, class: klass } as Question;

  const opts = (Array.isArray(additionals) ? additionals : []).filter(
    (a: unknown) => typeof a === 'object' && a !== null && (a as { type?: unknown }).type === 'OPT',
  ) as unknown[];
  if (opts.length > 1) return 'more than one OPT record'; // RFC 6891 §6.1.1
  const opt = opts[0] as { udpPayloadSize?: unknown; ednsVersion?: unknown } | undefined;
  if (opt === undefined) return { question, edns: undefined };
  if (typeof opt.udpPayloadSize !== 'number' || typeof opt.ednsVersion !== 'number')
    return 'undecodable OPT record';
  return { question, edns: { udpPayloadBytes: opt.udpPayloadSize, version: opt.ednsVersion } };
}

/** How large this answer may be on this transport. */
export function responseBytesMax(transport: Transport, edns: Query['edns']): number {
  if (transport === 'tcp') return dnsLimits.tcpResponseBytesMax;
  if (edns === undefined) return dnsLimits.udpResponseBytesClassic;
  // RFC 6891 §6.2.5: a size under 512 is treated as 512.
  return Math.min(
    dnsLimits.udpResponseBytesMax,
    Math.max(dnsLimits.udpResponseBytesClassic, edns.udpPayloadBytes),
  );
}

function encode(
  header: { id: number; flags: number },
  rcode: number,
  question: Question | undefined,
  edns: Query['edns'],
  reply: Reply,
  transport: Transport,
  malformed: string | undefined,
): Outcome {
  // dns-packet encodes a class it has no name for as 0; better no echo than a wrong one.
  const questions = question !== undefined && namedClasses.has(question.class ?? 'IN') ? [question] : [];
  const opt: Answer[] =
    edns === undefined
      ? []
      : [
          {
            name: '.',
            type: 'OPT',
            udpPayloadSize: dnsLimits.udpResponseBytesMax,
            extendedRcode: rcode >> 4,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ];
  const base: Packet = { questions, answers: [], authorities: reply.authorities, additionals: opt };
  const fit = fitGroups(base, reply.groups, responseBytesMax(transport, edns));
  const truncated = fit.answers.length < reply.groups.length;
  const packet: Packet = {
    id: header.id,
    type: 'response',
    flags:
      (header.flags & (opcodeMask | echoedFlagsMask)) |
      (reply.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
      (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      (rcode & 0xf),
    questions,
    answers: fit.answers,
    authorities: reply.authorities,
    additionals: [...fit.extras, ...opt],
  };
  return { response: dnsPacket.encode(packet), rcode, truncated, malformed };
}

/**
 * The longest prefix of the answer groups that fits in `bytesMax`, each answer with its extras, so
 * an SRV record is never sent without its target's address. dns-packet does not compress names,
 * so a message's size is the sum of its records' sizes and one pass finds the prefix.
 */
function fitGroups(
  base: Packet,
  groups: AnswerGroup[],
  bytesMax: number,
): { answers: Answer[]; extras: Answer[] } {
  let bytes = dnsPacket.encodingLength(base);
  const answers: Answer[] = [];
  const extras: Answer[] = [];
  const seenExtras = new Set<string>();
  for (const g of groups) {
    const newExtras = g.extras.filter((e) => !seenExtras.has(recordKey(e)));
    const groupBytes = recordBytes([g.answer, ...newExtras]);
    if (bytes + groupBytes > bytesMax) break;
    bytes += groupBytes;
    answers.push(g.answer);
    for (const e of newExtras) {
      seenExtras.add(recordKey(e));
      extras.push(e);
    }
  }
  return { answers, extras };
}

function recordBytes(records: Answer[]): number {
  return dnsPacket.encodingLength({ answers: records }) - headerBytes;
}

function recordKey(r: Answer): string {
  return `${r.name} ${r.type} ${JSON.stringify('data' in r ? r.data : null)}`;
}
