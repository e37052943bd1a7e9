/** `iokit-snap watch --pid N`: watch live processes and say when they hang and when they recover. */
import { formatMs, plural } from '../../analyze/format';
import type { SampleEvent, ThreadCpu, WatchEvent } from '../../analyze/types';
import { watch } from '../../analyze/watch';
import { readSnapshot } from '../../snapshot-file';
import { many, parseCommandArgs, parseDuration, parsePid, UsageError } from '../args';
import type { Command } from '../command';
import { explain } from '../explain';
import { parseSelector, runWatchAll } from '../watch-all';
import { dash, paint } from '../format';
import { errStyle, EXIT, outStyle, write } from '../io';

/** How many threads the status line gives a %CPU: the busiest, so that it stays one line. */
const CPU_SHOWN = 3;

/** The busiest threads' %CPU over the last interval: "; %CPU 99.8 tid 4568 (spin), 0.0 tid 4567 (main), +2 more". */
function cpuPart(cpu: ThreadCpu[] | undefined): string {
  if (cpu === undefined || cpu.length === 0) return '';
  const shown = cpu.slice(0, CPU_SHOWN).map((c) => `${c.percent.toFixed(1)} tid ${c.tid} (${dash(c.name)})`);
  return `; %CPU ${shown.join(', ')}${cpu.length > CPU_SHOWN ? `, +${cpu.length - CPU_SHOWN} more` : ''}`;
}

/** A line cut to fit `columns` (a terminal's width), so that a redraw never leaves wrapped pieces behind. */
export function fitted(line: string, columns: number | undefined): string {
  // The last column is left free: a line that fills it wraps the cursor on some terminals.
  // Counted in code points, so that a thread name is never cut inside a character.
  const points = [...line];
  if (columns === undefined || columns < 2 || points.length < columns) return line;
  return `${points.slice(0, columns - 2).join('')}…`;
}

/** The live status line on a terminal. */
export function statusLine(event: SampleEvent, pids: number[], samples: number): string {
  const worst = event.findings[0];
  const verdict = event.verdict === 'healthy' ? 'healthy' : event.verdict.toUpperCase();
  return `watching ${pids.map((p) => `pid ${p}`).join(', ')}: ${plural(event.threads, 'thread')}, ${verdict}${
    worst !== undefined && worst.severity !== 'info' ? ` (${worst.kind}: ${worst.subject})` : ''
  }${event.discarded ? ' (window discarded: late timer)' : ''}, ${plural(samples, 'sample')}${cpuPart(event.cpu)}`;
}

export const watchCommand: Command = {
  name: 'watch',
  summary: 'watch processes live; report when they hang and when they recover',
  usage: `Usage: iokit-snap watch --pid N [--pid M]… [--interval DUR] [--stall DUR] [--json]
       iokit-snap watch --all [--include SEL]… [--exclude SEL]… [--pass DUR] [--json]   (Linux)

Samples the threads of each process (and the accelerators) every --interval and
keeps each thread's progress. A thread with no progress for --stall in a call that
is not an idle wait is a hang; the report says which thread, in what, for how long.
Waits a thread already sat in at the start (epoll_wait, poll, kevent, run-loop
mach_msg) count as idle. A window in which iokit-snap itself was stopped or asleep
is discarded, not reported. Stops when every process has exited, or on Ctrl-C.

Options:
  -p, --pid N          a process to watch (repeatable)
  --interval DUR       time between samples (default 500ms)
  --stall DUR          no progress for DUR is a hang (default 5s)
  --baseline FILE      judge idle waits against this snapshot instead of the first sample
  --for DUR            stop after DUR
  --exit-on-hang       stop at the first hang, exit status 2
  --json               one JSON event per line (NDJSON): sample, hang, recover, exit, error
  --no-accelerators    threads only
  --basic              read only state and CPU time (cheapest; cannot tell idle waits apart)

Whole host (Linux):
  --all                every process of this host, without naming one: a cheap pass
                       over every thread each --pass reads what could be stuck; only
                       processes with such a thread are watched in full (as --pid
                       does), until judged healthy for --stall. Prints the hangs (pid,
                       name, systemd unit or container, uid, GPU device nodes open),
                       recoveries and, when they change, the counts of processes by
                       verdict. Kernel threads are judged by the D-state rule only;
                       iokit-snap itself is left out.
  --include SEL        only processes matching SEL (repeatable): name=REGEX (the
                       kernel's 15-byte name), cgroup=PATH (a path as /proc/PID/cgroup
                       shows it, or a unit: cgroup=nginx.service), uid=N; a bare REGEX
                       is a name
  --exclude SEL        never these (repeatable, same forms)
  --pass DUR           time between cheap passes (default max(--interval, --stall/4))

On a terminal a live status line, cut to the terminal's width, shows the state and
the busiest threads' %CPU over the last interval; hangs and recoveries are printed
as they happen, and a one-line summary when it stops (Ctrl-C, --for, all exited).
Elsewhere (a log, a pipe) a line each time the verdict changes, and the summary.

A process that cannot be sampled at the start (no such process, no permission) is
an error before any status line: nothing is watched. Exit status: 0; 2 when it
stopped while a process was hung; 1 when a process could not be watched.
`,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, {
      pid: { type: 'string', short: 'p', multiple: true },
      interval: { type: 'string' },
      stall: { type: 'string' },
      baseline: { type: 'string' },
      for: { type: 'string' },
      'exit-on-hang': { type: 'boolean' },
      json: { type: 'boolean' },
      'no-accelerators': { type: 'boolean' },
      basic: { type: 'boolean' },
      all: { type: 'boolean' },
      include: { type: 'string', multiple: true },
      exclude: { type: 'string', multiple: true },
      pass: { type: 'string' },
    }, true);
    const pids = [...many(values.pid), ...positionals].map((p) => parsePid(p, '--pid'));
    const duration = (name: string): number | undefined =>
      typeof values[name] === 'string' ? parseDuration(values[name] as string, `--${name}`) : undefined;
    if (values.all === true) {
      if (pids.length > 0) throw new UsageError('watch --all watches every process: give --all or --pid, not both');
      if (values.baseline !== undefined) throw new UsageError('--baseline is a snapshot of named processes: not with --all');
      return runWatchAll(
        {
          include: many(values.include).map((s) => parseSelector(s, '--include')),
          exclude: many(values.exclude).map((s) => parseSelector(s, '--exclude')),
          intervalMs: duration('interval'),
          stallMs: duration('stall'),
          passMs: duration('pass'),
          forMs: duration('for'),
          json: values.json === true,
          exitOnHang: values['exit-on-hang'] === true,
          basic: values.basic === true,
        },
        io,
      );
    }
    for (const name of ['include', 'exclude', 'pass'] as const) {
      if (values[name] !== undefined) throw new UsageError(`--${name} selects among every process: it goes with --all`);
    }
    if (pids.length === 0) throw new UsageError('watch needs a process: --pid N, or --all for every process');
    const forMs = duration('for');
    const watcher = watch({
      pids,
      intervalMs: duration('interval'),
      stallMs: duration('stall'),
      baseline: typeof values.baseline === 'string' ? await readSnapshot(values.baseline) : undefined,
      accelerators: values['no-accelerators'] !== true,
      detail: values.basic ? 'basic' : 'full',
    });
    const style = outStyle(io);
    const live = io.stdout.isTTY === true && !values.json;
    const stop = (): void => watcher.close();
    const signals = io.signals ?? process;
    signals.on('SIGINT', stop);
    signals.on('SIGTERM', stop);
    // Nobody reads any more (`| head -1`): stop, and main() makes it a quiet exit.
    io.outputClosed?.addEventListener('abort', stop);
    const timer = forMs !== undefined ? setTimeout(stop, forMs) : undefined;
    let samples = 0;
    let hangs = 0;
    let verdict: SampleEvent['verdict'] | null = null;
    const startedAt = Date.now();
    let hung = false;
    let failed = false;
    let statusShown = false;
    /** Processes that could not be sampled at the start: an error, not a watch (and never "healthy"). */
    const startErrors: Extract<WatchEvent, { type: 'error' }>[] = [];
    const clearStatus = async (): Promise<void> => {
      if (statusShown) await write(io.stdout, '\r\u001b[K');
      statusShown = false;
    };
    try {
      for await (const event of watcher as AsyncIterable<WatchEvent>) {
        // The first step publishes each process it could not sample, then its sample.
        if (samples === 0 && event.type === 'error') {
          startErrors.push(event);
          continue;
        }
        if (startErrors.length > 0) break;
        if (event.type === 'sample') samples++;
        if (event.type === 'hang') hangs++;
        if (event.type === 'hang') hung = true;
        if (event.type === 'recover') hung = false;
        if (event.type === 'error') failed = true;
        if (values.json) {
          const line = event.type === 'error' ? { ...event, error: { code: event.error.code, message: event.error.message } } : event;
          await write(io.stdout, JSON.stringify(line) + '\n');
        } else if (event.type === 'sample') {
          if (live) {
            await write(io.stdout, `\r\u001b[K${fitted(statusLine(event, pids, samples), io.stdout.columns)}`);
            statusShown = true;
          } else if (event.verdict !== verdict && event.discarded === undefined) {
            // Not a terminal (a log, a pipe): a line each time the verdict changes, not one per sample.
            await write(io.stdout, `${event.at} ${statusLine(event, pids, samples)}\n`);
          }
          if (event.discarded === undefined) verdict = event.verdict;
        } else {
          await clearStatus();
          if (event.type === 'hang') await write(io.stdout, `${event.at} ${explain(event.report, style)}`);
          else if (event.type === 'recover') {
            await write(io.stdout, `${event.at} ${paint(style, 'green', 'RECOVERED')} after ${formatMs(event.hungForMs)}\n`);
          } else if (event.type === 'exit') await write(io.stdout, `${event.at} pid ${event.pid} exited\n`);
          // A process readable at the start that stops being so (a setuid exec).
          else await write(io.stderr, `${event.at} iokit-snap watch: ${event.error.code}: ${event.error.message}\n`);
        }
        if (hung && values['exit-on-hang']) break;
      }
    } finally {
      watcher.close();
      await watcher.done;
      clearTimeout(timer);
      signals.off('SIGINT', stop);
      signals.off('SIGTERM', stop);
      io.outputClosed?.removeEventListener('abort', stop);
      await clearStatus();
    }
    if (startErrors.length > 0) {
      for (const event of startErrors) {
        if (values.json) await write(io.stdout, JSON.stringify({ ...event, error: { code: event.error.code, message: event.error.message } }) + '\n');
        await write(io.stderr, `${paint(errStyle(io), 'red', `iokit-snap watch: ${event.error.code}:`)} ${event.error.message}\n`);
      }
      return EXIT.error;
    }
    // A summary when it stops, on a terminal too (after the status line is erased): Ctrl-C, --for, every process gone.
    if (!values.json && !io.outputClosed?.aborted) {
      /* c8 ignore next -- watch() samples at once: no sample only when stopped in its first milliseconds */
      const atEnd = verdict === null ? 'no sample taken' : `${verdict === 'healthy' ? verdict : verdict.toUpperCase()} at the end`;
      const ending = `${atEnd}${failed ? ', and a process could not be watched (see stderr)' : ''}`;
      await write(
        io.stdout,
        `${new Date().toISOString()} watched ${pids.map((p) => `pid ${p}`).join(', ')} for ${formatMs(Date.now() - startedAt)}: ${plural(samples, 'sample')}, ${plural(hangs, 'hang')}, ${ending}\n`,
      );
    }
    return hung ? EXIT.hung : failed ? EXIT.error : EXIT.ok;
  },
};
