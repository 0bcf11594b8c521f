// The HTTP/1.1 relay on real loopback sockets: a client speaks raw HTTP to serveH1, whose handler
// forwards to a Node HTTP server through the pool. What a client and an upstream would notice:
// order, reuse, refusals, interim responses, bodies that end with the connection. Every case runs
// twice: on sockets read through 'data' events (serveH1, as the inbound side serves TLS), and on
// accepted connections moved to the thread's read buffer (serveH1Accepted, as upstream listeners do).
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { adoptWithOnread } from '../../../src/proxy/h1/accepted.js';
import { type Exchange, RELAY_LIMITS } from '../../../src/proxy/h1/exchange.js';
import type { Outcome } from '../../../src/proxy/h1/forward.js';
import { H1Pool, READ_BUFFER } from '../../../src/proxy/h1/pool.js';
import { serveH1, serveH1Accepted } from '../../../src/proxy/h1/relay.js';

/** More than loopback's socket buffers hold, so a client that does not read holds the upstream back. */
const BIG_BYTES = 64 * 1024 * 1024;

const listen = <S extends Server | HttpServer>(s: S): Promise<number> =>
  new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

/** Sends `text` on a fresh connection and collects everything until the server closes or `untilMs`. */
function exchange(port: number, text: string, untilMs = 1_500): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (closed: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve({ data, closed });
    };
    const t = setTimeout(() => done(false), untilMs);
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('end', () => done(true));
    s.on('error', () => done(true));
    s.write(text);
  });
}

/** A client connection written to piece by piece: what it has read so far, and when it closed. */
function rawClient(port: number): { socket: Socket; read: () => string; closed: Promise<void> } {
  const socket: Socket = connect(port, '127.0.0.1');
  let data = '';
  socket.on('data', (d) => (data += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  return { socket, read: () => data, closed };
}

/** A server relaying HTTP/1.1 with `handler`: read through 'data' events, or accepted paused and adopted. */
const relayServer = (accepted: boolean, handler: (x: Exchange) => void): Server =>
  accepted
    ? createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => serveH1Accepted(s, handler))
    : createServer({ allowHalfOpen: true }, (s) => serveH1(s, handler));

for (const accepted of [false, true])
  describe(accepted ? 'HTTP/1.1 relay, accepted connections (onread)' : 'HTTP/1.1 relay', () => {
    let upstream: HttpServer;
    let upstreamPort = 0;
    let upstreamConnections = 0;
    /** The targets of the requests the upstream began to read. */
    const upstreamUrls: string[] = [];
    let proxy: Server;
    let port = 0;
    const pool = new H1Pool();
    /** Relays a request to the upstream through the pool, as the agent's handlers do. */
    const forwardUp = (x: Exchange): void =>
      x.forward(
        {
          pool,
          key: 'up',
          open: () => connect(upstreamPort, '127.0.0.1'),
          connectTimeoutMs: 5_000,
          startLine: x.startLine(x.head.method, x.head.target),
          block: x.headerBlock(new Set()),
          timeoutMs: 5_000,
        },
        {
          forwarded: (o) => {
            if (!o.sentResponse) x.reply(o.status, o.message);
            x.finish();
          },
        },
      );

    before(async () => {
      upstream = createHttpServer((req, res) => {
        upstreamUrls.push(req.url ?? '');
        if (req.url === '/close-delimited') {
          // No length, no chunking: the body ends when the connection does.
          res.socket?.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end');
          res.socket?.end();
          return;
        }
        if (req.url === '/big') {
          res.end(Buffer.alloc(BIG_BYTES, 'x'));
          return;
        }
        if (req.url === '/early-hints') {
          // An interim answer whatever the request's version (a server that gets that wrong).
          res.socket?.write('HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n');
          res.end('final');
          return;
        }
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
      });
      upstream.on('connection', () => upstreamConnections++);
      upstreamPort = await listen(upstream);
      proxy = relayServer(accepted, forwardUp);
      port = await listen(proxy);
    });

    after(() => {
      pool.close();
      proxy.close();
      upstream.closeAllConnections();
      upstream.close();
    });

    it('answers pipelined requests in order on one connection, reusing one upstream connection', async () => {
      const before = upstreamConnections;
      const r = await exchange(
        port,
        'GET /a HTTP/1.1\r\nhost: x\r\n\r\nPOST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbodyGET /c HTTP/1.1\r\nhost: x\r\n\r\n',
      );
      const bodies = r.data.split('\r\n\r\n').slice(1);
      assert.deepEqual(
        bodies.map((b) => b.split('HTTP/1.1')[0]),
        ['GET /a ', 'POST /b body', 'GET /c '],
      );
      assert.equal(upstreamConnections - before, 1);
      assert.equal(r.closed, false);
    });

    it('refuses a malformed request with 400 and closes, and goes on serving other connections', async () => {
      const bad = await exchange(
        port,
        'GET / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n',
      );
      assert.match(bad.data, /^HTTP\/1\.1 400 /);
      assert.match(bad.data, /connection: close/);
      assert.equal(bad.closed, true);
      const ok = await exchange(port, 'GET /after HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(ok.data, /^HTTP\/1\.1 200 [\s\S]*GET \/after $/);
    });

    it('refuses an HTTP/1.1 request without a Host, or with two, before sending it anywhere', async () => {
      for (const [path, head] of [
        ['/no-host', 'GET /no-host HTTP/1.1\r\n\r\n'],
        ['/two-hosts', 'GET /two-hosts HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n'],
      ] as const) {
        const bad = await exchange(port, head);
        assert.match(bad.data, /^HTTP\/1\.1 400 [\s\S]*connection: close[\s\S]*Host/);
        assert.equal(bad.closed, true);
        assert.equal(upstreamUrls.includes(path), false, `${path} was not sent on`);
      }
      const ok = await exchange(port, 'GET /after-no-host HTTP/1.0\r\n\r\n');
      assert.match(ok.data, /^HTTP\/1\.1 200 /);
    });

    it('answers a request whose chunked body breaks its framing with 400 and closes, sending nothing on', async () => {
      const bad = await exchange(
        port,
        'POST /bad-chunk HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n',
      );
      assert.match(bad.data, /^HTTP\/1\.1 400 [\s\S]*connection: close[\s\S]*malformed request body/);
      assert.equal(bad.closed, true);
      assert.equal(upstreamUrls.includes('/bad-chunk'), false, 'the request was not sent on');
      const ok = await exchange(port, 'GET /after-bad-chunk HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(ok.data, /^HTTP\/1\.1 200 /);
    });

    it('answers 400 when a body breaks its framing after the request was sent on, and keeps serving', async () => {
      const { socket: s, read, closed } = rawClient(port);
      s.write('POST /late-bad-chunk HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
      // Bounded wait (3 s) until the upstream has the request, then the broken chunk.
      for (let i = 0; i < 60 && !upstreamUrls.includes('/late-bad-chunk'); i++) await sleep(50);
      assert.ok(upstreamUrls.includes('/late-bad-chunk'));
      s.write('zz\r\n');
      await closed;
      assert.match(read(), /^HTTP\/1\.1 400 [\s\S]*malformed request body/);
      const ok = await exchange(port, 'GET /after-late-bad-chunk HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(ok.data, /^HTTP\/1\.1 200 /);
    });

    it('answers a client that shuts down its sending side after its requests, then ends the connection', async () => {
      const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let data = '';
      s.on('data', (d) => (data += d.toString('latin1')));
      const ended = new Promise<void>((r) => s.on('end', () => r()));
      s.on('error', () => undefined);
      // Two pipelined requests, then FIN (as `printf ... | nc -N` sends them).
      s.end('GET /half-1 HTTP/1.1\r\nhost: x\r\n\r\nGET /half-2 HTTP/1.1\r\nhost: x\r\n\r\n');
      await ended;
      s.destroy();
      const bodies = data.split('\r\n\r\n').slice(1);
      assert.equal(bodies.length, 2, data);
      assert.match(bodies[0] as string, /^GET \/half-1 /);
      assert.match(bodies[1] as string, /^GET \/half-2 $/);
    });

    it('forwards a repeated Content-Length as one, which the upstream’s parser accepts', async () => {
      const r = await exchange(
        port,
        'PUT /dup-length HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc',
      );
      assert.match(r.data, /^HTTP\/1\.1 200 [\s\S]*PUT \/dup-length abc$/);
    });

    it('answers 408 and closes when a head trickles in for longer than the head timeout', async () => {
      const { socket: s, read, closed } = rawClient(port);
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write('GET /slow-head HTTP/1.1\r\n');
      await sleep(100);
      s.write('host: x\r\n');
      await sleep(100);
      // The relay reads the clock only for a head split over reads: it is moved on past the
      // limit for the next piece alone, not waited for.
      const realNow = performance.now.bind(performance);
      performance.now = () => realNow() + RELAY_LIMITS.headTimeoutMs + 1_000;
      try {
        s.write('x-a: 1\r\n');
        await Promise.race([closed, sleep(3_000)]);
      } finally {
        performance.now = realNow;
      }
      assert.match(
        read(),
        /^HTTP\/1\.1 408 [\s\S]*connection: close[\s\S]*request head not complete within 30 s/,
      );
      assert.equal(upstreamUrls.includes('/slow-head'), false);
    });

    it('closes after answering an HTTP/1.0 request', async () => {
      const r = await exchange(port, 'GET /old HTTP/1.0\r\n\r\n');
      assert.match(r.data, /^HTTP\/1\.1 200 /);
      assert.match(r.data, /connection: close/i);
      assert.match(r.data, /GET \/old $/);
      assert.equal(r.closed, true);
    });

    it('passes 100 Continue on and relays the body that follows', async () => {
      const r = await exchange(
        port,
        'PUT /up HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\nhello',
      );
      assert.match(r.data, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
      assert.match(r.data, /PUT \/up hello$/);
    });

    it('passes 103 Early Hints on to an HTTP/1.1 client, not to an HTTP/1.0 one', async () => {
      const h11 = await exchange(port, 'GET /early-hints HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(
        h11.data,
        /^HTTP\/1\.1 103 Early Hints\r\nlink: [^\r]*\r\n\r\nHTTP\/1\.1 200 [\s\S]*final$/,
      );
      const h10 = await exchange(port, 'GET /early-hints HTTP/1.0\r\n\r\n');
      assert.match(h10.data, /^HTTP\/1\.1 200 [\s\S]*final$/);
    });

    it('relays a body delimited by the connection close, then closes the client connection', async () => {
      const r = await exchange(port, 'GET /close-delimited HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(r.data, /connection: close\r\n\r\nuntil the end$/);
      assert.equal(r.closed, true);
    });

    interface RelayOptions {
      key: string;
      upstreamPort: number;
      timeoutMs?: number;
      /** The test's own pool instead of the shared one. */
      pool?: H1Pool;
      /** A TLS connection: connected only on 'secureConnect' (after a handshake, which a plain server never answers). */
      secure?: boolean;
      connectTimeoutMs?: number;
      /** Forward the request as received; otherwise as `GET /` without headers. */
      asReceived?: boolean;
      /** Send a request again once when its outcome says it is safe (staleSocket). */
      resendStale?: boolean;
      /** The destination's connection limit (service-defaults maxConnections). */
      connectionsMax?: number;
    }

    /** A relay that sends every request to `upstreamPort` and answers itself when nothing came back. */
    const relayTo = (o: RelayOptions, seen?: (o: Outcome) => void): Server =>
      relayServer(accepted, (x) => {
        const target = {
          pool: o.pool ?? pool,
          key: o.key,
          open: () =>
            o.secure
              ? tlsConnect({ port: o.upstreamPort, host: '127.0.0.1', rejectUnauthorized: false })
              : connect(o.upstreamPort, '127.0.0.1'),
          connectTimeoutMs: o.connectTimeoutMs ?? 5_000,
          connectionsMax: o.connectionsMax,
          startLine: o.asReceived ? x.startLine(x.head.method, x.head.target) : x.startLine('GET', '/'),
          block: o.asReceived ? x.headerBlock(new Set()) : '',
          timeoutMs: o.timeoutMs ?? 5_000,
        };
        let resent = false;
        const done = (outcome: Outcome): void => {
          seen?.(outcome);
          // As the outbound and inbound handlers do: once, when the outcome says it is safe.
          if (o.resendStale && !outcome.sentResponse && outcome.staleSocket && x.replayable && !resent) {
            resent = true;
            x.forward(target, { forwarded: done });
            return;
          }
          if (!outcome.sentResponse) x.reply(outcome.status, outcome.message);
          x.finish();
        };
        x.forward(target, { forwarded: done });
      });

    it('answers 502 when the upstream cannot be reached, keeping the client connection', async () => {
      const gone = createServer();
      const closedPort = await listen(gone);
      await new Promise((r) => gone.close(r));
      let outcome: Outcome | undefined;
      const s = relayTo({ key: 'nowhere', upstreamPort: closedPort, timeoutMs: 2_000 }, (o) => {
        outcome = o;
      });
      const p = await listen(s);
      const r = await exchange(p, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', 500);
      assert.equal(outcome?.sentResponse, false);
      assert.equal(outcome && !outcome.sentResponse && outcome.connectFailed, true);
      assert.match(r.data, /^HTTP\/1\.1 502 /);
      assert.equal(r.closed, false);
      s.close();
    });

    it('answers 504 when the upstream goes quiet past the request timeout, and keeps serving', async () => {
      // Accepts and reads, never answers.
      const silent = createServer((sock) => sock.resume());
      const s = relayTo({ key: 'silent', upstreamPort: await listen(silent), timeoutMs: 300 });
      const p = await listen(s);
      // Collected for 3 s: generous next to 300 ms and the timeouts' 100 ms resolution.
      const r = await exchange(p, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', 3_000);
      assert.match(r.data, /^HTTP\/1\.1 504 [\s\S]*no response within 300 ms\n$/);
      assert.equal(r.closed, false);
      s.close();
      silent.close();
    });

    it('does not cut a response off while the client, not the upstream, is the slow one', async () => {
      // A request timeout of 300 ms; the client reads nothing for 1.5 s, then everything.
      const s = relayTo({ key: 'slow-client', upstreamPort, timeoutMs: 300, asReceived: true });
      const p = await listen(s);
      const c = connect(p, '127.0.0.1');
      c.on('error', () => undefined);
      c.pause();
      c.write('GET /big HTTP/1.1\r\nhost: x\r\n\r\n');
      await sleep(1_500);
      let bytes = 0;
      let head = '';
      const closed = new Promise<void>((r) => c.on('close', () => r()));
      const done = new Promise<void>((resolve) => {
        c.on('data', (d: Buffer) => {
          if (head === '' || !head.includes('\r\n\r\n')) {
            head += d.toString('latin1');
            const at = head.indexOf('\r\n\r\n');
            if (at >= 0) bytes = head.length - at - 4;
          } else bytes += d.length;
          if (bytes >= BIG_BYTES) resolve();
        });
      });
      c.resume();
      // Bounded (10 s): 64 MiB on loopback takes well under a second once read.
      await Promise.race([done, closed, sleep(10_000)]);
      c.destroy();
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.equal(bytes, BIG_BYTES);
      s.close();
    });

    it('answers 502 when no connection opens within the connect timeout, and keeps serving', async () => {
      // A TLS destination whose handshake never completes: the socket connects, 'secureConnect' never comes.
      const mute = createServer((sock) => sock.resume());
      const mutePort = await listen(mute);
      const s = relayTo({ key: 'mute', upstreamPort: mutePort, secure: true, connectTimeoutMs: 300 });
      const p = await listen(s);
      const r = await exchange(p, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', 3_000);
      assert.match(r.data, /^HTTP\/1\.1 502 [\s\S]*connect timed out after 300 ms\n$/);
      assert.equal(r.closed, false);
      s.close();
      mute.close();
    });

    it('answers 503 when every connection the destination allows stays busy past the connect timeout', async () => {
      // An instance that reads requests and never answers: the one connection allowed stays busy.
      const mute = createServer((sock) => sock.resume());
      const mutePort = await listen(mute);
      const s = relayTo({ key: 'capped', upstreamPort: mutePort, connectTimeoutMs: 300, connectionsMax: 1 });
      try {
        const p = await listen(s);
        const first = exchange(p, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', 1_500);
        await sleep(100);
        const r = await exchange(p, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', 3_000);
        await first;
        assert.match(
          r.data,
          /^HTTP\/1\.1 503 [\s\S]*all 1 connections to the instance \(maxConnections\) stayed busy for 300 ms\n$/,
        );
        assert.equal(r.closed, false);
      } finally {
        s.close();
        mute.close();
      }
    });

    it('notices an upstream closing an idle pooled connection, so a request with a body gets a live one', async () => {
      const up = createHttpServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        // A Connection header of its own keeps Node from announcing its timeout (Keep-Alive:
        // timeout=N, which the pool would close the connection ahead of): the pool must notice the
        // close itself, as with a server that announces nothing (uvicorn).
        res.setHeader('connection', 'keep-alive');
        req.on('end', () => res.end(`${req.method} ${body}`));
      });
      // The upstream closes a connection idle for 200 ms (Node's default is 5 s).
      up.keepAliveTimeout = 200;
      const upPort = await listen(up);
      const own = new H1Pool();
      const s = relayTo({ key: 'closed-by-upstream', upstreamPort: upPort, pool: own, asReceived: true });
      const p = await listen(s);
      const first = await exchange(p, 'GET /first HTTP/1.1\r\nhost: x\r\n\r\n', 300);
      assert.match(first.data, /^HTTP\/1\.1 200 [\s\S]*GET $/);
      assert.equal(own.idleCount, 1);
      // Bounded wait (3 s) for the pool to notice the upstream's close at 200 ms.
      for (let i = 0; i < 60 && own.idleCount > 0; i++) await sleep(50);
      assert.equal(own.idleCount, 0, 'the closed connection left the pool');
      // A request with a body cannot be sent twice: it must get a live connection the first time.
      const r = await exchange(p, 'POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello');
      assert.match(r.data, /^HTTP\/1\.1 200 [\s\S]*POST hello$/);
      own.close();
      s.close();
      up.closeAllConnections();
      up.close();
    });

    it('sends a request again after a pooled connection closes unanswered only when its method is idempotent', async () => {
      // Answers /warm; reads any other request, then closes without a word (as a server that
      // crashed on it would, and as one that closed an idle connection at the same moment looks).
      const seen: string[] = [];
      const up = createServer((sock) => {
        let buf = '';
        sock.on('data', (d) => {
          buf += d.toString('latin1');
          for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
            const line = buf.slice(0, buf.indexOf('\r\n'));
            buf = buf.slice(end + 4);
            seen.push(line);
            if (line.startsWith('GET /warm ')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
            else setTimeout(() => sock.destroy(), 50);
          }
        });
        sock.on('error', () => undefined);
      });
      const upPort = await listen(up);
      const own = new H1Pool();
      const s = relayTo({
        key: 'unanswered',
        upstreamPort: upPort,
        pool: own,
        asReceived: true,
        resendStale: true,
      });
      const p = await listen(s);
      const warm = async (): Promise<void> => {
        assert.match(
          (await exchange(p, 'GET /warm HTTP/1.1\r\nhost: x\r\n\r\n', 500)).data,
          /^HTTP\/1\.1 200 /,
        );
        assert.equal(own.idleCount, 1);
      };
      await warm();
      const post = await exchange(p, 'POST /charge HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n', 1_500);
      assert.match(post.data, /^HTTP\/1\.1 502 /);
      assert.deepEqual(
        seen.filter((l) => l.startsWith('POST')),
        ['POST /charge HTTP/1.1'],
        'a POST is delivered once',
      );
      await warm();
      const get = await exchange(p, 'GET /read HTTP/1.1\r\nhost: x\r\n\r\n', 1_500);
      // Sent again on a new connection, which fails the same way (it was not pooled): 502.
      assert.match(get.data, /^HTTP\/1\.1 502 /);
      assert.equal(seen.filter((l) => l === 'GET /read HTTP/1.1').length, 2, 'a GET is sent again once');
      own.close();
      s.close();
      up.close();
    });

    it('closes the connection after refusing an upgrade (the client may already speak the new protocol)', async () => {
      const s = relayServer(accepted, (x) => {
        x.reply(403, 'mesh: denied');
        x.finish();
      });
      const p = await listen(s);
      const r = await exchange(
        p,
        'GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
      );
      assert.match(r.data, /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*connection: close\r\n\r\nmesh: denied\n$/);
      assert.equal(r.closed, true);
      s.close();
    });

    it('closes the connection after relaying an answer other than 101 to an upgrade, as after refusing one', async () => {
      // The upstream (no 'upgrade' listener) answers the request as an ordinary one, keep-alive.
      const s = relayServer(accepted, forwardUp);
      const p = await listen(s);
      const r = await exchange(
        p,
        'GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
      );
      assert.match(r.data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*connection: close\r\n\r\nGET \/ws $/);
      assert.equal(r.closed, true);
      s.close();
    });

    it('sends a body read in many pieces before the upstream was picked, waiting for one drain at a time', async () => {
      // The handler takes its time: the body's pieces are held (pendingBodyBytesMax allows 64 KiB)
      // and then written to the upstream in one go. Past 16 KiB each write finds the buffer full;
      // the client must be paused and resumed once, not given a 'drain' listener per piece.
      const warnings: string[] = [];
      const onWarning = (w: Error): void => {
        warnings.push(w.name);
      };
      process.on('warning', onWarning);
      const s = relayServer(accepted, (x) => {
        setTimeout(() => forwardUp(x), 300);
      });
      const p = await listen(s);
      const { socket, read, closed } = rawClient(p);
      socket.setNoDelay(true);
      const piece = 'y'.repeat(1_000);
      const pieces = 40;
      socket.write(`POST /held-body HTTP/1.1\r\nhost: x\r\ncontent-length: ${pieces * piece.length}\r\n\r\n`);
      for (let i = 0; i < pieces; i++) {
        socket.write(piece);
        await sleep(2);
      }
      for (let i = 0; i < 60 && !read().includes('POST /held-body'); i++) await sleep(50);
      process.off('warning', onWarning);
      const answer = read();
      assert.ok(answer.startsWith('HTTP/1.1 200 '), answer.slice(0, 200));
      assert.ok(answer.endsWith(`POST /held-body ${piece.repeat(pieces)}`), answer.slice(-200));
      assert.deepEqual(warnings, []);
      socket.end();
      await closed;
      s.close();
    });
  });

describe('accepted connections moved to the read buffer', () => {
  const answer = (x: Exchange): void => {
    x.reply(200, `${x.head.method} ${x.head.target}`);
    x.finish();
  };

  it('keep the server’s connection count: counted while open, and close() completes once they end', async () => {
    const server = relayServer(true, answer);
    const p = await listen(server);
    const client = connect(p, '127.0.0.1');
    let data = '';
    client.on('data', (d) => (data += d.toString('latin1')));
    client.write('GET /one HTTP/1.1\r\nhost: x\r\n\r\n');
    for (let i = 0; i < 100 && !data.includes('GET /one'); i++) await sleep(20);
    const open = await new Promise<number>((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))));
    assert.equal(open, 1);
    let closed = false;
    server.close(() => {
      closed = true;
    });
    // Still served after close(): a listener that stops accepting lets its connections finish.
    client.write('GET /two HTTP/1.1\r\nhost: x\r\n\r\n');
    for (let i = 0; i < 100 && !data.includes('GET /two'); i++) await sleep(20);
    assert.match(data, /GET \/two\n$/);
    assert.equal(closed, false);
    client.end();
    for (let i = 0; i < 100 && !closed; i++) await sleep(20);
    assert.equal(closed, true, 'the server closed once its last connection ended');
  });

  it('are adopted on this Node (so the suite above ran the onread path), and read through the callback', async () => {
    const reads: string[] = [];
    let adopted: Socket | undefined;
    const server = createServer({ pauseOnConnect: true }, (s) => {
      adopted = adoptWithOnread(s, {
        buffer: Buffer.alloc(64),
        callback: (n, buf) => {
          reads.push(buf.toString('latin1', 0, n));
          return true;
        },
      });
    });
    const client = connect(await listen(server), '127.0.0.1');
    client.write('ping');
    for (let i = 0; i < 100 && reads.length === 0; i++) await sleep(20);
    assert.ok(adopted, 'adoptWithOnread returned a socket');
    assert.deepEqual(reads, ['ping']);
    client.destroy();
    adopted.destroy();
    server.close();
  });

  it('fall back to reading through data events when a socket cannot be adopted', async () => {
    // A socket this process connected (not one a server accepted) has no server to count it.
    const plain = createServer();
    const p = await listen(plain);
    const accepted = new Promise<Socket>((r) => plain.once('connection', r));
    const outgoing = connect(p, '127.0.0.1');
    await new Promise((r) => outgoing.once('connect', r));
    assert.equal(adoptWithOnread(outgoing, { buffer: READ_BUFFER, callback: () => true }), undefined);
    // The far end plays the client; the connecting socket is served.
    serveH1Accepted(outgoing, answer);
    const client = await accepted;
    let data = '';
    client.on('data', (d) => (data += d.toString('latin1')));
    client.write('GET /fallback HTTP/1.1\r\nhost: x\r\n\r\n');
    for (let i = 0; i < 100 && !data.includes('/fallback'); i++) await sleep(20);
    assert.match(data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*GET \/fallback\n$/);
    client.destroy();
    plain.close();
  });
});
