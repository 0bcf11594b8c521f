// Real agent processes on 127.0.0.1: join through one seed, failure detection after kill -9,
// graceful leave on SIGTERM, restart with the same data dir, and a wrong cluster key.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { LocalCluster, MESH_BIN, waitFor } from '../../cluster-sim/launcher.js';

const run = promisify(execFile);

interface MemberJson {
  name: string;
  id: string;
  address: string;
  status: string;
  incarnation: number;
  zone: string;
}

async function cliMembers(httpPort: number): Promise<MemberJson[]> {
  const { stdout } = await run(
    process.execPath,
    [MESH_BIN, 'members', '--json', '--http', `127.0.0.1:${httpPort}`],
    {
      timeout: 10_000,
    },
  );
  return JSON.parse(stdout) as MemberJson[];
}

describe('cluster membership with real agents', { timeout: 180_000 }, () => {
  const key = randomBytes(32).toString('base64');
  const cluster = new LocalCluster({ args: ['--cluster-key', key] });

  before(async () => {
    for (let i = 0; i < 5; i++) await cluster.add([], undefined);
    for (const a of cluster.agents) await cluster.ready(a);
  });

  after(async () => {
    await cluster.stop();
  });

  it('5 agents joined through one seed each list 5 alive members (mesh members --json)', async () => {
    const ok = await waitFor(() => cluster.allSeeAlive(5), 20_000, 200);
    assert.ok(ok, 'every agent should see 5 alive members');
    for (const a of cluster.agents) {
      const members = await cliMembers(a.httpPort);
      assert.equal(members.length, 5, `${a.name} lists 5 members`);
      for (const m of members) {
        assert.equal(m.status, 'alive');
        assert.match(m.id, /^12D3Koo/);
        assert.match(m.address, /^127\.0\.0\.1:\d+$/);
        assert.equal(typeof m.incarnation, 'number');
        assert.equal(typeof m.zone, 'string');
      }
      assert.deepEqual(members.map((m) => m.name).sort(), ['n01', 'n02', 'n03', 'n04', 'n05']);
    }
  });

  it('kill -9 of an agent makes every other agent show it failed', async () => {
    const victim = cluster.agents[4]!;
    cluster.kill(victim, 'SIGKILL');
    await victim.exited;
    const ok = await waitFor(() => cluster.allSee(victim.name, 'failed'), 30_000, 200);
    assert.ok(ok, `every agent should show ${victim.name} failed`);
  });

  it('SIGTERM makes the agent leave: every agent shows it left and it exits 0', async () => {
    const leaver = cluster.agents[3]!;
    cluster.kill(leaver, 'SIGTERM');
    const code = await Promise.race([
      leaver.exited,
      new Promise((r) => setTimeout(() => r('timeout'), 10_000)),
    ]);
    assert.equal(code, 0, 'graceful leave exits 0 within a few seconds');
    const ok = await waitFor(() => cluster.allSee(leaver.name, 'left'), 10_000, 100);
    assert.ok(ok, `every agent should show ${leaver.name} left`);
  });

  it('restarting the killed agent with its data dir brings it back alive with the same id', async () => {
    const victim = cluster.agents[4]!;
    const before = (await cliMembers(cluster.agents[0]!.httpPort)).find((m) => m.name === victim.name);
    assert.ok(before);
    await cluster.restart(victim);
    await cluster.ready(victim);
    const ok = await waitFor(() => cluster.allSee(victim.name, 'alive'), 20_000, 200);
    assert.ok(ok, `every agent should show ${victim.name} alive again`);
    const afterRestart = (await cliMembers(cluster.agents[0]!.httpPort)).find((m) => m.name === victim.name);
    assert.ok(afterRestart);
    assert.equal(afterRestart.id, before.id, 'same data dir, same node id');
    assert.ok(afterRestart.incarnation > before.incarnation, 'rejoins with a higher incarnation');
  });

  it("an agent with the wrong --cluster-key never appears in anyone's members", async () => {
    const wrongKey = randomBytes(32).toString('base64');
    const intruder = await cluster.add(['--cluster-key', wrongKey, '--join', cluster.seed], 'intruder');
    await cluster.ready(intruder);
    // Long enough for several join retries and gossip rounds.
    await new Promise((r) => setTimeout(r, 4_000));
    for (const a of cluster.running()) {
      if (a === intruder) continue;
      const names = (await cliMembers(a.httpPort)).map((m) => m.name);
      assert.ok(!names.includes('intruder'), `${a.name} must not list the intruder`);
    }
    const own = await cliMembers(intruder.httpPort);
    assert.deepEqual(
      own.map((m) => m.name),
      ['intruder'],
      'the intruder sees only itself',
    );
    assert.ok(
      intruder.output.some((l) => l.includes('join failed')),
      'the intruder logs why it cannot join',
    );
  });
});
