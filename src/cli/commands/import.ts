/** `iokit-snap import <file|->`: ioreg output captured on a Mac, shown as a live run shows it. */
import { plural } from '../../analyze/format';
import { importIoreg } from '../../import';
import { detectReportFormat, importReport } from '../../import/reports';
import { readInputFile, readInputStream } from '../../read-input';
import { documentChunks, writeSnapshot } from '../../snapshot-file';
import type { Snapshot } from '../../types';
import { parseCommandArgs, UsageError } from '../args';
import type { Command } from '../command';
import { acceleratorTable } from '../accelerator-table';
import { threadTable } from '../format';
import { limitLines } from '../notes';
import { errStyle, EXIT, outStyle, write, writeChunks, type CliIO } from '../io';

function readInput(source: string, io: CliIO): Promise<string> {
  return source === '-' ? readInputStream(io.stdin, 'ioreg output') : readInputFile(source, 'ioreg output');
}

/** Rows per table: a report of millions of threads is shown as tables of this many, never as one string. */
const TABLE_ROWS = 10_000;

/** An imported thread report: each process's threads as `iokit-snap threads` shows them. */
async function showReport(snap: Snapshot, io: CliIO): Promise<number> {
  for (const p of snap.processes) {
    await write(io.stdout, `pid ${p.pid} (${p.name}): ${plural(p.threads.length, 'thread')} from ${snap.source!.format} output\n`);
    for (let from = 0; from < p.threads.length || from === 0; from += TABLE_ROWS) {
      await write(io.stdout, threadTable(p.threads.slice(from, from + TABLE_ROWS), outStyle(io)));
    }
  }
  await write(io.stderr, limitLines(snap.limits.filter((limit) => limit.subject !== 'snapshot' && limit.subject !== 'host'), errStyle(io)));
  return EXIT.ok;
}

export const importCommand: Command = {
  name: 'import',
  summary: 'read ioreg output, or a sample/spindump/crash/lldb/hung_task report, and show it like a live run',
  usage: `Usage: iokit-snap import <file|-> [--json] [-o FILE] [--properties]

Reads what \`ioreg\` printed on some Mac (a file, or - for stdin) and shows its
accelerators in the same table as a live run. It reads plain \`ioreg\`, \`ioreg -l\`,
\`ioreg -r -d 1 -c IOAccelerator\`, the \`-i\` inheritance form, \`ioreg -a\` XML, and a
property block pasted without its node line. Best input, captured on the Mac:

  ioreg -r -d 1 -w 0 -c IOAccelerator > accel.txt

It also reads thread reports (detected from their text): macOS \`sample\` and
\`spindump\` output, the thread sections of crash and hang reports, lldb \`bt\` and
\`thread backtrace all\`, and Linux hung_task / sysrq-w logs. Their threads are shown
as \`iokit-snap threads\` shows a live process (\`iokit-snap explain\` judges one).

SVC-BUSY is the IOService busy state (registration, matching or termination in
progress), not GPU load. What the dump does not hold is listed as a note.

Options:
  --json              print the iokit-snap/1 snapshot instead of the table
  -o, --output FILE   write the snapshot to FILE (for \`iokit-snap diff\`)
  --properties        include each accelerator's raw property tree (with --json or -o)
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      json: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      properties: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('import takes one file of ioreg output (or - to read stdin), or a thread report');
    const text = await readInput(positionals[0], io);
    // A thread report (sample, spindump, crash, lldb, hung_task) or else an ioreg dump.
    const reportFormat = detectReportFormat(text);
    const snap = reportFormat !== null ? importReport(text) : importIoreg(text, { includeProperties: values.properties === true });
    if (typeof values.output === 'string') {
      await writeSnapshot(values.output, snap);
      const held = snap.source !== undefined ? `${snap.processes.reduce((n, p) => n + p.threads.length, 0)} thread(s)` : `${snap.accelerators.length} accelerator(s)`;
      await write(io.stderr, `wrote ${values.output}: ${held}\n`);
      await write(io.stderr, limitLines(snap.limits, errStyle(io)));
    }
    if (values.json) {
      // In pieces: the snapshot of a big report is more JSON than one string can hold.
      await writeChunks(io, documentChunks(snap));
      return EXIT.ok;
    }
    if (typeof values.output === 'string') return EXIT.ok;
    if (snap.source !== undefined) return showReport(snap, io);
    if (snap.accelerators.length === 0) {
      await write(io.stdout, 'No accelerators in this ioreg output.\n');
    } else {
      await write(io.stdout, acceleratorTable(snap.accelerators, outStyle(io)));
    }
    // The notes about the snapshot document itself (no clock, no threads, no host facts) say nothing about the table.
    const tableLimits = snap.limits.filter((limit) => limit.subject !== 'snapshot' && limit.subject !== 'host');
    await write(io.stderr, limitLines(tableLimits, errStyle(io)));
    return EXIT.ok;
  },
};
