/**
 * Linux facts the verdict rules build on, read from real processes in known states
 * (test/targets/target.c): how long a thread has been off-CPU from one sample
 * (offCpuNs, from /proc/<pid>/task/<tid>/sched), checked against the clock and
 * against schedstat, and sampling chosen threads only (the `tids` option).
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { IokitSnapError } from '../src/errors';
import { binding } from '../src/native';
import { createThreadSampler, keepThreads, MAX_TIDS, sampleThreads, snapshot } from '../src/sample';
import { validateSnapshot } from '../src/snapshot-file';
import { start, startTarget, targetBinary, waitFor } from './helpers/targets';
import type { ThreadSample } from '../src/types';

const nowNs = (): number => Number(process.hrtime.bigint());
const MS = 1e6;
// What the bounds below allow beyond the clocks' own differences: a tick of staleness,
// the calibration's error, and the loop's own timing.
const SLACK_NS = 30 * MS;

/**
 * The time CPUs spent in interrupts and stolen by the hypervisor (/proc/stat irq, softirq,
 * steal; in clock ticks), which the scheduler's task clock leaves out: offCpuNs may fall
 * short of the wall time by what `cpu` (or, without one, any CPU) lost meanwhile.
 */
function lostNs(cpu?: number): number {
  const lines = fs.readFileSync('/proc/stat', 'utf8').split('\n').filter((line) => (cpu === undefined ? /^cpu\d/ : new RegExp(`^cpu${cpu} `)).test(line));
  return lines.reduce((sum, line) => {
    const fields = line.trim().split(/\s+/).map(Number);
    return sum + (fields[6]! + fields[7]! + fields[8]!) * 1e7;
  }, 0);
}

function thread(threads: ThreadSample[], tid: number): ThreadSample {
  const found = threads.find((x) => x.tid === tid);
  if (!found) throw new Error(`thread ${tid} not sampled`);
  return found;
}

function tidsOf(pid: number): number[] {
  return fs
    .readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

t.test('a snapshot carries offCpuNs: a non-negative number, optional', (t) => {
  const thread = { tid: 5, name: 'x', state: 'sleeping', userNs: 0, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: null };
  const with_ = (fields: Record<string, unknown>) => ({
    format: 'iokit-snap/1',
    takenAt: '2026-11-25T10:00:00.000Z',
    monotonicNs: 1,
    host: { platform: 'linux', arch: 'x64', osRelease: '6.18.44' },
    accelerators: [],
    processes: [{ pid: 5, name: 'x', sampledAtNs: 1, threads: [{ ...thread, ...fields }] }],
    limits: [],
  });
  t.ok(validateSnapshot(with_({ offCpuNs: 2785646119 })), 'a live thread');
  t.ok(validateSnapshot(with_({ offCpuNs: 0, main: true })), 'with a field that takes the full check');
  for (const bad of [-1, Number.NaN, '5', null]) {
    t.throws(() => validateSnapshot(with_({ offCpuNs: bad })), { code: 'EINVAL', message: /offCpuNs.*a non-negative number/ }, `offCpuNs ${String(bad)}`);
  }
  t.end();
});

if (process.platform === 'linux') linuxTests();
else t.pass('the procfs sampler is the Linux backend');

function linuxTests(): void {
  t.test('offCpuNs: a sleeping thread reads the time it has slept, a thread that keeps waking reads ~0, schedstat agrees', async (t) => {
    const spawnedAt = nowNs();
    const lostBefore = lostNs();
    const target = await start(t, 'tick');
    const readyAt = nowNs();
    const sleeper = Number(target.info.sleeper);
    const first = await sampleThreads(target.pid);
    t.same(first.limits, []);
    const asleep = await waitFor(async () => {
      const before = nowNs();
      const sample = await sampleThreads(target.pid);
      const after = nowNs();
      return thread(sample.threads, sleeper).offCpuNs! >= 1000 * MS && { sample, before, after };
    }, 'the sleeper off-CPU for a second');
    const slept = thread(asleep.sample.threads, sleeper);
    t.equal(slept.state, 'sleeping');
    const lost = lostNs() - lostBefore;
    t.ok(slept.offCpuNs! <= asleep.after - spawnedAt + SLACK_NS, `${slept.offCpuNs} ns: not longer than the target has lived`);
    // After it said so it may still have waited for a CPU before it slept: at most its whole run delay.
    const waited = slept.runDelayNs!;
    t.ok(
      slept.offCpuNs! >= asleep.before - readyAt - lost - waited - SLACK_NS,
      `${slept.offCpuNs} ns: at least since it said it was asleep, less ${lost} ns lost to interrupts and steal and ${waited} ns it waited for a CPU`,
    );
    t.equal(slept.cpuNs, thread(first.threads, sleeper).cpuNs, 'schedstat: it has not run in the meantime');
    // The main thread wakes every 2 ms: never long off-CPU, and its CPU time grows.
    const ticker = thread(asleep.sample.threads, target.pid);
    t.ok(ticker.offCpuNs! < 250 * MS, `the ticking thread: ${ticker.offCpuNs} ns`);
    t.ok(ticker.cpuNs! > thread(first.threads, target.pid).cpuNs!, 'schedstat: it ran');
    const basic = await sampleThreads(target.pid, { detail: 'basic' });
    t.ok(basic.threads.every((x) => !('offCpuNs' in x)), 'detail basic reads no sched file');
  });

  t.test("offCpuNs of threads on every CPU, against the clock of each one's own CPU", { skip: os.cpus().length < 2 && 'one CPU: one clock' }, async (t) => {
    // The scheduler's clocks of two CPUs drift apart for as long as the machine runs
    // (interrupt and stolen time differ per CPU): a sleeper pinned to each CPU must read
    // the wall time it slept, whichever CPU samples it.
    const binary = await targetBinary();
    const cpus = [...new Set([0, 1, os.cpus().length - 1])];
    const sleepers = await Promise.all(
      cpus.map(async (cpu) => {
        const spawnedAt = nowNs();
        const child = spawn('taskset', ['-c', String(cpu), binary, 'sleep'], { stdio: ['ignore', 'pipe', 'ignore'] });
        t.teardown(() => {
          child.kill('SIGKILL');
        });
        await new Promise((resolve) => child.stdout!.once('data', resolve));
        return { cpu, pid: child.pid!, spawnedAt, readyAt: nowNs(), lost: lostNs(cpu) };
      }),
    );
    await waitFor(async () => (await sampleThreads(sleepers[0]!.pid)).threads[0]!.offCpuNs! > 500 * MS, 'half a second asleep');
    for (const sleeper of sleepers) {
      const before = nowNs();
      const sample = await sampleThreads(sleeper.pid);
      const after = nowNs();
      const off = sample.threads[0]!.offCpuNs!;
      const lost = lostNs(sleeper.cpu) - sleeper.lost;
      const waited = sample.threads[0]!.runDelayNs!; // after "ready", it may have waited for its CPU before it slept
      t.same(sample.limits, []);
      t.ok(off <= after - sleeper.spawnedAt + SLACK_NS, `CPU ${sleeper.cpu}: ${off} ns, not more than the ${after - sleeper.spawnedAt} ns since it started`);
      t.ok(
        off >= before - sleeper.readyAt - lost - waited - SLACK_NS,
        `CPU ${sleeper.cpu}: ${off} ns, at least the ${before - sleeper.readyAt} ns since it was ready, less ${lost} ns lost and ${waited} ns waited`,
      );
    }
  });

  t.test('offCpuNs of a thread on a CPU this process may not use: none, and a limit that says why', { skip: os.cpus().length < 2 && 'one CPU' }, async (t) => {
    const binary = await targetBinary();
    const child = spawn('taskset', ['-c', '1', binary, 'sleep'], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    // A sampler confined to CPU 0 cannot read CPU 1's clock.
    const script = `require(${JSON.stringify(require.resolve('../lib'))}).sampleThreads(${child.pid}).then((s) => process.stdout.write(JSON.stringify(s)))`;
    const sample = JSON.parse(execFileSync('taskset', ['-c', '0', process.execPath, '-e', script], { encoding: 'utf8' })) as { threads: ThreadSample[]; limits: unknown[] };
    t.notOk('offCpuNs' in sample.threads[0]!);
    t.match(sample.limits, [{ field: 'offCpuNs', code: 'EPERM', reason: /clock of CPU 1\b.*this process may not run on CPU 1/, hint: /taskset/ }]);
  });

  t.test('offCpuNs: a spinning thread (R) is 0', async (t) => {
    const target = await start(t, 'spin');
    const sample = await waitFor(async () => {
      const s = await sampleThreads(target.pid);
      return thread(s.threads, target.pid).state === 'running' && s;
    }, 'the spinner running');
    t.equal(thread(sample.threads, target.pid).offCpuNs, 0);
  });

  t.test('offCpuNs from a reused sampler: grows with the clock while the thread is still, absent for one that ran', async (t) => {
    const target = await start(t, 'tick');
    const sleeper = Number(target.info.sleeper);
    const sampler = createThreadSampler(target.pid);
    t.teardown(() => sampler.close());
    const lostBefore = lostNs();
    // Each sample read its clock somewhere between the call and its return (a loaded
    // machine may hold the sampling thread anywhere in between): the bounds use those.
    const samples: Array<{ sample: Awaited<ReturnType<typeof sampler.sample>>; called: number; returned: number }> = [];
    const take = async () => {
      const called = nowNs();
      const sample = await sampler.sample();
      samples.push({ sample, called, returned: nowNs() });
    };
    await take();
    await waitFor(async () => {
      await take();
      return samples.length >= 4 && samples.at(-1)!.called - samples[0]!.returned >= 300 * MS;
    }, 'four samples 300 ms apart', 20000, 100);
    const lost = lostNs() - lostBefore;
    for (let i = 1; i < samples.length; i++) {
      const [first, second] = [samples[i - 1]!, samples[i]!];
      const [before, after] = [first.sample, second.sample];
      const still = [thread(before.threads, sleeper), thread(after.threads, sleeper)];
      t.equal(still[1]!.cpuNs, still[0]!.cpuNs, `sample ${i}: the sleeper has not run`);
      const grew = still[1]!.offCpuNs! - still[0]!.offCpuNs!;
      const [least, most] = [second.called - first.returned, second.returned - first.called];
      t.ok(grew <= most + SLACK_NS && grew >= least - lost - SLACK_NS, `sample ${i}: offCpuNs grew ${grew} ns, between ${least} and ${most} ns apart`);
      const ticks = [thread(before.threads, target.pid), thread(after.threads, target.pid)];
      if (ticks[1]!.cpuNs !== ticks[0]!.cpuNs) t.notOk('offCpuNs' in ticks[1]!, `sample ${i}: the ticking thread ran, so no offCpuNs`);
      else t.ok(ticks[1]!.offCpuNs! < 250 * MS, `sample ${i}: still for once, and briefly`);
    }
    t.ok(
      samples.slice(1).some((s) => !('offCpuNs' in thread(s.sample.threads, target.pid))),
      'the ticking thread ran between samples at least once',
    );
  });

  t.test('tids: only the chosen threads, each once, in the order given; others and strangers left out', async (t) => {
    const target = await start(t, 'threads', ['6']);
    const all = tidsOf(target.pid);
    t.equal(all.length, 7);
    const [a, b] = [all[2]!, all[5]!];
    const chosen = [b, a, b, process.pid, 0x7fffffff];
    const sample = await sampleThreads(target.pid, { tids: chosen });
    t.same(sample.threads.map((x) => x.tid), [b, a]);
    t.equal(sample.name, 'target', 'the process name without its main thread sampled');
    t.same(sample.limits, []);
    t.equal(thread(sample.threads, a).state, 'sleeping');
    t.ok(thread(sample.threads, a).offCpuNs! >= 0);
    t.same((await sampleThreads(target.pid, { tids: [] })).threads, [], 'none chosen: none sampled');
    // User stacks of just those threads.
    const stacks = await sampleThreads(target.pid, { tids: [a], stacks: true });
    t.same(stacks.threads.map((x) => x.tid), [a]);
    t.ok(stacks.threads[0]!.stack!.length > 0, 'its stack is walked');
    // A reused sampler takes the same choice every sample.
    const sampler = createThreadSampler(target.pid, { tids: [a, b] });
    t.teardown(() => sampler.close());
    for (let i = 0; i < 2; i++) t.same((await sampler.sample()).threads.map((x) => x.tid), [a, b], `sampler, sample ${i + 1}`);
  });

  t.test('tids: a process that is gone is ESRCH; a thread id as pid is EINVAL', async (t) => {
    const target = await startTarget('threads', ['2']);
    const [, worker] = tidsOf(target.pid);
    const wrong = await sampleThreads(worker!, { tids: [worker!] }).catch((e: unknown) => e);
    t.match(wrong, { code: 'EINVAL', message: new RegExp(`${worker} is a thread of process ${target.pid}`) });
    const sampler = createThreadSampler(target.pid, { tids: [worker!] });
    t.teardown(() => sampler.close());
    t.equal((await sampler.sample()).threads.length, 1);
    await target.stop();
    t.match(await sampleThreads(target.pid, { tids: [worker!] }).catch((e: unknown) => e), { code: 'ESRCH' });
    t.match(await sampler.sample().catch((e: unknown) => e), { code: 'ESRCH' });
  });

  t.test('tids on macOS: the sample is cut down in JS, with the result the Linux backend gives', async (t) => {
    const target = await start(t, 'threads', ['4']);
    const [, a, b] = tidsOf(target.pid);
    const native = binding();
    const linux = await sampleThreads(target.pid, { tids: [b!, a!, 1] });
    const sampler = createThreadSampler(target.pid, { tids: [b!, a!] });
    t.teardown(() => sampler.close());
    native.platform = 'darwin'; // the path taken there: every thread read, the chosen kept
    try {
      const filtered = await sampleThreads(target.pid, { tids: [b!, a!, 1] });
      t.same(filtered.threads.map((x) => x.tid), linux.threads.map((x) => x.tid));
      const filteredSampler = createThreadSampler(target.pid, { tids: [b!, a!] });
      t.same((await filteredSampler.sample()).threads.map((x) => x.tid), [b, a]);
      filteredSampler.close();
    } finally {
      native.platform = 'linux';
    }
    t.same((await sampler.sample()).threads.map((x) => x.tid), [b, a], 'the Linux sampler, for comparison');
    const sample = { pid: 1, threads: [{ tid: 3 }, { tid: 1 }, { tid: 2 }] };
    t.same(keepThreads(sample, [2, 3, 2, 9]).threads, [{ tid: 2 }, { tid: 3 }]);
  });

  t.test('a snapshot of live threads carries offCpuNs and passes its own schema', async (t) => {
    const target = await start(t, 'sleep');
    const snap = validateSnapshot(await snapshot({ pids: [target.pid], accelerators: false }));
    t.ok(snap.processes[0]!.threads[0]!.offCpuNs! >= 0);
  });

  t.test('tids: checked before anything is read', async (t) => {
    const bad: unknown[] = ['1', [0], [-3], [1.5], [Number.NaN], [2 ** 53], [1, '2'], { length: 1, 0: 1 }, new Array(MAX_TIDS + 1).fill(1)];
    for (const tids of bad) {
      const error = await sampleThreads(process.pid, { tids: tids as number[] }).catch((e: unknown) => e);
      t.type(error, IokitSnapError);
      t.match(error, { code: 'EINVAL', message: /sampleThreads\(\): tids must be an array of at most 4096 positive integer thread ids, got / });
      t.throws(() => createThreadSampler(process.pid, { tids: tids as number[] }), { code: 'EINVAL', message: /createThreadSampler\(\): tids/ });
    }
    t.match(await sampleThreads(process.pid, { tids: new Array(MAX_TIDS + 1).fill(1) }).catch((e: unknown) => e), { message: /got an array of 4097/ });
    t.equal((await sampleThreads(process.pid, { tids: new Array(MAX_TIDS).fill(process.pid) })).threads.length, 1, '4,096 is allowed');
    // The native glue checks too (the binding is called directly by tests and tools).
    for (const tids of ['x', [0], new Array(MAX_TIDS + 1).fill(1)]) {
      t.throws(() => binding().sampleThreads(process.pid, { tids: tids as number[] }), { code: 'EINVAL', message: /option 'tids' must be an array/ });
    }
  });
}
