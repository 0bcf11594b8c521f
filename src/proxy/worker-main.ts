// Entry of the proxy worker thread (bundled as dist/proxy-worker.mjs). It runs the data plane and
// talks to the agent's main thread only by messages: snapshots in; readiness, metrics, status
// and log records out. Logging goes through the main thread's pino logger (module "proxy").
import { parentPort, workerData } from 'node:worker_threads';
import { ProxyEngine } from './engine.js';
import type { FromWorker, ProxyWorkerData, ToWorker } from './types.js';

const port = parentPort;
if (!port) throw new Error('the proxy worker must run in a worker thread');
const data = workerData as ProxyWorkerData;
const post = (m: FromWorker): void => port.postMessage(m);

const engine = new ProxyEngine({
  connectionsMax: data.connectionsMax,
  log: (level, msg, fields) => post({ t: 'log', level, msg, fields }),
});

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'snapshot':
      try {
        engine.apply(m.snapshot);
      } catch (err) {
        // A snapshot that cannot be applied leaves the previous one in force.
        post({
          t: 'log',
          level: 'error',
          msg: 'proxy snapshot rejected',
          fields: { err: (err as Error).message },
        });
      }
      return;
    case 'metrics':
      void engine.metrics.text().then((text) => post({ t: 'metrics', id: m.id, text }));
      return;
    case 'status':
      post({ t: 'status', id: m.id, status: engine.status() });
      return;
    case 'ping':
      post({ t: 'pong' });
      return;
    case 'stop':
      engine.stop();
      port.close();
      return;
  }
});

engine.start(data.inbound.host, data.inbound.port).then(
  (inbound) => post({ t: 'ready', inbound }),
  (err: Error) =>
    post({
      t: 'fatal',
      message: `cannot listen on ${data.inbound.host}:${data.inbound.port}: ${err.message}`,
    }),
);
