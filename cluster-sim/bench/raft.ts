// bench:raft — the Raft control plane through the HTTP API, real agents on 127.0.0.1:
//   seq         : 2000 sequential PUTs (16 B keys, 256 B values) to the leader, after 200 warm-up
//                 → p50/p99 (keep-alive HTTP, like etcd's JSON gateway in the anchor)
//   tput        : 64 concurrent writers for 10 s → writes/s, p50/p99
//   failover    : kill -9 the leader; a fresh PUT every 20 ms on the survivors (2 s timeout each)
//                 until one succeeds → ms from the kill (repeated BENCH_KILLS times, default 3;
//                 every acknowledged write is checked on every agent at the end: lost must be 0)
//   propagation : 10 agents (3 voters, 7 replicas); for each of 200 writes, a blocking query is
//                 parked on every agent; time from the write's acknowledgement until each agent
//                 answers → p50/p99 of the slowest agent per write
// When etcd is installed (apt-get install etcd-server etcd-client) the anchor
// ../shared/anchors/etcd_cluster.mjs runs in the same run and both are printed side by side.
import '../../src/polyfill.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AgentProc, LocalCluster, sleep, waitFor } from '../launcher.js';

const SEQ_N = Number(process.env.BENCH_SEQ ?? '2000');
const WARM_N = 200;
const CONC = 64;
const TPUT_S = Number(process.env.BENCH_TPUT_S ?? '10');
const KILLS = Number(process.env.BENCH_KILLS ?? '3');
const PROP_N = Number(process.env.BENCH_PROP_N ?? '200');
const VALUE = 'v'.repeat(256);
/** BENCH_ONLY=seq,failover,propagation,etcd runs a subset (default: all). */
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
const want = (part: string): boolean => ONLY.length === 0 || ONLY.includes(part);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

function request(
  port: number,
  method: string,
  path: string,
  body?: string,
  timeoutMs = 5_000,
): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function put(a: AgentProc, key: string, timeoutMs = 5_000): Promise<boolean> {
  const r = await request(a.httpPort, 'PUT', `/v1/kv/${key}`, VALUE, timeoutMs);
  return r.status === 200 && r.text.trim() === 'true';
}

async function leaderOf(c: LocalCluster): Promise<AgentProc> {
  for (let i = 0; i < 200; i++) {
    for (const a of c.running()) {
      try {
        const st = JSON.parse((await request(a.httpPort, 'GET', '/v1/raft/status')).text) as {
          leaderName: string;
        };
        const l = c.running().find((x) => x.name === st.leaderName);
        if (l) return l;
      } catch {
        // not ready
      }
    }
    await sleep(50);
  }
  throw new Error('no leader');
}

async function startCluster(n: number): Promise<LocalCluster> {
  const c = new LocalCluster({ outputLinesMax: 500 });
  await c.add(['--bootstrap']);
  for (let i = 1; i < n; i++) await c.add();
  for (const a of c.agents) await c.ready(a, 60_000);
  const ok = await waitFor(
    async () => {
      try {
        const peers = JSON.parse(
          (await request(c.agents[0]!.httpPort, 'GET', '/v1/raft/peers')).text,
        ) as Array<{ voter: boolean }>;
        return peers.filter((p) => p.voter).length === Math.min(3, n);
      } catch {
        return false;
      }
    },
    60_000,
    200,
  );
  if (!ok) throw new Error('voters not in place');
  return c;
}

interface Figures {
  seq_p50_ms: number;
  seq_p99_ms: number;
  tput_ops: number;
  tput_p50_ms: number;
  tput_p99_ms: number;
  failover_ms: number;
  lost_writes: number;
  prop_p50_ms: number;
  prop_p99_ms: number;
}

async function sequentialAndThroughput(f: Partial<Figures>): Promise<void> {
  const c = await startCluster(3);
  try {
    const leader = await leaderOf(c);
    for (let i = 0; i < WARM_N; i++) await put(leader, `warm/${String(i).padStart(11, '0')}`);
    const lat: number[] = [];
    for (let i = 0; i < SEQ_N; i++) {
      const t0 = performance.now();
      if (!(await put(leader, `seq/${String(i).padStart(12, '0')}`)))
        throw new Error('sequential put failed');
      lat.push(performance.now() - t0);
    }
    f.seq_p50_ms = pct(lat, 50);
    f.seq_p99_ms = pct(lat, 99);
    const tl: number[] = [];
    const end = performance.now() + TPUT_S * 1_000;
    let n = 0;
    await Promise.all(
      Array.from({ length: CONC }, async (_, w) => {
        for (let i = 0; performance.now() < end && i < 10_000_000; i++) {
          const t0 = performance.now();
          if (await put(leader, `tp/${String(w).padStart(2, '0')}/${String(i).padStart(9, '0')}`)) {
            tl.push(performance.now() - t0);
            n++;
          }
        }
      }),
    );
    f.tput_ops = n / TPUT_S;
    f.tput_p50_ms = pct(tl, 50);
    f.tput_p99_ms = pct(tl, 99);
  } finally {
    await c.stop();
  }
}

async function failover(f: Partial<Figures>): Promise<void> {
  const c = await startCluster(5);
  const acked: string[] = [];
  const times: number[] = [];
  try {
    for (let k = 0; k < KILLS; k++) {
      for (let i = 0; i < 20; i++) {
        const key = `fo/${k}/${i}`;
        if (await put(c.running()[i % c.running().length]!, key).catch(() => false)) acked.push(key);
      }
      const leader = await leaderOf(c);
      const tk = performance.now();
      c.kill(leader, 'SIGKILL');
      const survivors = c.running().filter((a) => a !== leader);
      let tOk = 0;
      for (let attempt = 0; attempt < 1_000 && tOk === 0; attempt++) {
        const a = survivors[attempt % survivors.length]!;
        const key = `fo/${k}/after`;
        // A fresh attempt every 20 ms, each with its own 2 s timeout; the first success wins.
        const p = put(a, key, 2_000).then(
          (ok) => {
            if (ok && tOk === 0) {
              tOk = performance.now();
              acked.push(key);
            }
          },
          () => undefined,
        );
        await Promise.race([p, sleep(20)]);
      }
      times.push(tOk - tk);
      await c.restart(leader);
      await c.ready(leader, 30_000);
    }
    // Every acknowledged write must be on every agent.
    let lost = 0;
    for (const a of c.running()) {
      const ok = await waitFor(
        async () => {
          const r = await request(a.httpPort, 'GET', '/v1/kv/fo/?keys').catch(() => undefined);
          if (r?.status !== 200) return false;
          const keys = new Set(JSON.parse(r.text) as string[]);
          return acked.every((k) => keys.has(k));
        },
        30_000,
        250,
      );
      if (!ok) {
        const r = await request(a.httpPort, 'GET', '/v1/kv/fo/?keys');
        const keys = new Set(JSON.parse(r.text) as string[]);
        lost = Math.max(lost, acked.filter((k) => !keys.has(k)).length);
      }
    }
    f.failover_ms = pct(times, 50);
    f.lost_writes = lost;
    console.log(
      `failover runs (ms): ${times.map((t) => t.toFixed(0)).join(' ')}; acknowledged writes checked: ${acked.length}`,
    );
  } finally {
    await c.stop();
  }
}

async function propagation(f: Partial<Figures>): Promise<void> {
  const c = await startCluster(10);
  try {
    const leader = await leaderOf(c);
    const slowest: number[] = [];
    for (let i = 0; i < PROP_N; i++) {
      const key = `prop/${String(i).padStart(11, '0')}`;
      // Park a blocking query on every agent first.
      const idx = await Promise.all(
        c
          .running()
          .map(async (a) =>
            Number((await request(a.httpPort, 'GET', `/v1/kv/${key}`)).headers['x-mesh-index'] ?? '1'),
          ),
      );
      let tAck = 0;
      const arrivals = c
        .running()
        .map((a, j) =>
          request(a.httpPort, 'GET', `/v1/kv/${key}?index=${idx[j]}&wait=10s`, undefined, 15_000).then(() =>
            performance.now(),
          ),
        );
      await sleep(20);
      if (!(await put(leader, key))) throw new Error('propagation put failed');
      tAck = performance.now();
      const at = await Promise.all(arrivals);
      slowest.push(Math.max(0, Math.max(...at) - tAck));
      await sleep(30);
    }
    f.prop_p50_ms = pct(slowest, 50);
    f.prop_p99_ms = pct(slowest, 99);
  } finally {
    await c.stop();
  }
}

function runEtcd(): Record<string, number> | undefined {
  const have = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).status === 0;
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'anchors');
  if (!have || !existsSync(join(dir, 'etcd_cluster.mjs'))) return undefined;
  if (!existsSync(join(dir, 'node_modules', 'etcd3'))) {
    execFileSync('npm', ['install', '--no-audit', '--no-fund'], {
      cwd: dir,
      stdio: 'ignore',
      timeout: 300_000,
    });
  }
  const out = execFileSync(process.execPath, [join(dir, 'etcd_cluster.mjs'), '1'], {
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 16 << 20,
  });
  const line = out
    .split('\n')
    .reverse()
    .find((l) => l.includes('seq_gw_p50_ms'));
  if (!line) return undefined;
  return Object.fromEntries(
    line
      .split(' ')
      .map((p) => p.split('='))
      .filter((kv) => kv.length === 2)
      .map(([k, v]) => [String(k).replace(/_median$/, ''), Number(v)]),
  );
}

async function main(): Promise<void> {
  const version = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  console.log(`bench:raft  commit ${version}  node ${process.version}`);
  const f: Partial<Figures> = {};
  if (want('seq')) await sequentialAndThroughput(f);
  if (want('failover')) await failover(f);
  if (want('propagation')) await propagation(f);
  let e: Record<string, number> | undefined;
  try {
    if (want('etcd')) e = runEtcd();
  } catch (err) {
    console.log(`etcd run failed: ${(err as Error).message.slice(0, 200)}`);
  }
  const fmt = (v: number | undefined, unit: string): string =>
    v === undefined || Number.isNaN(v) ? '—' : `${unit === 'ops' ? v.toFixed(0) : v.toFixed(2)} ${unit}`;
  const rows: Array<[string, number | undefined, number | undefined, string]> = [
    ['sequential write p50 (HTTP)', f.seq_p50_ms, e?.seq_gw_p50_ms, 'ms'],
    ['sequential write p99 (HTTP)', f.seq_p99_ms, e?.seq_gw_p99_ms, 'ms'],
    ['64 writers: writes/s', f.tput_ops, e?.tput_ops, 'ops'],
    ['64 writers: p50', f.tput_p50_ms, e?.tput_p50_ms, 'ms'],
    ['64 writers: p99', f.tput_p99_ms, e?.tput_p99_ms, 'ms'],
    ['kill -9 leader → write OK', f.failover_ms, e?.put_ok_ms, 'ms'],
    ['write → applied on all 10, p50', f.prop_p50_ms, undefined, 'ms'],
    ['write → applied on all 10, p99', f.prop_p99_ms, undefined, 'ms'],
    ['acknowledged writes lost', f.lost_writes, undefined, ''],
  ];
  console.log(`\n${''.padEnd(34)}${'mesh'.padStart(12)}${'etcd'.padStart(12)}`);
  for (const [label, ours, theirs, unit] of rows)
    console.log(`${label.padEnd(34)}${fmt(ours, unit).padStart(12)}${fmt(theirs, unit).padStart(12)}`);
  console.log(
    `result ${Object.entries(f)
      .map(([k, v]) => `mesh_${k}=${(v as number).toFixed(2)}`)
      .join(' ')}${e ? '' : ' etcd=not-installed'}`,
  );
  if ((f.lost_writes ?? 0) > 0) process.exitCode = 1;
}

main()
  .catch((err) => {
    console.error(`bench:raft failed: ${(err as Error).message}`);
    process.exitCode = 1;
  })
  .finally(() => agent.destroy());
