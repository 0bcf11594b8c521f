// How `mesh agent` starts, as an operator sees it: which cluster a dev agent ends up in, and the
// one clear message it exits with when it cannot start or cannot join.
import '../../src/polyfill.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, LocalCluster, MESH_BIN, waitFor } from '../../cluster-sim/launcher.js';

interface Exit {
  code: number;
  output: string;
}

/** Run `mesh agent ARGS` (JSON logs) until it exits, at most `timeoutMs`; never rejects. */
function agentUntilExit(args: string[], timeoutMs = 30_000): Promise<Exit> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mesh-agent-start-'));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MESH_BIN, 'agent', '--data-dir', dataDir, '--dns', 'off', '--inbound', '127.0.0.1:0', ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        rmSync(dataDir, { recursive: true, force: true });
        const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

/** The `err` of the agent's fatal log line, or '' if it logged none. */
function fatalError(output: string): string {
  for (const line of output.split('\n')) {
    try {
      const j = JSON.parse(line) as { level?: number; err?: unknown };
      if (j.level === 60) return String(j.err);
    } catch {
      // not a JSON log line
    }
  }
  return '';
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

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

describe('mesh agent that cannot start', { timeout: 90_000 }, () => {
  it('--bind on a port in use: one clear fatal message, no libp2p stack, exit 1', async () => {
    const port = await freePort();
    const occupant = await listen(port);
    try {
      const httpPort = await freePort();
      const r = await agentUntilExit(['--bind', `127.0.0.1:${port}`, '--http', `127.0.0.1:${httpPort}`]);
      assert.equal(r.code, 1, r.output);
      assert.equal(
        fatalError(r.output),
        `cannot listen for cluster traffic on 127.0.0.1:${port}: the address is in use (is another agent running?); set --bind`,
        r.output,
      );
      assert.doesNotMatch(r.output, /faultTolerance|UnsupportedListenAddresses|\n\s+at /);
    } finally {
      occupant.close();
    }
  });
});

describe('mesh agent joining with a different cluster key', { timeout: 120_000 }, () => {
  const key = Buffer.alloc(32, 9).toString('base64');
  const cluster = new LocalCluster();
  after(async () => {
    await cluster.stop();
  });

  // Against an agent without a key the pre-shared-key handshake ends in a reset or, when the other
  // side waits for more bytes, a timeout; the other way round, the encryption handshake fails.
  for (const [what, seedArgs, joinerArgs] of [
    ['a keyed agent joining a cluster without a key', [], ['--cluster-key', key]],
    ['an agent without a key joining a keyed cluster', ['--cluster-key', key], []],
  ] as const) {
    it(`${what} gives up saying the keys may differ`, async () => {
      const seed = await cluster.add([...seedArgs], `seed-${cluster.agents.length + 1}`);
      await cluster.ready(seed);
      const httpPort = await freePort();
      const r = await agentUntilExit([
        ...joinerArgs,
        '--bind',
        `127.0.0.1:${await freePort()}`,
        '--http',
        `127.0.0.1:${httpPort}`,
        '--join',
        `127.0.0.1:${seed.clusterPort}`,
        '--retry-join-interval',
        '100ms',
        '--retry-join-max-attempts',
        '2',
      ]);
      assert.equal(r.code, 1, r.output);
      const fatal = fatalError(r.output);
      assert.match(fatal, /^gave up joining 127\.0\.0\.1:\d+ after 2 attempts; the last: /, r.output);
      assert.match(fatal, /handshake failed \(.*\); is --cluster-key the same on both agents\?$/, r.output);
    });
  }
});
