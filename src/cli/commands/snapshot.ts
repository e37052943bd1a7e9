/** `iokit-snap snapshot`: one iokit-snap/1 document, to stdout or a file. */
import { snapshot } from '../../sample';
import { documentChunks, writeSnapshot } from '../../snapshot-file';
import { many, outputFile, parseCommandArgs, parseDuration, parsePid } from '../args';
import type { Command } from '../command';
import { paint } from '../format';
import { currentWording, limitLines } from '../notes';
import { errStyle, EXIT, write, writeChunks } from '../io';

export const snapshotCommand: Command = {
  name: 'snapshot',
  summary: 'take an iokit-snap/1 snapshot (accelerators + threads of --pid)',
  usage: `Usage: iokit-snap snapshot [-o FILE] [--pid N]... [--json] [--properties] [--stacks] [--no-peers] [--no-goroutines]

Takes one snapshot: the accelerators and every thread of each --pid. Take one while
healthy and one while hung, then compare them with \`iokit-snap diff\`.
Whatever cannot be read is listed in the snapshot's "limits" (and on stderr). A --pid
that cannot be sampled at all (no such process) makes the exit status 1, as for
\`iokit-snap threads\`; the snapshot is written all the same.

Options:
  -o, --output FILE   write the snapshot to FILE (mode 0600); - or none: stdout
  --json              print the snapshot on stdout (the default; with -o, as well as the file)
  -p, --pid N         sample the threads of process N (repeatable)
  --properties        include the raw property tree of each accelerator
  --stacks            user stacks (macOS; Linux through ptrace)
  --no-kernel-stacks  Linux: do not read /proc/<pid>/task/<tid>/stack
  --no-goroutines     Linux: do not read the goroutines of Go programs from their memory
                      (read by default: a goroutine blocked on a sync.Mutex is on no thread's stack)
  --no-peers          do not also sample the processes at the other end of the pipes and
                      sockets the threads wait on (sampled by default, marked peerOf: a client
                      is judged by its server)
  --no-accelerators   threads only
  --timeout DUR       give up on a probe after DUR (default 10s)
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(
      argv,
      {
        output: { type: 'string', short: 'o' },
        json: { type: 'boolean' },
        pid: { type: 'string', short: 'p', multiple: true },
        properties: { type: 'boolean' },
        stacks: { type: 'boolean' },
        'no-kernel-stacks': { type: 'boolean' },
        goroutines: { type: 'boolean' },
        'no-goroutines': { type: 'boolean' },
        'no-peers': { type: 'boolean' },
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
      threads: { stacks: values.stacks === true, kernelStacks: values['no-kernel-stacks'] !== true },
      goroutines: values['no-goroutines'] !== true,
      peers: values['no-peers'] !== true,
      timeoutMs: typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : undefined,
    });
    const file = outputFile(values.output);
    if (file !== null) {
      await writeSnapshot(file, snap);
      await write(io.stderr, `wrote ${file}: ${snap.accelerators.length} accelerator(s), ${snap.processes.length} process(es)\n`);
    }
    // In chunks: a snapshot with stacks of many threads can pass a string's limit.
    if (file === null || values.json === true) await writeChunks(io, documentChunks(snap));
    await write(io.stderr, limitLines(snap.limits, errStyle(io), currentWording(true)));
    // A --pid that gave no threads at all is an error, as for `iokit-snap threads` (the snapshot is kept all the same).
    const sampled = new Set(snap.processes.map((p) => p.pid));
    const missing = pids.filter((pid) => !sampled.has(pid));
    for (const pid of missing) {
      // snapshot() lists every pid it could not sample in limits.
      const why = snap.limits.find((l) => l.subject === `pid ${pid}`)!;
      await write(io.stderr, `${paint(errStyle(io), 'red', `iokit-snap snapshot: ${why.code}:`)} ${why.reason}\n`);
    }
    return missing.length > 0 ? EXIT.error : EXIT.ok;
  },
};
