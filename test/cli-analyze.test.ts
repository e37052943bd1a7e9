/**
 * The analysis commands end to end on real processes: diff on two saved snapshots, exec
 * on commands that finish, fail to start, or hang, and watch on an idle server and a
 * deadlock. Every wait is a poll or the command's own deadline, never a fixed sleep.
 */
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { shown, splitCommand } from '../src/cli/commands/exec';
import { statusLine } from '../src/cli/commands/watch';
import { descendants, killQuietly, parentFromStat, processTree } from '../src/proctree';
import { runCli, type CliStreams } from './helpers/cli';
import { start, startTarget, targetBinary, waitFor } from './helpers/targets';
import { sampleThreads } from '../src/sample';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-cli-analyze-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const linux = process.platform === 'linux' ? false : 'the test targets (test/targets/target.c) are Linux programs';

const hasPython = (() => {
  try {
    execFileSync('python3', ['-c', 'pass']);
    return true;
  } catch {
    return false;
  }
})();

/** Two threads that each take one lock and wait for the other; the main thread joins them. */
const PY_DEADLOCK = `
import threading
a, b = threading.Lock(), threading.Lock()
ready = threading.Barrier(2)
def take(first, second):
    with first:
        ready.wait()
        with second:
            pass
x = threading.Thread(target=take, args=(a, b)); y = threading.Thread(target=take, args=(b, a))
x.start(); y.start(); x.join(); y.join()
`;

async function snapshotTwice(t: Test, pid: number, stallMs: number): Promise<[string, string]> {
  const healthy = path.join(tmp, `healthy-${pid}.json`);
  const hung = path.join(tmp, `hung-${pid}.json`);
  t.equal((await runCli(['snapshot', '--pid', String(pid), '--no-accelerators', '-o', healthy])).code, 0);
  const takenAt = Date.now();
  await waitFor(() => Date.now() - takenAt > stallMs + 100, `${stallMs} ms to pass`);
  t.equal((await runCli(['snapshot', '--pid', String(pid), '--no-accelerators', '-o', hung])).code, 0);
  return [healthy, hung];
}

t.test('diff: a deadlock is hung (exit 2), an idle server is healthy (exit 0)', { skip: linux }, async (t) => {
  const deadlock = await start(t, 'deadlock');
  await waitFor(async () => (await sampleThreads(deadlock.pid)).threads.filter((th) => th.blockedIn?.call === 'futex').length === 3, 'all three threads in futex');
  const [healthy, hung] = await snapshotTwice(t, deadlock.pid, 400);
  const human = await runCli(['diff', healthy, hung, '--stall', '400ms']);
  t.equal(human.code, 2, human.stderr);
  t.match(human.stdout, /^HUNG: 2 critical findings, the longest for at least \d/);
  t.match(human.stdout, new RegExp(`thread ${deadlock.info.a} .*\\n\\s+blocked acquiring a lock in futex for at least`));
  t.match(human.stdout, new RegExp(`thread ${deadlock.info.b} `));
  const json = await runCli(['diff', healthy, hung, '--stall', '400ms', '--json']);
  t.equal(json.code, 2);
  const report = JSON.parse(json.stdout);
  t.equal(report.verdict, 'hung');
  t.same(
    report.findings.map((f: { kind: string; ref: { tid: number } }) => [f.kind, f.ref.tid]).sort(),
    [['waiting', deadlock.pid], ...[Number(deadlock.info.a), Number(deadlock.info.b)].map((tid) => ['stalled', tid])].sort(),
  );

  const idle = await start(t, 'epoll-idle');
  await waitFor(async () => (await sampleThreads(idle.pid)).threads[0].blockedIn?.call === 'epoll_wait', 'the server in epoll_wait');
  const [calm, still] = await snapshotTwice(t, idle.pid, 400);
  const healthyRun = await runCli(['diff', calm, still, '--stall', '400ms']);
  t.equal(healthyRun.code, 0, healthyRun.stdout);
  t.match(healthyRun.stdout, /^HEALTHY: nothing stuck/);
  t.match(healthyRun.stdout, /1 thread, 1 idle, 0 ms CPU in/);
  // The same pair read as a command that should have exited: the server's wait is suspect.
  const expecting = await runCli(['diff', calm, still, '--stall', '400ms', '--expect-exit']);
  t.equal(expecting.code, 2);
  t.match(expecting.stdout, /^SUSPECT: 1 warning/);
  t.match(expecting.stdout, /waits for events in epoll_wait .* but the command should have finished/);
});

t.test('diff: usage and bad files', async (t) => {
  const one = await runCli(['diff', 'only-one.json']);
  t.equal(one.code, 64);
  t.match(one.stderr, /diff takes two snapshot files/);
  const junk = path.join(tmp, 'junk.json');
  fs.writeFileSync(junk, '{"format": "something-else"}');
  const bad = await runCli(['diff', junk, junk]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /EINVAL/);
  const missing = await runCli(['diff', path.join(tmp, 'nope.json'), junk]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read snapshot/);
});

t.test('exec: a command that finishes passes its status through and prints nothing', async (t) => {
  const seven = await runCli(['exec', '--', 'sh', '-c', 'sleep 0.1; exit 7']);
  t.same(seven, { code: 7, stdout: '', stderr: '' });
  const ok = await runCli(['exec', '--', 'true']);
  t.same(ok, { code: 0, stdout: '', stderr: '' });
  const noDash = await runCli(['exec', '--timeout', '5s', 'sh', '-c', 'exit 3']);
  t.equal(noDash.code, 3);
  const signalled = await runCli(['exec', '--', 'sh', '-c', 'kill -9 $$']);
  t.equal(signalled.code, 128 + 9);
});

t.test('exec: a command that finishes between the looks, or while newcomers get their baseline, prints nothing', async (t) => {
  // Exits after the first look and before the second.
  const between = await runCli(['exec', '--timeout', '3s', '--stall', '500ms', '--no-accelerators', '--', 'sh', '-c', 'sleep 0.5; exit 5']);
  t.same(between, { code: 5, stdout: '', stderr: '' });
  // Exits after the baseline is taken again (one stall before the deadline) and before the deadline.
  const afterRefresh = await runCli(['exec', '--timeout', '3s', '--stall', '1s', '--no-accelerators', '--', 'sh', '-c', 'sleep 2.3; exit 8']);
  t.same(afterRefresh, { code: 8, stdout: '', stderr: '' });
  // At the 600 ms deadline the second sleep is new; it ends (and sh with it) while it gets its baseline.
  const meanwhile = await runCli(['exec', '--timeout', '600ms', '--no-accelerators', '--', 'sh', '-c', 'sleep 0.35; sleep 0.45; exit 6']);
  t.equal(meanwhile.code, 6, meanwhile.stderr);
});

t.test('exec: cannot start, or called wrongly', async (t) => {
  const missing = await runCli(['exec', '--', 'iokit-snap-no-such-command']);
  t.equal(missing.code, 127);
  t.match(missing.stderr, /^iokit-snap exec: ENOENT: cannot run "iokit-snap-no-such-command": no such command in PATH/);
  const notExecutable = path.join(tmp, 'not-executable');
  fs.writeFileSync(notExecutable, 'echo hi\n', { mode: 0o644 });
  const denied = await runCli(['exec', '--', notExecutable]);
  t.equal(denied.code, 126);
  const none = await runCli(['exec', '--timeout', '1s']);
  t.equal(none.code, 64);
  t.match(none.stderr, /exec needs a command to run/);
  const badTimeout = await runCli(['exec', '--timeout', 'soon', '--', 'true']);
  t.equal(badTimeout.code, 64);
  t.match(badTimeout.stderr, /--timeout takes a duration/);
  t.same(splitCommand(['--kill', '--save=/x', '--timeout', '2s', 'ls', '-l']), { ours: ['--kill', '--save=/x', '--timeout', '2s'], command: ['ls', '-l'] });
  t.same(splitCommand(['--json', '--', '--weird-name']), { ours: ['--json'], command: ['--weird-name'] });
  t.equal(shown(['go', 'version']), 'go version');
  t.equal(shown(['sh', '-c', 'sleep 1; exit 7']), 'sh -c "sleep 1; exit 7"', 'an argument with spaces is quoted');
  t.equal(shown(['python3', '-c', 'import x\nx.run()']), 'python3 -c "import x\\nx.run()"', 'a script stays on one line');
  const long = shown(['python3', '-c', 'x = 1; '.repeat(40)]);
  t.equal(long.length, 100);
  t.ok(long.endsWith('…'));
});

t.test('exec: a deadlocked command is hung; the report names the stuck threads, saves both snapshots, --kill ends it', { skip: linux }, async (t) => {
  const binary = await targetBinary();
  const save = path.join(tmp, 'exec-deadlock');
  const started = Date.now();
  const run = await runCli(['exec', '--timeout', '2s', '--kill', '--save', save, '--no-accelerators', '--', binary, 'deadlock']);
  t.equal(run.code, 2, run.stderr);
  t.ok(Date.now() - started < 15000, 'it answers soon after the timeout');
  t.match(run.stderr, /still running after [2-9]\.\d s/);
  t.match(run.stderr, /HUNG: 2 critical findings/);
  t.equal(run.stderr.match(/^\s+blocked acquiring a lock in futex for at least/gm)?.length, 2);
  t.match(run.stderr, /joining thread \d+ for at least/);
  t.match(run.stderr, /killed pid \d+/);
  for (const file of ['baseline.json', 'hung.json', 'report.json']) t.ok(fs.existsSync(path.join(save, file)), file);
  // Linux stacks stop threads, so they are taken only once the command is judged hung, into the hung snapshot.
  type Saved = { processes: Array<{ threads: Array<{ tid: number; stack?: Array<{ symbol?: string }> }> }> };
  const baseline = JSON.parse(fs.readFileSync(path.join(save, 'baseline.json'), 'utf8')) as Saved;
  const hung = JSON.parse(fs.readFileSync(path.join(save, 'hung.json'), 'utf8')) as Saved;
  t.ok(baseline.processes[0]!.threads.every((th) => th.stack === undefined), 'no stacks in the baseline');
  const threads = hung.processes[0]!.threads;
  t.equal(threads.length, 3);
  for (const th of threads) t.ok(th.stack?.some((f) => f.symbol === 'main' || f.symbol === 'take_in_order'), `thread ${th.tid}: a stack in hung.json`);
  // The saved pair says the same thing when compared again.
  const again = await runCli(['diff', path.join(save, 'baseline.json'), path.join(save, 'hung.json'), '--expect-exit', '--json']);
  t.equal(again.code, 2);
  const saved = JSON.parse(fs.readFileSync(path.join(save, 'report.json'), 'utf8'));
  t.same(JSON.parse(again.stdout).findings.map((f: { kind: string }) => f.kind), saved.findings.map((f: { kind: string }) => f.kind));
});

t.test('exec: python3 two-lock deadlock, left running without --kill', { skip: linux || (!hasPython && 'python3 is not installed') }, async (t) => {
  const run = await runCli(['exec', '--timeout', '2s', '--json', '--no-accelerators', '--no-stacks', '--', 'python3', '-c', PY_DEADLOCK]);
  t.equal(run.code, 2);
  // One line per change of verdict: on a loaded machine python may still be starting at the first look (healthy, waiting).
  const lines = run.stderr.trim().split('\n').map((l) => JSON.parse(l));
  const line = lines[lines.length - 1];
  t.same(lines.slice(0, -1).map((l) => l.outcome), lines.length > 1 ? ['waiting'] : []);
  t.equal(line.report.verdict, 'hung');
  t.equal(line.outcome, 'left-running');
  t.ok(line.report.findings.filter((f: { kind: string; evidence: { field: string; after: unknown }[] }) =>
    f.kind === 'stalled' && f.evidence.some((e) => e.field === 'blockedIn.call' && e.after === 'futex')).length >= 3);
  // Without --kill the command is left running for a debugger; this test ends it.
  t.doesNotThrow(() => process.kill(line.pid, 0), 'still running');
  process.kill(line.pid, 'SIGKILL');
  const hung = JSON.parse(fs.readFileSync(path.join(line.saved, 'hung.json'), 'utf8')) as { processes: Array<{ threads: Array<{ stack?: unknown }> }> };
  t.ok(hung.processes.every((p) => p.threads.every((th) => th.stack === undefined)), '--no-stacks: no stacks in hung.json');
  fs.rmSync(line.saved, { recursive: true, force: true });
});

t.test('exec: forwards SIGTERM and SIGHUP sent to it, ignores SIGINT (the terminal sends that to the command itself)', async (t) => {
  const signals = new EventEmitter();
  const running = runCli(['exec', '--timeout', '60s', '--no-accelerators', '--', 'sleep', '60'], {}, false, signals);
  await waitFor(() => signals.listenerCount('SIGTERM') === 1, 'exec to be running its command');
  signals.emit('SIGINT', 'SIGINT');
  signals.emit('SIGTERM', 'SIGTERM');
  const run = await running;
  t.equal(run.code, 128 + 15, 'the command died of the forwarded SIGTERM');
  t.equal(run.stderr, '');
  t.same([signals.listenerCount('SIGTERM'), signals.listenerCount('SIGHUP'), signals.listenerCount('SIGINT')], [0, 0, 0], 'handlers removed');
});

t.test('exec: a process the command starts after the baseline gets a baseline of its own', { skip: linux }, async (t) => {
  const binary = await targetBinary();
  // No refresh of the baseline fits in a 600 ms timeout; the deadlocked target starts after the
  // first look (sleep 0.35) and is still new at the deadline. `; true` keeps sh from exec-ing it.
  const run = await runCli(['exec', '--timeout', '600ms', '--kill', '--no-accelerators', '--save', path.join(tmp, 'late'), '--', 'sh', '-c', `sleep 0.35; ${binary} deadlock; true`]);
  t.equal(run.code, 2, run.stderr);
  t.match(run.stderr, /HUNG: 2 critical findings/);
  t.match(run.stderr, /pid \d+ \(target\) thread \d+ 'target'\n\s+blocked acquiring a lock in futex/);
  t.match(run.stderr, /killed pid \d+ and 1 process\(es\) it started/);
});

t.test('exec: without --kill a hung command is left running for a debugger, and says how to end it', { skip: linux }, async (t) => {
  const run = await runCli(['exec', '--timeout', '1s', '--no-accelerators', '--save', path.join(tmp, 'left'), '--', await targetBinary(), 'deadlock']);
  t.equal(run.code, 2, run.stderr);
  const pid = Number(/left running: pid (\d+) \(attach a debugger, or kill -9 \d+; --kill ends it for you\)/.exec(run.stderr)?.[1]);
  t.ok(pid > 0, run.stderr);
  t.ok(killQuietly(pid), 'it was still running');
});

t.test('exec: a slow command that makes progress is left to finish', async (t) => {
  const run = await runCli(['exec', '--timeout', '500ms', '--save', path.join(tmp, 'slow'), '--no-accelerators', '--', 'sh', '-c', 'sleep 3; exit 4']);
  t.equal(run.code, 4, run.stderr);
  t.match(run.stderr, /HEALTHY/);
  t.match(run.stderr, /making progress: waiting for it to finish/);
});

t.test('watch: an idle server raises nothing; a deadlock is a hang', { skip: linux }, async (t) => {
  const idle = await start(t, 'poll-idle');
  const quiet = await runCli(['watch', '--pid', String(idle.pid), '--interval', '100ms', '--stall', '500ms', '--for', '2500ms', '--json', '--no-accelerators']);
  t.equal(quiet.code, 0, quiet.stderr);
  const events = quiet.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(events.length >= 5, `${events.length} samples`);
  t.same([...new Set(events.map((e) => e.type))], ['sample']);
  t.same([...new Set(events.map((e) => e.verdict))], ['healthy']);

  const deadlock = await start(t, 'deadlock');
  const hang = await runCli(['watch', '-p', String(deadlock.pid), '--interval', '100ms', '--stall', '500ms', '--exit-on-hang', '--no-accelerators', '--for', '20s']);
  t.equal(hang.code, 2);
  t.match(hang.stdout, /HUNG: 2 critical findings/);
  t.match(hang.stdout, /blocked acquiring a lock( \(glibc mutex: .*\))? in futex for at least/);

  const tty = await runCli(['watch', String(idle.pid), '--interval', '100ms', '--for', '600ms', '--no-accelerators'], {}, true);
  t.equal(tty.code, 0);
  t.match(tty.stdout, /\r\u001b\[Kwatching pid \d+: 1 thread, healthy, \d+ samples?/);
});

t.test('watch: the process exits; usage errors', { skip: linux }, async (t) => {
  const target = await startTarget('sleep');
  const running = runCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--no-accelerators']);
  await waitFor(() => true, 'a tick');
  setTimeout(() => void target.stop(), 500);
  const run = await running;
  t.equal(run.code, 0);
  t.match(run.stdout, new RegExp(`pid ${target.pid} exited`));
  const none = await runCli(['watch']);
  t.equal(none.code, 64);
  t.match(none.stderr, /watch needs a process/);
  const badInterval = await runCli(['watch', '--pid', '1', '--interval', '0']);
  t.equal(badInterval.code, 64);
});

t.test('the process tree exec samples', async (t) => {
  t.equal(parentFromStat('42 (a (weird) name) S 7 42 42 0'), 7, 'comm with spaces and parentheses');
  t.equal(parentFromStat('garbage'), null);
  t.equal(parentFromStat('1 (x) S notanumber'), null);
  const parents = new Map([
    [10, 1],
    [12, 10],
    [11, 10],
    [13, 12],
    [20, 1],
  ]);
  t.same(descendants(10, parents), [10, 11, 12, 13], 'parents before children, siblings in order');
  t.same(descendants(99, parents), [99], 'a leaf');
  t.same(await processTree(4242, path.join(tmp, 'no-proc-here')), [4242], 'an unreadable table: only the root');
  // A /proc-shaped tree (proc(5): /proc/<pid>/stat) where one process exited between readdir and read.
  const proc = path.join(tmp, 'proc');
  for (const [pid, stat] of [['1', '1 (init) S 0 1 1'], ['7', '7 (sh) S 1 7 7'], ['8', null], ['9', '9 (python3) S 7 7 7'], ['self', null]] as const) {
    fs.mkdirSync(path.join(proc, pid), { recursive: true });
    if (stat !== null) fs.writeFileSync(path.join(proc, pid, 'stat'), stat + ' 0 0\n');
  }
  t.same(await processTree(7, proc), [7, 9], 'the vanished process is skipped');
  t.equal(killQuietly(0x7ffffffe), false, 'no such process: nothing to kill');
  if (process.platform === 'linux') {
    const tree = await processTree(process.ppid);
    t.equal(tree[0], process.ppid);
    t.ok(tree.includes(process.pid), 'this test process is under its parent');
  }
});

t.test('watch: a stopped process is a hang, continuing it a recovery; a pid that does not exist is an error', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  process.kill(target.pid, 'SIGSTOP');
  let streams: CliStreams | undefined;
  const running = runCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--stall', '300ms', '--no-accelerators'], {}, false, undefined, (s) => (streams = s));
  await waitFor(() => /HUNG: 1 critical finding/.test(streams?.stdout() ?? ''), 'the hang on stdout');
  t.match(streams!.stdout(), /stopped for \d/);
  process.kill(target.pid, 'SIGCONT');
  await waitFor(() => /RECOVERED after \d/.test(streams!.stdout()), 'the recovery on stdout');
  await target.stop();
  const run = await running;
  t.equal(run.code, 0, 'it ended with nothing hung');
  t.match(run.stdout, new RegExp(`pid ${target.pid} exited\n\\S+ watched pid ${target.pid} for [0-9.]+ m?s: \\d+ samples, 1 hang, healthy at the end\n$`));

  const missing = await runCli(['watch', '--pid', String(0x7ffffffe), '--no-accelerators']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /iokit-snap watch: ESRCH: /);
  const missingJson = await runCli(['watch', '--pid', String(0x7ffffffe), '--no-accelerators', '--json']);
  t.equal(missingJson.code, 1);
  const [error] = missingJson.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.match(error, { type: 'error', error: { code: 'ESRCH', message: /no process|No such process|not exist/i } });
});

t.test('watch: on a terminal the status line names the worst finding; --basic and --baseline', { skip: linux }, async (t) => {
  const deadlock = await start(t, 'deadlock');
  const tty = await runCli(['watch', '--pid', String(deadlock.pid), '--interval', '100ms', '--stall', '300ms', '--for', '1500ms', '--no-accelerators'], {}, true);
  t.equal(tty.code, 2, 'stopped while hung');
  t.match(tty.stdout, /watching pid \d+: 3 threads, HUNG \(stalled: pid \d+ \(target\) thread \d+ 'target'\), \d+ samples/);

  const idle = await start(t, 'poll-idle');
  const baseline = path.join(tmp, 'poll-baseline.json');
  t.equal((await runCli(['snapshot', '--pid', String(idle.pid), '--no-accelerators', '-o', baseline])).code, 0);
  const basic = await runCli(['watch', '--pid', String(idle.pid), '--basic', '--baseline', baseline, '--interval', '100ms', '--stall', '300ms', '--for', '1s', '--json']);
  t.equal(basic.code, 0, 'an unknown call never makes a hang');
  const events = basic.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.notOk(events.some((e) => e.type === 'hang'));
  t.ok(events.some((e) => e.type === 'sample' && e.findings.some((f: { message: string }) => /the call is unknown/.test(f.message))), 'the basic sample says it cannot tell');
});

t.test('watch: each thread\'s %CPU over the last interval, busiest first, on the status line and in --json', { skip: linux }, async (t) => {
  // The main thread spins; four more sleep. Whatever the machine's load, the spinner uses some CPU and the sleepers none.
  const target = await start(t, 'threads', ['4', 'spin']);
  const spinning = new RegExp(`; %CPU (\\d+\\.\\d) tid ${target.pid} \\(target\\), 0\\.0 tid \\d+ \\(target\\), 0\\.0 tid \\d+ \\(target\\), \\+2 more`);
  let streams: CliStreams | undefined;
  const signals = new EventEmitter();
  const running = runCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--no-accelerators'], {}, true, signals, (s) => (streams = s));
  const line = await waitFor(() => {
    const shown = [...(streams?.stdout() ?? '').matchAll(new RegExp(spinning, 'g'))];
    return shown.find((m) => Number(m[1]) > 0);
  }, 'a status line with the spinning thread first');
  t.ok(Number(line[1]) > 0, `the spinning thread at ${line[1]} %CPU`);
  signals.emit('SIGTERM');
  t.equal((await running).code, 0);

  let jsonStreams: CliStreams | undefined;
  const jsonRun = runCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--json', '--no-accelerators'], {}, false, signals, (s) => (jsonStreams = s));
  const events = (): { type: string; cpu: { percent: number }[] }[] => (jsonStreams?.stdout() ?? '').split('\n').slice(0, -1).map((l) => JSON.parse(l));
  await waitFor(() => events().filter((e) => e.type === 'sample').length >= 4, 'four samples');
  signals.emit('SIGTERM');
  const json = await jsonRun;
  t.equal(json.code, 0, json.stderr);
  const samples = json.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'sample');
  t.same(samples[0].cpu, [], 'the first sample has no interval behind it');
  const later = samples.slice(1);
  for (const sample of later) {
    t.equal(sample.cpu.length, 5, 'every thread');
    t.match(sample.cpu[0], { pid: target.pid, tid: target.pid, name: 'target' }, 'the spinner first');
    t.same(sample.cpu.slice(1).map((c: { percent: number }) => c.percent), [0, 0, 0, 0], 'the sleepers used none');
  }
  t.ok(later.some((s) => s.cpu[0].percent > 0), 'the spinner used some');
});

t.test('watch: the status line', async (t) => {
  const sample = { type: 'sample' as const, at: '', monotonicNs: 0, verdict: 'healthy' as const, findings: [], threads: 2, cpu: [] };
  t.equal(statusLine(sample, [7], 1), 'watching pid 7: 2 threads, healthy, 1 sample');
  const info = { kind: 'waiting' as const, severity: 'info' as const, subject: 'pid 7 thread 8', ref: {}, message: '', evidence: [], durationMs: 1 };
  t.equal(statusLine({ ...sample, findings: [info] }, [7, 9], 3), 'watching pid 7, pid 9: 2 threads, healthy, 3 samples', 'info is not worth the line');
  t.equal(
    statusLine({ ...sample, verdict: 'suspect', findings: [{ ...info, kind: 'spinning', severity: 'warning' }], discarded: { reason: 'late', lateMs: 2000 } }, [7], 4),
    'watching pid 7: 2 threads, SUSPECT (spinning: pid 7 thread 8) (window discarded: late timer), 4 samples',
  );
  const cpu = [99.84, 12, 0.04, 0].map((percent, i) => ({ pid: 7, tid: 8 + i, name: i === 1 ? null : 'w', percent }));
  t.equal(statusLine({ ...sample, cpu: cpu.slice(0, 2) }, [7], 5), 'watching pid 7: 2 threads, healthy, 5 samples; %CPU 99.8 tid 8 (w), 12.0 tid 9 (-)');
  t.equal(statusLine({ ...sample, cpu }, [7], 5), 'watching pid 7: 2 threads, healthy, 5 samples; %CPU 99.8 tid 8 (w), 12.0 tid 9 (-), 0.0 tid 10 (w), +1 more');
  t.equal(statusLine({ ...sample, cpu: [] }, [7], 1), 'watching pid 7: 2 threads, healthy, 1 sample', 'no interval yet: no %CPU');
});

t.test('diff: what the accelerators did, from a real capture', async (t) => {
  const capture = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
  const healthyFile = path.join(tmp, 'm4-healthy.json');
  t.equal((await runCli(['import', capture, '-o', healthyFile])).code, 0);
  const healthy = JSON.parse(fs.readFileSync(healthyFile, 'utf8'));
  const same = await runCli(['diff', healthyFile, healthyFile]);
  t.equal(same.code, 1, same.stdout);
  t.match(same.stderr, /^iokit-snap diff: EINVAL: .*m4-healthy\.json twice: the same snapshot \(taken .*\), so there is nothing to compare; take the second one later, while it hangs\n$/);
  const copy = path.join(tmp, 'm4-copy.json');
  fs.copyFileSync(healthyFile, copy);
  const copied = await runCli(['diff', healthyFile, copy]);
  t.equal(copied.code, 1);
  t.match(copied.stderr, /m4-healthy\.json and .*m4-copy\.json: the same snapshot/);
  // One second later and unchanged: no change.
  const later = structuredClone(JSON.parse(fs.readFileSync(healthyFile, 'utf8')));
  later.monotonicNs += 1e9;
  const laterFile = path.join(tmp, 'm4-later.json');
  fs.writeFileSync(laterFile, JSON.stringify(later));
  const unchanged = await runCli(['diff', healthyFile, laterFile]);
  t.equal(unchanged.code, 0, unchanged.stdout);
  t.match(unchanged.stdout, /accelerators \(no change\):\n\s+AGXAcceleratorG16G 0x[0-9a-f]+: busy 0 \(752 ms total\), power 1, recoveries 0, utilization \d+%, 2 queues/);
  // The hung one: 5 s later, the GPU was reset once (PerformanceStatistics recoveryCount 0 → 1).
  const hung = structuredClone(healthy);
  hung.monotonicNs += 5e9;
  hung.accelerators[0].recovery.count += 1;
  const hungFile = path.join(tmp, 'm4-hung.json');
  fs.writeFileSync(hungFile, JSON.stringify(hung));
  const changed = await runCli(['diff', healthyFile, hungFile]);
  t.equal(changed.code, 2);
  t.match(changed.stdout, /^HUNG: 1 critical finding(, the longest for at least| over) 5\.0 s\n\s+critical\s+accelerator AGXAcceleratorG16G 0x[0-9a-f]+\n\s+GPU recovery count 0 → 1/);
  t.match(changed.stdout, /\n\s+accelerators:\n\s+AGXAcceleratorG16G .*recoveries 1/);
});
