/**
 * The stacks a ProgressTracker asks for (threads whose wait only a stack can tell, once per
 * wait), taken for watch() and serve's collector and handed back. See src/analyze/README.md,
 * "Taking the stack".
 */
import { toIokitSnapError } from '../errors';
import { findPeers } from '../peer';
import { sampleThreads } from '../sample';
import type { Examined, ProgressTracker } from './progress';

/** Stacks taken in one step, at most, per process: the rest wait for the next step. */
const EXAMINED_PER_STEP = 64;

/**
 * Take the stacks the tracker asked for (threads whose wait only a stack can tell, once per
 * wait, at most EXAMINED_PER_STEP a process) and hand them back, with who is at the other end
 * of a wait on a pipe or socket. A process whose stacks cannot be taken (permission, a timeout)
 * gives each thread the reason instead. Returns the processes found at the other ends, by the
 * pid that waits on them.
 */
export async function examineStacks(tracker: ProgressTracker, options: { procRoot?: string; timeoutMs: number }): Promise<Map<number, number>> {
  const requests = tracker.takeExaminations(EXAMINED_PER_STEP);
  if (requests.length === 0) return new Map();
  const results = await Promise.all(
    requests.map(async ({ pid, tids }): Promise<Examined[]> => {
      try {
        // Only the threads asked for are read and held, one at a time; the others are not touched.
        const sample = await sampleThreads(pid, { stacks: true, kernelStacks: false, tids, procRoot: options.procRoot, timeoutMs: options.timeoutMs });
        // Who is at the other end of the waits on pipes and sockets (read from /proc/<pid>/fd and /proc/net, bounded).
        findPeers([sample], { procRoot: options.procRoot });
        const byTid = new Map(sample.threads.map((t) => [t.tid, t]));
        const why = sample.limits.find((l) => l.field === 'stack')?.reason;
        return tids.map((tid): Examined => {
          const thread = byTid.get(tid);
          const peer = thread?.blockedIn?.peer;
          const stack = thread?.stack;
          const found: Examined = stack !== undefined ? { pid, tid, stack } : { pid, tid, stack: null, reason: why ?? 'no stack was taken of it' };
          if (peer !== undefined) found.peer = peer;
          return found;
        });
      } catch (error) {
        const reason = toIokitSnapError(error).message;
        return tids.map((tid) => ({ pid, tid, stack: null, reason }));
      }
    }),
  );
  return tracker.examined(results.flat());
}
