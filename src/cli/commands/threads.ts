/** `iokit-snap threads <pid>`: every thread of a process, its state and what it is blocked in. */
import { sampleThreads } from '../../sample';
import { documentChunks } from '../../snapshot-file';
import { parseCommandArgs, parseDuration, parsePid, UsageError } from '../args';
import type { Command } from '../command';
import { cpuPercent, stackLines, threadTable } from '../format';
import { currentWording, limitLines } from '../notes';
import { errStyle, EXIT, outStyle, write, writeChunks } from '../io';

export const threadsCommand: Command = {
  name: 'threads',
  summary: 'sample every thread of a process: state, CPU, blocked in, target',
  usage: `Usage: iokit-snap threads <pid> [--interval DUR] [--json] [--basic] [--stacks] [--no-kernel-stacks]

Samples every thread of <pid> once: run state, CPU time, what it is blocked in
(the system call or Mach trap) and, for calls on a file descriptor, what that
descriptor is (e.g. /dev/nvidia0, /dev/dri/renderD128, a fifo). CPU TOTAL is the
CPU time each thread has used since it started (as ps shows it); with --interval,
a second sample after DUR adds %CPU over that interval (as top shows it).

Options:
  --interval DUR      sample twice, DUR apart, and show %CPU between the two
  --json              print the sample as JSON (the second one with --interval)
  --basic             state and CPU time only (what ps shows), cheapest
  --stacks            user stacks, each thread held only for the copy of its
                      registers and stack (macOS: thread_suspend; Linux: ptrace),
                      then walked and named from the binaries' symbol tables
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
      interval: { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('threads takes exactly one process id');
    const pid = parsePid(positionals[0]);
    const intervalMs = typeof values.interval === 'string' ? parseDuration(values.interval, '--interval') : undefined;
    const options = {
      detail: values.basic ? ('basic' as const) : ('full' as const),
      stacks: values.stacks === true,
      kernelStacks: values['no-kernel-stacks'] !== true,
      timeoutMs: typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : undefined,
    };
    let sample = await sampleThreads(pid, options);
    let percent: Map<number, number> | undefined;
    if (intervalMs !== undefined) {
      const first = sample;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      sample = await sampleThreads(pid, options);
      percent = cpuPercent(first, sample);
    }
    if (values.json) {
      await writeChunks(io, documentChunks(sample)); // in chunks: a sample with stacks can pass a string's limit
      return EXIT.ok;
    }
    await write(io.stdout, `pid ${sample.pid} (${sample.name}): ${sample.threads.length} thread${sample.threads.length === 1 ? '' : 's'}\n`);
    await write(io.stdout, threadTable(sample.threads, outStyle(io), percent));
    if (options.stacks) await write(io.stdout, stackLines(sample.threads, outStyle(io)));
    await write(io.stderr, limitLines(sample.limits, errStyle(io), currentWording(true)));
    return EXIT.ok;
  },
};
