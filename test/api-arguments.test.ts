// What callers pass to the API: every bad option, pid or argument is IokitSnapError EINVAL
// naming what the caller passed (never an option it did not pass, never `got null` for
// NaN, never a TypeError from a BigInt, a null or a getter that throws).
import t from 'tap';
import { compare } from '../src/analyze/compare';
import { ProgressTracker } from '../src/analyze/progress';
import { watch, type Watcher } from '../src/analyze/watch';
import { IokitSnapError } from '../src/errors';
import { MAX_TIMER_MS } from '../src/options';
import { createThreadSampler, sampleAccelerators, sampleThreads, snapshot } from '../src/sample';
import { LINUX, snap } from './helpers/analyze';

const EINVAL = (message: RegExp) => ({ name: 'IokitSnapError', code: 'EINVAL', message });

/** An options object whose `key` getter throws, as a caller's proxy or accessor might. */
function throwing(key: string, extra: object = {}): Record<string, unknown> {
  return Object.defineProperty({ ...extra }, key, {
    enumerable: true,
    get() {
      throw new TypeError('getter exploded');
    },
  });
}

t.test('durations: NaN is named NaN; past the timer limit (2^31 − 1 ms) is EINVAL; the option named is the one passed', async (t) => {
  await t.rejects(sampleThreads(process.pid, { timeoutMs: Number.NaN }), EINVAL(/sampleThreads\(\): timeoutMs must be a positive number of milliseconds, got NaN$/));
  await t.rejects(sampleAccelerators({ timeoutMs: 1e15 }), EINVAL(/sampleAccelerators\(\): timeoutMs must be at most 2147483647 ms \(about 24\.8 days/));
  await t.rejects(sampleAccelerators({ timeoutMs: 1e15 }), { message: /^(?!.*callBudgetMs)/ }, 'never the internal callBudgetMs');
  await t.rejects(sampleAccelerators({ callTimeoutMs: 2 ** 32 }), EINVAL(/callTimeoutMs must be at most/));
  await t.rejects(sampleThreads(process.pid, { timeoutMs: MAX_TIMER_MS + 1 }), EINVAL(/timeoutMs must be at most/));
  t.throws(() => createThreadSampler(process.pid, { timeoutMs: 3e9 }), EINVAL(/createThreadSampler\(\): timeoutMs must be at most/));
  await t.rejects(snapshot({ timeoutMs: 3e9 }), EINVAL(/snapshot\(\): timeoutMs must be at most/), 'a bad option is thrown, not turned into limits');
  await t.rejects(snapshot({ accelerators: 'no' as unknown as boolean }), EINVAL(/snapshot\(\): accelerators must be true or false, got "no"/));
  for (const name of ['intervalMs', 'stallMs', 'timeoutMs']) {
    t.throws(() => watch({ pid: process.pid, [name]: MAX_TIMER_MS + 1 }), EINVAL(new RegExp(`watch\\(\\): ${name} must be at most 2147483647 ms`)), name);
  }
  t.throws(() => compare(snap(0, []), snap(1, []), { stallMs: 1e12 }), EINVAL(/compare\(\): stallMs must be at most/));
  // The longest interval allowed: the per-sample deadline watch derives from it stays within the limit.
  const longest: Watcher = watch({ pid: process.pid, intervalMs: MAX_TIMER_MS, accelerators: false });
  longest.close();
  await longest.done;
  t.equal(longest.intervalMs, MAX_TIMER_MS);
});

t.test('pids: a BigInt, a string or a fraction is EINVAL, never a TypeError from printing it', async (t) => {
  await t.rejects(sampleThreads(1n as unknown as number), EINVAL(/sampleThreads\(\): pid must be a positive integer process id, got 1n \(a BigInt\)/));
  t.throws(() => createThreadSampler(2n as unknown as number), EINVAL(/got 2n \(a BigInt\)/));
  await t.rejects(snapshot({ pids: [process.pid, 3n as unknown as number] }), EINVAL(/snapshot\(\): pids\[1\] must be a positive integer process id, got 3n/));
  await t.rejects(snapshot({ pids: 'all' as unknown as number[] }), EINVAL(/pids must be an array of process ids, got "all"/));
  t.throws(() => watch({ pid: 4n as unknown as number }), EINVAL(/watch\(\): pid must be a positive integer process id, got 4n/));
  t.throws(() => watch(undefined as never), EINVAL(/watch\(\): give the process to watch as \{ pid \} or \{ pids: \[\.\.\.\] \}/));
  t.throws(() => watch({ pids: [process.pid, 5n as unknown as number] }), EINVAL(/pids\[1\]/));
});

t.test('arguments: null options, a baseline that is not a snapshot, a tracker fed an empty object', async (t) => {
  const healthy = snap(0, []);
  const hung = snap(1000, []);
  t.throws(() => compare(healthy, hung, null as unknown as object), EINVAL(/compare\(\): options must be an object, got null/));
  t.throws(() => compare(healthy, hung, 5 as unknown as object), EINVAL(/options must be an object, got 5/));
  t.throws(() => compare(healthy, hung, { stallMs: 'x'.repeat(50) as never }), EINVAL(/got "x{40}…"$/), 'a long string is cut');
  t.throws(() => compare(healthy, hung, { spinRatio: -1 }), EINVAL(/compare\(\): spinRatio must be a non-negative number, got -1/));
  t.throws(() => compare(null as never, hung), EINVAL(/the healthy \(first\) argument is not an iokit-snap\/1 snapshot: the document must be an object, got null/));
  t.throws(() => compare(healthy, { ...hung, limits: [null] } as never), EINVAL(/hung \(second\) argument is not an iokit-snap\/1 snapshot: limits\[0\] must be an object, got null/));
  t.throws(() => watch({ pid: process.pid, baseline: {} as never }), EINVAL(/watch\(\): the baseline option is not an iokit-snap\/1 snapshot: monotonicNs must be a finite number/));
  t.throws(() => watch({ pid: process.pid, detail: 'most' as never }), EINVAL(/detail must be 'basic' or 'full', got "most"/));
  t.throws(() => watch({ pid: process.pid, procRoot: 5 as never }), EINVAL(/procRoot must be a directory path, got 5/));
  t.throws(() => watch({ pid: process.pid, signal: {} as never }), EINVAL(/signal must be an AbortSignal/));
  t.throws(() => watch({ pid: process.pid, accelerators: 1 as never }), EINVAL(/accelerators must be true or false/));
  t.throws(() => watch({ pid: process.pid, expectExit: 'yes' as never }), EINVAL(/expectExit must be true or false/));
  t.throws(() => new ProgressTracker(null as never), EINVAL(/ProgressTracker: options must be an object/));
  const tracker = new ProgressTracker();
  t.throws(() => tracker.setBaseline({} as never), EINVAL(/ProgressTracker\.setBaseline\(\): the baseline is not an iokit-snap\/1 snapshot/));
  t.throws(() => tracker.step({ ...hung, processes: [{ pid: 1, name: 'x', sampledAtNs: 0, threads: [{ tid: 1 }] }] } as never), EINVAL(/ProgressTracker\.step\(\): the sample .*processes\[0\]\.threads\[0\]\.name/));
  t.ok(tracker.step({ monotonicNs: 0, processes: [], accelerators: [], limits: [], host: LINUX }), 'a sample without the snapshot header is fine');
});

t.test('a getter that throws is EINVAL naming the option, for every entry point', async (t) => {
  const pid = process.pid;
  const cases: [string, () => unknown][] = [
    ['sampleAccelerators', () => sampleAccelerators(throwing('sysRoot') as never)],
    ['sampleThreads', () => sampleThreads(pid, throwing('detail') as never)],
    ['createThreadSampler', () => createThreadSampler(pid, throwing('timeoutMs') as never)],
    ['snapshot', () => snapshot(throwing('pids') as never)],
    ['snapshot threads', () => snapshot({ threads: throwing('kernelStacks') as never })],
    ['compare', () => compare(snap(0, []), snap(1, []), throwing('stallMs') as never)],
    ['watch', () => watch(throwing('intervalMs', { pid }) as never)],
    ['ProgressTracker', () => new ProgressTracker(throwing('spinRatio') as never)],
  ];
  for (const [who, run] of cases) {
    let error: unknown;
    try {
      await run();
    } catch (caught) {
      error = caught;
    }
    t.ok(error instanceof IokitSnapError, `${who}: an IokitSnapError`);
    t.match(error, EINVAL(/reading option (sysRoot|detail|timeoutMs|pids|kernelStacks|stallMs|intervalMs|spinRatio) threw: getter exploded/), who);
  }
  const proxy = new Proxy({}, { get: () => { throw new Error('trap'); } });
  await t.rejects(sampleThreads(pid, proxy), EINVAL(/reading option detail threw: trap/), 'a proxy trap too');
  const notAnError = Object.defineProperty({}, 'stallMs', {
    get() {
      throw 'a string'; // eslint-disable-line no-throw-literal
    },
  });
  t.throws(() => compare(snap(0, []), snap(1, []), notAnError), EINVAL(/reading option stallMs threw: a string$/), 'a thrown non-Error');
});
