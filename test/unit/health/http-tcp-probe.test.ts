// HTTP(S) and TCP probes against real servers on 127.0.0.1.
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PROBE_OUTPUT_BYTES_MAX, runProbe } from '../../../src/health/probes.js';
import { closedPort } from '../../helpers/net.js';
import { selfSignedCert } from './helpers.js';

const opts = { enableScriptChecks: false };
const never = new AbortController().signal;

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function httpCheck(
  url: string,
  over: { method?: string; headers?: Record<string, string>; tlsSkipVerify?: boolean } = {},
) {
  return {
    type: 'http' as const,
    url,
    method: over.method ?? 'GET',
    headers: over.headers ?? {},
    tlsSkipVerify: over.tlsSkipVerify ?? false,
  };
}

describe('http probe', () => {
  let server: http.Server;
  let base: string;
  let lastRequest: { method: string | undefined; headers: http.IncomingHttpHeaders } | undefined;

  before(async () => {
    server = http.createServer((req, res) => {
      lastRequest = { method: req.method, headers: req.headers };
      switch (req.url) {
        case '/ok':
          res.end('all good');
          return;
        case '/busy':
          res.writeHead(429).end('slow down');
          return;
        case '/broken':
          res.writeHead(500).end('boom');
          return;
        case '/moved':
          res.writeHead(301, { location: '/ok' }).end();
          return;
        case '/huge':
          res.end('x'.repeat(1024 * 1024));
          return;
        case '/slow':
          // Never answers; the probe's timeout must end it.
          return;
        default:
          res.writeHead(404).end();
      }
    });
    base = `http://127.0.0.1:${await listen(server)}`;
  });

  after(async () => {
    server.closeAllConnections();
    await close(server);
  });

  it('2xx passes, with Consul-style output', async () => {
    const r = await runProbe(httpCheck(`${base}/ok`), 2000, never, opts);
    assert.deepEqual(r, { status: 'passing', output: `HTTP GET ${base}/ok: 200 OK Output: all good` });
  });

  it('429 warns', async () => {
    const r = await runProbe(httpCheck(`${base}/busy`), 2000, never, opts);
    assert.equal(r.status, 'warning');
    assert.match(r.output, /429 Too Many Requests Output: slow down$/);
  });

  it('500 is critical', async () => {
    const r = await runProbe(httpCheck(`${base}/broken`), 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /500 Internal Server Error Output: boom$/);
  });

  it('a redirect is not followed and is critical, naming the target', async () => {
    const r = await runProbe(httpCheck(`${base}/moved`), 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /301 Moved Permanently \(redirect to \/ok not followed/);
  });

  it('sends the method and headers of the check', async () => {
    const r = await runProbe(
      httpCheck(`${base}/ok`, { method: 'head', headers: { 'X-Probe': 'yes' } }),
      2000,
      never,
      opts,
    );
    assert.equal(r.status, 'passing');
    assert.equal(lastRequest?.method, 'HEAD');
    assert.equal(lastRequest?.headers['x-probe'], 'yes');
    assert.equal(lastRequest?.headers.connection, 'close');
  });

  it('reads a bounded prefix of a large body', async () => {
    const r = await runProbe(httpCheck(`${base}/huge`), 5000, never, opts);
    assert.equal(r.status, 'passing');
    const body = r.output.slice(r.output.indexOf('Output: ') + 'Output: '.length);
    assert.equal(body, 'x'.repeat(PROBE_OUTPUT_BYTES_MAX));
  });

  it('a server that does not answer in time is critical: timed out', async () => {
    const r = await runProbe(httpCheck(`${base}/slow`), 200, never, opts);
    assert.deepEqual(r, { status: 'critical', output: `HTTP GET ${base}/slow: timed out after 200 ms` });
  });

  it('a refused connection is critical with the reason', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/`;
    const r = await runProbe(httpCheck(url), 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /ECONNREFUSED/);
  });

  it('an abort from the caller ends the probe as cancelled', async () => {
    const ctl = new AbortController();
    const pending = runProbe(httpCheck(`${base}/slow`), 10_000, ctl.signal, opts);
    setTimeout(() => ctl.abort(), 50);
    const r = await pending;
    assert.equal(r.status, 'critical');
    assert.match(r.output, /cancelled/);
  });

  it('a malformed URL or an unsupported scheme is critical without a request', async () => {
    assert.match((await runProbe(httpCheck('not a url'), 2000, never, opts)).output, /not a valid URL/);
    assert.match(
      (await runProbe(httpCheck('ftp://127.0.0.1/'), 2000, never, opts)).output,
      /unsupported scheme/,
    );
  });
});

describe('https probe with a self-signed certificate', () => {
  const tls = selfSignedCert();
  const skip = 'skip' in tls ? tls.skip : false;
  let server: https.Server | undefined;
  let base = '';

  before(async () => {
    if ('skip' in tls) return;
    server = https.createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end('secure'));
    base = `https://127.0.0.1:${await listen(server)}`;
  });

  after(async () => {
    if (server) await close(server);
  });

  it('fails verification without tlsSkipVerify', { skip }, async () => {
    const r = await runProbe(httpCheck(`${base}/`), 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /self[- ]signed certificate/);
  });

  it('passes with tlsSkipVerify', { skip }, async () => {
    const r = await runProbe(httpCheck(`${base}/`, { tlsSkipVerify: true }), 2000, never, opts);
    assert.deepEqual(r, { status: 'passing', output: `HTTP GET ${base}/: 200 OK Output: secure` });
  });
});

describe('tcp probe', () => {
  it('an open port passes', async () => {
    const server = net.createServer((s) => s.destroy());
    const port = await listen(server);
    try {
      const r = await runProbe({ type: 'tcp', address: `127.0.0.1:${port}` }, 2000, never, opts);
      assert.deepEqual(r, { status: 'passing', output: `TCP connect 127.0.0.1:${port}: Success` });
    } finally {
      await close(server);
    }
  });

  it('a closed port is critical with the error', async () => {
    const port = await closedPort();
    const r = await runProbe({ type: 'tcp', address: `127.0.0.1:${port}` }, 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, new RegExp(`^TCP connect 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it('a malformed address is critical', async () => {
    const r = await runProbe({ type: 'tcp', address: 'no-port' }, 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /port is missing/);
  });
});
