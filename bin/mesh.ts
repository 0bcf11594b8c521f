#!/usr/bin/env node
import '../src/polyfill.js';
import { main } from '../src/cli/main.js';

const code = await main(process.argv.slice(2));
// exitCode, not exit(): stdout may still be draining into a pipe. `mesh agent` leaves it unset.
if (code !== 0) process.exitCode = code;
