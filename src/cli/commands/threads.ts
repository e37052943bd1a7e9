/** `iokit-snap threads <pid>`: every thread of a process, its state and what it is blocked in; or of a saved snapshot (--from). */
import * as path from 'node:path';
import type { ThreadCpu } from '../../analyze/types';
import { IokitSnapError } from '../../errors';
import { sampleThreads } from '../../sample';
import { documentChunks } from '../../json-chunks';
import type { Limitation, ProcessSample } from '../../types';
import { parseCommandArgs, parseDuration, parsePid, UsageError } from '../args';
import type { Command } from '../command';
import { cpuPercent, stackLines, threadTable } from '../format';
import { currentWording, limitLines } from '../notes';
import { errStyle, EXIT, outStyle, write, writeChunks, type CliIO } from '../io';

/** Each thread's %CPU over the interval, busiest first, as watch's sample events carry it. */
function cpuList(sample: ProcessSample, percent: Map<number, number>): ThreadCpu[] {
  return sample.threads
    .filter((t) => percent.has(t.tid))
    .map((t) => ({ pid: sample.pid, tid: t.tid, name: t.name, percent: percent.get(t.tid)! }))
    .sort((a, b) => b.percent - a.percent || a.tid - b.tid);
}

/** The limits about one process (and those about no process in particular). */
function limitsOf(limits: Limitation[], pid: number): Limitation[] {
  return limits.filter((l) => l.subject === `pid ${pid}` || !/^pid \d+$/.test(l.subject));
}

/** The table (and stacks) of one process, as a live sample shows it. */
async function show(io: CliIO, sample: ProcessSample, stacks: boolean, header: string, percent?: Map<number, number>): Promise<void> {
  await write(io.stdout, `pid ${sample.pid} (${sample.name}): ${sample.threads.length} thread${sample.threads.length === 1 ? '' : 's'}${header}\n`);
  await write(io.stdout, threadTable(sample.threads, outStyle(io), percent));
  if (stacks) await write(io.stdout, stackLines(sample.threads, outStyle(io)));
}

/** threads --from FILE [PID]: the threads a saved snapshot or report holds. */
async function fromFile(io: CliIO, source: string, pid: number | undefined, json: boolean, stacks: boolean): Promise<number> {
  // Loaded here: the readers of every document kind (ioreg, reports) are not needed to sample a live process.
  const { notFor, readDocument } = await import('../documents');
  const { document, where } = await readDocument(source, io);
  let processes: ProcessSample[];
  let limits: Limitation[];
  let taken: string;
  if (document.kind === 'snapshot' || document.kind === 'thread-report') {
    processes = document.snapshot.processes;
    limits = document.snapshot.limits;
    taken = document.kind === 'snapshot' ? `, taken ${document.snapshot.takenAt}` : ` from ${document.format} output`;
  } else if (document.kind === 'threads') {
    processes = document.processes;
    limits = document.limits;
    taken = '';
  } else {
    const instead =
      document.kind === 'report'
        ? `exec saves the snapshots beside it: iokit-snap threads --from ${path.join(path.dirname(where), 'hung.json')}`
        : document.kind === 'ioreg'
          ? 'it holds accelerators only (iokit-snap import shows them)'
          : undefined;
    throw notFor('threads --from', document, where, 'a snapshot or a thread report', instead);
  }
  if (processes.length === 0) {
    throw new IokitSnapError('EINVAL', `${where} holds no process (a snapshot taken without --pid): take one with iokit-snap snapshot --pid N -o FILE`);
  }
  if (pid !== undefined) {
    const held = processes.map((p) => p.pid);
    processes = processes.filter((p) => p.pid === pid);
    if (processes.length === 0) throw new IokitSnapError('ESRCH', `${where} holds no pid ${pid}: it holds ${held.map((p) => `pid ${p}`).join(', ')}`);
  }
  if (json) {
    const samples = processes.map((p) => ({ ...p, limits: limitsOf(limits, p.pid) }));
    await writeChunks(io, documentChunks(samples));
    return EXIT.ok;
  }
  for (const [i, p] of processes.entries()) {
    if (i > 0) await write(io.stdout, '\n');
    await show(io, p, stacks, ` in ${where}${taken}`);
  }
  await write(io.stderr, limitLines(processes.flatMap((p) => limitsOf(limits, p.pid)).filter((l, i, all) => all.indexOf(l) === i), errStyle(io)));
  return EXIT.ok;
}

export const threadsCommand: Command = {
  name: 'threads',
  summary: 'sample every thread of a process: state, CPU, blocked in, target (or show a saved snapshot\'s)',
  usage: `Usage: iokit-snap threads <pid> [--interval DUR] [--json] [--basic] [--stacks] [--no-kernel-stacks]
       iokit-snap threads --from FILE [PID] [--json] [--stacks]

Samples every thread of <pid> once: run state, CPU time, what it is blocked in
(the system call or Mach trap) and, for calls on a file descriptor, what that
descriptor is (e.g. /dev/nvidia0, /dev/dri/renderD128, a fifo); for a thread that
joins another (pthread_join), which one. CPU TOTAL is the CPU time each thread has
used since it started (as ps shows it); with --interval, a second sample after DUR
adds %CPU over that interval (as top shows it).

With --from, the threads of a saved snapshot (snapshot -o, exec's hung.json, - for
stdin) or of a thread report (sample, spindump, crash, lldb, hung_task), shown the
same way: every process in it, or only PID.

Options:
  --interval DUR      sample twice, DUR apart, and show %CPU between the two (in
                      --json: "cpu": [{ pid, tid, name, percent }], busiest first)
  --json              print the sample as JSON (the second one with --interval;
                      with --from, an array of the processes shown)
  --basic             state and CPU time only (what ps shows), cheapest
  --stacks            each thread's stacks, innermost frame first: the kernel
                      stack where it is read (Linux, as root) and the user stack,
                      each thread held only for the copy of its registers and
                      stack (macOS: thread_suspend; Linux: ptrace), then walked and
                      named from the binaries' symbol tables; with --from, the
                      stacks the file holds
  --no-kernel-stacks  Linux: do not read /proc/<pid>/task/<tid>/stack
  --timeout DUR       give up after DUR (default 10s)
  --from FILE         show FILE's threads instead of sampling a live process
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        json: { type: 'boolean' },
        basic: { type: 'boolean' },
        stacks: { type: 'boolean' },
        'no-kernel-stacks': { type: 'boolean' },
        timeout: { type: 'string' },
        interval: { type: 'string' },
        from: { type: 'string' },
      },
      true,
    );
    if (typeof values.from === 'string') {
      for (const live of ['interval', 'basic', 'timeout', 'no-kernel-stacks']) {
        if (values[live] !== undefined) throw new UsageError(`--${live} samples a live process; it does not go with --from`);
      }
      if (positionals.length > 1) throw new UsageError('threads --from FILE takes at most one process id');
      const pid = positionals.length === 1 ? parsePid(positionals[0]) : undefined;
      return fromFile(io, values.from, pid, values.json === true, values.stacks === true);
    }
    if (positionals.length !== 1) throw new UsageError('threads takes exactly one process id (or --from FILE)');
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
      const rated = percent !== undefined ? { intervalMs, cpu: cpuList(sample, percent) } : {};
      await writeChunks(io, documentChunks({ ...sample, ...rated })); // in chunks: a sample with stacks can pass a string's limit
      return EXIT.ok;
    }
    await show(io, sample, options.stacks, '', percent);
    await write(io.stderr, limitLines(sample.limits, errStyle(io), currentWording(true)));
    return EXIT.ok;
  },
};
