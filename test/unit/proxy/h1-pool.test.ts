// The HTTP/1.1 relay's connection pool: requests wait for connections instead of each opening its
// own, connections being opened to one destination are capped, and the queue is bounded. Driven with
// real loopback sockets whose "handshake" the test controls (a TLS socket is connected when it
// emits 'secureConnect'; the server never answers the handshake, so the test emits it itself).
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { H1_POOL_LIMITS, H1Pool, type PoolDestination, type PoolWaiter } from '../../../src/proxy/h1/pool.js';
import type { UpstreamConn } from '../../../src/proxy/h1/upstream.js';
import { FULL_CODE } from '../../../src/proxy/mux/client.js';

/** Records what the pool gave it. */
class Waiter implements PoolWaiter {
  conn: UpstreamConn | undefined;
  failure: string | undefined;
  constructor(private readonly onReady?: (c: UpstreamConn) => void) {}
  poolReady(conn: UpstreamConn): void {
    this.conn = conn;
    this.onReady?.(conn);
  }
  poolFailed(message: string): void {
    this.failure = message;
  }
}

describe('HTTP/1.1 connection pool', () => {
  let server: Server;
  let port = 0;

  before(async () => {
    // Accepts and reads; never answers (the pool itself sends nothing until a request is served).
    server = createServer((s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(() => server.close());

  /** A secure destination whose handshakes finish only when `finish` is called. */
  function slowHandshakes(key: string): { d: PoolDestination; opened: Socket[]; finish: () => void } {
    const opened: Socket[] = [];
    const d: PoolDestination = {
      key,
      connectTimeoutMs: 30_000,
      open: () => {
        const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
        opened.push(s);
        return s;
      },
    };
    const finish = (): void => {
      for (const s of opened.splice(0)) s.emit('secureConnect');
    };
    return { d, opened, finish };
  }

  it('opens at most connectingPerKeyMax connections at once for a burst, and serves every request', async () => {
    const pool = new H1Pool();
    const { d, opened, finish } = slowHandshakes('burst');
    const max = H1_POOL_LIMITS.connectingPerKeyMax;
    const n = max * 4;
    let openedTotal = 0;
    const open = d.open;
    d.open = (onread) => {
      openedTotal++;
      return open(onread);
    };
    // Each request "uses" its connection briefly, then gives it back (as an exchange ending would).
    const waiters = Array.from(
      { length: n },
      () => new Waiter((c) => setImmediate(() => assert.equal(pool.release(c), true))),
    );
    for (const w of waiters) assert.equal(pool.acquire(d, w), undefined);
    assert.equal(openedTotal, max, 'only the cap is opened while all handshakes are pending');
    assert.equal(pool.waitingCount, n);
    // Handshakes complete in rounds; connections freed by earlier requests serve later ones too.
    for (let round = 0; round < n && waiters.some((w) => w.conn === undefined); round++) {
      finish();
      await sleep(20);
      assert.ok(opened.length <= max, `at most ${max} opening at once, saw ${opened.length}`);
    }
    assert.equal(
      waiters.filter((w) => w.conn !== undefined).length,
      n,
      'every request was given a connection',
    );
    assert.ok(openedTotal < n, `reused connections: ${openedTotal} opened for ${n} requests`);
    assert.equal(pool.waitingCount, 0);
    pool.close();
  });

  it('refuses a request once waitingPerKeyMax wait, and tells waiting requests when it closes', () => {
    const pool = new H1Pool();
    const { d } = slowHandshakes('full');
    const waiters = Array.from({ length: H1_POOL_LIMITS.waitingPerKeyMax }, () => new Waiter());
    for (const w of waiters) assert.equal(pool.acquire(d, w), undefined);
    assert.equal(pool.acquire(d, new Waiter()), 'full');
    pool.close();
    assert.ok(waiters.every((w) => w.failure === 'the proxy is shutting down'));
  });

  it('fails the oldest waiting request with each connection that cannot open, and opens others for the rest', async () => {
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    const closedPort = (gone.address() as AddressInfo).port;
    await new Promise((r) => gone.close(r));
    const pool = new H1Pool();
    const d: PoolDestination = {
      key: 'refused',
      connectTimeoutMs: 5_000,
      open: () => connect(closedPort, '127.0.0.1'),
    };
    const waiters = [new Waiter(), new Waiter(), new Waiter()];
    for (const w of waiters) pool.acquire(d, w);
    for (let i = 0; i < 100 && waiters.some((w) => w.failure === undefined); i++) await sleep(20);
    for (const w of waiters) assert.match(w.failure ?? '', /ECONNREFUSED/);
    assert.equal(pool.waitingCount, 0);
    pool.close();
  });

  it('keeps at most connectionsMax connections to a destination; requests wait for one to be free', async () => {
    const pool = new H1Pool();
    const sockets: Socket[] = [];
    const d: PoolDestination = {
      key: 'limited',
      connectTimeoutMs: 5_000,
      connectionsMax: 2,
      open: () => {
        const s = connect(port, '127.0.0.1');
        sockets.push(s);
        return s;
      },
    };
    const open = (): number => sockets.filter((s) => !s.destroyed).length;
    const waiters = Array.from({ length: 6 }, () => new Waiter());
    for (const w of waiters) assert.equal(pool.acquire(d, w), undefined);
    const served = (): UpstreamConn[] => waiters.flatMap((w) => (w.conn ? [w.conn] : []));
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      for (let i = 0; i < 250 && !ok(); i++) await sleep(20);
      assert.ok(ok(), what);
    };
    await until('two requests served', () => served().length === 2);
    assert.equal(sockets.length, 2, 'no third connection while two are busy');
    // Exchanges end cleanly: their connections go to the next two requests, none is opened.
    for (const c of served()) assert.equal(pool.release(c), true);
    assert.equal(served().length, 4);
    assert.equal(sockets.length, 2);
    // A busy connection closes (the instance hung up): one more may be opened, for the next request.
    const busy = waiters[2]?.conn as UpstreamConn;
    busy.destroy();
    await until('a new connection serves the fifth request', () => served().length === 5);
    assert.equal(sockets.length, 3);
    assert.equal(open(), 2, 'never more than two open at once');
    assert.equal(pool.waitingCount, 1);
    pool.close();
    for (const s of sockets) s.destroy();
  });

  it('keeps requests waiting, not failed, while every mux session to the destination is full', async () => {
    const pool = new H1Pool();
    const sockets: Socket[] = [];
    // As MuxClient.open does once every session allowed for the key carries its maximum of streams.
    let room = 2;
    const d: PoolDestination = {
      key: 'sessions-full',
      connectTimeoutMs: 5_000,
      open: () => {
        if (room === 0)
          throw Object.assign(new Error('2048 connections to this destination are open already'), {
            code: FULL_CODE,
          });
        room--;
        const s = connect(port, '127.0.0.1');
        sockets.push(s);
        return s;
      },
    };
    const waiters = Array.from({ length: 5 }, () => new Waiter());
    for (const w of waiters) assert.equal(pool.acquire(d, w), undefined);
    const served = (): UpstreamConn[] => waiters.flatMap((w) => (w.conn ? [w.conn] : []));
    for (let i = 0; i < 250 && served().length < 2; i++) await sleep(20);
    assert.equal(served().length, 2);
    assert.ok(
      waiters.every((w) => w.failure === undefined),
      'no request failed because the sessions were full',
    );
    assert.equal(pool.waitingCount, 3);
    assert.equal(
      pool.atLimit(d.key),
      true,
      'a wait that times out is answered 503, as at a connection limit',
    );
    // An exchange ends: its stream serves the oldest waiting request.
    assert.equal(pool.release(served()[0] as UpstreamConn), true);
    assert.equal(served().length, 3);
    // A stream closes and its session has room: a new one opens for the next request.
    room = 1;
    const busy = waiters[1]?.conn as UpstreamConn;
    busy.destroy();
    for (let i = 0; i < 250 && served().length < 4; i++) await sleep(20);
    assert.equal(served().length, 4);
    assert.equal(pool.waitingCount, 1);
    pool.close();
    for (const s of sockets) s.destroy();
  });

  it('fails requests at once when the sessions are full and none of the connections are its own', () => {
    // Sessions still counted against the cap while none of this destination's streams remain (they
    // are closing): nothing would ever free a place for a waiting request, so none is kept waiting.
    const pool = new H1Pool();
    const d: PoolDestination = {
      key: 'full-not-ours',
      connectTimeoutMs: 5_000,
      open: () => {
        throw Object.assign(new Error('2048 connections to this destination are open already'), {
          code: FULL_CODE,
        });
      },
    };
    const waiters = [new Waiter(), new Waiter()];
    for (const w of waiters) pool.acquire(d, w);
    assert.deepEqual(
      waiters.map((w) => w.failure),
      [
        '2048 connections to this destination are open already',
        '2048 connections to this destination are open already',
      ],
    );
    assert.equal(pool.waitingCount, 0);
    assert.equal(pool.atLimit(d.key), false);
    pool.close();
  });

  it('forgets a request that stops waiting', () => {
    const pool = new H1Pool();
    const { d } = slowHandshakes('cancel');
    const w = new Waiter();
    pool.acquire(d, w);
    assert.equal(pool.waitingCount, 1);
    pool.cancel(d.key, w);
    assert.equal(pool.waitingCount, 0);
    pool.close();
    assert.equal(w.failure, undefined, 'a cancelled request hears nothing more');
  });
});
