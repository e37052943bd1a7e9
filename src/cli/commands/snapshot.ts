/** `iokit-snap snapshot`: one iokit-snap/1 document, to stdout or a file. */
import { snapshot } from '../../sample';
import { writeSnapshot } from '../../snapshot-file';
import { many, parseCommandArgs, parseDuration, parsePid } from '../args';
import type { Command } from '../command';
import { limitLines } from '../format';
import { errStyle, EXIT, write } from '../io';

export const snapshotCommand: Command = {
  name: 'snapshot',
  summary: 'take an iokit-snap/1 snapshot (accelerators + threads of --pid)',
  usage: `Usage: iokit-snap snapshot [-o FILE] [--pid N]... [--properties] [--stacks]

Takes one snapshot: the accelerators and every thread of each --pid. Take one while
healthy and one while hung, then compare them with \`iokit-snap diff\`.
Whatever cannot be read is listed in the snapshot's "limits" (and on stderr).

Options:
  -o, --output FILE   write the snapshot to FILE (default: stdout)
  -p, --pid N         sample the threads of process N (repeatable)
  --properties        include the raw property tree of each accelerator
  --stacks            user stacks (macOS)
  --no-accelerators   threads only
  --timeout DUR       give up on a probe after DUR (default 10s)
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(
      argv,
      {
        output: { type: 'string', short: 'o' },
        pid: { type: 'string', short: 'p', multiple: true },
        properties: { type: 'boolean' },
        stacks: { type: 'boolean' },
        'no-accelerators': { type: 'boolean' },
        timeout: { type: 'string' },
      },
      false,
    );
    const pids = many(values.pid).map((p) => parsePid(p, '--pid'));
    const snap = await snapshot({
      pids,
      includeProperties: values.properties === true,
      accelerators: values['no-accelerators'] !== true,
      threads: { stacks: values.stacks === true },
      timeoutMs: typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : undefined,
    });
    if (typeof values.output === 'string') {
      await writeSnapshot(values.output, snap);
      await write(io.stderr, `wrote ${values.output}: ${snap.accelerators.length} accelerator(s), ${snap.processes.length} process(es)\n`);
    } else {
      await write(io.stdout, JSON.stringify(snap, null, 2) + '\n');
    }
    await write(io.stderr, limitLines(snap.limits, errStyle(io)));
    return EXIT.ok;
  },
};
