import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ApiClient, normalizeBaseUrl } from '../../../src/api/client.js';
import { type HttpServer, startHttpServer } from '../../../src/api/http-server.js';
import { isMeshError } from '../../helpers/cli.js';
import { FakeAgent } from '../../helpers/fake-agent.js';
import { closedPort } from '../../helpers/net.js';

async function listen(
  handler: Parameters<typeof createServer>[1],
): Promise<{ server: Server; addr: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, addr: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('ApiClient against the server', () => {
  const agent = new FakeAgent();
  let server: HttpServer;
  let client: ApiClient;

  before(async () => {
    server = await startHttpServer({ agent, host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }) });
    client = new ApiClient(`127.0.0.1:${server.address.port}`);
  });
  after(() => server.close());

  it('self, members, join', async () => {
    assert.deepEqual(await client.self(), agent.self());
    assert.deepEqual(await client.members(), agent.list);
    assert.equal((await client.members({ status: 'failed' })).length, 1);
    assert.deepEqual(await client.join(['10.0.0.1:7400']), { joined: 1, errors: [] });
  });

  it('maps API errors to MeshError(code, message)', async () => {
    await assert.rejects(
      client.join(['down.example:7400']),
      isMeshError('join_failed', 'could not join any of 1 address(es)'),
    );
    await assert.rejects(
      client.members({ status: 'dead' }),
      isMeshError('bad_request', /"status" must be one of/),
    );
    await assert.rejects(client.request('GET', '/v1/nope'), isMeshError('not_found'));
  });
});

describe('ApiClient failures', () => {
  it('says no agent answered when nothing listens', async () => {
    const port = await closedPort();
    const client = new ApiClient(`http://127.0.0.1:${port}`);
    await assert.rejects(
      client.self(),
      isMeshError(
        'unavailable',
        `no agent answered at http://127.0.0.1:${port} (is \`mesh agent\` running? set --http or MESH_HTTP_ADDR)`,
      ),
    );
  });

  it('times out on an agent that never answers', async () => {
    const { server, addr } = await listen(() => {});
    try {
      await assert.rejects(
        new ApiClient(addr, { timeoutMs: 200 }).self(),
        isMeshError('unavailable', /within 0.2s/),
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('reports an answer that is not from an agent', async () => {
    const { server, addr } = await listen((_req, res) => res.end('<html>hello</html>'));
    try {
      await assert.rejects(new ApiClient(addr).self(), isMeshError('internal', /not JSON/));
    } finally {
      server.close();
    }
  });

  it('reports an error status without an error body', async () => {
    const { server, addr } = await listen((_req, res) => {
      res.statusCode = 503;
      res.end('{"nope": 1}');
    });
    try {
      await assert.rejects(new ApiClient(addr).self(), isMeshError('internal', /HTTP 503/));
    } finally {
      server.close();
    }
  });

  it('normalizes addresses', () => {
    assert.equal(normalizeBaseUrl('127.0.0.1:7500'), 'http://127.0.0.1:7500');
    assert.equal(normalizeBaseUrl('http://localhost:7500/'), 'http://localhost:7500');
    assert.equal(normalizeBaseUrl('[::1]:7500'), 'http://[::1]:7500');
    assert.throws(() => normalizeBaseUrl('http://h:1/path'), isMeshError('bad_request', /--http/));
    assert.throws(() => normalizeBaseUrl('::bad'), isMeshError('bad_request', /--http/));
  });
});
