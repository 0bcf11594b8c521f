// A tiny DNS client for the tests: one query over UDP, or several over one TCP connection, plus a
// fake catalog. Answers are decoded with dns-packet, like the server encodes them.
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import dnsPacket, { type DecodedPacket, type Packet, type RecordType } from 'dns-packet';
import type { DnsCatalog, DnsInstance } from '../../../src/dns/server.js';

/** Generous: a test that waits this long for an answer that should come has found a bug. */
export const answerWaitMs = 3_000;

let nextId = 1;

export function query(name: string, type: RecordType | 'ANY', opts: { edns?: number } = {}): Packet {
  const packet: Packet = {
    id: nextId++ & 0xffff,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as RecordType, class: 'IN' }],
  };
  if (opts.edns !== undefined) {
    packet.additionals = [
      {
        name: '.',
        type: 'OPT',
        udpPayloadSize: opts.edns,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ];
  }
  return packet;
}

export function rcodeOf(p: DecodedPacket): number {
  return (p.flags ?? 0) & 0xf;
}

export const NOERROR = 0;
export const FORMERR = 1;
export const NXDOMAIN = 3;
export const NOTIMP = 4;
export const REFUSED = 5;

export interface UdpAnswer {
  packet: DecodedPacket;
  bytes: number;
}

/** Send one datagram; resolve the decoded answer, or undefined when none comes within `waitMs`. */
export function udpExchange(
  port: number,
  msg: Packet | Buffer,
  waitMs = answerWaitMs,
): Promise<UdpAnswer | undefined> {
  const raw = Buffer.isBuffer(msg) ? msg : dnsPacket.encode(msg);
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      resolve(undefined);
    }, waitMs);
    sock.on('message', (reply) => {
      clearTimeout(timer);
      sock.close();
      try {
        resolve({ packet: dnsPacket.decode(reply), bytes: reply.length });
      } catch (err) {
        reject(err);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(raw, port, '127.0.0.1');
  });
}

export async function udpQuery(port: number, msg: Packet): Promise<DecodedPacket> {
  const answer = await udpExchange(port, msg);
  if (answer === undefined) throw new Error(`no UDP answer within ${answerWaitMs} ms`);
  return answer.packet;
}

export function frame(msg: Packet | Buffer): Buffer {
  const raw = Buffer.isBuffer(msg) ? msg : dnsPacket.encode(msg);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(raw.length);
  return Buffer.concat([prefix, raw]);
}

export function tcpConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Read `count` length-prefixed answers from a socket. */
export function readFrames(s: Socket, count: number): Promise<DecodedPacket[]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out: DecodedPacket[] = [];
    const timer = setTimeout(
      () => done(new Error(`got ${out.length} of ${count} TCP answers`)),
      answerWaitMs,
    );
    const done = (err?: Error): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve(out);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        out.push(dnsPacket.decode(buf.subarray(2, 2 + len)));
        buf = buf.subarray(2 + len);
      }
      if (out.length >= count) done();
    };
    const onClose = (): void => done(new Error(`connection closed after ${out.length} of ${count} answers`));
    s.on('data', onData);
    s.on('close', onClose);
  });
}

/** Several queries on one fresh connection, written at once (pipelined). */
export async function tcpQueries(port: number, msgs: Packet[]): Promise<DecodedPacket[]> {
  const s = await tcpConnect(port);
  try {
    const answers = readFrames(s, msgs.length);
    s.write(Buffer.concat(msgs.map(frame)));
    return await answers;
  } finally {
    s.destroy();
  }
}

export async function tcpQuery(port: number, msg: Packet): Promise<DecodedPacket> {
  const [answer] = await tcpQueries(port, [msg]);
  return answer!;
}

/** Resolves when the server closes the socket (or rejects after the wait). */
export function closedByPeer(s: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error('the server kept the connection open')), answerWaitMs);
    s.on('error', () => {});
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export interface FakeInstance extends DnsInstance {
  tags: string[];
}

/** A catalog from plain data; tags match case-insensitively, as the DnsCatalog contract asks. */
export class FakeCatalog implements DnsCatalog {
  readonly services = new Map<string, FakeInstance[]>();
  readonly nodes = new Map<string, string>();
  calls: Array<{ service: string; tag: string | undefined }> = [];

  healthyInstances(service: string, tag: string | undefined): DnsInstance[] | undefined {
    this.calls.push({ service, tag });
    const all = this.services.get(service);
    if (all === undefined) return undefined;
    return all
      .filter((i) => tag === undefined || i.tags.some((t) => t.toLowerCase() === tag))
      .map(({ node, address, port, weight }) => ({
        node,
        address,
        port,
        ...(weight !== undefined ? { weight } : {}),
      }));
  }

  node(name: string): { name: string; address: string } | undefined {
    const address = this.nodes.get(name);
    return address === undefined ? undefined : { name, address };
  }
}

/** The records of one type in a section, e.g. the A data of the answers. */
export function dataOf(records: DecodedPacket['answers'], type: string): unknown[] {
  return (records ?? []).filter((r) => r.type === type).map((r) => ('data' in r ? r.data : undefined));
}
