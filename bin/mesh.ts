#!/usr/bin/env -S node --max-semi-space-size=2
// The flag caps V8's young generation at 2 MiB per semi-space (default 16): the agent allocates
// little, and at N=30 this takes its RSS from ~110 to ~90 MiB at no measurable CPU cost
// (docs/benchmarks.md). It applies when `mesh` is executed directly (npm bin, ./dist/mesh.mjs).
import '../src/polyfill.js';
import { main } from '../src/cli/main.js';

const code = await main(process.argv.slice(2));
// exitCode, not exit(): stdout may still be draining into a pipe. `mesh agent` leaves it unset.
if (code !== 0) process.exitCode = code;
