/**
 * The 'sample' event that watch() and serve's collector publish after each step: when, the
 * verdict and the findings that hold now, how many threads were sampled, and whether the
 * window was discarded (see late-timer.ts). Each adds its own fields after these (watch():
 * each thread's %CPU, `cpu`).
 */
import type { ProcessSample } from '../types';
import type { Discard } from './late-timer';
import type { Report, SampleEvent } from './types';

export function sampleEvent(report: Report, processes: ProcessSample[], monotonicNs: number, at: string, discard: Discard | undefined): Omit<SampleEvent, 'cpu'> {
  return {
    type: 'sample',
    at,
    monotonicNs,
    verdict: report.verdict,
    findings: report.findings,
    threads: processes.reduce((n, p) => n + p.threads.length, 0),
    ...(discard !== undefined ? { discarded: discard } : {}),
  };
}
