/**
 * The analysis model: what compare() and watch() return. Pure data, JSON-safe, so a
 * report can be saved next to the snapshots it came from and read back later.
 */
import type { IokitSnapError } from '../errors';
import type { Snapshot } from '../types';

/** critical makes the verdict 'hung'; warning makes it 'suspect'; info never changes it. */
export type Severity = 'critical' | 'warning' | 'info';

export type Verdict = 'hung' | 'suspect' | 'healthy';

export type FindingKind =
  // threads
  | 'stalled'
  | 'spinning'
  | 'starved'
  | 'uninterruptible'
  | 'stopped'
  | 'blocked-in-driver'
  | 'waiting'
  // accelerators
  | 'accelerator-disappeared'
  | 'accelerator-appeared'
  | 'accelerator-recreated'
  | 'busy'
  | 'power-dropped'
  | 'power-transition'
  | 'recovery'
  | 'queue-stalled'
  | 'utilization-pegged'
  | 'probe-score-changed'
  | 'service-state'
  | 'command-submission-disabled'
  | 'gpu-lost'
  | 'd3cold-while-blocked'
  // the reading itself
  | 'probe-timed-out';

/** One value that changed (or did not) between the two samples. */
export interface Evidence {
  /** The model field: "cpuNs", "blockedIn.call", "recovery.count", "power.desiredState", … */
  field: string;
  before: EvidenceValue;
  after: EvidenceValue;
}

export type EvidenceValue = string | number | boolean | null;

/** What a finding is about, in a form a program can join back to the snapshot. */
export interface FindingRef {
  pid?: number;
  tid?: number;
  /** Accelerator id (registry entry id or PCI address). */
  accelerator?: string;
}

export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** Who: "pid 4242 (python3) thread 4242 'python3' (main)", "accelerator AGXAcceleratorG13X 0x100000478". */
  subject: string;
  ref: FindingRef;
  /** One line a person can act on. */
  message: string;
  /** The before and after values. */
  evidence: Evidence[];
  /** How long the condition has held, in ms of monotonic time; null when not known. */
  durationMs: number | null;
}

export interface ProcessSummary {
  pid: number;
  name: string;
  threads: number;
  /** Threads parked in an event wait (epoll_wait, poll, kevent, run-loop mach_msg, …) in both samples: idle, not findings. */
  idle: number;
  /** CPU time the whole process used between the two samples, ns. */
  cpuNs: number;
  /** The window between the two samples of this process, ms. */
  windowMs: number;
  /** The process was in the healthy snapshot but not in the hung one (it exited). */
  gone?: boolean;
  /** The process was only in the hung snapshot, so it has no baseline. */
  new?: boolean;
}

export interface Report {
  verdict: Verdict;
  /** Most severe first, then by kind, then by subject. */
  findings: Finding[];
  processes: ProcessSummary[];
  /** How many accelerators each snapshot held. */
  accelerators: { before: number; after: number };
  /** monotonicNs(hung) − monotonicNs(healthy), ms; null when the snapshots come from different boots. */
  windowMs: number | null;
  /** Notes on how far the comparison can be trusted (different hosts, missing baseline, …). */
  notes: string[];
}

export interface CompareOptions {
  /** A thread must make no progress for at least this long to count as stalled (default 1000 ms). */
  stallMs?: number;
  /** CPU time over wall time at or above which a thread counts as spinning (default 0.9). */
  spinRatio?: number;
  /**
   * The process is expected to finish (iokit-snap exec): a main thread that waits for events
   * (poll, epoll_wait, kevent, run-loop mach_msg) is then suspect, not idle.
   */
  expectExit?: boolean;
}

export interface WatchOptions extends CompareOptions {
  pid?: number;
  pids?: number[];
  /** Time between samples (default 500 ms). */
  intervalMs?: number;
  /** Default 5000 ms for watch. */
  stallMs?: number;
  /** A healthy snapshot to judge idle waits and accelerator changes against (default: the first sample). */
  baseline?: Snapshot;
  /** Sample the accelerators too (default true). */
  accelerators?: boolean;
  /** 'full' (default) reads what each thread is blocked in; 'basic' only state and CPU time. */
  detail?: 'basic' | 'full';
  /** Deadline for each sample, ms (default max(2000, 4 × intervalMs)). */
  timeoutMs?: number;
  /** Stops the watch. */
  signal?: AbortSignal;
  /** Linux: read this tree instead of /proc, and this one instead of /sys (tests). */
  procRoot?: string;
  sysRoot?: string;
  /**
   * Take the user stack of a thread whose wait only a stack can tell (a futex, an epoll inside
   * a library), once per wait, to judge it by what it waits for (default true; never with
   * detail 'basic'). false: judge by the kernel's view alone.
   */
  stacks?: boolean;
}

/** Emitted after every sample. */
export interface SampleEvent {
  type: 'sample';
  /** ISO wall clock. */
  at: string;
  monotonicNs: number;
  verdict: Verdict;
  /** Findings that hold now (not the history). */
  findings: Finding[];
  threads: number;
  /** Set when this window was thrown away because our own timer fired late (asleep, stopped, overloaded). */
  discarded?: { reason: string; lateMs: number };
  /**
   * Each thread's %CPU since the previous sample of its process, busiest first. Empty on the
   * first sample; a thread not in the previous sample is left out.
   */
  cpu: ThreadCpu[];
}

/** A thread's share of one CPU over the last interval, as top's %CPU (100 = one CPU all the time). */
export interface ThreadCpu {
  pid: number;
  tid: number;
  name: string | null;
  percent: number;
}

/** The verdict became 'hung'. */
export interface HangEvent {
  type: 'hang';
  at: string;
  monotonicNs: number;
  report: Report;
}

/** The verdict stopped being 'hung'. */
export interface RecoverEvent {
  type: 'recover';
  at: string;
  monotonicNs: number;
  /** How long the hang lasted, ms. */
  hungForMs: number;
}

/** A watched process exited. */
export interface ExitEvent {
  type: 'exit';
  at: string;
  monotonicNs: number;
  pid: number;
}

export interface ErrorEvent {
  type: 'error';
  at: string;
  monotonicNs: number;
  error: IokitSnapError;
}

export type WatchEvent = SampleEvent | HangEvent | RecoverEvent | ExitEvent | ErrorEvent;
