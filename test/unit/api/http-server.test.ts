import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type HttpServer, startHttpServer } from '../../../src/api/http-server.js';
import { FakeAgent } from '../../helpers/fake-agent.js';

const log = pino({ level: 'silent' });

/** Send raw bytes; resolve everything the server sends back before it closes (or after 2 s). */
function raw(port: number, data: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    const done = (): void => resolve(Buffer.concat(chunks).toString('latin1'));
    s.on('close', done);
    setTimeout(() => {
      s.destroy();
      done();
    }, 2000).unref();
  });
}

describe('HTTP API server', () => {
  const agent = new FakeAgent();
  let server: HttpServer;
  let base: string;
  let leftCalls = 0;
  let onLeaveDone: () => void = () => {};
  const leaveDone = new Promise<void>((r) => {
    onLeaveDone = r;
  });

  before(async () => {
    server = await startHttpServer({
      agent,
      host: '127.0.0.1',
      port: 0,
      log,
      onLeave: () => {
        leftCalls++;
        onLeaveDone();
      },
    });
    base = `http://127.0.0.1:${server.address.port}`;
  });
  after(() => server.close());

  async function call(method: string, path: string, init: RequestInit = {}) {
    const res = await fetch(base + path, { method, ...init });
    const text = await res.text();
    assert.ok(text.endsWith('\n'), 'answers end with a newline');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    return { status: res.status, headers: res.headers, body: JSON.parse(text) };
  }

  it('binds a free port when asked for port 0', () => {
    assert.equal(server.address.host, '127.0.0.1');
    assert.ok(server.address.port > 0);
  });

  it('GET /v1/agent/self', async () => {
    const r = await call('GET', '/v1/agent/self');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, agent.self());
  });

  it('GET /v1/agent/members, with and without a status filter', async () => {
    assert.deepEqual((await call('GET', '/v1/agent/members')).body, agent.list);
    const alive = await call('GET', '/v1/agent/members?status=alive');
    assert.deepEqual(
      alive.body.map((m: { name: string }) => m.name),
      ['zeta', 'alpha'],
    );
    const bad = await call('GET', '/v1/agent/members?status=dead');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'bad_request');
    assert.match(bad.body.error.message, /alive, suspect, failed, left/);
  });

  it('rejects unknown query parameters', async () => {
    const r = await call('GET', '/v1/agent/members?statsu=alive');
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /unknown query parameter "statsu"/);
  });

  it('PUT /v1/agent/join with repeated addresses', async () => {
    const r = await call('PUT', '/v1/agent/join?address=10.0.0.1:7400&address=down.example:7400');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { joined: 1, errors: [{ address: 'down.example:7400', message: 'refused' }] });
    assert.deepEqual(agent.joins.at(-1), ['10.0.0.1:7400', 'down.example:7400']);
  });

  it('PUT /v1/agent/join: 400 when the address is missing or invalid', async () => {
    const before_ = agent.joins.length;
    const missing = await call('PUT', '/v1/agent/join');
    assert.equal(missing.status, 400);
    assert.match(missing.body.error.message, /address/);
    const invalid = await call('PUT', '/v1/agent/join?address=not-an-address');
    assert.equal(invalid.status, 400);
    assert.match(invalid.body.error.message, /HOST:PORT/);
    assert.equal(agent.joins.length, before_, 'the agent is not asked');
  });

  it('PUT /v1/agent/join: 502 join_failed when no address answers', async () => {
    const r = await call('PUT', '/v1/agent/join?address=down.example:7400');
    assert.equal(r.status, 502);
    assert.deepEqual(r.body, {
      error: { code: 'join_failed', message: 'could not join any of 1 address(es)' },
    });
  });

  it('500 with a generic message on an unexpected error', async () => {
    const r = await call('PUT', '/v1/agent/join?address=boom.example:7400');
    assert.equal(r.status, 500);
    assert.equal(r.body.error.code, 'internal');
    assert.ok(!JSON.stringify(r.body).includes('secret'));
  });

  it('404 for an unknown route, 405 with Allow for a wrong method', async () => {
    const nf = await call('GET', '/v1/nothing');
    assert.equal(nf.status, 404);
    assert.equal(nf.body.error.code, 'not_found');
    const trailing = await call('GET', '/v1/agent/self/');
    assert.equal(trailing.status, 404);
    const na = await call('DELETE', '/v1/agent/self');
    assert.equal(na.status, 405);
    assert.equal(na.headers.get('allow'), 'GET');
    assert.equal(na.body.error.code, 'method_not_allowed');
    const get = await call('GET', '/v1/agent/join');
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'PUT');
  });

  it('413 for a body over 1 MiB, declared or streamed', async () => {
    const big = Buffer.alloc(1024 * 1024 + 1, 'a');
    const declared = await call('PUT', '/v1/agent/join?address=10.0.0.1:7400', { body: big });
    assert.equal(declared.status, 413);
    assert.equal(declared.body.error.code, 'payload_too_large');
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(300 * 1024));
        c.close();
      },
    });
    const streamed = await call('PUT', '/v1/agent/join?address=10.0.0.1:7400', {
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
  });

  it('survives garbage on raw sockets and still answers', async () => {
    const port = server.address.port;
    const junk = [
      'GARBAGE\r\n\r\n',
      Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10]),
      'GET / HTTP/9.9\r\n\r\n',
      `GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
      'PUT /v1/agent/join?address=%zz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n',
      'GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'GET /v1/agent/members?status=%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'GET /%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'GET /v1/agent/self HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab',
    ];
    const answers = await Promise.all(junk.map((j) => raw(port, j)));
    for (const a of answers.slice(0, 4)) assert.match(a, /^HTTP\/1\.1 4\d\d /, a.slice(0, 80));
    assert.match(answers[0]!, /"code":"bad_request"/);
    assert.match(answers[3]!, /^HTTP\/1\.1 431 /);
    const r = await call('GET', '/v1/agent/self');
    assert.equal(r.status, 200);
  });

  it('a 100 KB URL: 431 with the code of that status, not bad_request', async () => {
    const r = await call('GET', `/v1/agent/members?status=${'a'.repeat(100_000)}`);
    assert.equal(r.status, 431);
    assert.equal(r.body.error.code, 'request_header_fields_too_large');
    assert.match(r.body.error.message, /too large \(over 16 KiB\)/);
  });

  it('PUT /v1/agent/leave answers, then leaves, then calls onLeave', async () => {
    const r = await call('PUT', '/v1/agent/leave');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { leaving: true });
    await leaveDone;
    assert.equal(agent.leaves, 1);
    assert.equal(leftCalls, 1);
  });
});

describe('HTTP API server lifecycle', () => {
  it('close() resolves with an idle keep-alive connection open', async () => {
    const server = await startHttpServer({ agent: new FakeAgent(), host: '127.0.0.1', port: 0, log });
    const res = await fetch(`http://127.0.0.1:${server.address.port}/v1/agent/self`);
    await res.text();
    await server.close();
    await server.close();
  });

  it('rejects with a clear error when the port is taken', async () => {
    const a = await startHttpServer({ agent: new FakeAgent(), host: '127.0.0.1', port: 0, log });
    await assert.rejects(
      startHttpServer({ agent: new FakeAgent(), host: '127.0.0.1', port: a.address.port, log }),
      /in use.*--http/,
    );
    await a.close();
  });
});
