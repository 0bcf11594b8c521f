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

export const PROXY_HOST_DEFAULTS = Object.freeze({
  /** A worker that dies is started again after at least this long since the last start, so a worker that dies at once does not spin. */
  restartMinIntervalMs: 5_000,
  /** How often the main thread pings a running worker (one message each way: nothing measurable). */
  watchdogIntervalMs: 1_000,
  /**
   * A worker that has not answered a ping for this long is stuck (an endless loop, a match that
   * never ends): every call through the agent has stopped, so it is terminated and started again,
   * as if it had died. Saturated, the worker still answers within milliseconds (its message port
   * is served every turn of its loop); the longest a healthy worker is busy in one go, applying a
   * snapshot of the largest configuration, is well under a second. Envoy's watchdog counts a
   * "mega miss" at 1 s and kills only when told to; 10 s leaves a wide margin for a loaded machine
   * before cutting the connections the worker holds.
   */
  watchdogLimitMs: 10_000,
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
  private readonly pending = new Map<number, { resolve: (m: FromWorker) => void; timer: NodeJS.Timeout }>();
  private stopping = false;
  private lastStartMs = 0;
  /** The running worker has said it is ready (and has not exited since). */
  private running = false;
  /** When the ping the worker has not answered yet was sent (ms, monotonic), if one is out. */
  private pingSentMs: number | undefined;
  /** The worker was terminated for not answering: its exit is counted as that, not as a death. */
  private terminating = false;
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
      clearInterval(h.watchdog);
      throw err;
    }
    // A restarted worker binds the port the first one got (the one gossip advertises).
    h.data.inbound = { ...h.inbound };
    return h;
  }

  private spawn(): Promise<{ host: string; port: number }> {
    this.lastStartMs = performance.now();
    this.running = false;
    this.pingSentMs = undefined;
    this.terminating = false;
    const w = new Worker(this.o.entry, { workerData: this.data });
    this.worker = w;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new MeshError('internal', 'the proxy worker did not start in time')),
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
          reject(new MeshError('bad_request', `inbound listener: ${m.message}`));
        } else if (m.t === 'pong') {
          if (w === this.worker) this.pingSentMs = undefined;
        } else this.onMessage(m);
      });
      w.on('error', (err) => this.log.error({ err: err.message }, 'proxy worker failed'));
      w.on('exit', (code) => {
        clearTimeout(timer);
        if (this.stopping || w !== this.worker) return;
        this.running = false;
        const unresponsive = this.terminating;
        if (!unresponsive) this.log.error({ code }, 'proxy worker exited; restarting it');
        const waitMs = Math.max(0, this.o.restartMinIntervalMs - (performance.now() - this.lastStartMs));
        setTimeout(() => {
          if (this.stopping) return;
          if (unresponsive) this.restarts.unresponsive++;
          else this.restarts.exited++;
          this.spawn().catch((err: Error) =>
            this.log.error({ err: err.message }, 'proxy worker restart failed'),
          );
        }, waitMs);
      });
    });
  }

  /** The watchdog's tick: ping a running worker, or end one that has not answered for the limit. */
  private checkAlive(): void {
    if (this.stopping || !this.running || this.terminating) return;
    const now = performance.now();
    if (this.pingSentMs === undefined) {
      this.pingSentMs = now;
      this.worker.postMessage({ t: 'ping' } satisfies ToWorker);
      return;
    }
    const silentMs = now - this.pingSentMs;
    if (silentMs < this.o.watchdogLimitMs) return;
    this.terminating = true;
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
    this.worker.postMessage({ t: 'snapshot', snapshot } satisfies ToWorker);
    return true;
  }

  private ask(t: 'metrics' | 'status'): Promise<FromWorker> {
    if (this.pending.size >= PENDING_MAX)
      return Promise.reject(new MeshError('unavailable', 'the proxy is busy; retry'));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new MeshError('unavailable', `the proxy did not answer within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      this.pending.set(id, { resolve, timer });
      this.worker.postMessage({ t, id } satisfies ToWorker);
    });
  }

  /** The worker's Prometheus text, after the host's own family (the restarts). */
  async metrics(): Promise<string> {
    const m = await this.ask('metrics');
    return this.restartsText() + (m.t === 'metrics' ? m.text : '');
  }

  private restartsText(): string {
    const name = 'mesh_proxy_worker_restarts_total';
    return [
      `# HELP ${name} times the agent started its proxy worker thread again, by reason: it exited, or it stopped answering the watchdog`,
      `# TYPE ${name} counter`,
      `${name}{reason="exited"} ${this.restarts.exited}`,
      `${name}{reason="unresponsive"} ${this.restarts.unresponsive}`,
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
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.worker.postMessage({ t: 'stop' } satisfies ToWorker);
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    const timer = setTimeout(() => void this.worker.terminate(), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
