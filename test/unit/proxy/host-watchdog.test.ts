// The proxy host's watchdog, with stand-in workers: one that stops answering is terminated and
// started again (and a scrape meanwhile says so); one that is slow but answers is left alone, and
// so is one whose answer waited while the main thread was held; one that exits is counted as
// exited, and stop() between that exit and the restart returns at once.
// The real worker's answer to the ping is checked on real agents (data-plane.test.ts, metrics).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { waitFor } from '../../../cluster-sim/launcher.js';
import { ProxyHost } from '../../../src/proxy/host.js';

const dir = mkdtempSync(join(tmpdir(), 'mesh-watchdog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in worker: ready at once, answers status, metrics and stop; `onPing` is the body of its ping handler. */
function stub(name: string, onPing: string): URL {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `import { parentPort } from 'node:worker_threads';
let pings = 0;
parentPort.on('message', async (m) => {
  if (m.t === 'ping') { pings++; ${onPing} }
  else if (m.t === 'status') parentPort.postMessage({ t: 'status', id: m.id, status: { pings } });
  else if (m.t === 'metrics') parentPort.postMessage({ t: 'metrics', id: m.id, text: '' });
  else if (m.t === 'stop') parentPort.close();
});
parentPort.postMessage({ t: 'ready', inbound: { host: '127.0.0.1', port: 1 } });
`,
  );
  return pathToFileURL(file);
}

function host(entry: URL, limitMs: number, restartMinIntervalMs = 100) {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  const started = ProxyHost.start({
    inbound: { host: '127.0.0.1', port: 0 },
    connectionsMax: 1,
    log,
    entry,
    restartMinIntervalMs,
    watchdogIntervalMs: 50,
    watchdogLimitMs: limitMs,
  });
  return { started, lines };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('proxy host watchdog', { timeout: 60_000 }, () => {
  it('terminates a worker that stops answering and starts it again, and says so', async () => {
    // The first worker hangs at its third ping; the one started after it (a marker file says so) answers.
    const marker = JSON.stringify(join(dir, 'hung-once'));
    const { started, lines } = host(
      stub(
        'hangs',
        `const fs = await import('node:fs'); if (pings > 2 && !fs.existsSync(${marker})) { fs.writeFileSync(${marker}, ''); for (;;) {} } parentPort.postMessage({ t: "pong" });`,
      ),
      2_000,
    );
    const h = await started;
    try {
      assert.match(await h.metrics(), /^mesh_proxy_worker_up 1$/m);
      // A scrape while the worker hangs answers, without the worker's families.
      assert.ok(await waitFor(() => existsSync(join(dir, 'hung-once')), 20_000, 20), 'hung');
      assert.match(await h.metrics(), /^mesh_proxy_worker_up 0$/m);
      assert.ok(await waitFor(() => h.restarts.unresponsive >= 1, 20_000, 50), 'restarted');
      assert.equal(h.restarts.exited, 0);
      assert.ok(lines.some((l) => l.includes('proxy worker stopped answering; restarting it')));
      // The new worker answers, and is left running.
      assert.ok(
        await waitFor(async () => (await h.status().catch(() => undefined)) !== undefined, 20_000, 50),
      );
      await sleep(1_000);
      assert.equal(h.restarts.unresponsive, 1);
      const text = await h.metrics();
      assert.match(text, /^mesh_proxy_worker_restarts_total\{reason="unresponsive"\} 1$/m);
      assert.match(text, /^mesh_proxy_worker_up 1$/m);
    } finally {
      await h.stop();
    }
  });

  it('leaves a worker that is slow to answer, within the limit, alone', async () => {
    const { started } = host(
      stub(
        'slow',
        'const end = Date.now() + 150; while (Date.now() < end); parentPort.postMessage({ t: "pong" });',
      ),
      1_000,
    );
    const h = await started;
    try {
      await sleep(2_000);
      const s = (await h.status()) as unknown as { pings: number; restarts: unknown };
      assert.ok(s.pings >= 5, `pinged ${s.pings} times`);
      assert.deepEqual(s.restarts, { exited: 0, unresponsive: 0 });
    } finally {
      await h.stop();
    }
  });

  it('does not cut a worker whose answer waited while the main thread was held', async () => {
    const { started } = host(
      stub('late', 'setTimeout(() => parentPort.postMessage({ t: "pong" }), 100);'),
      500,
    );
    const h = await started;
    try {
      // Hold this thread while a ping is out: the answer arrives and waits behind the late timer.
      const out = () => (h as unknown as { pingSentMs: number | undefined }).pingSentMs !== undefined;
      assert.ok(await waitFor(out, 5_000, 1));
      const end = performance.now() + 1_500;
      while (performance.now() < end);
      await sleep(1_000);
      assert.deepEqual(h.restarts, { exited: 0, unresponsive: 0 });
    } finally {
      await h.stop();
    }
  });

  it('stops at once between a worker’s exit and its restart', async () => {
    const { started, lines } = host(stub('exits-later', 'process.exit(3);'), 500, 60_000);
    const h = await started;
    assert.ok(await waitFor(() => lines.some((l) => l.includes('proxy worker exited')), 20_000, 20));
    const stopped = await Promise.race([h.stop().then(() => true), sleep(5_000).then(() => false)]);
    assert.ok(stopped, 'stop() returned');
  });

  it('start() fails, and leaves nothing running, when the worker dies before it is ready or cannot be made', async () => {
    const file = join(dir, 'dies-loading.mjs');
    writeFileSync(file, 'process.exit(2);\n');
    await assert.rejects(host(pathToFileURL(file), 500).started, /exited \(code 2\) before it was ready/);
    await assert.rejects(
      host(new URL('http://127.0.0.1/none.mjs'), 500).started,
      /cannot start the proxy worker/,
    );
  });

  it('counts a worker that exits as exited, and starts it again', async () => {
    const { started, lines } = host(stub('exits', 'process.exit(3);'), 500);
    const h = await started;
    try {
      assert.ok(await waitFor(() => h.restarts.exited >= 1, 20_000, 50), 'restarted');
      assert.equal(h.restarts.unresponsive, 0);
      assert.ok(lines.some((l) => l.includes('proxy worker exited; restarting it')));
    } finally {
      await h.stop();
    }
  });
});
