// Runs the health checks of the services registered on this agent, as Consul's agent does: each
// probe check on its own interval, each TTL check on its own expiry timer. The threshold logic is
// the pure core in core/catalog/check-state.ts; this file owns only time and concurrency.
//
// Scheduling:
// - The first probe of a check runs at a random offset within its interval, so an agent that starts
//   with many checks (or gets them all in one `set`) spreads them out instead of probing all at once.
// - The next probe is due `intervalMs` after the previous one ended, so a slow check never overlaps
//   itself and a check that times out does not probe faster than its interval.
// - Due checks wait in a FIFO queue and at most `concurrencyMax` probes are in flight. A check is in
//   the queue at most once, so the queue never holds more entries than there are checks.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import {
  applyResult,
  CHECK_OUTPUT_BYTES_MAX,
  type CheckProgress,
  initialProgress,
  truncateOutput,
} from '../core/catalog/check-state.js';
import type { CheckDefinition, CheckState, CheckStatus } from '../core/catalog/types.js';
import { TIMER_DELAY_MS_MAX } from './probe-common.js';
import { type ProbeResult, type ProbeSpec, runProbe } from './probes.js';

/**
 * Probes in flight at once, by default. Checks are mostly idle waits on the network; 8 keeps a host
 * with hundreds of checks from opening hundreds of sockets or processes in one burst, while a probe
 * that hangs until its timeout still leaves 7 slots for the rest.
 */
export const CONCURRENCY_MAX_DEFAULT = 8;
/** Upper bound on concurrencyMax: past this the bound no longer protects the host. */
const CONCURRENCY_MAX_LIMIT = 1024;
/**
 * Extra time a probe gets past its own timeout before the runner gives up on it. Probes enforce
 * their timeout themselves; this only protects the concurrency slots from a probe that ignores it.
 */
export const PROBE_WATCHDOG_GRACE_MS = 1000;

export interface CheckRunnerInit {
  /** Parent logger; the runner logs through a child with module "health". */
  log: Logger;
  /** Run script checks (--enable-script-checks); when false they stay critical without running. */
  enableScriptChecks: boolean;
  /** Probes in flight at once (default CONCURRENCY_MAX_DEFAULT). */
  concurrencyMax?: number;
  /**
   * Called whenever a check's status or output changes (not on every identical result, and not from
   * `set`: after `set`, read `states()` for the checks it added or restarted). A listener that
   * throws is logged and ignored.
   */
  onChange: (state: CheckState) => void;
  /** Replaces the real probes in tests. */
  probe?: typeof runProbe;
}

interface Entry {
  def: CheckDefinition;
  /** The object `set` was last given for this check: the same object again needs no comparison
   * (a registration re-sends every check of the agent; comparing them all made each one O(n)). */
  source: CheckDefinition | undefined;
  progress: CheckProgress;
  /** The next probe (probe checks) or the expiry (TTL checks); undefined while queued or in flight. */
  timer: NodeJS.Timeout | undefined;
  queued: boolean;
  /** The probe in flight: aborting `ctl` cancels it; `watchdog` frees its slot if it ignores that. */
  inFlight: { ctl: AbortController; watchdog: NodeJS.Timeout | undefined } | undefined;
  /** Set when the check is removed or replaced, so a late result is dropped. */
  removed: boolean;
}

export class CheckRunner {
  private readonly log: Logger;
  private readonly enableScriptChecks: boolean;
  private readonly concurrencyMax: number;
  private readonly onChange: (state: CheckState) => void;
  private readonly probe: typeof runProbe;
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  /** Entries with a probe in flight, including removed ones whose probe has not settled yet. */
  private readonly flying = new Set<Entry>();
  private stopped = false;

  constructor(init: CheckRunnerInit) {
    const concurrencyMax = init.concurrencyMax ?? CONCURRENCY_MAX_DEFAULT;
    if (
      !(
        Number.isSafeInteger(concurrencyMax) &&
        concurrencyMax >= 1 &&
        concurrencyMax <= CONCURRENCY_MAX_LIMIT
      )
    ) {
      throw new Error(
        `concurrencyMax must be an integer from 1 to ${CONCURRENCY_MAX_LIMIT}, got ${concurrencyMax}`,
      );
    }
    this.log = init.log.child({ module: 'health' });
    this.enableScriptChecks = init.enableScriptChecks;
    this.concurrencyMax = concurrencyMax;
    this.onChange = init.onChange;
    this.probe = init.probe ?? runProbe;
  }

  /**
   * Reconcile with the full set of checks of all local services: start new ones, stop removed ones,
   * restart changed ones (any difference in the definition; the state starts over from
   * initialStatus). Unchanged ones keep their state and schedule. Does not call onChange.
   */
  set(checks: CheckDefinition[]): void {
    if (this.stopped) throw new Error('the check runner is stopped');
    const wanted = new Map<string, CheckDefinition>();
    for (const def of checks) {
      if (wanted.has(def.id)) throw new Error(`duplicate check id ${JSON.stringify(def.id)}`);
      // Validate everything before changing anything, so a bad definition leaves the runner as it was.
      assertDefinition(def);
      initialProgress(def);
      wanted.set(def.id, def);
    }
    for (const [id, entry] of this.entries) {
      const def = wanted.get(id);
      if (def !== undefined && def === entry.source) continue;
      // Compare clone to clone: the stored copy was cloned, and a strict comparison would otherwise
      // see a null-prototype object from a parser as different from its clone and restart the check.
      if (def !== undefined && isDeepStrictEqual(structuredClone(def), entry.def)) {
        entry.source = def;
        continue;
      }
      this.remove(entry);
      this.log.debug({ checkId: id }, def === undefined ? 'check removed' : 'check changed; restarting it');
    }
    for (const def of wanted.values()) {
      if (this.entries.has(def.id)) continue;
      this.add(structuredClone(def), def);
    }
  }

  /** TTL report (`mesh check pass|warn|fail ID --note`): sets the status directly and restarts the TTL. */
  report(checkId: string, status: CheckStatus, note: string): CheckState {
    if (this.stopped) throw new MeshError('unavailable', 'the check runner is stopped');
    const entry = this.entries.get(checkId);
    if (entry === undefined)
      throw new MeshError('not_found', `no check with id ${JSON.stringify(checkId)} on this agent`);
    if (entry.def.spec.type !== 'ttl') {
      throw new MeshError(
        'bad_request',
        `check ${JSON.stringify(checkId)} is a ${entry.def.spec.type} check; only TTL checks accept status reports`,
      );
    }
    this.armTtl(entry);
    this.update(entry, {
      status,
      output: truncateOutput(note, CHECK_OUTPUT_BYTES_MAX),
      successes: 0,
      failures: 0,
    });
    return toState(entry);
  }

  /** Current state of every check, in id order. */
  states(): CheckState[] {
    return [...this.entries.values()].map(toState).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  state(checkId: string): CheckState | undefined {
    const entry = this.entries.get(checkId);
    return entry === undefined ? undefined : toState(entry);
  }

  /** Clear every timer and abort every probe in flight. States stay readable. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const entry of this.entries.values()) this.cancel(entry);
    // Removed checks' probes may still be settling; their watchdogs must not outlive stop() either.
    for (const entry of this.flying) {
      entry.inFlight?.ctl.abort();
      clearTimeout(entry.inFlight?.watchdog);
    }
    this.queue.length = 0;
  }

  private add(def: CheckDefinition, source: CheckDefinition): void {
    const entry: Entry = {
      def,
      source,
      progress: initialProgress(def),
      timer: undefined,
      queued: false,
      inFlight: undefined,
      removed: false,
    };
    this.entries.set(def.id, entry);
    if (def.spec.type === 'ttl') {
      this.armTtl(entry);
    } else {
      // Jitter: the first probe lands anywhere within the first interval.
      this.schedule(entry, Math.random() * def.intervalMs);
    }
  }

  private remove(entry: Entry): void {
    entry.removed = true;
    this.cancel(entry);
    if (entry.queued) {
      const i = this.queue.indexOf(entry);
      if (i >= 0) this.queue.splice(i, 1);
      entry.queued = false;
    }
    this.entries.delete(entry.def.id);
  }

  /** Stop the entry's timer and its probe in flight (the slot is freed when the probe settles). */
  private cancel(entry: Entry): void {
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.inFlight?.ctl.abort();
  }

  private schedule(entry: Entry, delayMs: number): void {
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        this.enqueue(entry);
      },
      Math.min(delayMs, TIMER_DELAY_MS_MAX),
    );
  }

  private enqueue(entry: Entry): void {
    if (this.stopped || entry.removed || entry.queued || entry.inFlight !== undefined) return;
    entry.queued = true;
    this.queue.push(entry);
    if (this.queue.length > this.entries.size) {
      throw new Error(`invariant: ${this.queue.length} queued checks but only ${this.entries.size} checks`);
    }
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.flying.size < this.concurrencyMax) {
      const entry = this.queue.shift();
      if (entry === undefined) return;
      entry.queued = false;
      this.start(entry);
    }
  }

  private start(entry: Entry): void {
    const spec = entry.def.spec;
    if (spec.type === 'ttl') throw new Error(`invariant: TTL check ${entry.def.id} was queued for a probe`);
    const flight: NonNullable<Entry['inFlight']> = { ctl: new AbortController(), watchdog: undefined };
    const { ctl } = flight;
    entry.inFlight = flight;
    this.flying.add(entry);
    const probed = this.safeProbe(spec, entry.def.timeoutMs, ctl.signal);
    const guarded = new Promise<ProbeResult>((resolve) => {
      flight.watchdog = setTimeout(
        () => {
          ctl.abort();
          resolve({
            status: 'critical',
            output: `probe did not finish within its ${entry.def.timeoutMs} ms timeout (+${PROBE_WATCHDOG_GRACE_MS} ms grace)`,
          });
        },
        Math.min(entry.def.timeoutMs + PROBE_WATCHDOG_GRACE_MS, TIMER_DELAY_MS_MAX),
      );
    });
    void Promise.race([probed, guarded]).then((result) => {
      clearTimeout(flight.watchdog);
      this.flying.delete(entry);
      entry.inFlight = undefined;
      if (!this.stopped && !entry.removed) {
        this.update(entry, applyResult(entry.progress, result, entry.def));
        this.schedule(entry, entry.def.intervalMs);
      }
      this.pump();
    });
  }

  /** The probe, with a rejection (possible only from an injected probe) turned into a result. */
  private async safeProbe(spec: ProbeSpec, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
    try {
      return await this.probe(spec, timeoutMs, signal, { enableScriptChecks: this.enableScriptChecks });
    } catch (err) {
      return {
        status: 'critical',
        output: `probe failed: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
  }

  private armTtl(entry: Entry): void {
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    const spec = entry.def.spec;
    if (spec.type !== 'ttl') return;
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        if (this.stopped || entry.removed) return;
        // Consul's wording; the last note stays visible. No new timer: the next report re-arms it.
        const last = entry.progress.output;
        const output =
          last === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${last}`;
        this.update(entry, {
          status: 'critical',
          output: truncateOutput(output, CHECK_OUTPUT_BYTES_MAX),
          successes: 0,
          failures: 0,
        });
      },
      Math.min(spec.ttlMs, TIMER_DELAY_MS_MAX),
    );
  }

  private update(entry: Entry, next: CheckProgress): void {
    const prev = entry.progress;
    entry.progress = next;
    if (prev.status === next.status && prev.output === next.output) return;
    if (prev.status !== next.status) {
      this.log.info({ checkId: entry.def.id, from: prev.status, to: next.status }, 'check status changed');
    }
    try {
      this.onChange(toState(entry));
    } catch (err) {
      this.log.error({ err, checkId: entry.def.id }, 'check state listener threw');
    }
  }
}

function toState(entry: Entry): CheckState {
  return {
    id: entry.def.id,
    name: entry.def.name,
    type: entry.def.spec.type,
    status: entry.progress.status,
    output: entry.progress.output,
  };
}

function assertDefinition(def: CheckDefinition): void {
  const positive = (n: number): boolean => Number.isFinite(n) && n > 0;
  if (def.spec.type === 'ttl') {
    if (!positive(def.spec.ttlMs)) throw new Error(`check ${JSON.stringify(def.id)}: ttlMs must be positive`);
    return;
  }
  if (!positive(def.intervalMs))
    throw new Error(`check ${JSON.stringify(def.id)}: intervalMs must be positive`);
  if (!positive(def.timeoutMs))
    throw new Error(`check ${JSON.stringify(def.id)}: timeoutMs must be positive`);
}
