// Real agents on 127.0.0.1: 5 agents, 3 voters chosen automatically; kill -9 of the leader → a new
// leader, the writes in flight confirmed (once each), and writes continue; kill -9 of a voter → it is replaced by another agent; every
// acknowledged write is on every agent once settled (replicas and restarted agents included);
// a config entry with a bad field is refused with a clear message.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, LocalCluster, sleep, waitFor } from '../../cluster-sim/launcher.js';

interface Peer {
  id: string;
  name: string;
  role: string;
  voter: boolean;
}

const url = (a: AgentProc, path: string) => `http://127.0.0.1:${a.httpPort}${path}`;

async function getJson<T>(a: AgentProc, path: string): Promise<T> {
  const res = await fetch(url(a, path), { signal: AbortSignal.timeout(3_000) });
  return (await res.json()) as T;
}

async function status(
  a: AgentProc,
): Promise<{ leader: string; leaderName: string; role: string; applied: number }> {
  return getJson(a, '/v1/raft/status');
}

/** A write through agent `a`, retried while there is no leader (bounded). Returns whether it was acknowledged. */
async function put(a: AgentProc, key: string, value: string): Promise<boolean> {
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      const res = await fetch(url(a, `/v1/kv/${key}`), {
        method: 'PUT',
        body: value,
        signal: AbortSignal.timeout(3_000),
      });
      if (res.status === 200) return (await res.json()) === true;
      if (res.status !== 503) throw new Error(`PUT ${key}: HTTP ${res.status} ${await res.text()}`);
    } catch (err) {
      if ((err as Error).message.startsWith('PUT')) throw err;
    }
    await sleep(250);
  }
  return false;
}

describe('raft control plane with real agents', { timeout: 240_000 }, () => {
  const cluster = new LocalCluster();
  const acknowledged = new Map<string, string>();

  before(async () => {
    await cluster.add(['--bootstrap']);
    for (let i = 0; i < 4; i++) await cluster.add();
    for (const a of cluster.agents) await cluster.ready(a);
  });

  after(async () => {
    await cluster.stop();
  });

  const voters = async (a: AgentProc): Promise<Peer[]> =>
    (await getJson<Peer[]>(a, '/v1/raft/peers')).filter((p) => p.voter);

  it('chooses 3 voters automatically out of 5 agents', async () => {
    const ok = await waitFor(async () => (await voters(cluster.agents[0]!)).length === 3, 30_000, 250);
    assert.ok(ok, 'the leader keeps 3 voters');
    const names = (await voters(cluster.agents[0]!)).map((p) => p.name);
    assert.equal(new Set(names).size, 3);
  });

  it('accepts writes through any agent, voter or replica, and every agent applies them', async () => {
    for (const [i, a] of cluster.agents.entries()) {
      const key = `t/first-${i}`;
      assert.ok(await put(a, key, `v${i}`), `write through ${a.name}`);
      acknowledged.set(key, `v${i}`);
    }
    await assertAllHave(cluster.running());
  });

  it("shows every agent's applied index through gossip (GET /v1/raft/applied)", async () => {
    const target = (await status(cluster.agents[0]!)).applied;
    const ok = await waitFor(
      async () => {
        const list = await getJson<Array<{ name: string; applied: number }>>(
          cluster.agents[2]!,
          '/v1/raft/applied',
        );
        return list.length === 5 && list.every((v) => v.applied >= target);
      },
      20_000,
      250,
    );
    assert.ok(ok, "all 5 agents report an applied index at least the leader's");
  });

  it('refuses a config entry with a bad field, naming the field', async () => {
    const res = await fetch(url(cluster.agents[1]!, '/v1/config'), {
      method: 'PUT',
      body: JSON.stringify({ kind: 'service-defaults', name: 'web', protocol: 'udp' }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, /protocol/);
    const list = await getJson<unknown[]>(cluster.agents[1]!, '/v1/config/service-defaults');
    assert.deepEqual(list, [], 'nothing was committed');
  });

  it('kill -9 of the leader: a new leader is elected, writes in flight are confirmed once, writes continue', async () => {
    const st = await status(cluster.agents[0]!);
    const leader = cluster.agents.find((a) => a.name === st.leaderName)!;
    assert.ok(leader, 'there is a leader');
    const others = cluster.agents.filter((a) => a !== leader);
    // Writers through every other agent (voters and replicas), each one create-only write after
    // another, not retried by the test: every write in flight when the leader dies, or sent before
    // the others notice, must be confirmed by the agent itself. Create-only (cas=0) shows a write
    // applied twice: its second copy would fail, and the writer would hear `false`.
    let stop = false;
    const answers: { key: string; status: number | string; body: string }[] = [];
    const writers = others.map(async (a, w) => {
      for (let n = 0; n < 400 && !stop; n++) {
        const key = `t/in-flight-${w}-${n}`;
        try {
          const res = await fetch(url(a, `/v1/kv/${key}?cas=0`), {
            method: 'PUT',
            body: key,
            signal: AbortSignal.timeout(15_000),
          });
          answers.push({ key, status: res.status, body: (await res.text()).trim() });
        } catch (err) {
          answers.push({ key, status: (err as Error).message, body: '' });
        }
      }
    });
    await sleep(300);
    cluster.kill(leader, 'SIGKILL');
    await leader.exited;
    const elected = await waitFor(
      async () => {
        const s = await status(others[0]!).catch(() => undefined);
        return s !== undefined && s.leaderName !== '' && s.leaderName !== leader.name;
      },
      20_000,
      100,
    );
    assert.ok(elected, 'a new leader is elected');
    await sleep(1_000);
    stop = true;
    await Promise.all(writers);
    const failed = answers.filter((x) => x.status !== 200 || x.body !== 'true');
    assert.deepEqual(failed, [], 'every write in flight through the failover is confirmed, once');
    assert.ok(answers.length >= others.length * 2, `writes were in flight (${answers.length})`);
    for (const x of answers) acknowledged.set(x.key, x.key);
    for (const [i, a] of others.entries()) {
      const key = `t/after-leader-kill-${i}`;
      assert.ok(await put(a, key, `w${i}`), `write through ${a.name} after failover`);
      acknowledged.set(key, `w${i}`);
    }
    // The dead voter is replaced by another agent.
    const replaced = await waitFor(
      async () => {
        const v = await voters(others[0]!).catch(() => []);
        return v.length === 3 && !v.some((p) => p.name === leader.name);
      },
      30_000,
      250,
    );
    assert.ok(replaced, `${leader.name} is replaced as a voter`);
  });

  it('kill -9 of a follower voter: it is replaced by another agent', async () => {
    const running = cluster.running();
    // A running voter that is not the leader, from a view that knows the leader.
    let victim: AgentProc | undefined;
    await waitFor(
      async () => {
        const st = await status(running[0]!).catch(() => undefined);
        if (!st?.leaderName) return false;
        const v = await voters(running[0]!).catch(() => []);
        victim = running.find((a) => a.name !== st.leaderName && v.some((p) => p.name === a.name));
        return victim !== undefined;
      },
      20_000,
      200,
    );
    assert.ok(victim, 'a follower voter to kill');
    const killed: AgentProc = victim;
    cluster.kill(killed, 'SIGKILL');
    await killed.exited;
    const rest = cluster.running();
    const replaced = await waitFor(
      async () => {
        const now = await voters(rest[0]!).catch(() => []);
        return now.length === 3 && !now.some((p) => p.name === killed.name);
      },
      30_000,
      250,
    );
    assert.ok(replaced, `${killed.name} is replaced as a voter`);
    assert.ok(await put(rest[0]!, 't/after-voter-kill', 'x'));
    acknowledged.set('t/after-voter-kill', 'x');
  });

  it('restarted agents catch up: every acknowledged write is on every agent', async () => {
    for (const a of cluster.agents) {
      if (!cluster.running().includes(a)) {
        await cluster.restart(a);
        await cluster.ready(a);
      }
    }
    await assertAllHave(cluster.running());
  });

  it('SIGTERM of a voter: it removes itself before it goes, and another agent takes its place', async () => {
    const running = cluster.running();
    // Right after the restarts above, running[0] may not yet know every voter's name (its
    // membership answers '' for an id it has not heard of): wait until the last voter is one.
    let found: AgentProc | undefined;
    const known = await waitFor(
      async () => {
        const v = await voters(running[0]!).catch(() => []);
        found = running.find((a) => a.name === v.at(-1)?.name);
        return found !== undefined;
      },
      20_000,
      200,
    );
    assert.ok(known, 'a voter that is a running agent, by name');
    const leaver = found as AgentProc;
    cluster.kill(leaver, 'SIGTERM');
    assert.equal(await leaver.exited, 0, 'graceful leave exits 0');
    const rest = cluster.running();
    // Removed at once by its own request (not after the failed-voter threshold), then replaced.
    const removed = await waitFor(
      async () => !(await voters(rest[0]!).catch(() => [])).some((p) => p.name === leaver.name),
      3_000,
      100,
    );
    assert.ok(removed, `${leaver.name} removed itself from the voters`);
    const replaced = await waitFor(
      async () => (await voters(rest[0]!).catch(() => [])).length === 3,
      30_000,
      250,
    );
    assert.ok(replaced, 'back to 3 voters');
    assert.ok(await put(rest[0]!, 't/after-voter-leave', 'y'));
    acknowledged.set('t/after-voter-leave', 'y');
    await assertAllHave(rest);
  });

  async function assertAllHave(agents: AgentProc[]): Promise<void> {
    for (const a of agents) {
      const ok = await waitFor(
        async () => {
          try {
            const list = await getJson<Array<{ key: string; value: string }>>(a, '/v1/kv/t/?recurse');
            const got = new Map(list.map((e) => [e.key, Buffer.from(e.value, 'base64').toString()]));
            for (const [k, v] of acknowledged) if (got.get(k) !== v) return false;
            return true;
          } catch {
            return false;
          }
        },
        20_000,
        200,
      );
      if (!ok) {
        const st = await getJson<Record<string, unknown>>(a, '/v1/raft/status').catch(
          (e: Error) => e.message,
        );
        const self = await getJson<{ stats: unknown }>(a, '/v1/agent/self').catch((e: Error) => e.message);
        assert.fail(
          `${a.name} lacks acknowledged writes; raft status ${JSON.stringify(st)}; ${JSON.stringify(self).slice(0, 300)}\n${a.output
            .filter((l) => l.includes('raft'))
            .slice(-15)
            .join('\n')}`,
        );
      }
    }
  }
});
