/**
 * The sampling loop behind `iokit-snap serve` and createMetrics().watch(): watch() with a
 * selection that changes (pids, name/command-line patterns, cgroups, asked again every
 * interval) and with everything a metric needs in each sample event (the thread samples, the
 * accelerators, the limits, how long each probe took). The same ProgressTracker judges the
 * threads as in watch(), and a window in which our own timer fired late is discarded the same
 * way.
 *
 * A probe that misses its deadline is a limit and a timed-out probe; the loop goes on. A
 * probe that timed out is not started again at once (the abandoned one may still hold a
 * thread in a wedged driver): it waits out a back-off that doubles up to ten minutes, so a
 * machine that stays wedged leaks at most a few threads an hour, never one per interval.
 */
import { EventEmitter } from 'node:events';
import { IokitSnapError, toIokitSnapError } from '../errors';
import { HangAnnouncer } from '../analyze/hang-announcer';
import { LateTimerGuard, type Discard } from '../analyze/late-timer';
import { ProgressTracker } from '../analyze/progress';
import { examineStacks } from '../analyze/examine';
import { sampleEvent } from '../analyze/sample-event';
import type { Report, SampleEvent, WatchEvent } from '../analyze/types';
import { acceleratorsInto, createThreadSampler, limitFromError, monotonicNs, readHost } from '../sample';
import type { Accelerator, Host, Limitation, ProcessSample, ThreadSampler } from '../types';
import { ProcessSelector, type ProcessSelection, type SelectorCount } from './selection';

export type ProbeKind = 'threads' | 'accelerators';

export interface ProbeTiming {
  probe: ProbeKind;
  seconds: number;
  timedOut: boolean;
}

export interface CollectorOptions extends ProcessSelection {
  /** Time between samples (default 1000 ms). */
  intervalMs?: number;
  /** No progress for this long is a hang (default 10000 ms). */
  stallMs?: number;
  /** Sample the accelerators too (default true). */
  accelerators?: boolean;
  /** 'full' (default) reads what each thread is blocked in; 'basic' only state and CPU time. */
  detail?: 'basic' | 'full';
  /** Take the stack of a thread whose wait only a stack can tell, once per wait (default true; see watch()). */
  stacks?: boolean;
  /** Deadline of each probe, ms (default max(2000, 4 × intervalMs)). */
  timeoutMs?: number;
  /** Linux: read these trees instead of /proc and /sys, and this NVML library (tests). */
  procRoot?: string;
  sysRoot?: string;
  nvmlLibrary?: string;
  /** Where relative cgroup paths are found (default: this machine's cgroup2 mount). */
  cgroupRoot?: string;
}

/** A watch() sample event with what a metric needs (per-process CPU from the report, not each thread's %CPU). */
export interface MetricsSampleEvent extends Omit<SampleEvent, 'cpu'> {
  processes: ProcessSample[];
  /** The analysis's summary of each process (names, CPU over the window). */
  report: Report;
  accelerators: Accelerator[];
  limits: Limitation[];
  probes: ProbeTiming[];
  /** What each selector (--pid, --match, --cgroup) selected for this sample (the collector always sets it). */
  selection?: SelectorCount[];
}

export type CollectorEvent = Exclude<WatchEvent, SampleEvent> | MetricsSampleEvent;

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_STALL_MS = 10000;
const BACKOFF_MAX_MS = 10 * 60_000;

/** After a timed-out probe: not before `untilMs`; the next wait is twice as long. */
class Backoff {
  private untilMs = 0;
  private waitMs: number;
  constructor(private readonly firstMs: number) {
    this.waitMs = firstMs;
  }
  get blocked(): boolean {
    return Date.now() < this.untilMs;
  }
  get remainingMs(): number {
    return Math.max(0, this.untilMs - Date.now());
  }
  timedOut(): void {
    this.untilMs = Date.now() + this.waitMs;
    this.waitMs = Math.min(BACKOFF_MAX_MS, this.waitMs * 2);
  }
  succeeded(): void {
    this.untilMs = 0;
    this.waitMs = this.firstMs;
  }
}

function checkMs(name: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new IokitSnapError('EINVAL', `${name} must be a positive number of ms, got ${String(value)}`);
  }
}

interface Watched {
  sampler: ThreadSampler;
  backoff: Backoff;
  seen: boolean;
  /** It could not be watched (no permission…): not tried again while it stays selected. */
  refused: boolean;
}

/**
 * The sampling loop of `serve` and createMetrics().watch(): an EventEmitter of watch()'s events
 * ('sample' with what a metric needs, 'hang', 'recover', 'exit', 'error') over a selection of
 * processes asked again every interval. close() stops it; `done` resolves once it has stopped.
 */
export class Collector extends EventEmitter {
  readonly intervalMs: number;
  readonly stallMs: number;
  readonly timeoutMs: number;
  /** Resolves when the loop has stopped. */
  readonly done: Promise<void>;
  /** When the latest sample completed (ms since the epoch), or null before the first. Only the time: a sample is not kept. */
  lastSampleMs: number | null = null;
  private readonly options: CollectorOptions;
  private readonly selector: ProcessSelector;
  private readonly tracker: ProgressTracker;
  private readonly watched = new Map<number, Watched>();
  private readonly acceleratorBackoff: Backoff;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private readonly announcer: HangAnnouncer;

  constructor(options: CollectorOptions) {
    super();
    if (options === null || typeof options !== 'object') throw new IokitSnapError('EINVAL', 'options must be an object');
    checkMs('intervalMs', options.intervalMs);
    checkMs('stallMs', options.stallMs);
    checkMs('timeoutMs', options.timeoutMs);
    this.options = options;
    this.selector = new ProcessSelector(options, { procRoot: options.procRoot, cgroupRoot: options.cgroupRoot });
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.stallMs = options.stallMs ?? DEFAULT_STALL_MS;
    this.timeoutMs = options.timeoutMs ?? Math.max(2000, 4 * this.intervalMs);
    this.acceleratorBackoff = new Backoff(Math.max(30_000, 4 * this.timeoutMs));
    this.tracker = new ProgressTracker({ stallMs: this.stallMs });
    // Waits only a stack can tell (a futex, an epoll inside a library) are judged by their stacks, taken once per wait.
    if (options.stacks !== false && options.detail !== 'basic') this.tracker.examine();
    this.announcer = new HangAnnouncer(this.stallMs);
    this.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
  }

  /** The pids watched now. */
  get pids(): number[] {
    return [...this.watched.keys()];
  }

  /** Stop sampling; `done` resolves once the step in progress has finished. Safe to call twice. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.timer !== null) clearTimeout(this.timer);
      this.wake?.();
    }
    return this.done;
  }

  private publish(event: CollectorEvent): void {
    if (event.type === 'sample') this.lastSampleMs = Date.now();
    this.emit(event.type, event);
  }

  /* c8 ignore start -- reached only from the guarded paths below (a refused pid, a failed step) */
  private publishError(error: IokitSnapError): void {
    // An 'error' with no listener would throw from emit().
    if (this.listenerCount('error') > 0) this.emit('error', { type: 'error', at: new Date().toISOString(), monotonicNs: monotonicNs(), error });
  }
  /* c8 ignore stop */

  private async run(): Promise<void> {
    const host: Pick<Host, 'platform'> = await readHost(); // never rejects: it falls back to os facts
    const guard = new LateTimerGuard(this.intervalMs);
    try {
      while (!this.closed) {
        const startMono = monotonicNs();
        const discard = guard.check(startMono, Date.now());
        try {
          await this.step(host, discard);
          /* c8 ignore start -- a bug guard: a failed step is an event, never an unhandled rejection */
        } catch (error) {
          this.publishError(toIokitSnapError(error));
        }
        /* c8 ignore stop */
        const delay = guard.next(startMono, monotonicNs(), Date.now());
        if (this.closed) break;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.timer = setTimeout(resolve, delay);
        });
        this.timer = null;
        this.wake = null;
      }
    } finally {
      for (const w of this.watched.values()) w.sampler.close();
      this.watched.clear();
      this.closed = true;
      this.emit('close');
    }
  }

  /** Open samplers for newly selected pids, close those no longer selected. */
  private reconcile(selected: Set<number>): void {
    for (const [pid, w] of this.watched) {
      if (!selected.has(pid)) {
        w.sampler.close();
        this.watched.delete(pid);
      }
    }
    for (const pid of selected) {
      if (this.watched.has(pid)) continue;
      const sampler = createThreadSampler(pid, { detail: this.options.detail ?? 'full', kernelStacks: false, procRoot: this.options.procRoot, timeoutMs: this.timeoutMs });
      this.watched.set(pid, { sampler, backoff: new Backoff(Math.max(30_000, 4 * this.timeoutMs)), seen: false, refused: false });
    }
  }

  private timed<T>(probe: ProbeKind, probes: ProbeTiming[], run: () => Promise<T>, timedOut: (value: T) => boolean): Promise<T> {
    const start = monotonicNs();
    return run().then((value) => {
      probes.push({ probe, seconds: (monotonicNs() - start) / 1e9, timedOut: timedOut(value) });
      return value;
    });
  }

  private async step(host: Pick<Host, 'platform'>, discard: Discard | undefined): Promise<void> {
    const { pids: selected, limits, counts } = await this.selector.select();
    this.reconcile(selected);
    const probes: ProbeTiming[] = [];
    const processes: ProcessSample[] = [];
    const exited: number[] = [];

    const sampleOne = async (pid: number, w: Watched): Promise<void> => {
      /* c8 ignore next -- only after the refusal below */
      if (w.refused) return;
      if (w.backoff.blocked) {
        limits.push({
          subject: `pid ${pid}`,
          field: 'threads',
          code: 'ETIMEDOUT',
          reason: `probe timed out: an earlier sample of pid ${pid} did not return; the next is tried in ${(w.backoff.remainingMs / 1000).toFixed(0)} s`,
          hint: 'probe timed out: reading the system hung; this is itself evidence of the hang',
        });
        return;
      }
      const outcome = await this.timed(
        'threads',
        probes,
        () => w.sampler.sample().then((value) => ({ value }), (error: unknown) => ({ error: toIokitSnapError(error) })),
        (o) => 'error' in o && o.error.code === 'ETIMEDOUT',
      );
      if ('value' in outcome) {
        const { limits: threadLimits, ...sample } = outcome.value;
        w.seen = true;
        w.backoff.succeeded();
        for (const limit of threadLimits) limits.push(limit); // a spread would overflow the stack on a huge list
        processes.push(sample);
        return;
      }
      const error = outcome.error;
      if (error.code === 'ETIMEDOUT') {
        w.backoff.timedOut();
        limits.push(limitFromError(`pid ${pid}`, 'threads', error));
      } else if (error.code === 'ESRCH') {
        w.sampler.close();
        this.watched.delete(pid);
        this.selector.forget(pid);
        if (w.seen) exited.push(pid);
        /* c8 ignore start -- EPERM and the like: macOS without task_for_pid and no fallback; as root on Linux nothing refuses */
      } else {
        w.refused = true;
        this.publishError(new IokitSnapError(error.code, `pid ${pid}: ${error.message}`));
      }
      /* c8 ignore stop */
    };

    const wantAccelerators = this.options.accelerators !== false;
    const acceleratorProbe = async (): Promise<Accelerator[]> => {
      if (!wantAccelerators) return [];
      if (this.acceleratorBackoff.blocked) {
        limits.push({
          subject: 'accelerators',
          field: 'accelerators',
          code: 'ETIMEDOUT',
          reason: `probe timed out: an earlier accelerator probe did not return; the next is tried in ${(this.acceleratorBackoff.remainingMs / 1000).toFixed(0)} s`,
          hint: 'probe timed out: reading the system hung; this is itself evidence of the hang',
        });
        return [];
      }
      const own: Limitation[] = [];
      const accelerators = await this.timed(
        'accelerators',
        probes,
        () => acceleratorsInto(own, { sysRoot: this.options.sysRoot, nvmlLibrary: this.options.nvmlLibrary, timeoutMs: this.timeoutMs }),
        () => own.some((l) => l.subject === 'accelerators' && l.code === 'ETIMEDOUT'),
      );
      if (own.some((l) => l.subject === 'accelerators' && l.code === 'ETIMEDOUT')) this.acceleratorBackoff.timedOut();
      else this.acceleratorBackoff.succeeded();
      for (const limit of own) limits.push(limit);
      return accelerators;
    };

    const [, accelerators] = await Promise.all([Promise.all([...this.watched].map(([pid, w]) => sampleOne(pid, w))), acceleratorProbe()]);
    const now = monotonicNs();
    const report = this.tracker.step({ monotonicNs: now, processes, accelerators, limits, host }, discard !== undefined);
    const at = new Date().toISOString();
    this.publish({
      ...sampleEvent(report, processes, now, at, discard),
      processes,
      report,
      accelerators,
      limits,
      probes,
      selection: counts,
    });
    const announcement = this.announcer.step(report, now, at, discard !== undefined);
    if (announcement !== undefined) this.publish(announcement);
    for (const pid of exited) this.publish({ type: 'exit', at, monotonicNs: now, pid });
    await examineStacks(this.tracker, { procRoot: this.options.procRoot, timeoutMs: this.timeoutMs });
  }
}
