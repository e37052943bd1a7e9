#!/usr/bin/env node
/*
 * Soak: 100,000 snapshot() calls (host, accelerators, and the threads of this
 * process: three probes, each on its own thread, per call) in one process. RSS
 * is printed after 10,000 calls and after 100,000; budget: growth < 5 % between
 * the two (the first 10,000 let V8 and malloc size their pools). Its peer, in
 * the same run: the same number of iterations of the bare work underneath, a
 * readdir of /proc/self/task and a read of each thread's stat, with its own RSS
 * and the time ratio. RSS is read after a full GC where --expose-gc is given
 * (bench/run.js gives it), so what is left is what is held.
 *
 * Run:  npm run build && node --expose-gc bench/soak.js [--calls N]
 * Exit code 1 when the budget is missed. Linux only (the peer reads procfs).
 */
'use strict';
const fs = require('node:fs');
const { snapshot } = require('../lib');

const at = process.argv.indexOf('--calls');
const CALLS = at > 0 ? Number(process.argv[at + 1]) : 100000;
const EARLY = Math.min(10000, CALLS / 10);
const BUDGET = 0.05;

async function settledRssMb() {
  if (typeof global.gc === 'function') {
    for (let i = 0; i < 3; i++) {
      global.gc();
      await new Promise((resolve) => setImmediate(resolve)); // Node-API finalizers run from here
    }
  }
  return process.memoryUsage().rss / 1048576;
}

/** Runs `step` CALLS times; the RSS after EARLY and after CALLS calls, and the ms per call. */
async function soak(step) {
  let early = 0;
  const start = process.hrtime.bigint();
  let paused = 0n;
  for (let i = 1; i <= CALLS; i++) {
    await step();
    if (i === EARLY) {
      const pause = process.hrtime.bigint();
      early = await settledRssMb();
      paused += process.hrtime.bigint() - pause;
    }
  }
  const elapsed = Number(process.hrtime.bigint() - start - paused) / 1e6;
  return { early, late: await settledRssMb(), msPerCall: elapsed / CALLS };
}

function bareThreadRead() {
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      fs.readFileSync(`/proc/self/task/${tid}/stat`);
    } catch {
      /* a thread that ended in between */
    }
  }
}

async function main() {
  if (process.platform !== 'linux') {
    console.log('bench/soak.js: Linux only (the peer reads procfs); nothing to measure here.');
    return;
  }
  const pids = [process.pid];
  const ours = await soak(() => snapshot({ pids }));
  const peer = await soak(async () => bareThreadRead());
  const growth = (late, early) => (late - early) / early;
  const pct = (value) => `${(value * 100).toFixed(1)} %`;
  console.log(`iokit-snap soak: ${CALLS} calls each, RSS after ${EARLY} and after ${CALLS}${global.gc ? ' (after a full GC)' : ' (no --expose-gc: raw)'}`);
  console.log(`  snapshot({ pids: [self] })        ${ours.early.toFixed(1)} MB -> ${ours.late.toFixed(1)} MB   growth ${pct(growth(ours.late, ours.early))}   ${ours.msPerCall.toFixed(3)} ms/call`);
  console.log(`  peer: readdir + read of each stat ${peer.early.toFixed(1)} MB -> ${peer.late.toFixed(1)} MB   growth ${pct(growth(peer.late, peer.early))}   ${peer.msPerCall.toFixed(3)} ms/call`);
  console.log(`  time ratio ours/peer ${(ours.msPerCall / peer.msPerCall).toFixed(1)}x;  budget: snapshot growth < ${pct(BUDGET)}  ${growth(ours.late, ours.early) < BUDGET ? 'PASS' : 'MISS'}`);
  if (!(growth(ours.late, ours.early) < BUDGET)) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 2;
});
