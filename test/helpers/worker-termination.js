'use strict';
/**
 * Child program of test/worker-termination.test.ts (a crash must take down this
 * process, not the test runner):
 *
 *   node worker-termination.js ROOT ROUNDS workers|main
 *
 * Each round starts four worker threads that call one native function each in
 * a loop (readHost, sampleThreads, a reused thread sampler, sampleAccelerators)
 * through the raw binding, and terminates each after a random 300–1800 ms, so
 * most end inside a probe. Then one worker whose probe is stuck for certain (it
 * opens a fifo nobody writes, under a fixture procRoot) is terminated, and the
 * fifo released afterwards: its probe thread runs on after its environment is
 * gone. `workers`: only the workers load the addon (so ending the last of them
 * unloads it); `main`: this thread loads it too, and samples in a loop meanwhile.
 * Prints "ok N probes" and exits 0 when nothing crashed.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const [root, roundsText, where] = process.argv.slice(2);
const rounds = Number(roundsText);
const loadBinding = `require(${JSON.stringify(require.resolve('node-gyp-build', { paths: [root] }))})(${JSON.stringify(root)})`;

const LOOP = `
const { parentPort, workerData } = require('node:worker_threads');
const native = ${loadBinding};
const pid = process.pid;
let probes = 0;
const calls = {
  readHost: () => native.readHost(),
  sampleThreads: () => native.sampleThreads(pid),
  sampleAccelerators: () => native.sampleAccelerators({ callTimeoutMs: 500, callBudgetMs: 1000 }),
};
(async () => {
  let call = calls[workerData.api];
  if (workerData.api === 'sampler') {
    const sampler = await native.openThreadSampler(pid, {});
    call = () => sampler.sample();
  }
  for (;;) {
    await call();
    if (++probes % 16 === 0) parentPort.postMessage(16);
  }
})();
`;

const STUCK = `
const { parentPort, workerData } = require('node:worker_threads');
const native = ${loadBinding};
native.sampleThreads(4242, { procRoot: workerData.procRoot }).catch(() => {});
parentPort.postMessage('started');
`;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const exited = (worker) => new Promise((resolve) => worker.once('exit', resolve));

/** The tids of this process's threads whose wchan says they wait in a fifo open. */
function inFifoOpen() {
  const tids = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      if (/fifo|wait_for_partner/.test(fs.readFileSync(`/proc/self/task/${tid}/wchan`, 'utf8'))) tids.push(tid);
    } catch {
      /* gone */
    }
  }
  return tids;
}

async function until(what, test) {
  const deadline = Date.now() + 20000;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

async function stuckProbe(dir) {
  const task = path.join(dir, '4242', 'task', '4242');
  fs.mkdirSync(task, { recursive: true });
  const fifo = path.join(task, 'stat');
  require('node:child_process').execFileSync('mkfifo', [fifo]);
  const before = inFifoOpen().length;
  const worker = new Worker(STUCK, { eval: true, workerData: { procRoot: dir } });
  const gone = exited(worker);
  await new Promise((resolve) => worker.once('message', resolve));
  await until('the probe thread to block opening the fifo', () => inFifoOpen().length > before);
  await worker.terminate();
  await gone;
  // The environment (and, without a main-thread copy, the addon) is gone; now
  // let the probe thread run on: open the fifo's other end, and close it.
  fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
  await until('the probe thread to get past the fifo', () => inFifoOpen().length === before);
  await delay(50); // it returns through the addon's code: time to crash, if it were unmapped
}

async function main() {
  let mainProbes = 0;
  let stop = false;
  let mainLoop = Promise.resolve();
  if (where === 'main') {
    const native = eval(loadBinding);
    mainLoop = (async () => {
      while (!stop) {
        await native.sampleThreads(process.pid);
        await native.readHost();
        mainProbes += 2;
      }
    })();
  }
  let probes = 0;
  for (let round = 0; round < rounds; round++) {
    const ends = ['readHost', 'sampleThreads', 'sampler', 'sampleAccelerators'].map(async (api) => {
      const worker = new Worker(LOOP, { eval: true, workerData: { api } });
      worker.on('message', (n) => (probes += n));
      worker.on('error', (error) => {
        console.error(`worker ${api}: ${error.stack ?? error}`);
        process.exitCode = 1;
      });
      const gone = exited(worker);
      await delay(300 + Math.random() * 1500);
      await worker.terminate();
      await gone;
    });
    await Promise.all(ends);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-stuck-'));
  try {
    await stuckProbe(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  stop = true;
  await mainLoop;
  console.log(`ok ${probes + mainProbes} probes`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
