#!/usr/bin/env node
/*
 * npm run bench:check: every ratio budget of docs/ARCHITECTURE.md in one short run (well under
 * a minute on a 2-core machine), one line per budget with the figure and ok or over:
 *
 *   compare() vs microdiff         the real-snapshot pair (kernel stacks as root), 10 x 1,000
 *                                  threads and 100 accelerators (bench/lib/real-pair.js)   >= 15x faster
 *   ProgressTracker.step()         10 x 1,000 real-shaped threads, a warmed tracker        <= 1 ms median
 *   reused sampler vs C floor      createThreadSampler on a 1,000-thread process, CPU per
 *                                  sample, vs bench/held-floor.c (the same reads, held fds,
 *                                  pread)                                                  <= 1.3x
 *   basic sample vs C floor        sampleThreads({ detail: 'basic' }) vs bench/floor.c
 *                                  reading each thread's stat                              <= 1.2x
 *   CLI start vs node -e 0         iokit-snap --json, threads PID, --help (bench/cli-start.js) <= 25 ms over
 *
 * Each figure is measured against its peer in the same run, with fewer rounds than the full
 * benchmarks (bench/compare.js, bench/threads.js, bench/cli-start.js; serve's overhead is
 * bench/agent.js, a minute long, so not here). Exit status 1 when a figure is more than 1.5x
 * over its budget (a ratio budget: the ratio; a time budget: the time), else 0: a shared
 * machine's noise can put a line just over, and the line says so without failing the check.
 * Not part of `npm test`: tests never time anything.
 *
 * Build first: npm run build. Linux (the samplers' floors read /proc).
 */
'use strict';
const { execFileSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const { compileC, median, msSince, settle, startTarget } = require('./lib');

const ROOT = path.join(__dirname, '..');
const FAIL_FACTOR = 1.5;

const lines = [];

/** One budget's line: `over` is how far past its budget the figure is (1 = at the budget). */
function report(what, figure, budget, over) {
  const status = over <= 1 ? 'ok' : 'over';
  lines.push({ what, over });
  console.log(`${what.padEnd(50)} ${figure.padEnd(34)} budget ${budget.padEnd(16)} ${status}${over > FAIL_FACTOR ? ` (more than ${FAIL_FACTOR}x over)` : ''}`);
}

async function analysis() {
  const lib = require(path.join(ROOT, 'lib'));
  const { takeRealPair, widen, nextRealSample } = require('./lib/real-pair');
  const { timeCompare, timeStep, STEP_NS } = require('./compare');
  const real = await takeRealPair({ stacks: false });
  const { healthy, hung, role } = widen(real, { processes: 10, threadsPer: 1000, accelerators: 100 });
  const stacks = real.kernelStacks ? 'kernel stacks' : 'no kernel stacks: not root';
  const timed = timeCompare(lib.compare, healthy, hung, 100, 6);
  const faster = timed.peer / timed.median;
  report(`compare() vs microdiff (real, ${stacks})`, `${faster.toFixed(1)}x (${timed.median.toFixed(3)} ms)`, '>= 15x', 15 / faster);
  const step = timeStep(lib.ProgressTracker, healthy, (sample, i) => nextRealSample(sample, role, STEP_NS, i), lib.validateSnapshot, 100);
  report('ProgressTracker.step(), 10 x 1,000', `${step.median.toFixed(3)} ms median`, '<= 1 ms', step.median / 1);
}

/** CPU ms of one run of the floor over `rounds` samples (bench/lib/rusage.c), per sample. */
function floorCpuMs(rusage, floor, args, rounds) {
  const out = execFileSync(rusage, [floor, ...args], { encoding: 'utf8' });
  const m = /user_us=(\d+) sys_us=(\d+)/.exec(out);
  return (Number(m[1]) + Number(m[2])) / 1000 / rounds;
}

async function samplers() {
  const lib = require(path.join(ROOT, 'lib'));
  const target = compileC(path.join(ROOT, 'test', 'targets', 'target.c'), 'target');
  const rusage = compileC(path.join(__dirname, 'lib', 'rusage.c'), 'rusage');
  const heldFloor = compileC(path.join(__dirname, 'held-floor.c'), 'held-floor', ['-O2']);
  const floor = compileC(path.join(__dirname, 'floor.c'), 'floor');
  const { child, pid } = await startTarget(target, ['threads', '999']);
  try {
    // The reused sampler: CPU time of this process per sample (the reads run on a probe thread
    // of its own, which process.cpuUsage() counts), against the floor's, in interleaved rounds.
    const sampler = lib.createThreadSampler(pid, { detail: 'full', kernelStacks: false });
    await sampler.sample();
    const SAMPLES = 20;
    const ours = [];
    const peer = [];
    for (let round = 0; round < 6; round++) {
      await settle();
      const start = process.cpuUsage();
      for (let i = 0; i < SAMPLES; i++) await sampler.sample();
      const used = process.cpuUsage(start);
      ours.push((used.user + used.system) / 1000 / SAMPLES);
      // The floor's run opens its files in one sample of its own first: count that one too, as
      // the sampler's opening sample was not timed either (the difference is one sample in 21).
      peer.push(floorCpuMs(rusage, heldFloor, ['--rounds', String(SAMPLES), String(pid)], SAMPLES + 1));
    }
    sampler.close();
    const reused = median(ours) / median(peer);
    report('reused sampler vs held-fd C floor (1,000 thr.)', `${reused.toFixed(2)}x (${median(ours).toFixed(2)} vs ${median(peer).toFixed(2)} ms CPU)`, '<= 1.3x', reused / 1.3);

    // detail 'basic' one-shot vs the C loop over each thread's stat: wall time, as bench/threads.js.
    const basic = [];
    const statFloor = [];
    for (let round = 0; round <= 8; round++) {
      await settle();
      const start = process.hrtime.bigint();
      await lib.sampleThreads(pid, { detail: 'basic' });
      const ms = msSince(start);
      await settle();
      const out = execFileSync(floor, [String(pid), '2', 'stat'], { encoding: 'utf8' });
      const floorMs = Number(/ms=([\d.]+)/.exec(out.trim().split('\n').pop())[1]);
      if (round === 0) continue;
      basic.push(ms);
      statFloor.push(floorMs);
    }
    const ratio = median(basic) / median(statFloor);
    report("detail 'basic' vs stat-only C floor (1,000 thr.)", `${ratio.toFixed(2)}x (${median(basic).toFixed(2)} vs ${median(statFloor).toFixed(2)} ms)`, '<= 1.2x', ratio / 1.2);
  } finally {
    child.kill('SIGKILL');
  }
}

async function cliStart() {
  const { measureStart, BUDGET_MS } = require('./cli-start');
  for (const row of await measureStart({ runs: 9 })) {
    report(`${row.label} vs node -e 0`, `+${row.over.toFixed(1)} ms (CPU +${row.cpu.over.toFixed(1)} ms)`, `<= ${BUDGET_MS} ms over`, Math.max(0, row.over) / BUDGET_MS);
  }
}

async function main() {
  if (process.platform !== 'linux') {
    console.log('bench/check.js: the samplers and their C floors read /proc: Linux only');
    return;
  }
  const started = process.hrtime.bigint();
  console.log(`npm run bench:check: ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, Node ${process.version}`);
  await analysis();
  await samplers();
  await cliStart();
  const worst = Math.max(...lines.map((l) => l.over));
  const over = lines.filter((l) => l.over > 1).length;
  console.log(
    `${lines.length} budgets, ${over} over${worst > FAIL_FACTOR ? `, at least one more than ${FAIL_FACTOR}x over: FAIL` : ''}; ` +
      `${(msSince(started) / 1000).toFixed(1)} s, load ${os.loadavg()[0].toFixed(1)} at the end`,
  );
  if (worst > FAIL_FACTOR) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 2;
});
