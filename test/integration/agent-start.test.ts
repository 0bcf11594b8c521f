// How `mesh agent` starts, as an operator sees it: which cluster a dev agent ends up in, and the
// one clear message it exits with when it cannot start or cannot join.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LocalCluster, waitFor } from '../../cluster-sim/launcher.js';

interface RaftStatus {
  id: string;
  leader: string;
}

async function getJson<T>(httpPort: number, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(2_000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

describe('mesh agent --dev', { timeout: 90_000 }, () => {
  const cluster = new LocalCluster();
  after(async () => {
    await cluster.stop();
  });

  it("a second dev agent given --join joins the first's Raft cluster instead of starting its own", async () => {
    const first = await cluster.add(['--dev']);
    await cluster.ready(first);
    const second = await cluster.add(['--dev']); // LocalCluster adds --join <first>
    await cluster.ready(second);
    let firstId = '';
    const sameLeader = await waitFor(
      async () => {
        const a = await getJson<RaftStatus>(first.httpPort, '/v1/raft/status');
        const b = await getJson<RaftStatus>(second.httpPort, '/v1/raft/status');
        firstId = a?.id ?? '';
        return a !== undefined && a.leader === a.id && b?.leader === a.id;
      },
      20_000,
      100,
    );
    const b = await getJson<RaftStatus>(second.httpPort, '/v1/raft/status');
    assert.ok(sameLeader, `the second agent follows the first (${firstId}); it reports ${JSON.stringify(b)}`);
  });
});
