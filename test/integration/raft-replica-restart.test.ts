// A replica restarted with its data dir in a quiet cluster (no write happens after it): it holds
// every committed entry, so the leader's batches bring it nothing to apply, yet it must learn the
// leader from them. Before it did, `mesh raft status` on it said `leader: none` and writes through
// it failed with "no raft leader" until some other agent wrote. Two agents: one voter, one replica.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, LocalCluster, tail, waitFor } from '../../cluster-sim/launcher.js';
import { api, meshCli } from '../helpers/mesh-fixtures.js';

interface Status {
  leaderName: string;
  commit: number;
  applied: number;
  conf: { voters: string[] };
  id: string;
}

const status = async (a: AgentProc): Promise<Status | undefined> =>
  (await api(a, 'GET', '/v1/raft/status').catch(() => undefined))?.json as Status | undefined;

/** Generous next to the leader's 1 s heartbeat batch: a replica knows the leader well within it. */
const LEARN_LEADER_MS = 15_000;

describe('a replica restarted in a quiet cluster', { timeout: 120_000 }, () => {
  const cluster = new LocalCluster();
  let voter: AgentProc;
  let replica: AgentProc;

  before(async () => {
    voter = await cluster.add(['--bootstrap', '--voters', '1']);
    replica = await cluster.add(['--voters', '1']);
    for (const a of cluster.agents) await cluster.ready(a);
    assert.ok(await waitFor(() => cluster.allSeeAlive(2), 30_000, 100), 'the agents meet');
    const put = await meshCli(replica, 'kv', 'put', 'before', 'v0');
    assert.equal(put.code, 0, `a write through the replica before the restart: ${put.stderr}`);
  });

  after(async () => {
    await cluster.stop();
  });

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`names the leader and forwards writes after a ${signal} restart`, async () => {
      // Quiet: the replica has applied everything there is, and nothing is written from here on.
      const caughtUp = await waitFor(
        async () => {
          const [v, r] = [await status(voter), await status(replica)];
          return v !== undefined && r !== undefined && r.applied >= v.commit;
        },
        15_000,
        100,
      );
      assert.ok(caughtUp, 'the replica applied the leader’s commit');
      const r0 = await status(replica);
      assert.ok(r0 && !r0.conf.voters.includes(r0.id), 'the second agent is a replica');
      cluster.kill(replica, signal);
      await cluster.restart(replica);
      await cluster.ready(replica);
      // `mesh raft status`, as the operator runs it.
      const leaderShown = async (): Promise<string> => {
        const r = await meshCli(replica, 'raft', 'status', '--json');
        return r.code === 0 ? (JSON.parse(r.stdout) as Status).leaderName : `exit ${r.code}: ${r.stderr}`;
      };
      const named = await waitFor(async () => (await leaderShown()) === voter.name, LEARN_LEADER_MS, 250);
      assert.ok(
        named,
        `raft status on the restarted replica names ${voter.name}, not '${await leaderShown()}':\n${tail(replica)}`,
      );
      const put = await meshCli(replica, 'kv', 'put', `after-${signal}`, 'v1');
      assert.equal(put.code, 0, `a write through the restarted replica: ${put.stderr}`);
      const get = await meshCli(replica, 'kv', 'get', `after-${signal}`, '--consistent');
      assert.equal(get.code, 0, `a consistent read through it: ${get.stderr}`);
      assert.match(get.stdout, /v1/);
    });
  }
});
