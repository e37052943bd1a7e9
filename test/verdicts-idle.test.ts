/**
 * Idle runtime threads are not hangs. Real idle programs whose threads wait where the kernel's
 * view cannot tell idling from a deadlock (a Go M parked in futex, the main thread included;
 * libfuse workers in read on /dev/fuse; a queue consumer in a long-poll recv; worker pools in
 * C and CPython waiting on a condition or a lock) must read healthy, with no warning, under
 * `watch` and under `snapshot` + `diff`, every time: three fresh Go servers, since which M
 * parks where changes from one start to the next.
 *
 * One watch and one snapshot pair cover all of them (the findings name each by pid). Programs
 * from test/helpers/real-programs.js; a runtime that is missing skips its program with a line.
 * Uses the built CLI (npm run build).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import * as P from './helpers/real-programs';

const unsupported =
  process.platform !== 'linux' ? 'real programs in Linux states'
  : !fs.existsSync(path.join(__dirname, '..', 'lib', 'index.js')) ? 'the built CLI (npm run build)'
  : false;

interface Program {
  name: string;
  needs: P.Runtime[];
  start(scope: P.Scope): Promise<P.Started>;
}

const PROGRAMS: Program[] = [
  { name: 'Go net/http server, idle (fresh start 1)', needs: ['go'], start: (s) => P.startGoIdle(s) },
  { name: 'Go net/http server, idle (fresh start 2)', needs: ['go'], start: (s) => P.startGoIdle(s) },
  { name: 'Go net/http server, idle (fresh start 3)', needs: ['go'], start: (s) => P.startGoIdle(s) },
  { name: 'FUSE daemon (libfuse3), idle in read on /dev/fuse', needs: ['c', 'fuse'], start: (s) => P.startFuse(s, 'idle') },
  { name: 'queue consumer: CPython long-poll recv', needs: ['python'], start: (s) => P.startPythonConsumer(s) },
  { name: 'queue consumer: redis-cli BLPOP with timeout 0', needs: ['redis'], start: (s) => P.startRedisConsumer(s) },
  { name: 'C worker pool waiting on a condition variable', needs: ['c'], start: (s) => P.startCPool(s) },
  { name: 'CPython ThreadPoolExecutor waiting for tasks', needs: ['python'], start: (s) => P.startPythonPool(s) },
];

const missingOf = (program: Program): string | false => {
  for (const runtime of program.needs) {
    const why = P.missing(runtime);
    if (why !== null) return `needs ${runtime}: ${why}`;
  }
  return false;
};

t.test('idle runtimes read healthy under watch and under snapshot + diff', { skip: unsupported }, async (t) => {
  const scope = new P.Scope('verdicts-idle');
  t.teardown(() => scope.close());
  const runnable = PROGRAMS.filter((p) => missingOf(p) === false);
  for (const p of PROGRAMS.filter((p) => missingOf(p) !== false)) t.comment(`skipped: ${p.name} (${missingOf(p)})`);
  if (runnable.length === 0) return;
  let at = Date.now();
  const lap = (what: string): void => {
    t.comment(`${what}: ${((Date.now() - at) / 1000).toFixed(1)} s`);
    at = Date.now();
  };
  const started = await Promise.all(runnable.map((p) => p.start(scope)));
  lap('started');
  const pids = started.flatMap((s) => s.pids);

  // A snapshot before (no stacks: ptrace would stir the waits the watch is judging), a watch of
  // 5 s with a 2 s stall, and a snapshot after, with stacks, for diff.
  const dir = scope.tmpdir('idle');
  const before = path.join(dir, 'before.json');
  const after = path.join(dir, 'after.json');
  const first = await P.iokitSnap(scope, ['snapshot', ...pids.flatMap((p) => ['--pid', String(p)]), '--no-accelerators', '-o', before]);
  t.equal(first.code, 0, `snapshot before${first.code !== 0 ? `: ${first.stderr}` : ''}`);
  lap('snapshot');
  const watch = await P.watchRun(scope, pids, { interval: '250ms', stall: '2s', forMs: 5000 });
  const second = await P.iokitSnap(scope, ['snapshot', ...pids.flatMap((p) => ['--pid', String(p)]), '--no-accelerators', '--stacks', '-o', after]);
  t.equal(second.code, 0, `snapshot after, with stacks${second.code !== 0 ? `: ${second.stderr}` : ''}`);
  lap('watch and snapshot with stacks');
  const diff = await P.iokitSnap(scope, ['diff', before, after, '--json', '--stall', '2s']);
  const report = JSON.parse(diff.stdout) as P.Report;
  lap('diff');

  const summary = P.summarizeWatch(watch.events);
  t.same(summary.exits, [], 'every program outlived the watch');
  t.ok(summary.samples.length >= 10, `${summary.samples.length} samples`);
  for (const [i, program] of runnable.entries()) {
    const own = new Set(started[i].pids);
    const mine = (f: P.Finding): boolean => f.ref?.pid !== undefined && own.has(f.ref.pid);
    // One line per thread and kind (a watch repeats a finding in every sample while it holds).
    const said = (findings: P.Finding[]): string[] => [
      ...new Map(findings.filter((f) => f.severity !== 'info' && mine(f)).map((f) => [`${f.subject} ${f.kind}`, `${f.severity}: ${f.subject}: ${f.message}`])).values(),
    ];
    t.test(program.name, async (t) => {
      t.same(said(summary.loud), [], 'watch: no warning or hang');
      t.same(said(report.findings), [], 'diff: no warning or hang');
    });
  }
  t.equal(summary.worst, 'healthy', `watch: healthy throughout${summary.worst === 'healthy' ? '' : `: ${[...new Set(summary.loud.map((f) => `${f.severity}: ${f.subject}: ${f.message}`))].join(' | ').slice(0, 2000)}`}`);
  t.equal(watch.result.code, 0, 'watch: exit 0');
  t.equal(report.verdict, 'healthy', 'diff: healthy');
  t.equal(diff.code, 0, 'diff: exit 0');
});
