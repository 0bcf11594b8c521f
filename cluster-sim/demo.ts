// `npm run demo`: the mesh working end to end in one command, for a newcomer. Three real agents on
// 127.0.0.1, two versions of a `backend` service and a `frontend` that calls it through its agent's
// upstream port, config entries that split the calls 90/10 between the versions, and a short load
// that shows the split. Every step is bounded; on failure the agents' last log lines are printed and
// the demo exits 1. Only the agents started here are signalled (the launcher does it by PID).
import { execFile } from 'node:child_process';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AgentProc, freePort, LocalCluster, MESH_BIN, sleep, waitFor } from './launcher.js';

const TRAFFIC_MS = 10_000;
const TRAFFIC_REQUESTS_MAX = 20_000;
const CONCURRENCY = 8;
const UPSTREAM_WAIT_MS = 60_000;
/** Nothing in the demo should come near this; it only guarantees that a hang ends. */
const WATCHDOG_MS = 120_000;

const say = (line = ''): void => console.log(line);
const secs = (t0: number): string => `${((performance.now() - t0) / 1_000).toFixed(1)} s`;

/** A tiny HTTP service answering one JSON body on every path (its health check included). */
function startServer(body: object): Promise<Server> {
  const text = JSON.stringify(body);
  const srv = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(text);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}
const portOf = (srv: Server): number => (srv.address() as AddressInfo).port;

class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** One call to an agent's HTTP API; a non-2xx answer throws with the agent's message. */
async function api(a: AgentProc, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${a.httpPort}${path}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  if (!res.ok)
    throw new ApiError(`${method} ${path} on ${a.name}: HTTP ${res.status} ${text.trim()}`, res.status);
  return text === '' ? undefined : JSON.parse(text);
}

/**
 * Writes an entry in the file form PUT /v1/config reads (kind and name beside the settings, see
 * docs/http-api.md). Retries only while Raft has no leader yet (503) or the call itself failed:
 * a 400 names a mistake that retrying cannot fix.
 */
async function putConfig(a: AgentProc, entry: { kind: string; name: string; spec: object }): Promise<void> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    try {
      await api(a, 'PUT', '/v1/config', { kind: entry.kind, name: entry.name, ...entry.spec });
      say(`  ${entry.kind} ${entry.name}: ${JSON.stringify(entry.spec)}`);
      return;
    } catch (err) {
      if ((err instanceof ApiError && err.status < 500) || performance.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

/** Runs the CLI as a newcomer would type it, and prints its output indented under the command. */
function cli(a: AgentProc, args: string[]): Promise<void> {
  say(`$ mesh ${args.join(' ')} --http 127.0.0.1:${a.httpPort}`);
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [MESH_BIN, ...args, '--http', `127.0.0.1:${a.httpPort}`],
      { timeout: 10_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`mesh ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(say(stdout.trimEnd().replace(/^/gm, '  ')));
      },
    );
  });
}

/** One GET through the upstream port: the backend's version, or undefined for any failure. */
function callOnce(agent: Agent, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(undefined);
        try {
          resolve(String((JSON.parse(text) as { version?: unknown }).version));
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** ~10 s of calls from a few concurrent clients, with one line of cumulative counts a second. */
async function traffic(port: number): Promise<void> {
  // v1 and v2 listed from the start, so a version that gets nothing still shows as 0.
  const counts = new Map(['v1', 'v2'].map((v) => [v, 0]));
  let errors = 0;
  let sent = 0;
  const t0 = performance.now();
  const line = (label: string): string => {
    const ok = [...counts.values()].reduce((s, n) => s + n, 0);
    const parts = [...counts].map(([v, n]) => `${v} ${n} (${((100 * n) / Math.max(1, ok)).toFixed(1)}%)`);
    return `  ${label}  ${parts.join('  ')}  errors ${errors}`;
  };
  const ticker = setInterval(() => say(line(`t=${Math.round((performance.now() - t0) / 1_000)}s`)), 1_000);
  // Keep-alive, so the numbers measure the mesh and not connection set-up on loopback.
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const worker = async (): Promise<void> => {
    while (performance.now() - t0 < TRAFFIC_MS && sent < TRAFFIC_REQUESTS_MAX) {
      sent++;
      const v = await callOnce(agent, port);
      if (v === undefined) errors++;
      else counts.set(v, (counts.get(v) ?? 0) + 1);
    }
  };
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    clearInterval(ticker);
    agent.destroy();
  }
  say(`${line('done')}  (${sent} requests in ${secs(t0)})`);
}

async function main(cluster: LocalCluster, servers: Server[]): Promise<void> {
  const t0 = performance.now();
  say(`starting 3 agents on 127.0.0.1 (data dirs in ${cluster.root})`);
  // n01 creates the Raft cluster; the launcher points the others at it with --join.
  const agents = [await cluster.add(['--bootstrap']), await cluster.add(), await cluster.add()];
  const [n1, n2, n3] = agents as [AgentProc, AgentProc, AgentProc];
  for (const a of agents) await cluster.ready(a, 20_000);
  if (!(await waitFor(() => cluster.allSeeAlive(3), 20_000, 100)))
    throw new Error('the agents did not all see each other alive within 20 s');
  say(`  n01, n02, n03 alive (${secs(t0)})`);

  const v1 = await startServer({ service: 'backend', version: 'v1' });
  const v2 = await startServer({ service: 'backend', version: 'v2' });
  const front = await startServer({ service: 'frontend' });
  servers.push(v1, v2, front);
  const localPort = await freePort();

  say('registering services');
  for (const [a, v, srv] of [
    [n2, 'v1', v1],
    [n3, 'v2', v2],
  ] as const) {
    await api(a, 'PUT', '/v1/agent/service/register', {
      name: 'backend',
      id: `backend-${v}`,
      port: portOf(srv),
      meta: { version: v },
      protocol: 'http',
      // A short interval so the instance passes (and takes traffic) within a second.
      check: { http: `http://127.0.0.1:${portOf(srv)}/health`, interval: '1s' },
    });
    say(`  backend ${v} on ${a.name} (port ${portOf(srv)}, meta version=${v}, HTTP check every 1s)`);
  }
  await api(n1, 'PUT', '/v1/agent/service/register', {
    name: 'frontend',
    port: portOf(front),
    protocol: 'http',
    upstreams: [{ service: 'backend', localPort }],
  });
  say(`  frontend on n01 with upstream backend on 127.0.0.1:${localPort}`);

  say('writing config entries through n01 (agreed by Raft, replicated to every agent)');
  await putConfig(n1, { kind: 'service-defaults', name: 'backend', spec: { protocol: 'http' } });
  await putConfig(n1, {
    kind: 'service-resolver',
    name: 'backend',
    spec: {
      subsets: { v1: { filter: { meta: { version: 'v1' } } }, v2: { filter: { meta: { version: 'v2' } } } },
    },
  });
  await putConfig(n1, {
    kind: 'service-splitter',
    name: 'backend',
    spec: {
      splits: [
        { weight: 90, serviceSubset: 'v1' },
        { weight: 10, serviceSubset: 'v2' },
      ],
    },
  });

  // Both instances must pass before the split can be seen: until then one subset has nowhere to go.
  say('waiting until n01 sees both backend instances passing, then for the upstream to answer 200');
  const passing = async (): Promise<boolean> => {
    try {
      const list = (await api(n1, 'GET', '/v1/health/service/backend?passing')) as unknown[];
      return list.length === 2;
    } catch {
      return false;
    }
  };
  const w0 = performance.now();
  if (!(await waitFor(passing, UPSTREAM_WAIT_MS, 200)))
    throw new Error(`backend instances not both passing on n01 after ${UPSTREAM_WAIT_MS / 1_000} s`);
  const probe = new Agent();
  let last: string | undefined;
  const answering = async (): Promise<boolean> => {
    last = await callOnce(probe, localPort);
    return last !== undefined;
  };
  const left = Math.max(1_000, UPSTREAM_WAIT_MS - (performance.now() - w0));
  const answered = await waitFor(answering, left, 250);
  probe.destroy();
  if (!answered)
    throw new Error(`http://127.0.0.1:${localPort}/ did not answer 200 within ${UPSTREAM_WAIT_MS / 1_000} s`);
  say(`  upstream answers (first answer from ${last}) after ${secs(w0)}`);
  say();

  await cli(n1, ['members']);
  await cli(n1, ['catalog', 'services']);
  say();
  say(`sending requests to 127.0.0.1:${localPort} for ${TRAFFIC_MS / 1_000} s (${CONCURRENCY} at once)`);
  await traffic(localPort);
  say();
  // These agents stop with the demo, so point at a cluster that stays up.
  say('next, with agents that stay up (`npm run cluster`, then MESH_HTTP_ADDR=<an agent> as it prints):');
  say('  curl "http://$MESH_HTTP_ADDR/v1/agent/metrics?format=prometheus"   # the proxy\'s request metrics');
  say('  mesh intention deny frontend backend   # calls from frontend to backend now get 403');
  say('  docs/configuration-entries.md: resolvers, splitters, routers, intentions');
}

async function stopAll(cluster: LocalCluster, servers: Server[]): Promise<void> {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await cluster.stop();
}

function printLogs(cluster: LocalCluster): void {
  for (const a of cluster.agents) {
    console.error(`--- ${a.name}: last log lines ---`);
    console.error(a.output.slice(-10).join('\n') || '(no output)');
  }
}

const cluster = new LocalCluster({ logLevel: 'info' });
const servers: Server[] = [];
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    say(`\n${sig}: stopping the agents and servers`);
    void stopAll(cluster, servers).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}
const watchdog = setTimeout(() => {
  if (stopping) return;
  stopping = true;
  console.error(`demo: still running after ${WATCHDOG_MS / 1_000} s; giving up`);
  printLogs(cluster);
  void stopAll(cluster, servers).finally(() => process.exit(1));
}, WATCHDOG_MS);
watchdog.unref();

try {
  await main(cluster, servers);
  if (!stopping) {
    stopping = true;
    await stopAll(cluster, servers);
    say('stopped the agents and servers');
    process.exit(0);
  }
} catch (err) {
  // Interrupted: the signal handler is already stopping everything and will exit.
  if (!stopping) {
    stopping = true;
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    printLogs(cluster);
    await stopAll(cluster, servers);
    process.exit(1);
  }
}
