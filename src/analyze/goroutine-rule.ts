/**
 * Go programs: a goroutine blocked on a sync.Mutex is parked by the scheduler, and its OS
 * thread goes back to the scheduler's own wait (the Go scheduler park row of signatures.ts):
 * no thread's stack shows it. So a Go deadlock is read from the goroutines themselves
 * (ProcessSample.goroutines, read from the program's memory: src/runtimes/go.ts), by the same
 * rule as threads: two or more goroutines acquiring locks for the stall window, with no
 * progress, are a deadlock candidate even while other goroutines (a ticker, the GC) run; one
 * is a warning.
 *
 * A goroutine waits "in the same lock" across two samples when it has the same goid, waits
 * for the same reason, and its innermost frames are the same; `waitSinceNs` (set by the GC
 * for a goroutine it saw blocked) gives a lower bound of the wait from one sample.
 */
import type { GoroutineSample, ProcessSample } from '../types';
import { formatMs } from './format';
import { functionName, topFrames } from './signatures';
import type { Finding, Severity } from './types';

/** Frames of a goroutine acquiring a lock: sync.Mutex and RWMutex, and the runtime's semaphore under them. */
const LOCK_FUNCTIONS = new Set([
  'sync.(*Mutex).Lock',
  'sync.(*Mutex).lockSlow',
  'sync.runtime_SemacquireMutex',
  'sync.(*RWMutex).Lock',
  'sync.(*RWMutex).RLock',
  'sync.runtime_SemacquireRWMutex',
  'sync.runtime_SemacquireRWMutexR',
  'internal/sync.(*Mutex).Lock',
  'internal/sync.(*Mutex).lockSlow',
  'internal/sync.runtime_SemacquireMutex',
]);
/** Go 1.24+ names the wait itself. */
const LOCK_REASONS = new Set(['sync.Mutex.Lock', 'sync.RWMutex.Lock', 'sync.RWMutex.RLock']);

/** The frame that makes it a lock acquisition, or -1. */
export function lockFrame(g: GoroutineSample): number {
  if (g.status !== 'waiting') return -1;
  for (let i = 0; i < Math.min(g.frames.length, 10); i++) {
    const symbol = g.frames[i].symbol;
    if (symbol !== undefined && symbol !== null && LOCK_FUNCTIONS.has(functionName(symbol))) return i;
  }
  return g.waitReason !== null && LOCK_REASONS.has(g.waitReason) ? 0 : -1;
}

/** What identifies one wait of a goroutine: its reason and innermost frames. */
export function goroutineWaitKey(g: GoroutineSample): string {
  const frames = g.frames.slice(0, 8).map((f) => f.symbol ?? f.pc);
  return `${g.waitReason}\u0000${frames.join('\u0000')}`;
}

/** A goroutine acquiring a lock, and since when (ns, the sample's monotonic clock). */
export interface GoroutineLockWait {
  g: GoroutineSample;
  sinceNs: number;
  frame: number;
}

/**
 * The goroutines of `p` that have been acquiring a lock for `stallMs`: each with since when,
 * from `since` (the wait's first sight, kept by the caller across samples) or the GC's
 * waitSinceNs, whichever is older.
 */
export function lockWaits(p: ProcessSample, since: (g: GoroutineSample) => number | undefined, stallMs: number): GoroutineLockWait[] {
  const out: GoroutineLockWait[] = [];
  for (const g of p.goroutines ?? []) {
    const frame = lockFrame(g);
    if (frame < 0) continue;
    const seen = since(g);
    const candidates = [seen, g.waitSinceNs ?? undefined].filter((x): x is number => x !== undefined);
    if (candidates.length === 0) continue;
    const sinceNs = Math.min(...candidates);
    if (p.sampledAtNs - sinceNs >= stallMs * 1e6) out.push({ g, sinceNs, frame });
  }
  return out;
}

/** The findings: critical for each when two or more wait, a warning for one alone. */
export function goroutineFindings(p: ProcessSample, waits: GoroutineLockWait[]): Finding[] {
  const severity: Severity = waits.length >= 2 ? 'critical' : 'warning';
  return waits.map(({ g, sinceNs, frame }) => {
    const heldMs = (p.sampledAtNs - sinceNs) / 1e6;
    const others = waits.length - 1;
    const frames = topFrames(g.frames.slice(frame), 3);
    return {
      kind: 'stalled',
      severity,
      subject: `pid ${p.pid} (${p.name}) goroutine ${g.goid}${g.start !== null ? ` (${g.start})` : ''}`,
      ref: { pid: p.pid },
      message: `goroutine ${g.goid} blocked acquiring a lock (${frames}) for at least ${formatMs(heldMs)}: ${
        others > 0
          ? `${others} other goroutine${others === 1 ? '' : 's'} of the program wait${others === 1 ? 's' : ''} on locks the same way: a deadlock (each holds what another wants), or a lock whose owner is stuck; the Go runtime does not report it while any goroutine (a ticker, a timer) can still run`
          : 'another goroutine holds the lock and does not let go'
      }`,
      evidence: [
        { field: 'goroutines.waitReason', before: g.waitReason, after: g.waitReason },
        { field: 'goroutines.goid', before: g.goid, after: g.goid },
        ...(g.waitSinceNs !== null ? [{ field: 'goroutines.waitSinceNs', before: null, after: g.waitSinceNs }] : []),
      ],
      durationMs: heldMs,
    };
  });
}
