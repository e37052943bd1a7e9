/**
 * When to announce a hang and its recovery: the state watch() and serve's collector share.
 * A hang is announced once, when the verdict turns 'hung'; a recovery once, when it stops
 * being 'hung', with how long the hang lasted. After a discarded window (see late-timer.ts)
 * the stall clocks restart, so a hang cannot show again for stallMs, and that is not a
 * recovery: both stay unannounced until the windows have refilled.
 */
import type { HangEvent, RecoverEvent, Report, Verdict } from './types';

export class HangAnnouncer {
  private verdict: Verdict = 'healthy';
  private hungSinceNs = 0;
  /** Until then, no hang or recover events: the windows restarted after a discarded one. */
  private holdUntilNs = 0;

  constructor(private readonly stallMs: number) {}

  /** After a step judged at nowNs (at: its ISO wall clock): the event it announces, if any. */
  step(report: Report, nowNs: number, at: string, discarded: boolean): HangEvent | RecoverEvent | undefined {
    if (discarded) this.holdUntilNs = nowNs + this.stallMs * 1e6;
    if (nowNs < this.holdUntilNs) return undefined;
    const was = this.verdict;
    this.verdict = report.verdict;
    if (report.verdict === 'hung' && was !== 'hung') {
      this.hungSinceNs = nowNs;
      return { type: 'hang', at, monotonicNs: nowNs, report };
    }
    if (report.verdict !== 'hung' && was === 'hung') {
      return { type: 'recover', at, monotonicNs: nowNs, hungForMs: (nowNs - this.hungSinceNs) / 1e6 };
    }
    return undefined;
  }
}
