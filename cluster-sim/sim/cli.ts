// `npm run sim -- --nodes 100 --seed 42 --duration 300 --faults loss=0.05,partition,crash`
// Runs one deterministic simulation and prints its summary; exits 1 on any violation, printing
// the command that replays the run.
import '../../src/polyfill.js';
import { Command } from 'commander';
import { formatFaults, parseFaults } from './faults.js';
import { intIn } from './options.js';
import { runSim } from './run.js';
import { formatSummary, replayCommand } from './summary.js';

const program = new Command('npm run sim --')
  .description(
    'Deterministic simulation of a mesh cluster: the real membership, Raft and state-machine cores',
  )
  .option('--nodes <n>', 'agents', intIn(1, 5_000), 5)
  .option('--seed <n>', 'seed (the same seed replays the same run)', intIn(0, 2 ** 32 - 1), 1)
  .option('--duration <s>', 'simulated seconds of workload and faults', intIn(1, 86_400), 60)
  .option(
    '--faults <mix>',
    'loss=P,dup=P,delay=MS,drift=F and any of partition,asym,bridge,crash,pause,churn (or all)',
    'none',
  )
  .option('--voters <n>', 'Raft voters autopilot keeps', intIn(1, 9), 3)
  .option('--clients <n>', 'concurrent KV clients', intIn(0, 256), 6)
  .option('--snapshot-every <n>', 'entries between snapshots', intIn(10, 1_000_000), 10_000)
  .option('--settle <s>', 'simulated seconds the healed cluster gets to settle', intIn(1, 3_600), 60)
  .option('--trace', 'print every traced event (small runs)')
  .option('--json', 'print the summary as JSON')
  .action((o) => {
    let faults = parseFaults('none');
    try {
      faults = parseFaults(o.faults);
    } catch (e) {
      program.error((e as Error).message);
    }
    const faultsText = formatFaults(faults);
    const s = runSim(
      {
        nodes: o.nodes,
        seed: o.seed,
        durationMs: o.duration * 1_000,
        faults,
        voters: o.voters,
        settleMs: o.settle * 1_000,
        snapshotEveryEntries: o.snapshotEvery,
        workload: { clients: o.clients },
        trace: Boolean(o.trace),
      },
      faultsText,
    );
    if (o.trace) for (const line of s.trace) console.log(line);
    if (o.json) console.log(JSON.stringify({ ...s, trace: undefined }, null, 2));
    else console.log(formatSummary(s));
    if (s.violation) {
      console.log(
        `\nreplay: ${replayCommand(s, { voters: o.voters, clients: o.clients, snapshotEvery: o.snapshotEvery, settle: o.settle })}`,
      );
      process.exitCode = 1;
    }
  });

program.parse();
