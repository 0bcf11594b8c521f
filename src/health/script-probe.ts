// Script check: run argv without a shell; exit 0 passes, 1 warns, anything else is critical (as
// Consul and Nagios plugins). Off unless the agent runs with --enable-script-checks, because a check
// registered over the API would otherwise let anyone who can reach the API run commands on the host.
//
// The child leads its own process group, so a timeout kills everything it started (SIGKILL to the
// group), not only the direct child: a shell script's `sleep` would otherwise outlive it and keep
// our pipes open.
import { type ChildProcess, spawn } from 'node:child_process';
import { abortPhrase, deadline, PROBE_OUTPUT_BYTES_MAX, type ProbeResult, reason } from './probe-common.js';

export const SCRIPT_CHECKS_DISABLED_OUTPUT =
  'script checks are disabled on this agent; start the agent with --enable-script-checks to run them';

export async function scriptProbe(
  args: readonly string[],
  timeoutMs: number,
  parent: AbortSignal,
  enabled: boolean,
): Promise<ProbeResult> {
  if (!enabled) return { status: 'critical', output: SCRIPT_CHECKS_DISABLED_OUTPUT };
  const [cmd, ...rest] = args;
  if (cmd === undefined || cmd === '')
    return { status: 'critical', output: 'script check has no command (args is empty)' };
  const d = deadline(timeoutMs, parent);
  if (d.signal.aborted) {
    d.dispose();
    return { status: 'critical', output: abortPhrase(d.cause() ?? 'cancelled', timeoutMs) };
  }
  const out = new TailBuffer(PROBE_OUTPUT_BYTES_MAX);
  let child: ChildProcess | undefined;
  try {
    const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
        const c = spawn(cmd, rest, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
        child = c;
        c.stdout?.on('data', (b: Buffer) => out.push(b));
        c.stderr?.on('data', (b: Buffer) => out.push(b));
        c.on('error', reject);
        c.on('exit', (code, signal) => {
          exit = { code, signal };
        });
        // 'close' comes once the pipes are drained too, so the output is complete.
        c.on('close', (code, signal) => resolve(exit ?? { code, signal }));
        d.signal.addEventListener(
          'abort',
          () => {
            // Exited, but a descendant still holds the pipes: judge by the exit status we have.
            if (exit !== undefined) resolve(exit);
            else reject(d.signal.reason);
          },
          { once: true },
        );
      },
    );
    const text = out.text();
    if (ended.code === 0) return { status: 'passing', output: text };
    if (ended.code === 1) return { status: 'warning', output: text };
    const how = ended.code !== null ? `exit status ${ended.code}` : `killed by ${ended.signal}`;
    return { status: 'critical', output: text === '' ? how : `${how}\n${text}` };
  } catch (err) {
    const why = d.cause();
    const head = why
      ? `${abortPhrase(why, timeoutMs)} running ${JSON.stringify(cmd)}`
      : `${cmd}: ${reason(err)}`;
    const text = out.text();
    return { status: 'critical', output: text === '' ? head : `${head}\n${text}` };
  } finally {
    if (child !== undefined) killGroup(child);
    d.dispose();
  }
}

/** SIGKILL the child's process group (it leads one: detached), or the child alone as a fallback. */
function killGroup(child: ChildProcess): void {
  child.stdout?.destroy();
  child.stderr?.destroy();
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is gone already (the usual case after a clean exit).
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** Keeps the last `bytesMax` bytes of a stream: the end of a script's output usually holds the verdict. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private kept = 0;
  private seen = 0;

  constructor(private readonly bytesMax: number) {}

  push(b: Buffer): void {
    this.seen += b.length;
    this.chunks.push(b);
    this.kept += b.length;
    // Drop whole chunks from the front while the rest still covers the bound.
    while (this.chunks.length > 1 && this.kept - this.chunks[0]!.length >= this.bytesMax) {
      this.kept -= this.chunks.shift()!.length;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks, this.kept);
    if (this.seen <= this.bytesMax) return all.toString('utf8');
    const tail = all.subarray(all.length - this.bytesMax);
    // Consul's wording, so operators recognise a cut output.
    return `Captured ${this.bytesMax} of ${this.seen} bytes\n...\n${tail.toString('utf8')}`;
  }
}
