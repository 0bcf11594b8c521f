// `npm run cluster` end to end: the tool runs as a child process, driven by --script and by its
// standard input, and the tests read what an operator reads: the agent table, command output,
// one-line errors, the exit code, and that no agent process outlives it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sleep } from '../../cluster-sim/launcher.js';

/** dist/test/integration/ → dist/cluster-sim/cluster.js */
const CLUSTER_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cluster-sim', 'cluster.js');
/** The script below takes ~10 s; past this the tool is stuck. */
const runTimeoutMs = 90_000;
/** After an overrun SIGTERM (which stops the agents), SIGKILL if the tool still has not exited. */
const killGraceMs = 10_000;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Run the cluster tool; `stdin` lines are written to it and then its input is closed. */
function runCluster(args: string[], stdin?: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLUSTER_JS, ...args], {
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const overrun = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), killGraceMs).unref();
    }, runTimeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(overrun);
      resolve({ code, out, err });
    });
    if (stdin !== undefined) child.stdin?.end(stdin.map((l) => `${l}\n`).join(''));
  });
}

/** The output after each echoed command line ("cluster> CMD"), in order; `preamble` is what came before. */
function sections(out: string): { preamble: string; runs: Array<{ cmd: string; text: string }> } {
  const [preamble = '', ...rest] = out.split(/^cluster> /m);
  const runs = rest.map((chunk) => {
    const k = chunk.indexOf('\n');
    return { cmd: chunk.slice(0, k), text: chunk.slice(k + 1) };
  });
  return { preamble, runs };
}

function section(runs: Array<{ cmd: string; text: string }>, cmd: string, nth = 0): string {
  const found = runs.filter((r) => r.cmd === cmd)[nth];
  assert.ok(found, `the output has a section for "${cmd}" (#${nth + 1})`);
  return found.text;
}

/** PIDs of every agent row of every table printed (a restarted agent has a new one). */
function agentPids(out: string): number[] {
  return [...out.matchAll(/^n\d\d\s+(\d+)\s/gm)].map((m) => Number(m[1]));
}

/** True once `pid` no longer exists (or is a zombie awaiting its reaper), polled for at most 5 s. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(pid, 0);
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state === 'Z') return true;
    } catch {
      return true;
    }
    await sleep(100);
  }
  return false;
}

async function assertAllGone(out: string): Promise<void> {
  const pids = agentPids(out);
  assert.ok(pids.length > 0, 'the output lists agent pids');
  for (const pid of new Set(pids)) assert.ok(await gone(pid), `agent pid ${pid} is gone after exit`);
}

describe('npm run cluster', { timeout: 150_000 }, () => {
  it('--script: table, kill → failed, restart → alive, a bad command does not stop the script', async () => {
    const script = [
      'frobnicate',
      'kill n03',
      'wait status n03 failed',
      'members n01',
      'restart n03',
      'wait alive 3',
      'status',
    ].join('; ');
    const r = await runCluster(['--agents', '3', '--script', script]);
    const why = `\nstdout:\n${r.out}\nstderr:\n${r.err}`;
    assert.equal(r.code, 0, `exits 0${why}`);
    const { preamble, runs } = sections(r.out);

    const rows = preamble.match(/^n0\d\s+\d+\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+\S+$/gm) ?? [];
    assert.deepEqual(
      rows.map((l) => l.slice(0, 3)),
      ['n01', 'n02', 'n03'],
      `the start-up table lists 3 agents with their HTTP URLs${why}`,
    );
    assert.match(preamble, /MESH_HTTP_ADDR=127\.0\.0\.1:\d+ \S*mesh\.mjs members/, 'a hint for the CLI');

    assert.match(section(runs, 'frobnicate'), /^error: unknown command "frobnicate"/);
    assert.match(section(runs, 'kill n03'), /^n03 killed/);
    assert.match(section(runs, 'wait status n03 failed'), /sees n03 failed/, why);
    const members = section(runs, 'members n01');
    assert.match(members, /^n03\s+127\.0\.0\.1:\d+\s+failed/m, why);
    assert.match(members, /^n01\s+127\.0\.0\.1:\d+\s+alive/m);
    assert.match(members, /^n02\s+127\.0\.0\.1:\d+\s+alive/m);
    assert.match(section(runs, 'restart n03'), /^n03 restarted/, why);
    assert.match(section(runs, 'wait alive 3'), /every running agent sees 3 alive/, why);

    const status = section(runs, 'status');
    for (const name of ['n01', 'n02', 'n03'])
      assert.match(status, new RegExp(`^${name}\\s+\\d+\\s+running\\s`, 'm'), `${name} running${why}`);
    const firstPid = /^n03\s+(\d+)/m.exec(preamble)?.[1];
    const newPid = /^n03\s+(\d+)/m.exec(status)?.[1];
    assert.notEqual(newPid, firstPid, 'the restarted agent is a new process');
    assert.match(r.out, /^stopping 3 agent\(s\)$/m);

    await assertAllGone(r.out);
  });

  it('reads commands from standard input and stops every agent at end of input', async () => {
    const r = await runCluster(['--agents', '2'], ['status', 'members', 'bogus 1', 'members n07', 'sleep x']);
    const why = `\nstdout:\n${r.out}\nstderr:\n${r.err}`;
    assert.equal(r.code, 0, `exits 0${why}`);
    const { runs } = sections(r.out);
    assert.deepEqual(
      runs.map((x) => x.cmd),
      ['status', 'members', 'bogus 1', 'members n07', 'sleep x'],
      `every line is run in order${why}`,
    );
    assert.match(section(runs, 'status'), /^n02\s+\d+\s+running\s/m);
    assert.match(section(runs, 'members'), /^members as n01 sees them:\n.*\nn01\s.*alive.*\nn02\s.*alive/m);
    assert.match(section(runs, 'bogus 1'), /^error: unknown command "bogus"/);
    assert.match(section(runs, 'members n07'), /^error: no agent "n07"/);
    assert.match(section(runs, 'sleep x'), /^error: MS: expected an integer/);
    assert.match(r.out, /^stopping 2 agent\(s\)$/m);
    await assertAllGone(r.out);
  });

  it('refuses --agents outside 1..30 with a clear error and a non-zero exit', async () => {
    const r = await runCluster(['--agents', '31', '--script', 'status']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /--agents.*expected an integer from 1 to 30, got "31"/);
    assert.equal(agentPids(r.out).length, 0, 'no agent was started');
  });
});
