/**
 * watch(): sample live processes on an interval and say when they hang and when they
 * recover. Per-thread progress is kept by a ProgressTracker, so a step costs O(threads)
 * and memory does not grow with history. A window in which our own timer fired late
 * (the machine slept, this process was stopped or starved) is discarded instead of being
 * read as a hang of the target.
 */
import { EventEmitter } from 'node:events';
import { IokitSnapError, toIokitSnapError } from '../errors';
import { checkBoolean, checkDuration, checkPid, MAX_TIMER_MS, readOptions } from '../options';
import { describeValue } from '../snapshot-schema';
import { cpuPercent } from '../cpu-share';
import { acceleratorsInto, createThreadSampler, limitFromError, monotonicNs, readHost } from '../sample';
import type * as Go from '../runtimes/go';
import type { Accelerator, GoroutineSample, Host, Limitation, ProcessSample, ThreadSampler } from '../types';
import { checkCompareOptions, checkSnapshotArgument } from './checks';
import { HangAnnouncer } from './hang-announcer';
import { LateTimerGuard, type Discard } from './late-timer';
import { examineStacks } from './examine';
import { ProgressTracker } from './progress';
import { sampleEvent } from './sample-event';
import type { Report, ThreadCpu, WatchEvent, WatchOptions } from './types';

const DEFAULT_INTERVAL_MS = 500;
/** Processes a watch follows because watched threads wait on them, at most. */
const MAX_PEERS = 16;
const DEFAULT_WATCH_STALL_MS = 5000;
/** How many undelivered events an iterator keeps before dropping the oldest sample events. */
const QUEUE_LIMIT = 256;

interface Consumer {
  queue: WatchEvent[];
  wake: (() => void) | null;
}

const WATCH_KEYS = [
  'pid',
  'pids',
  'intervalMs',
  'stallMs',
  'spinRatio',
  'expectExit',
  'baseline',
  'accelerators',
  'detail',
  'timeoutMs',
  'signal',
  'procRoot',
  'sysRoot',
  'stacks',
] as const;

/** The options, read once into a plain object and checked: EINVAL naming the option. */
function checkWatchOptions(given: unknown): WatchOptions {
  if (given === undefined) throw new IokitSnapError('EINVAL', 'watch(): give the process to watch as { pid } or { pids: [...] }');
  const options = readOptions<WatchOptions>('watch()', given, WATCH_KEYS);
  Object.assign(options, checkCompareOptions('watch()', options));
  checkDuration('watch()', 'intervalMs', options.intervalMs);
  checkDuration('watch()', 'timeoutMs', options.timeoutMs);
  checkBoolean('watch()', 'accelerators', options.accelerators);
  checkBoolean('watch()', 'stacks', options.stacks);
  if (options.detail !== undefined && options.detail !== 'basic' && options.detail !== 'full') {
    throw new IokitSnapError('EINVAL', `watch(): detail must be 'basic' or 'full', got ${describeValue(options.detail)}`);
  }
  for (const name of ['procRoot', 'sysRoot'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'string') {
      throw new IokitSnapError('EINVAL', `watch(): ${name} must be a directory path, got ${describeValue(options[name])}`);
    }
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new IokitSnapError('EINVAL', `watch(): signal must be an AbortSignal, got ${describeValue(options.signal)}`);
  }
  if (options.baseline !== undefined) checkSnapshotArgument('watch()', options.baseline, 'the baseline option');
  return options;
}

function pidsOf(options: WatchOptions): number[] {
  const pids = options.pids ?? (options.pid !== undefined ? [options.pid] : []);
  if (!Array.isArray(pids) || pids.length === 0) {
    throw new IokitSnapError('EINVAL', 'watch(): give the process to watch as { pid } or { pids: [...] }');
  }
  pids.forEach((pid, i) => checkPid('watch()', pid, options.pids === undefined ? 'pid' : `pids[${i}]`));
  return [...new Set(pids)];
}

/** What a sample may take: four intervals, at least 2 s, within the timer limit. */
function sampleDeadline(intervalMs: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(2000, 4 * intervalMs));
}

/**
 * A running watch: an EventEmitter ('sample', 'hang', 'recover', 'exit', 'error', 'close')
 * and an AsyncIterable of the same events. Leaving a for-await loop closes it.
 */
export class Watcher extends EventEmitter implements AsyncIterable<WatchEvent> {
  readonly intervalMs: number;
  readonly stallMs: number;
  /** Resolves when the watch has stopped (closed, aborted, or every process exited). */
  readonly done: Promise<void>;
  private readonly options: WatchOptions;
  private readonly samplers = new Map<number, ThreadSampler>();
  private readonly tracker: ProgressTracker;
  private readonly consumers = new Set<Consumer>();
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private wakeLoop: (() => void) | null = null;
  private readonly announcer: HangAnnouncer;
  /** Pids sampled at least once: ESRCH after that is an exit, before it a wrong pid. */
  private readonly seen = new Set<number>();
  /** Each process's latest sample, for its threads' %CPU over the next interval. */
  private readonly previous = new Map<number, ProcessSample>();
  /**
   * Processes sampled because a watched thread waits on them (the other end of its pipe or
   * socket), by the pid that waits on them: a wait on another process is judged by it. At most
   * MAX_PEERS; they are not reported when they exit.
   */
  private readonly peers = new Map<number, number>();
  private samplerTimeoutMs = 0;

  /**
   * Go programs among the watched: their goroutines, read from their memory each step (a
   * goroutine blocked on a sync.Mutex is on no thread's stack). Whether a pid is a Go program
   * is read once; not with detail 'basic' or stacks: false.
   */
  private readonly goPrograms = new Map<number, boolean>();

  private async goroutinesOf(pids: number[], limits: Limitation[]): Promise<Map<number, GoroutineSample[]>> {
    const found = new Map<number, GoroutineSample[]>();
    if (this.options.detail === 'basic' || this.options.stacks === false || process.platform !== 'linux') return found;
    const { sampleGoroutines } = require('../runtimes/go') as typeof Go;
    await Promise.all(
      pids.map(async (pid) => {
        if (this.goPrograms.get(pid) === false) return;
        try {
          const result = await sampleGoroutines(pid, { timeoutMs: sampleDeadline(this.intervalMs), procRoot: this.options.procRoot });
          this.goPrograms.set(pid, result.goVersion !== null);
          if (result.goroutines !== null) found.set(pid, result.goroutines);
          for (const l of result.limits) limits.push(l);
        } catch (error) {
          // Not readable (permission, gone): the threads' own sample says what it can.
          if (!this.goPrograms.has(pid)) this.goPrograms.set(pid, false);
          if (this.goPrograms.get(pid) === true) limits.push(limitFromError(`pid ${pid}`, 'goroutines', error));
        }
      }),
    );
    return found;
  }

  /** The latest thread sample of a watched process (a host scan settles its idle threads from it). */
  latest(pid: number): ProcessSample | undefined {
    return this.previous.get(pid);
  }

  /** A process asked for is still watched (peers alone do not keep a watch going). */
  private watching(): boolean {
    for (const pid of this.samplers.keys()) if (!this.peers.has(pid)) return true;
    return false;
  }

  private newSampler(pid: number): ThreadSampler {
    return createThreadSampler(pid, { detail: this.options.detail ?? 'full', kernelStacks: false, procRoot: this.options.procRoot, timeoutMs: this.samplerTimeoutMs });
  }

  constructor(given: WatchOptions) {
    super();
    const options = checkWatchOptions(given);
    const pids = pidsOf(options);
    this.options = options;
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.stallMs = options.stallMs ?? DEFAULT_WATCH_STALL_MS;
    this.tracker = new ProgressTracker({ stallMs: this.stallMs, spinRatio: options.spinRatio, expectExit: options.expectExit });
    this.announcer = new HangAnnouncer(this.stallMs);
    if (options.baseline !== undefined) this.tracker.setBaseline(options.baseline);
    if (options.stacks !== false && options.detail !== 'basic') this.tracker.examine();
    const timeoutMs = options.timeoutMs ?? sampleDeadline(this.intervalMs);
    this.samplerTimeoutMs = timeoutMs;
    for (const pid of pids) this.samplers.set(pid, this.newSampler(pid));
    if (options.signal !== undefined) {
      if (options.signal.aborted) this.closed = true;
      else options.signal.addEventListener('abort', () => this.close(), { once: true });
    }
    this.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  /** Stop sampling; iterators finish after the events already queued. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.wakeLoop?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    const consumer: Consumer = { queue: [], wake: null };
    this.consumers.add(consumer);
    let finished = false;
    const finish = (): IteratorResult<WatchEvent> => {
      finished = true;
      this.consumers.delete(consumer);
      return { value: undefined, done: true };
    };
    return {
      next: async (): Promise<IteratorResult<WatchEvent>> => {
        for (;;) {
          if (finished) return { value: undefined, done: true };
          const event = consumer.queue.shift();
          if (event !== undefined) return { value: event, done: false };
          if (this.stopped) return finish();
          await new Promise<void>((resolve) => (consumer.wake = resolve));
          consumer.wake = null;
        }
      },
      return: async (): Promise<IteratorResult<WatchEvent>> => {
        this.close();
        return finish();
      },
    };
  }

  private stopped = false;

  private publish(event: WatchEvent): void {
    for (const consumer of this.consumers) {
      if (consumer.queue.length >= QUEUE_LIMIT) {
        const oldest = consumer.queue.findIndex((e) => e.type === 'sample');
        consumer.queue.splice(oldest >= 0 ? oldest : 0, 1);
      }
      consumer.queue.push(event);
      consumer.wake?.();
    }
    // An 'error' with no listener would throw from emit(); iterators still receive it.
    if (event.type !== 'error' || this.listenerCount('error') > 0) this.emit(event.type, event);
  }

  private stamp(): { at: string; monotonicNs: number } {
    return { at: new Date().toISOString(), monotonicNs: monotonicNs() };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wakeLoop = resolve;
      this.timer = setTimeout(resolve, ms);
    }).then(() => {
      this.timer = null;
      this.wakeLoop = null;
    });
  }

  private async run(): Promise<void> {
    let host: Pick<Host, 'platform'>;
    try {
      host = await readHost();
    } catch {
      host = { platform: process.platform === 'darwin' ? 'darwin' : 'linux' };
    }
    const guard = new LateTimerGuard(this.intervalMs);
    try {
      while (!this.closed && this.watching()) {
        const startMono = monotonicNs();
        const discard = guard.check(startMono, Date.now());
        try {
          await this.stepOnce(host, discard);
        } catch (error) {
          /* c8 ignore next 2 -- a bug guard: a failed step is an event, never an unhandled rejection */
          this.publish({ type: 'error', ...this.stamp(), error: toIokitSnapError(error) });
        }
        const delay = guard.next(startMono, monotonicNs(), Date.now());
        if (this.closed || !this.watching()) break;
        await this.sleep(delay);
      }
    } finally {
      for (const sampler of this.samplers.values()) sampler.close();
      this.samplers.clear();
      this.closed = true;
      this.stopped = true;
      for (const consumer of this.consumers) consumer.wake?.();
      this.emit('close');
    }
  }

  private async stepOnce(host: Pick<Host, 'platform'>, discard: Discard | undefined): Promise<void> {
    const limits: Limitation[] = [];
    const processes: ProcessSample[] = [];
    const exited: number[] = [];
    const wantAccelerators = this.options.accelerators !== false;
    const [threadResults, accelerators, goroutines] = await Promise.all([
      Promise.allSettled([...this.samplers.values()].map((s) => s.sample())),
      wantAccelerators
        ? acceleratorsInto(limits, { sysRoot: this.options.sysRoot, timeoutMs: sampleDeadline(this.intervalMs) })
        : Promise.resolve([] as Accelerator[]),
      this.goroutinesOf([...this.samplers.keys()], limits),
    ]);
    const pids = [...this.samplers.keys()];
    threadResults.forEach((result, i) => {
      const pid = pids[i];
      if (result.status === 'fulfilled') {
        const { limits: threadLimits, ...sample } = result.value;
        this.seen.add(pid);
        for (const l of threadLimits) limits.push(l);
        const of = this.peers.get(pid);
        const gs = goroutines.get(pid);
        processes.push(of === undefined && gs === undefined ? sample : { ...sample, ...(of !== undefined ? { peerOf: of } : {}), ...(gs !== undefined ? { goroutines: gs } : {}) });
        return;
      }
      const error = toIokitSnapError(result.reason);
      if (error.code === 'ETIMEDOUT') {
        limits.push(limitFromError(`pid ${pid}`, 'threads', error));
        return;
      }
      this.samplers.get(pid)?.close();
      this.samplers.delete(pid);
      this.previous.delete(pid);
      // A peer followed on our own initiative is dropped quietly: it was not asked for.
      if (this.peers.delete(pid)) return;
      if (error.code === 'ESRCH' && this.seen.has(pid)) exited.push(pid);
      else this.publish({ type: 'error', ...this.stamp(), error });
    });
    if (this.closed && processes.length === 0) return;
    const now = monotonicNs();
    const report: Report = this.tracker.step({ monotonicNs: now, processes, accelerators, limits, host }, discard !== undefined);
    const at = new Date().toISOString();
    this.publish({ ...sampleEvent(report, processes, now, at, discard), cpu: this.cpuSince(processes) });
    const announcement = this.announcer.step(report, now, at, discard !== undefined);
    if (announcement !== undefined) this.publish(announcement);
    for (const pid of exited) this.publish({ type: 'exit', at, monotonicNs: now, pid });
    const peers = await examineStacks(this.tracker, { procRoot: this.options.procRoot, timeoutMs: sampleDeadline(this.intervalMs) });
    for (const [pid, of] of peers) {
      if (this.closed || this.samplers.has(pid) || this.peers.size >= MAX_PEERS) continue;
      this.peers.set(pid, of);
      this.samplers.set(pid, this.newSampler(pid));
    }
  }

  /** Each thread's %CPU since the previous sample of its process, busiest first; these samples become the previous ones. */
  private cpuSince(processes: ProcessSample[]): ThreadCpu[] {
    const cpu: ThreadCpu[] = [];
    for (const sample of processes) {
      const before = this.previous.get(sample.pid);
      this.previous.set(sample.pid, sample);
      if (before === undefined) continue;
      const percent = cpuPercent(before, sample);
      for (const thread of sample.threads) {
        const share = percent.get(thread.tid);
        if (share !== undefined) cpu.push({ pid: sample.pid, tid: thread.tid, name: thread.name, percent: share });
      }
    }
    return cpu.sort((a, b) => b.percent - a.percent || a.tid - b.tid);
  }
}

/** Watch processes for hangs: `for await (const event of watch({ pid }))`, or `.on('hang', …)`. */
export function watch(options: WatchOptions): Watcher {
  return new Watcher(options);
}
