/** `iokit-snap explain <report|snapshot>`: judge one report or snapshot on its own, with no baseline; or show a saved report. */
import * as path from 'node:path';
import { explain as judge } from '../../explain';
import { documentChunks } from '../../json-chunks';
import type { Snapshot } from '../../types';
import { parseCommandArgs, parseDuration, UsageError } from '../args';
import type { Command } from '../command';
import { notFor, readDocument } from '../documents';
import { explainChunks } from '../explain';
import { EXIT, outStyle, write, writeChunks, type CliIO } from '../io';
/** exec's hung.json beside its report.json, for the culprits' frames; null when there is none to read. */
async function besideReport(report: string, io: CliIO): Promise<{ snapshot: Snapshot; snapshotFile: string } | null> {
  const file = path.join(path.dirname(report), 'hung.json');
  try {
    const { document } = await readDocument(file, io);
    return document.kind === 'snapshot' ? { snapshot: document.snapshot, snapshotFile: file } : null;
  } catch {
    return null;
  }
}

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
proves where a thread was, not for how long: its findings are warnings. Where the
file has stacks, each finding shows its thread's top frames.

A report iokit-snap saved (exec's report.json, diff or explain --json) is shown as
it was saved, with the verdict it had then.

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
    }, true);
    if (positionals.length !== 1) throw new UsageError('explain takes one report or snapshot file (or - to read stdin)');
    const source = positionals[0];
    const { document, where } = await readDocument(source, io);
    const style = outStyle(io);
    if (document.kind === 'report') {
      // Already judged: shown as saved (its verdict is the one it had then).
      const report = document.report;
      if (values.json) await writeChunks(io, documentChunks(report));
      else {
        const hung = source === '-' ? null : await besideReport(source, io);
        await write(io.stdout, `${where}: a saved report${document.exec !== undefined ? ` of exec pid ${document.exec.pid} (${document.exec.outcome})` : ''}\n`);
        await writeChunks(io, explainChunks(report, style, { verbose: values.verbose === true, ...hung }));
      }
      return report.verdict === 'healthy' ? EXIT.ok : EXIT.hung;
    }
    if (document.kind !== 'snapshot' && document.kind !== 'thread-report') {
      const instead =
        document.kind === 'ioreg'
          ? 'it holds accelerators only, which say nothing alone: iokit-snap import shows them, iokit-snap diff compares two dumps'
          : document.kind === 'threads'
            ? 'a thread sample proves nothing alone: take two snapshots (iokit-snap snapshot --pid N -o FILE) and diff them'
            : undefined;
      throw notFor('explain', document, where, 'one snapshot or thread report', instead);
    }
    const snap = document.snapshot;
    const report = judge(snap, { stallMs: typeof values.stall === 'string' ? parseDuration(values.stall, '--stall') : undefined });
    // In pieces: a report of a few hundred thousand findings is more text than one string holds.
    const chunks = values.json
      ? documentChunks(report)
      : explainChunks(report, style, { verbose: values.verbose === true, snapshot: snap, ...(source !== '-' ? { snapshotFile: source } : {}) });
    await writeChunks(io, chunks);
    return report.verdict === 'healthy' ? EXIT.ok : EXIT.hung;
  },
};
