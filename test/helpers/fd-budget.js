/*
 * Run by test/threads-fd-budget.test.ts in a Node process of its own, under a lowered
 * RLIMIT_NOFILE (`ulimit -n` in the shell that starts it: Node raises the soft limit to
 * the hard one, so both are lowered). Prints one JSON object: what it saw.
 *
 *   node fd-budget.js two PID PID      two samplers, a one-shot sample and a snapshot, then
 *                                      the same with every fd of the process taken
 *   node fd-budget.js abandon PID      six samplers opened and never closed (but kept reachable,
 *                                      so no garbage collection can close them)
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const lib = require(path.join(__dirname, '..', '..', 'lib', 'index.js'));

const fds = () => fs.readdirSync('/proc/self/fd').length;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const brief = (sample) => ({ pid: sample.pid, tids: sample.threads.map((thread) => thread.tid), limits: sample.limits });
const failure = (error) => ({ code: error.code, message: error.message });

async function two(pids) {
  const out = { rlimit: null, samples: [], peakFds: 0 };
  const samplers = pids.map((pid) => lib.createThreadSampler(pid));
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all(samplers.map((sampler) => sampler.sample()));
    out.samples.push(results.map(brief));
    out.peakFds = Math.max(out.peakFds, fds());
  }
  // While the samplers keep what they keep: a one-shot sample and a snapshot of both.
  out.oneShot = brief(await lib.sampleThreads(pids[0]));
  const snap = await lib.snapshot({ pids, accelerators: false });
  out.snapshot = { processes: snap.processes.map((p) => ({ pid: p.pid, threads: p.threads.length })), limits: snap.limits };

  // The program itself takes every fd left.
  const taken = [];
  try {
    for (;;) taken.push(fs.openSync('/dev/null', 'r'));
  } catch (error) {
    out.exhaustedWith = error.code;
  }
  out.exhausted = {
    oneShot: await lib.sampleThreads(pids[0]).then(brief, failure),
    snapshot: await lib.snapshot({ pids, accelerators: false }).then((s) => ({ processes: s.processes.length, limits: s.limits }), failure),
    sample: await samplers[0].sample().then(brief, failure),
  };
  for (const fd of taken) fs.closeSync(fd);
  out.after = brief(await samplers[0].sample());
  for (const sampler of samplers) sampler.close();
  return out;
}

async function abandon(pid) {
  const out = { baselineFds: fds() };
  const kept = [];
  for (let i = 0; i < 6; i++) {
    const sampler = lib.createThreadSampler(pid);
    await sampler.sample();
    kept.push(sampler); // never closed
  }
  out.peakFds = fds();
  const started = Date.now();
  while (fds() > out.baselineFds + 4 && Date.now() - started < 20000) await sleep(100);
  out.idleFds = fds();
  out.idleMs = Date.now() - started;
  out.resampled = (await kept[0].sample()).threads.length;
  out.resampledFds = fds();
  return out;
}

(async () => {
  const [mode, ...args] = process.argv.slice(2);
  const pids = args.map(Number);
  const out = mode === 'two' ? await two(pids) : await abandon(pids[0]);
  process.stdout.write(JSON.stringify(out));
})().catch((error) => {
  process.stdout.write(JSON.stringify({ error: failure(error), stack: error.stack }));
});
