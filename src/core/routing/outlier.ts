// Passive health checking (outlier ejection by consecutive failures), as Envoy's consecutive_5xx
// detector and Consul's PassiveHealthCheck: each caller's agent counts, per instance, the calls
// that failed in a row (5xx, gRPC server errors, connect failures: what the balancers are told is
// not ok); at maxFailures the instance is ejected, and this agent sends it no calls until the
// ejection ends. The n-th ejection in a row lasts baseEjectionTimeMs × 2^(n−1), at most
// maxEjectionTimeMs; a call that succeeds after the instance returns ends the run. Ejections are
// capped so that a wave of failures (a bad deploy, a shared dependency down) cannot empty a
// service: at most maxEjectionPercent of its instances, though always at least one.
//
// Pure: time comes in as nowMs, so the simulator and the tests drive it by hand.
import { PASSIVE_HEALTH_DEFAULTS, type PassiveHealthCheck } from '../state/kinds/passive-health.js';

export type OutlierSettings = Required<PassiveHealthCheck>;

export const OUTLIER_LIMITS = Object.freeze({
  /**
   * Instances one detector keeps state for. Only instances whose last call failed, or that are
   * ejected, have any; an instance whose calls succeed costs nothing. Beyond this, failures of
   * instances not yet tracked are not counted (they are still balanced away from by ewma).
   */
  entriesMax: 4_096,
  /** Doublings of the ejection time: 2^20 × the shortest base is past the longest max anyway. */
  doublingsMax: 20,
});

/** The settings with every unset field at its default. */
export function outlierSettings(p: PassiveHealthCheck): OutlierSettings {
  return { ...PASSIVE_HEALTH_DEFAULTS, ...p };
}

/** How long the n-th ejection in a row lasts (n ≥ 1): base × 2^(n−1), at most max (validation keeps base ≤ max). */
export function ejectionTimeMs(s: OutlierSettings, n: number): number {
  const doublings = Math.min(Math.max(0, n - 1), OUTLIER_LIMITS.doublingsMax);
  return Math.min(s.baseEjectionTimeMs * 2 ** doublings, s.maxEjectionTimeMs);
}

/** How many of `total` instances may be ejected at once: the percentage rounded down, but one at least (none at 0%). */
export function ejectionsAllowed(s: OutlierSettings, total: number): number {
  if (s.maxEjectionPercent <= 0) return 0;
  return Math.max(1, Math.floor((total * s.maxEjectionPercent) / 100));
}

interface Entry {
  /** Failed calls in a row since the last success or ejection. */
  failures: number;
  /** Ejections in a row (a success after returning resets them). */
  ejections: number;
  /** Ejected until then; 0: not ejected. */
  untilMs: number;
}

/** One service's instances, as seen by one agent. */
export class OutlierDetector {
  private readonly entries = new Map<string, Entry>();
  /** Entries with untilMs ≠ 0: some may have expired (they return when next looked at). */
  private marked = 0;

  /** Nothing is or was just ejected: pickers can skip the filter. */
  get idle(): boolean {
    return this.marked === 0;
  }

  /**
   * One call to `id` ended. Returns the ejection's length when this result ejects the instance.
   * `total`: the service's instances now, for maxEjectionPercent.
   */
  onResult(id: string, ok: boolean, nowMs: number, s: OutlierSettings, total: number): number | undefined {
    let e = this.entries.get(id);
    if (ok) {
      // Calls begun before an ejection may end after it: they neither end it nor count.
      if (e !== undefined && !this.ejected(e, nowMs)) this.entries.delete(id);
      return undefined;
    }
    if (e === undefined) {
      if (this.entries.size >= OUTLIER_LIMITS.entriesMax) return undefined;
      e = { failures: 0, ejections: 0, untilMs: 0 };
      this.entries.set(id, e);
    }
    if (this.ejected(e, nowMs)) return undefined;
    e.failures++;
    if (e.failures < s.maxFailures) return undefined;
    if (this.ejectedCount(nowMs) >= ejectionsAllowed(s, total)) return undefined;
    e.ejections++;
    e.failures = 0;
    const lengthMs = ejectionTimeMs(s, e.ejections);
    e.untilMs = nowMs + lengthMs;
    this.marked++;
    return lengthMs;
  }

  /** Is `id` ejected now? An ejection that has run out ends here. */
  isEjected(id: string, nowMs: number): boolean {
    const e = this.entries.get(id);
    return e !== undefined && this.ejected(e, nowMs);
  }

  /** The instances ejected now, with when each returns. */
  ejectedNow(nowMs: number): Array<{ id: string; untilMs: number }> {
    const out: Array<{ id: string; untilMs: number }> = [];
    for (const [id, e] of this.entries) if (this.ejected(e, nowMs)) out.push({ id, untilMs: e.untilMs });
    return out;
  }

  /** Forget instances that are gone (`keep` says which remain). */
  retain(keep: (id: string) => boolean): void {
    for (const [id, e] of this.entries)
      if (!keep(id)) {
        if (e.untilMs !== 0) this.marked--;
        this.entries.delete(id);
      }
  }

  /** How many instances the detector holds state for (tests, and the bound). */
  get size(): number {
    return this.entries.size;
  }

  private ejectedCount(nowMs: number): number {
    if (this.marked === 0) return 0;
    let n = 0;
    for (const e of this.entries.values()) if (this.ejected(e, nowMs)) n++;
    return n;
  }

  private ejected(e: Entry, nowMs: number): boolean {
    if (e.untilMs === 0) return false;
    if (nowMs < e.untilMs) return true;
    // Back: calls go to it again, and its next failures count from zero.
    e.untilMs = 0;
    this.marked--;
    return false;
  }
}
