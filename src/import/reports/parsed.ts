/**
 * What every report parser produces before it becomes a Snapshot: processes of threads
 * with their frames in the report's own terms, plus where the report stopped.
 */
import { IokitSnapError } from '../../errors';
import { MAX_IMPORTED_THREADS } from '../../input-limits';
import type { Frame, Limitation, ReportFacts, ReportFormat, ThreadState } from '../../types';

export interface ParsedThread {
  /** The kernel thread id when the report gives one; otherwise the report's thread number. */
  tid: number;
  /** True when tid is only the report's numbering ("Thread 3:", "thread #2"). */
  tidIsIndex: boolean;
  name: string | null;
  queue: string | null;
  main: boolean;
  /** User frames, innermost first. */
  stack: Frame[];
  /** Kernel frames, innermost first. */
  kernelFrames: Frame[];
  samples: number | null;
  /** The state the report states (hung_task: D), or null to derive from the stack. */
  state: ThreadState | null;
  /** How long the report proves the thread sat where it is, ms; null when it does not. */
  heldMs: number | null;
  blockedBy?: { pid: number | null; tid: number | null; name: string | null; text: string };
  /** Line of the thread's header (1-based), for messages. */
  line: number;
}

export interface ParsedProcess {
  pid: number | null;
  name: string | null;
  threads: ParsedThread[];
  facts: ReportFacts;
}

export interface ParsedReport {
  format: ReportFormat;
  platform: 'darwin' | 'linux';
  processes: ParsedProcess[];
  limits: Limitation[];
  takenAt: string | null;
  osRelease: string;
  arch: string;
  model: string | null;
  lines: number;
}

/** The budget of the parse in progress: threads it may still create, of how many (parsing is synchronous). */
let budget = { left: Number.POSITIVE_INFINITY, max: Number.POSITIVE_INFINITY };

/** Run a parse that creates at most `max` threads; the next one is EINVAL naming its line. */
export function withThreadBudget<T>(parse: () => T, max = MAX_IMPORTED_THREADS): T {
  const outer = budget;
  budget = { left: max, max };
  try {
    return parse();
  } finally {
    budget = outer;
  }
}

export function newThread(tid: number, tidIsIndex: boolean, line: number): ParsedThread {
  if (--budget.left < 0) {
    throw new IokitSnapError(
      'EINVAL',
      `line ${line}: the report lists more than ${budget.max} threads or tasks, more than a report of its size can be read with (they would not fit in memory); pass the part about the process you need`,
    );
  }
  return {
    tid,
    tidIsIndex,
    name: null,
    queue: null,
    main: false,
    stack: [],
    kernelFrames: [],
    samples: null,
    state: null,
    heldMs: null,
    line,
  };
}

export function newProcess(format: ReportFormat, pid: number | null = null, name: string | null = null): ParsedProcess {
  return { pid, name, threads: [], facts: { format, samples: null, sampledMs: null, unresponsiveMs: null, notes: [] } };
}

export function newReport(format: ReportFormat, platform: 'darwin' | 'linux', lines: number): ParsedReport {
  return { format, platform, processes: [], limits: [], takenAt: null, osRelease: '', arch: '', model: null, lines };
}

/** The report ends inside something: say where, so a cut paste is not read as a complete one. */
export function truncated(report: ParsedReport, line: number, what: string, text: string): void {
  const shown = text.trim().length > 80 ? `${text.trim().slice(0, 80)}…` : text.trim();
  report.limits.push({
    subject: 'report',
    field: 'stack',
    code: 'ENODATA',
    reason: `the report is cut at line ${line} (${what}: ${JSON.stringify(shown)}); everything before it was read`,
    hint: 'paste the whole report (attach the file rather than a copy from a terminal or a web page)',
  });
}

/** The tid of a thread whose header was cut off the paste. */
export const UNKNOWN_TID = -1;

/** Frames that came before any thread header: the paste starts in the middle of a thread. */
export function headless(report: ParsedReport, from: number, to: number, kept = true): void {
  report.limits.push({
    subject: 'report',
    field: 'threads',
    code: 'ENODATA',
    reason: `lines ${from}-${to} are frames of a thread whose header is not in the paste (it starts in the middle of a thread); ${kept ? `they are kept as thread ${UNKNOWN_TID}, whose id and name are unknown` : 'they were skipped'}`,
    hint: 'include the thread header line above the frames',
  });
}

/** Parse a hex or decimal integer; null when it does not fit a double exactly. */
export function parseAddress(hex: string): number | null {
  const value = Number.parseInt(hex, 16);
  return Number.isSafeInteger(value) ? value : null;
}

/** pid_t is a 32-bit signed integer on Linux and macOS: no process id is larger. */
export const MAX_PID = 0x7fffffff;

/**
 * An id the report prints (a pid, a thread id, a thread's number; decimal, or hex with 0x),
 * or EINVAL naming the line when no system could have printed it: a snapshot's ids must be
 * exact integers, and a number past 2^53 (or a pid past 2^31) cannot be one.
 */
export function idAt(text: string, line: number, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text);
  if (Number.isSafeInteger(value) && value >= 0 && value <= max) return value;
  throw new IokitSnapError(
    'EINVAL',
    `line ${line}: ${what} ${text.length > 40 ? `${text.slice(0, 40)}…` : text} is larger than any ${what} can be (at most ${max}); the report is damaged at that line`,
  );
}

/** A count the report prints (samples), or EINVAL naming the line when it is past 2^53 (no count of samples is). */
export function countAt(text: string, line: number, what: string): number {
  return idAt(text, line, what);
}

/** An offset into a symbol or an image; null when it does not fit a double exactly (as parseAddress). */
export function offsetOf(text: string): number | null {
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}
