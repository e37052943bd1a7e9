/**
 * What the commands say, through the real binary (bin/iokit-snap.js, built by `npm run build`)
 * where it matters: text watch off a terminal, the hang header, permission notes, %CPU, --json.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { COMMANDS } from '../src/cli/main';
import { limitLines } from '../src/cli/notes';
import type { Limitation } from '../src/types';
import { BIN, runCli, spawnCli } from './helpers/cli';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test targets (test/targets/target.c) are Linux programs';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-cli-behaviour-'));
fs.chmodSync(tmp, 0o755);
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('text watch off a terminal: a line per change of verdict, a summary; the hang header agrees with its findings', { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  const run = await spawnCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--stall', '600ms', '--exit-on-hang', '--no-accelerators']);
  t.equal(run.code, 2, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  // The first sample may already prove the deadlock (the kernel's off-CPU clock of a thread
  // that locked before the watch began): then it is the only change of verdict.
  t.match(lines[0], new RegExp(`^\\S+ watching pid ${target.pid}: 3 threads, (healthy|HUNG \\(stalled: .*\\)), 1 sample$`), 'the first verdict');
  const first = / healthy, 1 sample$/.test(lines[0]) ? 2 : 1;
  const changes = lines.filter((line) => / watching pid /.test(line));
  t.equal(changes.length, first, `a line per change of verdict (healthy, then hung), not one per sample: ${run.stdout}`);
  t.match(changes.at(-1), /: 3 threads, HUNG \(stalled: /);
  const header = /HUNG: 2 critical findings, the longest for at least ([0-9.]+ m?s)\n/.exec(run.stdout);
  t.ok(header, run.stdout);
  // The two locked threads' stalls (the main thread's join points at one of them: it quotes that finding, so only line starts count).
  const durations = [...run.stdout.matchAll(/^\s+blocked acquiring a lock in futex for at least ([0-9.]+ m?s)/gm)].map((m) => m[1]);
  t.equal(durations.length, 2);
  const ms = (text: string): number => parseFloat(text) * (text.endsWith(' s') ? 1000 : 1);
  t.equal(ms(header![1]), Math.max(...durations.map(ms)), 'the header says the longest stall the findings say');
  t.match(lines[lines.length - 1], new RegExp(`^\\S+ watched pid ${target.pid} for [0-9.]+ m?s: \\d+ samples?, 1 hang, `), 'a one-line summary');
});

t.test('threads: CPU TOTAL is cumulative; --interval adds %CPU over the interval', { skip: linux }, async (t) => {
  const spin = await start(t, 'spin');
  const run = await spawnCli(['threads', String(spin.pid), '--interval', '500ms', '--no-kernel-stacks']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /TID +NAME +STATE +%CPU +CPU TOTAL +BLOCKED IN +TARGET\n/);
  const share = Number(new RegExp(`\\n${spin.pid} +\\S+ +\\S+ +([0-9.]+) `).exec(run.stdout)?.[1]);
  t.ok(share > 0 && share <= 100.5, `the spinning thread used a share of one CPU: ${run.stdout}`);
  const once = await runCli(['threads', String(spin.pid), '--no-kernel-stacks']);
  t.match(once.stdout, /TID +NAME +STATE +CPU TOTAL +BLOCKED IN/);
  t.notMatch(once.stdout, /%CPU/, 'one sample: no rate');
});

t.test('permission notes: one per kind, worded for the CLI and the user', async (t) => {
  const denied = (pid: number): Limitation[] => [
    { subject: `pid ${pid}`, field: 'blockedIn', code: 'EPERM', reason: `/proc/${pid}/task/*/syscall is not readable`, hint: 'Run iokit-snap as the target\'s user …, or as root / with CAP_SYS_PTRACE (sudo).' },
    { subject: `pid ${pid}`, field: 'wchan', code: 'EPERM', reason: `/proc/${pid}/task/*/wchan reads 0`, hint: 'Run iokit-snap as the user that owns the process, or as root.' },
    { subject: `pid ${pid}`, field: 'kernelStack', code: 'EPERM', reason: `/proc/${pid}/task/*/stack is not readable`, hint: 'Run iokit-snap as root (sudo) to get kernel stacks, or pass kernelStacks: false to skip them.' },
  ];
  const asRoot = limitLines([...denied(1), ...denied(2)], { color: false }, { root: true, kernelStacksFlag: true });
  t.equal(asRoot.split('\n').length - 1, 1, 'one note for two processes and three fields');
  t.match(asRoot, /^note: pid 1, pid 2: blockedIn, wchan, kernelStack unavailable \(EPERM\): .* even root is refused here/);
  t.match(asRoot, /--no-kernel-stacks skips the kernel stacks/);
  t.notMatch(asRoot, /or as root|kernelStacks: false|sudo/);
  const user = limitLines(denied(1), { color: false }, { root: false, kernelStacksFlag: false });
  t.match(user, /run iokit-snap with sudo/);
  t.notMatch(user, /--no-kernel-stacks|kernelStacks: false/, 'no flag the command does not have');
  const syscallOnly = limitLines(denied(4).slice(0, 1), { color: false }, { root: true, kernelStacksFlag: true });
  t.equal(
    syscallOnly,
    'note: pid 4: blockedIn unavailable (EPERM): the kernel shows these only to a process that may ptrace the target — even root is refused here, so a container or security policy withholds CAP_SYS_PTRACE: run iokit-snap on the host, or grant them\n',
  );
  const twice = limitLines(
    [5, 6].map((pid) => ({ subject: `pid ${pid}`, field: 'cpuNs', code: 'EIO', reason: `reading /proc/${pid}/task/*/schedstat failed`, hint: 'pass kernelStacks: false, or run as root' })),
    { color: false },
    { root: false, kernelStacksFlag: false },
  );
  t.equal(twice, 'note: pid 5, pid 6: cpuNs unavailable (EIO): reading /proc/<pid>/task/*/schedstat failed — leave kernel stacks out, or run as root\n', 'the same kind on two processes: one note');
  const other = limitLines(
    [{ subject: 'pid 3', field: 'cpuNs', code: 'EIO', reason: 'reading /proc/3/task/*/schedstat failed', hint: 'Run iokit-snap as root, or pass kernelStacks: false' }],
    { color: false },
    { root: true, kernelStacksFlag: true },
  );
  t.equal(other, 'note: pid 3: cpuNs unavailable (EIO): reading /proc/3/task/*/schedstat failed — Run iokit-snap as root, or pass --no-kernel-stacks\n');
});

const root = process.getuid?.() === 0 ? false : 'needs root, to run the command as another user';
t.test('the real binary, run by an unprivileged user on a root process: one note, the CLI flag', { skip: linux || root }, async (t) => {
  const target = await start(t, 'sleep');
  const run = spawnSync(process.execPath, [BIN, 'threads', String(target.pid)], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: tmp });
  t.equal(run.status, 0, run.stderr);
  const notes = run.stderr.split('\n').filter((line) => line.startsWith('note:'));
  t.equal(notes.length, 1, run.stderr);
  t.match(notes[0], new RegExp(`^note: pid ${target.pid}: blockedIn.* unavailable \\(EPERM\\).*--no-kernel-stacks`));
  t.notMatch(run.stderr, /kernelStacks: false/);
});

t.test('every command takes --json, as the overview says', { skip: linux }, async (t) => {
  const help = await runCli(['--help']);
  t.match(help.stdout, /Every command takes --json\./);
  const target = await start(t, 'sleep');
  const pid = String(target.pid);
  const [a, b] = [path.join(tmp, 'a.json'), path.join(tmp, 'b.json')];
  t.equal((await runCli(['snapshot', '--pid', pid, '--no-accelerators', '-o', a])).code, 0);
  await waitFor(() => true, 'a moment');
  t.equal((await runCli(['snapshot', '--pid', pid, '--no-accelerators', '-o', b])).code, 0);
  const m4 = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
  const argvs: Record<string, string[]> = {
    accelerators: ['accelerators', '--json'],
    threads: ['threads', pid, '--json'],
    snapshot: ['snapshot', '--json', '--pid', pid, '--no-accelerators'],
    diff: ['diff', a, b, '--json'],
    watch: ['watch', '--json', '--pid', pid, '--for', '300ms', '--interval', '100ms', '--no-accelerators'],
    exec: ['exec', '--json', '--', 'true'],
    import: ['import', m4, '--json'],
    explain: ['explain', path.join(__dirname, 'fixtures', 'reports', 'sample-1password-op-psynch_cvwait.txt'), '--json'],
  };
  for (const command of COMMANDS) {
    if (command.name === 'serve') {
      // serve runs until a signal: its --json line is the address; SIGTERM ends it with 0.
      t.match(command.usage, /--json/, `serve's help lists --json`);
      const child = spawn(process.execPath, [BIN, 'serve', '--json', '--listen', '127.0.0.1:0', '--pid', pid, '--no-accelerators'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await waitFor(() => out.includes('\n') || child.exitCode !== null, 'serve to print its address');
      t.match(JSON.parse(out.split('\n')[0]!), { listening: /127\.0\.0\.1:\d+/ }, 'serve: JSON');
      child.kill('SIGTERM');
      t.equal(await exited, 0, 'serve ends cleanly on SIGTERM');
      continue;
    }
    const argv = argvs[command.name];
    t.ok(argv, `a --json run of ${command.name}`);
    if (argv === undefined) continue;
    t.match(command.usage, /--json/, `${command.name}'s help lists --json`);
    const run = await runCli(argv);
    t.not(run.code, 64, `${command.name} --json: ${run.stderr}`);
    // watch prints one JSON event per line, exec its line on stderr, the others one document.
    const documents = command.name === 'watch' ? run.stdout.split('\n').filter(Boolean) : command.name === 'exec' ? [] : [run.stdout];
    for (const text of documents) t.doesNotThrow(() => JSON.parse(text), `${command.name}: JSON`);
  }
  const real = await spawnCli(['snapshot', '--json', '--no-accelerators']);
  t.equal(real.code, 0, real.stderr);
  t.equal(JSON.parse(real.stdout).format, 'iokit-snap/1');
});
