// `mesh join` merges separately started agents; an agent configured only by a YAML file joins;
// a bad config file is refused with the file and key named.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { freePort, LocalCluster, MESH_BIN, waitFor } from '../../cluster-sim/launcher.js';

const run = promisify(execFile);
/** dist/test/integration/ → the project's package.json. */
const packageJsonVersion = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

describe('joining', { timeout: 90_000 }, () => {
  const cluster = new LocalCluster();
  after(async () => {
    await cluster.stop();
  });

  it('mesh join ADDR joins a running agent to another cluster member', async () => {
    const a = await cluster.add();
    const b = await cluster.add(['--join', '127.0.0.1:1']); // a dead seed: b stays alone, retrying
    await cluster.ready(a);
    await cluster.ready(b);
    assert.equal((await cluster.members(b)).length, 1);
    const { stdout } = await run(
      process.execPath,
      [MESH_BIN, 'join', `127.0.0.1:${a.clusterPort}`, '--http', `127.0.0.1:${b.httpPort}`],
      { timeout: 20_000 },
    );
    assert.match(stdout, /1/);
    assert.ok(await waitFor(() => cluster.allSeeAlive(2, [a, b]), 10_000, 100), 'both see 2 alive');
  });

  it('an agent configured by a YAML file joins the cluster', async () => {
    const [clusterPort, httpPort] = [await freePort(), await freePort()];
    const file = join(cluster.root, 'agent.yaml');
    writeFileSync(
      file,
      [
        'node-name: from-yaml',
        `data-dir: ${join(cluster.root, 'yaml-data')}`,
        `bind: 127.0.0.1:${clusterPort}`,
        `http: 127.0.0.1:${httpPort}`,
        'zone: zone-b',
        'dns: "off"',
        `join: [${cluster.seed}]`,
        '',
      ].join('\n'),
    );
    const proc = spawn(process.execPath, [MESH_BIN, 'agent', '--config', file], { stdio: 'ignore' });
    try {
      const first = cluster.agents[0]!;
      assert.ok(
        await waitFor(() => cluster.allSee('from-yaml', 'alive', [first]), 20_000, 100),
        'seed sees it',
      );
      const m = (await cluster.members(first)).find((x) => x.name === 'from-yaml') as unknown as {
        zone: string;
      };
      assert.equal(m.zone, 'zone-b', 'zone comes from the file');
      // The join starts before the HTTP API listens (others see the agent sooner), so the seed
      // can see it alive a moment before its API answers: wait for the API.
      let self: { address: string; name: string; version: string } | undefined;
      const answered = await waitFor(
        async () => {
          try {
            const res = await fetch(`http://127.0.0.1:${httpPort}/v1/agent/self`);
            self = (await res.json()) as { address: string; name: string; version: string };
            return true;
          } catch {
            return false;
          }
        },
        20_000,
        100,
      );
      assert.ok(answered && self, 'its API answers');
      assert.equal(self.address, `127.0.0.1:${clusterPort}`);
      // MESH_BIN is the bundle, which once reported 'unknown' (`mesh info`'s version line).
      assert.equal(self.version, packageJsonVersion);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('a bad config file is refused naming the file and the key', async () => {
    const file = join(cluster.root, 'bad.json');
    writeFileSync(file, JSON.stringify({ bind: '10.0.0.1', 'data-dir': '/tmp/x' }));
    await assert.rejects(
      run(process.execPath, [MESH_BIN, 'agent', '--config', file], { timeout: 10_000 }),
      (err: { stderr: string; code: number }) => {
        assert.notEqual(err.code, 0);
        assert.match(err.stderr, /bad\.json/);
        assert.match(err.stderr, /bind/);
        return true;
      },
    );
  });
});
