// What went wrong in the agents during a benchmark, if anything: the requests they answered with a
// status other than 200 and the warnings and errors they logged. wrk reports only a count of
// non-2xx answers; this says which and why.
import type { AgentProc } from '../launcher.js';
import { fetchMetrics } from './pauses.js';

const levelOf = (line: string): number => {
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return typeof level === 'number' ? level : 0;
  } catch {
    return 0;
  }
};

/** An agent's request counters for codes other than 200 (from its metrics), by series. */
export async function nonOkAnswers(a: AgentProc): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await fetchMetrics(a)).split('\n')) {
    if (!line.startsWith('mesh_proxy_requests_total{') || line.includes('code="200"')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/**
 * What went wrong in the agents during the runs, if anything: the requests they answered with a
 * status other than 200 (by direction, services and code, from their metrics) and their warnings
 * and errors. wrk reports only a count of non-2xx answers; this says which and why.
 */
export async function printTrouble(
  agents: readonly AgentProc[],
  before: ReadonlyArray<Map<string, number>>,
): Promise<void> {
  for (const [i, a] of agents.entries()) {
    let lines: string[] = [];
    try {
      for (const [series, n] of await nonOkAnswers(a)) {
        const added = n - (before[i]?.get(series) ?? 0);
        if (added > 0) lines.push(`${series} +${added}`);
      }
    } catch (err) {
      lines = [`metrics not read: ${(err as Error).message}`];
    }
    // pino's levels: 40 warn, 50 error, 60 fatal.
    const warnings = a.output.filter((l) => levelOf(l) >= 40);
    if (lines.length === 0 && warnings.length === 0) continue;
    console.log(`\n${a.name}: answers other than 200 during the runs, and warnings`);
    for (const l of [...lines, ...warnings.slice(-20)]) console.log(`  ${l.slice(0, 400)}`);
  }
}
