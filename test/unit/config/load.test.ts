import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { MeshError } from '../../../src/api/types.js';
import { type ConfigSystem, loadAgentConfig } from '../../../src/config/load.js';

const keyBase64 = Buffer.alloc(32, 7).toString('base64');
const keyHex = Buffer.alloc(32, 7).toString('hex');

function fakeSystem(ips: string[] = ['192.0.2.10']): ConfigSystem & { tempDirs: number } {
  const sys = {
    tempDirs: 0,
    hostname: () => 'test-host',
    externalIPv4: () => ips,
    makeTempDir: async () => {
      sys.tempDirs++;
      return '/tmp/mesh-dev-fake';
    },
  };
  return sys;
}

const noEnv = {};

function load(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = noEnv, sys = fakeSystem()) {
  return loadAgentConfig(flags, env, sys);
}

// Every config file goes under one directory, removed when this file's tests end: a directory a
// call left /tmp with over a thousand of them after a few dozen runs.
let configDir: Promise<string> | undefined;
let configFiles = 0;
after(async () => {
  if (configDir !== undefined) await rm(await configDir, { recursive: true, force: true });
});

async function writeConfig(name: string, text: string): Promise<string> {
  configDir ??= mkdtemp(join(tmpdir(), 'mesh-config-test-'));
  // A directory per file, so two files of one name in a test do not overwrite each other.
  const dir = join(await configDir, String(configFiles++));
  await mkdir(dir);
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Asserts a bad_request MeshError whose message contains every fragment. */
async function rejectsWith(p: Promise<unknown>, ...fragments: string[]): Promise<MeshError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MeshError, `expected MeshError, got ${String(err)}`);
    assert.equal(err.code, 'bad_request');
    for (const f of fragments)
      assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} lacks ${f}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('loadAgentConfig defaults', () => {
  it('fills every default around a data dir', async () => {
    const c = await load({ dataDir: '/var/lib/mesh' });
    assert.deepEqual(c, {
      nodeName: 'test-host',
      dataDir: '/var/lib/mesh',
      dataDirIsTemporary: false,
      bind: { host: '0.0.0.0', port: 7400 },
      advertise: { host: '192.0.2.10', port: 7400 },
      http: { host: '127.0.0.1', port: 7500 },
      join: [],
      retryJoinIntervalMs: 500,
      retryJoinMaxIntervalMs: 30_000,
      retryJoinMaxAttempts: 0,
      clusterKey: undefined,
      zone: '',
      logLevel: 'info',
      logPretty: false,
      dev: false,
      leaveTimeoutMs: 3000,
      bootstrap: false,
      bootstrapExpect: 0,
      voters: 3,
      configDir: undefined,
      enableScriptChecks: false,
      dns: { host: '127.0.0.1', port: 8600 },
      inbound: { host: '0.0.0.0', port: 7401 },
      caLeafTtlMs: 72 * 3_600_000,
    });
  });

  it('a dev agent bootstraps raft by itself unless told to wait for others', async () => {
    assert.equal((await load({ dev: true })).bootstrap, true);
    const c = await load({ dev: true, bootstrapExpect: '3' });
    assert.equal(c.bootstrap, false);
    assert.equal(c.bootstrapExpect, 3);
  });

  it('a dev agent told to join joins instead of bootstrapping; explicit --bootstrap still bootstraps', async () => {
    const second = await load({ dev: true, join: ['127.0.0.1:7400'] });
    assert.equal(second.bootstrap, false, 'it would otherwise start a second, separate cluster');
    assert.deepEqual(second.join, ['127.0.0.1:7400']);
    assert.equal((await load({ dev: true, bootstrap: true, join: ['127.0.0.1:7400'] })).bootstrap, true);
  });

  it('refuses --bootstrap with --bootstrap-expect, and an even voter count', async () => {
    await rejectsWith(load({ dataDir: '/d', bootstrap: true, bootstrapExpect: '3' }), 'bootstrap-expect');
    await rejectsWith(load({ dataDir: '/d', voters: '4' }), '--voters', 'odd');
    assert.equal((await load({ dataDir: '/d', voters: '5' })).voters, 5);
    assert.equal((await load({ dataDir: '/d', dns: 'off' })).dns, 'off');
    assert.deepEqual((await load({ dataDir: '/d', dns: '127.0.0.1:0' })).dns, { host: '127.0.0.1', port: 0 });
    await rejectsWith(load({ dataDir: '/d', dns: 'example.com:53' }), '--dns', 'IP address');
    assert.equal((await load({ dataDir: '/d', enableScriptChecks: true })).enableScriptChecks, true);
    assert.equal((await load({ dataDir: '/d', configDir: 'svc' })).configDir, resolve('svc'));
  });

  it('requires a data dir unless --dev, and says why', async () => {
    const err = await rejectsWith(load({}));
    assert.equal(
      err.message,
      '--data-dir is required (where the agent keeps its identity and state); use --dev for a throwaway agent',
    );
  });

  it('--dev: loopback, temporary data dir, pretty logs', async () => {
    const sys = fakeSystem();
    const c = await load({ dev: true }, noEnv, sys);
    assert.deepEqual(c.bind, { host: '127.0.0.1', port: 7400 });
    assert.deepEqual(c.advertise, { host: '127.0.0.1', port: 7400 });
    assert.deepEqual(c.http, { host: '127.0.0.1', port: 7500 });
    assert.equal(c.dataDir, '/tmp/mesh-dev-fake');
    assert.equal(c.dataDirIsTemporary, true);
    assert.equal(c.logPretty, true);
    assert.equal(c.logLevel, 'info');
    assert.equal(sys.tempDirs, 1);
  });

  it('--dev with --data-dir keeps the given directory', async () => {
    const sys = fakeSystem();
    const c = await load({ dev: true, dataDir: '/srv/mesh' }, noEnv, sys);
    assert.equal(c.dataDir, '/srv/mesh');
    assert.equal(c.dataDirIsTemporary, false);
    assert.equal(sys.tempDirs, 0);
  });

  it('makes no temporary directory when the rest of the config is bad', async () => {
    const sys = fakeSystem();
    await rejectsWith(load({ dev: true, bind: 'nope' }, noEnv, sys), '--bind');
    assert.equal(sys.tempDirs, 0);
  });

  it('advertise is the bind address when bind is concrete', async () => {
    const c = await load({ dataDir: '/d', bind: '10.1.2.3:7000' });
    assert.deepEqual(c.advertise, { host: '10.1.2.3', port: 7000 });
  });

  it('a wildcard bind with no external IPv4 asks for --advertise', async () => {
    await rejectsWith(load({ dataDir: '/d' }, noEnv, fakeSystem([])), '--advertise');
    const c = await load({ dataDir: '/d', advertise: 'node1.example.com:7400' }, noEnv, fakeSystem([]));
    assert.deepEqual(c.advertise, { host: 'node1.example.com', port: 7400 });
  });

  it('rejects an unspecified advertise address', async () => {
    await rejectsWith(load({ dataDir: '/d', advertise: '0.0.0.0:7400' }), '--advertise', 'dial');
  });
});

describe('loadAgentConfig precedence and files', () => {
  it('flags override the file, the file overrides defaults', async () => {
    const path = await writeConfig(
      'mesh.yaml',
      'data-dir: /from/file\nbind: 10.0.0.5:7401\nhttp: 127.0.0.1:7600\nzone: eu-1\nlog-level: debug\n',
    );
    const c = await load({ config: path, bind: '10.0.0.6:7402', logLevel: 'warn' });
    assert.equal(c.dataDir, '/from/file');
    assert.deepEqual(c.bind, { host: '10.0.0.6', port: 7402 });
    assert.deepEqual(c.http, { host: '127.0.0.1', port: 7600 });
    assert.equal(c.zone, 'eu-1');
    assert.equal(c.logLevel, 'warn');
    assert.equal(c.leaveTimeoutMs, 3000);
  });

  it('reads JSON, YAML, and files without a known extension', async () => {
    const json = await writeConfig(
      'mesh.json',
      JSON.stringify({
        'data-dir': '/d',
        join: ['10.0.0.1:7400', '/ip4/10.0.0.2/tcp/7400'],
        'leave-timeout': 1500,
      }),
    );
    const yaml = await writeConfig(
      'mesh.yml',
      'data-dir: /d\njoin:\n  - 10.0.0.1:7400\n  - /ip4/10.0.0.2/tcp/7400\nleave-timeout: 1.5s\n',
    );
    const other = await writeConfig('mesh.conf', 'data-dir: /d\njoin: seed.example.com:7400\n');
    const otherJson = await writeConfig('mesh.conf', '{"data-dir": "/d", "dev": true}');
    for (const path of [json, yaml]) {
      const c = await load({ config: path });
      assert.deepEqual(c.join, ['10.0.0.1:7400', '/ip4/10.0.0.2/tcp/7400']);
      assert.equal(c.leaveTimeoutMs, 1500);
    }
    assert.deepEqual((await load({ config: other })).join, ['seed.example.com:7400']);
    assert.equal((await load({ config: otherJson })).dev, true);
  });

  it('names a relative config path the same, absolute, in every message about the file', async () => {
    const path = await writeConfig('rel.yaml', 'zone: [\n');
    const rel = relative(process.cwd(), path);
    await rejectsWith(load({ config: rel }), `config file ${path}:2:1: not valid YAML`);
    const field = await writeConfig('relf.yaml', 'voters: x\n');
    await rejectsWith(load({ config: relative(process.cwd(), field) }), `config file ${field}: "voters"`);
  });

  it('--config -: says the agent does not read standard input, not "no such file"', async () => {
    const err = await rejectsWith(load({ config: '-' }));
    assert.equal(
      err.message,
      "--config: the agent does not read its config from standard input; give the file's path",
    );
  });

  it('an empty YAML file sets nothing', async () => {
    const path = await writeConfig('empty.yaml', '');
    assert.equal((await load({ config: path, dataDir: '/d' })).nodeName, 'test-host');
  });

  it('resolves a relative data-dir in a file against the file', async () => {
    const path = await writeConfig('mesh.yaml', 'data-dir: state\n');
    const c = await load({ config: path });
    assert.equal(c.dataDir, join(path, '..', 'state'));
  });

  it('rejects an unknown key, naming the file and the key, with a suggestion', async () => {
    const path = await writeConfig('mesh.yaml', 'data-dir: /d\ndataDir: /e\n');
    const err = await rejectsWith(
      load({ config: path }),
      `config file ${path}`,
      '"dataDir"',
      'did you mean "data-dir"',
    );
    assert.match(err.message, /unknown key/);
    const path2 = await writeConfig('mesh.yaml', 'colour: blue\n');
    await rejectsWith(load({ config: path2 }), '"colour"', 'known keys');
  });

  it('rejects a bad host:port, naming the file and the key', async () => {
    const path = await writeConfig('mesh.yaml', 'data-dir: /d\nbind: 10.0.0.1\n');
    const err = await rejectsWith(load({ config: path }));
    assert.ok(
      err.message.startsWith(`config file ${path}: "bind": expected HOST:PORT, got "10.0.0.1"`),
      err.message,
    );
  });

  it('reads a quoted number or boolean in a file as the bare one, for every such field', async () => {
    const yaml = await writeConfig(
      'q.yaml',
      'data-dir: /d\nvoters: "5"\nbootstrap-expect: "3"\nretry-join-max-attempts: "7"\n' +
        'leave-timeout: "1500"\nenable-script-checks: "true"\ndev: "false"\n',
    );
    const json = await writeConfig(
      'q.json',
      '{"data-dir": "/d", "voters": "5", "bootstrap-expect": "3", "retry-join-max-attempts": "7", ' +
        '"leave-timeout": "1500", "enable-script-checks": "true", "dev": "false"}',
    );
    for (const path of [yaml, json]) {
      const c = await load({ config: path });
      assert.equal(c.voters, 5);
      assert.equal(c.bootstrapExpect, 3);
      assert.equal(c.retryJoinMaxAttempts, 7);
      assert.equal(c.leaveTimeoutMs, 1500);
      assert.equal(c.enableScriptChecks, true);
      assert.equal(c.dev, false);
    }
  });

  it('says a number is expected, or the allowed range, naming the file and the key', async () => {
    const words = await writeConfig('w.yaml', 'data-dir: /d\nvoters: three\n');
    const err = await rejectsWith(load({ config: words }));
    assert.equal(err.message, `config file ${words}: "voters": expected a whole number, got "three"`);
    const even = await writeConfig('e.yaml', 'data-dir: /d\nvoters: "4"\n');
    await rejectsWith(
      load({ config: even }),
      `config file ${even}: "voters": must be an odd number from 1 to 7 (1, 3, 5 or 7), got "4"`,
    );
    await rejectsWith(load({ dataDir: '/d', voters: '9' }), '--voters: must be an odd number from 1 to 7');
    await rejectsWith(
      load({ dataDir: '/d', bootstrapExpect: '10' }),
      '--bootstrap-expect: must be from 1 to 9, got "10"',
    );
    const neg = await writeConfig('n.json', '{"data-dir": "/d", "retry-join-max-attempts": -1}');
    await rejectsWith(
      load({ config: neg }),
      `config file ${neg}: "retry-join-max-attempts": must be from 0 to 1000000, got number -1`,
    );
    await rejectsWith(
      load({ dataDir: '/d', retryJoinMaxAttempts: '2.5' }),
      'expected a whole number, got "2.5"',
    );
  });

  it('rejects wrong types in a file', async () => {
    const dev = await writeConfig('b.yaml', 'dev: "yes"\n');
    await rejectsWith(load({ config: dev }), '"dev"', 'true or false');
    const bind = await writeConfig('c.yaml', 'bind: 7400\n');
    await rejectsWith(load({ config: bind }), '"bind"', 'HOST:PORT');
    const join = await writeConfig('d.yaml', 'join:\n  - 10.0.0.1:7400\n  - nope\n');
    await rejectsWith(load({ config: join }), '"join"[1]', '"nope"');
  });

  it('rejects a bad duration, naming the file and the key', async () => {
    const path = await writeConfig('mesh.yaml', 'data-dir: /d\nretry-join-interval: 5 minutes\n');
    await rejectsWith(load({ config: path }), `config file ${path}: "retry-join-interval"`, '"5 minutes"');
    await rejectsWith(load({ dataDir: '/d', leaveTimeout: '-1s' }), '--leave-timeout');
  });

  it('reports an out-of-range duration as a range error with the allowed range', async () => {
    const neg = await writeConfig('neg.yaml', 'data-dir: /d\nleave-timeout: -5s\n');
    const err = await rejectsWith(load({ config: neg }));
    assert.equal(err.message, `config file ${neg}: "leave-timeout": must be from 0ms to 24h, got "-5s"`);
    await rejectsWith(
      load({ dataDir: '/d', leaveTimeout: '25h' }),
      '--leave-timeout: must be from 0ms to 24h, got "25h"',
    );
    const ttl = await writeConfig('ttl.yaml', 'data-dir: /d\nca-leaf-ttl: 10s\n');
    await rejectsWith(
      load({ config: ttl }),
      `config file ${ttl}: "ca-leaf-ttl": must be from 1m to 720h, got "10s"`,
    );
    await rejectsWith(load({ dataDir: '/d', caLeafTtl: '721h' }), '--ca-leaf-ttl: must be from 1m to 720h');
    await rejectsWith(
      load({ dataDir: '/d', retryJoinMaxInterval: '48h' }),
      '--retry-join-max-interval: must be from 1ms to 24h, got "48h"',
    );
    assert.equal((await load({ dataDir: '/d', leaveTimeout: '24h' })).leaveTimeoutMs, 24 * 3_600_000);
  });

  it('rejects a zero retry interval, naming the file and the key', async () => {
    const zero = await writeConfig('zero.yaml', 'data-dir: /d\nretry-join-interval: 0\n');
    const err = await rejectsWith(load({ config: zero }));
    assert.equal(
      err.message,
      `config file ${zero}: "retry-join-interval": must be from 1ms to 24h, got number 0 (a zero wait is a busy loop)`,
    );
    await rejectsWith(
      load({ dataDir: '/d', retryJoinInterval: '0s' }),
      '--retry-join-interval: must be from 1ms',
    );
  });

  it('rejects a retry interval longer than its maximum, naming where each was set', async () => {
    const msg = async (flags: Record<string, unknown>) => (await rejectsWith(load(flags))).message;
    assert.equal(
      await msg({ dataDir: '/d', retryJoinInterval: '1m', retryJoinMaxInterval: '10s' }),
      '--retry-join-max-interval: must not be less than --retry-join-interval (1m), got 10s',
    );
    const both = await writeConfig(
      'both.yaml',
      'data-dir: /d\nretry-join-interval: 1m\nretry-join-max-interval: 10s\n',
    );
    assert.equal(
      await msg({ config: both }),
      `config file ${both}: "retry-join-max-interval": must not be less than "retry-join-interval" (1m), got 10s`,
    );
    const one = await writeConfig('one.yaml', 'data-dir: /d\nretry-join-interval: 1m\n');
    assert.equal(
      await msg({ config: one }),
      `config file ${one}: "retry-join-interval": must not be more than retry-join-max-interval (30s, the default), got 1m`,
    );
    assert.equal(
      await msg({ config: one, retryJoinMaxInterval: '10s' }),
      `--retry-join-max-interval: must not be less than "retry-join-interval" (1m, in config file ${one}), got 10s`,
    );
  });

  it('names the file in a conflict between two settings, and in the advertise check', async () => {
    const path = await writeConfig('b.yaml', 'data-dir: /d\nbootstrap: true\nbootstrap-expect: 3\n');
    await rejectsWith(
      load({ config: path }),
      `config file ${path}: "bootstrap" and "bootstrap-expect": give one or the other, not both`,
    );
    const half = await writeConfig('h.yaml', 'data-dir: /d\nbootstrap-expect: 3\n');
    await rejectsWith(
      load({ config: half, bootstrap: true }),
      `--bootstrap and "bootstrap-expect" (in config file ${half}): give one or the other, not both`,
    );
    const wild = await writeConfig('w.yaml', 'data-dir: /d\nbind: 0.0.0.0:7400\n');
    await rejectsWith(
      load({ config: wild }, noEnv, fakeSystem([])),
      `config file ${wild}: "bind": 0.0.0.0:7400 is every interface, and this host has no non-loopback IPv4`,
      `set "advertise" in config file ${wild}`,
    );
  });

  it('reports unreadable and unparsable files', async () => {
    await rejectsWith(
      load({ config: '/nonexistent/mesh.yaml' }),
      'config file /nonexistent/mesh.yaml',
      'no such file',
    );
    const bad = await writeConfig('bad.json', '{"data-dir": ');
    await rejectsWith(load({ config: bad }), `config file ${bad}`, 'not valid JSON');
    const dup = await writeConfig('dup.yaml', 'data-dir: /d\nzone: a\nzone: b\n');
    await rejectsWith(
      load({ config: dup }),
      `config file ${dup}:3:1: not valid YAML: Map keys must be unique`,
    );
    const indent = await writeConfig('indent.yml', 'data-dir: /d\nbind: [\n  x: 1\n');
    await rejectsWith(load({ config: indent }), `config file ${indent}:4:1: not valid YAML: Flow sequence`);
    // V8 names no position for an unexpected token; the loader finds it (here the "]" after a comma).
    const comma = await writeConfig('comma.json', '{"data-dir": "/d",\n "join": ["a:1",]}');
    await rejectsWith(load({ config: comma }), `config file ${comma}:2:17: not valid JSON: Unexpected token`);
    const cut = await writeConfig('cut.json', '{"data-dir": "/d",\n');
    await rejectsWith(load({ config: cut }), `config file ${cut}:2:1: not valid JSON`);
    const list = await writeConfig('list.yaml', '- a\n- b\n');
    await rejectsWith(load({ config: list }), 'mapping');
  });

  it('parses numbers given as flag strings', async () => {
    const c = await load({ dataDir: '/d', retryJoinMaxAttempts: '5', retryJoinInterval: '250' });
    assert.equal(c.retryJoinMaxAttempts, 5);
    assert.equal(c.retryJoinIntervalMs, 250);
    await rejectsWith(load({ dataDir: '/d', retryJoinMaxAttempts: 'five' }), '--retry-join-max-attempts');
  });

  it('checks names and log levels', async () => {
    await rejectsWith(load({ dataDir: '/d', nodeName: 'has space' }), '--node-name');
    await rejectsWith(load({ dataDir: '/d', logLevel: 'loud' }), '--log-level', 'debug');
  });
});

describe('cluster key', () => {
  const expected = new Uint8Array(32).fill(7);

  it('accepts base64 and hex', async () => {
    assert.deepEqual((await load({ dataDir: '/d', clusterKey: keyBase64 })).clusterKey, expected);
    assert.deepEqual((await load({ dataDir: '/d', clusterKey: keyHex })).clusterKey, expected);
  });

  it('takes MESH_CLUSTER_KEY from the environment; the flag wins', async () => {
    assert.deepEqual((await load({ dataDir: '/d' }, { MESH_CLUSTER_KEY: keyHex })).clusterKey, expected);
    const other = Buffer.alloc(32, 9).toString('base64');
    const c = await load({ dataDir: '/d', clusterKey: other }, { MESH_CLUSTER_KEY: keyHex });
    assert.deepEqual(c.clusterKey, new Uint8Array(32).fill(9));
  });

  it('rejects a bad key without echoing it, and says how to make one', async () => {
    const secret = 'c2hvcnQta2V5';
    const err = await rejectsWith(
      load({ dataDir: '/d', clusterKey: secret }),
      '--cluster-key',
      'mesh keygen',
    );
    assert.ok(!err.message.includes(secret));
    const path = await writeConfig('mesh.yaml', `data-dir: /d\ncluster-key: ${keyHex.slice(2)}\n`);
    await rejectsWith(load({ config: path }), `config file ${path}: "cluster-key"`, 'mesh keygen');
    await rejectsWith(load({ dataDir: '/d' }, { MESH_CLUSTER_KEY: 'x' }), 'MESH_CLUSTER_KEY');
  });
});
