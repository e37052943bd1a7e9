/**
 * A deadlock is a hang even while other threads tick. Real deadlocks in runtimes whose other
 * threads keep moving (the JVM's GC and periodic threads; a Go ticker goroutine and sysmon) or
 * that form inside the window (CPython workers that compute 3 s, then take two locks in
 * opposite order) must read hung: under `watch`, under `exec --kill` (reported hung and killed,
 * not "making progress" and waited for), and under `snapshot` + `diff` with snapshots at 0.6 s
 * and 6 s. Programs from test/helpers/real-programs.js; a missing runtime skips with a line.
 * Uses the built CLI (npm run build).
 */
import t, { type Test } from 'tap';
import * as P from './helpers/real-programs';
import { early, needs } from './helpers/verdict-cases';

const scope = new P.Scope('verdicts-deadlock');
t.teardown(() => scope.close());


const WATCH = { interval: '250ms', stall: '2s', forMs: 4500 };
const EXEC = { timeout: '3s', stall: '1s', timeoutMs: 10000 };

const java = needs('java');
const go = needs('go');
const python = needs('python');
const javaWatch = early(java, async () => P.watchRun(scope, (await P.startJavaDeadlock(scope)).pids, WATCH));
const javaExec = early(java, async () => P.execRun(scope, await P.javaCommand('deadlock'), EXEC));
const goWatch = early(go, async () => P.watchRun(scope, (await P.startGoDeadlock(scope)).pids, WATCH));
const goExec = early(go, async () => P.execRun(scope, await P.goCommand('deadlock'), EXEC));
const pythonDiff = early(python, async () => {
  const started = await P.startPython(scope, 'lock-order');
  return P.diffRun(scope, started.pids, { readyAt: Date.now(), firstAtMs: 600, secondAtMs: 6000, stall: '1s' });
});

const said = (findings: P.Finding[] | undefined): string => (findings?.[0] ? `: ${findings[0].message}` : '');

function hungWatch(t: Test, run: Awaited<ReturnType<typeof P.watchRun>>, what: string): void {
  const w = P.summarizeWatch(run.events);
  t.equal(w.last, 'hung', `watch: ${what} reads hung at the end (said: ${w.last}${said(w.samples.at(-1)?.findings)})`);
  t.ok(w.hangs.length > 0, 'watch: a hang event');
  t.equal(run.result.code, 2, 'watch: exit 2');
}

function hungExec(t: Test, run: Awaited<ReturnType<typeof P.execRun>>, what: string): void {
  const last = run.lines.at(-1);
  t.notOk(run.result.timedOut, `exec: ${what} reported, not waited for (${last ? `${last.report.verdict}, ${last.outcome}` : 'no report'})`);
  t.equal(last?.report.verdict, 'hung', `exec: hung (said: ${last?.report.verdict ?? 'nothing'}${said(last?.report.findings)})`);
  t.equal(last?.outcome, 'killed', 'exec: killed (--kill)');
  t.equal(run.result.code, 2, 'exec: exit 2');
}

t.test('Java: two threads in a monitor deadlock, the JVM\'s own threads running', { skip: java }, async (t) => {
  hungWatch(t, (await javaWatch)!, 'the JVM');
  hungExec(t, (await javaExec)!, 'the JVM');
});

t.test('Go: a deadlock on two sync.Mutex, a ticker goroutine alive', { skip: go }, async (t) => {
  hungWatch(t, (await goWatch)!, 'the Go program');
  hungExec(t, (await goExec)!, 'the Go program');
});

t.test('CPython: workers compute 3 s, then take two locks in opposite order (snapshots at 0.6 s and 6 s)', { skip: python }, async (t) => {
  const { report, result, at } = (await pythonDiff)!;
  // Meant to be taken while the workers compute (the deadlock forms at 3 s); a heavily loaded
  // machine starts the CLI late, and then the window holds a deadlock that formed before it.
  t.comment(`snapshots taken at ${(at[0] / 1000).toFixed(1)} s and ${(at[1] / 1000).toFixed(1)} s`);
  t.equal(report?.verdict, 'hung', `diff: hung (said: ${report?.verdict ?? result.stderr}${said(report?.findings)})`);
  t.equal(result.code, 2, 'diff: exit 2');
});
