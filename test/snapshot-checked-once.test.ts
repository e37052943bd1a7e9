// Snapshots are checked where they come in, once per object (src/snapshot-schema.ts): a
// hand-built document with a wrong field is still EINVAL naming the field at every entry
// point, but one that was checked before, or that the library made itself, is not walked
// again by compare() or the tracker. Whether a walk happened is seen through a getter on a
// thread field that only the check reads (`queue`, an imported report's field: the rules
// never read it on a live snapshot).
import t from 'tap';
import { compare } from '../src/analyze/compare';
import { ProgressTracker } from '../src/analyze/progress';
import { watch } from '../src/analyze/watch';
import { createThreadSampler, sampleAccelerators, sampleThreads, snapshot } from '../src/sample';
import { parseSnapshot, validateSnapshot } from '../src/snapshot-file';
import type { Snapshot, ThreadSample } from '../src/types';
import { blocked, proc, snap, thread } from './helpers/analyze';
import { start, waitFor } from './helpers/targets';
import * as path from 'node:path';

const EINVAL = (message: RegExp) => ({ name: 'IokitSnapError', code: 'EINVAL', message });

/** Counts the reads of `thread.queue` (absent: the getter answers undefined, as a missing field). */
function watchReads(target: ThreadSample): { reads: number } {
  const counter = { reads: 0 };
  Object.defineProperty(target, 'queue', {
    enumerable: false,
    configurable: true,
    get() {
      counter.reads++;
      return undefined;
    },
  });
  return counter;
}

function pair(): [Snapshot, Snapshot] {
  const futex = blocked('futex', 202);
  return [
    snap(0, [proc(100, [thread(100, { blockedIn: futex }), thread(101, { blockedIn: futex, kernelStack: ['futex_wait_queue+0x5e/0xa0'] })])]),
    snap(2000, [proc(100, [thread(100, { blockedIn: futex }), thread(101, { blockedIn: futex, kernelStack: ['futex_wait_queue+0x5e/0xa0'] })])]),
  ];
}

t.test('a hand-built snapshot with a wrong field is refused with EINVAL naming the field, at every entry point', async (t) => {
  const [healthy, hung] = pair();
  compare(healthy, hung); // both checked and remembered now
  const bad = (): Snapshot => {
    const [, fresh] = pair();
    (fresh.processes[0].threads[1].contextSwitches as unknown as Record<string, unknown>).voluntary = '12';
    return fresh;
  };
  const field = /processes\[0\]\.threads\[1\]\.contextSwitches\.voluntary must be a finite number, got "12"/;
  t.throws(() => compare(healthy, bad()), EINVAL(new RegExp(`compare\\(\\): the hung \\(second\\) argument is not an iokit-snap/1 snapshot: ${field.source}`)));
  t.throws(() => compare(bad(), hung), EINVAL(field));
  t.throws(() => new ProgressTracker().step(bad()), EINVAL(new RegExp(`ProgressTracker\\.step\\(\\): the sample .*${field.source}`)));
  t.throws(() => new ProgressTracker().setBaseline(bad()), EINVAL(field));
  t.throws(() => watch({ pid: process.pid, baseline: bad() }), EINVAL(new RegExp(`watch\\(\\): the baseline option .*${field.source}`)));
  t.throws(() => validateSnapshot(bad()), EINVAL(field));

  // A new document around parts that were checked before: the new parts are checked.
  const mixed = { ...hung, processes: [...hung.processes, { pid: 200, name: 'x', sampledAtNs: 1, threads: [{ ...hung.processes[0].threads[0], tid: 2.5 }] }] };
  t.throws(() => compare(healthy, mixed), EINVAL(/processes\[1\]\.threads\[0\]\.tid must be an integer, got 2\.5/));
  const badAccelerator = { ...hung, accelerators: [{ id: 'gpu0' }] } as unknown as Snapshot;
  t.throws(() => compare(healthy, badAccelerator), EINVAL(/accelerators\[0\]\.name must be a string, got nothing/));
  // A bad step does not poison a later good one.
  const tracker = new ProgressTracker();
  t.throws(() => tracker.step(bad()));
  t.ok(tracker.step(hung), 'the tracker goes on after a refused sample');
});

t.test('a snapshot is walked once: compare() and step() do not check it again', async (t) => {
  const [healthy, hung] = pair();
  const seen = watchReads(hung.processes[0].threads[1]);
  compare(healthy, hung);
  t.ok(seen.reads > 0, `the first compare() checks the hand-built snapshot (${seen.reads} reads)`);
  const first = seen.reads;
  compare(healthy, hung);
  compare(hung, healthy);
  const tracker = new ProgressTracker();
  tracker.setBaseline(hung);
  tracker.step(healthy);
  tracker.step(hung);
  t.equal(seen.reads, first, 'later compare(), setBaseline() and step() calls do not walk it again');

  // A copy is a new object: checked on its first use.
  const copy = { ...hung, processes: hung.processes.map((p) => ({ ...p, threads: [...p.threads] })) };
  compare(healthy, copy);
  t.ok(seen.reads > first, 'a copy with new thread lists is checked');
  const second = seen.reads;
  // A new document that reuses checked thread lists: only its own fields are checked.
  compare(healthy, { ...hung, takenAt: 'later' });
  t.equal(seen.reads, second, 'a thread list checked before is not walked again');

  // validateSnapshot() always walks, and a change it refuses is refused by compare() too.
  validateSnapshot(hung);
  t.ok(seen.reads > second, 'validateSnapshot() walks a remembered snapshot');
  (hung.processes[0].threads[0] as unknown as Record<string, unknown>).state = 7;
  t.throws(() => validateSnapshot(hung), EINVAL(/processes\[0\]\.threads\[0\]\.state must be a string, got 7/));
  t.throws(() => compare(healthy, hung), EINVAL(/processes\[0\]\.threads\[0\]\.state must be a string, got 7/), 'refused by validateSnapshot: no longer remembered');
  hung.processes[0].threads[0].state = 'sleeping';
  t.doesNotThrow(() => compare(healthy, hung), 'fixed, it passes again');
});

t.test('parseSnapshot() checks once: what it returns is not walked again', async (t) => {
  const [healthy, hung] = pair();
  const loaded = parseSnapshot(JSON.stringify(hung));
  const seen = watchReads(loaded.processes[0].threads[0]);
  compare(healthy, loaded);
  new ProgressTracker().step(loaded);
  t.equal(seen.reads, 0, 'a parsed snapshot was checked by parseSnapshot, not again');
});

t.test('what the library made is not walked: snapshot(), the samplers, the accelerators', async (t) => {
  const target = await start(t, 'threads', ['3']);
  const sysRoot = path.join(__dirname, 'fixtures', 'sys', 'nvidia-h100');
  const take = (): Promise<Snapshot> => snapshot({ pids: [target.pid], sysRoot, nvml: false });
  const healthy = await waitFor(async () => {
    const s = await take();
    return s.processes[0]?.threads.length === 4 && s;
  }, 'the target and its 3 threads sampled');
  const hung = await take();
  t.ok(hung.accelerators.length > 0, 'the fixture tree has accelerators');
  const seen = watchReads(hung.processes[0].threads[2]);
  compare(healthy, hung);
  t.equal(seen.reads, 0, 'a snapshot() result is not walked by compare()');

  // What watch() and serve feed the tracker: a new sample object each step around the
  // samplers' thread lists and sampleAccelerators' records.
  const sampler = createThreadSampler(target.pid);
  t.teardown(() => sampler.close());
  const tracker = new ProgressTracker();
  const { accelerators } = await sampleAccelerators({ sysRoot, nvml: false });
  for (let i = 0; i < 2; i++) {
    const { limits, ...sample } = await sampler.sample();
    const counter = watchReads(sample.threads[1]);
    tracker.step({ monotonicNs: sample.sampledAtNs, processes: [sample], accelerators, limits, host: { platform: 'linux' } });
    t.equal(counter.reads, 0, `sampler sample ${i + 1}: its threads are not walked by step()`);
  }
  const once = await sampleThreads(target.pid);
  const counter = watchReads(once.threads[0]);
  tracker.step({ monotonicNs: once.sampledAtNs + 1, processes: [{ ...once }], accelerators: [], limits: [] });
  t.equal(counter.reads, 0, 'a sampleThreads() result is not walked by step()');

  // What the library remembers without a walk does fit: the whole check agrees.
  for (const made of [healthy, hung]) t.doesNotThrow(() => validateSnapshot(made), 'a snapshot() result passes the whole check');
  t.doesNotThrow(() => validateSnapshot({ ...healthy, accelerators, processes: [{ ...once }] }), 'so do the samplers’ and the accelerators’ records');
});

t.test('the fast thread check and the whole one agree on stacks: what one refuses the other names', async (t) => {
  const frame = { pc: 0x7f00_0000_1000, module: '/usr/lib/libc.so.6', offset: 0x1000, symbol: '__futex_abstimed_wait_common', symbolOffset: 0x46 };
  const withStack = (over: Partial<ThreadSample>): Snapshot => snap(0, [proc(100, [thread(100, { pc: frame.pc, ...over })])]);
  t.doesNotThrow(() => validateSnapshot(withStack({ stack: [frame, { pc: null, module: null, offset: null }], kernelStack: ['do_sys_poll+0x1/0x2'] })), 'live stacks');
  t.doesNotThrow(() => validateSnapshot(withStack({ stack: [{ ...frame, text: '0x1000 libc', unreliable: true }] })), "an imported report's frame takes the whole check");
  t.throws(() => validateSnapshot(withStack({ stack: [frame, null as never] })), EINVAL(/processes\[0\]\.threads\[0\]\.stack\[1\] must be an object, got null/));
  t.throws(() => validateSnapshot(withStack({ stack: 'x' as never })), EINVAL(/processes\[0\]\.threads\[0\]\.stack must be an array, got "x"/));
  t.throws(() => validateSnapshot(withStack({ stack: [{ ...frame, symbolOffset: '0x46' as never }] })), EINVAL(/stack\[0\]\.symbolOffset must be a finite number or null, got "0x46"/));
  t.throws(() => validateSnapshot(withStack({ kernelStack: ['a', 1 as never] })), EINVAL(/threads\[0\]\.kernelStack\[1\] must be a string, got 1/));
  t.throws(() => validateSnapshot(withStack({ kernelStack: {} as never })), EINVAL(/threads\[0\]\.kernelStack must be an array, got an object/));
});
