// The CLI against one real dev agent (the bundle, dist/mesh.mjs): what an operator reads after
// intention and config commands, where the answer depends on what the agent did.
import '../../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AgentProc, LocalCluster, waitFor } from '../../../cluster-sim/launcher.js';
import { mesh } from '../../helpers/cli.js';

describe('mesh against a dev agent', { timeout: 120_000 }, () => {
  const cluster = new LocalCluster({ logLevel: 'warn' });
  let agent: AgentProc;
  let http: string;
  const cli = (...args: string[]) => mesh([...args, '--http', http]);

  before(async () => {
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
  after(() => cluster.stop());

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
});
