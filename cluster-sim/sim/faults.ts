// Fault mixes: what `--faults loss=0.05,partition,crash` asks for. Rates apply to every
// point-to-point message all run long; the named disruptions are scheduled one at a time at random
// moments (every 3–10 simulated seconds) from the run's seed, each undone after a random duration.

export const DISRUPTIONS = ['partition', 'asym', 'bridge', 'crash', 'pause', 'churn'] as const;
export type Disruption = (typeof DISRUPTIONS)[number];

export interface FaultMix {
  /** Probability that a point-to-point message is lost. */
  loss: number;
  /** Probability that a point-to-point message is delivered twice. */
  dup: number;
  /** Extra mean delay (ms) of the slow tail; with it, messages overtake each other more often. */
  slowMs: number;
  /** Maximum clock drift between agents, as a fraction (0.001 = 1,000 ppm); offsets up to 1 s. */
  drift: number;
  disruptions: Disruption[];
}

export const NO_FAULTS: FaultMix = { loss: 0, dup: 0, slowMs: 0, drift: 0, disruptions: [] };

const RATE_DEFAULTS = { loss: 0.01, dup: 0.01, slowMs: 50, drift: 0.001 } as const;
const RATE_BOUNDS = { loss: [0, 0.5], dup: [0, 0.5], slowMs: [0, 5_000], drift: [0, 0.1] } as const;
const RATE_ALIASES: Record<string, keyof typeof RATE_DEFAULTS> = {
  loss: 'loss',
  dup: 'dup',
  duplicate: 'dup',
  delay: 'slowMs',
  reorder: 'slowMs',
  drift: 'drift',
};

/** Parse "loss=0.05,partition,crash" (names alone take default rates); throws naming the bad part. */
export function parseFaults(spec: string): FaultMix {
  const mix: FaultMix = { ...NO_FAULTS, disruptions: [] };
  if (spec.trim() === '' || spec === 'none') return mix;
  for (const raw of spec.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const [name = '', value] = part.split('=', 2) as [string, string | undefined];
    const rate = RATE_ALIASES[name];
    if (rate !== undefined) {
      const v = value === undefined ? RATE_DEFAULTS[rate] : Number(value);
      const [lo, hi] = RATE_BOUNDS[rate];
      if (!Number.isFinite(v) || v < lo || v > hi) {
        throw new Error(`--faults: ${name} must be a number in [${lo}, ${hi}], got ${JSON.stringify(value)}`);
      }
      mix[rate] = v;
      continue;
    }
    if (name === 'all' && value === undefined) {
      mix.disruptions = [...DISRUPTIONS];
      continue;
    }
    if (!(DISRUPTIONS as readonly string[]).includes(name) || value !== undefined) {
      throw new Error(
        `--faults: unknown fault ${JSON.stringify(part)}; use loss=P, dup=P, delay=MS, drift=F, ` +
          `${DISRUPTIONS.join(', ')} or all`,
      );
    }
    if (!mix.disruptions.includes(name as Disruption)) mix.disruptions.push(name as Disruption);
  }
  return mix;
}

export function formatFaults(mix: FaultMix): string {
  const parts: string[] = [];
  if (mix.loss > 0) parts.push(`loss=${mix.loss}`);
  if (mix.dup > 0) parts.push(`dup=${mix.dup}`);
  if (mix.slowMs > 0) parts.push(`delay=${mix.slowMs}`);
  if (mix.drift > 0) parts.push(`drift=${mix.drift}`);
  parts.push(...mix.disruptions);
  return parts.length === 0 ? 'none' : parts.join(',');
}

/** A random fault mix for fuzzing, from a seeded source. */
export function randomFaults(next: () => number): FaultMix {
  const pick = (p: number): boolean => next() < p;
  return {
    loss: pick(0.6) ? Math.round(next() * 10) / 100 : 0,
    dup: pick(0.3) ? 0.02 : 0,
    slowMs: pick(0.4) ? 20 + Math.round(next() * 200) : 0,
    drift: pick(0.4) ? 0.002 : 0,
    disruptions: DISRUPTIONS.filter(() => pick(0.5)),
  };
}
