// --bootstrap-expect, consistent reads through a follower, and blocking queries, on real agents.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type AgentProc, LocalCluster, MESH_BIN, waitFor } from '../../cluster-sim/launcher.js';

const run = promisify(execFile);
const url = (a: AgentProc, path: string) => `http://127.0.0.1:${a.httpPort}${path}`;

describe('bootstrap-expect, consistent reads and blocking queries', { timeout: 120_000 }, () => {
  const cluster = new LocalCluster();

  before(async () => {
    for (let i = 0; i < 3; i++) await cluster.add(['--bootstrap-expect', '3']);
    for (const a of cluster.agents) await cluster.ready(a);
  });

  after(async () => {
    await cluster.stop();
  });

  it('three agents started with --bootstrap-expect 3 become the voters and all follow one leader', async () => {
    const ok = await waitFor(
      async () => {
        try {
          const peers = (await (await fetch(url(cluster.agents[0]!, '/v1/raft/peers'))).json()) as Array<{
            voter: boolean;
            role: string;
          }>;
          if (peers.filter((p) => p.voter).length !== 3 || !peers.some((p) => p.role === 'leader'))
            return false;
          const leaders = new Set<string>();
          for (const a of cluster.agents) {
            leaders.add(
              ((await (await fetch(url(a, '/v1/raft/status'))).json()) as { leader: string }).leader,
            );
          }
          return leaders.size === 1 && !leaders.has('');
        } catch {
          return false;
        }
      },
      30_000,
      250,
    );
    assert.ok(ok, '3 voters, and every agent names the same leader');
  });

  it('mesh kv put/get through the CLI, and a consistent read on a follower sees the write', async () => {
    const st = (await (await fetch(url(cluster.agents[0]!, '/v1/raft/status'))).json()) as {
      leaderName: string;
    };
    const follower = cluster.agents.find((a) => a.name !== st.leaderName)!;
    const leader = cluster.agents.find((a) => a.name === st.leaderName)!;
    await run(
      process.execPath,
      [MESH_BIN, 'kv', 'put', 'app/color', 'blue', '--http', `127.0.0.1:${leader.httpPort}`],
      { timeout: 15_000 },
    );
    const { stdout } = await run(
      process.execPath,
      [MESH_BIN, 'kv', 'get', 'app/color', '--consistent', '--http', `127.0.0.1:${follower.httpPort}`],
      { timeout: 15_000 },
    );
    assert.equal(stdout.trim(), 'blue');
    await assert.rejects(
      run(
        process.execPath,
        [MESH_BIN, 'kv', 'get', 'app/missing', '--http', `127.0.0.1:${follower.httpPort}`],
        { timeout: 15_000 },
      ),
      (err: { stderr: string; code: number }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr, /not found/);
        assert.equal(err.stderr.trim().split('\n').length, 1, 'one line');
        return true;
      },
    );
  });

  it('a blocking query returns when the key changes, with a higher X-Mesh-Index', async () => {
    const [a, b] = [cluster.agents[1]!, cluster.agents[2]!];
    // Start from a caught-up agent, so only the write below can wake the query.
    const first = await fetch(url(a, '/v1/kv/app/color?consistent'));
    const index = Number(first.headers.get('x-mesh-index'));
    assert.ok(index >= 1);
    let answeredAt = 0;
    const blocked = fetch(url(a, `/v1/kv/app/color?index=${index}&wait=60s`)).then((r) => {
      answeredAt = performance.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    const put = await fetch(url(b, '/v1/kv/app/color'), { method: 'PUT', body: 'green' });
    assert.equal(put.status, 200, await put.clone().text());
    const writtenAt = performance.now();
    const res = await blocked;
    assert.ok(answeredAt - writtenAt < 30_000, 'woke on the change, not at the 60 s timeout');
    assert.ok(Number(res.headers.get('x-mesh-index')) > index);
    const [e] = (await res.json()) as Array<{ value: string }>;
    assert.equal(Buffer.from(e!.value, 'base64').toString(), 'green');
  });

  it('a blocking query with no change returns after its wait with the same index', async () => {
    const a = cluster.agents[0]!;
    // A consistent read first: this agent has then applied the previous test's write, so nothing
    // is still on its way that would (rightly) wake the blocking query.
    const first = await fetch(url(a, '/v1/kv/app/color?consistent'));
    const index = Number(first.headers.get('x-mesh-index'));
    const res = await fetch(url(a, `/v1/kv/app/color?index=${index}&wait=500ms`));
    assert.equal(res.status, 200);
    assert.equal(Number(res.headers.get('x-mesh-index')), index);
  });

  it('an agent started later with --bootstrap-expect joins the existing cluster instead of bootstrapping another', async () => {
    // Expecting 4 makes the newcomer one of the "first voters" it would choose: only finding the
    // existing Raft state stops it from writing a second, conflicting log.
    const late = await cluster.add(['--bootstrap-expect', '4']);
    await cluster.ready(late);
    const ok = await waitFor(
      async () => {
        try {
          const res = await fetch(url(late, '/v1/kv/app/color'));
          if (res.status !== 200) return false;
          const [e] = (await res.json()) as Array<{ value: string }>;
          return Buffer.from(e!.value, 'base64').toString() === 'green';
        } catch {
          return false;
        }
      },
      30_000,
      250,
    );
    assert.ok(ok, "the late agent holds the existing cluster's data");
    assert.ok(
      late.output.some((l) => l.includes('a raft cluster already exists')),
      'it said why it did not bootstrap',
    );
    const peers = (await (await fetch(url(cluster.agents[0]!, '/v1/raft/peers'))).json()) as Array<{
      voter: boolean;
    }>;
    assert.equal(peers.filter((p) => p.voter).length, 3, 'still the three voters');
  });

  it('refuses bad read parameters', async () => {
    const a = cluster.agents[0]!;
    for (const q of ['?index=abc', '?wait=forever&index=1', '?wait=11m&index=1', '?bogus']) {
      const res = await fetch(url(a, `/v1/kv/app/color${q}`));
      assert.equal(res.status, 400, q);
    }
  });
});
