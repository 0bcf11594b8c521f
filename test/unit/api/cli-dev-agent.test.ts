// The CLI against one real dev agent (the bundle, dist/mesh.mjs): what an operator reads after
// intention and config commands, where the answer depends on what the agent did.
import '../../../src/polyfill.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, LocalCluster, waitFor } from '../../../cluster-sim/launcher.js';
import { mesh } from '../../helpers/cli.js';

describe('mesh against a dev agent', { timeout: 120_000 }, () => {
  const cluster = new LocalCluster({ logLevel: 'warn' });
  let agent: AgentProc;
  let http: string;
  const cli = (...args: string[]) => mesh([...args, '--http', http]);
  let dir: string;
  /** An entry file in a temporary directory. */
  const entryFile = async (name: string, text: string): Promise<string> => {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-cli-dev-'));
    agent = await cluster.add(['--dev']);
    http = `127.0.0.1:${agent.httpPort}`;
    await cluster.ready(agent);
    const leader = await waitFor(
      async () => (await cli('raft', 'status')).stdout.includes('role:        leader'),
      20_000,
      100,
    );
    assert.ok(leader, 'the dev agent became Raft leader');
  });
  after(async () => {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('intention allow|deny say whether they created, updated or left the rule', async () => {
    const said = async (...args: string[]) => {
      const r = await cli('intention', ...args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    assert.equal(await said('allow', 'web', 'api'), 'Created: web => api (allow)\n');
    assert.equal(await said('allow', 'web', 'api'), 'Unchanged: web => api (allow) is in place already\n');
    assert.equal(await said('deny', 'web', 'api'), 'Updated: web => api (deny, was allow)\n');
    assert.equal(
      await said('deny', 'web', 'api', '--description', 'audit'),
      'Updated: web => api (deny, description changed)\n',
    );
    assert.equal(await said('delete', 'web', 'api'), 'Deleted: web => api\n');
    assert.equal(await said('delete', 'web', 'api'), 'Nothing to delete: there is no intention web => api\n');
  });

  it('the intentions API names the parameter, not the entry field, and check and delete refuse bad names', async () => {
    const base = `http://${http}/v1/intentions`;
    const put = await fetch(`${base}/exact?source=x%20y&destination=api`, {
      method: 'PUT',
      body: '{"action":"allow"}',
    });
    assert.equal(put.status, 400);
    assert.match(
      ((await put.json()) as { error: { message: string } }).error.message,
      /^"source" must be a service name: .* \(or "\*"\)$/,
    );
    const del = await fetch(`${base}/exact?source=web&destination=API`, { method: 'DELETE' });
    assert.equal(del.status, 400);
    const check = await fetch(`${base}/check?source=*&destination=api`);
    assert.equal(check.status, 400);
    assert.match(
      ((await check.json()) as { error: { message: string } }).error.message,
      /^"source" must name one service/,
    );
  });

  it('config put of a ca-roots file is refused as a managed kind, before its fields are read', async () => {
    for (const text of ['kind: ca-roots\nname: global\n', 'kind: ca-roots\nname: foo\ntrustDomain: x\n']) {
      const file = await entryFile('ca.yaml', text);
      const r = await cli('config', 'put', file);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `Error: ${file}: ca-roots entries are managed by the agents and cannot be written directly (see \`mesh ca\`)\n`,
      );
    }
  });

  it('config put --cas says why nothing was written', async () => {
    const file = await entryFile('cas.yaml', 'kind: service-defaults\nname: cas\nprotocol: http\n');
    const first = await cli('config', 'put', file, '--cas', '0');
    assert.equal(first.code, 0, first.stderr);
    const index = Number(/index (\d+)/.exec(first.stdout)?.[1]);
    const again = await cli('config', 'put', file, '--cas', '0');
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr,
      `Error: ${file}: check-and-set failed, nothing was written: service-defaults/cas exists already (modify index ${index}), and a cas of 0 writes only a new entry\n`,
    );
    const stale = await cli('config', 'put', file, '--cas', String(index - 1));
    assert.match(
      stale.stderr,
      new RegExp(`was modified at index ${index}, after the index ${index - 1} the write expected`),
    );
    assert.equal((await cli('config', 'delete', 'service-defaults', 'cas')).code, 0);
    const gone = await cli('config', 'put', file, '--cas', String(index));
    assert.match(
      gone.stderr,
      new RegExp(`does not exist \\(any more\\), so it cannot be at modify index ${index}$`, 'm'),
    );
  });

  it('config put refuses a service-defaults name no service can have', async () => {
    const file = await entryFile('sd.yaml', 'kind: service-defaults\nname: my_svc.v1\nprotocol: http\n');
    const r = await cli('config', 'put', file);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^Error: .*sd\.yaml: name: must be a service name: 1 to 63 lower-case letters, digits or '-'.*got "my_svc\.v1"\n$/,
    );
  });

  it('the config API answers a read of an unknown kind with 400 and the known kinds', async () => {
    for (const path of ['/v1/config/bogus', '/v1/config/bogus/x']) {
      const res = await fetch(`http://${http}${path}`);
      assert.equal(res.status, 400, path);
      const body = (await res.json()) as { error: { message: string } };
      assert.match(body.error.message, /^kind: unknown kind "bogus"; known kinds: ca-roots, mesh, /);
    }
  });
});
