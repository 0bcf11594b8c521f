// What the agents' proxy threads were kept from running during a benchmark round, read from their
// Prometheus metrics (mesh_proxy_event_loop_delay_seconds, mesh_proxy_gc_pause_seconds) before and
// after it: a tail that neither these nor the machine's stalls (stall.ts) explain is elsewhere.
import type { AgentProc } from '../launcher.js';

/** An agent's Prometheus text; throws when it cannot be read. */
export async function fetchMetrics(a: AgentProc): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${a.httpPort}/v1/agent/metrics?format=prometheus`, {
    signal: AbortSignal.timeout(5_000),
  });
  if (!res.ok) throw new Error(`metrics: HTTP ${res.status}`);
  return await res.text();
}

/** An agent's Prometheus text, or '' when it cannot be read. */
async function metricsOf(a: AgentProc): Promise<string> {
  try {
    return await fetchMetrics(a);
  } catch {
    return ''; // unread: the round says nothing of this agent's pauses
  }
}

/**
 * A histogram's cumulative bucket counts by bound (`le`) in Prometheus `text`, for the series whose
 * other labels are exactly `labels` (as written, e.g. `kind="major"`; prom-client writes `le` first).
 */
export function buckets(text: string, name: string, labels = ''): Map<string, number> {
  const out = new Map<string, number>();
  const head = `${name}_bucket{`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(head)) continue;
    const close = line.indexOf('}', head.length);
    if (close < 0) continue;
    const parts = line.slice(head.length, close).split(/,(?=[a-zA-Z_]\w*=")/);
    const le = parts.find((p) => p.startsWith('le="'));
    if (le === undefined || parts.filter((p) => p !== le).join(',') !== labels) continue;
    out.set(le.slice('le="'.length, -1), Number(line.slice(close + 1).trim()));
  }
  return out;
}

/** What each agent's proxy thread was kept from running during a round: read before, then `done()` says it. */
export async function proxyPauses(agents: readonly AgentProc[]): Promise<{ done(): Promise<string> }> {
  const read = async (a: AgentProc): Promise<[Map<string, number>, Map<string, number>]> => {
    const text = await metricsOf(a);
    return [
      buckets(text, 'mesh_proxy_event_loop_delay_seconds'),
      buckets(text, 'mesh_proxy_gc_pause_seconds', 'kind="major"'),
    ];
  };
  const before = await Promise.all(agents.map(read));
  return {
    async done() {
      const after = await Promise.all(agents.map(read));
      return agents
        .map((a, i) => {
          const [d0, g0] = before[i] as [Map<string, number>, Map<string, number>];
          const [d1, g1] = after[i] as [Map<string, number>, Map<string, number>];
          const delta = (m1: Map<string, number>, m0: Map<string, number>, le: string): number =>
            (m1.get(le) ?? 0) - (m0.get(le) ?? 0);
          // Unread before or after, or fewer ticks after than before (the proxy worker restarted).
          if (d0.size === 0 || d1.size === 0 || delta(d1, d0, '+Inf') <= 0) return `${a.name} —`;
          // Ticks later than 10 ms, and the smallest bound all ticks fell under (the longest one's bucket).
          const late = delta(d1, d0, '+Inf') - delta(d1, d0, '0.01');
          const bounds = [...d1.keys()].filter((le) => le !== '+Inf');
          const under = bounds.find((le) => delta(d1, d0, le) === delta(d1, d0, '+Inf'));
          const majors = delta(g1, g0, '+Inf');
          return `${a.name} ${late} loop delays > 10 ms (all ≤ ${under ?? '∞'} s), ${majors} major GC`;
        })
        .join(', ');
    },
  };
}
