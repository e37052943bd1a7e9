/** `iokit-snap import <file|->`: ioreg output captured on a Mac (or a thread report, or a snapshot), shown as a live run shows it. */
import * as path from 'node:path';
import { plural } from '../../analyze/format';
import { documentChunks, writeSnapshot } from '../../snapshot-file';
import type { Snapshot } from '../../types';
import { outputFile, parseCommandArgs, UsageError } from '../args';
import type { Command } from '../command';
import { acceleratorTable } from '../accelerator-table';
import { notFor, readDocument } from '../documents';
import { threadTable } from '../format';
import { limitLines } from '../notes';
import { errStyle, EXIT, outStyle, write, writeChunks, type CliIO } from '../io';

/** Rows per table: a report of millions of threads is shown as tables of this many, never as one string. */
const TABLE_ROWS = 10_000;

/** Each process's threads as `iokit-snap threads` shows them (an imported thread report, a saved snapshot). */
async function showThreads(snap: Snapshot, io: CliIO, from: string): Promise<void> {
  for (const p of snap.processes) {
    await write(io.stdout, `pid ${p.pid} (${p.name}): ${plural(p.threads.length, 'thread')} ${from}\n`);
    for (let at = 0; at < p.threads.length || at === 0; at += TABLE_ROWS) {
      await write(io.stdout, threadTable(p.threads.slice(at, at + TABLE_ROWS), outStyle(io)));
    }
  }
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
A snapshot (snapshot -o, exec's hung.json) is shown the same way, and -o copies it.
Anything else is refused with the list of what it reads.

SVC-BUSY is the IOService busy state (registration, matching or termination in
progress), not GPU load. What the dump does not hold is listed as a note.

Options:
  --json              print the iokit-snap/1 snapshot instead of the table
  -o, --output FILE   write the snapshot to FILE (mode 0600; for \`iokit-snap diff\`); - is stdout
  --properties        include each accelerator's raw property tree (with --json or -o)
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      json: { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      properties: { type: 'boolean' },
    }, true);
    if (positionals.length !== 1) throw new UsageError('import takes one file of ioreg output (or - to read stdin), or a thread report');
    const { document, where } = await readDocument(positionals[0], io, { includeProperties: values.properties === true, what: 'ioreg output' });
    if (document.kind !== 'ioreg' && document.kind !== 'thread-report' && document.kind !== 'snapshot') {
      const instead =
        document.kind === 'report'
          ? `iokit-snap explain ${where} shows it; exec saves the snapshots beside it (${path.join(path.dirname(where), 'hung.json')})`
          : document.kind === 'threads'
            ? `iokit-snap threads --from ${where} shows it`
            : undefined;
      throw notFor('import', document, where, 'ioreg output, a thread report or a snapshot', instead);
    }
    const snap = document.snapshot;
    const file = outputFile(values.output);
    if (file !== null) {
      await writeSnapshot(file, snap);
      const held = snap.source !== undefined ? `${snap.processes.reduce((n, p) => n + p.threads.length, 0)} thread(s)` : `${snap.accelerators.length} accelerator(s)`;
      await write(io.stderr, `wrote ${file}: ${held}\n`);
      await write(io.stderr, limitLines(snap.limits, errStyle(io)));
    }
    // -o - is the snapshot on stdout, as --json; in pieces: the snapshot of a big report is more JSON than one string can hold.
    if (values.json || values.output === '-') {
      await writeChunks(io, documentChunks(snap));
      return EXIT.ok;
    }
    if (file !== null) return EXIT.ok;
    // The notes about the snapshot document itself (no clock, no threads, no host facts) say nothing about the tables.
    const tableLimits = snap.limits.filter((limit) => limit.subject !== 'snapshot' && limit.subject !== 'host');
    if (document.kind === 'thread-report') {
      await showThreads(snap, io, `from ${document.format} output`);
      await write(io.stderr, limitLines(tableLimits, errStyle(io)));
      return EXIT.ok;
    }
    if (document.kind === 'snapshot') {
      // Already a snapshot: shown as the live commands show it (the accelerators, then each process's threads).
      if (snap.accelerators.length > 0) await write(io.stdout, acceleratorTable(snap.accelerators, outStyle(io)));
      await showThreads(snap, io, `in ${where}, taken ${snap.takenAt}`);
      if (snap.accelerators.length === 0 && snap.processes.length === 0) await write(io.stdout, `${where}: a snapshot with no accelerators and no process.\n`);
      await write(io.stderr, limitLines(tableLimits, errStyle(io)));
      return EXIT.ok;
    }
    if (snap.accelerators.length === 0) {
      await write(io.stdout, 'No accelerators in this ioreg output.\n');
    } else {
      await write(io.stdout, acceleratorTable(snap.accelerators, outStyle(io)));
    }
    await write(io.stderr, limitLines(tableLimits, errStyle(io)));
    return EXIT.ok;
  },
};
