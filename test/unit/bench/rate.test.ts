// The proxy benchmark's constant-rate generator against small loopback servers: it counts what a
// reader of the benchmark relies on (answers, failures, waits for a busy server) and always ends.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { constantRate } from '../../../cluster-sim/bench/rate.js';

const listen = <S extends Server | HttpServer>(s: S): Promise<number> =>
  new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
const close = (s: Server | HttpServer): Promise<void> =>
  new Promise((r) => {
    if ('closeAllConnections' in s) s.closeAllConnections();
    s.close(() => r());
  });

describe('bench constantRate', () => {
  it('sends rate × secs requests and measures every 200', async () => {
    const server = createHttpServer((_q, s) => s.end('ok'));
    const port = await listen(server);
    try {
      const r = await constantRate(port, { rate: 200, secs: 1, conns: 8, warmupSecs: 0.25 });
      assert.equal(r.sent, 250);
      assert.equal(r.failed, 0);
      assert.equal(r.ok, 200);
      assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms, `p50 ${r.p50Ms}, p99 ${r.p99Ms}`);
      assert.equal(r.p99MsBySecond.length, 1);
    } finally {
      await close(server);
    }
  });

  it('counts answers other than 200 as failed, and keeps them out of the latencies', async () => {
    let n = 0;
    const server = createHttpServer((_q, s) => {
      s.statusCode = ++n % 4 === 0 ? 503 : 200;
      s.end('x');
    });
    const port = await listen(server);
    try {
      const r = await constantRate(port, { rate: 200, secs: 0.5, conns: 4, warmupSecs: 0 });
      assert.equal(r.sent, 100);
      assert.equal(r.failed, 25);
      assert.equal(r.ok, 75);
    } finally {
      await close(server);
    }
  });

  it('opens a new connection after a server closes one, and loses no request', async () => {
    const server = createHttpServer((_q, s) => {
      s.setHeader('connection', 'close');
      s.end('ok');
    });
    const port = await listen(server);
    try {
      const r = await constantRate(port, { rate: 100, secs: 0.5, conns: 2, warmupSecs: 0 });
      assert.equal(r.failed, 0);
      assert.equal(r.ok, 50);
    } finally {
      await close(server);
    }
  });

  it('counts a wait for a busy connection in the latency (coordinated omission)', async () => {
    // One connection, answers 50 ms apart, 100 due a second: request k waits behind k - 1 others.
    const server = createHttpServer((_q, s) => {
      setTimeout(() => s.end('ok'), 50);
    });
    const port = await listen(server);
    try {
      const r = await constantRate(port, { rate: 100, secs: 0.3, conns: 1, warmupSecs: 0 });
      assert.equal(r.ok, 30);
      // The last was due at ~0.3 s and answered after ~30 × 50 ms = 1.5 s.
      assert.ok(r.p99Ms >= 600, `p99 ${r.p99Ms} ms does not count the queue`);
    } finally {
      await close(server);
    }
  });

  it('ends within the timeout when the server never answers, every request failed', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.resume();
    });
    const port = await listen(server);
    const t0 = performance.now();
    try {
      const r = await constantRate(port, { rate: 20, secs: 0.5, conns: 2, warmupSecs: 0, timeoutMs: 300 });
      assert.equal(r.sent, 10);
      assert.equal(r.failed, 10);
      assert.equal(r.ok, 0);
      assert.ok(Number.isNaN(r.p99Ms));
      // Generous: the schedule (0.5 s) plus one timeout, many times over.
      assert.ok(performance.now() - t0 < 10_000);
    } finally {
      for (const s of sockets) s.destroy();
      await close(server);
    }
  });

  it('fails an answer without Content-Length rather than guessing its end', async () => {
    const server = createServer((s) => {
      s.on('data', () =>
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
      );
    });
    const port = await listen(server);
    try {
      const r = await constantRate(port, { rate: 50, secs: 0.2, conns: 1, warmupSecs: 0 });
      assert.equal(r.sent, 10);
      assert.equal(r.failed, 10);
    } finally {
      await close(server);
    }
  });
});
