/**
 * What a finding says is true. A D-state wait that SIGKILL ends (a page wait on a FUSE file
 * whose daemon never answers; a vfork parent, TASK_KILLABLE) is not "cannot be killed"; the
 * reader of a full pipe, sampled in the same run, is named; a finding that sends the reader to
 * another thread's finding ("see its finding") has one to send it to; and two snapshots with no
 * process in common are refused or labelled, not compared as healthy. Programs from
 * test/helpers/real-programs.js; a missing runtime skips with a line. Uses the built CLI.
 */
import * as path from 'node:path';
import t from 'tap';
import * as P from './helpers/real-programs';
import { early, needs } from './helpers/verdict-cases';

const scope = new P.Scope('verdicts-facts');
t.teardown(() => scope.close());


const DIFF = { firstAtMs: 0, secondAtMs: 2500, stall: '1s' };

const fuse = needs('c', 'fuse');
const c = needs('c');
const python = needs('python');
const java = needs('java');
const coreutils = needs('coreutils');

const killable = early(fuse || c, async () => {
  const [reader, vfork] = await Promise.all([P.startFuseStuckReader(scope), P.startTarget(scope, 'vfork-parent')]);
  const [readerDiff, vforkDiff] = await Promise.all([P.diffRun(scope, reader.pids, DIFF), P.diffRun(scope, vfork.pids, DIFF)]);
  return { reader, vfork, readerDiff, vforkDiff };
});
const pipe = early(python, async () => {
  const started = await P.startPipeDeadlock(scope);
  return { started, diff: await P.diffRun(scope, started.pids, DIFF) };
});
const jvm = early(java, async () => {
  const started = await P.startJavaIdle(scope);
  return P.diffRun(scope, started.pids, DIFF);
});
const strangers = early(coreutils, async () => {
  const [one, other] = await Promise.all([P.startSleep(scope), P.startSleep(scope)]);
  const dir = scope.tmpdir('strangers');
  const files = [path.join(dir, 'one.json'), path.join(dir, 'other.json')];
  for (const [i, started] of [one, other].entries()) {
    const run = await P.iokitSnap(scope, ['snapshot', '--pid', String(started.pid), '--no-accelerators', '-o', files[i]]);
    if (run.code !== 0) throw new Error(run.stderr);
  }
  return P.iokitSnap(scope, ['diff', ...files]);
});

t.test('a D wait that SIGKILL ends is not called unkillable', { skip: fuse || c }, async (t) => {
  const { reader, vfork, readerDiff, vforkDiff } = (await killable)!;
  for (const [what, started, diff] of [
    ['a reader of a FUSE file whose daemon never answers', reader, readerDiff],
    ['a vfork parent', vfork, vforkDiff],
  ] as const) {
    const finding = diff.report?.findings.find((f) => f.ref?.pid === started.pid && f.severity !== 'info');
    t.ok(finding, `${what}: a finding`);
    t.notMatch(finding?.message ?? '', /cannot be killed/, `${what}: not called unkillable (${finding?.message})`);
    // The proof that it can be: SIGKILL, and it is gone at once.
    process.kill(started.pid, 'SIGKILL');
    await P.waitFor(() => !P.alive(started.pid), `${what} to die of SIGKILL`, 3000);
    t.pass(`${what}: SIGKILL ended it`);
  }
});

t.test('the writer of a full pipe: its reader, sampled in the same run, is named', { skip: python }, async (t) => {
  const { started, diff } = (await pipe)!;
  const writer = diff.report?.findings.find((f) => f.ref?.pid === started.child && f.severity !== 'info');
  t.ok(writer, 'a finding for the writer');
  t.match(writer?.message ?? '', new RegExp(`\\b${started.pid}\\b`), `it names the reader, pid ${started.pid} (said: ${writer?.message})`);
});

t.test('a finding that points at another thread\'s finding has one to point at', { skip: java }, async (t) => {
  const diff = (await jvm)!;
  const pointing = diff.report?.findings.filter((f) => /see its finding/.test(f.message)) ?? [];
  for (const f of pointing) {
    const tid = Number(/thread (\d+)/.exec(f.message)?.[1]);
    t.ok(
      diff.report?.findings.some((other) => other !== f && other.ref?.tid === tid),
      `"${f.message}": thread ${tid} has a finding`,
    );
  }
  t.pass(`${pointing.length} finding(s) point at another`);
});

t.test('two snapshots with no process in common are refused or labelled', { skip: coreutils }, async (t) => {
  const run = (await strangers)!;
  const refused = run.code === 1;
  const labelled = /in common/i.test(run.stdout + run.stderr);
  t.ok(refused || labelled, `refused (exit 1) or labelled "no process in common" (exit ${run.code}: ${run.stdout.trim().split('\n')[0]})`);
  t.notMatch(run.stdout, /^HEALTHY/, 'not compared as healthy');
});
