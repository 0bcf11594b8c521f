// The main thread's handle on the proxy worker: starts it, posts snapshots (only when they
// changed), asks for metrics and status, relays its log records to pino, and restarts it if it
// dies (with the same inbound port and the last snapshot), at most once per RESTART_MIN_INTERVAL_MS.

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { MeshError } from '../api/types.js';
import type { FromWorker, ProxySnapshot, ProxyStatus, ProxyWorkerData, ToWorker } from './types.js';

const READY_TIMEOUT_MS = 10_000;
const ASK_TIMEOUT_MS = 3_000;
const RESTART_MIN_INTERVAL_MS = 5_000;
/** Questions (metrics, status) waiting for the worker at once. */
const PENDING_MAX = 64;

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
  inbound = { host: '', port: 0 };
  restarts = 0;

  private constructor(
    private readonly data: ProxyWorkerData,
    private readonly log: Logger,
  ) {}

  static async start(o: {
    inbound: { host: string; port: number };
    connectionsMax: number;
    log: Logger;
  }): Promise<ProxyHost> {
    const h = new ProxyHost(
      { role: 'mesh-proxy', inbound: o.inbound, connectionsMax: o.connectionsMax },
      o.log,
    );
    h.inbound = await h.spawn();
    // A restarted worker binds the port the first one got (the one gossip advertises).
    h.data.inbound = { ...h.inbound };
    return h;
  }

  private spawn(): Promise<{ host: string; port: number }> {
    this.lastStartMs = Date.now();
    const w = new Worker(workerEntry(), { workerData: this.data });
    this.worker = w;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new MeshError('internal', 'the proxy worker did not start in time')),
        READY_TIMEOUT_MS,
      );
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          clearTimeout(timer);
          if (this.last) w.postMessage({ t: 'snapshot', snapshot: this.last } satisfies ToWorker);
          resolve(m.inbound);
        } else if (m.t === 'fatal') {
          clearTimeout(timer);
          reject(new MeshError('bad_request', `inbound listener: ${m.message}`));
        } else this.onMessage(m);
      });
      w.on('error', (err) => this.log.error({ err: err.message }, 'proxy worker failed'));
      w.on('exit', (code) => {
        clearTimeout(timer);
        if (this.stopping || w !== this.worker) return;
        this.log.error({ code }, 'proxy worker exited; restarting it');
        const waitMs = Math.max(0, RESTART_MIN_INTERVAL_MS - (Date.now() - this.lastStartMs));
        setTimeout(() => {
          if (this.stopping) return;
          this.restarts++;
          this.spawn().catch((err: Error) =>
            this.log.error({ err: err.message }, 'proxy worker restart failed'),
          );
        }, waitMs);
      });
    });
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

  async metrics(): Promise<string> {
    const m = await this.ask('metrics');
    return m.t === 'metrics' ? m.text : '';
  }

  async status(): Promise<ProxyStatus> {
    const m = await this.ask('status');
    if (m.t !== 'status') throw new MeshError('internal', 'unexpected answer from the proxy');
    return m.status;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.worker.postMessage({ t: 'stop' } satisfies ToWorker);
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    const timer = setTimeout(() => void this.worker.terminate(), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
