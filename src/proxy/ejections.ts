// The proxy's side of passive health checks: one OutlierDetector (core/routing/outlier.ts) per
// destination service whose resolver has a passiveHealthCheck, fed the end of every call the
// balancers are told of, and consulted when candidates are picked. Detectors outlive snapshots
// (the failures in a row are the point) and are dropped with their service's setting. Ejections
// are timed on the monotonic clock: a wall-clock step back must not keep an instance out longer.
import { OutlierDetector, type OutlierSettings, outlierSettings } from '../core/routing/outlier.js';
import type { ProxyEndpoint, ProxySnapshot } from './types.js';

export interface Ejection {
  service: string;
  /** `<agent id>/<instance id>`, as the endpoints' ids. */
  id: string;
  lengthMs: number;
}

export class Ejections {
  private settings = new Map<string, OutlierSettings>();
  private readonly detectors = new Map<string, OutlierDetector>();
  private totals = new Map<string, number>();
  /** Told of each ejection as it starts (metrics, a log line). */
  onEject: (e: Ejection) => void = () => undefined;

  constructor(private readonly clock: () => number = () => performance.now()) {}

  apply(s: ProxySnapshot): void {
    const settings = new Map<string, OutlierSettings>();
    for (const chain of Object.values(s.chains))
      for (const t of chain.targets)
        if (t.passiveHealthCheck !== undefined && !settings.has(t.service))
          settings.set(t.service, outlierSettings(t.passiveHealthCheck));
    this.settings = settings;
    this.totals = new Map();
    for (const [service, d] of this.detectors) {
      if (!settings.has(service)) {
        this.detectors.delete(service);
        continue;
      }
      const ids = new Set((s.endpoints[service] ?? []).map((e) => e.id));
      d.retain((id) => ids.has(id));
    }
    for (const service of settings.keys()) this.totals.set(service, s.endpoints[service]?.length ?? 0);
  }

  /** A call to `e` ended; `ok` as the balancers are told. */
  onResult(e: ProxyEndpoint, ok: boolean): void {
    const s = this.settings.get(e.service);
    if (s === undefined) return;
    let d = this.detectors.get(e.service);
    if (d === undefined) {
      if (ok) return;
      d = new OutlierDetector();
      this.detectors.set(e.service, d);
    }
    const lengthMs = d.onResult(e.id, ok, this.clock(), s, this.totals.get(e.service) ?? 1);
    if (lengthMs !== undefined) this.onEject({ service: e.service, id: e.id, lengthMs });
  }

  /** `cands` without the ejected; all of them when every one is ejected (a failing instance beats none). */
  filter(service: string, cands: ProxyEndpoint[]): ProxyEndpoint[] {
    const d = this.detectors.get(service);
    if (d === undefined || d.idle) return cands;
    const nowMs = this.clock();
    let kept: ProxyEndpoint[] | undefined;
    for (let i = 0; i < cands.length; i++) {
      const c = cands[i] as ProxyEndpoint;
      if (d.isEjected(c.id, nowMs)) kept ??= cands.slice(0, i);
      else kept?.push(c);
    }
    return kept === undefined || kept.length === 0 ? cands : kept;
  }

  /** How many instances are ejected now, for every service with a detector (0 included). */
  counts(): Map<string, number> {
    const nowMs = this.clock();
    const out = new Map<string, number>();
    for (const [service, d] of this.detectors) out.set(service, d.ejectedNow(nowMs).length);
    return out;
  }

  /** Every instance ejected now, by service, with how long until it returns. */
  list(): Array<{ service: string; id: string; remainingMs: number }> {
    const nowMs = this.clock();
    const out: Array<{ service: string; id: string; remainingMs: number }> = [];
    for (const [service, d] of this.detectors)
      for (const e of d.ejectedNow(nowMs)) out.push({ service, id: e.id, remainingMs: e.untilMs - nowMs });
    return out;
  }
}
