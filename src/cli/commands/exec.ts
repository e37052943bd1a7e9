/**
 * `iokit-snap exec -- cmd args…`: run a command; if it outlives --timeout, say why.
 *
 * The command gets our stdio and its exit status is ours. Soon after it starts we take a
 * baseline of its process tree and the accelerators; at the timeout we take the hung
 * snapshot (with stacks where the platform allows), compare the two, print which threads
 * are stuck in what and for how long, and save both snapshots. A command that is slow but
 * making progress is left to finish; one that is hung makes us exit 2, killed with --kill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compare } from '../../analyze/compare';
import { formatMs } from '../../analyze/format';
import type { Report } from '../../analyze/types';
import { killQuietly, processTree } from '../../proctree';
import { snapshot } from '../../sample';
import { writeSnapshot } from '../../snapshot-file';
import type { Snapshot } from '../../types';
import { parseCommandArgs, parseDuration, UsageError } from '../args';
import type { Command } from '../command';
import { explain } from '../explain';
import { errStyle, EXIT, write } from '../io';
import { paint } from '../format';

const OPTIONS = {
  timeout: { type: 'string' },
  save: { type: 'string' },
  kill: { type: 'boolean' },
  stall: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  'no-accelerators': { type: 'boolean' },
  'no-stacks': { type: 'boolean' },
} as const;

/** Split `[options] [--] cmd args…`: our options end at `--` or at the first word that is not one. */
export function splitCommand(argv: string[]): { ours: string[]; command: string[] } {
  const dash = argv.indexOf('--');
  if (dash >= 0) return { ours: argv.slice(0, dash), command: argv.slice(dash + 1) };
  let i = 0;
  while (i < argv.length && argv[i].startsWith('-')) {
    const name = argv[i].replace(/^--?/, '').split('=')[0];
    const spec = (OPTIONS as Record<string, { type: string }>)[name];
    i += spec?.type === 'string' && !argv[i].includes('=') ? 2 : 1;
  }
  return { ours: argv.slice(0, i), command: argv.slice(i) };
}

/** The command on one line, as a shell would take it back: an argument with spaces quoted, a long script cut. */
export function shown(command: string[]): string {
  const line = command.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ');
  return line.length > 100 ? `${line.slice(0, 99)}…` : line;
}

/** The exit status a shell would report: the code, or 128 + the signal number. */
function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  // Node gives one of the two: the exit code, or the signal that ended it.
  return code ?? 128 + os.constants.signals[signal!];
}

interface Run {
  child: ChildProcess;
  /** Resolves with the exit status once the command exits. */
  exited: Promise<number>;
  done: boolean;
}

function start(command: string[]): Promise<Run | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
    const run: Run = { child, exited: Promise.resolve(0), done: false };
    run.exited = new Promise<number>((done) => {
      child.once('exit', (code, signal) => {
        run.done = true;
        done(statusOf(code, signal));
      });
    });
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ error }));
    child.once('spawn', () => resolve(run));
  });
}

/** Resolves with the exit status if the command exits within ms, else with null. */
async function exitWithin(run: Run, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([run.exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  clearTimeout(timer);
  return result;
}

export const execCommand: Command = {
  name: 'exec',
  summary: 'run a command; if it outlives --timeout, explain where it hangs',
  usage: `Usage: iokit-snap exec [--timeout DUR] [--save DIR] [--kill] [options] -- COMMAND [ARGS…]

Runs COMMAND with this terminal's stdin, stdout and stderr, and exits with its
exit status. Soon after it starts, iokit-snap takes a baseline snapshot of its
process tree and the accelerators. If it is still running after --timeout, a
second snapshot is taken (with stacks where the platform allows) and compared
with the baseline: which threads are stuck, in what call, for how long, and what
the accelerators did. The report goes to stderr, and both snapshots are saved.
A command that is slow but making progress is left to finish (checked again
every --timeout); a hung one makes iokit-snap exit 2, and --kill ends it.

Options:
  --timeout DUR       how long the command may run before it is examined (default 10s)
  --save DIR          save baseline.json, hung.json and report.json in DIR
                      (default: a new directory under ${os.tmpdir()})
  --kill              kill the command's process tree when it is hung
  --stall DUR         no progress for DUR counts as stalled (default: 1s, at most half the timeout)
  --json              the report as JSON on stderr instead of the explanation
  --verbose           show every info finding
  --no-accelerators   do not sample the accelerators
  --no-stacks         do not ask for user stacks (macOS)

Exit status: the command's own (128 + N when killed by signal N); 2 when it was
hung or suspect after the timeout (left running unless --kill); 126 or 127 when it
cannot be started; 1 on an iokit-snap error; 64 on a usage error.
`,
  async run(argv, io) {
    const { ours, command } = splitCommand(argv);
    const { values, positionals } = parseCommandArgs(ours, OPTIONS, false);
    /* c8 ignore next -- parseCommandArgs rejects positionals when told to */
    if (positionals.length > 0) throw new UsageError('put the command after --');
    if (command.length === 0) throw new UsageError('exec needs a command to run, after --');
    const timeoutMs = typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : 10_000;
    const stallMs = typeof values.stall === 'string' ? parseDuration(values.stall, '--stall') : Math.min(1000, timeoutMs / 2);
    const accelerators = values['no-accelerators'] !== true;
    const stacks = values['no-stacks'] !== true;
    const style = errStyle(io);

    const started = await start(command);
    if ('error' in started) {
      const code = started.error.code === 'ENOENT' ? 127 : 126;
      await write(
        io.stderr,
        `iokit-snap exec: cannot run ${JSON.stringify(command[0])}: ${
          code === 127 ? 'command not found (check the name and PATH)' : started.error.message
        }\n`,
      );
      return code;
    }
    const run = started;
    const pid = run.child.pid!;
    const startedAt = Date.now();
    // Terminal signals reach the command directly (same process group); pass on the ones sent only to us.
    const forward = (signal: NodeJS.Signals): void => {
      if (!run.done) run.child.kill(signal);
    };
    const forwarded: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP'];
    const ignore = (): void => undefined;
    const signals = io.signals ?? process;
    for (const s of forwarded) signals.on(s, forward);
    signals.on('SIGINT', ignore);
    try {
      return await supervise();
    } finally {
      for (const s of forwarded) signals.off(s, forward);
      signals.off('SIGINT', ignore);
    }

    async function take(pids: number[]): Promise<Snapshot> {
      return snapshot({ pids, accelerators, threads: { stacks, kernelStacks: true } });
    }

    async function supervise(): Promise<number> {
      const early = await exitWithin(run, Math.min(200, timeoutMs / 4));
      if (early !== null) return early;
      let baseline = await take(await processTree(pid));
      let baselineAt = Date.now();
      let deadline = startedAt + timeoutMs;
      for (;;) {
        // Re-take the baseline one stall before the deadline, so a thread that got stuck any time
        // before then shows a full stall window (it may have run between the first look and then).
        const refreshAt = deadline - stallMs - 50;
        if (refreshAt - baselineAt >= stallMs / 2) {
          const status = await exitWithin(run, Math.max(0, refreshAt - Date.now()));
          if (status !== null) return status;
          baseline = await take(await processTree(pid));
          baselineAt = Date.now();
        }
        const status = await exitWithin(run, Math.max(0, deadline - Date.now()));
        if (status !== null) return status;
        const tree = await processTree(pid);
        const known = new Set(baseline.processes.map((p) => p.pid));
        const unknown = tree.filter((p) => !known.has(p));
        if (unknown.length > 0) {
          // Started after the baseline: give them a baseline of their own, one stall apart.
          const late = await take(unknown);
          baseline = { ...baseline, processes: [...baseline.processes, ...late.processes], limits: [...baseline.limits, ...late.limits] };
          await exitWithin(run, stallMs + 100);
        }
        const hung = await take(tree);
        // It finished after all (while the newcomers were given their baseline, or the snapshot taken): no report.
        if (run.done) return run.exited;
        const report = compare(baseline, hung, { stallMs, expectExit: true });
        const ranFor = formatMs(Date.now() - startedAt);
        const dir = await save(baseline, hung, report);
        if (values.json) {
          await write(io.stderr, JSON.stringify({ command, pid, ranForMs: Date.now() - startedAt, saved: dir, report }) + '\n');
        } else {
          await write(
            io.stderr,
            `\n${paint(style, 'bold', `iokit-snap exec: ${shown(command)} (pid ${pid}) still running after ${ranFor}`)}\n` +
              explain(report, style, { verbose: values.verbose === true, accelerators: hung.accelerators }) +
              `  saved: ${path.join(dir, 'baseline.json')}, hung.json, report.json\n`,
          );
        }
        if (report.verdict === 'healthy') {
          if (!values.json) await write(io.stderr, `  making progress: waiting for it to finish (examined again in ${formatMs(timeoutMs)})\n\n`);
          baseline = hung;
          baselineAt = Date.now();
          deadline = baselineAt + timeoutMs;
          continue;
        }
        if (values.kill) {
          for (const p of tree.reverse()) killQuietly(p);
          await run.exited;
          if (!values.json) await write(io.stderr, `  killed pid ${pid}${tree.length > 1 ? ` and ${tree.length - 1} process(es) it started` : ''}\n`);
        } else {
          run.child.unref();
          if (!values.json) {
            await write(io.stderr, `  left running: pid ${pid} (attach a debugger, or kill -9 ${pid}; --kill ends it for you)\n`);
          }
        }
        return EXIT.hung;
      }
    }

    async function save(baseline: Snapshot, hung: Snapshot, report: Report): Promise<string> {
      const dir =
        typeof values.save === 'string' ? values.save : await fs.mkdtemp(path.join(os.tmpdir(), `iokit-snap-exec-${pid}-`));
      await fs.mkdir(dir, { recursive: true });
      await writeSnapshot(path.join(dir, 'baseline.json'), baseline);
      await writeSnapshot(path.join(dir, 'hung.json'), hung);
      await fs.writeFile(path.join(dir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
      return dir;
    }
  },
};

