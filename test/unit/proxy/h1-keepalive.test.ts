// How long the HTTP/1.1 relay keeps an idle connection to a server: no longer than the server says
// it keeps one (`Keep-Alive: timeout=N`, sent by Node's and Apache's servers), so the pool does not
// hand a request a connection the server is closing at that moment. Such a request, a POST, would
// get a 502 (it cannot be sent twice). Parsing is checked on its own; the rest on real loopback
// sockets, through the relay, against raw servers that announce a timeout and never act on it.
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Exchange } from '../../../src/proxy/h1/exchange.js';
import { parseHead } from '../../../src/proxy/h1/head.js';
import { H1_POOL_LIMITS, H1Pool, idleLimitMs, keepAliveTimeoutMs } from '../../../src/proxy/h1/pool.js';
import { serveH1 } from '../../../src/proxy/h1/relay.js';

const listen = (s: Server): Promise<number> =>
  new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

describe('Keep-Alive timeout hints', () => {
  it('reads the timeout parameter, in any case, quoted or not, among others', () => {
    assert.equal(keepAliveTimeoutMs('timeout=5'), 5_000);
    assert.equal(keepAliveTimeoutMs('timeout=5, max=1000'), 5_000);
    assert.equal(keepAliveTimeoutMs('max=100,TimeOut = 15'), 15_000);
    assert.equal(keepAliveTimeoutMs('timeout="2"'), 2_000);
    assert.equal(keepAliveTimeoutMs('timeout=0'), 0);
    assert.equal(keepAliveTimeoutMs('timeout=99999999'), 86_400_000, 'capped at a day');
  });

  it('reads nothing from a value without a usable timeout', () => {
    for (const v of [
      '',
      'max=5',
      'timeout',
      'timeout=',
      'timeout=-1',
      'timeout=5s',
      'timeout=1.5',
      'xtimeout=5',
    ])
      assert.equal(keepAliveTimeoutMs(v), undefined, v);
  });

  it('never throws, and gives a whole number of seconds up to a day, for any value', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), (v) => {
        const ms = keepAliveTimeoutMs(v);
        return ms === undefined || (Number.isInteger(ms / 1_000) && ms >= 0 && ms <= 86_400_000);
      }),
    );
  });

  it('keeps a connection idle for the announced timeout less the margin, within the pool cap', () => {
    const margin = H1_POOL_LIMITS.keepAliveMarginMs;
    assert.equal(idleLimitMs(undefined, 4_000), 4_000, 'nothing announced: the destination default');
    assert.equal(idleLimitMs('max=3', 4_000), 4_000);
    assert.equal(idleLimitMs('timeout=5', 4_000), 5_000 - margin);
    assert.equal(idleLimitMs('timeout=15', 4_000), 15_000 - margin, 'a longer announced timeout is used');
    assert.equal(idleLimitMs('timeout=3600', 4_000), H1_POOL_LIMITS.idleTimeoutMs);
    assert.ok(idleLimitMs('timeout=1', 4_000) <= 0, 'too short to reuse');
  });

  it('is read from a response head, and not forwarded (hop-by-hop)', () => {
    const r = parseHead(
      Buffer.from('HTTP/1.1 200 OK\r\nKeep-Alive:  timeout=5, max=10 \r\nContent-Length: 0\r\n\r\n'),
      0,
      'response',
    );
    assert.equal(r.kind, 'head');
    if (r.kind !== 'head') return;
    assert.equal(r.head.keepAlive, 'timeout=5, max=10');
    assert.deepEqual(r.head.drops, [0, 33, 1], 'the line is noted to be left out');
  });
});

describe('HTTP/1.1 relay: idle connections and the server’s Keep-Alive timeout', () => {
  /** The timeout each test's server announces ('' for none), and the connections it accepted. */
  let announce = '';
  const accepted: Socket[] = [];
  let upstream: Server;
  let proxy: Server;
  let port = 0;
  const pool = new H1Pool();

  before(async () => {
    // Announces a timeout and never enforces it: whatever closes a connection is the relay.
    upstream = createServer((s) => {
      accepted.push(s);
      s.on('error', () => undefined);
      s.on('data', (d) => {
        for (let i = d.indexOf('\r\n\r\n'); i >= 0; i = d.indexOf('\r\n\r\n', i + 4))
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n${announce}\r\nok`);
      });
    });
    const upstreamPort = await listen(upstream);
    const handler = (x: Exchange): void =>
      x.forward(
        {
          pool,
          key: 'ka',
          open: () => connect(upstreamPort, '127.0.0.1'),
          connectTimeoutMs: 5_000,
          // Far longer than any test: only an announced timeout can close a connection sooner.
          idleTimeoutMs: 60_000,
          startLine: x.startLine(x.head.method, x.head.target),
          block: x.headerBlock(new Set()),
          timeoutMs: 5_000,
        },
        { forwarded: () => x.finish() },
      );
    proxy = createServer({ allowHalfOpen: true }, (s) => serveH1(s, handler));
    port = await listen(proxy);
  });

  after(() => {
    pool.close();
    proxy.close();
    for (const s of accepted) s.destroy();
    upstream.close();
  });

  /** `n` requests one after another on one client connection; the answers as the client saw them. */
  async function requests(n: number): Promise<string> {
    const c = connect(port, '127.0.0.1');
    let data = '';
    let answers = 0;
    let next: () => void = () => undefined;
    c.on('data', (d) => {
      data += d.toString('latin1');
      const seen = data.split('\r\n\r\nok').length - 1;
      if (seen > answers) {
        answers = seen;
        next();
      }
    });
    for (let i = 0; i < n; i++) {
      const answered = new Promise<void>((r) => (next = r));
      c.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      await answered;
    }
    c.destroy();
    return data;
  }

  /** Resolves when `s` has been closed by its other end (the relay), or with false after `ms`. */
  const closedByPeer = (s: Socket, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (s.readableEnded) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      s.once('end', () => {
        clearTimeout(t);
        resolve(true);
      });
    });

  it('reuses the connection of a server that announces a long enough timeout, and does not pass the header on', async () => {
    accepted.length = 0;
    announce = 'Keep-Alive: timeout=30, max=100\r\n';
    const data = await requests(3);
    assert.equal(data.split('HTTP/1.1 200').length - 1, 3);
    assert.doesNotMatch(data, /keep-alive: timeout/i);
    assert.equal(accepted.length, 1, 'one upstream connection served all three');
    pool.close();
  });

  it('does not reuse a connection the server keeps too briefly to hand out safely', async () => {
    accepted.length = 0;
    announce = 'Keep-Alive: timeout=1\r\n';
    await requests(3);
    assert.equal(accepted.length, 3, 'a connection for each request');
    assert.ok(await closedByPeer(accepted[0] as Socket, 5_000), 'each was closed after its response');
  });

  it('closes an idle connection before the timeout the server announced', async () => {
    accepted.length = 0;
    announce = 'Keep-Alive: timeout=2\r\n';
    await requests(1);
    assert.equal(accepted.length, 1);
    // Closed 1 s into the idle time (2 s less the margin), where the destination's default would
    // keep it 60 s; the bound is generous for a loaded machine.
    assert.ok(await closedByPeer(accepted[0] as Socket, 15_000), 'the relay closed the idle connection');
  });

  it('keeps the destination default when the server announces nothing', async () => {
    accepted.length = 0;
    announce = '';
    await requests(2);
    assert.equal(accepted.length, 1);
    assert.equal(await closedByPeer(accepted[0] as Socket, 2_000), false, 'still open after 2 s');
    pool.close();
  });
});
