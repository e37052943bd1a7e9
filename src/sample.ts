/** sampleAccelerators, sampleThreads, createThreadSampler, snapshot: the live readers. */
import * as os from 'node:os';
import { IokitSnapError, toIokitSnapError } from './errors';
import { checkBoolean, checkDuration, checkPid, readOptions } from './options';
import { describeValue } from './snapshot-schema';
import { acceleratorFromLinux } from './map/linux';
import { acceleratorFromRegistry } from './map/registry';
import { binding, withDeadline, type RawAccelerator, type RawThreadOptions, type RawThreadSampler } from './native';
import type {
  Accelerator,
  AcceleratorOptions,
  AcceleratorSample,
  Host,
  Limitation,
  ProcessSample,
  Snapshot,
  SnapshotOptions,
  ThreadOptions,
  ThreadSampler,
  ThreadSampleResult,
} from './types';

const DEFAULT_ACCELERATOR_TIMEOUT_MS = 5000;
const DEFAULT_THREAD_TIMEOUT_MS = 10000;

const ACCELERATOR_KEYS = ['includeProperties', 'sysRoot', 'nvml', 'nvmlLibrary', 'timeoutMs', 'callTimeoutMs'] as const;
const THREAD_KEYS = ['detail', 'stacks', 'kernelStacks', 'procRoot', 'maxStackDepth', 'maxOpenFiles', 'timeoutMs'] as const;
const SNAPSHOT_KEYS = [...ACCELERATOR_KEYS, 'pids', 'threads', 'accelerators'] as const;

function mapAccelerator(platform: string, raw: RawAccelerator, includeProperties: boolean): Accelerator {
  if (platform === 'darwin') {
    return acceleratorFromRegistry(
      {
        id: raw.id,
        name: raw.name,
        className: raw.className,
        classChain: raw.classChain,
        location: raw.location || null,
        busy: raw.busyCount === null ? null : { count: raw.busyCount, timeNs: raw.busyTimeNs },
        serviceState: raw.serviceState,
        retainCount: raw.retainCount,
      },
      raw.properties,
      { includeProperties },
    );
  }
  return acceleratorFromLinux(raw, { includeProperties });
}

/** Enumerate the GPU/accelerator devices: IOAccelerator services on macOS, PCI display/3D/accelerator devices on Linux. */
export async function sampleAccelerators(given: AcceleratorOptions = {}): Promise<AcceleratorSample> {
  const options = readOptions<AcceleratorOptions>('sampleAccelerators()', given, ACCELERATOR_KEYS);
  const timeoutMs = checkDuration('sampleAccelerators()', 'timeoutMs', options.timeoutMs) ?? DEFAULT_ACCELERATOR_TIMEOUT_MS;
  const callTimeoutMs = checkDuration('sampleAccelerators()', 'callTimeoutMs', options.callTimeoutMs);
  const native = binding();
  const raw = await withDeadline(
    () =>
      native.sampleAccelerators({
        sysRoot: options.sysRoot,
        nvml: options.nvml,
        nvmlLibrary: options.nvmlLibrary,
        callTimeoutMs: callTimeoutMs === undefined ? undefined : Math.ceil(callTimeoutMs),
        // All of one sample's blocking calls (NVML) fit in 80 % of its deadline, so a hung
        // driver yields limits, not a rejected probe.
        callBudgetMs: Math.max(1, Math.floor(timeoutMs * 0.8)),
      }),
    timeoutMs,
    'Reading the accelerators',
  );
  return {
    accelerators: raw.accelerators.map((a) => mapAccelerator(native.platform, a, options.includeProperties === true)),
    limits: raw.limits,
  };
}

/** The options read once into a plain object (the native glue sees no getters) and the deadline. */
function threadOptions(who: string, given: unknown, fallbackTimeoutMs = DEFAULT_THREAD_TIMEOUT_MS): { raw: RawThreadOptions; timeoutMs: number } {
  const { timeoutMs, ...options } = readOptions<ThreadOptions>(who, given, THREAD_KEYS);
  const deadline = checkDuration(who, 'timeoutMs', timeoutMs) ?? fallbackTimeoutMs;
  // Linux user stacks stop threads one at a time within this share of the deadline, so
  // a sample whose stacks run long still comes back, with the rest named in limits.
  // macOS asks for the task port within this share (a non-root caller waits on taskgated,
  // which can hang): a hung taskgated yields the libproc view with a limit, not a timeout.
  const callTimeoutMs = Math.max(1, Math.floor(Math.min(deadline * 0.3, 2000)));
  const raw: RawThreadOptions =
    options.stacks === true ? { ...options, stackBudgetMs: Math.max(1, Math.floor(deadline * 0.6)), callTimeoutMs } : { ...options, callTimeoutMs };
  return { raw, timeoutMs: deadline };
}

/** Sample every thread of `pid` once: state, CPU time, context switches, and what each is blocked in. */
export async function sampleThreads(pid: number, options: ThreadOptions = {}): Promise<ThreadSampleResult> {
  checkPid('sampleThreads()', pid);
  const { raw, timeoutMs } = threadOptions('sampleThreads()', options);
  const native = binding();
  return withDeadline(() => native.sampleThreads(pid, raw), timeoutMs, `Sampling the threads of pid ${pid}`);
}

/**
 * The repeated-sampling path (what watch() uses): keeps per-thread handles open
 * between samples and re-reads them. Close it when done.
 */
export function createThreadSampler(pid: number, options: ThreadOptions = {}): ThreadSampler {
  checkPid('createThreadSampler()', pid);
  const { raw, timeoutMs } = threadOptions('createThreadSampler()', options);
  let opening: Promise<RawThreadSampler> | undefined;
  let closed = false;
  const open = (): Promise<RawThreadSampler> => {
    // A failed open is not kept: the next sample tries again (a probe that timed out may return).
    opening ??= withDeadline(() => binding().openThreadSampler(pid, raw), timeoutMs, `Opening a thread sampler on pid ${pid}`).catch(
      (error: unknown) => {
        opening = undefined;
        throw error;
      },
    );
    return opening;
  };
  return {
    pid,
    async sample() {
      if (closed) throw new IokitSnapError('EINVAL', 'this thread sampler is closed; create a new one');
      const sampler = await open();
      if (closed) {
        sampler.close();
        throw new IokitSnapError('EINVAL', 'this thread sampler is closed; create a new one');
      }
      return withDeadline(() => sampler.sample(), timeoutMs, `Sampling the threads of pid ${pid}`);
    },
    close() {
      if (closed) return;
      closed = true;
      opening?.then(
        (sampler) => sampler.close(),
        () => undefined,
      );
    },
  };
}

/** Host facts: platform, arch, OS release, and the model when the platform gives it. */
export async function readHost(): Promise<Host> {
  try {
    return await withDeadline(() => binding().readHost(), DEFAULT_ACCELERATOR_TIMEOUT_MS, 'Reading host facts');
  } catch {
    return { platform: process.platform as Host['platform'], arch: process.arch, osRelease: os.release() };
  }
}

/** Monotonic ns on the clock the native samplers use. */
export function monotonicNs(): number {
  return binding().monotonicNs();
}

export function limitFromError(subject: string, field: string, error: unknown): Limitation {
  const e = toIokitSnapError(error);
  const limitation: Limitation = { subject, field, code: e.code, reason: e.message };
  if (e.code === 'ETIMEDOUT') limitation.hint = 'probe timed out: reading the system hung; this is itself evidence of the hang';
  return limitation;
}

/**
 * The accelerators, with what could not be read added to `limits`; a probe that failed
 * whole (timed out) is one more limit and no accelerators, never a thrown error.
 */
export function acceleratorsInto(limits: Limitation[], options: AcceleratorOptions = {}): Promise<Accelerator[]> {
  return sampleAccelerators(options).then(
    (sample) => {
      limits.push(...sample.limits);
      return sample.accelerators;
    },
    (error: unknown) => {
      limits.push(limitFromError('accelerators', 'accelerators', error));
      return [];
    },
  );
}

/**
 * One `iokit-snap/1` snapshot: the accelerators and the threads of `pids`. A part
 * that cannot be read (a pid gone, a probe that timed out) becomes a `limits`
 * entry; the snapshot is still taken, because a hanging system is the point.
 */
export async function snapshot(given: SnapshotOptions = {}): Promise<Snapshot> {
  const who = 'snapshot()';
  const options = readOptions<SnapshotOptions>(who, given, SNAPSHOT_KEYS);
  const pids = options.pids ?? [];
  if (!Array.isArray(pids)) throw new IokitSnapError('EINVAL', `${who}: pids must be an array of process ids, got ${describeValue(pids)}`);
  pids.forEach((pid, i) => checkPid(who, pid, `pids[${i}]`));
  // Checked here, not left to the probes: a bad option is the caller's error, not a limit of the snapshot.
  checkDuration(who, 'timeoutMs', options.timeoutMs);
  checkDuration(who, 'callTimeoutMs', options.callTimeoutMs);
  checkBoolean(who, 'accelerators', options.accelerators);
  const threads = threadOptions(`${who} threads`, options.threads);
  binding(); // a platform without a binary fails here, clearly, instead of as a limits entry
  const takenAt = new Date().toISOString();
  const monotonic = monotonicNs();
  const limits: Limitation[] = [];
  const [host, accelerators, processes] = await Promise.all([
    readHost(),
    options.accelerators === false ? Promise.resolve<Accelerator[]>([]) : acceleratorsInto(limits, options),
    Promise.all(
      pids.map((pid) =>
        sampleThreads(pid, { ...threads.raw, timeoutMs: options.timeoutMs ?? DEFAULT_THREAD_TIMEOUT_MS }).then(
          ({ limits: threadLimits, ...sample }): ProcessSample | null => {
            limits.push(...threadLimits);
            return sample;
          },
          (error) => {
            limits.push(limitFromError(`pid ${pid}`, 'threads', error));
            return null;
          },
        ),
      ),
    ),
  ]);
  return {
    format: 'iokit-snap/1',
    takenAt,
    monotonicNs: monotonic,
    host,
    accelerators,
    processes: processes.filter((p): p is ProcessSample => p !== null),
    limits,
  };
}
