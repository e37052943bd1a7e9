/**
 * Helpers for the analysis tests: synthetic snapshots for the edge cases a live process
 * cannot show on demand, and a healthy/hung pair of real snapshots taken stallMs apart.
 *
 *   const healthy = snap(0, [proc(100, [thread(100, { blockedIn: futex })])]);
 *   const hung = snap(2000, [proc(100, [thread(100, { blockedIn: futex })])]);
 *   compare(healthy, hung, { stallMs: 1000 });
 *
 * Times are given in ms of the monotonic clock and stored in ns, as the model does.
 */
import type { Finding, Report } from '../../src/analyze/types';
import { monotonicNs, snapshot } from '../../src/sample';
import type { Accelerator, BlockedIn, Frame, Host, ProcessSample, Snapshot, ThreadSample } from '../../src/types';
import { waitFor } from './targets';

export const LINUX: Host = { platform: 'linux', arch: 'x64', osRelease: '6.8.0' };
export const DARWIN: Host = { platform: 'darwin', arch: 'arm64', osRelease: '24.1.0', model: 'Mac14,2' };

/** A thread asleep with nothing known about its wait, unless `over` says otherwise. */
export function thread(tid: number, over: Partial<ThreadSample> = {}): ThreadSample {
  return {
    tid,
    name: 'app',
    state: 'sleeping',
    userNs: 1_000_000,
    systemNs: 2_000_000,
    contextSwitches: { voluntary: 10, involuntary: 1 },
    suspendCount: null,
    blockedIn: null,
    ...over,
  };
}

/** A PCI GPU with nothing read yet, unless `over` says otherwise. */
export function accelerator(over: Partial<Accelerator> = {}): Accelerator {
  return {
    id: '0000:01:00.0',
    name: 'GH100',
    className: 'nvidia',
    classChain: ['pci', '0x030200'],
    vendor: 'NVIDIA',
    model: 'H100',
    busy: null,
    serviceState: null,
    power: null,
    probeScore: null,
    utilization: null,
    memory: null,
    recovery: null,
    queues: null,
    ...over,
  };
}

/** A thread blocked acquiring a glibc mutex as the kernel shows it: FUTEX_WAIT on a word holding 2 (locked, with waiters). */
export function lockedOn(address = 0x5000): BlockedIn {
  return { call: 'futex', number: 202, futex: { address, op: 'wait', value: 2 } };
}

/** A user stack of named frames, innermost first, as the Linux sampler gives it: "pthread_mutex_lock@libc.so.6". */
export function frames(...symbols: string[]): Frame[] {
  return symbols.map((s, i) => {
    const [symbol, module] = s.split('@');
    return { pc: 0x1000 + i * 0x10, module: module === undefined ? '/usr/lib/x86_64-linux-gnu/libc.so.6' : `/usr/lib/${module}`, offset: 0x100 + i, symbol, symbolOffset: 4 };
  });
}

export function blocked(call: string, number = 0, fd?: number, target?: string): BlockedIn {
  const b: BlockedIn = { call, number };
  if (fd !== undefined) b.fd = fd;
  if (target !== undefined) b.target = target;
  return b;
}

export function proc(pid: number, threads: ThreadSample[], name = 'app'): Omit<ProcessSample, 'sampledAtNs'> {
  return { pid, name, threads };
}

/** A snapshot at `ms` of monotonic time; each process sampled at that time. */
export function snap(ms: number, processes: Omit<ProcessSample, 'sampledAtNs'>[], over: Partial<Snapshot> = {}): Snapshot {
  const ns = ms * 1e6;
  return {
    format: 'iokit-snap/1',
    takenAt: new Date(1_700_000_000_000 + ms).toISOString(),
    monotonicNs: ns,
    host: LINUX,
    accelerators: [],
    processes: processes.map((p) => ({ ...p, sampledAtNs: ns, threads: p.threads.map((t) => ({ ...t })) })),
    limits: [],
    ...over,
  };
}

/** The findings about one thread. */
export function findingsOf(report: Report, tid: number | string): Finding[] {
  return report.findings.filter((f) => f.ref.tid === Number(tid));
}

export function evidenceOf(finding: Finding, field: string): { before: unknown; after: unknown } | undefined {
  return finding.evidence.find((e) => e.field === field);
}

export { start } from './targets';

/** A threads-only snapshot of `pid`. */
export function threadsOf(pid: number): Promise<Snapshot> {
  return snapshot({ pids: [pid], accelerators: false });
}

/**
 * Two snapshots of `pid`: the first once `ready(first)` holds, the second after at least
 * `stallMs` (plus a margin) of monotonic time, by polling the clock, never a fixed sleep.
 */
export async function snapshotPair(
  pid: number,
  stallMs: number,
  ready: (s: Snapshot) => boolean = () => true,
): Promise<{ healthy: Snapshot; hung: Snapshot }> {
  const healthy = await waitFor(async () => {
    const s = await threadsOf(pid);
    return s.processes.length === 1 && ready(s) && s;
  }, `pid ${pid} in the expected state`);
  const firstAt = healthy.processes[0]!.sampledAtNs;
  await waitFor(() => monotonicNs() - firstAt >= (stallMs + 50) * 1e6, `${stallMs} ms to pass`, 20000, 20);
  const hung = await threadsOf(pid);
  return { healthy, hung };
}

/** The thread `tid` of the only process of a snapshot. */
export function threadIn(s: Snapshot, tid: number | string): ThreadSample | undefined {
  return s.processes[0]?.threads.find((th) => th.tid === Number(tid));
}
