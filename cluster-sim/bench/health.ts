// bench:health — real agent processes on 127.0.0.1 (default 30; BENCH_AGENTS=N), one service per
// agent with a TTL check.
//   flip   : 20 times, a check on one agent flips (pass ↔ fail, through its HTTP API); time from
//            the flip until every agent's catalog shows the new health (p50 / p99 / max). Every
//            agent is watched with a blocking query on that service, so the figure is the
//            catalog's propagation, not a polling interval.
//   memory : 10,000 instances registered across the agents (BENCH_INSTANCES=N); heap used by one
//            agent before and after (as the agent reports it, GC not forced), and the catalog core
//            alone in this process with 10,000 instances (GC forced; run with --expose-gc).
// There is no Debian package of a tool with a gossiped service catalog (Consul is not packaged),
// so this prints our figures only.
import '../../src/polyfill.js';
import { Catalog } from '../../src/core/catalog/catalog.js';
import type { Instance } from '../../src/core/catalog/types.js';
import { type AgentProc, LocalCluster, sleep, waitFor } from '../launcher.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? '30');
const FLIPS = Number(process.env.BENCH_FLIPS ?? '20');
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? '10000');
const STEP_TIMEOUT_MS = 30_000;

const base = (a: AgentProc): string => `http://127.0.0.1:${a.httpPort}`;

/** Network errors retried by put (registrations are idempotent), reported with the figures. */
let putRetries = 0;

async function put(a: AgentProc, path: string, body?: unknown, attempt = 1): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${base(a)}${path}`, {
      method: 'PUT',
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? '';
    const exit = a.proc?.exitCode ?? a.proc?.signalCode ?? 'running';
    // A keep-alive connection the agent closed as the next request went out (ECONNRESET) is the
    // client's race, not the agent's failure: retry a few times, and count it.
    if (exit === 'running' && attempt < 4) {
      putRetries++;
      await sleep(100);
      return put(a, path, body, attempt + 1);
    }
    throw new Error(
      `PUT ${path} on ${a.name}: ${(err as Error).message} ${cause} (agent: ${exit})\n${a.output.slice(-15).join('\n')}`,
    );
  }
  if (!res.ok) throw new Error(`PUT ${path}: HTTP ${res.status} ${await res.text()}`);
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
};

/** Resolves with the time `a` first answers that service `name`'s instance has `health`. */
async function seen(a: AgentProc, name: string, health: string, signal: AbortSignal): Promise<number> {
  let index = 0;
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const res = await fetch(`${base(a)}/v1/health/service/${name}?index=${index}&wait=20s`, { signal });
    const at = performance.now();
    const list = (await res.json()) as Array<{ health: string }>;
    if (list[0]?.health === health) return at;
    index = Number(res.headers.get('x-mesh-index') ?? '0');
  }
  throw new Error(`${a.name} never saw ${name} ${health}`);
}

async function flips(cluster: LocalCluster): Promise<number[]> {
  const out: number[] = [];
  // Every check starts passing; each flip turns its check to the other state.
  const critical = new Set<string>();
  for (let i = 0; i < FLIPS; i++) {
    const owner = cluster.agents[i % cluster.agents.length]!;
    const name = `svc-${owner.index}`;
    const health = critical.has(name) ? 'passing' : 'critical';
    if (health === 'critical') critical.add(name);
    else critical.delete(name);
    const ac = new AbortController();
    // Watchers first (each answers at once with the current state, then blocks).
    const watchers = cluster.agents.map((a) => seen(a, name, health, ac.signal));
    await sleep(200);
    const t0 = performance.now();
    await put(owner, `/v1/agent/check/${health === 'critical' ? 'fail' : 'pass'}/service:${name}`);
    const times = await Promise.all(watchers);
    out.push(Math.max(...times) - t0);
    ac.abort();
    await sleep(300);
  }
  return out;
}

async function heapUsedMiB(a: AgentProc): Promise<number> {
  const res = await fetch(`${base(a)}/v1/agent/self`);
  const self = (await res.json()) as { memory: { heapUsed: number }; stats: Record<string, number> };
  return self.memory.heapUsed / 2 ** 20;
}

async function catalogInstances(a: AgentProc): Promise<number> {
  const res = await fetch(`${base(a)}/v1/agent/self`);
  return ((await res.json()) as { stats: { catalogInstances: number } }).stats.catalogInstances;
}

function instance(i: number): Instance {
  return {
    id: `bulk-${i}`,
    name: `bulk-${i % 500}`,
    address: '',
    port: 10_000 + (i % 50_000),
    tags: ['v1'],
    meta: { version: '1.0.0' },
    protocol: 'http',
    checks: [{ id: `service:bulk-${i}`, name: 'TTL', type: 'ttl', status: 'passing', output: '' }],
  };
}

/** The catalog core alone: heap delta of holding INSTANCES instances from AGENTS agents. */
function coreMemoryMiB(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  gc();
  const before = process.memoryUsage().heapUsed;
  const catalog = new Catalog('self', 0);
  const perAgent = Math.ceil(INSTANCES / AGENTS);
  for (let n = 0; n < AGENTS; n++) {
    const instances = Array.from({ length: perAgent }, (_, k) => instance(n * perAgent + k));
    catalog.receive(`agent-${n}`, {
      t: 'records',
      records: [{ node: `agent-${n}`, version: 1, instances }],
      want: [],
    });
  }
  gc();
  const after = process.memoryUsage().heapUsed;
  if (catalog.instanceCount() !== perAgent * AGENTS) throw new Error('core did not take every instance');
  return (after - before) / 2 ** 20;
}

async function main(): Promise<void> {
  const cluster = new LocalCluster({ outputLinesMax: 200, logLevel: 'warn' });
  try {
    await cluster.add(['--bootstrap']);
    for (let i = 1; i < AGENTS; i++) await cluster.add();
    for (const a of cluster.agents) await cluster.ready(a, 60_000);
    if (!(await waitFor(() => cluster.allSeeAlive(AGENTS), 60_000, 250)))
      throw new Error('cluster did not form');
    for (const a of cluster.agents) {
      await put(a, '/v1/agent/service/register', {
        name: `svc-${a.index}`,
        port: 8000 + a.index,
        check: { ttl: '10m', status: 'passing' },
      });
    }
    const everywhere = async (): Promise<boolean> => {
      for (const a of cluster.agents) if ((await catalogInstances(a)) < AGENTS) return false;
      return true;
    };
    if (!(await waitFor(everywhere, 60_000, 250))) throw new Error('registrations did not spread');
    await sleep(2_000);

    const times = await flips(cluster);
    console.log(`bench:health — ${AGENTS} agents on 127.0.0.1, one service each, ${FLIPS} check flips`);
    console.log(
      `check flip → every agent's catalog: p50 ${quantile(times, 0.5).toFixed(0)} ms, ` +
        `p99 ${quantile(times, 0.99).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms`,
    );

    const probe = cluster.agents[AGENTS - 1]!;
    const heapBefore = await heapUsedMiB(probe);
    const perAgent = Math.ceil(INSTANCES / AGENTS);
    const tReg = performance.now();
    const putMs: number[] = [];
    await Promise.all(
      cluster.agents.map(async (a) => {
        for (let k = 0; k < perAgent; k++) {
          const t = performance.now();
          await put(a, '/v1/agent/service/register', {
            name: `bulk-${k % 100}`,
            id: `bulk-${a.index}-${k}`,
            port: 10_000 + k,
            tags: ['v1'],
            meta: { version: '1.0.0' },
            check: { ttl: '10m', status: 'passing' },
          });
          putMs.push(performance.now() - t);
        }
      }),
    );
    console.log(
      `registration calls (${putMs.length}, ${AGENTS} agents at once): p50 ${quantile(putMs, 0.5).toFixed(1)} ms, ` +
        `p99 ${quantile(putMs, 0.99).toFixed(1)} ms, max ${Math.max(...putMs).toFixed(0)} ms, ${putRetries} retried after a connection reset`,
    );
    const total = perAgent * AGENTS + AGENTS;
    const spread = await waitFor(async () => (await catalogInstances(probe)) >= total, 120_000, 500);
    const regS = (performance.now() - tReg) / 1000;
    await sleep(3_000);
    const heapAfter = await heapUsedMiB(probe);
    const stats = (await (await fetch(`${base(probe)}/v1/agent/self`)).json()) as {
      stats: Record<string, number>;
    };
    const pick = Object.entries(stats.stats).filter(([k]) => k.startsWith('catalog'));
    console.log(`catalog counters on ${probe.name}: ${pick.map(([k, v]) => `${k}=${v}`).join(' ')}`);
    console.log(
      `catalog with ${total} instances: ${spread ? `on every agent ${regS.toFixed(1)} s after registration began` : 'NOT all seen within 120 s'}; ` +
        `agent heap ${heapBefore.toFixed(1)} → ${heapAfter.toFixed(1)} MiB (+${(heapAfter - heapBefore).toFixed(1)} MiB, GC not forced)`,
    );
  } finally {
    await cluster.stop();
  }
  const core = coreMemoryMiB();
  console.log(
    core === undefined
      ? 'catalog core alone: run with node --expose-gc to measure'
      : `catalog core alone, ${INSTANCES} instances from ${AGENTS} agents: ${core.toFixed(1)} MiB heap (${((core * 2 ** 20) / INSTANCES).toFixed(0)} bytes per instance)`,
  );
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
