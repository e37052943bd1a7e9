#!/usr/bin/env node
/*
 * Linux user stacks of every thread of a process, against the tool they replace, in one run:
 *   (a) sampleThreads(pid, { stacks: true })            vs  gdb -p PID -batch -ex 'thread apply all bt'
 *   (b) a reused createThreadSampler({ stacks: true })  (its ELF files are already read)
 *   (c) sampleThreads(pid) without stacks, for what the stacks add
 * on test/targets/target.c `threads N` (N threads sleeping in clock_nanosleep), started
 * under `sh` so that every thread, the main one included, is held by ptrace.
 * Each contender must name clock_nanosleep in every thread, or the run fails.
 *
 * Build first:  npm run build:native && npm run build
 * Run:          node bench/stacks.js [--threads N] [--rounds N]
 *
 * No budget of its own (the issue sets none); it prints the ratios. Linux x64/arm64 only.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { sampleThreads, createThreadSampler } = require('../lib');
const { option, median, msSince, settle, compileC, startTarget } = require('./lib');

const THREADS = option('threads', 100);
const ROUNDS = option('rounds', 7);
const ms = msSince;

function checkOurs(sample, what) {
  const named = sample.threads.filter((t) => t.stack?.some((f) => f.symbol === 'clock_nanosleep' || f.symbol === '__clock_nanosleep')).length;
  if (named < THREADS - 1) throw new Error(`${what}: only ${named} of ${THREADS} threads named clock_nanosleep; limits: ${JSON.stringify(sample.limits)}`);
}

function gdbMs(pid) {
  const start = process.hrtime.bigint();
  const out = execFileSync('gdb', ['-p', String(pid), '-batch', '-nx', '-ex', 'thread apply all bt'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 });
  const took = ms(start);
  const named = (out.match(/clock_nanosleep/g) ?? []).length;
  if (named < THREADS - 1) throw new Error(`gdb named clock_nanosleep only ${named} times`);
  return took;
}

async function main() {
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
    console.log('stacks: Linux x64/arm64 only; skipped');
    return;
  }
  let gdb = true;
  try {
    execFileSync('gdb', ['--version'], { stdio: 'ignore' });
  } catch {
    gdb = false;
  }
  const binary = compileC(path.join(__dirname, '..', 'test', 'targets', 'target.c'), 'target-fp', ['-O1', '-fno-omit-frame-pointer', '-pthread']);
  const { child: sh, pid } = await startTarget(binary, ['threads', String(THREADS - 1)], { grandchild: true });
  try {
    // Wait until every thread sits in its sleep.
    for (;;) {
      const s = await sampleThreads(pid);
      if (s.threads.length === THREADS && s.threads.every((t) => t.blockedIn?.call === 'clock_nanosleep')) break;
      await settle();
    }
    const sampler = createThreadSampler(pid, { stacks: true });
    const times = { oneShot: [], sampler: [], bare: [], gdb: [] };
    for (let round = 0; round <= ROUNDS; round++) {
      await settle();
      let start = process.hrtime.bigint();
      const one = await sampleThreads(pid, { stacks: true });
      const oneMs = ms(start);
      checkOurs(one, 'sampleThreads');
      await settle();
      start = process.hrtime.bigint();
      const reused = await sampler.sample();
      const samplerMs = ms(start);
      checkOurs(reused, 'sampler');
      await settle();
      start = process.hrtime.bigint();
      await sampleThreads(pid);
      const bareMs = ms(start);
      await settle();
      const gdbTook = gdb ? gdbMs(pid) : NaN;
      if (round === 0) continue; // warm-up
      times.oneShot.push(oneMs);
      times.sampler.push(samplerMs);
      times.bare.push(bareMs);
      times.gdb.push(gdbTook);
    }
    sampler.close();
    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    const rows = [
      ['sampleThreads({ stacks: true })', m.oneShot, gdb ? `${(m.gdb / m.oneShot).toFixed(1)}x faster than gdb` : ''],
      ['sampler.sample() with stacks', m.sampler, gdb ? `${(m.gdb / m.sampler).toFixed(1)}x faster than gdb` : ''],
      ['sampleThreads() without stacks', m.bare, `stacks add ${(m.oneShot - m.bare).toFixed(1)} ms (${((m.oneShot - m.bare) / THREADS).toFixed(3)} ms a thread)`],
      ['gdb -batch thread apply all bt', m.gdb, gdb ? 'the peer' : 'gdb not installed'],
    ];
    console.log(`user stacks of ${THREADS} threads, median of ${ROUNDS} rounds`);
    for (const [name, value, note] of rows) console.log(`  ${name.padEnd(34)} ${Number.isNaN(value) ? '-'.padStart(9) : `${value.toFixed(1).padStart(7)} ms`}  ${note}`);
  } finally {
    process.kill(pid, 'SIGKILL');
    sh.kill('SIGKILL');
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
