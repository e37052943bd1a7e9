/** `iokit-snap threads <pid>`: every thread of a process, its state and what it is blocked in. */
import { sampleThreads } from '../../sample';
import { parseCommandArgs, parseDuration, parsePid, UsageError } from '../args';
import type { Command } from '../command';
import { limitLines, threadTable } from '../format';
import { errStyle, EXIT, outStyle, write } from '../io';

export const threadsCommand: Command = {
  name: 'threads',
  summary: 'sample every thread of a process: state, CPU, blocked in, target',
  usage: `Usage: iokit-snap threads <pid> [--json] [--basic] [--stacks] [--no-kernel-stacks]

Samples every thread of <pid> once: run state, CPU time, what it is blocked in
(the system call or Mach trap) and, for calls on a file descriptor, what that
descriptor is (e.g. /dev/nvidia0, /dev/dri/renderD128, a fifo).

Options:
  --json              print the sample as JSON
  --basic             state and CPU time only (what ps shows), cheapest
  --stacks            user stacks (macOS; each thread is suspended for one walk)
  --no-kernel-stacks  Linux: do not read /proc/<pid>/task/<tid>/stack
  --timeout DUR       give up after DUR (default 10s)
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      json: { type: 'boolean' },
      basic: { type: 'boolean' },
      stacks: { type: 'boolean' },
      'no-kernel-stacks': { type: 'boolean' },
      timeout: { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('threads takes exactly one process id');
    const pid = parsePid(positionals[0]);
    const sample = await sampleThreads(pid, {
      detail: values.basic ? 'basic' : 'full',
      stacks: values.stacks === true,
      kernelStacks: values['no-kernel-stacks'] !== true,
      timeoutMs: typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : undefined,
    });
    if (values.json) {
      await write(io.stdout, JSON.stringify(sample, null, 2) + '\n');
      return EXIT.ok;
    }
    await write(io.stdout, `pid ${sample.pid} (${sample.name}): ${sample.threads.length} thread${sample.threads.length === 1 ? '' : 's'}\n`);
    await write(io.stdout, threadTable(sample.threads, outStyle(io)));
    await write(io.stderr, limitLines(sample.limits, errStyle(io)));
    return EXIT.ok;
  },
};
