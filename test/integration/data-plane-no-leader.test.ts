// Control-plane loss never stops traffic: with the cluster's only voter killed, no Raft leader and
// no quorum, the other agents' proxies keep routing on the last applied configuration (a
// service-router sending `x-canary: 1` to subset v2) and on the live gossip state (an instance
// whose check fails stops getting calls), while configuration writes fail with a clear error.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, freePort, LocalCluster, waitFor } from '../../cluster-sim/launcher.js';
import {
  api,
  httpGet,
  inARow,
  meshCli,
  putConfig,
  register,
  type VersionServer,
  versionServer,
} from '../helpers/mesh-fixtures.js';

describe('the data plane without a Raft leader', { timeout: 240_000 }, () => {
  const cluster = new LocalCluster();
  let voter: AgentProc;
  let caller: AgentProc;
  let callee: AgentProc;
  let v1: VersionServer;
  let v2: VersionServer;
  let port = 0;

  /** The version that answered a call from `client` to `web` (or the failure). */
  const call = async (canary = false): Promise<string> => {
    const r = await httpGet(port, '/', canary ? { 'x-canary': '1' } : {});
    return r.status === 200 ? (JSON.parse(r.body) as { version: string }).version : `status ${r.status}`;
  };

  /** The versions that answered `n` calls, counted. */
  const tally = async (n: number, canary = false): Promise<Record<string, number>> => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const v = await call(canary);
      counts[v] = (counts[v] ?? 0) + 1;
    }
    return counts;
  };

  before(async () => {
    voter = await cluster.add(['--bootstrap', '--voters', '1']);
    caller = await cluster.add(['--voters', '1']);
    callee = await cluster.add(['--voters', '1']);
    for (const a of cluster.agents) await cluster.ready(a);
    assert.ok(await waitFor(() => cluster.allSeeAlive(3), 30_000, 100), 'the agents meet');
    [v1, v2] = await Promise.all([versionServer('v1'), versionServer('v2')]);
    port = await freePort();
    const check = (p: number) => ({ http: `http://127.0.0.1:${p}/health`, interval: '300ms' });
    for (const [v, s] of [
      ['v1', v1],
      ['v2', v2],
    ] as const) {
      await register(callee, {
        name: 'web',
        id: `web-${v}`,
        port: s.port,
        protocol: 'http',
        meta: { version: v },
        check: check(s.port),
      });
    }
    await register(caller, { name: 'client', port: 1, upstreams: [{ service: 'web', localPort: port }] });
    await putConfig(voter, 'service-resolver', 'web', {
      subsets: { v1: { filter: { meta: { version: 'v1' } } }, v2: { filter: { meta: { version: 'v2' } } } },
    });
    await putConfig(voter, 'service-router', 'web', {
      routes: [
        {
          match: { http: { header: [{ name: 'x-canary', exact: '1' }] } },
          destination: { serviceSubset: 'v2' },
        },
      ],
    });
    // The router is in force on the caller's agent once 20 canary calls in a row reach v2.
    let run = 0;
    const routed = await waitFor(
      async () => {
        run = (await call(true)) === 'v2' ? run + 1 : 0;
        return run >= 20;
      },
      60_000,
      50,
    );
    assert.ok(routed, 'the router reaches the caller');
  });

  after(async () => {
    await cluster.stop();
    v1?.server.close();
    v2?.server.close();
  });

  it('with the only voter dead, calls follow the last configuration and the live health', async () => {
    const status = (await api(voter, 'GET', '/v1/raft/status')).json as {
      id: string;
      conf: { voters: string[] };
    };
    assert.deepEqual(status.conf.voters, [status.id], 'one voter, which is about to die');
    cluster.kill(voter);
    // The others see it gone (gossip), and Raft has no leader left.
    assert.ok(
      await waitFor(
        async () => {
          const m = (await api(caller, 'GET', '/v1/agent/members')).json as Array<{ status: string }>;
          return m.some((x) => x.status === 'failed' || x.status === 'left');
        },
        60_000,
        250,
      ),
      'the voter is seen dead',
    );
    const write = await meshCli(caller, 'kv', 'put', 'app/color', 'blue');
    assert.notEqual(write.code, 0, 'a write needs a leader');
    assert.match(write.stderr, /^Error: .*(leader|did not answer)/, write.stderr);

    // The last configuration still routes: canaries to v2 only, the rest to both.
    assert.deepEqual(await tally(50, true), { v2: 50 });
    const both = await tally(100);
    assert.ok((both.v1 ?? 0) > 0 && (both.v2 ?? 0) > 0, JSON.stringify(both));
    assert.equal((both.v1 ?? 0) + (both.v2 ?? 0), 100, JSON.stringify(both));

    // Health still spreads by gossip: v1 fails its check and stops getting calls.
    v1.healthy = false;
    const moved = await inARow(call, 'v2', 50, 30_000, 20);
    assert.ok(moved, 'only v2 once v1 fails its check');
    v1.healthy = true;
    assert.ok(
      await waitFor(async () => (await call()) === 'v1', 30_000, 20),
      'v1 gets calls again once it passes',
    );
  });
});
