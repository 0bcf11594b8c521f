// A constant-rate, open-loop HTTP/1.1 load generator: request i is due at t0 + i/rate whatever
// became of the requests before it. It is lean on purpose: raw keep-alive sockets, one prebuilt
// request, answers read by their status line and Content-Length only (the servers this measures,
// the bench's upstream and the proxies in front of it, always send one). node:http's client, used
// before, spent its own pauses on every path: 3-4 ms of p99 on the direct path, more than the 1 ms
// the proxy benchmark measures.
//
// Where a request's latency starts:
// - when it was written, if a connection was free when the generator got to it (autocannon's rate
//   mode): the generator's timer waking up to a millisecond late (libuv's timer granularity) is
//   the generator's delay, not the server's;
// - when it was due, if every connection was busy and it had to wait for one (wrk2's method): that
//   wait is queueing at a slow server, and counting it stops a stall from hiding behind the requests
//   it held back (coordinated omission).
import { connect, type Socket } from 'node:net';
import { percentile } from './load.js';

export interface RateResult {
  /** Requests due in the run, warm-up included. */
  sent: number;
  /** Answered 200 in the measured period: the latencies behind p50 and p99. */
  ok: number;
  /** Not answered 200 (an error status, a malformed answer, a closed or timed-out connection), warm-up included. */
  failed: number;
  p50Ms: number;
  p99Ms: number;
  /** p99 of each second of the measured period, in order: shows whether a tail is steady or one stall. */
  p99MsBySecond: number[];
  /** When the measured period began (the first measured request was due), ms since the epoch. */
  measuredFromEpochMs: number;
}

export interface RateOptions {
  rate: number;
  secs: number;
  /** Keep-alive connections at most (one request in flight on each). */
  conns: number;
  /** Seconds at the same rate before measuring, not counted (connections open, code compiles; wrk2's calibration). Default 1. */
  warmupSecs?: number;
  /** A request unanswered this long fails and its connection is replaced. Default 5 s. */
  timeoutMs?: number;
  /** Host to connect to. Default 127.0.0.1. */
  host?: string;
}

/** An answer's head is this long at most; a longer one fails (the bench's servers send ~100 bytes). */
const HEAD_BYTES_MAX = 16 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r\n/i;
/** A server that says it closes the connection after this answer (RFC 9112 §9.6). */
const CONNECTION_CLOSE = /\r\nconnection:[^\r]*\bclose\b/i;
const EMPTY = Buffer.alloc(0);

/** One keep-alive connection with at most one request in flight. */
class RateConn {
  socket: Socket | undefined = undefined;
  /** Bytes of the answer so far. */
  buf: Buffer = EMPTY;
  /** When the request in flight was due (performance.now()), or undefined when the connection is idle. */
  dueMs: number | undefined = undefined;
  /** Where its latency runs from (see the top of the file). */
  fromMs = 0;
  sentMs = 0;
}

/**
 * `rate` GETs of `/` a second to `port` for `secs` seconds over at most `conns` keep-alive
 * connections, after `warmupSecs` at the same rate that are not counted.
 */
export async function constantRate(port: number, o: RateOptions): Promise<RateResult> {
  const host = o.host ?? '127.0.0.1';
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`, 'latin1');
  const timeoutMs = o.timeoutMs ?? 5_000;
  const warm = Math.round(o.rate * (o.warmupSecs ?? 1));
  const total = warm + Math.round(o.rate * o.secs);
  const t0 = performance.now() + 50;
  const measuredFromMs = t0 + (warm * 1_000) / o.rate;
  const lat: number[] = [];
  const bySecond: number[][] = Array.from({ length: Math.ceil(o.secs) }, () => []);
  let failed = 0;
  let sent = 0;
  let answered = 0;
  // Due times of requests waiting for a free connection, oldest first; at most `total` in all.
  const waiting: number[] = [];
  let waitingHead = 0;
  const conns = Array.from({ length: o.conns }, () => new RateConn());
  const idle: RateConn[] = [...conns];
  let allAnswered: (() => void) | undefined;

  const send = (c: RateConn, dueMs: number, waited: boolean): void => {
    c.dueMs = dueMs;
    c.sentMs = performance.now();
    c.fromMs = waited ? dueMs : c.sentMs;
    (c.socket ?? open(c)).write(request);
  };
  /** The request in flight on `c` is over: record it, and give `c` the next waiting request. */
  const done = (c: RateConn, ok: boolean): void => {
    const dueMs = c.dueMs as number;
    c.dueMs = undefined;
    answered++;
    if (!ok) failed++;
    else if (dueMs >= measuredFromMs) {
      const ms = performance.now() - c.fromMs;
      lat.push(ms);
      const second = Math.min(bySecond.length - 1, Math.floor((dueMs - measuredFromMs) / 1_000));
      bySecond[second]?.push(ms);
    }
    if (waitingHead < waiting.length) send(c, waiting[waitingHead++] as number, true);
    else idle.push(c);
    if (answered === total) allAnswered?.();
  };
  /** Close `c`'s connection: the next send opens another. */
  const drop = (c: RateConn): void => {
    const s = c.socket;
    c.socket = undefined;
    c.buf = EMPTY;
    s?.destroy();
  };
  /** The request in flight on `c` failed: count it, and drop the connection. */
  const fail = (c: RateConn): void => {
    drop(c);
    if (c.dueMs !== undefined) done(c, false);
  };
  const onData = (c: RateConn, d: Buffer): void => {
    if (c.dueMs === undefined) {
      // Bytes nobody asked for: the connection's framing is lost.
      fail(c);
      return;
    }
    c.buf = c.buf.length === 0 ? d : Buffer.concat([c.buf, d]);
    const end = c.buf.indexOf(CRLFCRLF);
    if (end < 0) {
      if (c.buf.length > HEAD_BYTES_MAX) fail(c);
      return;
    }
    const head = c.buf.toString('latin1', 0, end + 2);
    const m = CONTENT_LENGTH.exec(head);
    if (m === null) {
      fail(c);
      return;
    }
    const size = end + 4 + Number(m[1]);
    if (c.buf.length < size) return;
    // One request at a time: bytes past this answer mean the framing is lost.
    if (!head.startsWith('HTTP/1.1 200 ') || c.buf.length !== size) {
      fail(c);
      return;
    }
    c.buf = EMPTY;
    // The next request must not go out on a connection the server is closing: it would be lost
    // with it. done() may send the next one at once, before the close is seen.
    if (CONNECTION_CLOSE.test(head)) drop(c);
    done(c, true);
  };
  const open = (c: RateConn): Socket => {
    const s = connect({ host, port, noDelay: true });
    c.socket = s;
    s.on('data', (d: Buffer) => {
      if (c.socket === s) onData(c, d);
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (c.socket === s) fail(c);
    });
    return s;
  };
  const expire = (nowMs: number): void => {
    for (const c of conns) if (c.dueMs !== undefined && nowMs - c.sentMs > timeoutMs) fail(c);
  };

  const finished = new Promise<void>((resolve) => {
    allAnswered = resolve;
  });
  try {
    while (sent < total) {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) * o.rate) / 1_000) + 1);
      for (; sent < due; sent++) {
        const dueMs = t0 + (sent * 1_000) / o.rate;
        const c = idle.pop();
        if (c) send(c, dueMs, false);
        else waiting.push(dueMs);
      }
      expire(now);
      const nextDueMs = t0 + (sent * 1_000) / o.rate;
      await new Promise((r) => setTimeout(r, Math.max(0, nextDueMs - performance.now())));
    }
    // The last answers, for one timeout at most: what is still unanswered then (in flight, or
    // waiting behind a server that stopped answering) has failed.
    const deadlineMs = performance.now() + timeoutMs;
    while (answered < total && performance.now() < deadlineMs) {
      await Promise.race([finished, new Promise((r) => setTimeout(r, 100))]);
      expire(performance.now());
    }
    failed += total - answered;
  } finally {
    for (const c of conns) {
      const s = c.socket;
      c.socket = undefined;
      s?.destroy();
    }
  }
  lat.sort((a, b) => a - b);
  return {
    sent,
    ok: lat.length,
    failed,
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    p99MsBySecond: bySecond.map((s) =>
      percentile(
        s.sort((a, b) => a - b),
        99,
      ),
    ),
    measuredFromEpochMs: performance.timeOrigin + measuredFromMs,
  };
}
