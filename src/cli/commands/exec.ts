/**
 * `iokit-snap exec -- cmd args…`: run a command; if it outlives --timeout, say why.
 *
 * The command gets our stdio and its exit status is ours. Soon after it starts we take a
 * baseline of its process tree and the accelerators; at the timeout we take the hung
 * snapshot (with stacks where the platform allows), compare the two, print which threads
 * are stuck in what and for how long, and save what is worth keeping.
 *
 * What exec does is decided by the report's verdict alone (src/analyze decides the verdict),
 * so a change of the rules never changes what exec does with a verdict:
 *   healthy  left to finish, looked at again every --timeout; its exit status is ours
 *   suspect  reported, left to finish all the same; its exit status is ours
 *   hung     we exit 2 at once: the command is left running, or killed with --kill
 * --timeout is when to look, never a deadline: nothing but a hung verdict ends the wait.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compare } from '../../analyze/compare';
import { formatMs } from '../../analyze/format';
import type { Report, Verdict } from '../../analyze/types';
import { toIokitSnapError } from '../../errors';
import { killQuietly, processTree } from '../../proctree';
import { snapshot } from '../../sample';
import type { Snapshot } from '../../types';
import { parseCommandArgs, parseDuration, UsageError } from '../args';
import type { Command } from '../command';
import { RunSaver, type SaveOutcome } from '../exec-save';
import { explain } from '../explain';
import { errStyle, EXIT, write } from '../io';
import { paint, type Style } from '../format';
import { changedPrograms, identities } from '../process-identity';

const OPTIONS = {
  timeout: { type: 'string' },
  save: { type: 'string' },
  'no-save': { type: 'boolean' },
  force: { type: 'boolean' },
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

/**
 * Why the command could not be started, in the `iokit-snap exec: CODE: message` form, and the
 * status a shell gives for it: 127 when there is nothing to run, 126 when it cannot be run.
 */
export async function startFailure(program: string, error: NodeJS.ErrnoException): Promise<{ status: number; code: string; message: string }> {
  const name = JSON.stringify(program);
  const searched = !program.includes('/');
  if (error.code === 'ENOENT') {
    if (searched) return { status: 127, code: 'ENOENT', message: `cannot run ${name}: no such command in PATH (check the name, or give its path)` };
    const head = await fs.readFile(program).then(
      (bytes) => bytes.subarray(0, 256).toString('latin1'),
      () => null,
    );
    if (head === null) return { status: 127, code: 'ENOENT', message: `cannot run ${name}: no such file (check the path)` };
    // The file is there: what is missing is the interpreter its #! line names (or, for a binary, its loader).
    const interpreter = /^#!\s*(\S+)/.exec(head)?.[1];
    return {
      status: 127,
      code: 'ENOENT',
      message: `cannot run ${name}: ${
        interpreter !== undefined ? `its interpreter ${interpreter} (from its #! line) does not exist` : 'the program loader it needs does not exist (built for another system?)'
      }`,
    };
  }
  if (error.code === 'EACCES') {
    const directory = await fs.stat(program).then(
      (stat) => stat.isDirectory(),
      () => false,
    );
    const why = directory ? 'it is a directory' : 'permission denied: it is not executable (chmod +x), or it is on a file system mounted noexec';
    return { status: 126, code: 'EACCES', message: `cannot run ${name}: ${why}` };
  }
  /* c8 ignore next 2 -- other failures of execve (E2BIG, ENOMEM, ETXTBSY…): said as they are */
  return { status: 126, code: 'EIO', message: `cannot run ${name}: ${error.message}` };
}

/** What became of a save, in one line of the report: where, or what was not saved and why. */
export function savedLine(saved: SaveOutcome, style: Style): string {
  const warning = paint(style, 'yellow', 'warning:');
  if (saved.error === null) return `  saved: ${path.join(saved.dir!, saved.files[0])}, ${saved.files.slice(1).join(', ')}\n`;
  if (saved.files.length === 0) return `  ${warning} not saved: ${saved.error}\n`;
  return `  ${warning} saved only ${saved.files.map((f) => path.join(saved.dir!, f)).join(', ')}; the rest not: ${saved.error}\n`;
}

/** Resolves with the exit status if the command exits within ms, else with null. */
async function exitWithin(run: Run, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([run.exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  clearTimeout(timer);
  return result;
}

/**
 * What exec did about the command after an examination; in the JSON line as `outcome`.
 * healthy and suspect: 'waiting'; hung: 'killed' (--kill) or 'left-running'.
 */
export type ExecOutcome = 'waiting' | 'killed' | 'left-running';

/**
 * What exec does with a verdict, and nothing else decides it: healthy and suspect wait for
 * the command (its exit status becomes ours); hung ends the wait with status 2, killing the
 * command only with --kill.
 */
export function actionFor(verdict: Verdict, kill: boolean): { outcome: ExecOutcome; exitStatus: number | null } {
  // null: the command's own, once it exits.
  if (verdict !== 'hung') return { outcome: 'waiting', exitStatus: null };
  return { outcome: kill ? 'killed' : 'left-running', exitStatus: EXIT.hung };
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
the accelerators did. The report goes to stderr. --timeout is when to look, not
a deadline: what happens next depends on the verdict alone.

  healthy   making progress: left to finish, looked at again every --timeout
  suspect   reported, and left to finish all the same (never killed)
  hung      iokit-snap exits 2 at once; the command is left running, or
            killed with --kill

A verdict is reported again only when it changes. When the command exec()s
another program (a wrapper script), the new program gets a baseline of its own.

Options:
  --timeout DUR       when to examine the command (default 10s); again every DUR
  --kill              kill the command's process tree when it is hung (only then)
  --save DIR          save baseline.json, hung.json and report.json in DIR (mode
                      0600), whatever the verdict; DIR must not be a symbolic link
                      (default: a suspect or hung verdict is saved in a new
                      directory under ${os.tmpdir()}, a healthy one not at all)
  --no-save           save nothing
  --force             replace those files when DIR already has them (else not saved)
  --stall DUR         no progress for DUR counts as stalled (default: 1s, at most half the timeout)
  --json              the report as one JSON line on stderr instead of the explanation,
                      with "outcome": "waiting" (healthy or suspect), "killed" or
                      "left-running" (hung)
  --verbose           show every info finding
  --no-accelerators   do not sample the accelerators
  --no-stacks         do not take user stacks (macOS: in every snapshot; Linux:
                      once the command is judged suspect or hung, each thread
                      stopped briefly by ptrace, after the snapshot the verdict
                      came from)

A snapshot that cannot be saved is a warning: the report is printed and acted on
all the same. Durations take a unit: 500ms, 10s, 2m, 1h.

Exit status: the command's own (128 + N when killed by signal N) when it finishes,
healthy or suspect; 2 when it was hung (left running, or killed with --kill);
127 when there is nothing to run (no such command or file), 126 when it cannot be
run (not executable, a directory); 1 on an iokit-snap error; 64 on a usage error.
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

    const saveDir = typeof values.save === 'string' ? values.save : undefined;
    if (saveDir === '-') throw new UsageError('--save takes a directory (it holds three files), not - (stdout)');
    if (saveDir !== undefined && values['no-save'] === true) throw new UsageError('--save and --no-save: give one of them');

    const started = await start(command);
    if ('error' in started) {
      const failed = await startFailure(command[0], started.error);
      await write(io.stderr, `${paint(style, 'red', `iokit-snap exec: ${failed.code}:`)} ${failed.message}\n`);
      return failed.status;
    }
    const run = started;
    const pid = run.child.pid!;
    const startedAt = Date.now();
    const saver = new RunSaver(saveDir, values.force === true, pid);
    /** Save a report's evidence? Given --save, always; else what is not healthy; never with --no-save. */
    const worthSaving = (verdict: Verdict): boolean => values['no-save'] !== true && (saveDir !== undefined || verdict !== 'healthy');
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
      /* c8 ignore start -- snapshot() and compare() turn what they cannot read into limits; kept so that a failure never strands the command */
    } catch (error) {
      const e = toIokitSnapError(error);
      await write(io.stderr, `iokit-snap exec: ${e.code}: ${e.message}\n  no longer examining pid ${pid}: waiting for it to finish\n`);
      return run.exited;
    } finally {
      /* c8 ignore stop */
      for (const s of forwarded) signals.off(s, forward);
      signals.off('SIGINT', ignore);
      await saver.close();
    }

    // macOS stacks come with every snapshot. Linux stacks stop a thread briefly (ptrace; a
    // thread blocked writing is read without a stop), which turns a sleep into restart_syscall
    // and an epoll_wait into EINTR: they are taken after the snapshot a first verdict came from,
    // and that verdict judged again with them (a futex wait is told by its stack).
    async function take(pids: number[]): Promise<Snapshot> {
      // peers: a process outside the tree that a thread of it waits on (a database server, the other end of a fifo) is sampled too, and judges that wait.
      // goroutines: a Go program's goroutines, where its locks are (no thread's stack shows them).
      return snapshot({ pids, accelerators, peers: true, goroutines: true, threads: { stacks: stacks && process.platform === 'darwin', kernelStacks: true } });
    }

    async function addStacks(hung: Snapshot): Promise<Snapshot> {
      const stacked = await snapshot({ pids: hung.processes.map((p) => p.pid), accelerators: false, threads: { stacks: true, kernelStacks: false } });
      const byTid = new Map(stacked.processes.flatMap((p) => p.threads.map((th): [string, typeof th] => [`${p.pid}:${th.tid}`, th])));
      const processes = hung.processes.map((p) => ({ ...p, threads: p.threads.map((th) => ({ ...th })) }));
      for (const p of processes) {
        for (const th of p.threads) {
          const stack = byTid.get(`${p.pid}:${th.tid}`)?.stack;
          if (stack !== undefined) th.stack = stack;
        }
      }
      return { ...hung, processes, limits: [...hung.limits, ...stacked.limits.filter((l) => l.field === 'stack')] };
    }

    async function supervise(): Promise<number> {
      const early = await exitWithin(run, Math.min(200, timeoutMs / 4));
      if (early !== null) return early;
      // Each process's program, read before its baseline: an exec() during the snapshot shows as a change later.
      let programs = await identities(await processTree(pid));
      let baseline = await take([...programs.keys()]);
      let baselineAt = Date.now();
      let deadline = startedAt + timeoutMs;
      let reported: Verdict | null = null;
      for (;;) {
        // Re-take the baseline one stall before the deadline, so a thread that got stuck any time
        // before then shows a full stall window (it may have run between the first look and then);
        // also when a process has exec()d another program since its baseline.
        const refreshAt = deadline - stallMs - 50;
        const status = await exitWithin(run, Math.max(0, refreshAt - Date.now()));
        if (status !== null) return status;
        const due = refreshAt - baselineAt >= stallMs / 2;
        if (due || changedPrograms(programs, await identities([...programs.keys()])).length > 0) {
          programs = await identities(await processTree(pid));
          baseline = await take([...programs.keys()]);
          baselineAt = Date.now();
          // A snapshot that took long (a loaded machine) must not leave less than a stall between the two looks:
          // a thread stuck all along would then not have been stuck "for a stall", and the verdict would flap.
          deadline = Math.max(deadline, baselineAt + stallMs + 50);
        }
        const atDeadline = await exitWithin(run, Math.max(0, deadline - Date.now()));
        if (atDeadline !== null) return atDeadline;
        const tree = await processTree(pid);
        const now = await identities(tree);
        const changed = changedPrograms(programs, now);
        let hung = await take(tree);
        const seen = new Map(baseline.processes.map((p) => [p.pid, new Set(p.threads.map((th) => th.tid))]));
        const renewed = hung.processes
          .filter((p) => !seen.has(p.pid) || changed.includes(p.pid) || p.threads.some((th) => !seen.get(p.pid)!.has(th.tid)))
          .map((p) => p.pid);
        if (renewed.length > 0 && !run.done) {
          // Started, exec()d another program, or started threads since the baseline (a slow start,
          // a wrapper script): this look is their baseline, and they are judged one stall later.
          baseline = {
            ...baseline,
            processes: [...baseline.processes.filter((p) => !renewed.includes(p.pid)), ...hung.processes.filter((p) => renewed.includes(p.pid))],
            limits: [...baseline.limits, ...hung.limits],
          };
          await exitWithin(run, stallMs + 100);
          if (!run.done) hung = await take(tree);
        }
        // It finished after all (while the newcomers were given their baseline, or a snapshot taken): no report.
        if (run.done) return run.exited;
        let report = compare(baseline, hung, { stallMs, expectExit: true });
        if (report.verdict !== 'hung' && stacks && process.platform !== 'darwin' && !run.done) {
          // A wait the kernel's view cannot tell (a futex: a pool park, or a JVM monitor in a
          // deadlock) is judged by its stack: taken now, after the snapshot the verdict came from.
          hung = await addStacks(hung);
          report = compare(baseline, hung, { stallMs, expectExit: true });
        }
        // Only the verdict decides what happens next (see the top of this file).
        const verdict = report.verdict;
        if (verdict !== reported) {
          reported = verdict;
          if (verdict === 'hung' && hung.processes.every((p) => p.threads.every((th) => th.stack === undefined)) && stacks && process.platform !== 'darwin') {
            hung = await addStacks(hung);
          }
          const saved = worthSaving(verdict) ? await saver.save(baseline, hung, report) : null;
          const action = actionFor(verdict, values.kill === true);
          if (action.outcome === 'killed') {
            for (const p of tree.slice().reverse()) killQuietly(p);
            await run.exited;
          } else if (action.outcome === 'left-running') {
            run.child.unref();
          }
          await tell(report, hung, saved, action.outcome, tree.length);
          if (action.exitStatus !== null) return action.exitStatus;
        }
        // Healthy or suspect: said once already, or just now; left to finish, looked at again later.
        baseline = hung;
        programs = now;
        baselineAt = Date.now();
        deadline = baselineAt + timeoutMs;
      }
    }

    async function tell(report: Report, hung: Snapshot, saved: SaveOutcome | null, outcome: ExecOutcome, processes: number): Promise<void> {
      const ranForMs = Date.now() - startedAt;
      if (values.json) {
        const line = {
          command,
          pid,
          ranForMs,
          saved: saved?.dir ?? null,
          ...(saved !== null && saved.error !== null ? { saveError: saved.error } : {}),
          outcome,
          report,
        };
        await write(io.stderr, JSON.stringify(line) + '\n');
        return;
      }
      let text =
        `\n${paint(style, 'bold', `iokit-snap exec: ${shown(command)} (pid ${pid}) still running after ${formatMs(ranForMs)}`)}\n` +
        explain(report, style, {
          verbose: values.verbose === true,
          accelerators: hung.accelerators,
          snapshot: hung,
          ...(saved !== null && saved.files.includes('hung.json') ? { snapshotFile: path.join(saved.dir!, 'hung.json') } : {}),
        });
      if (saved !== null) text += savedLine(saved, style);
      if (outcome === 'waiting') {
        const why = report.verdict === 'healthy' ? 'making progress' : 'suspect, not hung';
        text += `  ${why}: waiting for it to finish (examined every ${formatMs(timeoutMs)}; reported again only if the verdict changes)\n\n`;
      } else if (outcome === 'killed') {
        text += `  killed pid ${pid}${processes > 1 ? ` and ${processes - 1} process(es) it started` : ''}\n`;
      } else {
        text += `  left running: pid ${pid} (attach a debugger, or kill -9 ${pid}; --kill ends it for you)\n`;
      }
      await write(io.stderr, text);
    }

  },
};
