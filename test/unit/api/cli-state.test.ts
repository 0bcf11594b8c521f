import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { formatEntry, parseEntryFile } from '../../../src/cli/config.js';
import { ENTRY_FIELD_ORDER } from '../../../src/cli/entry-order.js';
import { main } from '../../../src/cli/main.js';
import { formatPeers, formatRaftStatus } from '../../../src/cli/raft.js';
import { KIND_NAMES } from '../../../src/core/state/index.js';
import { captureIo, mesh } from '../../helpers/cli.js';
import { FakeStateServer, fakePeers } from '../../helpers/fake-state-server.js';

describe('mesh kv, config, raft (process, against a fake agent)', () => {
  const fake = new FakeStateServer();
  let dir: string;
  before(async () => {
    await fake.start();
    dir = await mkdtemp(join(tmpdir(), 'mesh-cli-'));
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('kv get of a missing key: one line on stderr, exit 1', async () => {
    const r = await mesh(['kv', 'get', 'app/nope', '--http', fake.addr]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'Error: key "app/nope" not found\n');
  });

  it('kv put reads standard input, and kv get prints the value as is', async () => {
    const put = await mesh(['kv', 'put', 'app/motd', '--http', fake.addr], 'hello\nworld\n');
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, 'Success! Data written to: app/motd\n');
    assert.deepEqual(fake.kv.get('app/motd')?.value, Buffer.from('hello\nworld\n'));
    const get = await mesh(['kv', 'get', 'app/motd', '--http', fake.addr]);
    assert.equal(get.stdout, 'hello\nworld\n');
    const dash = await mesh(['kv', 'put', 'app/x', '-', '--http', fake.addr], 'y');
    assert.equal(dash.code, 0);
    assert.equal((await mesh(['kv', 'get', 'app/x', '--http', fake.addr])).stdout, 'y\n');
  });

  it('kv put --cas 0 on an existing key fails with one line and exit 1', async () => {
    fake.put('app/lock', 'held');
    const r = await mesh(['kv', 'put', 'app/lock', 'mine', '--cas', '0', '--http', fake.addr]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'Error: did not write "app/lock": it already exists (--cas 0 writes only a new key)\n',
    );
    assert.equal((await mesh(['kv', 'put', 'k', 'v', '--cas', 'x', '--http', fake.addr])).code, 2);
  });

  it('a file read from standard input is called "standard input" in every message', async () => {
    const syntax = await mesh(['config', 'put', '-', '--http', fake.addr], 'kind: x\nkind: y\n');
    assert.equal(syntax.code, 1);
    assert.equal(syntax.stderr, 'Error: standard input:2:1: not valid YAML: Map keys must be unique\n');
    const shape = await mesh(['config', 'put', '-', '--http', fake.addr], 'kind: x\n');
    assert.equal(shape.stderr, 'Error: standard input: name: must be a non-empty string\n');
    const services = await mesh(['services', 'register', '-', '--http', fake.addr], '{"services": 3}');
    assert.equal(services.stderr, 'Error: standard input: services: must be a list\n');
  });

  it('config put with a YAML file', async () => {
    const file = join(dir, 'web.yaml');
    await writeFile(file, 'kind: service-defaults\nname: web\nprotocol: http\nmeta:\n  team: payments\n');
    const r = await mesh(['config', 'put', file, '--http', fake.addr]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Config entry written: service-defaults\/web \(index \d+\)\n$/);
    assert.deepEqual(fake.config.get('service-defaults/web')?.spec, {
      protocol: 'http',
      meta: { team: 'payments' },
    });
  });

  it('config put: the field the agent rejects, one line, exit 1', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, 'kind: service-defaults\nname: web\nprotocol: udp\n');
    const r = await mesh(['config', 'put', file, '--http', fake.addr]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `Error: ${file}: protocol: must be one of tcp, http, http2, grpc\n`);
  });

  it('raft peers prints an aligned table sorted by name', async () => {
    const r = await mesh(['raft', 'peers', '--http', fake.addr]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n'), [
      'NAME    ID          ADDRESS         ROLE      VOTER   MATCH-INDEX   APPLIED-INDEX   STATUS',
      'db-1    12D3KooWC   10.0.0.7:7400   learner   false   7             -               failed',
      'web-1   12D3KooWA   10.0.0.5:7400   leader    true    42            42              alive',
      'web-2   12D3KooWB   10.0.0.6:7400   voter     true    41            41              alive',
      '',
    ]);
  });

  it('a 503 from the agent is one line and exit 1', async () => {
    fake.unavailable = true;
    try {
      const r = await mesh(['raft', 'status', '--http', fake.addr]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'Error: no raft leader: the cluster has no quorum\n');
    } finally {
      fake.unavailable = false;
    }
  });
});

describe('mesh kv, config, raft (in process)', () => {
  const fake = new FakeStateServer();
  let http: string;
  before(async () => {
    await fake.start();
    http = fake.addr;
  });
  after(() => fake.close());
  beforeEach(() => {
    fake.kv.clear();
  });

  it('kv list: keys one per line, or JSON with decoded values', async () => {
    fake.put('app/a', 'text');
    fake.put('app/b', Buffer.from([0xff, 0x00]));
    fake.put('other', 'x');
    const { io, sink } = captureIo();
    assert.equal(await main(['kv', 'list', 'app/', '--http', http], sink), 0);
    assert.deepEqual(io.stdout, ['app/a\napp/b']);
    assert.equal(await main(['kv', 'list', 'none/', '--http', http], sink), 0);
    assert.equal(io.stdout.length, 1, 'an empty list prints nothing');
    assert.equal(await main(['kv', 'list', 'app/', '--json', '--http', http], sink), 0);
    const listed = JSON.parse(io.stdout[1]!) as Array<Record<string, unknown>>;
    assert.deepEqual(
      listed.map(({ key, value, encoding }) => ({ key, value, encoding })),
      [
        { key: 'app/a', value: 'text', encoding: undefined },
        { key: 'app/b', value: '/wA=', encoding: 'base64' },
      ],
    );
    assert.equal(typeof listed[0]!.modifyIndex, 'number');
  });

  it('kv get of bytes that are not UTF-8 prints base64 and says so on stderr', async () => {
    fake.put('bin', Buffer.from([0xff, 0x00]));
    const { io, sink } = captureIo();
    assert.equal(await main(['kv', 'get', 'bin', '--http', http], sink), 0);
    assert.deepEqual(io.stdout, ['/wA=']);
    assert.match(io.stderr[0]!, /not UTF-8 text; printed as base64/);
  });

  it('kv put from stdin through the injected reader; kv delete with and without --recurse', async () => {
    const { io, sink } = captureIo();
    const { buildProgram } = await import('../../../src/cli/main.js');
    const program = buildProgram(sink, async () => Buffer.from('from stdin'));
    await program.parseAsync(['kv', 'put', 'k', '--http', http], { from: 'user' });
    assert.deepEqual(fake.kv.get('k')?.value, Buffer.from('from stdin'));
    fake.put('t/1', '1');
    fake.put('t/2', '2');
    assert.equal(await main(['kv', 'delete', 't/', '--recurse', '--http', http], sink), 0);
    assert.equal(await main(['kv', 'delete', 'k', '--http', http], sink), 0);
    assert.deepEqual(io.stdout, [
      'Success! Data written to: k',
      'Success! Deleted keys with prefix: t/',
      'Success! Deleted key: k',
    ]);
    assert.equal(fake.kv.size, 0);
  });

  it('config get, list and delete', async () => {
    const { io, sink } = captureIo();
    fake.config.clear();
    fake.config.set('service-defaults/web', {
      kind: 'service-defaults',
      name: 'web',
      spec: { protocol: 'http' },
      createIndex: 12,
      modifyIndex: 40,
    });
    assert.equal(await main(['config', 'get', 'service-defaults', 'web', '--http', http], sink), 0);
    assert.equal(
      io.stdout[0],
      '# service-defaults/web: created at index 12, modified at index 40\nkind: service-defaults\nname: web\nprotocol: http',
    );
    assert.equal(await main(['config', 'list', '--http', http], sink), 0);
    assert.equal(io.stdout[1], 'KIND               NAME   MODIFY-INDEX\nservice-defaults   web    40');
    assert.equal(await main(['config', 'delete', 'service-defaults', 'web', '--http', http], sink), 0);
    assert.equal(io.stdout[2], 'Config entry deleted: service-defaults/web');
    assert.equal(await main(['config', 'get', 'service-defaults', 'web', '--http', http], sink), 1);
    assert.deepEqual(io.stderr, ['Error: config entry service-defaults/web not found']);
  });

  it('raft status and transfer-leader', async () => {
    const { io, sink } = captureIo();
    assert.equal(await main(['raft', 'transfer-leader', '--to', 'web-2', '--http', http], sink), 0);
    assert.equal(io.stdout[0], 'Leadership transferred to 12D3KooWB');
    assert.equal(await main(['raft', 'status', '--json', '--http', http], sink), 0);
    assert.equal(JSON.parse(io.stdout[1]!).leaderName, 'web-2');
  });

  it('usage errors in nested commands exit 2', async () => {
    const { io, sink } = captureIo();
    assert.equal(await main(['kv', 'get', '--http', http], sink), 2);
    assert.match(io.stderr.join('\n'), /missing required argument 'key'/);
    assert.equal(await main(['kv', 'delete', 'k', '--cas', '0', '--http', http], sink), 2);
  });
});

describe('formatting of state commands', () => {
  it('raft status: leader by name and id; lists of voters', () => {
    const s = {
      id: 'A',
      term: 3,
      role: 'follower',
      leader: 'B',
      leaderName: 'web-2',
      commit: 9,
      applied: 8,
      lastIndex: 9,
      firstIndex: 1,
      conf: { voters: ['A', 'B'], learners: [] },
    };
    assert.equal(
      formatRaftStatus(s),
      [
        'id:          A',
        'role:        follower',
        'term:        3',
        'leader:      web-2 (B)',
        'commit:      9',
        'applied:     8',
        'first index: 1',
        'last index:  9',
        'voters:      A',
        '             B',
        'learners:    -',
      ].join('\n'),
    );
    assert.match(formatRaftStatus({ ...s, leader: '', leaderName: '' }), /^leader: +none \(no leader known/m);
  });

  it('raft peers: one row per peer', () => {
    assert.equal(formatPeers(fakePeers).split('\n').length, 4);
  });

  it('entry files: JSON, YAML, and the shape the CLI needs', () => {
    const b = (s: string) => Buffer.from(s);
    assert.deepEqual(parseEntryFile('w.json', b('{"kind":"service-defaults","name":"w"}')), {
      kind: 'service-defaults',
      name: 'w',
    });
    assert.deepEqual(parseEntryFile('-', b('kind: proxy-defaults\nname: global\n')), {
      kind: 'proxy-defaults',
      name: 'global',
    });
    assert.throws(() => parseEntryFile('w.yaml', b('- a\n')), /w.yaml: an entry file must hold one object/);
    assert.throws(() => parseEntryFile('w.yaml', b('kind: x\n')), /w.yaml: name: must be a non-empty string/);
    assert.throws(() => parseEntryFile('w.json', b('{')), /w\.json:1:2: not valid JSON/);
    assert.throws(
      () => parseEntryFile('w.json', b('{"kind": "x",\n "name": }')),
      /w\.json:2:10: not valid JSON/,
    );
    assert.throws(
      () => parseEntryFile('w.yaml', b('a: 1\na: 2\n')),
      /w\.yaml:2:1: not valid YAML: Map keys must be unique/,
    );
  });

  it('config get output can be written back', () => {
    const text = formatEntry({
      kind: 'service-defaults',
      name: 'web',
      spec: { protocol: 'grpc', meta: { team: 'a' } },
      createIndex: 1,
      modifyIndex: 2,
    });
    assert.deepEqual(parseEntryFile('-', Buffer.from(text)), {
      kind: 'service-defaults',
      name: 'web',
      protocol: 'grpc',
      meta: { team: 'a' },
    });
  });

  it('config get prints kind and name, then the fields in the documented order, list items by name first', () => {
    const text = formatEntry({
      kind: 'service-defaults',
      name: 'web',
      // As stored: canonical, keys sorted.
      spec: {
        connectTimeoutMs: 5000,
        meta: { team: 'a' },
        protocol: 'http',
        upstreamConfig: { overrides: [{ limits: { maxConnections: 5 }, name: 'api' }] },
      },
      createIndex: 1,
      modifyIndex: 2,
    });
    assert.deepEqual(text.split('\n'), [
      '# service-defaults/web: created at index 1, modified at index 2',
      'kind: service-defaults',
      'name: web',
      'protocol: http',
      'connectTimeoutMs: 5000',
      'meta:',
      '  team: a',
      'upstreamConfig:',
      '  overrides:',
      '    - name: api',
      '      limits:',
      '        maxConnections: 5',
    ]);
    const intentions = formatEntry({
      kind: 'service-intentions',
      name: 'api',
      spec: { sources: [{ action: 'allow', description: 'why', name: 'web' }], zNewField: 1 },
      createIndex: 1,
      modifyIndex: 1,
    });
    assert.match(
      intentions,
      /^sources:\n {2}- name: web\n {4}action: allow\n {4}description: why\nzNewField: 1$/m,
    );
  });

  it("the field order is the order of each kind's table in docs/configuration-entries.md", () => {
    const docs = readFileSync(new URL('../../../../docs/configuration-entries.md', import.meta.url), 'utf8');
    assert.deepEqual(Object.keys(ENTRY_FIELD_ORDER).sort(), [...KIND_NAMES]);
    for (const kind of KIND_NAMES) {
      if (kind === 'ca-roots') continue; // described in prose, in this order
      const section = docs.split(`\n### \`${kind}\`\n`)[1]?.split(/\n#{2,4} /)[0] ?? '';
      const documented: string[] = [];
      for (const row of section.split('\n').filter((l) => l.startsWith('| `'))) {
        // A row's first cell names one field (a second name in it continues the first's path).
        const f = /`([^`]+)`/.exec(row.split('|')[1] ?? '')?.[1] ?? '';
        const top = f.split(/[.[]/)[0] as string;
        if (/^[a-zA-Z]+$/.test(top) && !documented.includes(top)) documented.push(top);
      }
      // The first table lists the kind's own fields; later tables in the section describe nested ones.
      const own = ENTRY_FIELD_ORDER[kind] ?? [];
      assert.deepEqual(documented.slice(0, own.length), own, kind);
    }
  });
});
