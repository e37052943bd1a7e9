#!/usr/bin/env node
/*
 * Whole-host mode (watchHost(), `watch --all`): what the scan costs and how soon it reports a
 * hang, on a synthetic host of real processes, against the naive peer in the same run.
 *
 *   synthetic (default): 100 processes × 100 threads (test/targets/target.c `threads 99`, every
 *     thread asleep), scanned at the default interval, stall and pass (500 ms, 5 s, 1.25 s) by a
 *     child process running watchHost({ include: [{ name: '^(target|python3)$' }] }). Once every
 *     idle process is settled, its CPU (utime + stime from /proc/PID/stat) over --measure
 *     seconds, as % of one core and per 10,000 threads scanned. Then hangs are planted, each
 *     timed from when it began to its hang event: a mutex deadlock (new process), a vfork parent
 *     in D (new process), one of the settled 100 stopped with SIGSTOP, and a Python HTTP server
 *     settled idle whose one thread is then frozen in a handler (a frozen event loop). Then the
 *     peer: watch({ pids: the 100 }) in a child, every thread of every process each interval
 *     (what `watch --pid` does), its CPU over the same time, and the ratio.
 *     Budgets: host scan ≤ 1 % of a core per 10,000 threads; every planted hang reported
 *     within stall + 2 intervals. Exit status 1 when one is missed.
 *
 *   --daemons SECONDS: real daemons (Debian's redis-server, PostgreSQL, nginx, an idle JVM, a
 *     Go HTTP server, python3 -m http.server) idle for SECONDS, then the same under load
 *     (redis-benchmark, pgbench, wrk, a busy Go program) for SECONDS, under a scan of the whole
 *     host: which of their processes were ever judged suspect or hung (expected: none).
 *
 *   --real-host SECONDS: this machine as it is (every process, no include), for that long:
 *     every process ever judged suspect or hung (with its labels and findings), the scan's CPU,
 *     and the passes' sizes. For the false-alarm count of an idle host.
 *
 * Run as root, after `npm run build`: node bench/host.js [--measure 30] [--real-host 600]
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const P = require('../test/helpers/real-programs');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const PROCESSES = Number(option('processes', 100));
const THREADS = Number(option('threads', 100));
const MEASURE_S = Number(option('measure', 30));
const REAL_HOST_S = option('real-host', null);
const INTERVAL_MS = 500;
const STALL_MS = 5000;
const LIB = path.join(__dirname, '..', 'lib', 'index.js');
const TICKS = 100; // USER_HZ: /proc/PID/stat counts CPU in 1/100 s

/** utime + stime of a process, seconds. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** A child node running `code` (with `lib` bound to the package), its stdout read as NDJSON events. */
function child(code, onEvent) {
  const proc = spawn(process.execPath, ['-e', `const lib = require(${JSON.stringify(LIB)});\n${code}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buffer = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (line.startsWith('{')) onEvent(JSON.parse(line));
    }
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  return { proc, stop: async () => (proc.kill('SIGTERM'), await exited) };
}

/** The host scan in a child: pass and hang events, and the non-healthy samples, as NDJSON. */
function hostScan(include, onEvent) {
  return child(
    `const w = lib.watchHost(${include === null ? '{}' : `{ include: [{ name: ${JSON.stringify(include)} }] }`});
     const out = (e) => process.stdout.write(JSON.stringify(e) + '\\n');
     w.on('pass', (e) => out({ type: 'pass', processes: e.processes, threads: e.threads, watched: e.watched, watchedPids: w.watchedPids, durationMs: e.durationMs, verdicts: e.verdicts }));
     w.on('hang', (e) => out({ type: 'hang', pid: e.pid, at: Date.now(), labels: e.labels, findings: e.report.findings.map((f) => f.severity + ' ' + f.kind + ': ' + f.subject) }));
     w.on('sample', (e) => { if (e.verdict !== 'healthy' && e.discarded === undefined) out({ type: 'trouble', pid: e.pid, verdict: e.verdict, labels: e.labels, findings: e.findings.map((f) => f.severity + ' ' + f.kind + ': ' + f.message) }); });
     w.on('error', (e) => out({ type: 'error', pid: e.pid, code: e.error.code, message: e.error.message }));
     process.on('SIGTERM', () => w.close());`,
    onEvent,
  );
}

async function measure(pid, seconds) {
  const before = cpuSeconds(pid);
  const start = Date.now();
  await P.sleep(seconds * 1000);
  return (cpuSeconds(pid) - before) / ((Date.now() - start) / 1000);
}

const pct = (share) => `${(share * 100).toFixed(2)} %`;

async function synthetic() {
  const scope = new P.Scope('bench-host');
  const failures = [];
  try {
    process.stdout.write(`starting ${PROCESSES} processes × ${THREADS} threads… `);
    const hosts = [];
    for (let i = 0; i < PROCESSES; i++) hosts.push(await P.startTarget(scope, 'threads', String(THREADS - 1)));
    const python = await P.startPythonFrozenServer(scope);
    console.log('ready');

    // The host scan, until every idle process is settled (watched in full: none).
    const passes = [];
    const hangs = new Map();
    const troubles = [];
    const scan = hostScan('^(target|python3)$', (e) => {
      if (e.type === 'pass') passes.push(e);
      else if (e.type === 'hang' && !hangs.has(e.pid)) hangs.set(e.pid, e);
      else if (e.type === 'trouble') troubles.push(e);
      else if (e.type === 'error') console.log(`  scan error: ${e.code}: ${e.message}`);
    });
    const settledAt = Date.now();
    // (Other processes named target on this machine, other tests' hung ones, may stay watched: only ours count.)
    const ours = new Set([...hosts.map((h) => h.pid), python.pid]);
    await P.waitFor(() => passes.length > 2 && !passes[passes.length - 1].watchedPids.some((pid) => ours.has(pid)), 'every idle process settled', 180000, 200);
    console.log(`settled: ${passes.length} passes, ${((Date.now() - settledAt) / 1000).toFixed(1)} s after the scan started (the first full watch of every process)`);
    const from = passes.length;
    const share = await measure(scan.proc.pid, MEASURE_S);
    const steady = passes.slice(from);
    const threads = steady.reduce((n, p) => n + p.threads, 0) / Math.max(1, steady.length);
    const passMs = steady.reduce((n, p) => n + p.durationMs, 0) / Math.max(1, steady.length);
    const per10k = share / (threads / 10000);
    console.log(
      `host scan, steady (${steady.map((p) => p.watched).reduce((a, b) => Math.max(a, b), 0)} processes at most watched in full, none of ours): ${pct(share)} of a core over ${MEASURE_S} s; ${threads.toFixed(0)} threads a pass, ${steady.length} passes, ${passMs.toFixed(1)} ms a pass (native); ${pct(per10k)} of a core per 10,000 threads (budget 1 %)`,
    );
    if (per10k > 0.01) failures.push(`host scan ${pct(per10k)} per 10,000 threads > 1 %`);

    // Plant the hangs; each is timed from when it began.
    const planted = [];
    let began = Date.now();
    const deadlock = await P.startTarget(scope, 'deadlock');
    planted.push({ kind: 'mutex deadlock (new process)', pid: deadlock.pid, began });
    began = Date.now();
    const vfork = await P.startTarget(scope, 'vfork-parent');
    planted.push({ kind: 'vfork parent in D (new process)', pid: vfork.pid, began });
    const stopped = hosts[PROCESSES >> 1];
    began = Date.now();
    process.kill(stopped.pid, 'SIGSTOP');
    scope.defer(async () => process.kill(stopped.pid, 'SIGCONT'));
    planted.push({ kind: 'a settled process stopped (SIGSTOP)', pid: stopped.pid, began });
    began = Date.now();
    await P.freezeHttpServer(scope, python);
    planted.push({ kind: 'a settled event loop frozen (Python server in a handler)', pid: python.pid, began });
    const budgetMs = STALL_MS + 2 * INTERVAL_MS;
    await P.waitFor(() => planted.every((p) => hangs.has(p.pid)), 'a hang event for each planted hang', budgetMs + 20000, 100).catch(() => undefined);
    for (const p of planted) {
      const hang = hangs.get(p.pid);
      const latency = hang === undefined ? null : hang.at - p.began;
      console.log(`  ${p.kind}: ${latency === null ? 'NOT REPORTED' : `reported after ${(latency / 1000).toFixed(2)} s`} (budget ${(budgetMs / 1000).toFixed(1)} s)${hang ? `: ${hang.findings[0]}` : ''}`);
      if (latency === null || latency > budgetMs) failures.push(`${p.kind}: ${latency === null ? 'not reported' : `${latency} ms`}`);
    }
    const plantedPids = new Set(planted.map((p) => p.pid));
    const wrong = troubles.filter((e) => !plantedPids.has(e.pid) && ours.has(e.pid));
    console.log(`  idle processes judged suspect or hung: ${new Set(wrong.map((e) => e.pid)).size}`);
    if (wrong.length > 0) failures.push(`false alarms: ${JSON.stringify(wrong.slice(0, 3))}`);
    await scan.stop();

    // The naive peer: every thread of every process each interval.
    process.kill(stopped.pid, 'SIGCONT');
    const pids = hosts.map((h) => h.pid);
    let samples = 0;
    const naive = child(
      `const w = lib.watch({ pids: ${JSON.stringify(pids)}, accelerators: false });
       w.on('sample', (e) => process.stdout.write(JSON.stringify({ type: 'sample', threads: e.threads }) + '\\n'));
       process.on('SIGTERM', () => w.close());`,
      () => samples++,
    );
    await P.waitFor(() => samples >= 3, 'the naive watch sampling', 60000, 100);
    const naiveShare = await measure(naive.proc.pid, MEASURE_S);
    await naive.stop();
    console.log(`naive peer (watch of every thread of the ${PROCESSES} processes each ${INTERVAL_MS} ms): ${pct(naiveShare)} of a core; host scan / naive = ${(share / naiveShare).toFixed(3)} (${(naiveShare / share).toFixed(0)}× less CPU)`);
  } finally {
    await scope.close();
  }
  if (failures.length > 0) {
    console.log(`FAILED: ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

async function realHost(seconds) {
  const passes = [];
  const troubled = new Map();
  const scan = hostScan(null, (e) => {
    if (e.type === 'pass') passes.push(e);
    else if (e.type === 'trouble' || e.type === 'hang') {
      const known = troubled.get(e.pid) ?? { labels: e.labels, verdicts: new Set(), findings: new Set() };
      known.verdicts.add(e.verdict ?? 'hung');
      // One line per kind of finding: the durations in the messages grow every sample.
      for (const f of e.findings) known.findings.add(f.replace(/\d+(\.\d+)?/g, 'N').slice(0, 160));
      troubled.set(e.pid, known);
    } else if (e.type === 'error') console.log(`  scan error: ${e.code}: ${e.message}`);
  });
  const startedAt = new Date().toISOString();
  await P.sleep(3000);
  const share = await measure(scan.proc.pid, seconds);
  await scan.stop();
  const threads = passes.reduce((n, p) => n + p.threads, 0) / Math.max(1, passes.length);
  const processes = passes.reduce((n, p) => n + p.processes, 0) / Math.max(1, passes.length);
  const watched = passes.reduce((n, p) => n + p.watched, 0) / Math.max(1, passes.length);
  console.log(`real host from ${startedAt} for ${seconds} s: ${passes.length} passes, ${processes.toFixed(0)} processes and ${threads.toFixed(0)} threads a pass, ${watched.toFixed(1)} watched in full on average; scan CPU ${pct(share)} of a core`);
  console.log(`processes ever judged suspect or hung: ${troubled.size}`);
  for (const [pid, t] of troubled) {
    console.log(`  pid ${pid} (${t.labels.name}, cgroup ${t.labels.cgroup}): ${[...t.verdicts].join('/')}`);
    for (const f of t.findings) console.log(`    ${f}`);
  }
}

/** Every descendant of `pids` (and themselves). */
function tree(pids) {
  const all = new Set(pids);
  const queue = [...pids];
  while (queue.length > 0) for (const c of P.childrenOf(queue.shift())) if (!all.has(c)) (all.add(c), queue.push(c));
  return all;
}

async function daemons(seconds) {
  const scope = new P.Scope('bench-host-daemons');
  const troubled = new Map();
  let passes = 0;
  const scan = hostScan(null, (e) => {
    if (e.type === 'pass') passes++;
    else if (e.type === 'trouble' || e.type === 'hang') troubled.set(e.pid, { ...(troubled.get(e.pid) ?? {}), labels: e.labels, verdict: e.verdict ?? 'hung', finding: e.findings[0] });
  });
  try {
    for (const phase of ['idle', 'under load']) {
      const started = [];
      const tryStart = async (name, runtime, start) => {
        const why = P.missing(runtime, { install: true });
        if (why !== null) return console.log(`  ${name}: skipped (${why})`);
        try {
          started.push({ name, ...(await start(scope)) });
        } catch (error) {
          console.log(`  ${name}: could not start (${error.message.split('\n')[0]})`);
        }
      };
      if (phase === 'idle') {
        await tryStart('redis-server', 'redis', P.startRedis);
        await tryStart('postgresql', 'postgres', P.startPostgres);
        await tryStart('nginx', 'nginx', P.startNginx);
        await tryStart('an idle JVM (HTTP server)', 'java', P.startJavaIdle);
        await tryStart('a Go HTTP server', 'go', P.startGoIdle);
        await tryStart('python3 -m http.server', 'python', P.startPythonHttpServer);
      } else {
        await tryStart('redis-server + redis-benchmark', 'redis', P.startRedisBusy);
        await tryStart('postgresql + pgbench', 'postgres', P.startPostgresBusy);
        await tryStart('nginx + load', 'nginx', P.startNginxBusy);
        await tryStart('a busy Go program', 'go', P.startGoBusy);
      }
      const ours = new Map();
      const note = () => {
        for (const d of started) for (const pid of tree(d.pids ?? [d.pid])) ours.set(pid, d.name);
        for (const d of started) for (const extra of [d.load?.pid].filter(Boolean)) for (const pid of tree([extra])) ours.set(pid, `${d.name} (load)`);
      };
      note();
      troubled.clear();
      const end = Date.now() + seconds * 1000;
      while (Date.now() < end) {
        await P.sleep(5000);
        note();
      }
      const wrong = [...troubled].filter(([pid]) => ours.has(pid));
      console.log(`${phase}: ${started.map((d) => d.name).join(', ')}: ${seconds} s, ${ours.size} processes; judged suspect or hung: ${wrong.length}`);
      for (const [pid, t] of wrong) console.log(`  pid ${pid} (${ours.get(pid)}: ${t.labels.name}): ${t.verdict}: ${t.finding}`);
    }
  } finally {
    await scan.stop();
    await scope.close();
  }
  console.log(`(${passes} passes)`);
}

P.installCleanupHandlers();
const DAEMONS_S = option('daemons', null);
(REAL_HOST_S !== null ? realHost(Number(REAL_HOST_S)) : DAEMONS_S !== null ? daemons(Number(DAEMONS_S)) : synthetic()).catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
