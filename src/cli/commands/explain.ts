/** `iokit-snap explain <report|snapshot>`: judge one report or snapshot on its own, with no baseline. */
import { explain as judge } from '../../explain';
import { loadSnapshotOrReport, snapshotFromText } from '../../import/reports/load';
import { readInputStream } from '../../read-input';
import { documentChunks } from '../../snapshot-file';
import { parseCommandArgs, parseDuration, UsageError } from '../args';
import type { Command } from '../command';
import { explainChunks } from '../explain';
import { EXIT, outStyle, writeChunks } from '../io';


export const explainCommand: Command = {
  name: 'explain',
  summary: 'judge one report (sample, spindump, crash, lldb, hung_task) or snapshot on its own',
  usage: `Usage: iokit-snap explain <FILE|-> [--json] [--stall DUR] [--verbose]

Reads one report and says what it proves by itself, with no healthy baseline: the main
thread's wait and for how long (sample counts over the sampled time, hung_task's
"blocked for more than N seconds", spindump's Unresponsive notes), every thread in a GPU
driver, waiting for the GPU, or on the IOKit user-client path, and the lock chains the
report shows. FILE is macOS \`sample\` or \`spindump\` output, a crash or hang report, an
lldb \`bt\` / \`thread backtrace all\`, a Linux hung_task or sysrq-w log, or a snapshot
saved by \`iokit-snap snapshot -o\` (- reads stdin). A single stack (crash report, lldb)
proves where a thread was, not for how long: its findings are warnings.

Options:
  --json          print the report as JSON
  --stall DUR     a wait the report proves held at least DUR is a hang (default 1s)
  --verbose       show every info finding

Exit status: 0 healthy, 2 hung or suspect, 1 error (e.g. text that is no report).
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      json: { type: 'boolean' },
      stall: { type: 'string' },
      verbose: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('explain takes one report or snapshot file (or - to read stdin)');
    const source = positionals[0];
    // stdin has the size cap a file has.
    const snap = source === '-' ? snapshotFromText(await readInputStream(io.stdin, 'snapshot or report'), 'stdin') : await loadSnapshotOrReport(source);
    const report = judge(snap, { stallMs: typeof values.stall === 'string' ? parseDuration(values.stall, '--stall') : undefined });
    // In pieces: a report of a few hundred thousand findings is more text than one string holds.
    const chunks = values.json ? documentChunks(report) : explainChunks(report, outStyle(io), { verbose: values.verbose === true });
    await writeChunks(io, chunks);
    return report.verdict === 'healthy' ? EXIT.ok : EXIT.hung;
  },
};
