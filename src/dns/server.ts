// The agent's DNS interface, like Consul's: NAME.service.mesh and NODE.node.mesh answered from the
// local catalog, over UDP and TCP on one port. This file is the shell: sockets, bounds, counters.
// What to answer is decided in message.ts and answer.ts, which never touch a socket.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { type AddressInfo, createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import { formatHostPort } from '../config/host-port.js';
import { type AnswerContext, Rcode } from './answer.js';
import { DNS_DEFAULTS, dnsLimits } from './limits.js';
import { handleMessage, serverFailure, type Transport } from './message.js';
import { normalizeDomain } from './names.js';
import type { DnsCatalog } from './types.js';

export { DNS_DEFAULTS, dnsLimits } from './limits.js';
export type { DnsCatalog, DnsInstance } from './types.js';

export interface DnsServerInit {
  /** Listen address, e.g. 127.0.0.1. A host name is resolved once, so UDP and TCP bind the same address. */
  host: string;
  /** 0 = any free port, the same one for UDP and TCP. */
  port: number;
  catalog: DnsCatalog;
  /** Everything is logged through a child of this logger ({ module: 'dns' }). */
  log: Logger;
  /** Default 'mesh' (DNS_DEFAULTS.domain). */
  domain?: string;
  /** TTL of answers and of negative answers; default 5 (DNS_DEFAULTS.ttlSec explains why). */
  ttlSec?: number;
}

export interface DnsServer {
  address: { host: string; port: number };
  /**
   * Live counters. `queries`: every message received, malformed ones included. `malformed`:
   * dropped, or answered FORMERR. `nxdomain`: NXDOMAIN answers. `truncated`: answers sent with TC.
   */
  stats: { queries: number; malformed: number; nxdomain: number; truncated: number };
  close(): Promise<void>;
}

/** A seconds-scale TTL that fits DNS's signed 32-bit field (RFC 2181 §8). */
const ttlSecMax = 2 ** 31 - 1;

export async function startDnsServer(init: DnsServerInit): Promise<DnsServer> {
  const log = init.log.child({ module: 'dns' });
  const domain = normalizeDomain(init.domain ?? DNS_DEFAULTS.domain);
  const ttlSec = init.ttlSec ?? DNS_DEFAULTS.ttlSec;
  if (!Number.isInteger(ttlSec) || ttlSec < 0 || ttlSec > ttlSecMax) {
    throw new MeshError(
      'bad_request',
      `DNS TTL must be a whole number of seconds from 0 to ${ttlSecMax}, got ${ttlSec}`,
    );
  }
  if (!Number.isInteger(init.port) || init.port < 0 || init.port > 65_535) {
    throw new MeshError('bad_request', `DNS port must be a number from 0 to 65535, got ${init.port}`);
  }
  const stats = { queries: 0, malformed: 0, nxdomain: 0, truncated: 0 };
  const sockets = new Set<Socket>();
  // Two limiters, so a flood of bad packets cannot hide a fault of ours.
  const noisy = rateLimited(dnsLimits.noisyLogIntervalMs);
  const faulty = rateLimited(dnsLimits.noisyLogIntervalMs);
  let closed = false;

  function serve(raw: Buffer, transport: Transport): Buffer | undefined {
    stats.queries++;
    const ctx: AnswerContext = {
      catalog: init.catalog,
      domain,
      ttlSec,
      random: Math.random,
      nowSec: Date.now() / 1000,
      answersMax: dnsLimits.answersMax,
    };
    try {
      const outcome = handleMessage(raw, transport, ctx);
      if (outcome.malformed !== undefined) {
        stats.malformed++;
        const reason = outcome.malformed;
        noisy((suppressed) => log.debug({ transport, reason, suppressed }, 'malformed DNS message'));
      }
      if (outcome.rcode === Rcode.NXDOMAIN) stats.nxdomain++;
      if (outcome.truncated) stats.truncated++;
      return outcome.response;
    } catch (err) {
      faulty((suppressed) => log.error({ err, suppressed }, 'failed to answer a DNS query'));
      return serverFailure(raw);
    }
  }

  function onDatagram(udp: UdpSocket, msg: Buffer, from: { address: string; port: number }): void {
    try {
      if (closed || from.port === 0) return;
      const response = serve(msg, 'udp');
      if (response === undefined) return;
      udp.send(response, from.port, from.address, (err) => {
        if (err) noisy((suppressed) => log.debug({ err, suppressed }, 'DNS answer not sent'));
      });
    } catch (err) {
      faulty((suppressed) => log.error({ err, suppressed }, 'DNS UDP handler failed'));
    }
  }

  function onConnection(socket: Socket): void {
    socket.on('error', (err) =>
      noisy((suppressed) => log.debug({ err, suppressed }, 'DNS TCP connection error')),
    );
    if (closed || sockets.size >= dnsLimits.tcpConnectionsMax) {
      noisy((suppressed) =>
        log.debug({ open: sockets.size, suppressed }, 'DNS TCP connection refused: too many'),
      );
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    socket.setTimeout(dnsLimits.tcpIdleTimeoutMs, () => socket.destroy());
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      try {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        // Each pass consumes at least one 2-byte prefix and one byte of message, so the loop ends.
        while (pending.length >= 2 && !socket.destroyed) {
          const length = pending.readUInt16BE(0);
          if (length === 0 || length > dnsLimits.queryBytesMax) {
            // The framing cannot be trusted past a bad length: nothing to answer, nothing to resync on.
            stats.queries++;
            stats.malformed++;
            noisy((suppressed) => log.debug({ length, suppressed }, 'malformed DNS message over TCP'));
            socket.destroy();
            return;
          }
          if (pending.length < 2 + length) break;
          const response = serve(pending.subarray(2, 2 + length), 'tcp');
          pending = pending.subarray(2 + length);
          if (response !== undefined) {
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(response.length);
            socket.write(Buffer.concat([prefix, response]));
          }
          if (socket.writableLength > dnsLimits.tcpPendingBytesMax) {
            noisy((suppressed) =>
              log.debug({ suppressed }, 'DNS TCP client does not read its answers; closing'),
            );
            socket.destroy();
            return;
          }
        }
        // Copy the short remainder so the (possibly large) chunk it points into can be freed.
        if (pending.length > 0) pending = Buffer.from(pending);
      } catch (err) {
        faulty((suppressed) => log.error({ err, suppressed }, 'DNS TCP handler failed'));
        socket.destroy();
      }
    });
  }

  const host = isIP(init.host) !== 0 ? init.host : await resolveHost(init.host, init.port);
  const { udp, tcp } = await bindBoth(host, init.port, {
    onDatagram,
    onConnection,
  });
  udp.on('error', (err) => log.error({ err }, 'DNS UDP socket error'));
  tcp.on('error', (err) => log.error({ err }, 'DNS TCP server error'));
  const address = { host, port: (tcp.address() as AddressInfo).port };
  log.info({ address: formatHostPort(address), domain, ttlSec }, 'DNS server listening');

  let closing: Promise<void> | undefined;
  // A closure, not a method: callers keep `close` apart from this object.
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => {
          try {
            udp.close(() => resolve());
          } catch {
            resolve(); // already closed
          }
        }),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
      log.debug('DNS server closed');
    })();
    return closing;
  };
  return { address, stats, close };
}

function where(host: string, port: number): string {
  return formatHostPort({ host, port });
}

async function resolveHost(host: string, port: number): Promise<string> {
  try {
    return (await lookup(host)).address;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new MeshError(
      'unavailable',
      `cannot start the DNS server on ${where(host, port)}: ${why}; set --dns`,
    );
  }
}

interface Handlers {
  onDatagram(udp: UdpSocket, msg: Buffer, from: { address: string; port: number }): void;
  onConnection(socket: Socket): void;
}

/**
 * UDP first, then TCP on the port UDP got. With port 0 another process can take that TCP port in
 * between; then both are let go and tried again, up to bindAttemptsMax times.
 */
async function bindBoth(
  host: string,
  port: number,
  handlers: Handlers,
): Promise<{ udp: UdpSocket; tcp: Server }> {
  for (let attempt = 1; ; attempt++) {
    const udp = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
    udp.on('message', (msg, rinfo) => handlers.onDatagram(udp, msg, rinfo));
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: host, port }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      closeQuietly(udp);
      throw bindError(host, port, 'UDP', err);
    }
    const udpPort = udp.address().port;
    const tcp = createServer(handlers.onConnection);
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host, port: udpPort }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp };
    } catch (err) {
      closeQuietly(udp);
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (port === 0 && inUse && attempt < dnsLimits.bindAttemptsMax) continue;
      throw bindError(host, udpPort, 'TCP', err);
    }
  }
}

function closeQuietly(udp: UdpSocket): void {
  try {
    udp.close();
  } catch {
    // Not running: nothing to release.
  }
}

function bindError(host: string, port: number, proto: string, err: unknown): MeshError {
  const e = err as NodeJS.ErrnoException;
  const why =
    e.code === 'EADDRINUSE'
      ? `${proto} port ${port} is in use (is another agent or DNS server running?)`
      : e.code === 'EACCES'
        ? `no permission to bind ${proto} port ${port} (ports below 1024 need privileges; use 8600)`
        : `${proto}: ${e.message}`;
  return new MeshError(
    'unavailable',
    `cannot start the DNS server on ${where(host, port)}: ${why}; set --dns`,
  );
}

/**
 * Run `emit` at most once per interval, telling it how many calls were skipped since, so a flood
 * of bad packets costs one log line per interval.
 */
function rateLimited(intervalMs: number): (emit: (suppressed: number) => void) => void {
  let lastMs = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (emit) => {
    const now = Date.now();
    if (now - lastMs < intervalMs) {
      suppressed++;
      return;
    }
    lastMs = now;
    const skipped = suppressed;
    suppressed = 0;
    emit(skipped);
  };
}
