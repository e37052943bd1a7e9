/**
 * An event loop that left its loop is not idle. A single-threaded server whose main thread
 * leaves its epoll_wait to sleep (or block) inside a command handler answers nothing: redis in
 * DEBUG SLEEP, a CPython http.server whose handler sleeps, a Node server whose handler blocks
 * its one thread (Atomics.wait). So is a database backend whose wait for a row lock goes
 * through its latch code's epoll_wait (PostgreSQL: WaitLatch ← ProcSleep ← LockAcquire).
 * Each must read hung, the state brought after a healthy start: under `watch` (after two
 * samples) or between two snapshots (`diff`). Programs from test/helpers/real-programs.js; a
 * missing runtime skips with a line. Uses the built CLI (npm run build).
 */
import t, { type Test } from 'tap';
import * as P from './helpers/real-programs';
import { early, needs } from './helpers/verdict-cases';

const scope = new P.Scope('verdicts-event-loop');
t.teardown(() => scope.close());


const WATCH = { interval: '250ms', stall: '2s', forMs: 5000 };
const DIFF = { firstAtMs: 300, secondAtMs: 3800, stall: '1s' };
const said = (findings: P.Finding[] | undefined): string => (findings?.[0] ? `: ${findings[0].message}` : '');

const redis = needs('redis');
const python = needs('python');
const node = needs('node');
const postgres = needs('postgres');

const redisWatch = early(redis, async () => {
  const server = await P.startRedis(scope);
  return { server, run: await P.watchRun(scope, server.pids, { ...WATCH, trigger: () => P.freezeRedis(scope, server) }) };
});
const pythonDiff = early(python, async () => {
  const server = await P.startPythonFrozenServer(scope);
  return P.diffRun(scope, server.pids, { ...DIFF, trigger: () => P.freezeHttpServer(scope, server, ['clock_nanosleep', 'nanosleep', 'poll', 'ppoll']) });
});
const nodeDiff = early(node, async () => {
  const server = await P.startNodeServer(scope, 'frozen');
  return P.diffRun(scope, server.pids, { ...DIFF, trigger: () => P.freezeHttpServer(scope, server, ['futex']) });
});
const postgresWatch = early(postgres, async () => {
  const wait = await P.startPostgresLockWait(scope);
  return { wait, run: await P.watchRun(scope, [wait.backend], WATCH) };
});

function hungWatch(t: Test, run: Awaited<ReturnType<typeof P.watchRun>>, mainTid: number): void {
  if (run.triggerError !== null) throw run.triggerError;
  const w = P.summarizeWatch(run.events);
  t.equal(w.last, 'hung', `watch: hung at the end (said: ${w.last}${said(w.samples.at(-1)?.findings)})`);
  t.ok(w.hangs.length > 0, 'watch: a hang event');
  t.ok(
    w.hangs.some((h) => h.report.findings.some((f) => f.severity === 'critical' && f.ref?.tid === mainTid)),
    `watch: the finding names thread ${mainTid}, the one that left its loop`,
  );
  t.equal(run.result.code, 2, 'watch: exit 2');
}

function hungDiff(t: Test, run: Awaited<ReturnType<typeof P.diffRun>>): void {
  t.equal(run.report?.verdict, 'hung', `diff: hung (said: ${run.report?.verdict ?? run.result.stderr}${said(run.report?.findings)})`);
  t.equal(run.result.code, 2, 'diff: exit 2');
}

t.test('redis-server in DEBUG SLEEP 40: the event loop left for a sleep (watch)', { skip: redis }, async (t) => {
  const { server, run } = (await redisWatch)!;
  hungWatch(t, run, server.pid);
});

t.test('CPython http.server whose handler sleeps 40 s (snapshot + diff)', { skip: python }, async (t) => {
  hungDiff(t, (await pythonDiff)!);
});

t.test('Node http server whose handler blocks its thread 40 s (snapshot + diff)', { skip: node }, async (t) => {
  hungDiff(t, (await nodeDiff)!);
});

t.test('PostgreSQL backend waiting on a row lock another session holds (watch)', { skip: postgres }, async (t) => {
  const { wait, run } = (await postgresWatch)!;
  hungWatch(t, run, wait.backend);
});
