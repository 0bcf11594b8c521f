// The check runner: thresholds through real probes, TTL checks, reconciliation by `set`, the
// concurrency bound, and a clean stop.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MeshError } from '../../../src/api/types.js';
import type { CheckState } from '../../../src/core/catalog/types.js';
import type { ProbeResult, runProbe } from '../../../src/health/probes.js';
import { CheckRunner } from '../../../src/health/runner.js';
import { checkDef, silentLog, sleep, waitFor } from './helpers.js';

type Probe = typeof runProbe;

function runner(probe: Probe, over: { concurrencyMax?: number; onChange?: (s: CheckState) => void } = {}) {
  return new CheckRunner({
    log: silentLog,
    enableScriptChecks: false,
    probe,
    onChange: over.onChange ?? (() => {}),
    ...(over.concurrencyMax !== undefined ? { concurrencyMax: over.concurrencyMax } : {}),
  });
}

/** A fake probe that answers `result` after `delayMs`, or early when aborted. */
function fakeProbe(result: (id: string) => ProbeResult, delayMs = 0) {
  const calls = new Map<string, number>();
  let inFlight = 0;
  let inFlightMax = 0;
  const probe: Probe = (spec, _timeoutMs, signal) => {
    const id = spec.type === 'tcp' ? spec.address : 'other';
    calls.set(id, (calls.get(id) ?? 0) + 1);
    inFlight++;
    inFlightMax = Math.max(inFlightMax, inFlight);
    return new Promise((resolve) => {
      const done = (): void => {
        inFlight--;
        resolve(result(id));
      };
      const t = setTimeout(done, delayMs);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        done();
      });
    });
  };
  return { probe, calls, stats: () => ({ inFlight, inFlightMax }) };
}

const tcp = (address: string) => ({ type: 'tcp' as const, address });
const passing = (): ProbeResult => ({ status: 'passing', output: 'ok' });

describe('CheckRunner with a real HTTP check', () => {
  let server: http.Server;
  let url: string;
  let code = 200;
  let hits = 0;

  before(async () => {
    server = http.createServer((_req, res) => {
      hits++;
      res.writeHead(code).end(`hit ${hits}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  });

  after(() => new Promise<void>((r) => server.close(() => r())));

  it('applies successBeforePassing 2 and failuresBeforeCritical 1 to a server that flips', async () => {
    const changes: CheckState[] = [];
    const hitsAtChange: number[] = [];
    const r = new CheckRunner({
      log: silentLog,
      enableScriptChecks: false,
      onChange: (s) => {
        changes.push(s);
        hitsAtChange.push(hits);
      },
    });
    try {
      code = 200;
      hits = 0;
      const spec = { type: 'http' as const, url, method: 'GET', headers: {}, tlsSkipVerify: false };
      r.set([checkDef('web-http', spec, { intervalMs: 30, successBeforePassing: 2 })]);
      assert.equal(r.state('web-http')?.status, 'critical');

      await waitFor(() => r.state('web-http')?.status === 'passing', 'passing');
      const firstPass = changes.findIndex((s) => s.status === 'passing');
      assert.ok(hitsAtChange[firstPass]! >= 2, 'passing only after two successful probes');
      // The first success changed the output but not yet the status.
      assert.equal(changes[0]?.status, 'critical');
      assert.match(changes[0]?.output ?? '', /200 OK/);

      code = 500;
      await waitFor(() => r.state('web-http')?.status === 'critical', 'critical after one failure');

      code = 200;
      const before = hits;
      await waitFor(() => r.state('web-http')?.status === 'passing', 'passing again');
      assert.ok(hits - before >= 2, 'again two passes before passing');
      assert.equal(r.state('web-http')?.type, 'http');
    } finally {
      r.stop();
    }
  });
});

describe('CheckRunner TTL checks', () => {
  it('a report sets the status at once; silence past ttl turns it critical', async () => {
    const changes: CheckState[] = [];
    const r = runner(fakeProbe(passing).probe, { onChange: (s) => changes.push(s) });
    try {
      r.set([checkDef('ttl-1', { type: 'ttl', ttlMs: 150 }, { initialStatus: 'warning' })]);
      assert.deepEqual(r.state('ttl-1'), {
        id: 'ttl-1',
        name: 'ttl-1',
        type: 'ttl',
        status: 'warning',
        output: '',
      });

      const s = r.report('ttl-1', 'passing', 'all fine');
      assert.deepEqual(s, { id: 'ttl-1', name: 'ttl-1', type: 'ttl', status: 'passing', output: 'all fine' });
      assert.deepEqual(changes.at(-1), s);

      await waitFor(() => r.state('ttl-1')?.status === 'critical', 'TTL expiry');
      assert.equal(r.state('ttl-1')?.output, 'TTL expired (last output before timeout follows): all fine');

      r.report('ttl-1', 'warning', 'degraded');
      assert.equal(r.state('ttl-1')?.status, 'warning');
    } finally {
      r.stop();
    }
  });

  it('a TTL check that never reports expires from its start', async () => {
    const r = runner(fakeProbe(passing).probe);
    try {
      r.set([checkDef('ttl-2', { type: 'ttl', ttlMs: 100 }, { initialStatus: 'passing' })]);
      await waitFor(() => r.state('ttl-2')?.status === 'critical', 'TTL expiry');
      assert.equal(r.state('ttl-2')?.output, 'TTL expired');
    } finally {
      r.stop();
    }
  });

  it('report rejects an unknown id and a non-TTL check with clear errors', () => {
    const r = runner(fakeProbe(passing).probe);
    try {
      r.set([checkDef('tcp-1', tcp('a:1'), { intervalMs: 60_000 })]);
      assert.throws(
        () => r.report('nope', 'passing', ''),
        (e: unknown) =>
          e instanceof MeshError && e.code === 'not_found' && /no check with id "nope"/.test(e.message),
      );
      assert.throws(
        () => r.report('tcp-1', 'passing', ''),
        (e: unknown) =>
          e instanceof MeshError && e.code === 'bad_request' && /is a tcp check; only TTL/.test(e.message),
      );
    } finally {
      r.stop();
    }
  });
});

describe('CheckRunner scheduling', () => {
  it('calls onChange only when status or output changes', async () => {
    let changes = 0;
    const fake = fakeProbe(passing);
    const r = runner(fake.probe, { onChange: () => changes++ });
    try {
      r.set([checkDef('c', tcp('c:1'), { intervalMs: 10 })]);
      await waitFor(() => (fake.calls.get('c:1') ?? 0) >= 5, 'five probes');
      assert.equal(changes, 1);
    } finally {
      r.stop();
    }
  });

  it('set: a removed check stops probing, an unchanged one keeps its state, a changed one restarts', async () => {
    const fake = fakeProbe(() => ({ status: 'passing', output: 'ok' }));
    const r = runner(fake.probe);
    try {
      const a = checkDef('a', tcp('a:1'), { intervalMs: 20 });
      const b = checkDef('b', tcp('b:1'), { intervalMs: 20 });
      r.set([a, b]);
      await waitFor(
        () => r.state('a')?.status === 'passing' && r.state('b')?.status === 'passing',
        'both pass',
      );

      r.set([structuredClone(a)]);
      assert.equal(r.state('b'), undefined);
      assert.equal(r.state('a')?.status, 'passing', 'an unchanged check keeps its state');
      const bCalls = fake.calls.get('b:1');
      const aCalls = fake.calls.get('a:1') ?? 0;
      await sleep(200);
      assert.equal(fake.calls.get('b:1'), bCalls, 'the removed check was not probed again');
      assert.ok((fake.calls.get('a:1') ?? 0) > aCalls, 'the kept check is still probed');

      // A changed definition starts over from its initial status.
      r.set([{ ...a, intervalMs: 60_000 }]);
      assert.equal(r.state('a')?.status, 'critical');
      assert.deepEqual(
        r.states().map((s) => s.id),
        ['a'],
      );
    } finally {
      r.stop();
    }
  });

  it('set: an equal definition from a parser (null-prototype objects) is unchanged, not restarted', async () => {
    const r = runner(fakeProbe(passing).probe);
    try {
      const headers = (): Record<string, string> => Object.assign(Object.create(null), { 'x-a': '1' });
      const def = () =>
        checkDef(
          'h',
          {
            type: 'http',
            url: 'http://127.0.0.1:1/',
            method: 'GET',
            headers: headers(),
            tlsSkipVerify: false,
          },
          { intervalMs: 20 },
        );
      r.set([def()]);
      await waitFor(() => r.state('h')?.status === 'passing', 'passing');
      r.set([def()]);
      assert.equal(r.state('h')?.status, 'passing');
    } finally {
      r.stop();
    }
  });

  it('rejects duplicate ids', () => {
    const r = runner(fakeProbe(passing).probe);
    try {
      const a = checkDef('a', tcp('a:1'));
      assert.throws(() => r.set([a, a]), /duplicate check id "a"/);
    } finally {
      r.stop();
    }
  });

  it('never runs more than concurrencyMax probes at once, and never overlaps a check with itself', async () => {
    const fake = fakeProbe(passing, 30);
    const perCheck = new Map<string, number>();
    let overlap = false;
    const probe: Probe = async (spec, timeoutMs, signal, opts) => {
      const id = spec.type === 'tcp' ? spec.address : '';
      const n = (perCheck.get(id) ?? 0) + 1;
      perCheck.set(id, n);
      if (n > 1) overlap = true;
      try {
        return await fake.probe(spec, timeoutMs, signal, opts);
      } finally {
        perCheck.set(id, (perCheck.get(id) ?? 1) - 1);
      }
    };
    const r = runner(probe, { concurrencyMax: 3 });
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
      r.set(ids.map((id) => checkDef(id, tcp(`${id}:1`), { intervalMs: 20 })));
      await waitFor(
        () => ids.every((id) => (fake.calls.get(`${id}:1`) ?? 0) >= 2),
        'every check probed twice',
      );
      assert.equal(fake.stats().inFlightMax, 3);
      assert.equal(overlap, false);
    } finally {
      r.stop();
    }
  });

  it('frees the slot of a probe that ignores its timeout and reports it critical', async () => {
    const hung: Probe = () => new Promise(() => {});
    const r = runner(hung, { concurrencyMax: 1 });
    try {
      r.set([checkDef('h', tcp('h:1'), { intervalMs: 10, timeoutMs: 50, initialStatus: 'passing' })]);
      await waitFor(() => r.state('h')?.status === 'critical', 'watchdog');
      assert.match(r.state('h')?.output ?? '', /did not finish within its 50 ms timeout/);
    } finally {
      r.stop();
    }
  });

  it('stop aborts probes in flight and is idempotent', async () => {
    let aborted = 0;
    let started = 0;
    const probe: Probe = (_spec, _timeoutMs, signal) => {
      started++;
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          aborted++;
          resolve({ status: 'critical', output: 'aborted' });
        });
      });
    };
    const r = runner(probe);
    r.set([checkDef('s', tcp('s:1'), { intervalMs: 10, timeoutMs: 60_000, initialStatus: 'passing' })]);
    await waitFor(() => started === 1, 'probe started');
    r.stop();
    r.stop();
    assert.equal(aborted, 1);
    await sleep(50);
    assert.equal(r.state('s')?.status, 'passing', 'a result after stop is not applied');
    assert.throws(() => r.set([]), /stopped/);
  });
});

describe('CheckRunner stop leaves nothing running', () => {
  it('a process that starts and stops a runner exits on its own', async () => {
    // dist/test/unit/health/ → dist/src/health/runner.js
    const runnerUrl = new URL('../../../src/health/runner.js', import.meta.url).href;
    const dir = mkdtempSync(join(tmpdir(), 'mesh-runner-exit-'));
    try {
      const script = join(dir, 'child.mjs');
      writeFileSync(
        script,
        `
import { CheckRunner } from ${JSON.stringify(runnerUrl)};
const log = { child: () => log, debug() {}, info() {}, warn() {}, error() {} };
const r = new CheckRunner({
  log,
  enableScriptChecks: false,
  onChange() {},
  probe: (_s, _t, signal) => new Promise((res) => signal.addEventListener('abort', () => res({ status: 'critical', output: '' }))),
});
const base = { serviceId: 'web', timeoutMs: 60000, successBeforePassing: 0, failuresBeforeCritical: 0, initialStatus: 'critical' };
r.set([
  { ...base, id: 'long', name: 'long', spec: { type: 'tcp', address: 'x:1' }, intervalMs: 600000 },
  { ...base, id: 'fast', name: 'fast', spec: { type: 'tcp', address: 'y:1' }, intervalMs: 1 },
  { ...base, id: 'ttl', name: 'ttl', spec: { type: 'ttl', ttlMs: 600000 }, intervalMs: 1 },
]);
setTimeout(() => r.stop(), 100);
`,
      );
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      const code = await new Promise<number | null>((resolve, reject) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error('the child did not exit within 20 s: stop() left a timer or a handle behind'));
        }, 20_000);
        child.on('exit', (c) => {
          clearTimeout(t);
          resolve(c);
        });
      });
      assert.equal(code, 0, stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
