/** A thread's CPU time, and its share of one CPU between two samples (top's %CPU). */
import type { ThreadSample } from './types';

/** CPU time so far, ns: Linux's schedstat when read (finer than clock ticks), else user + system. */
export function threadCpuNs(t: ThreadSample): number {
  return t.cpuNs ?? t.userNs + t.systemNs;
}

/** Per thread, the share of one CPU it used between two samples (top's %CPU), from the CPU times and the sample clocks. */
export function cpuPercent(before: { sampledAtNs: number; threads: ThreadSample[] }, after: { sampledAtNs: number; threads: ThreadSample[] }): Map<number, number> {
  const windowNs = after.sampledAtNs - before.sampledAtNs;
  const earlier = new Map(before.threads.map((t) => [t.tid, threadCpuNs(t)]));
  const percent = new Map<number, number>();
  for (const t of after.threads) {
    const was = earlier.get(t.tid);
    if (was !== undefined && windowNs > 0) percent.set(t.tid, Math.max(0, ((threadCpuNs(t) - was) / windowNs) * 100));
  }
  return percent;
}
