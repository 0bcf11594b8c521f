// gRPC health probe against a grpc.health.v1 server written with node:http2, cleartext and TLS.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  frame,
} from '../../../src/health/grpc-probe.js';
import { runProbe } from '../../../src/health/probes.js';
import { closedPort } from '../../helpers/net.js';
import { selfSignedCert } from './helpers.js';

const opts = { enableScriptChecks: false };
const never = new AbortController().signal;

/** Serving status per service name; a name not listed answers NOT_FOUND, as grpc-go's health server. */
const SERVICES: Record<string, number> = { '': 1, web: 1, down: 2 };

/** The service name of a framed HealthCheckRequest (the test server's side of the codec). */
function serviceOf(body: Buffer): string {
  const msg = body.subarray(5, 5 + body.readUInt32BE(1));
  if (msg.length === 0) return '';
  assert.equal(msg[0], 0x0a, 'field 1, length-delimited');
  assert.ok(msg[1]! < 0x80, 'test names are short');
  return msg.subarray(2, 2 + msg[1]!).toString('utf8');
}

function handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  stream.on('error', () => {});
  if (headers[':path'] !== '/grpc.health.v1.Health/Check' || headers['content-type'] !== 'application/grpc') {
    stream.respond({ ':status': 404 }, { endStream: true });
    return;
  }
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    const service = serviceOf(Buffer.concat(chunks));
    const status = SERVICES[service];
    if (status === undefined) {
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '5',
          'grpc-message': 'unknown service',
        },
        { endStream: true },
      );
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame(Uint8Array.of(0x08, status)));
  });
}

function listen(server: http2.Http2Server | http2.Http2SecureServer): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function grpcCheck(address: string, service: string, tls = false, tlsSkipVerify = false) {
  return { type: 'grpc' as const, address, service, tls, tlsSkipVerify };
}

describe('grpc health probe (h2c)', () => {
  let server: http2.Http2Server;
  let address: string;

  before(async () => {
    server = http2.createServer();
    server.on('stream', handle);
    server.on('sessionError', () => {});
    address = `127.0.0.1:${await listen(server)}`;
  });

  after(() => new Promise<void>((r) => server.close(() => r())));

  it('SERVING passes (whole server and a named service)', async () => {
    assert.deepEqual(await runProbe(grpcCheck(address, ''), 2000, never, opts), {
      status: 'passing',
      output: `gRPC health check ${address}: SERVING`,
    });
    assert.deepEqual(await runProbe(grpcCheck(address, 'web'), 2000, never, opts), {
      status: 'passing',
      output: `gRPC health check ${address} service "web": SERVING`,
    });
  });

  it('NOT_SERVING is critical', async () => {
    assert.deepEqual(await runProbe(grpcCheck(address, 'down'), 2000, never, opts), {
      status: 'critical',
      output: `gRPC health check ${address} service "down": NOT_SERVING`,
    });
  });

  it('an unknown service (grpc-status 5) is critical with the code and message', async () => {
    assert.deepEqual(await runProbe(grpcCheck(address, 'nope'), 2000, never, opts), {
      status: 'critical',
      output: `gRPC health check ${address} service "nope": grpc-status 5 (NOT_FOUND): unknown service`,
    });
  });

  it('a refused connection is critical', async () => {
    const r = await runProbe(grpcCheck(`127.0.0.1:${await closedPort()}`, ''), 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /ECONNREFUSED/);
  });

  it('TLS against a cleartext server is critical, not a hang', async () => {
    const r = await runProbe(grpcCheck(address, '', true, true), 2000, never, opts);
    assert.equal(r.status, 'critical');
  });
});

describe('grpc health probe (TLS)', () => {
  const tls = selfSignedCert();
  const skip = 'skip' in tls ? tls.skip : false;
  let server: http2.Http2SecureServer | undefined;
  let address = '';

  before(async () => {
    if ('skip' in tls) return;
    server = http2.createSecureServer({ key: tls.key, cert: tls.cert });
    server.on('stream', handle);
    server.on('sessionError', () => {});
    server.on('tlsClientError', () => {});
    address = `127.0.0.1:${await listen(server)}`;
  });

  after(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it('passes with tlsSkipVerify', { skip }, async () => {
    const r = await runProbe(grpcCheck(address, 'web', true, true), 2000, never, opts);
    assert.equal(r.status, 'passing');
  });

  it('is critical when the certificate does not verify', { skip }, async () => {
    const r = await runProbe(grpcCheck(address, 'web', true, false), 2000, never, opts);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /self[- ]signed certificate/);
  });
});

describe('grpc health codec', () => {
  it('encodes the request: empty for the whole server, field 1 otherwise', () => {
    assert.deepEqual([...encodeHealthCheckRequest('')], []);
    assert.deepEqual([...encodeHealthCheckRequest('ab')], [0x0a, 2, 0x61, 0x62]);
    assert.deepEqual([...frame(Uint8Array.of(7))], [0, 0, 0, 0, 1, 7]);
  });

  it('decodes the status, skipping unknown fields; a missing status is UNKNOWN (0)', () => {
    assert.equal(decodeHealthCheckResponse(frame(Uint8Array.of(0x08, 1))), 1);
    // field 2 (string "x"), then field 1 = 2, then field 3 fixed32.
    assert.equal(
      decodeHealthCheckResponse(frame(Uint8Array.of(0x12, 1, 0x78, 0x08, 2, 0x1d, 0, 0, 0, 0))),
      2,
    );
    assert.equal(decodeHealthCheckResponse(frame(new Uint8Array(0))), 0);
  });

  it('explains a malformed body instead of throwing', () => {
    assert.equal(typeof decodeHealthCheckResponse(new Uint8Array(0)), 'string');
    assert.equal(typeof decodeHealthCheckResponse(Uint8Array.of(1, 0, 0, 0, 0)), 'string');
    assert.equal(typeof decodeHealthCheckResponse(Uint8Array.of(0, 0, 0, 0, 9, 0x08)), 'string');
    assert.equal(typeof decodeHealthCheckResponse(frame(Uint8Array.of(0x08, 0x80))), 'string');
    assert.equal(typeof decodeHealthCheckResponse(frame(Uint8Array.of(0x12, 5, 1))), 'string');
  });
});
