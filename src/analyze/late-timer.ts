/**
 * The late-sampler guard that watch() and serve's collector share. A window in which our
 * own timer fired late (this process was stopped, or the machine overloaded), or in which
 * wall time ran on while the monotonic clock stood still (a suspended machine), is one we
 * did not look at: it must be discarded, not judged as a hang.
 */
export interface Discard {
  reason: string;
  lateMs: number;
}

export class LateTimerGuard {
  private expectedAtNs = -1;
  private lastMonoNs = -1;
  private lastWallMs = -1;

  constructor(private readonly intervalMs: number) {}

  /** At the start of a step: why its window must be discarded, or undefined. */
  check(startMonoNs: number, startWallMs: number): Discard | undefined {
    if (this.expectedAtNs < 0) return undefined;
    const lateMs = (startMonoNs - this.expectedAtNs) / 1e6;
    const sleptMs = startWallMs - this.lastWallMs - (startMonoNs - this.lastMonoNs) / 1e6;
    const allowance = Math.max(this.intervalMs, 1000);
    if (sleptMs > allowance) return { reason: 'the machine was asleep (wall clock ran on, monotonic clock did not)', lateMs: sleptMs };
    if (lateMs > allowance) return { reason: 'our own timer fired late (this process was stopped, or the machine overloaded)', lateMs };
    return undefined;
  }

  /** After a step that began at startMonoNs and ended now: the delay until the next one. */
  next(startMonoNs: number, endMonoNs: number, endWallMs: number): number {
    this.lastMonoNs = endMonoNs;
    this.lastWallMs = endWallMs;
    const delay = Math.max(0, this.intervalMs - (endMonoNs - startMonoNs) / 1e6);
    this.expectedAtNs = endMonoNs + delay * 1e6;
    return delay;
  }
}
