/**
 * watch() on real processes in known states (test/targets/target.c), with small intervals.
 * Every wait polls with a deadline; every target and child is killed in teardown. The few
 * branches a live system cannot reach on demand (a sampler failing with EPERM as root, a
 * host probe that rejects) load watch.ts with those imports mocked.
 */
import t, { type Test } from 'tap';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { watch, Watcher } from '../src/analyze';
import type { ExitEvent, HangEvent, SampleEvent, WatchEvent, WatchOptions } from '../src/analyze/types';
import { IokitSnapError } from '../src/errors';
import * as sample from '../src/sample';
import { monotonicNs, sampleThreads } from '../src/sample';
import type { ProcessSample, Snapshot, ThreadSampler, ThreadSampleResult } from '../src/types';
import { accelerator, findingsOf, start, threadIn, threadsOf } from './helpers/analyze';

/** The watch is driven against real Linux targets (test/targets/target.c) and /proc-shaped trees. */
const linux = process.platform === 'linux' ? false : 'the watch tests drive Linux targets and /proc trees';
import { waitFor } from './helpers/targets';

const FAST: Partial<WatchOptions> = { intervalMs: 100, stallMs: 600, accelerators: false };
const DEADLINE_MS = 20000;
/** Pids that cannot exist (above any pid_max) but pass the pid check. */
const NO_PID = 0x7fff0000;

const TYPES = ['sample', 'hang', 'recover', 'exit', 'error', 'close'] as const;

/** Every event the watcher emits, in order, as the EventEmitter form gives them. */
function record(w: Watcher): { events: WatchEvent[]; closes: number; of<K extends WatchEvent['type']>(type: K): Extract<WatchEvent, { type: K }>[] } {
  const log = {
    events: [] as WatchEvent[],
    closes: 0,
    of<K extends WatchEvent['type']>(type: K) {
      return log.events.filter((e): e is Extract<WatchEvent, { type: K }> => e.type === type);
    },
  };
  for (const type of TYPES) {
    if (type === 'close') w.on('close', () => log.closes++);
    else w.on(type, (e: WatchEvent) => log.events.push(e));
  }
  return log;
}

/** A watcher that is closed in teardown, whatever the test did. */
function watching(t: { teardown(fn: () => unknown): void }, options: WatchOptions): Watcher {
  const w = watch(options);
  t.teardown(async () => {
    w.close();
    await w.done;
  });
  return w;
}

/** Iterate until `stop(event)` says so; closes the watcher after DEADLINE_MS so a test fails instead of hanging. */
async function iterate(w: Watcher, stop: (e: WatchEvent, all: WatchEvent[]) => boolean | void): Promise<WatchEvent[]> {
  const guard = setTimeout(() => w.close(), DEADLINE_MS);
  const all: WatchEvent[] = [];
  try {
    for await (const e of w) {
      all.push(e);
      if (stop(e, all)) break;
    }
  } finally {
    clearTimeout(guard);
  }
  return all;
}

function threwEinval(t: Test, fn: () => unknown, message: RegExp, what: string): void {
  t.throws(fn, { name: 'IokitSnapError', code: 'EINVAL', message }, what);
}

/** Block this whole process (event loop and timers) for `ms`, as a SIGSTOP or an overload would. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

t.test('options are checked synchronously: IokitSnapError EINVAL', async (t) => {
  threwEinval(t, () => watch(null as unknown as WatchOptions), /options must be an object/, 'null options');
  threwEinval(t, () => watch({}), /give the process to watch as \{ pid \} or \{ pids: \[\.\.\.\] \}/, 'no pid');
  threwEinval(t, () => watch({ pids: [] }), /give the process to watch/, 'empty pids');
  threwEinval(t, () => watch({ pids: 5 as unknown as number[] }), /give the process to watch/, 'pids not an array');
  for (const pid of [0, -1, 1.5, Number.NaN, '42']) {
    const shown = typeof pid === 'string' ? `"${pid}"` : String(pid);
    threwEinval(t, () => watch({ pid: pid as number }), new RegExp(`watch\\(\\): pid must be a positive integer process id, got ${shown}$`), `pid ${String(pid)}`);
  }
  threwEinval(t, () => watch({ pids: [process.pid, 0] }), /pids\[1\] must be a positive integer process id, got 0/, 'one bad pid among good ones');
  for (const intervalMs of [0, -100, Number.NaN, Number.POSITIVE_INFINITY, '100']) {
    threwEinval(t, () => watch({ pid: process.pid, intervalMs: intervalMs as number }), /intervalMs must be a positive number of milliseconds/, `intervalMs ${String(intervalMs)}`);
  }
  threwEinval(t, () => watch({ pid: process.pid, stallMs: -1 }), /stallMs must be a non-negative number of milliseconds, got -1/, 'stallMs -1');
  for (const spinRatio of [Number.NaN, -0.5, '0.9']) {
    threwEinval(t, () => watch({ pid: process.pid, spinRatio: spinRatio as number }), /spinRatio must be a non-negative number/, `spinRatio ${String(spinRatio)}`);
  }
  threwEinval(t, () => watch({ pid: process.pid, timeoutMs: 0 }), /timeoutMs must be a positive number of milliseconds, got 0/, 'timeoutMs 0');
  const e = (() => {
    try {
      watch({ pid: -5 });
    } catch (error) {
      return error;
    }
  })();
  t.ok(e instanceof IokitSnapError);

  const w = watching(t, { pid: process.pid, stallMs: 0, accelerators: false });
  t.equal(w.intervalMs, 500, 'default interval');
  t.equal(w.stallMs, 0, 'stallMs 0 is allowed');
  t.equal(watching(t, { pid: process.pid, accelerators: false }).stallMs, 5000, 'default stall for watch');
  t.ok(w instanceof Watcher);
});

t.test('deadlock: a hang event from for await names the futex-stalled threads; leaving the loop closes the watcher', { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  await waitFor(async () => {
    const s = await sampleThreads(target.pid);
    return [target.info.a, target.info.b].every((tid) => s.threads.find((th) => th.tid === Number(tid))?.blockedIn?.call === 'futex');
  }, 'threads a and b in futex');
  // Stalls are timed by when each sample was taken, which lies between this moment and its
  // event's stamp (a first sample, opening the sampler, can take longer than the rest).
  const watchedFromNs = monotonicNs();
  const w = watching(t, { pid: target.pid, ...FAST });
  const log = record(w);
  const seen = await iterate(w, (e) => e.type === 'hang');
  const hang = seen.at(-1) as HangEvent;
  t.equal(hang?.type, 'hang', 'a hang event');
  await w.done;
  t.pass('done resolved after break');
  t.equal(log.closes, 1, "'close' emitted once");

  t.match(seen[0], { type: 'sample', verdict: 'healthy', findings: [], threads: 3 }, 'the first sample has no window yet');
  const before = seen.at(-2) as SampleEvent;
  t.match(before, { type: 'sample', verdict: 'hung', monotonicNs: hang.monotonicNs }, 'the sample that turned hung comes first');
  // Not before each stalled thread has been still for stallMs: since the watch began, or before it as the kernel's off-CPU clock proves.
  t.ok(hang.report.findings.filter((f) => f.severity === 'critical').every((f) => (f.durationMs ?? 0) >= 600), 'no critical stall shorter than stallMs');
  t.equal(hang.report.verdict, 'hung');
  for (const tid of [target.info.a!, target.info.b!]) {
    const [finding] = findingsOf(hang.report, tid);
    t.match(
      finding,
      {
        kind: 'stalled',
        severity: 'critical',
        ref: { pid: target.pid },
        // Its stack is taken (a watch examines a futex wait by its stack, once): a mutex.
        // A glibc mutex by its futex word (FUTEX_WAIT expecting 2), or by its stack once taken.
        message: /^blocked acquiring a lock( \(glibc mutex: (__lll_lock_wait ← )?pthread_mutex_lock ← \w+.*\))? in futex for at least/,
        evidence: [{ field: 'blockedIn.call', before: 'futex', after: 'futex' }],
      },
      `thread ${tid}`,
    );
    t.ok(finding!.durationMs! >= 600);
  }
  t.same(hang.report.findings, before.findings, 'the sample event carries the same findings');
  t.match(hang.at, /^\d{4}-\d\d-\d\dT/);

  // After the end, a new iterator finishes at once; closing again is harmless.
  const after: WatchEvent[] = [];
  for await (const e of w) after.push(e);
  t.same(after, []);
  w.close();
  w.close();
  t.equal(log.closes, 1);
});

t.test("deadlock: .on('hang') gets the same event; close() twice is safe", { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  const w = watching(t, { pid: target.pid, ...FAST });
  const log = record(w);
  const hang = await waitFor(() => log.of('hang')[0], 'a hang event', DEADLINE_MS);
  t.equal(hang.report.verdict, 'hung');
  t.ok(findingsOf(hang.report, target.info.a!).some((f) => f.kind === 'stalled' && f.evidence.some((e) => e.field === 'blockedIn.call' && e.after === 'futex')));
  t.ok(findingsOf(hang.report, target.info.b!).some((f) => f.kind === 'stalled' && f.severity === 'critical'));
  w.close();
  w.close();
  await w.done;
  const count = log.events.length;
  t.equal(log.closes, 1);
  await waitFor(() => monotonicNs() > hang.monotonicNs + 300e6, 'three intervals to pass', DEADLINE_MS);
  t.equal(log.events.length, count, 'no events after close');
  t.equal(log.of('hang').length, 1, 'a hang is reported once, not every sample');
});

// poll-idle: a poll the watch's own stack walk interrupts is resumed as restart_syscall (epoll_wait
// is restarted as itself): still the event loop's wait, not a loop that left for a sleep.
for (const mode of ['epoll-idle', 'poll-idle'] as const) {
t.test(`${mode} watched for 3 s: sample events, all healthy, no hang (false-positive check)`, { skip: linux }, async (t) => {
  const target = await start(t, mode);
  await waitFor(async () => threadIn(await threadsOf(target.pid), target.pid)?.state === 'sleeping', 'the server parked in its wait');
  const w = watching(t, { pid: target.pid, ...FAST });
  const log = record(w);
  await waitFor(() => {
    const samples = log.of('sample');
    return samples.length >= 2 && samples.at(-1)!.monotonicNs - samples[0]!.monotonicNs >= 3000e6;
  }, '3 s of samples', DEADLINE_MS);
  w.close();
  await w.done;
  const samples = log.of('sample');
  t.ok(samples.length >= 5, `${samples.length} samples`);
  t.same(log.of('hang'), []);
  t.same(log.of('error'), []);
  for (const s of samples) {
    t.match(s, { verdict: 'healthy', findings: [], threads: 1 });
  }
  t.same(
    log.events.filter((e) => e.type !== 'sample'),
    [],
    'nothing but samples',
  );
});
}

t.test("detail 'basic' on an idle server: no hang (what ps shows cannot tell idle from stuck)", { skip: linux }, async (t) => {
  const target = await start(t, 'epoll-idle');
  await waitFor(async () => threadIn(await threadsOf(target.pid), target.pid)?.state === 'sleeping', 'the server parked in epoll_wait');
  const w = watching(t, { pid: target.pid, ...FAST, detail: 'basic' });
  const log = record(w);
  await waitFor(() => {
    const samples = log.of('sample');
    return samples.length >= 2 && samples.at(-1)!.monotonicNs - samples[0]!.monotonicNs >= 1500e6;
  }, '1.5 s of samples', DEADLINE_MS);
  t.same(
    log.of('hang').map((h) => h.report.findings.map((f) => [f.severity, f.message])),
    [],
    'no hang event',
  );
  t.ok(log.of('sample').every((s) => s.verdict !== 'hung'));
});

t.test('recover: a SIGSTOPped target hangs (stopped), and recovers after SIGCONT', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  process.kill(target.pid, 'SIGSTOP');
  const w = watching(t, { pid: target.pid, ...FAST });
  const log = record(w);
  const hang = await waitFor(() => log.of('hang')[0], 'a hang event', DEADLINE_MS);
  t.match(hang.report.findings, [{ kind: 'stopped', severity: 'critical', ref: { pid: target.pid, tid: target.pid }, message: /kill -CONT/ }]);
  t.ok(log.of('sample').some((s) => s.verdict === 'suspect'), 'stopped but not yet for stallMs: suspect first');
  process.kill(target.pid, 'SIGCONT');
  const recover = await waitFor(() => log.of('recover')[0], 'a recover event', DEADLINE_MS);
  t.ok(recover.hungForMs > 0, `hung for ${recover.hungForMs} ms`);
  t.equal(recover.hungForMs, (recover.monotonicNs - hang.monotonicNs) / 1e6);
  const order = log.events.filter((e) => e.type !== 'sample').map((e) => e.type);
  t.same(order, ['hang', 'recover']);
  const at = log.events.indexOf(recover);
  t.match(log.events[at - 1], { type: 'sample', verdict: 'healthy' }, 'the sample that ended it');
});

t.test('the process exits: an exit event, and the iteration ends', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const w = watching(t, { pid: target.pid, ...FAST });
  let killed = false;
  const events = await iterate(w, (e) => {
    if (e.type === 'sample' && !killed) {
      killed = true;
      void target.stop();
    }
  });
  const exit = events.at(-1) as ExitEvent;
  t.match(exit, { type: 'exit', pid: target.pid }, 'the last event is the exit');
  t.equal(events.filter((e) => e.type === 'exit').length, 1);
  await w.done;
  t.same(
    events.filter((e) => e.type === 'error' || e.type === 'hang'),
    [],
  );
});

t.test('a pid that does not exist: an error event (ESRCH), not an exit; the others are still watched', { skip: linux }, async (t) => {
  // A pid that was never seen did not exit while watched: the watch was pointed at nothing.
  const alone = watching(t, { pid: NO_PID, ...FAST });
  const events = await iterate(alone, () => false);
  t.match(events, [
    { type: 'error', error: { name: 'IokitSnapError', code: 'ESRCH', message: new RegExp(`no process with pid ${NO_PID}`) } },
    { type: 'sample', verdict: 'healthy', threads: 0, findings: [] },
  ]);
  t.equal(events.length, 2, 'then the watch ends: nothing is left to watch');
  await alone.done;

  const target = await start(t, 'sleep');
  const both = watching(t, { pids: [NO_PID, target.pid, target.pid], ...FAST });
  const log = record(both);
  await waitFor(() => log.of('sample').length >= 3, 'three samples', DEADLINE_MS);
  t.match(log.of('error'), [{ error: { code: 'ESRCH' } }]);
  t.equal(log.of('error').length, 1, 'reported once');
  t.same(log.of('exit'), []);
  t.ok(log.of('sample').every((s) => s.threads === 1), 'the live pid is watched on, once (pids are deduplicated)');
});

t.test('an AbortSignal stops the watch; an aborted one never starts it', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const controller = new AbortController();
  const w = watching(t, { pid: target.pid, ...FAST, signal: controller.signal });
  const log = record(w);
  await waitFor(() => log.of('sample').length >= 1, 'a sample', DEADLINE_MS);
  controller.abort();
  await w.done;
  t.equal(log.closes, 1);
  const count = log.events.length;
  const rest: WatchEvent[] = [];
  for await (const e of w) rest.push(e);
  t.same(rest, [], 'the iteration is over');
  await waitFor(() => monotonicNs() > (log.events.at(-1)?.monotonicNs ?? 0) + 300e6, 'three intervals', DEADLINE_MS);
  t.equal(log.events.length, count, 'no samples after the abort');

  const never = watching(t, { pid: target.pid, ...FAST, signal: AbortSignal.abort() });
  const neverLog = record(never);
  const events = await iterate(never, () => false);
  await never.done;
  t.same(events, []);
  t.same(neverLog.events, []);
  t.equal(neverLog.closes, 1);
});

t.test('close() wakes an iterator that waits for the next event', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const w = watching(t, { pid: target.pid, ...FAST, intervalMs: 60_000 });
  const iterator = w[Symbol.asyncIterator]();
  t.match(await iterator.next(), { done: false, value: { type: 'sample' } });
  const pending = iterator.next();
  w.close();
  t.same(await pending, { done: true, value: undefined });
  t.same(await iterator.next(), { done: true, value: undefined }, 'and stays finished');
  await w.done;
  t.same(await iterator.return!(), { done: true, value: undefined }, 'return() after the end is harmless');
});

t.test('baseline: the snapshot given as baseline decides which waits are idle', { skip: linux }, async (t) => {
  const target = await start(t, 'poll-idle');
  const real = await waitFor(async () => {
    const s = await threadsOf(target.pid);
    const main = threadIn(s, target.pid);
    return main?.state === 'sleeping' && /^p?poll$/.test(main.blockedIn?.call ?? '') && s;
  }, 'the poller parked in poll');
  // The same process, as if it had been waiting on a lock when it was healthy.
  const elsewhere: Snapshot = JSON.parse(JSON.stringify(real));
  threadIn(elsewhere, target.pid)!.blockedIn = { call: 'futex', number: 202 };

  const judged = watching(t, { pid: target.pid, ...FAST, baseline: elsewhere });
  const control = watching(t, { pid: target.pid, ...FAST, baseline: real });
  const judgedLog = record(judged);
  const controlLog = record(control);
  const waiting = await waitFor(() => judgedLog.of('sample').find((s) => s.findings.length > 0), 'a finding against the baseline', DEADLINE_MS);
  t.match(waiting, {
    verdict: 'healthy',
    findings: [{ kind: 'waiting', severity: 'info', ref: { tid: target.pid }, message: /it was not parked there in the baseline$/ }],
  });
  await waitFor(() => {
    const s = controlLog.of('sample');
    return s.length >= 2 && s.at(-1)!.monotonicNs - s[0]!.monotonicNs > 900e6;
  }, 'the control past stallMs', DEADLINE_MS);
  t.ok(controlLog.of('sample').every((s) => s.findings.length === 0), 'with the real baseline the poller is idle');

  // Accelerators of the baseline are the "before" of the first sample.
  const gpu = accelerator();
  const gone = watching(t, { pid: target.pid, ...FAST, baseline: { ...real, accelerators: [gpu] } });
  const goneLog = record(gone);
  const first = await waitFor(() => goneLog.of('sample')[0], 'the first sample', DEADLINE_MS);
  t.match(first.findings, [{ kind: 'accelerator-disappeared', ref: { accelerator: '0000:01:00.0' } }]);
});

t.test('accelerators are sampled with the threads; a failed accelerator probe does not stop the watch', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-watch-sys-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const notADirectory = path.join(dir, 'file');
  fs.writeFileSync(notADirectory, '');
  for (const sysRoot of [dir, notADirectory]) {
    const w = watching(t, { pid: target.pid, intervalMs: 100, stallMs: 600, sysRoot });
    const log = record(w);
    await waitFor(() => log.of('sample').length >= 2, `two samples with sysRoot ${sysRoot}`, DEADLINE_MS);
    w.close();
    await w.done;
    t.match(log.of('sample'), [{ verdict: 'healthy', threads: 1 }, { verdict: 'healthy', threads: 1 }], sysRoot);
    t.same(log.of('error'), []);
  }
});

/** A procRoot whose pid 4242 has fifos where procfs has files: opening them blocks, as a read of a wedged process can. */
function wedgedProc(t: { teardown(fn: () => unknown): void }): { root: string; pid: number; release(): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-watch-proc-'));
  const pid = 4242;
  const task = path.join(root, String(pid), 'task', String(pid));
  fs.mkdirSync(task, { recursive: true });
  const fifos = [path.join(root, String(pid), 'stat'), path.join(task, 'stat')];
  for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
  // A writer that opens and closes lets a blocked open return (and its read see EOF).
  const release = () => {
    for (const fifo of fifos) fs.closeSync(fs.openSync(fifo, fs.constants.O_RDWR));
  };
  t.teardown(() => {
    release();
    fs.rmSync(root, { recursive: true, force: true });
  });
  // The wedge clears: the files become readable (this process's own stat line, as pid 4242).
  const heal = () => {
    release();
    const line = fs.readFileSync('/proc/self/stat', 'utf8').replace(/^\d+/, String(pid));
    for (const fifo of fifos) {
      fs.rmSync(fifo);
      fs.writeFileSync(fifo, line);
    }
  };
  return { root, pid, release, heal };
}

t.test('a thread probe that times out: a probe-timed-out finding and a hang event', { skip: linux }, async (t) => {
  const wedged = wedgedProc(t);
  const w = watching(t, { pid: wedged.pid, procRoot: wedged.root, timeoutMs: 300, ...FAST });
  const log = record(w);
  const hang = await waitFor(() => log.of('hang')[0], 'a hang event', DEADLINE_MS);
  t.match(hang.report.findings, [{ kind: 'probe-timed-out', severity: 'critical', subject: `pid ${wedged.pid}`, evidence: [{ field: 'threads', after: 'ETIMEDOUT' }] }]);
  t.match(log.of('sample')[0], { verdict: 'hung', threads: 0 });
  t.same(log.of('exit'), [], 'a timeout is not an exit');
  t.same(log.of('error'), []);
});

t.test('a probe that timed out and then returns: the watch recovers', { skip: linux }, async (t) => {
  const wedged = wedgedProc(t);
  const w = watching(t, { pid: wedged.pid, procRoot: wedged.root, timeoutMs: 300, ...FAST });
  const log = record(w);
  await waitFor(() => log.of('hang')[0], 'a hang event', DEADLINE_MS);
  wedged.heal();
  const healedAt = monotonicNs();
  // Sampling every 100 ms, the first sample after the files heal has no timeout in it. The
  // deadline is short (still 25 intervals) so that a watch that never recovers fails fast.
  const recovered = await waitFor(() => log.of('recover')[0], 'a recover event', 2500).catch((error: Error) => error);
  t.notOk(recovered instanceof Error, recovered instanceof Error ? recovered.message : 'recovered');
  await waitFor(() => log.of('sample').some((s) => s.monotonicNs > healedAt + 500e6), 'samples 500 ms after the heal', DEADLINE_MS);
  const after = log.of('sample').filter((s) => s.monotonicNs > healedAt + 500e6);
  t.ok(after.length > 0 && after.every((s) => !s.findings.some((f) => f.kind === 'probe-timed-out')), 'no probe-timed-out once the files are readable');
});

t.test('close() while a sample is in flight: no sample event after it', { skip: linux }, async (t) => {
  const wedged = wedgedProc(t);
  const w = watching(t, { pid: wedged.pid, procRoot: wedged.root, timeoutMs: 1000, ...FAST });
  const log = record(w);
  // In flight: one of this process's threads is blocked opening the fifo.
  await waitFor(async () => (await sampleThreads(process.pid)).threads.some((th) => /^open/.test(th.blockedIn?.call ?? '') && th.state === 'sleeping'), 'the probe blocked in open', DEADLINE_MS);
  w.close();
  await w.done;
  t.same(log.events, [], 'the step that was cut short publishes nothing');
  t.equal(log.closes, 1);
});

t.test('an iterator that does not read keeps the newest 256 events, dropping samples first', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const w = watching(t, { pid: target.pid, ...FAST, intervalMs: 1 });
  const log = record(w);
  const iterator = w[Symbol.asyncIterator]();
  await waitFor(() => log.events.length >= 300, '300 events', DEADLINE_MS);
  w.close();
  await w.done;
  const queued: WatchEvent[] = [];
  for (let r = await iterator.next(); !r.done; r = await iterator.next()) queued.push(r.value);
  t.equal(queued.length, 256);
  t.same(queued, log.events.slice(-256), 'the newest 256, in order');

  // Only non-sample events: the oldest of them goes.
  const pids = Array.from({ length: 300 }, (_, i) => NO_PID + 1 + i);
  const errors = watching(t, { pids, ...FAST });
  const errorLog = record(errors);
  const pending = errors[Symbol.asyncIterator]();
  await errors.done;
  t.equal(errorLog.events.length, 301, 'the emitter form gets every event: 300 errors, one sample');
  const kept: WatchEvent[] = [];
  for (let r = await pending.next(); !r.done; r = await pending.next()) kept.push(r.value);
  t.equal(kept.length, 256);
  t.same(kept, errorLog.events.slice(-256));
  t.match(kept.at(-1), { type: 'sample' });
});

/**
 * Freeze this process for `ms` just after the next sample, while the watcher sleeps until the
 * one after, and return the first sample that came after the freeze. (Should a step still be
 * running 20 ms after its sample event, the freeze lands in that step instead: try again.)
 */
async function freezeAfterNextSample(w: Watcher, log: ReturnType<typeof record>, ms: number): Promise<{ after: SampleEvent; index: number }> {
  let index = -1;
  w.once('sample', () =>
    setTimeout(() => {
      index = log.of('sample').length;
      freeze(ms);
    }, 20),
  );
  const after = await waitFor(() => index >= 0 && log.of('sample')[index], 'a sample after the freeze', DEADLINE_MS);
  return { after, index };
}

async function discardedAfterFreeze(w: Watcher, log: ReturnType<typeof record>, ms: number): Promise<{ discarded: SampleEvent; index: number }> {
  for (let attempt = 0; ; attempt++) {
    const { after, index } = await freezeAfterNextSample(w, log, ms);
    if (after.discarded !== undefined || attempt === 2) return { discarded: after, index };
  }
}

t.test('late timer: a window in which this process did not run is discarded', { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  const w = watching(t, { pid: target.pid, ...FAST, stallMs: 400 });
  const log = record(w);
  const hang = await waitFor(() => log.of('hang')[0], 'a hang event', DEADLINE_MS);
  t.ok(hang);
  const { discarded, index } = await discardedAfterFreeze(w, log, 1600);
  t.match(discarded.discarded, { reason: /our own timer fired late/ }, 'the first sample after the freeze');
  t.ok(discarded.discarded!.lateMs >= 1000, `late by ${discarded.discarded!.lateMs} ms`);
  t.ok(discarded.discarded!.lateMs < 1700);
  t.same(discarded.findings, [], 'no stall is judged over a window we did not watch');
  // The windows start again, and the deadlock is found again: at once where the kernel's
  // off-CPU clock proves the wait (Linux), else stallMs later.
  const again = await waitFor(() => log.of('sample').slice(index + 1).find((s) => s.verdict === 'hung'), 'hung again', DEADLINE_MS);
  t.ok(again.monotonicNs > discarded.monotonicNs);
  t.notOk(
    log.of('sample').slice(index + 1).some((s) => s.discarded),
    'only that one window',
  );
});

t.test('a discarded window does not end a hang: no recover while the target stays deadlocked', { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  const w = watching(t, { pid: target.pid, ...FAST, stallMs: 400 });
  const log = record(w);
  await waitFor(() => log.of('hang')[0], 'a hang event', DEADLINE_MS);
  const { discarded } = await discardedAfterFreeze(w, log, 1600);
  t.ok(discarded.discarded, 'a discarded window');
  await waitFor(() => log.of('sample').some((s) => s.monotonicNs - discarded.monotonicNs > 600e6), 'stallMs after the discard', DEADLINE_MS);
  t.same(log.of('recover'), [], `recover events: ${JSON.stringify(log.of('recover'))}`);
  t.equal(log.of('hang').length, 1, 'one hang, not one per discarded window');
});

t.test('the machine slept: wall time ran on while the monotonic clock did not', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const realNow = Date.now.bind(Date);
  let offset = 0;
  t.intercept(Date, 'now', { value: () => realNow() + offset });
  const w = watching(t, { pid: target.pid, ...FAST });
  const log = record(w);
  // The wall clock jumps after the watcher read it for a sample, while it sleeps until the
  // next. (A jump in the middle of a step is not seen: try again then.)
  let discarded: SampleEvent | undefined;
  let jumpedAt = -1;
  for (let attempt = 0; attempt < 3 && discarded === undefined; attempt++) {
    jumpedAt = -1;
    w.once('sample', () =>
      setTimeout(() => {
        jumpedAt = log.of('sample').length;
        offset += 5000;
      }, 20),
    );
    const next = await waitFor(() => jumpedAt >= 0 && log.of('sample')[jumpedAt], 'a sample after the jump', DEADLINE_MS);
    if (next.discarded !== undefined) discarded = next;
  }
  t.ok(discarded, 'the first sample after the jump is discarded');
  t.match(discarded!.discarded, { reason: /the machine was asleep \(wall clock ran on, monotonic clock did not\)/ });
  t.ok(discarded!.discarded!.lateMs >= 4500 && discarded!.discarded!.lateMs <= 5500, `${discarded!.discarded!.lateMs} ms`);
  w.close();
  await w.done;
});

t.test('late-sampler guard across processes: SIGSTOP the watcher for 2.5 s, the next sample is discarded', { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  // The watcher runs in its own node, loading the TypeScript source the way this test is
  // loaded (process.execArgv carries the loader), and prints each event as one JSON line.
  const script = `
    const { watch } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'analyze'))});
    const w = watch({ pid: Number(process.env.TARGET_PID), intervalMs: 100, stallMs: 600, accelerators: false });
    for (const type of ['sample', 'hang', 'recover', 'exit', 'error']) {
      w.on(type, (e) => process.stdout.write(JSON.stringify({ type: e.type, verdict: e.verdict, discarded: e.discarded, monotonicNs: e.monotonicNs }) + '\\n'));
    }
    process.stdin.on('end', () => w.close()).resume();
  `;
  const child: ChildProcess = spawn(process.execPath, [...process.execArgv, '-e', script], {
    env: { ...process.env, TARGET_PID: String(target.pid) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      child.kill('SIGCONT');
    }
    await exited;
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  type Line = { type: string; verdict?: string; discarded?: { reason: string; lateMs: number }; monotonicNs: number };
  const lines = (): Line[] =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);

  await waitFor(() => lines().some((l) => l.type === 'hang'), `the watcher to report the deadlock (stderr: ${stderr})`, DEADLINE_MS);
  // A stop that lands while a sample is in flight delays that sample, not the timer: try again then.
  let discarded: Line | undefined;
  for (let attempt = 0; attempt < 3 && discarded === undefined; attempt++) {
    const seen = lines().length;
    process.kill(child.pid!, 'SIGSTOP');
    const stoppedAt = monotonicNs();
    await waitFor(() => monotonicNs() - stoppedAt >= 2500e6, '2.5 s with the watcher stopped', DEADLINE_MS, 50);
    process.kill(child.pid!, 'SIGCONT');
    await waitFor(() => lines().length > seen + 2, 'samples after SIGCONT', DEADLINE_MS);
    discarded = lines()
      .slice(seen)
      .find((l) => l.discarded !== undefined);
  }
  t.ok(discarded, 'a sample event after SIGCONT carries discarded');
  t.match(discarded, { type: 'sample', discarded: { reason: /timer fired late/ } });
  t.ok(discarded!.discarded!.lateMs >= 1500, `late by ${discarded!.discarded!.lateMs} ms`);
  child.stdin!.end();
  await exited;
  t.equal(child.exitCode, 0, `the watcher exits cleanly when closed (stderr: ${stderr})`);
});

t.test('mocked: a sampler error other than ESRCH or ETIMEDOUT is an error event, and that pid is dropped', { skip: linux }, async (t) => {
  const denied = new IokitSnapError('EPERM', 'cannot read the threads of pid 4242: operation not permitted');
  const fake = (pid: number): ThreadSampler => ({ pid, sample: () => Promise.reject(denied), close() {} });
  const { watch: mockedWatch } = t.mockRequire<typeof import('../src/analyze/watch')>('../src/analyze/watch', {
    '../src/sample': { ...sample, createThreadSampler: fake },
  });
  const withListener = mockedWatch({ pid: 4242, ...FAST });
  const errors: WatchEvent[] = [];
  withListener.on('error', (e: WatchEvent) => errors.push(e));
  const events: WatchEvent[] = [];
  for await (const e of withListener) events.push(e);
  t.match(events, [{ type: 'error', error: { code: 'EPERM', message: /operation not permitted/ } }, { type: 'sample', threads: 0 }]);
  t.equal(errors.length, 1, 'the emitter form too');
  t.same(
    events.filter((e) => e.type === 'exit'),
    [],
    'not an exit',
  );

  // Without an 'error' listener the emitter does not throw; iterators still get it.
  const silent = mockedWatch({ pid: 4242, ...FAST });
  const silentEvents: WatchEvent[] = [];
  for await (const e of silent) silentEvents.push(e);
  t.match(silentEvents, [{ type: 'error' }, { type: 'sample' }]);
});

t.test('mocked: a step that throws is an error event, and the watch goes on', { skip: linux }, async (t) => {
  // A sampler that breaks its contract (threads is not a list): the tracker refuses the sample.
  const broken = (pid: number): ThreadSampler => ({
    pid,
    sample: async () => ({ pid, name: 'broken', sampledAtNs: monotonicNs(), threads: null as unknown as [], limits: [] }),
    close() {},
  });
  const { watch: mockedWatch } = t.mockRequire<typeof import('../src/analyze/watch')>('../src/analyze/watch', {
    '../src/sample': { ...sample, createThreadSampler: broken },
  });
  const w = mockedWatch({ pid: 4242, ...FAST });
  const errors = await iterate(w, (_e, all) => all.length >= 2);
  await w.done;
  t.match(errors, [
    { type: 'error', error: { name: 'IokitSnapError', code: 'EINVAL', message: /ProgressTracker\.step\(\): the sample .*processes\[0\]\.threads must be an array, got null/ } },
    { type: 'error', error: { code: 'EINVAL' } },
  ]);
});

t.test('mocked: when the host probe fails, the platform of this process decides which thread is main', { skip: linux }, async (t) => {
  const threads: ProcessSample['threads'] = [7, 8].map((tid) => ({
    tid,
    name: null,
    state: 'stopped' as const,
    userNs: 0,
    systemNs: 0,
    contextSwitches: null,
    suspendCount: null,
    blockedIn: null,
  }));
  const fake = (pid: number): ThreadSampler => ({
    pid,
    sample: async (): Promise<ThreadSampleResult> => ({ pid, name: 'fake', sampledAtNs: monotonicNs(), threads, limits: [] }),
    close() {},
  });
  const load = () =>
    t.mockRequire<typeof import('../src/analyze/watch')>('../src/analyze/watch', {
      '../src/sample': { ...sample, createThreadSampler: fake, readHost: () => Promise.reject(new Error('no host facts')) },
    });
  const subjects = async (platform: string): Promise<string[]> => {
    const restore = Object.getOwnPropertyDescriptor(process, 'platform')!;
    Object.defineProperty(process, 'platform', { ...restore, value: platform });
    try {
      const w = load().watch({ pid: 4242, ...FAST });
      const [first] = await iterate(w, (e) => e.type === 'sample');
      await w.done;
      return (first as SampleEvent).findings.map((f) => f.subject);
    } finally {
      Object.defineProperty(process, 'platform', restore);
    }
  };
  t.same(await subjects('linux'), ['pid 4242 (fake) thread 7', 'pid 4242 (fake) thread 8'], 'linux: main is tid == pid, none here');
  t.same(await subjects('darwin'), ['pid 4242 (fake) thread 7 (main)', 'pid 4242 (fake) thread 8'], 'darwin: the first thread is main');
});

t.test('mocked: goroutines that cannot be read — of a Go program, a limit (a timed-out read is a finding); of any other program, asked once', { skip: linux }, async (t) => {
  const go = await import('../src/runtimes/go');
  const calls: number[] = [];
  let goProgram = true;
  const { watch: mockedWatch } = t.mockRequire<typeof import('../src/analyze/watch')>('../src/analyze/watch', {
    '../src/runtimes/go': {
      ...go,
      sampleGoroutines: async (pid: number) => {
        calls.push(pid);
        // A Go program read once, then its memory reads time out; another program refuses at once (EPERM).
        if (goProgram && calls.length === 1) return { pid, goVersion: 'go1.22.0', goroutines: [], limits: [] };
        throw goProgram ? new IokitSnapError('ETIMEDOUT', `reading the goroutines of pid ${pid} did not return within 100 ms`) : new IokitSnapError('EPERM', `cannot read the memory of pid ${pid}`);
      },
    },
  });
  const timedOut = await iterate(mockedWatch({ pid: process.pid, ...FAST }), (_e, all) => all.filter((e) => e.type === 'sample').length >= 3);
  const samples = timedOut.filter((e): e is SampleEvent => e.type === 'sample');
  t.same(samples[0].findings.filter((f) => f.kind === 'probe-timed-out'), [], 'read the first time');
  t.match(
    samples[1].findings.filter((f) => f.kind === 'probe-timed-out'),
    [{ subject: `pid ${process.pid}`, severity: 'critical', message: /reading goroutines of pid \d+ did not return in time/ }],
    'a Go program whose goroutines stopped answering',
  );

  goProgram = false;
  calls.length = 0;
  const refused = await iterate(mockedWatch({ pid: process.pid, ...FAST }), (_e, all) => all.filter((e) => e.type === 'sample').length >= 3);
  t.same(calls, [process.pid], 'not a Go program it may read: asked once, not every step');
  t.same(refused.filter((e) => e.type === 'error'), [], 'not an error of the watch');
  t.same(
    refused.flatMap((e) => (e.type === 'sample' ? e.findings.filter((f) => f.kind === 'probe-timed-out') : [])),
    [],
  );
});
