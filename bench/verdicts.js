#!/usr/bin/env node
/*
 * The verdict matrix: real programs (Debian's redis, PostgreSQL, nginx, OpenJDK, Go, CPython,
 * Node, a libfuse3 daemon, coreutils, and small programs of ours in those runtimes) put in real
 * states (idle, busy, slow but progressing, hung), and judged through the three ways users meet
 * a verdict:
 *
 *   watch   iokit-snap watch --pid … --json for 12 s (a trigger, where the state comes later,
 *           after two samples): the worst verdict of its events for a healthy program, the last
 *           one for a hung one (with the exit status that goes with it)
 *   diff    iokit-snap snapshot at 0.6 s after the program is ready, the trigger, a second
 *           snapshot (with --stacks) at 6 s, then iokit-snap diff --json
 *   exec    iokit-snap exec --timeout 5s --kill --json -- COMMAND: a long healthy job must be
 *           left to finish with its exit status passed through; a hung one reported hung and
 *           killed
 *
 * It prints the confusion matrix per command (rows: expected healthy / hung; columns: what it
 * said), then one line per case: a case is RIGHT only when a healthy program reads healthy with
 * no warning, and a hung one reads hung. Exit status 1 when any case is wrong (or could not be
 * run). The programs and their states live in test/helpers/real-programs.js (sources in
 * bench/verdicts/), shared with the test/verdicts-*.test.ts tests.
 *
 * Run as root (ptrace for stacks, kernel stacks, FUSE, postgres as its own user):
 *   npm run build && node bench/verdicts.js [--jobs N] [--busy-jobs N] [--only REGEX]
 *     [--commands watch,diff,exec] [--no-install] [--snapshot-stacks second|both|none]
 * A runtime that is missing is installed with apt (flock /tmp/apt.lock apt-get install -y …)
 * when root, else its cases are skipped with a line saying why. Every process and temp
 * directory it starts is ended and removed, on Ctrl-C too. Compiled programs and an initdb'd
 * cluster are cached under $TMPDIR/iokit-snap-real-programs-<uid>/ (keyed by their sources).
 *
 * Cases run concurrently (--jobs, default 6) where they do not disturb each other; the busy
 * ones (load generators, CPU-bound jobs) run afterwards, --busy-jobs at a time (default 1: on a
 * small machine two would starve each other, and starving is a finding of its own).
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const P = require('../test/helpers/real-programs');

// ------------------------------------------------------------------------------------------
// Options and settings

function flag(name) {
  return process.argv.includes(`--${name}`);
}
function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const JOBS = Math.max(1, Number(option('jobs', 6)));
const BUSY_JOBS = Math.max(1, Number(option('busy-jobs', 1)));
const ONLY = option('only', null) === null ? null : new RegExp(option('only', ''), 'i');
const COMMANDS = option('commands', 'watch,diff,exec').split(',');
const INSTALL = !flag('no-install');
const SNAPSHOT_STACKS = option('snapshot-stacks', 'second');

const WATCH = { interval: '500ms', stall: '5s', forMs: 12000, startAtMs: 600, triggerAfterSamples: 2 };
const DIFF = { firstAtMs: 600, secondAtMs: 6000, stall: '1s' };
const EXEC = { timeout: '5s', stall: '1s', giveUpMs: { healthy: 60000, hung: 40000 } };

const SETTINGS = [
  `watch: --interval ${WATCH.interval} --stall ${WATCH.stall} --for ${WATCH.forMs / 1000}s --json --no-accelerators, started ${WATCH.startAtMs} ms after the program is ready; a trigger after ${WATCH.triggerAfterSamples} samples`,
  `diff: snapshot --no-accelerators${SNAPSHOT_STACKS === 'both' ? ' --stacks' : ''} at ${DIFF.firstAtMs / 1000} s, the trigger, snapshot --no-accelerators${SNAPSHOT_STACKS !== 'none' ? ' --stacks' : ''} at ${DIFF.secondAtMs / 1000} s, diff --json --stall ${DIFF.stall}`,
  `exec: --timeout ${EXEC.timeout} --stall ${EXEC.stall} --kill --json --no-accelerators; given up (killed, its last verdict kept) after ${EXEC.giveUpMs.healthy / 1000} s for a healthy job, ${EXEC.giveUpMs.hung / 1000} s for a hung one`,
];

// ------------------------------------------------------------------------------------------
// The cases. Each: name, group (idle | busy | long | hung), expect (healthy | hung), needs
// (runtimes), start (for watch and diff: the program in its state, { pids, trigger? }) and/or
// exec (the command exec runs: { argv, status, env? }); busy: run in the busy phase.

const gzip = { input: null };

const CASES = [
  // Idle servers and runtimes.
  { name: 'redis-server, idle', group: 'idle', needs: ['redis'], start: (s) => P.startRedis(s) },
  { name: 'postgres, idle (postmaster + its 5 background processes)', group: 'idle', needs: ['postgres'], start: (s) => P.startPostgres(s) },
  { name: 'nginx, idle (master + 2 workers)', group: 'idle', needs: ['nginx'], start: (s) => P.startNginx(s) },
  { name: 'JVM: com.sun.net.httpserver + idle thread pools', group: 'idle', needs: ['java'], start: (s) => P.startJavaIdle(s) },
  ...[1, 2, 3].map((n) => ({ name: `Go net/http server, idle (fresh instance ${n})`, group: 'idle', needs: ['go'], start: (s) => P.startGoIdle(s) })),
  { name: 'python3 -m http.server, idle', group: 'idle', needs: ['python'], start: (s) => P.startPythonHttpServer(s) },
  { name: 'Node http server, idle', group: 'idle', needs: ['node'], start: (s) => P.startNodeServer(s, 'idle') },
  { name: 'FUSE daemon (libfuse3, multi-threaded), idle', group: 'idle', needs: ['c', 'fuse'], start: (s) => P.startFuse(s, 'idle') },
  { name: 'queue consumer: redis-cli BLPOP (timeout 0)', group: 'idle', needs: ['redis'], start: (s) => P.startRedisConsumer(s) },
  { name: 'queue consumer: CPython long-poll recv on a silent broker', group: 'idle', needs: ['python'], start: (s) => P.startPythonConsumer(s) },
  { name: 'C worker pool, idle (condvar waits, main joins)', group: 'idle', needs: ['c'], start: (s) => P.startCPool(s) },
  { name: 'CPython ThreadPoolExecutor, idle (main waits on an Event)', group: 'idle', needs: ['python'], start: (s) => P.startPythonPool(s) },
  { name: 'sleep infinity', group: 'idle', needs: ['coreutils'], start: (s) => P.startSleep(s) },
  { name: 'tail -f on a quiet file', group: 'idle', needs: ['coreutils'], start: (s) => P.startTailFollow(s) },

  // Busy.
  { name: 'redis-server under redis-benchmark', group: 'busy', busy: true, needs: ['redis'], start: (s) => P.startRedisBusy(s) },
  { name: 'postgres under pgbench (2 clients; all its processes)', group: 'busy', busy: true, needs: ['postgres'], start: (s) => P.startPostgresBusy(s) },
  { name: 'nginx under load (wrk, or a Node loop)', group: 'busy', busy: true, needs: ['nginx'], start: (s) => P.startNginxBusy(s) },
  { name: 'Go: main M parked while goroutines compute', group: 'busy', busy: true, needs: ['go'], start: (s) => P.startGoBusy(s) },
  { name: 'JVM computing on two threads', group: 'busy', busy: true, needs: ['java'], start: (s) => P.startJavaBatch(s) },
  {
    name: 'CPU-bound: sha256sum /dev/zero',
    group: 'busy',
    busy: true,
    needs: ['coreutils'],
    start: async (s) => {
      const proc = s.spawn('sha256sum', ['/dev/zero']);
      await P.waitFor(() => P.threadsOf(proc.pid).length > 0, 'sha256sum running');
      return { pid: proc.pid, pids: [proc.pid] };
    },
  },

  // Long healthy jobs under exec.
  {
    name: "sh -c 'gzip -9 < bigfile | wc -c' (~8 s)",
    group: 'long',
    busy: true,
    needs: ['coreutils'],
    exec: async () => ({ argv: ['sh', '-c', 'gzip -9 < "$0" | wc -c', gzip.input.file], status: 0, minMs: gzip.input.expectedSeconds * 500, stdout: /^\d+\s*$/ }),
  },
  { name: 'JVM batch job (8 s on two threads, exits 7)', group: 'long', busy: true, needs: ['java'], exec: async () => ({ argv: await P.javaCommand('batch', 8, 7), status: 7, minMs: 8000, stdout: /^ready pid=/ }) },
  {
    name: 'psql waiting for a query that computes for 10 s',
    group: 'long',
    busy: true,
    needs: ['postgres'],
    exec: async (s) => {
      const pg = await P.startPostgres(s);
      const sql = "do $$ declare t timestamptz := clock_timestamp(); begin while clock_timestamp() < t + interval '10 s' loop end loop; end $$";
      return { argv: pg.psqlArgs(`--command=${sql}`), status: 0, minMs: 10000 };
    },
  },
  { name: 'sleep 8', group: 'long', needs: ['coreutils'], exec: async () => ({ argv: ['sleep', '8'], status: 0, minMs: 8000 }) },

  // Hung.
  {
    name: 'C: two threads deadlocked on two mutexes (test/targets/target.c)',
    group: 'hung',
    needs: ['c'],
    start: (s) => P.startTarget(s, 'deadlock'),
    exec: async () => ({ argv: [await P.targetBinary(), 'deadlock'] }),
  },
  {
    name: 'CPython: workers run 3 s, then take two locks in opposite order',
    group: 'hung',
    needs: ['python'],
    start: (s) => P.startPython(s, 'lock-order'),
    exec: async () => ({ argv: P.pythonCommand('lock-order') }),
  },
  {
    name: 'Java: monitor deadlock (GC and periodic threads still run)',
    group: 'hung',
    needs: ['java'],
    start: (s) => P.startJavaDeadlock(s),
    exec: async () => ({ argv: await P.javaCommand('deadlock') }),
  },
  {
    name: 'Go: deadlock on two sync.Mutex, a ticker goroutine alive',
    group: 'hung',
    needs: ['go'],
    start: (s) => P.startGoDeadlock(s),
    exec: async () => ({ argv: await P.goCommand('deadlock') }),
  },
  {
    name: "postgres backend waiting on a row lock (another session's open transaction)",
    group: 'hung',
    needs: ['postgres'],
    start: async (s) => {
      const wait = await P.startPostgresLockWait(s);
      return { pids: [wait.backend] };
    },
  },
  {
    name: 'psql client whose update waits on a row lock',
    group: 'hung',
    needs: ['postgres'],
    start: async (s) => {
      const wait = await P.startPostgresLockWait(s);
      return { pids: [wait.client] };
    },
    exec: async (s) => {
      const pg = await P.startPostgresLockHolder(s);
      return { argv: pg.contender, env: pg.contenderEnv };
    },
  },
  {
    name: 'redis-server frozen in DEBUG SLEEP 40 (event loop left for a sleep)',
    group: 'hung',
    needs: ['redis'],
    start: async (s) => {
      const redis = await P.startRedis(s);
      return { ...redis, trigger: () => P.freezeRedis(s, redis) };
    },
  },
  {
    name: 'Node http server whose handler blocks its thread 40 s',
    group: 'hung',
    needs: ['node'],
    start: async (s) => {
      const server = await P.startNodeServer(s, 'frozen');
      return { ...server, trigger: () => P.freezeHttpServer(s, server, ['futex']) };
    },
  },
  {
    name: 'CPython http.server whose handler sleeps 40 s',
    group: 'hung',
    needs: ['python'],
    start: async (s) => {
      const server = await P.startPythonFrozenServer(s);
      return { ...server, trigger: () => P.freezeHttpServer(s, server, ['clock_nanosleep', 'nanosleep', 'poll', 'ppoll']) };
    },
  },
  {
    name: 'stopped process (SIGSTOP; exec: sh stops itself)',
    group: 'hung',
    needs: ['redis', 'coreutils'],
    start: async (s) => {
      const redis = await P.startRedis(s);
      return { ...redis, trigger: () => P.stopProcess(redis.pid) };
    },
    exec: async () => ({ argv: ['sh', '-c', 'kill -STOP $$'] }),
  },
  {
    name: 'vfork parent in D while its child sleeps (target.c)',
    group: 'hung',
    needs: ['c'],
    start: (s) => P.startTarget(s, 'vfork-parent'),
    exec: async () => ({ argv: [await P.targetBinary(), 'vfork-parent'] }),
  },
  {
    name: 'cat of a file on a FUSE mount whose daemon never answers (D)',
    group: 'hung',
    needs: ['c', 'fuse'],
    start: (s) => P.startFuseStuckReader(s),
    exec: async (s) => ({ argv: ['cat', (await P.startFuse(s, 'silent')).file] }),
  },
  { name: 'cat of a fifo nobody opens for writing', group: 'hung', needs: ['coreutils'], exec: async (s) => ({ argv: ['cat', P.fifoNobodyWrites(s)] }) },
  {
    name: 'pipe deadlock: CPython parent waits for a child blocked writing its full stdout pipe',
    group: 'hung',
    needs: ['python'],
    start: (s) => P.startPipeDeadlock(s),
    exec: async () => ({ argv: P.pythonCommand('pipe-deadlock') }),
  },
].map((c) => ({ ...c, expect: c.group === 'hung' ? 'hung' : 'healthy' }));

// ------------------------------------------------------------------------------------------
// Judging

const loud = (findings) => findings.filter((f) => f.severity !== 'info');
const oneLine = (text, max = 150) => {
  const line = String(text ?? '').replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

/**
 * { actual, right, message, notes[] } for a watch run: a healthy program is judged by the worst
 * it said at any time (a false alarm is wrong however brief), a hung one by what it said last.
 */
function judgeWatch(expect, { result, events }) {
  const w = P.summarizeWatch(events);
  const notes = [];
  if (w.exits.length > 0) return { error: `pid ${w.exits.map((e) => e.pid).join(', ')} exited while watched` };
  if (w.samples.length === 0) return { error: `no sample events; exit ${result.code}; stderr: ${oneLine(result.stderr, 200)}` };
  if (w.errors.length > 0) notes.push(`error event: ${oneLine(w.errors[0].error?.message, 80)}`);
  if (result.timedOut) notes.push('watch did not stop by itself');
  if (w.discarded > 0) notes.push(`${w.discarded} window(s) discarded`);
  const actual = expect === 'healthy' ? w.worst : w.last;
  let message;
  if (actual === 'healthy') message = w.loud[0]?.message;
  else if (expect === 'hung') message = (w.hangs[w.hangs.length - 1]?.report.findings ?? w.samples[w.samples.length - 1].findings)[0]?.message;
  else message = (w.hangs[0]?.report.findings ?? w.samples.find((e) => e.verdict === actual)?.findings ?? [])[0]?.message;
  if (expect === 'healthy' && w.hangs.length > 0) notes.push(`${w.hangs.length} hang event(s)`);
  if (expect === 'hung' && w.worst !== w.last) notes.push(`said ${w.worst} earlier`);
  if (result.code !== (expect === 'healthy' ? 0 : 2)) notes.push(`exit ${result.code ?? result.signal}`);
  if (expect === 'healthy' && actual === 'healthy' && w.loud.length > 0) notes.push(`a ${w.loud[0].severity} finding`);
  const right = expect === 'healthy' ? actual === 'healthy' && w.loud.length === 0 && result.code === 0 : actual === 'hung' && result.code === 2;
  return { actual, right, message, notes };
}

function judgeDiff(expect, { result, report }) {
  if (report === null) return { error: `diff printed no report; exit ${result.code}; stderr: ${oneLine(result.stderr, 200)}` };
  const notes = [];
  const actual = report.verdict;
  const findings = loud(report.findings);
  if (result.code !== (actual === 'healthy' ? 0 : 2)) notes.push(`exit ${result.code}`);
  if (actual === 'healthy' && findings.length > 0) notes.push(`a ${findings[0].severity} finding`);
  const right = expect === 'healthy' ? actual === 'healthy' && findings.length === 0 && result.code === 0 : actual === 'hung' && result.code === 2;
  return { actual, right, message: (findings[0] ?? report.findings[0])?.message, notes };
}

/**
 * A healthy job: healthy at every examination, never killed, its own exit status passed
 * through. A hung one: hung at the last examination, killed (--kill), exit 2.
 */
function judgeExec(expect, { result, lines }, status) {
  const notes = [];
  const last = lines[lines.length - 1];
  const actual = expect === 'healthy' ? P.worstVerdict(lines.map((l) => l.report.verdict)) : (last?.report.verdict ?? 'healthy');
  const allLoud = lines.flatMap((l) => loud(l.report.findings));
  if (result.timedOut) notes.push(`still running after ${EXEC.giveUpMs[expect] / 1000} s${last ? ` (${last.outcome})` : ', never reported'}`);
  else if (lines.length === 0) notes.push('finished before it was examined');
  if (last !== undefined && !result.timedOut) notes.push(last.outcome);
  let right;
  if (expect === 'healthy') {
    right = actual === 'healthy' && allLoud.length === 0 && !result.timedOut && result.code === status && !lines.some((l) => l.outcome === 'killed');
    if (!result.timedOut) notes.push(result.code === status ? `exit ${status} passed through` : `exit ${result.code ?? result.signal}, the job's own was ${status}`);
  } else {
    right = actual === 'hung' && result.code === 2 && last?.outcome === 'killed';
    if (!result.timedOut && result.code !== 2) notes.push(`exit ${result.code ?? result.signal}`);
  }
  const message = actual === 'healthy' ? allLoud[0]?.message : (last?.report.findings[0]?.message ?? allLoud[0]?.message);
  return { actual, right, message, notes };
}

// ------------------------------------------------------------------------------------------
// Running one case through one command

const since = (t0) => Date.now() - t0;

function gone(pids) {
  const ended = pids.filter((pid) => !P.alive(pid));
  return ended.length > 0 ? { error: `pid ${ended.join(', ')} ended while judged` } : null;
}

async function runWatch(c, scope) {
  const started = await c.start(scope);
  await P.sleep(WATCH.startAtMs);
  const run = await P.watchRun(scope, started.pids, { interval: WATCH.interval, stall: WATCH.stall, forMs: WATCH.forMs, trigger: started.trigger, triggerAfterSamples: WATCH.triggerAfterSamples });
  if (run.triggerError) return { error: `trigger: ${run.triggerError.message}` };
  return gone(started.pids) ?? judgeWatch(c.expect, run);
}

async function runDiff(c, scope) {
  const started = await c.start(scope);
  const run = await P.diffRun(scope, started.pids, { readyAt: Date.now(), firstAtMs: DIFF.firstAtMs, secondAtMs: DIFF.secondAtMs, stall: DIFF.stall, trigger: started.trigger, stacks: SNAPSHOT_STACKS });
  const judged = gone(started.pids) ?? judgeDiff(c.expect, run);
  // Taken late (the CLI starts slowly on a loaded machine): say when.
  if (judged.notes !== undefined && (run.at[0] > DIFF.firstAtMs + 1000 || run.at[1] > DIFF.secondAtMs + 1000)) {
    judged.notes.push(`snapshots at ${(run.at[0] / 1000).toFixed(1)} s and ${(run.at[1] / 1000).toFixed(1)} s`);
  }
  return judged;
}

async function runExec(c, scope) {
  const job = await c.exec(scope);
  const run = await P.execRun(scope, job.argv, { timeout: EXEC.timeout, stall: EXEC.stall, kill: true, env: job.env, timeoutMs: EXEC.giveUpMs[c.expect] });
  // A healthy job that ended too soon, or printed the wrong thing, did not do its work: the harness failed, not the verdict.
  if (job.minMs !== undefined && !run.result.timedOut && run.ms < job.minMs && !run.lines.some((l) => l.outcome === 'killed')) {
    return { error: `the job ended after ${(run.ms / 1000).toFixed(1)} s, before its ${(job.minMs / 1000).toFixed(1)} s of work (exit ${run.result.code}): ${oneLine(run.result.stderr, 160)}` };
  }
  if (job.stdout !== undefined && run.result.code === job.status && !job.stdout.test(run.result.stdout)) {
    return { error: `the job printed ${JSON.stringify(oneLine(run.result.stdout, 80))}, not ${job.stdout}` };
  }
  return judgeExec(c.expect, run, job.status);
}

const RUNNERS = { watch: runWatch, diff: runDiff, exec: runExec };

// ------------------------------------------------------------------------------------------
// Main

async function pool(tasks, jobs) {
  const queue = [...tasks];
  await Promise.all(
    Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      while (queue.length > 0) await queue.shift()();
    }),
  );
}

function matrix(command, results) {
  const rows = ['healthy', 'hung'];
  const cols = ['healthy', 'suspect', 'hung'];
  const lines = [];
  const judged = results.filter((r) => r.error === undefined);
  const right = judged.filter((r) => r.right).length;
  const errors = results.length - judged.length;
  lines.push(`${command}: ${right} of ${results.length} right${errors > 0 ? `, ${errors} could not be run` : ''}`);
  lines.push(`                    actual:  healthy  suspect     hung`);
  for (const row of rows) {
    const counts = cols.map((col) => judged.filter((r) => r.case.expect === row && r.actual === col).length);
    const total = results.filter((r) => r.case.expect === row).length;
    lines.push(`  expected ${row.padEnd(8)} (${String(total).padStart(2)})  ${counts.map((n) => String(n).padStart(7)).join('  ')}`);
  }
  return lines.join('\n');
}

async function main() {
  if (process.platform !== 'linux') {
    console.log('verdicts: Linux only (the programs and states are Linux ones); skipped');
    return;
  }
  if (!fs.existsSync(P.CLI) || !fs.existsSync(path.join(__dirname, '..', 'lib', 'index.js'))) {
    console.error('verdicts: build first: npm run build');
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  process.once('SIGINT', () => (stopping = true));
  process.once('SIGTERM', () => (stopping = true));
  P.installCleanupHandlers((line) => console.error(line));
  const t0 = Date.now();
  const log = (line) => console.error(`[${(since(t0) / 1000).toFixed(0).padStart(3)} s] ${line}`);
  console.log(`iokit-snap verdict matrix: real programs in real states (${os.cpus().length} CPUs, Linux ${os.release()}, node ${process.version}${P.isRoot ? '' : ', NOT root: kernel stacks, ptrace and FUSE may be refused'})`);
  for (const line of SETTINGS) console.log(`  ${line}`);

  // Runtimes: found, installed, or skipped with a line.
  const wanted = CASES.filter((c) => ONLY === null || ONLY.test(c.name));
  const runtimes = [...new Set(wanted.flatMap((c) => c.needs).concat(wanted.some((c) => /nginx under/.test(c.name)) ? ['wrk'] : []))];
  const skipped = new Map();
  for (const name of runtimes) {
    const why = P.missing(name, { install: INSTALL, log });
    if (why !== null && name !== 'wrk') skipped.set(name, why);
    if (why !== null) console.log(`  skipped: ${name}: ${why}${name === 'wrk' ? ' (nginx is loaded by a Node keep-alive loop instead)' : ''}`);
  }
  // Builds and shared inputs, before anything is timed; one that fails skips its runtime.
  const need = new Set(wanted.filter((c) => c.needs.every((n) => !skipped.has(n))).flatMap((c) => c.needs));
  const shared = new P.Scope('shared inputs');
  const prepare = [
    ['c', 'the test target and the C pool', async () => (await P.targetBinary(), await P.poolBinary())],
    ['fuse', 'the FUSE daemon', () => P.fuseBinary()],
    ['go', 'the Go program', () => P.goBinary()],
    ['java', 'the Java program', () => P.javaClasses()],
    [
      'postgres',
      'a PostgreSQL cluster',
      async () => {
        const s = new P.Scope('postgres warm-up');
        try {
          await P.startPostgres(s);
        } finally {
          await s.close();
        }
      },
    ],
    [
      'coreutils',
      'the gzip input',
      async () => {
        if (!COMMANDS.includes('exec') || !wanted.some((c) => c.name.startsWith("sh -c 'gzip"))) return;
        gzip.input = await P.gzipInput(shared, 8);
        log(`gzip input: ${(gzip.input.bytes / 1e6).toFixed(0)} MB, ~${gzip.input.expectedSeconds.toFixed(1)} s of gzip -9 CPU time, measured on a sample`);
      },
    ],
  ];
  for (const [runtime, what, step] of prepare) {
    if (!need.has(runtime)) continue;
    log(`preparing ${what}…`);
    try {
      await step();
    } catch (error) {
      skipped.set(runtime, `preparing ${what} failed: ${oneLine(error.message, 200)}`);
      console.log(`  skipped: ${runtime}: ${skipped.get(runtime)}`);
    }
  }
  const cases = wanted.filter((c) => c.needs.every((n) => !skipped.has(n)));
  for (const c of wanted.filter((c) => !cases.includes(c))) console.log(`  skipped: ${c.name} (needs ${c.needs.filter((n) => skipped.has(n)).join(', ')})`);

  // The runs: each case through each command that applies.
  const runs = [];
  for (const c of cases) {
    for (const command of COMMANDS) {
      if (command === 'exec' ? c.exec !== undefined : c.start !== undefined) runs.push({ case: c, command });
    }
  }
  const results = [];
  let done = 0;
  const task = (r) => async () => {
    if (stopping) return;
    const scope = new P.Scope(`${r.command} ${r.case.name}`);
    const started = Date.now();
    let outcome;
    try {
      outcome = await RUNNERS[r.command](r.case, scope);
    } catch (error) {
      outcome = { error: error.message };
    }
    try {
      await scope.close();
    } catch (error) {
      outcome.notes = [...(outcome.notes ?? []), `cleanup: ${error.message}`];
    }
    if (stopping) return;
    const result = { ...r, ...outcome, ms: Date.now() - started };
    results.push(result);
    done++;
    log(`${String(done).padStart(2)}/${runs.length} ${r.command.padEnd(5)} ${r.case.name}: ${result.error !== undefined ? `ERROR ${oneLine(result.error, 120)}` : `${result.actual} ${result.right ? 'RIGHT' : 'WRONG'}`} (${(result.ms / 1000).toFixed(1)} s)`);
  };
  const quiet = runs.filter((r) => !r.case.busy);
  const busy = runs.filter((r) => r.case.busy);
  log(`${quiet.length} runs of idle and hung programs, ${JOBS} at a time`);
  await pool(quiet.map(task), JOBS);
  log(`${busy.length} runs of busy programs and long jobs, ${BUSY_JOBS} at a time`);
  await pool(busy.map(task), BUSY_JOBS);
  await shared.close();

  // The report.
  const order = (r) => runs.indexOf(runs.find((x) => x.case === r.case && x.command === r.command));
  results.sort((a, b) => order(a) - order(b));
  console.log('');
  for (const command of COMMANDS) {
    const mine = results.filter((r) => r.command === command);
    if (mine.length > 0) console.log(`${matrix(command, mine)}\n`);
  }
  for (const command of COMMANDS) {
    for (const r of results.filter((x) => x.command === command)) {
      const mark = r.error !== undefined ? 'ERROR' : r.right ? 'RIGHT' : 'WRONG';
      const said = r.error !== undefined ? oneLine(r.error) : `${r.actual}${r.message ? `: ${oneLine(r.message)}` : ''}`;
      const notes = r.notes?.length ? ` [${r.notes.join('; ')}]` : '';
      console.log(`${mark}  ${command.padEnd(5)} ${r.case.name} — expected ${r.case.expect}, read ${said}${notes}`);
    }
  }
  const right = results.filter((r) => r.right).length;
  const errors = results.filter((r) => r.error !== undefined).length;
  console.log(`\n${right} of ${results.length} right, ${results.length - right - errors} wrong, ${errors} could not be run; ${skipped.size} runtime(s) skipped; ${(since(t0) / 1000).toFixed(0)} s`);
  process.exitCode = right === results.length ? 0 : 1;
}

main().catch(async (error) => {
  console.error(`verdicts: ${error.stack ?? error}`);
  await P.closeAllScopes();
  process.exitCode = 1;
});
