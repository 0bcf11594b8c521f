// `npm run sim:fuzz -- --runs 500`: many seeds, each with a randomly chosen cluster size, fault mix
// and snapshot interval (all derived from the base seed, so a fuzz run is itself reproducible).
// Prints one line per run and, for every failure, the command that replays it; exits 1 on any.
// `--time-budget S` stops starting new runs after S seconds of wall time (CI uses it).
import '../../src/polyfill.js';
import { Command } from 'commander';
import { SeededRng } from '../../src/core/rand.js';
import { formatFaults, randomFaults } from './faults.js';
import { intIn } from './options.js';
import { runSim } from './run.js';
import { replayCommand } from './summary.js';

const program = new Command('npm run sim:fuzz --')
  .description('Run many simulation seeds with random fault mixes; report failures with replay commands')
  .option('--runs <n>', 'runs', intIn(1, 1_000_000), 100)
  .option('--seed <n>', 'base seed (the whole fuzz run is reproducible from it)', intIn(0, 2 ** 32 - 1), 1)
  .option('--nodes-max <n>', 'largest cluster tried', intIn(3, 200), 9)
  .option('--duration <s>', 'simulated seconds per run', intIn(5, 3_600), 60)
  .option('--time-budget <s>', 'start no new run after this many wall seconds', intIn(1, 86_400))
  .action((o) => {
    const started = performance.now();
    const rng = new SeededRng(o.seed);
    const failures: string[] = [];
    let done = 0;
    for (let i = 0; i < o.runs; i++) {
      // Draw every run's parameters even if the budget stops us, so run i is the same run always.
      const seed = rng.int(2 ** 31);
      const nodes = 3 + rng.int(o.nodesMax - 2);
      const faults = randomFaults(() => rng.next());
      const snapshotEvery = [10_000, 200, 50][rng.int(3)] as number;
      if (o.timeBudget !== undefined && performance.now() - started > o.timeBudget * 1_000) break;
      const text = formatFaults(faults);
      const s = runSim(
        { nodes, seed, durationMs: o.duration * 1_000, faults, snapshotEveryEntries: snapshotEvery },
        text,
      );
      done++;
      const verdict = s.violation ? `VIOLATION ${s.violation.property}` : 'ok';
      console.log(
        `run ${String(i + 1).padStart(4)}  seed ${String(seed).padStart(10)}  ${String(nodes).padStart(3)} agents  ` +
          `${verdict.padEnd(12)}  ${(s.wallMs / 1000).toFixed(1)} s  faults ${text}  snapshot-every ${snapshotEvery}`,
      );
      if (s.violation) {
        const replay = replayCommand(s, { voters: 3, clients: 6, snapshotEvery, settle: 60 });
        failures.push(`${s.violation.property}: ${s.violation.message.split('\n')[0]}\n  replay: ${replay}`);
      }
    }
    const wallS = ((performance.now() - started) / 1000).toFixed(0);
    console.log(`\n${done} runs in ${wallS} s: ${failures.length} failed`);
    for (const f of failures) console.log(`- ${f}`);
    if (failures.length > 0) process.exitCode = 1;
  });

program.parse();
