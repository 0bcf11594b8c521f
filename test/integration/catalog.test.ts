// Real agents on 127.0.0.1: a service registered on one agent with an HTTP check is seen healthy
// by every agent; stopping the checked server turns it critical everywhere and restarting it
// brings it back; DNS answers only healthy instances (asked with dig); killing the hosting agent
// marks its instances critical everywhere; registrations survive a restart; bad definitions are
// refused with the field and change nothing; --config-dir files reload on `mesh reload`.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type AgentProc, freePort, LocalCluster, waitFor } from '../../cluster-sim/launcher.js';
import type { InstanceView, LocalServiceView } from '../../src/api/types.js';
import { meshCli as mesh } from '../helpers/mesh-fixtures.js';

const run = promisify(execFile);
const hasDig = spawnSync('dig', ['-v'], { stdio: 'ignore' }).status === 0;

async function instances(a: AgentProc, name: string): Promise<InstanceView[]> {
  const r = await mesh(a, 'catalog', 'instances', name, '--json');
  if (r.code !== 0) return [];
  return JSON.parse(r.stdout) as InstanceView[];
}

/** True when every agent in `among` sees the instance `id` of `name` with `health`. */
async function allSee(among: AgentProc[], name: string, id: string, health: string): Promise<boolean> {
  for (const a of among) {
    const inst = (await instances(a, name)).find((i) => i.id === id);
    if (inst?.health !== health) return false;
  }
  return true;
}

async function dnsPort(a: AgentProc): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/self`);
  const self = (await res.json()) as { dns: string };
  return Number(self.dns.split(':').pop());
}

/** An HTTP service whose health endpoint can be stopped and started on the same port. */
class CheckedServer {
  private server: Server | undefined;
  constructor(readonly port: number) {}
  async start(): Promise<void> {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

describe('service catalog with real agents', { timeout: 300_000 }, () => {
  const cluster = new LocalCluster();
  let web: CheckedServer;
  let a: AgentProc;
  let b: AgentProc;
  let c: AgentProc;
  let configDir: string;
  /** Its check's port, chosen once: registering again replaces the instance with the same one. */
  let webBPort: number | undefined;

  /** A second instance of web on B whose check can never pass (nothing listens on its port). */
  async function registerWebB(): Promise<void> {
    webBPort ??= await freePort();
    const body = {
      name: 'web',
      id: 'web-b',
      port: webBPort,
      check: { tcp: `127.0.0.1:${webBPort}`, interval: '500ms' },
    };
    const res = await fetch(`http://127.0.0.1:${b.httpPort}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, await res.text());
  }

  before(async () => {
    configDir = join(cluster.root, 'services-c');
    mkdirSync(configDir);
    writeFileSync(
      join(configDir, 'cache.yaml'),
      'service:\n  name: cache\n  port: 6379\n  tags: [primary]\n  check:\n    ttl: 10m\n    status: passing\n',
    );
    a = await cluster.add(['--bootstrap']);
    b = await cluster.add();
    c = await cluster.add(['--config-dir', configDir]);
    for (const x of cluster.agents) await cluster.ready(x);
    assert.ok(await waitFor(() => cluster.allSeeAlive(3), 20_000, 100), 'cluster formed');
    web = new CheckedServer(await freePort());
    await web.start();
  });

  after(async () => {
    await web?.stop();
    await cluster.stop();
  });

  it('a service registered on A with an HTTP check is healthy on B and C', async () => {
    const file = join(cluster.root, 'web.json');
    writeFileSync(
      file,
      JSON.stringify({
        service: {
          name: 'web',
          id: 'web-a',
          port: web.port,
          tags: ['v1'],
          meta: { version: '1.4.2' },
          protocol: 'http',
          check: { http: `http://127.0.0.1:${web.port}/health`, interval: '500ms', timeout: '400ms' },
        },
      }),
    );
    const r = await mesh(a, 'services', 'register', file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Registered service web \(id web-a\)/);
    assert.ok(
      await waitFor(() => allSee([a, b, c], 'web', 'web-a', 'passing'), 20_000, 200),
      'healthy everywhere',
    );
    const seen = (await instances(b, 'web'))[0]!;
    assert.equal(seen.node, a.name);
    assert.equal(seen.port, web.port);
    assert.deepEqual(seen.tags, ['v1']);
    assert.equal(seen.meta.version, '1.4.2');
    assert.equal(seen.protocol, 'http');
    const list = await mesh(b, 'catalog', 'services');
    assert.match(list.stdout, /^web\s+http\s+1\s+1\s+0\s+0\s+v1$/m);
  });

  it('stopping the checked server turns it critical everywhere; restarting brings it back', async () => {
    await web.stop();
    assert.ok(
      await waitFor(() => allSee([a, b, c], 'web', 'web-a', 'critical'), 20_000, 200),
      'critical everywhere',
    );
    const inst = (await instances(c, 'web'))[0]!;
    const httpCheck = inst.checks.find((x) => x.type === 'http')!;
    assert.equal(httpCheck.status, 'critical');
    assert.match(httpCheck.output, /ECONNREFUSED|refused/i);
    const healthy = await mesh(c, 'catalog', 'instances', 'web', '--healthy', '--json');
    assert.deepEqual(JSON.parse(healthy.stdout), [], '--healthy leaves it out');
    await web.start();
    assert.ok(
      await waitFor(() => allSee([a, b, c], 'web', 'web-a', 'passing'), 20_000, 200),
      'passing again',
    );
  });

  it('DNS answers the healthy instances only (dig)', {
    skip: hasDig ? false : 'dig not installed (apt-get install dnsutils)',
  }, async () => {
    await registerWebB();
    assert.ok(await waitFor(() => allSee([c], 'web', 'web-b', 'critical'), 20_000, 200));
    const port = await dnsPort(c);
    const srv = await run('dig', ['@127.0.0.1', '-p', String(port), 'web.service.mesh', 'SRV', '+short']);
    const lines = srv.stdout.trim().split('\n');
    assert.equal(lines.length, 1, srv.stdout);
    assert.match(lines[0]!, new RegExp(`^1 1 ${web.port} \\S+\\.$`));
    const aRec = await run('dig', [
      '@127.0.0.1',
      '-p',
      String(port),
      'v1.web.service.mesh',
      'A',
      '+short',
      '+tcp',
    ]);
    assert.equal(aRec.stdout.trim(), '127.0.0.1');
    const missing = await run('dig', ['@127.0.0.1', '-p', String(port), 'nothing.service.mesh', 'A']);
    assert.match(missing.stdout, /status: NXDOMAIN/);
    const node = await run('dig', ['@127.0.0.1', '-p', String(port), `${a.name}.node.mesh`, 'A', '+short']);
    assert.equal(node.stdout.trim(), '127.0.0.1');
  });

  it('a TTL check follows `mesh check`; a flapping check loses nothing', async () => {
    // cache comes from C's --config-dir, with a TTL check that starts passing.
    assert.ok(await waitFor(() => allSee([a, b], 'cache', 'cache', 'passing'), 20_000, 200));
    for (let i = 0; i < 10; i++) {
      const verb = i % 2 === 0 ? 'fail' : 'pass';
      const r = await mesh(c, 'check', verb, 'service:cache', '--note', `flip ${i}`);
      assert.equal(r.code, 0, r.stderr);
    }
    const fail = await mesh(c, 'check', 'warn', 'service:cache', '--note', 'disk 91% full');
    assert.match(fail.stdout, /Check service:cache is warning/);
    assert.ok(
      await waitFor(() => allSee([a, b], 'cache', 'cache', 'warning'), 20_000, 200),
      'warning everywhere',
    );
    const seen = (await instances(a, 'cache'))[0]!;
    assert.equal(seen.checks.find((x) => x.id === 'service:cache')?.output, 'disk 91% full');
    const unknown = await mesh(c, 'check', 'pass', 'no-such-check');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no check with id "no-such-check"/);
    const list = JSON.parse((await mesh(c, 'services', 'list', '--json')).stdout) as LocalServiceView[];
    assert.deepEqual(
      list.map((s) => s.id),
      ['cache'],
    );
  });

  it('bad definitions are refused with the field and the reason; nothing is lost', async () => {
    const bad = [
      [{ name: 'db' }, /port: is required/],
      [{ name: 'db', port: 5432, protocol: 'udp' }, /protocol: must be one of tcp, http, http2, grpc/],
      [{ name: 'db', port: 5432, check: { http: 'http://x/', interval: 'soon' } }, /check\.interval/],
      [
        { name: 'db', port: 5432, check: { args: ['/bin/true'] } },
        /script checks are disabled.*--enable-script-checks/,
      ],
      [
        { name: 'web', id: 'web-a', port: 1, checks: [{ ttl: '1s' }, { ttl: '1s', id: 'service:web-a:1' }] },
        /duplicate check id/,
      ],
    ] as const;
    for (const [def, message] of bad) {
      const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/service/register`, {
        method: 'PUT',
        body: JSON.stringify(def),
      });
      assert.equal(res.status, 400, JSON.stringify(def));
      const body = (await res.json()) as { error: { message: string } };
      assert.match(body.error.message, message);
    }
    const notJson = await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/service/register`, {
      method: 'PUT',
      body: '{"name": ',
    });
    assert.equal(notJson.status, 400);
    const taken = await fetch(`http://127.0.0.1:${c.httpPort}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ name: 'cache', port: 1 }),
    });
    assert.equal(taken.status, 409, 'an id a --config-dir file defines');
    // One upstream port, one caller and destination: another service may not listen on it.
    const ups = (id: string, name: string, service: string) =>
      fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/service/register`, {
        method: 'PUT',
        body: JSON.stringify({ id, name, port: 1, upstreams: [{ service, localPort: 19191 }] }),
      });
    assert.equal((await ups('caller-1', 'caller', 'api')).status, 200);
    assert.equal((await ups('caller-2', 'caller', 'api')).status, 200, 'an instance of the same caller');
    const clash = await ups('other-1', 'other', 'api');
    assert.equal(clash.status, 409);
    assert.match(
      ((await clash.json()) as { error: { message: string } }).error.message,
      /localPort 19191 is used by service "caller-1" \(upstream "api"\) and by service "other-1"/,
    );
    assert.equal((await ups('caller-3', 'caller', 'db')).status, 409, 'the same caller, another destination');
    for (const id of ['caller-1', 'caller-2'])
      assert.equal((await mesh(a, 'services', 'deregister', id)).code, 0);
    for (const query of ['tag=a&tag=b', 'wait=11m&index=1', 'colour=red']) {
      const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/health/service/web?${query}`);
      assert.equal(res.status, 400, query);
    }
    const fileOwned = await mesh(c, 'services', 'deregister', 'cache');
    assert.equal(fileOwned.code, 1);
    assert.match(fileOwned.stderr, /defined in .*cache\.yaml/);
    const list = JSON.parse((await mesh(a, 'services', 'list', '--json')).stdout) as LocalServiceView[];
    assert.deepEqual(
      list.map((s) => s.id),
      ['web-a'],
      'A still has exactly its service',
    );
  });

  it('--config-dir changes apply on `mesh reload`; a bad file changes nothing', async () => {
    writeFileSync(join(configDir, 'queue.json'), JSON.stringify({ name: 'queue', port: 5672 }));
    const r = await mesh(c, 'reload');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 service\(s\) from 2 file\(s\)/);
    assert.ok(await waitFor(async () => (await instances(a, 'queue')).length === 1, 20_000, 200));
    writeFileSync(join(configDir, 'broken.json'), JSON.stringify({ name: 'broken', port: 'eighty' }));
    const bad = await mesh(c, 'reload');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /broken\.json: port: must be a port number/);
    const list = JSON.parse((await mesh(c, 'services', 'list', '--json')).stdout) as LocalServiceView[];
    assert.deepEqual(
      list.map((s) => s.id),
      ['cache', 'queue'],
    );
  });

  it('a service-defaults entry through Raft sets the protocol of a service everywhere', async () => {
    const file = join(cluster.root, 'cache-defaults.yaml');
    writeFileSync(file, 'kind: service-defaults\nname: cache\nprotocol: http2\n');
    const r = await mesh(a, 'config', 'put', file);
    assert.equal(r.code, 0, r.stderr);
    const protocolOn = async (x: AgentProc): Promise<string | undefined> =>
      (await instances(x, 'cache'))[0]?.protocol;
    assert.ok(
      await waitFor(
        async () => (await protocolOn(b)) === 'http2' && (await protocolOn(c)) === 'http2',
        20_000,
        200,
      ),
      'protocol from service-defaults on B and C',
    );
    const own = (await instances(b, 'web')).find((i) => i.id === 'web-a');
    assert.equal(own?.protocol, 'http', "a definition's own protocol wins");
  });

  it('a blocking query returns when the service changes', async () => {
    const first = await fetch(`http://127.0.0.1:${b.httpPort}/v1/health/service/web`);
    const index = Number(first.headers.get('x-mesh-index'));
    assert.ok(index > 0);
    const started = performance.now();
    const blocked = fetch(`http://127.0.0.1:${b.httpPort}/v1/health/service/web?index=${index}&wait=60s`);
    await web.stop();
    const res = await blocked;
    assert.ok(Number(res.headers.get('x-mesh-index')) > index);
    assert.ok(performance.now() - started < 30_000, 'woke on the change, not at the end of the wait');
    await web.start();
  });

  it('an API registration survives a restart of its agent', async () => {
    // The DNS test registered it, unless it was skipped (no dig).
    await registerWebB();
    cluster.kill(b);
    await cluster.restart(b);
    await cluster.ready(b);
    const list = JSON.parse((await mesh(b, 'services', 'list', '--json')).stdout) as LocalServiceView[];
    assert.deepEqual(
      list.map((s) => s.id),
      ['web-b'],
    );
    assert.ok(
      await waitFor(async () => (await instances(c, 'web')).some((i) => i.id === 'web-b'), 20_000, 200),
    );
  });

  it('killing the hosting agent marks its instances critical everywhere', async () => {
    assert.ok(await waitFor(() => allSee([b, c], 'web', 'web-a', 'passing'), 20_000, 200));
    cluster.kill(a);
    assert.ok(
      await waitFor(() => allSee([b, c], 'web', 'web-a', 'critical'), 30_000, 200),
      'critical on B and C',
    );
    const inst = (await instances(b, 'web')).find((i) => i.id === 'web-a')!;
    assert.equal(inst.checks[0]?.id, 'mesh-agent');
    assert.equal(inst.checks[0]?.status, 'critical');
    assert.equal(inst.nodeStatus, 'failed');
  });
});
