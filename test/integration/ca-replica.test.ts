// The cluster CA seen from a replica: with one voter, the second agent holds no CA key; its
// services' leaves are signed by the voter over the Raft client protocol (the agent proves who it is
// with its libp2p identity, and the voter checks that it hosts the service), and renewed on time.
// Leaves live one minute here (the shortest `--ca-leaf-ttl`), so renewal comes at 30–40 s.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, freePort, LocalCluster, waitFor } from '../../cluster-sim/launcher.js';
import { api, httpGet, register, type VersionServer, versionServer } from '../helpers/mesh-fixtures.js';

interface CaCounters {
  ca: { signed: number; signRefused: number; keysFetched: number; rootsCreated: number };
  leaves: { issued: number; failures: number };
}

const counters = async (a: AgentProc): Promise<CaCounters> =>
  (await api(a, 'GET', '/v1/agent/metrics')).json as CaCounters;

describe('the cluster CA with a replica', { timeout: 240_000 }, () => {
  const cluster = new LocalCluster();
  let voter: AgentProc;
  let replica: AgentProc;
  let web: VersionServer;
  let webPort = 0;

  /** One call from the voter's `client` to the replica's `web`, through both agents. */
  const call = async (): Promise<string> => {
    const r = await httpGet(webPort, '/');
    return r.status === 200 ? (JSON.parse(r.body) as { version: string }).version : `status ${r.status}`;
  };

  before(async () => {
    const flags = ['--voters', '1', '--ca-leaf-ttl', '1m'];
    voter = await cluster.add(['--bootstrap', ...flags]);
    replica = await cluster.add(flags);
    for (const a of cluster.agents) await cluster.ready(a);
    assert.ok(await waitFor(() => cluster.allSeeAlive(2), 30_000, 100), 'the agents meet');
    web = await versionServer('replica');
    webPort = await freePort();
    await register(replica, { name: 'web', port: web.port, protocol: 'http' });
    await register(voter, {
      name: 'client',
      port: await freePort(),
      upstreams: [{ service: 'web', localPort: webPort }],
    });
    const ok = await waitFor(async () => (await call()) === 'replica', 60_000, 250);
    assert.ok(ok, `the voter's client reaches the replica's web: ${await call()}`);
  });

  after(async () => {
    await cluster.stop();
    web?.server.close();
  });

  it('a replica holds no CA key; the voter signs its leaves', async () => {
    const status = (await api(voter, 'GET', '/v1/raft/status')).json as {
      id: string;
      conf: { voters: string[]; learners: string[] };
    };
    const replicaId = ((await api(replica, 'GET', '/v1/raft/status')).json as { id: string }).id;
    assert.deepEqual(status.conf.voters, [status.id], 'one voter');
    assert.ok(!status.conf.learners.includes(replicaId), 'the replica is no learner');
    const [v, r] = [await counters(voter), await counters(replica)];
    assert.equal(r.ca.keysFetched, 0, 'the replica never fetched a CA key');
    assert.equal(r.ca.signed, 0, 'the replica signs nothing');
    assert.ok(r.leaves.issued >= 1, 'the replica has a leaf for web');
    // The voter's own client, and the replica's web, which only the voter could sign.
    assert.ok(v.ca.signed >= 2, `the voter signed ${v.ca.signed} leaves`);
    assert.equal(v.ca.signRefused, 0);
  });

  it('renews the replica’s leaf before it expires, and calls keep working', async () => {
    const first = (await counters(replica)).leaves.issued;
    // Renewal at 50–67 % of a one-minute lifetime: within 40 s of the last issue; generous here.
    const renewed = await waitFor(async () => (await counters(replica)).leaves.issued > first, 120_000, 500);
    assert.ok(renewed, 'the replica renewed its leaf');
    assert.equal((await counters(replica)).leaves.failures, 0);
    assert.equal(await call(), 'replica', 'the call works with the renewed leaf');
  });
});
