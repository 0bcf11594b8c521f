import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { ApiClient, encodeKeyPath, queryString } from '../../../src/api/client.js';
import { isMeshError } from '../../helpers/cli.js';
import { FakeStateServer, fakePeers } from '../../helpers/fake-state-server.js';

describe('ApiClient: key-value store', () => {
  const fake = new FakeStateServer();
  let client: ApiClient;
  before(async () => {
    await fake.start();
    client = new ApiClient(fake.addr);
  });
  after(() => fake.close());
  beforeEach(() => {
    fake.kv.clear();
    fake.seen.length = 0;
    fake.unavailable = false;
  });

  it('puts and gets a value, with its indexes', async () => {
    assert.equal(await client.kvPut('app/web/max-conns', '100'), true);
    const e = await client.kvGet('app/web/max-conns');
    assert.ok(e);
    assert.equal(Buffer.from(e.value, 'base64').toString(), '100');
    assert.equal(e.key, 'app/web/max-conns');
    assert.equal(e.createIndex, e.modifyIndex);
    assert.deepEqual(fake.seen[0]?.body, Buffer.from('100'));
    assert.equal(fake.seen[0]?.contentType, 'application/octet-stream');
  });

  it('sends bytes unchanged', async () => {
    const bytes = new Uint8Array([0, 255, 10, 13, 128]);
    assert.equal(await client.kvPut('bin', bytes), true);
    assert.deepEqual(fake.seen[0]?.body, Buffer.from(bytes));
    assert.deepEqual(Buffer.from((await client.kvGet('bin'))!.value, 'base64'), Buffer.from(bytes));
  });

  it('answers undefined for a missing key, and sends ?consistent as a flag', async () => {
    assert.equal(await client.kvGet('nope', { consistent: true }), undefined);
    assert.equal(fake.seen[0]?.url, '/v1/kv/nope?consistent');
  });

  it('percent-encodes each segment of a key and keeps the slashes', async () => {
    const key = 'a b/c?d#e/%f/é';
    await client.kvPut(key, 'x');
    assert.equal(fake.seen[0]?.url, '/v1/kv/a%20b/c%3Fd%23e/%25f/%C3%A9');
    assert.ok(fake.kv.has(key));
    assert.ok(await client.kvGet(key));
  });

  it('refuses keys with "." or ".." segments, which URLs would fold away', () => {
    assert.throws(() => encodeKeyPath('a/../b'), isMeshError('bad_request', /"\.\."/));
    assert.throws(() => encodeKeyPath('./b'), isMeshError('bad_request'));
    assert.equal(encodeKeyPath('a/.b/c.'), 'a/.b/c.');
  });

  it('check-and-set: 0 creates only, n writes only at that index; false when it fails', async () => {
    assert.equal(await client.kvPut('k', 'v1', { cas: 0 }), true);
    assert.equal(await client.kvPut('k', 'v2', { cas: 0 }), false);
    const { modifyIndex } = (await client.kvGet('k'))!;
    assert.equal(await client.kvPut('k', 'v3', { cas: modifyIndex + 1 }), false);
    assert.equal(await client.kvPut('k', 'v3', { cas: modifyIndex }), true);
    assert.equal(fake.seen.at(-1)?.url, `/v1/kv/k?cas=${modifyIndex}`);
    assert.equal(await client.kvDelete('k', { cas: modifyIndex }), false);
    assert.equal(await client.kvDelete('k', { cas: (await client.kvGet('k'))!.modifyIndex }), true);
    assert.equal(await client.kvGet('k'), undefined);
  });

  it('rejects a bad cas before sending anything', async () => {
    await assert.rejects(client.kvPut('k', 'v', { cas: -1 }), isMeshError('bad_request', /cas/));
    await assert.rejects(client.kvDelete('k', { cas: 0 }), isMeshError('bad_request', /cas/));
    await assert.rejects(
      client.kvDelete('k', { cas: 3, recurse: true }),
      isMeshError('bad_request', /recurse/),
    );
    assert.equal(fake.seen.length, 0);
  });

  it('lists entries and keys under a prefix, sorted; deletes a tree', async () => {
    fake.put('b/2', 'two');
    fake.put('b/1', 'one');
    fake.put('a', 'x');
    assert.deepEqual(
      (await client.kvList('b/')).map((e) => e.key),
      ['b/1', 'b/2'],
    );
    assert.equal(fake.seen.at(-1)?.url, '/v1/kv/b/?recurse');
    assert.deepEqual(await client.kvKeys(''), ['a', 'b/1', 'b/2']);
    assert.deepEqual(await client.kvList('zzz'), []);
    assert.equal(await client.kvDelete('b/', { recurse: true }), true);
    assert.equal(fake.seen.at(-1)?.url, '/v1/kv/b/?recurse');
    assert.deepEqual(await client.kvKeys(''), ['a']);
  });

  it('maps 400 and 503 to MeshError with the agent message', async () => {
    await assert.rejects(client.kvPut('', 'v'), isMeshError('bad_request', /^key: /));
    fake.unavailable = true;
    await assert.rejects(client.kvGet('a'), isMeshError('unavailable', /no quorum/));
    await assert.rejects(client.kvPut('a', 'v'), isMeshError('unavailable', /no quorum/));
  });

  it('keeps a 404 that is not an agent error body an error', async () => {
    // Only the agent's own not_found JSON means "no such key".
    await assert.rejects(client.request('GET', '/v1/unknown'), isMeshError('not_found', /no such endpoint/));
  });
});

describe('ApiClient: configuration entries', () => {
  const fake = new FakeStateServer();
  let client: ApiClient;
  before(async () => {
    await fake.start();
    client = new ApiClient(fake.addr);
  });
  after(() => fake.close());

  it('writes an entry file as JSON and reads it back', async () => {
    const { index } = await client.configPut({ kind: 'service-defaults', name: 'web', protocol: 'http' });
    assert.equal(fake.seen.at(-1)?.contentType, 'application/json');
    assert.deepEqual(JSON.parse(fake.seen.at(-1)!.body.toString()), {
      kind: 'service-defaults',
      name: 'web',
      protocol: 'http',
    });
    const e = await client.configGet('service-defaults', 'web');
    assert.deepEqual(e, {
      kind: 'service-defaults',
      name: 'web',
      spec: { protocol: 'http' },
      createIndex: index,
      modifyIndex: index,
    });
  });

  it('lists by kind or all, and answers undefined for a missing entry', async () => {
    await client.configPut({ kind: 'proxy-defaults', name: 'global', protocol: 'tcp' });
    assert.deepEqual(
      (await client.configList()).map((e) => `${e.kind}/${e.name}`),
      ['proxy-defaults/global', 'service-defaults/web'],
    );
    assert.deepEqual(
      (await client.configList('proxy-defaults')).map((e) => e.name),
      ['global'],
    );
    assert.equal(await client.configGet('service-defaults', 'nope'), undefined);
    assert.equal(await client.configDelete('proxy-defaults', 'global'), true);
    assert.equal(await client.configGet('proxy-defaults', 'global'), undefined);
  });

  it('reports the field the agent rejects', async () => {
    await assert.rejects(
      client.configPut({ kind: 'service-defaults', name: 'web', protocol: 'udp' }),
      isMeshError('bad_request', 'protocol: must be one of tcp, http, http2, grpc'),
    );
    await assert.rejects(
      client.configPut({ kind: 'service-defaults', name: 'web' }, { cas: 0 }),
      isMeshError('bad_request', /check-and-set failed/),
    );
    assert.equal(fake.seen.at(-1)?.url, '/v1/config?cas=0');
  });
});

describe('ApiClient: raft', () => {
  const fake = new FakeStateServer();
  let client: ApiClient;
  before(async () => {
    await fake.start();
    client = new ApiClient(fake.addr);
  });
  after(() => fake.close());

  it('peers, status, transfer-leader', async () => {
    assert.deepEqual(await client.raftPeers(), fakePeers);
    assert.equal((await client.raftStatus()).leaderName, 'web-1');
    assert.deepEqual(await client.raftTransferLeader('web-2'), { leader: '12D3KooWB' });
    assert.equal(fake.seen.at(-1)?.url, '/v1/raft/transfer-leader?to=web-2');
    assert.equal(fake.seen.at(-1)?.method, 'POST');
    await assert.rejects(client.raftTransferLeader('db-1'), isMeshError('bad_request', /not a raft voter/));
    assert.deepEqual(await client.raftTransferLeader(), { leader: '12D3KooWA' });
    assert.equal(fake.seen.at(-1)?.url, '/v1/raft/transfer-leader');
  });

  it('builds query strings with bare flags', () => {
    assert.equal(
      queryString({ recurse: true, consistent: false, cas: 0, to: 'a b' }),
      '?recurse&cas=0&to=a%20b',
    );
    assert.equal(queryString({ x: undefined }), '');
  });
});
