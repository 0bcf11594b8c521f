// The data plane when things change under it, on real agents: an instance whose check fails stops
// getting traffic (and gets it back); one that answers 500 while its check passes is ejected by the
// caller's passive health check, and hidden by retries within a budget; saturating the proxy
// neither fails a member nor starts an election (the proxy runs off the agent's main thread);
// `mesh ca rotate`, twice, during traffic fails no request; killing an instance's agent moves its
// traffic to the other instance.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { Agent as HttpAgent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, freePort, LocalCluster, waitFor } from '../../cluster-sim/launcher.js';
import {
  api,
  grpcHello,
  grpcServer,
  inARow,
  meshCli,
  putConfig,
  register,
  type VersionServer,
  versionServer,
} from '../helpers/mesh-fixtures.js';

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 64 });

/** GET through the upstream; the version that answered, or the failure. */
function hit(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: keepAlive, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve(
          res.statusCode === 200
            ? (JSON.parse(body) as { version: string }).version
            : `status ${res.statusCode}: ${body.trim()}`,
        ),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`error: ${err.message}`));
    req.end();
  });
}

/** True once `n` requests in a row were answered by `version`. */
function streak(port: number, version: string, n: number, timeoutMs: number): Promise<boolean> {
  return inARow(() => hit(port), version, n, timeoutMs);
}

async function terms(agents: AgentProc[]): Promise<number[]> {
  return Promise.all(
    agents.map(async (a) => ((await api(a, 'GET', '/v1/raft/status')).json as { term: number }).term),
  );
}

/** Each agent's count of members it declared failed, and of suspicions it raised, since it started. */
async function failureCounts(agents: AgentProc[]): Promise<Array<{ failed: number; suspected: number }>> {
  return Promise.all(
    agents.map(async (a) => {
      const { stats } = (await api(a, 'GET', '/v1/agent/self')).json as {
        stats: { membersFailed: number; suspicionsRaised: number };
      };
      return { failed: stats.membersFailed, suspected: stats.suspicionsRaised };
    }),
  );
}

describe('the data plane through failures and rotations', { timeout: 240_000 }, () => {
  const cluster = new LocalCluster();
  let n01: AgentProc;
  let n02: AgentProc;
  let n03: AgentProc;
  let v1: VersionServer;
  let v2: VersionServer;
  let port = 0;

  before(async () => {
    await cluster.add(['--bootstrap']);
    await cluster.add();
    await cluster.add();
    [n01, n02, n03] = cluster.agents as [AgentProc, AgentProc, AgentProc];
    for (const a of cluster.agents) await cluster.ready(a);
    [v1, v2] = await Promise.all([versionServer('v1'), versionServer('v2')]);
    port = await freePort();
    // Three failures in a row make an instance critical: the saturation test below keeps this
    // process (whose servers answer the checks) so busy that a single check may time out.
    const check = (p: number) => ({
      http: `http://127.0.0.1:${p}/health`,
      interval: '300ms',
      failuresBeforeCritical: 3,
    });
    await register(n02, {
      name: 'web',
      id: 'web-v1',
      port: v1.port,
      protocol: 'http',
      meta: { version: 'v1' },
      check: check(v1.port),
    });
    await register(n03, {
      name: 'web',
      id: 'web-v2',
      port: v2.port,
      protocol: 'http',
      meta: { version: 'v2' },
      check: check(v2.port),
    });
    await register(n01, { name: 'client', port: 1, upstreams: [{ service: 'web', localPort: port }] });
    const seen = new Set<string>();
    const ok = await waitFor(async () => seen.add(await hit(port)).has('v1') && seen.has('v2'), 60_000, 50);
    assert.ok(ok, `both versions answer: saw ${[...seen].join(', ')}`);
  });

  after(async () => {
    keepAlive.destroy();
    await cluster.stop();
    v1?.server.close();
    v2?.server.close();
  });

  it('an instance whose check fails stops receiving traffic, and gets it back when it passes', async () => {
    v2.healthy = false;
    assert.ok(await streak(port, 'v1', 50, 30_000), 'only v1 once v2 is critical');
    v2.healthy = true;
    const back = await waitFor(async () => (await hit(port)) === 'v2', 30_000, 10);
    assert.ok(back, 'v2 gets traffic again');
  });

  it('passive health check: an instance answering 500 while its check passes is ejected by the caller, shown and counted', async () => {
    v2.failing = true;
    // Without a passive health check, v2's answers reach the caller.
    assert.ok(
      await waitFor(async () => (await hit(port)).startsWith('status 500'), 10_000, 10),
      'a 500 from v2',
    );
    await putConfig(n01, 'service-resolver', 'web', {
      passiveHealthCheck: { maxFailures: 3, baseEjectionTimeMs: 120_000 },
    });
    assert.ok(await streak(port, 'v1', 50, 30_000), 'only v1 once v2 is ejected');
    const status = await meshCli(n01, 'proxy', 'status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /EJECTED SERVICE +INSTANCE +RETURNS IN\n.*web +\S+\/web-v2 +\d+s/);
    const text = await (
      await fetch(`http://127.0.0.1:${n01.httpPort}/v1/agent/metrics?format=prometheus`)
    ).text();
    assert.match(text, /^mesh_proxy_ejections_total\{service="web"\} 1$/m);
    assert.match(text, /^mesh_proxy_instances_ejected\{service="web"\} 1$/m);
    assert.ok(
      n01.output.some((l) => l.includes('instance ejected after failures in a row') && l.includes('web-v2')),
      'a warning in the caller agent’s log',
    );
    // Without the setting, the ejection ends at once (it would last two minutes otherwise).
    v2.failing = false;
    const del = await api(n01, 'DELETE', '/v1/config/service-resolver/web');
    assert.equal(del.status, 200);
    assert.ok(await waitFor(async () => (await hit(port)) === 'v2', 30_000, 10), 'v2 gets traffic again');
  });

  it('retries: a route retrying 500s hides a broken instance; the router’s retry budget caps them; both counted', async () => {
    v2.failing = true;
    const routes = [{ destination: { numRetries: 2, retryOnStatusCodes: [500] } }];
    // A budget that covers a retry for every request: half of the calls (v2's) need one.
    await putConfig(n01, 'service-router', 'web', { routes, retryBudget: { retryRatio: 1 } });
    const reachedV2 = v2.hits;
    assert.ok(await streak(port, 'v1', 40, 30_000), 'every answer from v1: calls to v2 are retried there');
    assert.ok(v2.hits > reachedV2, 'v2 still got calls (and failed them)');
    const retries = 'mesh_proxy_retries_total\\{source="client",destination="web",result=';
    const scrape = async () =>
      (await fetch(`http://127.0.0.1:${n01.httpPort}/v1/agent/metrics?format=prometheus`)).text();
    const before = await scrape();
    assert.match(before, new RegExp(`^${retries}"sent"\\} [1-9]`, 'm'));
    assert.doesNotMatch(before, new RegExp(`^${retries}"budget_exhausted"`, 'm'));
    // One retry a second, none earned by requests: most of v2's 500s now reach the caller.
    await putConfig(n01, 'service-router', 'web', {
      routes,
      retryBudget: { retryRatio: 0, minRetriesPerSecond: 1, ttlMs: 1_000 },
    });
    assert.ok(
      await waitFor(async () => (await hit(port)).startsWith('status 500'), 30_000, 0),
      'a 500 passed on',
    );
    assert.match(await scrape(), new RegExp(`^${retries}"budget_exhausted"\\} [1-9]`, 'm'));
    v2.failing = false;
    assert.equal((await api(n01, 'DELETE', '/v1/config/service-router/web')).status, 200);
    assert.ok(await waitFor(async () => (await hit(port)) === 'v2', 30_000, 10), 'v2 answers again');
  });

  it('gRPC retries: a route retrying UNAVAILABLE hides an instance that fails every call (a real gRPC client and servers)', async () => {
    const [g1, g2] = await Promise.all([grpcServer('g1'), grpcServer('g2')]);
    const gport = await freePort();
    try {
      await register(n02, { name: 'greet', id: 'greet-1', port: g1.port, protocol: 'grpc' });
      await register(n03, { name: 'greet', id: 'greet-2', port: g2.port, protocol: 'grpc' });
      await register(n01, {
        name: 'greet-client',
        port: 1,
        upstreams: [{ service: 'greet', localPort: gport }],
      });
      const hello = async (): Promise<string> => {
        const r = await grpcHello(gport, 'mesh');
        return 'text' in r ? r.text : `code ${r.code}`;
      };
      const seen = new Set<string>();
      assert.ok(
        await waitFor(
          async () => seen.add(await hello()).has('hello mesh from g1') && seen.has('hello mesh from g2'),
          60_000,
          50,
        ),
        `both instances answer: saw ${[...seen].join(', ')}`,
      );
      g2.state.failing = true;
      // Without a route that retries, g2's UNAVAILABLE reaches the caller.
      assert.ok(await waitFor(async () => (await hello()) === 'code 14', 10_000, 10), 'UNAVAILABLE from g2');
      await putConfig(n01, 'service-router', 'greet', {
        routes: [{ destination: { numRetries: 2, retryOn: ['unavailable'] } }],
        retryBudget: { retryRatio: 1 },
      });
      const reachedG2 = g2.state.calls;
      const allFromG1 = await inARow(hello, 'hello mesh from g1', 40, 30_000, 0);
      assert.ok(allFromG1, 'every answer from g1: calls g2 fails are sent again, to g1');
      assert.ok(g2.state.calls > reachedG2, 'g2 still got calls (and failed them)');
      const text = await (
        await fetch(`http://127.0.0.1:${n01.httpPort}/v1/agent/metrics?format=prometheus`)
      ).text();
      assert.match(
        text,
        /^mesh_proxy_retries_total\{source="greet-client",destination="greet",result="sent"\} [1-9]/m,
      );
      // Read back as an operator would: the entry as stored, retryOn included.
      const got = await meshCli(n01, 'config', 'get', 'service-router', 'greet');
      assert.equal(got.code, 0, got.stderr);
      assert.match(got.stdout, /retryOn/);
      assert.match(got.stdout, /unavailable/);
    } finally {
      g2.state.failing = false;
      await api(n01, 'DELETE', '/v1/config/service-router/greet');
      g1.server.forceShutdown();
      g2.server.forceShutdown();
    }
  });

  it('saturating the proxy fails no member and starts no election', async () => {
    const termsBefore = await terms(cluster.agents);
    const countsBefore = await failureCounts(cluster.agents);
    const viewsBefore = cluster.agents.map((a) => new Map(a.view));
    let done = 0;
    let failed = 0;
    const deadline = performance.now() + 8_000;
    // 64 callers as fast as they can, bounded in time and count.
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < deadline && done < 200_000) {
          const r = await hit(port);
          done++;
          if (r !== 'v1' && r !== 'v2') failed++;
        }
      }),
    );
    assert.ok(done > 1_000, `${done} requests`);
    assert.equal(failed, 0);
    assert.deepEqual(await terms(cluster.agents), termsBefore, 'no election');
    // The counters, not only the views' last word: a member failed and back alive during the load
    // would leave every view saying alive.
    const countsAfter = await failureCounts(cluster.agents);
    countsAfter.forEach((c, i) => {
      const b = countsBefore[i] as { failed: number; suspected: number };
      const name = cluster.agents[i]?.name;
      assert.equal(
        c.failed - b.failed,
        0,
        `${name} declared ${c.failed - b.failed} members failed under load (raised ${c.suspected - b.suspected} suspicions)`,
      );
    });
    cluster.agents.forEach((a, i) => {
      for (const [member, v] of a.view) {
        const was = viewsBefore[i]?.get(member);
        assert.ok(v.status === 'alive', `${a.name} sees ${member} ${v.status} (was ${was?.status})`);
      }
    });
  });

  it('mesh ca rotate, twice in a row, during traffic fails no request; every agent renews under the newest root', async () => {
    const before = (await api(n01, 'GET', '/v1/ca/roots')).json as { activeRootId: string };
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const traffic = (async () => {
      const deadline = performance.now() + 60_000;
      while (!stop && performance.now() < deadline && sent < 50_000) {
        const r = await hit(port);
        sent++;
        if (r !== 'v1' && r !== 'v2') failures.push(r);
      }
    })();
    // The second rotation comes right after the first, maybe before every agent has renewed
    // under it: the first root's leaves may still be in use, so it must stay trusted.
    for (const a of [n02, n01]) {
      const rotated = await meshCli(a, 'ca', 'rotate');
      assert.equal(rotated.code, 0, rotated.stderr);
    }
    type Roots = {
      activeRootId: string;
      roots: Array<{ id: string; crossSigned: boolean; rotatedOutAt: string | null }>;
    };
    let after: Roots = { activeRootId: '', roots: [] };
    // n01 answers from its own copy, which may be a moment behind the leader's.
    await waitFor(
      async () => {
        after = (await api(n01, 'GET', '/v1/ca/roots')).json as Roots;
        return after.roots.length === 3;
      },
      20_000,
      100,
    );
    assert.notEqual(after.activeRootId, before.activeRootId);
    assert.equal(after.roots.length, 3, 'both replaced roots stay trusted');
    assert.equal(after.roots[2]?.id, before.activeRootId);
    assert.ok(
      after.roots.slice(1).every((r) => r.rotatedOutAt !== null),
      'the replaced roots say when',
    );
    assert.ok(
      after.roots.find((r) => r.id === after.activeRootId)?.crossSigned,
      'the new root is cross-signed',
    );
    const prefix = after.activeRootId.slice(0, 16);
    const renewed = (a: AgentProc) =>
      a.output.some((l) => l.includes('renewed a leaf certificate') && l.includes(prefix));
    const all = await waitFor(() => cluster.agents.every(renewed), 30_000, 100);
    // A few more calls on the new certificates, then stop.
    const mark = sent;
    await waitFor(() => sent >= mark + 200, 20_000, 20);
    stop = true;
    await traffic;
    assert.ok(all, 'every agent renewed its leaves under the new root');
    assert.ok(sent > 200, `${sent} requests`);
    assert.deepEqual(failures, []);
  });

  it('killing the agent of one instance moves its traffic to the other', async () => {
    cluster.kill(n03);
    assert.ok(await streak(port, 'v1', 50, 30_000), 'only v1 after n03 died');
  });
});
