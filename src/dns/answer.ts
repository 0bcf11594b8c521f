// The answer to one question: which records, which response code. No sockets and no packet bytes,
// only the catalog; randomness and the clock come in through the context so tests can fix them.
import type { Answer, Question } from 'dns-packet';
import { addrLabel, type IpAddress, type Lookup, parseQueryName, parseTarget } from './names.js';
import type { DnsCatalog, DnsInstance } from './types.js';

export const Rcode = Object.freeze({
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** EDNS extended code (RFC 6891): 16 does not fit the header's 4 bits; the OPT record holds the rest. */
  BADVERS: 16,
});

export interface AnswerContext {
  catalog: DnsCatalog;
  /** Normalised: lower case, no final dot. */
  domain: string;
  ttlSec: number;
  /** Uniform in [0, 1). */
  random: () => number;
  /** Seconds since the epoch: the SOA serial. */
  nowSec: number;
  answersMax: number;
}

/** An answer record with the additional records that belong to it (an SRV target's A/AAAA). */
export interface AnswerGroup {
  answer: Answer;
  extras: Answer[];
}

export interface Reply {
  rcode: number;
  /** Set for every name under our domain: we are the only source of truth for it. */
  authoritative: boolean;
  groups: AnswerGroup[];
  authorities: Answer[];
}

/** Soft limits of the SOA: only secondary servers use them, and there are none, so usual values. */
const soaRefreshSec = 3600;
const soaRetrySec = 600;
const soaExpireSec = 86_400;

export function answerQuestion(q: Question, ctx: AnswerContext): Reply {
  const lookup = parseQueryName(q.name, ctx.domain);
  if (lookup.kind === 'outside')
    return { rcode: Rcode.REFUSED, authoritative: false, groups: [], authorities: [] };
  // Zone transfers would hand out the whole catalog; a DNS interface over a live catalog has no zone.
  if (q.type === 'AXFR' || q.type === 'IXFR') {
    return { rcode: Rcode.REFUSED, authoritative: false, groups: [], authorities: [] };
  }
  const groups = recordsFor(lookup, q, ctx);
  if (groups === undefined) {
    return { rcode: Rcode.NXDOMAIN, authoritative: true, groups: [], authorities: [soa(ctx)] };
  }
  // NODATA: the name exists, without records of this type. The SOA tells resolvers how long to cache that.
  const authorities = groups.length === 0 ? [soa(ctx)] : [];
  return { rcode: Rcode.NOERROR, authoritative: true, groups, authorities };
}

/** Records for the name; undefined when the name does not exist (NXDOMAIN). */
function recordsFor(lookup: Lookup, q: Question, ctx: AnswerContext): AnswerGroup[] | undefined {
  // dns-packet's RecordType has no 'ANY', though its decoder yields it (type 255).
  const qtype: string = q.type;
  switch (lookup.kind) {
    case 'apex':
      return qtype === 'SOA' || qtype === 'ANY' ? [{ answer: soa(ctx), extras: [] }] : [];
    case 'empty':
      return [];
    case 'service': {
      const instances = ctx.catalog.healthyInstances(lookup.service, lookup.tag);
      if (instances === undefined) return undefined;
      if (qtype === 'SRV') return srvRecords(q.name, instances, ctx);
      return addressRecords(
        q.name,
        instances.map((i) => i.address),
        qtype,
        ctx,
      );
    }
    case 'node': {
      const node = ctx.catalog.node(lookup.node);
      return node === undefined ? undefined : addressRecords(q.name, [node.address], qtype, ctx);
    }
    case 'addr':
      return addressRecords(q.name, [lookup.ip.text], qtype, ctx);
    case 'nxdomain':
    case 'outside':
      return undefined;
  }
}

/**
 * A/AAAA for the IP literals among the addresses, in random order. Host names become a CNAME only
 * when every address is a host name: a CNAME may not share its name with other records (RFC 1034
 * §3.6.2), and a resolver caching one alias would send all traffic to that one instance anyway.
 * Host-name instances of a mixed service are still found through SRV, whose target is the host.
 */
function addressRecords(
  owner: string,
  addresses: string[],
  qtype: string,
  ctx: AnswerContext,
): AnswerGroup[] {
  const ips = new Map<string, IpAddress>();
  const hosts = new Set<string>();
  for (const address of addresses) {
    const target = parseTarget(address);
    if (target?.kind === 'ip') ips.set(target.ip.text, target.ip);
    else if (target?.kind === 'host') hosts.add(target.name);
  }
  if (ips.size === 0 && hosts.size > 0) {
    if (qtype !== 'A' && qtype !== 'AAAA' && qtype !== 'ANY' && qtype !== 'CNAME') return [];
    const [alias] = sample([...hosts], 1, ctx.random);
    return [{ answer: { name: owner, type: 'CNAME', ttl: ctx.ttlSec, data: alias! }, extras: [] }];
  }
  const wanted = [...ips.values()].filter(
    (ip) => qtype === 'ANY' || (qtype === 'A' && ip.family === 4) || (qtype === 'AAAA' && ip.family === 6),
  );
  return sample(wanted, ctx.answersMax, ctx.random).map((ip) => ({
    answer: addressRecord(owner, ip, ctx.ttlSec),
    extras: [],
  }));
}

/** One SRV per instance; an IP target is named `<hex>.addr.<domain>` and its address rides along. */
function srvRecords(owner: string, instances: DnsInstance[], ctx: AnswerContext): AnswerGroup[] {
  const groups: AnswerGroup[] = [];
  const seen = new Set<string>();
  // Sampling first bounds the work; instances with an unusable address are skipped, so a bad
  // registration costs one answer, not the whole response.
  for (const instance of sampleByWeight(instances, ctx.answersMax, ctx.random)) {
    const target = parseTarget(instance.address);
    if (
      target === undefined ||
      !Number.isInteger(instance.port) ||
      instance.port < 0 ||
      instance.port > 65_535
    ) {
      continue;
    }
    const targetName = target.kind === 'ip' ? `${addrLabel(target.ip)}.addr.${ctx.domain}` : target.name;
    const key = `${targetName} ${instance.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    groups.push({
      answer: {
        name: owner,
        type: 'SRV',
        ttl: ctx.ttlSec,
        data: { priority: 1, weight: instance.weight ?? 1, port: instance.port, target: targetName },
      },
      extras: target.kind === 'ip' ? [addressRecord(targetName, target.ip, ctx.ttlSec)] : [],
    });
  }
  return groups;
}

/**
 * At most `countMax` instances, at random, those of weight 0 (a warning instance whose service
 * weighs 0 while warning) only when there is room after the others: they would be picked last.
 */
function sampleByWeight(instances: DnsInstance[], countMax: number, random: () => number): DnsInstance[] {
  const live = instances.filter((i) => i.weight !== 0);
  if (live.length === instances.length) return sample(instances, countMax, random);
  const first = sample(live, countMax, random);
  if (first.length >= countMax) return first;
  const idle = instances.filter((i) => i.weight === 0);
  return [...first, ...sample(idle, countMax - first.length, random)];
}

function addressRecord(name: string, ip: IpAddress, ttlSec: number): Answer {
  return { name, type: ip.family === 4 ? 'A' : 'AAAA', ttl: ttlSec, data: ip.text };
}

export function soa(ctx: Pick<AnswerContext, 'domain' | 'ttlSec' | 'nowSec'>): Answer {
  return {
    name: ctx.domain,
    type: 'SOA',
    ttl: ctx.ttlSec,
    data: {
      mname: `ns.${ctx.domain}`,
      rname: `hostmaster.${ctx.domain}`,
      // The catalog changes all the time; a clock serial is what Consul uses too. Serials are 32-bit.
      serial: Math.floor(ctx.nowSec) >>> 0,
      refresh: soaRefreshSec,
      retry: soaRetrySec,
      expire: soaExpireSec,
      // RFC 2308: resolvers cache a negative answer for min(SOA TTL, minimum).
      minimum: ctx.ttlSec,
    },
  };
}

/**
 * Up to `countMax` items in random order (a partial Fisher–Yates shuffle: O(countMax) swaps), so
 * every instance is equally likely to come first and clients spread their load.
 */
export function sample<T>(items: readonly T[], countMax: number, random: () => number): T[] {
  const a = items.slice();
  const n = Math.min(countMax, a.length);
  for (let i = 0; i < n; i++) {
    // min() guards a random() that returns 1, which would index past the end.
    const j = Math.min(a.length - 1, i + Math.floor(random() * (a.length - i)));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  a.length = n;
  return a;
}
