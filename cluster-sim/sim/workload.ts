// The client workload: a few clients, each with at most one request in flight, issue reads,
// writes, deletes and compare-and-sets on a small set of keys through random live agents, and the
// full history is recorded for the linearizability checker. Every written value is unique, so a
// CAS on a modify index can be recorded as a CAS on the value the client last read (the index and
// the value name the same write).
import type { SeededRng } from '../../src/core/rand.js';
import type { HistoryOp, KvInput, KvOutput } from '../check/linearizability.js';
import type { ClientOp, ClientResult, SimAgent } from './agent.js';

export interface WorkloadOptions {
  clients: number;
  keys: number;
  /** Mean pause between a client's requests. */
  thinkMs: number;
  /** A request without an answer by then has an unknown outcome. */
  timeoutMs: number;
  /** Bound on recorded operations; clients stop issuing past it. */
  opsMax: number;
}

export interface WorkloadPort {
  nowMs(): number;
  atGlobal(trueMs: number, fn: () => void): void;
  /** A random agent that is up, or undefined. */
  pickAgent(): SimAgent | undefined;
}

interface ClientState {
  id: number;
  seq: number;
  /** What this client last read of each key: value and modify index. */
  lastRead: Map<string, { value: string | null; modifyIndex: number }>;
}

export class Workload {
  /** Every request issued, recorded at its call; requests still in flight at the end have an
   * unknown outcome (they may yet take effect), which is what the checker must assume. */
  private readonly issued: HistoryOp[] = [];
  /** Requests refused for certain (they never took effect): left out of the history. */
  private readonly refused = new Set<number>();
  readonly counts = { ok: 0, failed: 0, unknown: 0 };
  private stopped = false;
  private nextId = 0;

  constructor(
    private readonly opts: WorkloadOptions,
    private readonly rng: SeededRng,
    private readonly port: WorkloadPort,
  ) {}

  start(atMs: number): void {
    for (let c = 0; c < this.opts.clients; c++) {
      const st: ClientState = { id: c, seq: 0, lastRead: new Map() };
      this.port.atGlobal(atMs + this.rng.next() * this.opts.thinkMs, () => this.issue(st));
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /** The history for the linearizability checker. */
  get history(): HistoryOp[] {
    return this.issued.filter((op) => !this.refused.has(op.id));
  }

  private issue(c: ClientState): void {
    if (this.stopped || this.issued.length >= this.opts.opsMax) return;
    const agent = this.port.pickAgent();
    if (agent === undefined) {
      this.next(c);
      return;
    }
    const key = `k${this.rng.int(this.opts.keys)}`;
    const r = this.rng.next();
    const value = `c${c.id}-${++c.seq}`;
    let op: ClientOp;
    let input: KvInput;
    if (r < 0.45) {
      op = { op: 'read', key };
      input = { op: 'read', key };
    } else if (r < 0.75) {
      op = { op: 'write', key, value };
      input = { op: 'write', key, value };
    } else if (r < 0.8) {
      op = { op: 'delete', key };
      input = { op: 'delete', key };
    } else {
      const last = c.lastRead.get(key) ?? { value: null, modifyIndex: 0 };
      op = { op: 'cas', key, value, casIndex: last.modifyIndex };
      input = { op: 'cas', key, expect: last.value, value };
    }
    const rec: HistoryOp = {
      id: this.nextId++,
      client: c.id,
      input,
      output: undefined,
      callMs: this.port.nowMs(),
      returnMs: undefined,
    };
    this.issued.push(rec);
    let finished = false;
    const finish = (res: ClientResult | undefined): void => {
      if (finished) return;
      finished = true;
      if (res === undefined) {
        this.counts.unknown++;
      } else if (res.ok) {
        this.counts.ok++;
        rec.returnMs = this.port.nowMs();
        rec.output = toOutput(input, res);
        if (op.op === 'read')
          c.lastRead.set(key, { value: res.value ?? null, modifyIndex: res.modifyIndex ?? 0 });
      } else if (res.code === 'cas-failed') {
        this.counts.ok++;
        rec.returnMs = this.port.nowMs();
        rec.output = { ok: false };
      } else {
        // A definite refusal (no leader, superseded by a new leader's entry): it never happened.
        this.counts.failed++;
        this.refused.add(rec.id);
      }
      this.next(c);
    };
    this.port.atGlobal(this.port.nowMs() + this.opts.timeoutMs, () => finish(undefined));
    agent.clientOp(op, (res) => finish(res));
  }

  private next(c: ClientState): void {
    const wait = -Math.log(1 - this.rng.next()) * this.opts.thinkMs;
    this.port.atGlobal(this.port.nowMs() + wait, () => this.issue(c));
  }
}

function toOutput(input: KvInput, res: Extract<ClientResult, { ok: true }>): KvOutput {
  if (input.op === 'read') return { value: res.value ?? null };
  return { ok: true };
}
