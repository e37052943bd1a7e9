/**
 * `exec` leaves healthy work alone. A command making progress is never reported hung or
 * suspect, `--kill` never kills it, and its own exit status comes through: a gzip -9 pipeline
 * of a few seconds, a JVM batch job that exits 7, a psql client waiting for a query that
 * computes for 5 s. And it still tells that last one from a psql client whose update waits on
 * a row lock: that one is hung, and killed. `--timeout` is when to look, not a deadline.
 * Programs from test/helpers/real-programs.js; a missing runtime skips with a line. Uses the
 * built CLI (npm run build).
 */
import t, { type Test } from 'tap';
import * as P from './helpers/real-programs';
import { early, needs } from './helpers/verdict-cases';

const scope = new P.Scope('verdicts-exec');
t.teardown(() => scope.close());


const EXEC = { timeout: '2s', kill: true, timeoutMs: 30000 };
const said = (findings: P.Finding[] | undefined): string => (findings?.[0] ? `: ${findings[0].message}` : '');

const coreutils = needs('coreutils');
const java = needs('java');
const postgres = needs('postgres');

const gzip = early(coreutils, async () => {
  const input = await P.gzipInput(scope, 4);
  return { input, run: await P.execRun(scope, ['sh', '-c', 'gzip -9 < "$0" | wc -c', input.file], EXEC) };
});
const batch = early(java, async () => P.execRun(scope, await P.javaCommand('batch', 4, 7), EXEC));
const psql = early(postgres, async () => {
  const pg = await P.startPostgresLockHolder(scope);
  const sql = "do $$ declare t timestamptz := clock_timestamp(); begin while clock_timestamp() < t + interval '5 s' loop end loop; end $$";
  const [query, lock] = await Promise.all([P.execRun(scope, pg.psqlArgs(`--command=${sql}`), EXEC), P.execRun(scope, pg.contender, { ...EXEC, env: pg.contenderEnv })]);
  return { query, lock };
});

/** Healthy at every look, never killed, and the command's own exit status. */
function leftToFinish(t: Test, run: Awaited<ReturnType<typeof P.execRun>>, status: number, minMs: number): void {
  t.notOk(run.result.timedOut, 'exec returned');
  for (const line of run.lines) t.equal(line.report.verdict, 'healthy', `examined: ${line.report.verdict}${said(line.report.findings)}`);
  const killed = run.lines.some((line) => line.outcome === 'killed');
  t.notOk(killed, 'never killed');
  if (!killed) t.ok(run.ms >= minMs, `it ran its course (${(run.ms / 1000).toFixed(1)} s)`);
  t.equal(run.result.code, status, `its own exit status (${status}) passed through`);
}

t.test("sh -c 'gzip -9 < file | wc -c' (about 4 s of work, examined after 2 s)", { skip: coreutils }, async (t) => {
  const { input, run } = (await gzip)!;
  leftToFinish(t, run, 0, input.expectedSeconds * 500);
  t.match(run.result.stdout, /^\d+\s*$/, 'and its output');
});

t.test('a JVM batch job computing 4 s that exits 7', { skip: java }, async (t) => {
  leftToFinish(t, (await batch)!, 7, 4000);
});

t.test('psql waiting for a 5 s query is left to finish; psql waiting on a row lock is hung', { skip: postgres }, async (t) => {
  const { query, lock } = (await psql)!;
  leftToFinish(t, query, 0, 5000);
  const last = lock.lines.at(-1);
  t.equal(last?.report.verdict, 'hung', `the lock wait: hung (said: ${last?.report.verdict ?? 'nothing'}${said(last?.report.findings)})`);
  t.equal(last?.outcome, 'killed', 'and killed');
  t.equal(lock.result.code, 2, 'exit 2');
  t.not(last?.report.findings[0]?.message, query.lines.at(-1)?.report.findings[0]?.message, 'the two do not read alike');
});
