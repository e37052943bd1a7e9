/**
 * How the real command (bin/iokit-snap.js, built by `npm run build`) meets a user: durations
 * need a unit and fit a timer, usage errors are one line plus the command's usage line.
 */
import t from 'tap';
import { COMMANDS } from '../src/cli/main';
import { runCli, spawnCli } from './helpers/cli';


t.test('a duration needs a unit, and must fit a timer (2^31 - 1 ms)', async (t) => {
  const [bare, longest] = await Promise.all([
    spawnCli(['exec', '--timeout', '1', '--', 'true']),
    spawnCli(['threads', String(process.pid), '--timeout', '596h']),
  ]);
  t.equal(bare.code, 64);
  t.match(bare.stderr, /^iokit-snap exec: --timeout 1 has no unit: write 1s for seconds \(or 1ms, 1m\)\n/);
  const interval = await runCli(['watch', '--pid', '1', '--interval', '1']);
  t.equal(interval.code, 64);
  t.match(interval.stderr, /--interval 1 has no unit: write 1s/);
  const huge = await runCli(['exec', '--timeout', '3000000s', '--', 'true']);
  t.equal(huge.code, 64);
  t.match(huge.stderr, /--timeout 3000000s is too long: at most 24\.8 days/);
  t.notMatch(huge.stderr, /TimeoutOverflowWarning/);
  const justOver = await runCli(['threads', String(process.pid), '--timeout', '597h']);
  t.equal(justOver.code, 64);
  t.equal(longest.code, 0, longest.stderr);
});

t.test('usage errors: one line saying what was wrong, the usage line, no parser wording', async (t) => {
  const cases: [string[], RegExp][] = [
    [['exec', '--timeout', '-5', '--', 'true'], /^iokit-snap exec: --timeout needs a value; "-5" looks like an option \(write --timeout=-5 if it is the value\)\n/],
    [['threads', '--timeout'], /^iokit-snap threads: --timeout needs a value\n/],
    [['watch', '-p'], /^iokit-snap watch: --pid needs a value\n/],
    [['threads', '1', '--json=yes'], /^iokit-snap threads: --json takes no value\n/],
    [['snapshot', 'stray'], /^iokit-snap snapshot: unexpected argument "stray"\n/],
    [['threads', '--frob'], /^iokit-snap threads: unknown option --frob\n/],
  ];
  // The first through the real binary; the rest in-process (each node start is slow on a loaded machine).
  const runs = await Promise.all(cases.map(([argv], i) => (i === 0 ? spawnCli(argv) : runCli(argv))));
  for (const [i, [argv, said]] of cases.entries()) {
    const run = runs[i];
    t.equal(run.code, 64, argv.join(' '));
    t.match(run.stderr, said);
    const lines = run.stderr.trimEnd().split('\n');
    t.equal(lines.length, 3, `three lines: ${run.stderr}`);
    t.match(lines[1], new RegExp(`^Usage: iokit-snap (\\[)?${argv[0]}`));
    t.match(lines[2], new RegExp(`^\\(iokit-snap ${argv[0]} --help for the options\\)$`));
    t.notMatch(run.stderr, /ambiguous|Did you forget|To specify|argument missing/);
  }
  const unknown = await runCli(['frobnicate']);
  t.equal(unknown.code, 64);
  t.equal(unknown.stderr, `iokit-snap: unknown command "frobnicate" (the commands: ${COMMANDS.map((c) => c.name).join(', ')})\n(iokit-snap --help for more)\n`);
  const defaultCommand = await runCli(['--bogus']);
  t.equal(defaultCommand.stderr.split('\n')[2], '(iokit-snap --help for the options)');
});
