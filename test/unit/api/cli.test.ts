import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { type HttpServer, startHttpServer } from '../../../src/api/http-server.js';
import { formatInfo } from '../../../src/cli/info.js';
import { main } from '../../../src/cli/main.js';
import { formatMembers } from '../../../src/cli/members.js';
import { intentionPutText, limitsText } from '../../../src/cli/mesh.js';
import { formatKeyValues, formatTable } from '../../../src/cli/table.js';
import { findPackageVersion } from '../../../src/version.js';
import { captureIo, mesh, meshToClosedPipe } from '../../helpers/cli.js';
import { FakeAgent, member } from '../../helpers/fake-agent.js';
import { closedPort } from '../../helpers/net.js';

/** dist/test/unit/api/ → the project root, and dist/mesh.mjs (the bundle as shipped). */
const projectRoot = new URL('../../../../', import.meta.url);
const bundle = new URL('dist/mesh.mjs', projectRoot);
const run = promisify(execFile);

describe('mesh --version', () => {
  const { version } = JSON.parse(readFileSync(new URL('package.json', projectRoot), 'utf8')) as {
    version: string;
  };

  it("prints package.json's version from the bundle and from dist/bin/mesh.js", async () => {
    const fromBundle = await run(process.execPath, [bundle.pathname, '--version'], { timeout: 20_000 });
    assert.equal(fromBundle.stdout, `${version}\n`);
    const fromBin = await mesh(['--version']);
    assert.equal(fromBin.stdout, `${version}\n`);
  });

  it('finds the nearest package.json named mesh, skipping others, within 4 directories', () => {
    const root = mkdtempSync(join(tmpdir(), 'mesh-version-'));
    try {
      const deep = join(root, 'a', 'b', 'c');
      mkdirSync(deep, { recursive: true });
      writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'mesh', version: '9.8.7' }));
      writeFileSync(join(root, 'a', 'package.json'), JSON.stringify({ name: 'other', version: '1.0.0' }));
      const from = pathToFileURL(join(deep, 'mesh.mjs'));
      assert.equal(findPackageVersion(from), '9.8.7');
      const tooDeep = join(root, 'a', 'b', 'c', 'd', 'e');
      mkdirSync(tooDeep, { recursive: true });
      assert.equal(findPackageVersion(pathToFileURL(join(tooDeep, 'mesh.mjs'))), 'unknown');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('mesh (process)', () => {
  it('prints a one-line error and exits 1 when no agent answers', async () => {
    const port = await closedPort();
    const r = await mesh(['members', '--http', `127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `Error: no agent answered at http://127.0.0.1:${port} (is \`mesh agent\` running? set --http or MESH_HTTP_ADDR)\n`,
    );
  });

  it('keygen prints a base64 key of 32 bytes', async () => {
    const r = await mesh(['keygen']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
    assert.equal(Buffer.from(r.stdout.trim(), 'base64').length, 32);
  });

  it('exits quietly when nobody reads its output (| head -1)', async () => {
    for (const args of [['keygen'], ['--help']]) {
      assert.deepEqual(await meshToClosedPipe(args), { code: 0, stderr: '' }, args.join(' '));
    }
  });

  it('exits 2 on a usage error', async () => {
    const r = await mesh(['members', '--no-such-flag']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option/);
  });

  it('prints every error with the same prefix, usage errors included', async () => {
    const http = `127.0.0.1:${await closedPort()}`;
    for (const args of [
      ['members', '--json-pretty'],
      ['kv', 'get'],
      ['bogus'],
      ['kv', 'put', 'k', 'v', '--cas', 'x'],
    ]) {
      const r = await mesh(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^Error: [^\n]+\n\(run with --help for usage\)\n$/, args.join(' '));
    }
    const failed = await mesh(['members', '--http', http]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^Error: no agent answered/);
  });

  it('ca roots: --json and --pem together are a usage error naming both', async () => {
    const r = await mesh(['ca', 'roots', '--json', '--pem', '--http', `127.0.0.1:${await closedPort()}`]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "Error: option '--pem' cannot be used with option '--json'\n(run with --help for usage)\n",
    );
  });

  it('agent: a config error is one line and exit 1', async () => {
    const r = await mesh(['agent', '--bind', '10.0.0.1']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^Error: --bind: expected HOST:PORT, got "10.0.0.1"/);
  });
});

describe('mesh (in process, against a fake agent)', () => {
  const agent = new FakeAgent();
  let server: HttpServer;
  let http: string;
  before(async () => {
    server = await startHttpServer({ agent, host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }) });
    http = `127.0.0.1:${server.address.port}`;
  });
  after(() => server.close());

  it('members prints a sorted table, or JSON', async () => {
    const { io, sink } = captureIo();
    assert.equal(await main(['members', '--http', http], sink), 0);
    assert.deepEqual(io.stdout[0]!.split('\n'), [
      'NAME    ADDRESS         STATUS   ZONE',
      'alpha   10.0.0.5:7400   alive    -',
      'mid     10.0.0.3:7400   failed   eu-2',
      'zeta    10.0.0.4:7400   alive    eu-1',
    ]);
    assert.equal(await main(['members', '--json', '--status', 'failed', '--http', http], sink), 0);
    assert.deepEqual(JSON.parse(io.stdout[1]!), [member('mid', 'failed', 'eu-2')]);
  });

  it('a client command exits quietly, with its own status, when nobody reads its output', async () => {
    assert.deepEqual(await meshToClosedPipe(['members', '--http', http]), { code: 0, stderr: '' });
  });

  it('join, info and leave', async () => {
    const { io, sink } = captureIo();
    assert.equal(await main(['join', '10.0.0.9:7400', 'down.example:7400', '--http', http], sink), 0);
    assert.match(io.stdout[0]!, /through 1 of 2/);
    assert.equal(await main(['join', 'down.example:7400', '--http', http], sink), 1);
    assert.deepEqual(io.stderr, ['Error: could not join any of 1 address(es)']);
    assert.equal(await main(['info', '--http', http], sink), 0);
    assert.match(io.stdout[1]!, /^name: +alpha$/m);
    assert.equal(await main(['leave', '--http', http], sink), 0);
  });
});

describe('output formatting', () => {
  it('aligns table columns without trailing spaces', () => {
    const text = formatTable(
      ['NAME', 'STATUS'],
      [
        ['a', 'alive'],
        ['longer-name', 'x'],
      ],
    );
    assert.equal(text, 'NAME          STATUS\na             alive\nlonger-name   x');
  });

  it('sorts members by name', () => {
    const lines = formatMembers([member('b', 'alive'), member('a', 'left', 'z1')]).split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(/\s+/)[0]),
      ['NAME', 'a', 'b'],
    );
    assert.match(lines[1]!, /left +z1$/);
  });

  it('formats key-value lines with lists', () => {
    assert.equal(
      formatKeyValues([
        ['a', 'x'],
        ['long key', ['1', '2']],
        ['e', []],
      ]),
      'a:        x\nlong key: 1\n          2\ne:        -',
    );
    assert.match(formatInfo(new FakeAgent().self()), /^members: +alive=2 suspect=0 failed=1 left=0$/m);
  });

  it("shows an upstream's circuit breakers that apply to its protocol", () => {
    const limits = { maxConnections: 10, maxPendingRequests: 5, maxConcurrentRequests: 20 };
    const up = (protocol: string, l?: typeof limits) => ({
      source: 'web',
      destination: 'api',
      address: '127.0.0.1:9191',
      protocol,
      error: '',
      ...(l !== undefined ? { limits: l } : {}),
    });
    assert.equal(limitsText(up('http', limits)), 'connections 10, pending 5, requests 20');
    assert.equal(limitsText(up('grpc', limits)), 'requests 20');
    assert.equal(limitsText(up('tcp', limits)), 'connections 10');
    assert.equal(limitsText(up('tcp', { maxConcurrentRequests: 20 } as typeof limits)), '-');
    assert.equal(limitsText(up('http')), '-');
  });
});

describe('mesh intention: names are checked before the agent is asked', () => {
  it('a name that is not a service name is a usage error naming the argument, exit 2', async () => {
    const port = await closedPort();
    const http = `127.0.0.1:${port}`;
    for (const [args, argument] of [
      [['allow', 'x y', 'api'], 'source'],
      [['deny', 'web', 'API'], 'destination'],
      [['delete', 'web', 'a_b'], 'destination'],
      [['check', 'my_svc.v1', 'api'], 'source'],
    ] as const) {
      const r = await mesh(['intention', ...args, '--http', http]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const bad = args.find((a) => !/^[a-z0-9*]+$/.test(a));
      assert.match(
        r.stderr,
        new RegExp(
          `value '${bad?.replace('.', '\\.')}' is invalid for argument '${argument}'\\. not a service name: 1 to 63 lower-case letters`,
        ),
      );
      assert.doesNotMatch(
        r.stderr,
        /no agent answered|sources\[|spec\.|rror: name:/,
        'the agent was not asked',
      );
    }
  });

  it('"*" is a name for rules, not for a call: allow and delete take it, check does not', async () => {
    const port = await closedPort();
    const http = `127.0.0.1:${port}`;
    const check = await mesh(['intention', 'check', '*', 'api', '--http', http]);
    assert.equal(check.code, 2);
    assert.match(check.stderr, /invalid for argument 'source'\. a call is made by and to one service/);
    // Past the name check, the command goes on to ask the (absent) agent.
    for (const verb of ['allow', 'delete']) {
      const r = await mesh(['intention', verb, '*', '*', '--http', http]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no agent answered/);
    }
  });

  it('reads older agents, which do not say what changed, without claiming a creation', () => {
    assert.equal(intentionPutText({ index: 3 }, 'web', 'api', 'allow'), 'Written: web => api (allow)');
  });
});

describe('mesh config: a KIND or SERVICE argument is checked before the agent is asked', () => {
  it('an unknown kind is a usage error naming it and listing the kinds, exit 2', async () => {
    const http = `127.0.0.1:${await closedPort()}`;
    for (const args of [
      ['list', 'bogus'],
      ['get', 'bogus', 'x'],
      ['delete', 'bogus', 'x'],
    ]) {
      const r = await mesh(['config', ...args, '--http', http]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(
        r.stderr,
        /value 'bogus' is invalid for argument 'kind'\. Allowed choices are ca-roots, mesh, proxy-defaults, service-defaults, service-intentions, service-resolver, service-router, service-splitter\./,
      );
    }
  });

  it('config chain of a name that is not a service name says so, without the API path, exit 2', async () => {
    const r = await mesh(['config', 'chain', 'Web', '--http', `127.0.0.1:${await closedPort()}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /value 'Web' is invalid for argument 'service'\. not a service name: 1 to 63/);
    assert.doesNotMatch(r.stderr, /discovery-chain/);
  });
});
