/** `iokit-snap diff healthy.json hung.json`: what changed between a healthy and a hung snapshot. */
import * as path from 'node:path';
import { compare } from '../../analyze/compare';
import { IokitSnapError } from '../../errors';
import { documentChunks, jsonChunks } from '../../json-chunks';
import type { Snapshot } from '../../types';
import { parseCommandArgs, parseDuration, UsageError } from '../args';
import type { Command } from '../command';
import { explainChunks } from '../explain';
import { notFor, readDocument } from '../documents';
import { EXIT, outStyle, write, writeChunks, type CliIO } from '../io';

/** One side of a diff: a snapshot, or what becomes one (a thread report, ioreg output). */
async function comparable(source: string, io: CliIO): Promise<Snapshot> {
  const { document, where } = await readDocument(source, io);
  if (document.kind === 'snapshot' || document.kind === 'thread-report' || document.kind === 'ioreg') return document.snapshot;
  const instead =
    document.kind === 'report'
      ? `it is already the comparison; exec saves the snapshots it came from beside it: iokit-snap diff ${path.join(path.dirname(where), 'baseline.json')} ${path.join(path.dirname(where), 'hung.json')}`
      : 'take snapshots with iokit-snap snapshot --pid N -o FILE';
  throw notFor('diff', document, where, 'two snapshots (or thread reports, or ioreg dumps)', instead);
}

/** The same JSON, compared chunk by chunk: two big snapshots are more text than one string holds. */
function sameDocument(a: unknown, b: unknown): boolean {
  const left = jsonChunks(a);
  const right = jsonChunks(b);
  for (;;) {
    const x = left.next();
    const y = right.next();
    if (x.done || y.done) return x.done === true && y.done === true;
    // The chunks of one text are cut at the same places (the same pieces, the same sizes), so equal texts give equal chunks.
    if (x.value !== y.value) return false;
  }
}

export const diffCommand: Command = {
  name: 'diff',
  summary: 'compare a healthy snapshot with a hung one: the verdict and the findings',
  usage: `Usage: iokit-snap diff HEALTHY.json HUNG.json [--json] [--stall DUR] [--verbose]

Compares two snapshots taken with \`iokit-snap snapshot\` (the same --pid in both;
either may be - for stdin, a thread report, or ioreg output for the accelerators):
which threads made no progress between them and in what call, which spun, which
were stopped or in uninterruptible sleep, and what the accelerators did (recovery
count, power state and transitions, busy state, queues, services gone or re-created).
Waits a thread already sat in when healthy (epoll_wait, poll, kevent, run-loop
mach_msg) are idle, not findings.

Options:
  --json          print the report as JSON
  --stall DUR     no progress for at least DUR counts as stalled (default 1s)
  --expect-exit   the process should have finished: a main thread waiting for events is suspect
  --verbose       show every info finding

Exit status: 0 healthy, 2 hung or suspect, 1 error (e.g. a file that is not a snapshot,
or the same snapshot twice: nothing can have changed between a snapshot and itself).
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      json: { type: 'boolean' },
      stall: { type: 'string' },
      'expect-exit': { type: 'boolean' },
      verbose: { type: 'boolean' },
    }, true);
    if (positionals.length !== 2) throw new UsageError('diff takes two snapshot files: the healthy one, then the hung one');
    if (positionals[0] === '-' && positionals[1] === '-') throw new UsageError('diff reads stdin (-) for one side at most');
    // Either side may be a report (sample, spindump, crash, lldb, hung_task) or ioreg output instead of a snapshot.
    const [healthy, hung] = await Promise.all(positionals.map((p) => comparable(p, io)));
    const sameFile = positionals[0] === positionals[1];
    if (sameFile || (healthy.takenAt === hung.takenAt && healthy.monotonicNs === hung.monotonicNs && sameDocument(healthy, hung))) {
      // Nothing can have changed between a snapshot and itself: a verdict would be empty, not healthy.
      const same = sameFile ? `${positionals[0]} twice` : `${positionals[0]} and ${positionals[1]}`;
      throw new IokitSnapError(
        'EINVAL',
        `${same}: the same snapshot (taken ${healthy.takenAt}), so there is nothing to compare; take the second one later, while it hangs`,
      );
    }
    const report = compare(healthy, hung, {
      stallMs: typeof values.stall === 'string' ? parseDuration(values.stall, '--stall') : undefined,
      expectExit: values['expect-exit'] === true,
    });
    // In pieces: a report of a few hundred thousand findings is more text than one string holds.
    const options = { verbose: values.verbose === true, accelerators: hung.accelerators, snapshot: hung };
    const chunks = values.json ? documentChunks(report) : explainChunks(report, outStyle(io), positionals[1] !== '-' ? { ...options, snapshotFile: positionals[1] } : options);
    await writeChunks(io, chunks);
    return report.verdict === 'healthy' ? EXIT.ok : EXIT.hung;
  },
};
