/** `iokit-snap import <file|->`: ioreg output captured on a Mac, shown as a live run shows it. */
import * as fs from 'node:fs/promises';
import { IokitSnapError } from '../../errors';
import { importIoreg } from '../../import';
import { writeSnapshot } from '../../snapshot-file';
import { parseCommandArgs, UsageError } from '../args';
import type { Command } from '../command';
import { acceleratorTable } from '../format';
import { limitLines } from '../notes';
import { errStyle, EXIT, outStyle, write, type CliIO } from '../io';

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer | string));
  return Buffer.concat(chunks).toString('utf8');
}

async function readInput(source: string, io: CliIO): Promise<string> {
  if (source === '-') return readAll(io.stdin);
  try {
    return await fs.readFile(source, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IokitSnapError(code === 'EACCES' || code === 'EPERM' ? 'EPERM' : 'EINVAL', `cannot read ${source}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export const importCommand: Command = {
  name: 'import',
  summary: 'read ioreg output captured on a Mac (text or -a XML) and show it like a live run',
  usage: `Usage: iokit-snap import <file|-> [--json] [-o FILE] [--properties]

Reads what \`ioreg\` printed on some Mac (a file, or - for stdin) and shows its
accelerators in the same table as a live run. It reads plain \`ioreg\`, \`ioreg -l\`,
\`ioreg -r -d 1 -c IOAccelerator\`, the \`-i\` inheritance form, \`ioreg -a\` XML, and a
property block pasted without its node line. Best input, captured on the Mac:

  ioreg -r -d 1 -w 0 -c IOAccelerator > accel.txt

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
    if (positionals.length !== 1) throw new UsageError('import takes one file of ioreg output (or - to read stdin)');
    const text = await readInput(positionals[0], io);
    const snap = importIoreg(text, { includeProperties: values.properties === true });
    if (typeof values.output === 'string') {
      await writeSnapshot(values.output, snap);
      await write(io.stderr, `wrote ${values.output}: ${snap.accelerators.length} accelerator(s)\n`);
      await write(io.stderr, limitLines(snap.limits, errStyle(io)));
    }
    if (values.json) {
      await write(io.stdout, JSON.stringify(snap, null, 2) + '\n');
      return EXIT.ok;
    }
    if (typeof values.output === 'string') return EXIT.ok;
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
