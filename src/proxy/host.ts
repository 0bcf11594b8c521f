// The main thread's handle on the proxy worker: starts it, posts snapshots (only when they
// changed), asks for metrics and status, relays its log records to pino, and restarts it if it
// dies or stops answering (with the same inbound port and the last snapshot), at most once per
// RESTART_MIN_INTERVAL_MS.

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import type { FromWorker, ProxySnapshot, ProxyStatus, ProxyWorkerData, ToWorker } from './types.js';

const READY_TIMEOUT_MS = 10_000;
const ASK_TIMEOUT_MS = 3_000;
/** Questions (metrics, status) waiting for the worker at once. */
const PENDING_MAX = 64;
/** On stop, a worker still running this long after being asked to end is terminated. */
const STOP_TERMINATE_MS = 2_000;
/** …and one that has not ended this long after being asked is left behind, with a log line. */
const STOP_WAIT_MS = 10_000;

export const PROXY_HOST_DEFAULTS = Object.freeze({
  /** A worker that dies is started again after at least this long since the last start, so a worker that dies at once does not spin. */
  restartMinIntervalMs: 5_000,
  /** How often the main thread pings a running worker (one message each way: nothing measurable). */
  watchdogIntervalMs: 1_000,
  /**
   * A worker that has not answered a ping for this long is stuck (an endless loop, a match that
   * never ends): every call through the agent has stopped, so it is terminated and started again,
   * as if it had died, cutting the connections it holds. Saturated, the worker still answers within
   * milliseconds (its message port is served every turn of its loop); applying a snapshot of the
   * largest configuration takes well under a second. What can hold it longer on purpose is a
   * regex: the slowest pattern a write accepts takes ~6 s against a 64 KiB request head (a short
   * one ~20 ms; configuration-entries.md), so 30 s leaves room for a few such requests in one turn
   * on a loaded machine before the watchdog cuts everything. Envoy's watchdog counts a "mega
   * miss" at 1 s and kills only when told to. Late ticks of this thread's own timer do not count
   * (checkAlive).
   */
  watchdogLimitMs: 30_000,
});

export interface ProxyHostOptions {
  inbound: { host: string; port: number };
  connectionsMax: number;
  log: Logger;
  restartMinIntervalMs?: number;
  watchdogIntervalMs?: number;
  watchdogLimitMs?: number;
  /** The worker's script; tests give a stand-in. Default: the proxy worker. */
  entry?: URL;
}

/** Why the worker was started again, with how many times. */
export interface ProxyRestarts {
  exited: number;
  unresponsive: number;
}

/** The worker's script: the bundle's sibling when running bundled, else the compiled module. */
function workerEntry(): URL {
  return import.meta.url.endsWith('.mjs')
    ? new URL('./proxy-worker.mjs', import.meta.url)
    : new URL('./worker-main.js', import.meta.url);
}

export class ProxyHost {
  private worker!: Worker;
  private lastJson = '';
  private last: ProxySnapshot | undefined;
  private seq = 0;
  private readonly pending = new Map<
    number,
    { resolve: (m: FromWorker) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }
  >();
  private stopping = false;
  private lastStartMs = 0;
  /** The current worker has said it is ready (and has not exited since). */
  private running = false;
  /** There is no live worker: none started yet, or the current one exited (a restart may be pending). */
  private exited = true;
  private restartTimer: NodeJS.Timeout | undefined;
  /** When the ping the worker has not answered yet was sent (ms, monotonic), if one is out. */
  private pingSentMs: number | undefined;
  /** When the watchdog last ran (ms, monotonic): a late run means this thread was held, not the worker. */
  private lastTickMs = performance.now();
  /** When this host terminated the current worker (silent, or not ready in time), if it did. */
  private terminatedMs: number | undefined;
  /** The current worker was terminated for not answering: its exit is counted as that, not as a death. */
  private silent = false;
  private readonly watchdog: NodeJS.Timeout;
  inbound = { host: '', port: 0 };
  readonly restarts: ProxyRestarts = { exited: 0, unresponsive: 0 };

  private constructor(
    private readonly data: ProxyWorkerData,
    private readonly log: Logger,
    private readonly o: Required<Omit<ProxyHostOptions, 'inbound' | 'connectionsMax' | 'log'>>,
  ) {
    this.watchdog = setInterval(() => this.checkAlive(), o.watchdogIntervalMs);
    this.watchdog.unref();
  }

  static async start(o: ProxyHostOptions): Promise<ProxyHost> {
    const h = new ProxyHost(
      { role: 'mesh-proxy', inbound: o.inbound, connectionsMax: o.connectionsMax },
      o.log,
      {
        restartMinIntervalMs: o.restartMinIntervalMs ?? PROXY_HOST_DEFAULTS.restartMinIntervalMs,
        watchdogIntervalMs: o.watchdogIntervalMs ?? PROXY_HOST_DEFAULTS.watchdogIntervalMs,
        watchdogLimitMs: o.watchdogLimitMs ?? PROXY_HOST_DEFAULTS.watchdogLimitMs,
        entry: o.entry ?? workerEntry(),
      },
    );
    try {
      h.inbound = await h.spawn();
    } catch (err) {
      // The agent does not start: nothing is restarted.
      await h.stop();
      throw err;
    }
    // A restarted worker binds the port the first one got (the one gossip advertises).
    h.data.inbound = { ...h.inbound };
    return h;
  }

  /**
   * Start a worker and wait until it listens. A worker that does not get ready (or cannot listen)
   * is terminated; once running, its exit schedules the next start.
   */
  private spawn(): Promise<{ host: string; port: number }> {
    this.lastStartMs = performance.now();
    let w: Worker;
    try {
      w = new Worker(this.o.entry, { workerData: this.data });
    } catch (err) {
      // No worker, so no exit to restart from: the caller (start, or restartLater) decides.
      return Promise.reject(
        new MeshError('internal', `cannot start the proxy worker: ${(err as Error).message}`),
      );
    }
    this.worker = w;
    this.running = false;
    this.exited = false;
    this.pingSentMs = undefined;
    this.terminatedMs = undefined;
    this.silent = false;
    return new Promise((resolve, reject) => {
      const fail = (err: MeshError): void => {
        reject(err);
        // Its exit schedules the next start; checkAlive reports a worker that never ends.
        this.terminatedMs = performance.now();
        void w.terminate();
      };
      const timer = setTimeout(
        () => fail(new MeshError('internal', 'the proxy worker did not start in time')),
        READY_TIMEOUT_MS,
      );
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          clearTimeout(timer);
          this.running = true;
          if (this.last) w.postMessage({ t: 'snapshot', snapshot: this.last } satisfies ToWorker);
          resolve(m.inbound);
        } else if (m.t === 'fatal') {
          clearTimeout(timer);
          fail(new MeshError('bad_request', `inbound listener: ${m.message}`));
        } else if (m.t === 'pong') {
          if (w === this.worker) this.pingSentMs = undefined;
        } else this.onMessage(m);
      });
      w.on('error', (err) => this.log.error({ err: err.message }, 'proxy worker failed'));
      w.on('exit', (code) => {
        clearTimeout(timer);
        if (w !== this.worker) return;
        this.running = false;
        this.exited = true;
        reject(new MeshError('internal', `the proxy worker exited (code ${code}) before it was ready`));
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          this.pending.delete(id);
          p.reject(new MeshError('unavailable', 'the proxy worker is restarting; retry'));
        }
        if (this.stopping) return;
        if (!this.silent) this.log.error({ code }, 'proxy worker exited; restarting it');
        this.restartLater(this.silent ? 'unresponsive' : 'exited');
      });
    });
  }

  private restartLater(reason: keyof ProxyRestarts): void {
    const waitMs = Math.max(0, this.o.restartMinIntervalMs - (performance.now() - this.lastStartMs));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.restarts[reason]++;
      this.spawn().catch((err: Error) => {
        this.log.error({ err: err.message }, 'proxy worker restart failed');
        // A worker that started and failed exits, and its exit schedules the next try; one that
        // could not be created has no exit to wait for.
        if (this.exited && !this.stopping && this.restartTimer === undefined) this.restartLater('exited');
      });
    }, waitMs);
  }

  /** The watchdog's tick: ping a running worker, or end one that has not answered for the limit. */
  private checkAlive(): void {
    const now = performance.now();
    const lateMs = now - this.lastTickMs - this.o.watchdogIntervalMs;
    this.lastTickMs = now;
    if (this.stopping || this.exited) return;
    if (this.terminatedMs !== undefined) {
      // terminate() ends JavaScript at once; a worker held in native code may never exit.
      if (now - this.terminatedMs >= this.o.watchdogLimitMs) {
        this.log.error('proxy worker did not end after it was terminated; the data plane is down');
        this.terminatedMs = now;
      }
      return;
    }
    if (!this.running) return;
    if (this.pingSentMs === undefined) {
      this.pingSentMs = now;
      this.worker.postMessage({ t: 'ping' } satisfies ToWorker);
      return;
    }
    // Silence counts only while this thread runs on time. A late tick means this thread was held
    // (a long task, a stopped process), and an answer may be waiting behind this timer (libuv runs
    // timers before it reads messages): the time it was late is not the worker's silence.
    if (lateMs > 0) this.pingSentMs = Math.min(now, this.pingSentMs + lateMs);
    const silentMs = now - this.pingSentMs;
    if (silentMs < this.o.watchdogLimitMs) return;
    this.terminatedMs = now;
    this.silent = true;
    this.log.error(
      { silentMs: Math.round(silentMs), limitMs: this.o.watchdogLimitMs },
      'proxy worker stopped answering; restarting it',
    );
    void this.worker.terminate();
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'log') {
      this.log[m.level](m.fields, m.msg);
      return;
    }
    if (m.t === 'metrics' || m.t === 'status') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      p.resolve(m);
    }
  }

  /** Send a snapshot if it differs from the last one sent. */
  post(snapshot: ProxySnapshot): boolean {
    const json = JSON.stringify(snapshot);
    if (json === this.lastJson) return false;
    this.lastJson = json;
    this.last = snapshot;
    // A worker that is not running gets the last snapshot when it is ready.
    if (!this.exited) this.worker.postMessage({ t: 'snapshot', snapshot } satisfies ToWorker);
    return true;
  }

  private ask(t: 'metrics' | 'status'): Promise<FromWorker> {
    if (this.exited)
      return Promise.reject(new MeshError('unavailable', 'the proxy worker is restarting; retry'));
    if (this.pending.size >= PENDING_MAX)
      return Promise.reject(new MeshError('unavailable', 'the proxy is busy; retry'));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MeshError('unavailable', `the proxy did not answer within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ t, id } satisfies ToWorker);
    });
  }

  /**
   * Prometheus text: the host's own families (whether the worker answered, its restarts), then the
   * worker's. A worker that does not answer leaves out its families, not the scrape.
   */
  async metrics(): Promise<string> {
    let worker = '';
    let up = 1;
    try {
      const m = await this.ask('metrics');
      worker = m.t === 'metrics' ? m.text : '';
    } catch {
      up = 0;
    }
    return this.hostText(up) + worker;
  }

  private hostText(up: number): string {
    const restarts = 'mesh_proxy_worker_restarts_total';
    const upName = 'mesh_proxy_worker_up';
    return [
      `# HELP ${upName} 1 when the proxy worker thread answered this scrape, 0 when it did not (restarting, or stuck): its own families are then missing`,
      `# TYPE ${upName} gauge`,
      `${upName} ${up}`,
      `# HELP ${restarts} times the agent started its proxy worker thread again, by reason: it exited, or it stopped answering the watchdog`,
      `# TYPE ${restarts} counter`,
      `${restarts}{reason="exited"} ${this.restarts.exited}`,
      `${restarts}{reason="unresponsive"} ${this.restarts.unresponsive}`,
      '',
    ].join('\n');
  }

  async status(): Promise<ProxyStatus> {
    const m = await this.ask('status');
    if (m.t !== 'status') throw new MeshError('internal', 'unexpected answer from the proxy');
    return { ...m.status, restarts: { ...this.restarts } };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.watchdog);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    if (this.exited) return;
    const exited = new Promise<boolean>((r) => this.worker.once('exit', () => r(true)));
    this.worker.postMessage({ t: 'stop' } satisfies ToWorker);
    const terminate = setTimeout(() => void this.worker.terminate(), STOP_TERMINATE_MS);
    let giveUp: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<boolean>((r) => {
      giveUp = setTimeout(() => r(false), STOP_WAIT_MS);
    });
    if (!(await Promise.race([exited, gaveUp])))
      this.log.error(`the proxy worker did not end within ${STOP_WAIT_MS} ms of stopping; leaving it`);
    clearTimeout(terminate);
    clearTimeout(giveUp);
  }
}
