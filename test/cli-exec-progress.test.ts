/**
 * What `iokit-snap exec` does with a verdict, through the real binary (bin/iokit-snap.js, built
 * by `npm run build`): a command doing honest work is never killed, and its exit status is
 * ours; --timeout is when to look, not a deadline; --kill ends only a hung command. And a
 * command that cannot be started is said in the `iokit-snap exec: CODE: message` form.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { actionFor } from '../src/cli/commands/exec';
import { killQuietly } from '../src/proctree';
import { BIN, runCli, spawnCli } from './helpers/cli';
import { buildC, targetBinary, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test target (test/targets/target.c) is a Linux program';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-exec-progress-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface ExecLine {
  pid: number;
  outcome: string;
  report: { verdict: string };
}

const lines = (stderr: string): ExecLine[] =>
  stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ExecLine);

t.test('the verdict alone decides: healthy and suspect wait for the exit status, hung ends the wait', async (t) => {
  for (const kill of [false, true]) {
    t.same(actionFor('healthy', kill), { outcome: 'waiting', exitStatus: null }, `healthy, kill ${kill}`);
    t.same(actionFor('suspect', kill), { outcome: 'waiting', exitStatus: null }, `suspect, kill ${kill}: never killed`);
  }
  t.same(actionFor('hung', true), { outcome: 'killed', exitStatus: 2 });
  t.same(actionFor('hung', false), { outcome: 'left-running', exitStatus: 2 });
});

t.test('honest work outlives --timeout --kill: never killed, its exit status passed through; a deadlock is still killed', { skip: linux }, async (t) => {
  // Two seconds or so of compression (more on a loaded machine), examined every 500 ms.
  const work = 'head -c 40000000 /dev/urandom | gzip -9 | wc -c >/dev/null; exit 3';
  const env = { TMPDIR: tmp };
  const [busy, deadlock] = await Promise.all([
    spawnCli(['exec', '--json', '--timeout', '500ms', '--kill', '--no-accelerators', '--', 'sh', '-c', work], { env }),
    spawnCli(['exec', '--json', '--timeout', '1s', '--kill', '--no-accelerators', '--', await targetBinary(), 'deadlock'], { env }),
  ]);
  const busyLines = lines(busy.stderr);
  t.equal(busy.code, 3, `the command's own exit status: ${busy.stderr}`);
  t.ok(busyLines.length >= 1, 'it was examined (it outlived --timeout)');
  for (const line of busyLines) {
    t.equal(line.outcome, 'waiting', `verdict ${line.report.verdict}: left to finish`);
    t.not(line.report.verdict, 'hung');
  }

  const deadlockLines = lines(deadlock.stderr);
  const last = deadlockLines[deadlockLines.length - 1];
  t.teardown(() => killQuietly(last.pid));
  t.equal(deadlock.code, 2, deadlock.stderr);
  t.equal(last.report.verdict, 'hung');
  t.equal(last.outcome, 'killed');
  t.throws(() => process.kill(last.pid, 0), 'the deadlocked command is gone');
});

t.test('a command that cannot be started: iokit-snap exec: CODE: message, and the status a shell gives', async (t) => {
  const notExecutable = path.join(tmp, 'not-executable');
  fs.writeFileSync(notExecutable, 'echo hi\n', { mode: 0o644 });
  const badInterpreter = path.join(tmp, 'bad-interpreter');
  fs.writeFileSync(badInterpreter, '#!/nonexistent/interpreter\necho hi\n', { mode: 0o755 });
  const cases: [string, number, string][] = [
    ['iokit-snap-no-such-command', 127, 'ENOENT: cannot run "iokit-snap-no-such-command": no such command in PATH (check the name, or give its path)'],
    ['/nonexistent/program', 127, 'ENOENT: cannot run "/nonexistent/program": no such file (check the path)'],
    [badInterpreter, 127, `ENOENT: cannot run "${badInterpreter}": its interpreter /nonexistent/interpreter (from its #! line) does not exist`],
    [notExecutable, 126, `EACCES: cannot run "${notExecutable}": permission denied: it is not executable (chmod +x), or it is on a file system mounted noexec`],
    [tmp, 126, `EACCES: cannot run "${tmp}": it is a directory`],
  ];
  // In-process: nothing is started, so the real binary's start-up cost buys nothing here.
  const runs = await Promise.all(cases.map(([program]) => runCli(['exec', '--', program])));
  for (const [i, [program, status, message]] of cases.entries()) {
    t.equal(runs[i].code, status, program);
    t.equal(runs[i].stderr, `iokit-snap exec: ${message}\n`);
  }
  const json = await runCli(['exec', '--json', '--', '/nonexistent/program']);
  t.equal(json.code, 127, 'the same status with --json');
});

t.test('a suspect verdict is reported once, and exec waits on: --kill does not kill it, its exit status is passed through', { skip: linux }, async (t) => {
  // A main thread waiting for events when the command was expected to finish: suspect (exec judges with expectExit).
  const child = spawn(process.execPath, [BIN, 'exec', '--timeout', '800ms', '--kill', '--no-accelerators', '--no-save', '--', await targetBinary(), 'poll-idle'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const pid = Number((await waitFor(() => /ready pid=(\d+)/.exec(stdout), 'the target to start'))[1]);
  t.teardown(() => killQuietly(pid));
  await waitFor(() => /suspect, not hung: waiting for it to finish/.test(stderr), 'the suspect report', 30000);
  t.match(stderr, /SUSPECT: 1 warning/);
  // Two more looks at it: still suspect, not reported again, not killed.
  await new Promise((resolve) => setTimeout(resolve, 1700));
  t.equal(stderr.match(/SUSPECT/g)?.length, 1, `reported once: ${stderr}`);
  t.doesNotThrow(() => process.kill(pid, 0), 'still running');
  process.kill(pid, 'SIGTERM');
  t.equal(await exited, 128 + 15, 'the command\'s own status: killed by SIGTERM');
});

t.test('a program whose loader does not exist: ENOENT that says so, 127', { skip: linux }, async (t) => {
  const program = await buildC(path.join(__dirname, 'targets', 'target.c'), 'no-loader', ['-Wl,--dynamic-linker=/nonexistent/ld-iokit-snap.so']);
  const run = await runCli(['exec', '--', program, 'sleep']);
  t.equal(run.code, 127);
  t.equal(run.stderr, `iokit-snap exec: ENOENT: cannot run "${program}": the program loader it needs does not exist (built for another system?)\n`);
});
