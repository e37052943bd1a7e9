/**
 * sampleThreads and createThreadSampler on Linux, against real processes put in
 * known states by test/targets/target.c. Every wait polls with a deadline.
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { IokitSnapError } from '../src/errors';
import { binding } from '../src/native';
import { createThreadSampler, monotonicNs, sampleThreads, snapshot } from '../src/sample';
import type { ThreadSample, ThreadSampleResult } from '../src/types';
import { start, waitFor } from './helpers/targets';

const ROOT = path.join(__dirname, '..');
const NODE_GYP_BUILD = require.resolve('node-gyp-build');
const NUMBERS: Record<string, Record<string, number>> = {
  x64: { clock_nanosleep: 230, read: 0, futex: 202, epoll_wait: 232, poll: 7, vfork: 58 },
  arm64: { clock_nanosleep: 115, read: 63, futex: 98, epoll_pwait: 22, ppoll: 73 },
};

function threadOf(sample: ThreadSampleResult, tid: number | string): ThreadSample | undefined {
  return sample.threads.find((thread) => thread.tid === Number(tid));
}

async function rejection(promise: Promise<unknown>): Promise<IokitSnapError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof IokitSnapError)) throw new Error(`expected an IokitSnapError, got ${String(error)}`);
  return error;
}

if (process.platform === 'linux') linuxTests();
else t.plan(0, 'Linux procfs thread sampling only');

function linuxTests(): void {
  t.test('a sleeping child is sleeping in clock_nanosleep, with every field read', async (t) => {
    const target = await start(t, 'sleep');
    const before = monotonicNs();
    const sample = await waitFor(async () => {
      const s = await sampleThreads(target.pid);
      const main = threadOf(s, target.pid);
      return main?.blockedIn?.call === 'clock_nanosleep' && main.state === 'sleeping' && s;
    }, 'the target main thread asleep in clock_nanosleep');
    t.equal(sample.pid, target.pid);
    t.equal(sample.name, 'target');
    t.ok(sample.sampledAtNs >= before && sample.sampledAtNs <= monotonicNs(), 'sampledAtNs is on the monotonic clock');
    t.equal(sample.threads.length, 1);
    const main = sample.threads[0]!;
    t.equal(main.tid, target.pid);
    t.equal(main.name, 'target');
    t.equal(main.state, 'sleeping');
    t.equal(main.blockedIn!.number, NUMBERS[process.arch]!.clock_nanosleep);
    t.notOk('fd' in main.blockedIn!, 'clock_nanosleep takes no fd');
    t.type(main.userNs, 'number');
    t.type(main.systemNs, 'number');
    t.ok(main.cpuNs! > 0, 'schedstat CPU ns');
    t.ok(main.contextSwitches!.voluntary >= 1, 'it has slept at least once');
    t.type(main.contextSwitches!.involuntary, 'number');
    t.equal(main.suspendCount, null, 'Linux has no suspend count');
    t.match(main.wchan, /nanosleep|hrtimer|do_nanosleep/);
    t.notOk('pc' in main, 'no pc unless stacks are asked for');
    if (process.getuid?.() === 0) {
      t.ok(main.kernelStack!.some((frame) => /nanosleep/.test(frame)), 'the kernel stack shows the sleep');
      t.notOk(main.kernelStack!.some((frame) => frame.startsWith('[<')), 'frame addresses are stripped');
      t.same(sample.limits, []);
    }
  });

  t.test('detail basic reads only what ps shows', async (t) => {
    const target = await start(t, 'sleep');
    const sample = await sampleThreads(target.pid, { detail: 'basic' });
    const main = threadOf(sample, target.pid)!;
    t.equal(main.name, 'target');
    t.match(main.state, /^(sleeping|running)$/);
    t.equal(main.blockedIn, null);
    t.equal(main.contextSwitches, null);
    t.notOk('cpuNs' in main);
    t.notOk('wchan' in main);
    t.notOk('kernelStack' in main);
    t.same(sample.limits, []);
  });

  t.test('a fifo reader is blocked in read, and the target is the fifo', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-fifo-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // O_RDWR on a fifo does not block, and makes this process its writer.
    const writer = fs.openSync(fifo, fs.constants.O_RDWR);
    t.teardown(() => fs.closeSync(writer));
    const target = await start(t, 'fifo-reader', [fifo]);
    const main = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(target.pid), target.pid);
      return thread?.blockedIn?.call === 'read' && thread.state === 'sleeping' && thread;
    }, 'the fifo reader asleep in read');
    t.equal(main.blockedIn!.number, NUMBERS[process.arch]!.read);
    t.equal(main.blockedIn!.fd, Number(target.info.fd));
    t.equal(main.blockedIn!.target, fifo);
    t.equal(main.state, 'sleeping');
    t.match(main.wchan, /pipe_read|pipe_wait|fifo/);
  });

  t.test('two threads deadlocked on mutexes are both in futex', async (t) => {
    const target = await start(t, 'deadlock');
    const sample = await waitFor(async () => {
      const s = await sampleThreads(target.pid);
      const a = threadOf(s, target.info.a!);
      const b = threadOf(s, target.info.b!);
      // The target says it is ready before its main thread calls pthread_join: wait for that too.
      const main = threadOf(s, target.pid);
      return a?.blockedIn?.call === 'futex' && b?.blockedIn?.call === 'futex' && main?.blockedIn?.call === 'futex' && a.state === 'sleeping' && b.state === 'sleeping' && s;
    }, 'threads a and b in futex, and main in its join');
    t.equal(sample.threads.length, 3, 'main, a and b');
    for (const tid of [target.info.a!, target.info.b!]) {
      const thread = threadOf(sample, tid)!;
      t.equal(thread.state, 'sleeping');
      t.equal(thread.blockedIn!.number, NUMBERS[process.arch]!.futex);
      t.notOk('target' in thread.blockedIn!, 'futex takes an address, not an fd');
      t.equal(thread.name, 'target');
    }
    t.equal(threadOf(sample, target.pid)!.blockedIn!.call, 'futex', 'main waits in pthread_join');
  });

  t.test('a spinning child is running and its CPU time grows', async (t) => {
    const target = await start(t, 'spin');
    const first = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(target.pid), target.pid);
      return thread?.state === 'running' && thread;
    }, 'the spinner running');
    t.equal(first.blockedIn, null, 'not in a syscall');
    t.notOk('wchan' in first, 'no wchan while running');
    const later = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(target.pid), target.pid);
      return thread && thread.cpuNs! > first.cpuNs! && thread.userNs + thread.systemNs > first.userNs + first.systemNs && thread;
    }, 'CPU time to grow between two samples');
    t.ok(later.cpuNs! > first.cpuNs!);
  });

  t.test('a SIGSTOPped child is stopped, and sleeping again after SIGCONT', async (t) => {
    const target = await start(t, 'sleep');
    process.kill(target.pid, 'SIGSTOP');
    const stopped = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(target.pid), target.pid);
      return thread?.state === 'stopped' && thread;
    }, 'the target stopped');
    t.equal(stopped.state, 'stopped');
    process.kill(target.pid, 'SIGCONT');
    await waitFor(async () => threadOf(await sampleThreads(target.pid), target.pid)?.state === 'sleeping', 'the target sleeping again');
  });

  t.test('a zombie is a zombie', async (t) => {
    const target = await start(t, 'zombie');
    const zombie = Number(target.info.zombie);
    const sample = await sampleThreads(zombie);
    t.equal(sample.pid, zombie);
    t.equal(sample.name, 'target');
    t.equal(sample.threads.length, 1);
    t.equal(sample.threads[0]!.state, 'zombie');
    t.equal(sample.threads[0]!.blockedIn, null);
  });

  t.test('a vfork parent waits uninterruptibly in vfork', async (t) => {
    const target = await start(t, 'vfork-parent');
    const main = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(target.pid), target.pid);
      return thread?.state === 'uninterruptible' && thread;
    }, 'the vfork parent in D state');
    t.match(main.blockedIn?.call, /^(vfork|clone|clone3)$/);
    const child = threadOf(await sampleThreads(Number(target.info.child)), target.info.child!)!;
    t.equal(child.blockedIn!.call, 'clock_nanosleep', 'the child sleeps');
  });

  t.test('idle servers: epoll_wait resolves its epoll fd, poll takes none', async (t) => {
    const epoll = await start(t, 'epoll-idle');
    const server = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(epoll.pid), epoll.pid);
      return thread?.blockedIn?.call.startsWith('epoll_') && thread.state === 'sleeping' && thread;
    }, 'the server asleep in epoll_wait');
    t.equal(server.blockedIn!.fd, Number(epoll.info.epfd));
    t.equal(server.blockedIn!.target, 'anon_inode:[eventpoll]');
    t.equal(server.state, 'sleeping');
    const poller = await start(t, 'poll-idle');
    const idle = await waitFor(async () => {
      const thread = threadOf(await sampleThreads(poller.pid), poller.pid);
      return /^p?poll$/.test(thread?.blockedIn?.call ?? '') && thread;
    }, 'the poller in poll');
    t.notOk('fd' in idle.blockedIn!, "poll's first argument is an array, not an fd");
  });

  t.test('a thread whose name contains ") x (" parses: name and state', async (t) => {
    for (const name of ['a) x (b', 'x) R 9 (y', ')']) {
      const target = await start(t, 'rename', [name]);
      const sample = await waitFor(async () => {
        const s = await sampleThreads(target.pid);
        const renamed = threadOf(s, target.info.tid!);
        return renamed?.blockedIn?.call === 'clock_nanosleep' && renamed.state === 'sleeping' && s;
      }, `the thread renamed ${JSON.stringify(name)} asleep`);
      const renamed = threadOf(sample, target.info.tid!)!;
      t.equal(renamed.name, name);
      t.equal(renamed.state, 'sleeping');
      t.ok(renamed.contextSwitches!.voluntary >= 1);
      t.equal(sample.name, 'target', 'the process keeps its name');
      t.equal(threadOf(sample, target.pid)!.name, 'target');
    }
  });

  t.test('a pid that does not exist gives ESRCH', async (t) => {
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => gone.once('exit', resolve));
    for (const pid of [gone.pid!, 0x7fffffff]) {
      const error = await rejection(sampleThreads(pid));
      t.equal(error.code, 'ESRCH');
      t.equal(error.message, `no process with pid ${pid}; it may have exited`);
      t.equal((await rejection(createThreadSampler(pid).sample())).code, 'ESRCH');
    }
  });

  t.test('bad pids and options give EINVAL', async (t) => {
    for (const pid of [0, -1, 1.5, NaN, 2 ** 31, '1' as unknown as number]) {
      t.equal((await rejection(sampleThreads(pid))).code, 'EINVAL', `pid ${String(pid)}`);
      t.throws(() => createThreadSampler(pid), { code: 'EINVAL' });
    }
    const target = await start(t, 'sleep');
    for (const options of [
      { detail: 'everything' },
      { maxOpenFiles: -1 },
      { maxOpenFiles: 1.5 },
      { procRoot: 7 },
      { kernelStacks: 'yes' },
      { timeoutMs: 0 },
    ]) {
      const error = await rejection(sampleThreads(target.pid, options as never));
      t.equal(error.code, 'EINVAL', JSON.stringify(options));
    }
    t.equal((await rejection(sampleThreads(target.pid, null as never))).code, 'EINVAL');
  });

  t.test('a thread id is not a process id', async (t) => {
    const target = await start(t, 'deadlock');
    const error = await rejection(sampleThreads(Number(target.info.a)));
    t.equal(error.code, 'EINVAL');
    t.equal(error.message, `${target.info.a} is a thread of process ${target.pid}, not a process; sample pid ${target.pid} instead`);
  });

  t.test('procRoot pointing at a missing directory gives ESRCH', async (t) => {
    const missing = path.join(os.tmpdir(), `iokit-snap-no-such-proc-${process.pid}`);
    const error = await rejection(sampleThreads(process.pid, { procRoot: missing }));
    t.equal(error.code, 'ESRCH');
    t.match(error.message, missing);
    t.equal((await rejection(createThreadSampler(process.pid, { procRoot: missing }).sample())).code, 'ESRCH');
  });

  t.test('calls from worker_threads and in parallel work', async (t) => {
    const sleeper = await start(t, 'sleep');
    const spinner = await start(t, 'spin');
    // The worker loads the binding itself (plain JS, no TypeScript loader), so
    // the native per-environment state is what is under test.
    const script = `
      const { parentPort, workerData } = require('node:worker_threads');
      const native = require(workerData.loader)(workerData.root);
      const keep = setInterval(() => {}, 1000); // a pending probe does not hold the event loop open
      Promise.all([native.sampleThreads(workerData.pid, {}), native.sampleThreads(workerData.pid, { detail: 'basic' })])
        .then(([full, basic]) => parentPort.postMessage({ full, basic }))
        .catch((error) => parentPort.postMessage({ error: error.code + ': ' + error.message }))
        .finally(() => clearInterval(keep));
    `;
    const fromWorkers = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<{ full: ThreadSampleResult; basic: ThreadSampleResult; error?: string }>((resolve, reject) => {
            // execArgv: [] keeps tap's loaders (TypeScript, coverage) out of the worker.
            const worker = new Worker(script, { eval: true, execArgv: [], workerData: { root: ROOT, loader: NODE_GYP_BUILD, pid: sleeper.pid } });
            worker.once('message', (message) => {
              resolve(message);
              void worker.terminate();
            });
            worker.once('error', reject);
            worker.once('exit', (code) => reject(new Error(`worker exited (${code}) without an answer`)));
          }),
      ),
    );
    for (const result of fromWorkers) {
      t.equal(result.error, undefined);
      t.equal(result.full.threads[0]!.tid, sleeper.pid);
      t.equal(result.basic.threads[0]!.blockedIn, null);
    }
    const parallel = await Promise.all(
      Array.from({ length: 12 }, (_, i) => sampleThreads(i % 2 ? sleeper.pid : spinner.pid, { detail: i % 3 ? 'full' : 'basic' })),
    );
    parallel.forEach((sample, i) => t.equal(sample.pid, i % 2 ? sleeper.pid : spinner.pid));
  });

  t.test('the sampler: reuse, new and vanished threads, close', async (t) => {
    const target = await start(t, 'deadlock');
    const sampler = createThreadSampler(target.pid);
    t.teardown(() => sampler.close());
    const first = await waitFor(async () => {
      const s = await sampler.sample();
      return s.threads.filter((thread) => thread.blockedIn?.call === 'futex').length === 3 && s;
    }, 'all three deadlock threads in futex through the sampler');
    const second = await sampler.sample();
    t.same(second.threads.map((x) => x.tid).sort(), first.threads.map((x) => x.tid).sort(), 'the same threads');
    t.ok(second.sampledAtNs > first.sampledAtNs);
    for (const thread of second.threads) {
      const before = threadOf(first, thread.tid)!;
      t.same(thread.blockedIn, before.blockedIn, `tid ${thread.tid} still blocked the same way`);
      t.equal(thread.name, 'target');
      t.ok(thread.cpuNs! >= before.cpuNs!);
    }
    // Matches a one-shot sample field for field.
    const oneShot = await sampleThreads(target.pid);
    t.same(
      second.threads.map(({ tid, name, state, blockedIn, wchan }) => ({ tid, name, state, blockedIn, wchan })),
      oneShot.threads.map(({ tid, name, state, blockedIn, wchan }) => ({ tid, name, state, blockedIn, wchan })),
    );
    sampler.close();
    sampler.close();
    const closed = await rejection(sampler.sample());
    t.equal(closed.code, 'EINVAL');
    t.match(closed.message, /closed/);
  });

  t.test('the sampler sees threads come and go (our own process)', async (t) => {
    const sampler = createThreadSampler(process.pid, { kernelStacks: false });
    t.teardown(() => sampler.close());
    const before = new Set((await sampler.sample()).threads.map((thread) => thread.tid));
    const spawnWorker = () => new Worker('setInterval(() => {}, 1000)', { eval: true, execArgv: [] });
    const newTids = async (known: Set<number>, what: string) =>
      waitFor(async () => {
        const now = (await sampler.sample()).threads.map((thread) => thread.tid);
        const added = now.filter((tid) => !known.has(tid));
        return added.length > 0 && { now: new Set(now), added };
      }, what);
    const first = spawnWorker();
    const withFirst = await newTids(before, 'a new thread for a Worker');
    // One thread ends and another starts between two samples: the thread count
    // is the same, so only the gone thread's kept fds can tell the sampler.
    await first.terminate();
    const second = spawnWorker();
    await new Promise((resolve) => second.once('online', resolve));
    const swapped = await newTids(withFirst.now, 'the second Worker thread');
    t.ok(withFirst.added.every((tid) => !swapped.now.has(tid)), 'the first Worker thread is gone');
    await second.terminate();
    await waitFor(async () => {
      const now = new Set((await sampler.sample()).threads.map((thread) => thread.tid));
      return swapped.added.every((tid) => !now.has(tid));
    }, 'the second Worker thread gone from the samples');
  });

  t.test('a sampler with maxOpenFiles: 4 still gives complete results', async (t) => {
    const target = await start(t, 'threads', ['40']);
    for (const maxOpenFiles of [4, 1, 60]) {
      const sampler = createThreadSampler(target.pid, { maxOpenFiles });
      t.teardown(() => sampler.close());
      for (let round = 0; round < 3; round++) {
        const sample = await waitFor(async () => {
          const s = await sampler.sample();
          return s.threads.every((thread) => thread.blockedIn?.call === 'clock_nanosleep') && s;
        }, `all threads asleep through a sampler with maxOpenFiles ${maxOpenFiles}`);
        t.equal(sample.threads.length, 41, `41 threads, maxOpenFiles ${maxOpenFiles}, round ${round}`);
        t.ok(sample.threads.every((thread) => thread.contextSwitches && thread.cpuNs! > 0 && thread.wchan));
        t.same(sample.limits, []);
      }
    }
  });

  t.test('a sampler on a process that exits gives ESRCH', async (t) => {
    const target = await start(t, 'sleep');
    const sampler = createThreadSampler(target.pid);
    t.teardown(() => sampler.close());
    t.equal((await sampler.sample()).threads.length, 1);
    await target.stop();
    const error = await rejection(sampler.sample());
    t.equal(error.code, 'ESRCH');
  });

  t.test('the sampler sees a stopped thread and its wake-up', async (t) => {
    const target = await start(t, 'sleep');
    const sampler = createThreadSampler(target.pid);
    t.teardown(() => sampler.close());
    await waitFor(async () => threadOf(await sampler.sample(), target.pid)?.state === 'sleeping', 'sleeping');
    process.kill(target.pid, 'SIGSTOP');
    await waitFor(async () => threadOf(await sampler.sample(), target.pid)?.state === 'stopped', 'stopped through the sampler');
    process.kill(target.pid, 'SIGCONT');
    await waitFor(async () => threadOf(await sampler.sample(), target.pid)?.state === 'sleeping', 'sleeping again');
    t.pass();
  });

  const asRoot = process.getuid?.() === 0;
  const noRoot = asRoot ? false : 'needs root, to sample our target as another user (nobody)';
  t.test('another user: blockedIn, wchan and kernel stacks are limits, one each, saying how to grant them', { skip: noRoot }, async (t) => {
    const target = await start(t, 'deadlock');
    await waitFor(async () => (await sampleThreads(target.pid)).threads.every((x) => x.blockedIn?.call === 'futex'), 'deadlock in place');
    const script = `
      const native = require(${JSON.stringify(NODE_GYP_BUILD)})(${JSON.stringify(ROOT)});
      const keep = setInterval(() => {}, 1000);
      (async () => {
        const oneShot = await native.sampleThreads(${target.pid}, {});
        const sampler = await native.openThreadSampler(${target.pid}, {});
        const first = await sampler.sample();
        const second = await sampler.sample();
        sampler.close();
        process.stdout.write(JSON.stringify({ oneShot, first, second }));
      })().catch((e) => process.stdout.write(JSON.stringify({ error: e.code + ': ' + e.message }))).finally(() => clearInterval(keep));
    `;
    const output = execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: os.tmpdir() });
    const result = JSON.parse(output) as Record<string, ThreadSampleResult> & { error?: string };
    t.equal(result.error, undefined);
    for (const key of ['oneShot', 'first', 'second']) {
      const sample = result[key]!;
      t.equal(sample.threads.length, 3, `${key}: every thread is still listed`);
      for (const thread of sample.threads) {
        t.equal(thread.blockedIn, null, `${key}: no blockedIn without ptrace access`);
        t.notOk('wchan' in thread, `${key}: the kernel shows another user's wchan as 0`);
        t.equal(thread.state, 'sleeping', `${key}: stat is public`);
        t.ok(thread.contextSwitches, `${key}: status is public`);
        t.ok(thread.cpuNs! > 0, `${key}: schedstat is public`);
        t.notOk('kernelStack' in thread);
      }
      const byField = new Map<string, typeof sample.limits>();
      for (const limit of sample.limits) byField.set(limit.field, [...(byField.get(limit.field) ?? []), limit]);
      t.same([...byField.keys()].sort(), ['blockedIn', 'kernelStack', 'wchan'], `${key}: what is missing`);
      for (const [field, limits] of byField) {
        t.equal(limits.length, 1, `${key}: one ${field} limit for the process, not one per thread`);
        t.equal(limits[0]!.code, 'EPERM');
        t.equal(limits[0]!.subject, `pid ${target.pid}`);
      }
      const blocked = byField.get('blockedIn')![0]!;
      t.match(blocked.reason, /syscall is not readable/);
      t.match(blocked.hint, /ptrace_scope/);
      t.match(blocked.hint, /CAP_SYS_PTRACE/);
      t.match(byField.get('wchan')![0]!.reason, /reads 0 for sleeping threads/);
      t.match(byField.get('kernelStack')![0]!.hint, /root/);
    }
  });

  t.test('snapshot({ pids }) carries the threads; a pid that is gone becomes a limit', async (t) => {
    const target = await start(t, 'deadlock');
    await waitFor(async () => (await sampleThreads(target.pid)).threads.length === 3, 'the deadlock threads');
    const snap = await snapshot({ pids: [target.pid, 0x7fffffff], accelerators: false });
    t.equal(snap.processes.length, 1);
    t.equal(snap.processes[0]!.pid, target.pid);
    t.equal(snap.processes[0]!.threads.length, 3);
    t.notOk('limits' in snap.processes[0]!, 'limits move to the snapshot');
    const gone = snap.limits.find((l) => l.subject === `pid ${0x7fffffff}`)!;
    t.equal(gone.code, 'ESRCH');
  });

  t.test('a sampler closed while it is still opening rejects with EINVAL', async (t) => {
    const target = await start(t, 'sleep');
    const sampler = createThreadSampler(target.pid);
    const pending = sampler.sample();
    sampler.close();
    const error = await rejection(pending);
    t.equal(error.code, 'EINVAL');
    t.match(error.message, /closed/);
  });

  t.test('a raw sampler and a one-shot sample of one process at the same time', async (t) => {
    const target = await start(t, 'sleep');
    const native = binding();
    const sampler = await native.openThreadSampler(target.pid, {});
    t.teardown(() => sampler.close());
    const [a, b] = await Promise.all([sampler.sample(), native.sampleThreads(target.pid, {})]);
    t.equal(a.pid, b.pid);
  });
}
