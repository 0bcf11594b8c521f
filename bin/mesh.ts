#!/usr/bin/env -S node --max-semi-space-size=2 --single-threaded-gc
// --max-semi-space-size=2 caps V8's young generation at 2 MiB per semi-space (default 16): the
// agent allocates little, and at N=30 this takes its RSS from ~110 to ~90 MiB at no measurable CPU
// cost (docs/benchmarks.md).
// --single-threaded-gc collects garbage on the thread that made it, without V8's helper threads
// (parallel scavenges, concurrent marking). The agent's heaps are small, so the helpers shorten
// pauses that are already short, while waking them for every scavenge cost ~10 µs of CPU per
// proxied request on top of the proxy thread's own: CPU that belongs to the host's applications.
// Garbage collector flags cannot change safely once the heap runs (v8.setFlagsFromString
// mid-marking aborts), so they live here; both apply when `mesh` is executed directly (npm bin,
// ./dist/mesh.mjs). The regexp engine's flags are read when a pattern is compiled, so polyfill.ts
// sets them at start, for every entry point, however it is run.
import '../src/polyfill.js';
import { main } from '../src/cli/main.js';

// A reader that went away (`mesh proxy status | head -1`) is no error of ours: drop the rest of the
// output and finish with the command's own status, quietly, as Unix tools do on SIGPIPE (Node
// ignores SIGPIPE, so the write fails with EPIPE, and an 'error' event nobody handles prints a
// stack trace and exits 1). Only client output goes through process.stdout: the agent's pino
// logger writes to the file descriptor directly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') {
      stream.destroy();
      return;
    }
    throw err;
  });
}

const code = await main(process.argv.slice(2));
// exitCode, not exit(): stdout may still be draining into a pipe. `mesh agent` leaves it unset.
if (code !== 0) process.exitCode = code;
