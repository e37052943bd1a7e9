/** sampleAccelerators, sampleThreads, createThreadSampler, snapshot: the live readers. */
import * as os from 'node:os';
import { IokitSnapError, toIokitSnapError } from './errors';
import { checkBoolean, checkDuration, checkPid, readOptions } from './options';
import { markProducedAccelerator, markProducedSnapshot, markProducedThreads } from './checked-objects';
import { describeValue } from './describe-value';
import type * as LinuxMap from './map/linux';
import type * as RegistryMap from './map/registry';
import { binding, withDeadline, type RawAccelerator, type RawThreadOptions, type RawThreadSampler } from './native';
import { findPeers } from './peer';
import type * as Go from './runtimes/go';
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
const THREAD_KEYS = ['detail', 'stacks', 'kernelStacks', 'procRoot', 'maxStackDepth', 'maxOpenFiles', 'timeoutMs', 'tids'] as const;
/** The most thread ids one `tids` option may name. */
export const MAX_TIDS = 4096;
const SNAPSHOT_KEYS = [...ACCELERATOR_KEYS, 'pids', 'threads', 'accelerators', 'peers', 'goroutines'] as const;
/** Processes at the other end of waits that snapshot({ peers: true }) samples, at most. */
const MAX_PEER_PROCESSES = 16;

/** A native record as the model has it; the mapping of its platform is loaded on first use (the thread readers need neither). */
function mapAccelerator(platform: string, raw: RawAccelerator, includeProperties: boolean): Accelerator {
  if (platform === 'darwin') {
    const { acceleratorFromRegistry } = require('./map/registry') as typeof RegistryMap;
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
  return (require('./map/linux') as typeof LinuxMap).acceleratorFromLinux(raw, { includeProperties });
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
  const accelerators = raw.accelerators.map((a) => mapAccelerator(native.platform, a, options.includeProperties === true));
  // Made here, so compare() and the tracker need not check them (src/snapshot-schema.ts).
  for (const a of accelerators) markProducedAccelerator(a);
  return { accelerators, limits: raw.limits };
}

/** `tids` as given, checked: an array of at most MAX_TIDS positive integers (thread ids), copied. */
function checkTids(who: string, tids: unknown): number[] | undefined {
  if (tids === undefined) return undefined;
  const fits = Array.isArray(tids) && tids.length <= MAX_TIDS && tids.every((tid) => Number.isSafeInteger(tid) && (tid as number) >= 1);
  if (!fits) {
    const shown = Array.isArray(tids) && tids.length > MAX_TIDS ? `an array of ${tids.length}` : describeValue(tids);
    throw new IokitSnapError('EINVAL', `${who}: tids must be an array of at most ${MAX_TIDS} positive integer thread ids, got ${shown}`);
  }
  return [...(tids as number[])];
}

/**
 * Only the threads `tids` names, each once, in the order given. The Linux backend reads
 * just those; the macOS backend reads every thread (a task's threads come in one
 * task_threads call, and each is cheap to inspect, but a stack walk suspends each
 * thread), so there the sample is cut down here, after the fact.
 */
export function keepThreads<T extends { threads: { tid: number }[] }>(sample: T, tids: readonly number[]): T {
  const byTid = new Map(sample.threads.map((thread) => [thread.tid, thread]));
  const threads = [...new Set(tids)].flatMap((tid) => byTid.get(tid) ?? []);
  return { ...sample, threads };
}

/** The options read once into a plain object (the native glue sees no getters) and the deadline. */
function threadOptions(who: string, given: unknown, fallbackTimeoutMs = DEFAULT_THREAD_TIMEOUT_MS): { raw: RawThreadOptions; timeoutMs: number } {
  const { timeoutMs, ...options } = readOptions<ThreadOptions>(who, given, THREAD_KEYS);
  const deadline = checkDuration(who, 'timeoutMs', timeoutMs) ?? fallbackTimeoutMs;
  const tids = checkTids(who, options.tids);
  if (tids !== undefined) options.tids = tids;
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
  const { tids, ...rest } = raw;
  if (tids === undefined || native.platform === 'linux') {
    return withDeadline(() => native.sampleThreads(pid, raw), timeoutMs, `Sampling the threads of pid ${pid}`).then(produced);
  }
  // macOS: the backend samples every thread; keep the chosen (see keepThreads).
  const sample = await withDeadline(() => native.sampleThreads(pid, rest), timeoutMs, `Sampling the threads of pid ${pid}`);
  return produced(keepThreads(sample, tids));
}

/** A thread sample the native sampler made: its thread list need not be checked again (src/snapshot-schema.ts). */
function produced(result: ThreadSampleResult): ThreadSampleResult {
  markProducedThreads(result.threads);
  return result;
}

/**
 * A sampler left idle this long (or three of its own intervals, when longer) gives back
 * the fds it keeps, and opens them again at its next sample: one that its owner forgot
 * to close holds none for long, whenever a garbage collection comes.
 */
export const SAMPLER_IDLE_RELEASE_MS = 2000;

/**
 * The repeated-sampling path (what watch() uses): keeps per-thread handles open
 * between samples and re-reads them. Close it when done.
 *
 * Samples of one sampler run one at a time: a sample() called while another is in
 * flight waits for it, and its own deadline starts when its turn comes.
 */
export function createThreadSampler(pid: number, options: ThreadOptions = {}): ThreadSampler {
  checkPid('createThreadSampler()', pid);
  const { raw: given, timeoutMs } = threadOptions('createThreadSampler()', options);
  // macOS: every thread is sampled and the chosen kept (see keepThreads); Linux reads only those.
  const { tids, ...rest } = given;
  const filterTids = tids !== undefined && binding().platform !== 'linux' ? tids : undefined;
  const raw = filterTids === undefined ? given : rest;
  let opening: Promise<RawThreadSampler> | undefined;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  // The native sample last started, settled or not: one abandoned at its deadline may still run.
  let inFlight: Promise<unknown> | undefined;
  let idle: NodeJS.Timeout | undefined;
  let lastStart: number | undefined;
  let intervalMs = 0;
  const closedError = () => new IokitSnapError('EINVAL', 'this thread sampler is closed; create a new one');
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
  const sampleNow = async (): Promise<ThreadSampleResult> => {
    if (closed) throw closedError();
    const sampler = await open();
    if (closed) {
      sampler.close();
      throw closedError();
    }
    clearTimeout(idle);
    const started = performance.now();
    if (lastStart !== undefined) intervalMs = started - lastStart;
    lastStart = started;
    try {
      let left = timeoutMs;
      if (inFlight !== undefined) {
        // The sample before this one passed its deadline and still runs natively.
        let timer: NodeJS.Timeout | undefined;
        const waited = await Promise.race([
          inFlight.then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs - (performance.now() - started))))),
        ]);
        clearTimeout(timer);
        if (!waited)
          throw new IokitSnapError(
            'ETIMEDOUT',
            `the previous sample of pid ${pid}, abandoned at its deadline, has still not returned ${timeoutMs} ms later: ` +
              'the target or the kernel may be hung. Close this sampler, or keep sampling to see whether it comes back.',
          );
        left = Math.max(1, Math.ceil(timeoutMs - (performance.now() - started)));
      }
      return await withDeadline(
        () => {
          const probe = sampler.sample();
          const settled = probe.then(
            () => undefined,
            () => undefined,
          );
          inFlight = settled;
          void settled.then(() => {
            if (inFlight === settled) inFlight = undefined;
          });
          return probe;
        },
        left,
        `Sampling the threads of pid ${pid}`,
      );
    } finally {
      if (!closed) {
        idle = setTimeout(() => sampler.release(), Math.max(SAMPLER_IDLE_RELEASE_MS, 3 * intervalMs));
        idle.unref();
      }
    }
  };
  return {
    pid,
    sample() {
      const turn = queue
        .then(sampleNow, sampleNow)
        .then((sample) => (filterTids === undefined ? sample : keepThreads(sample, filterTids)))
        .then(produced);
      queue = turn.catch(() => undefined);
      return turn;
    },
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(idle);
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
      for (const l of sample.limits) limits.push(l);
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
  checkBoolean(who, 'peers', options.peers);
  checkBoolean(who, 'goroutines', options.goroutines);
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
        Promise.all([
          sampleThreads(pid, { ...threads.raw, timeoutMs: options.timeoutMs ?? DEFAULT_THREAD_TIMEOUT_MS }),
          // Go programs: the goroutines, read from memory at the same time (runtimes/go.ts).
          options.goroutines === true ? (require('./runtimes/go') as typeof Go).sampleGoroutines(pid, { timeoutMs: options.timeoutMs ?? DEFAULT_THREAD_TIMEOUT_MS }) : undefined,
        ]).then(
          ([{ limits: threadLimits, ...sample }, go]): ProcessSample | null => {
            for (const l of threadLimits) limits.push(l);
            if (go !== undefined) {
              for (const l of go.limits) limits.push(l);
              if (go.goVersion !== null) sample.goVersion = go.goVersion;
              if (go.goroutines !== null) sample.goroutines = go.goroutines;
            }
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
  // Who holds the other end of the pipes and sockets threads are blocked on (only those threads;
  // Linux names them pipe:[N] and socket:[N], so on macOS there is nothing to look for).
  const sampled = processes.filter((p): p is ProcessSample => p !== null);
  const peerLimits = findPeers(sampled, { procRoot: threads.raw.procRoot }).limits;
  if (options.peers === true) {
    // The processes at the other end, sampled too (one step: not their own peers), so a wait on
    // them is judged by them: a client by its server, a reader by its writer.
    const known = new Set(sampled.map((p) => p.pid));
    const more = new Map<number, number>();
    for (const p of sampled) {
      for (const t of p.threads) for (const holder of t.blockedIn?.peer?.pids ?? []) if (!known.has(holder.pid) && !more.has(holder.pid)) more.set(holder.pid, p.pid);
    }
    if (more.size > 0) {
      // Sampled at once; their limits kept in the holders' order, whichever answers first.
      const extra = await Promise.all(
        [...more].slice(0, MAX_PEER_PROCESSES).map(([pid, of]) =>
          sampleThreads(pid, { ...threads.raw, timeoutMs: options.timeoutMs ?? DEFAULT_THREAD_TIMEOUT_MS }).then(
            ({ limits: threadLimits, ...sample }) => ({ sample: { ...sample, peerOf: of } as ProcessSample | null, limits: threadLimits }),
            (error) => ({ sample: null, limits: [limitFromError(`pid ${pid}`, 'threads', error)] }),
          ),
        ),
      );
      for (const e of extra) for (const l of e.limits) limits.push(l);
      if (more.size > MAX_PEER_PROCESSES) {
        limits.push({ subject: 'snapshot', field: 'peers', code: 'E2BIG', reason: `${more.size} processes hold the other ends; the first ${MAX_PEER_PROCESSES} were sampled` });
      }
      for (const e of extra) if (e.sample !== null) sampled.push(e.sample);
      // Again, now that the holders are in the snapshot: `sampled` says so, and their own waits get their peers.
      for (const l of findPeers(sampled, { procRoot: threads.raw.procRoot }).limits) limits.push(l);
    } else {
      for (const l of peerLimits) limits.push(l);
    }
  } else {
    for (const l of peerLimits) limits.push(l);
  }
  const taken: Snapshot = {
    format: 'iokit-snap/1',
    takenAt,
    monotonicNs: monotonic,
    host,
    accelerators,
    processes: sampled,
    limits,
  };
  markProducedSnapshot(taken);
  return taken;
}
