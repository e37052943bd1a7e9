/**
 * A main thread that waits for its workers is not a deadlock, on real processes: a C
 * program in pthread_join (the futex wait names the joined thread), and a Python program
 * whose join waits on a lock while the worker sleeps in a loop (no tid to go by: the rule
 * "parked as in the baseline while others progress" decides).
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { compare } from '../src/analyze';
import { findingsOf, snapshotPair, start } from './helpers/analyze';
import { runCli } from './helpers/cli';

const linux = process.platform === 'linux' ? false : 'the test targets are Linux programs';
/** The interpreter itself, not a launcher in front of it (a pyenv shim is a bash script that reads from pipes). */
const python = (() => {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
})();

t.test('C: main in pthread_join on a sleeping worker is healthy, and idle', { skip: linux }, async (t) => {
  const target = await start(t, 'join-sleeper');
  const { healthy, hung } = await snapshotPair(target.pid, 1000, (s) => s.processes[0]?.threads[0]?.blockedIn?.joining === Number(target.info.tid));
  const report = compare(healthy, hung, { stallMs: 1000 });
  t.equal(report.verdict, 'healthy', JSON.stringify(report.findings));
  t.same(findingsOf(report, target.pid), []);
  t.equal(report.processes[0]!.idle, 2, 'the joiner and the sleeper are both idle');
  const exec = compare(healthy, hung, { stallMs: 1000, expectExit: true });
  t.notOk(exec.findings.some((f) => f.severity === 'critical'), 'with expectExit too: a join on a live thread is not a hang');
});

/** Main joins a worker that sleeps in short steps for 4 s, then exits 0. */
const PY_JOIN = `
import threading, time
def work():
    end = time.monotonic() + 4
    while time.monotonic() < end:
        time.sleep(0.05)
w = threading.Thread(target=work)
w.start(); w.join()
`;

t.test('exec: Python main joining a worker that makes progress is left to finish', { skip: linux || (python === null && 'python3 is not installed') }, async (t) => {
  const run = await runCli(['exec', '--timeout', '2s', '--no-accelerators', '--', python!, '-c', PY_JOIN]);
  t.equal(run.code, 0, run.stderr);
  t.notMatch(run.stderr, /HUNG/);
  t.notMatch(run.stderr, /nobody releases/);
});
