// Script probes: exit status mapping, output, timeouts that kill the whole process group, and the
// --enable-script-checks switch.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { runProbe, SCRIPT_CHECKS_DISABLED_OUTPUT } from '../../../src/health/probes.js';
import { sleep, waitFor } from './helpers.js';

const enabled = { enableScriptChecks: true };
const never = new AbortController().signal;
const sh = (script: string) => ({ type: 'script' as const, args: ['/bin/sh', '-c', script] });

/** Running, not merely a zombie waiting for its new parent (possibly a slow PID 1) to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self')) return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('script probe', () => {
  it('exit 0 passes', async () => {
    assert.deepEqual(await runProbe(sh('exit 0'), 5000, never, enabled), { status: 'passing', output: '' });
  });

  it('exit 1 warns, with stdout and stderr combined', async () => {
    const r = await runProbe(sh('echo out; echo err >&2; exit 1'), 5000, never, enabled);
    assert.equal(r.status, 'warning');
    assert.match(r.output, /out/);
    assert.match(r.output, /err/);
  });

  it('exit 2 is critical', async () => {
    const r = await runProbe(sh('echo bad; exit 2'), 5000, never, enabled);
    assert.deepEqual(r, { status: 'critical', output: 'exit status 2\nbad\n' });
  });

  it('a script past its timeout is killed and critical', async () => {
    const started = Date.now();
    const r = await runProbe(sh('sleep 5'), 200, never, enabled);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /^timed out after 200 ms running "\/bin\/sh"/);
    assert.ok(Date.now() - started < 4000, 'returned long before sleep 5 would have ended');
  });

  it('a timeout kills the whole process group, not only the direct child', async () => {
    const r = await runProbe(sh('sleep 30 & echo $!; wait'), 300, never, enabled);
    assert.equal(r.status, 'critical');
    const pid = Number(/\n(\d+)\n/.exec(r.output)?.[1]);
    assert.ok(pid > 0, `background pid in ${JSON.stringify(r.output)}`);
    await waitFor(() => !alive(pid), `background sleep ${pid} to die`);
  });

  it('keeps only the tail of a large output', async () => {
    const r = await runProbe(
      sh('i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done'),
      5000,
      never,
      enabled,
    );
    assert.equal(r.status, 'passing');
    assert.match(r.output, /^Captured 4096 of \d+ bytes\n\.\.\.\n/);
    assert.match(r.output, /line-1999\n$/);
  });

  it('a missing program is critical with the reason', async () => {
    const r = await runProbe({ type: 'script', args: ['/nonexistent/check'] }, 2000, never, enabled);
    assert.equal(r.status, 'critical');
    assert.match(r.output, /ENOENT/);
  });

  it('an empty argv is critical', async () => {
    const r = await runProbe({ type: 'script', args: [] }, 2000, never, enabled);
    assert.equal(r.status, 'critical');
  });

  it('does not run anything when script checks are disabled', async () => {
    const marker = `/tmp/mesh-script-disabled-${process.pid}`;
    const r = await runProbe(sh(`touch ${marker}`), 2000, never, { enableScriptChecks: false });
    assert.deepEqual(r, { status: 'critical', output: SCRIPT_CHECKS_DISABLED_OUTPUT });
    assert.match(r.output, /--enable-script-checks/);
    await sleep(50);
    assert.equal(existsSync(marker), false);
  });
});
