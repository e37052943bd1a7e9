/**
 * The core of compare() and watch(): per-thread progress, judged the same way for a saved
 * pair and for a live stream.
 *
 * watch() keeps a track per thread: what it waited in, its CPU time and context switches
 * when last seen, and since when none of that changed. A step is one pass over the new
 * sample, O(threads), with no allocation for a thread that is fine; memory holds one track
 * per live thread, never the history. compare(healthy, hung) makes the same judgement from
 * the two samples directly, pairing threads by position when the order matches (it nearly
 * always does) and by tid otherwise, without building tracks at all.
 */
import type { BlockedIn, Limitation, ProcessSample, Snapshot, ThreadSample, ThreadState } from '../types';
import { checkCompareOptions, checkSnapshotArgument } from './checks';
import { acceleratorFindings, type Transition } from './accelerators';
import { cpuOf, describeWait, isDriverCall, kernelWaitHint, sameWait, waitClass } from './calls';
import { formatCpu, formatMs } from './format';
import type { CompareOptions, Evidence, Finding, ProcessSummary, Report, Severity, Verdict } from './types';

export const DEFAULT_STALL_MS = 1000;
export const DEFAULT_SPIN_RATIO = 0.9;

/** What step() needs of a sample: a Snapshot, or the parts of one a watcher has. */
export type StepInput = Pick<Snapshot, 'monotonicNs' | 'processes' | 'accelerators' | 'limits'> & {
  host?: Pick<Snapshot['host'], 'platform'>;
};

/** Where a thread's current window began, as the rules need it. */
interface Prior {
  /** The state in the earlier sample (evidence). */
  before: ThreadState;
  /** Since when nothing changed. */
  sinceNs: number;
  /** Since when it has wanted a CPU the whole time (-1: not), and its CPU time and run delay then. */
  spinSinceNs: number;
  spinCpu: number;
  spinWait: number;
}

class ThreadTrack implements Prior {
  state: ThreadState;
  before: ThreadState;
  cpu: number;
  voluntary: number;
  involuntary: number;
  pc: number;
  blocked: BlockedIn | null;
  wchan: string | undefined;
  sinceNs: number;
  lastNs: number;
  spinSinceNs = -1;
  spinCpu = 0;
  spinWait = 0;
  /** schedstat run delay when last seen: ns runnable but waiting for a CPU. */
  wait: number;
  seen: number;
  /** Where it waited in the baseline (or when first seen): the waits that count as idle. */
  readonly baseBlocked: BlockedIn | null;
  readonly baseWchan: string | undefined;

  constructor(
    readonly tid: number,
    t: ThreadSample,
    nowNs: number,
    base: ThreadSample,
    seen: number,
  ) {
    this.state = t.state;
    this.before = t.state;
    this.cpu = cpuOf(t);
    this.wait = t.runDelayNs ?? 0;
    this.voluntary = t.contextSwitches?.voluntary ?? -1;
    this.involuntary = t.contextSwitches?.involuntary ?? -1;
    this.pc = t.pc ?? -1;
    this.blocked = t.blockedIn;
    this.wchan = t.wchan;
    this.sinceNs = nowNs;
    this.lastNs = nowNs;
    this.baseBlocked = base.blockedIn;
    this.baseWchan = base.wchan;
    this.seen = seen;
  }
}

class ProcessTrack {
  tracks = new Map<number, ThreadTrack>();
  /** The tracks in the order of the last sample, for lookup by position. */
  order: ThreadTrack[] = [];
  constructor(
    readonly pid: number,
    public name: string,
    public lastNs: number,
    /** The baseline's threads by tid, when a baseline snapshot was given. */
    readonly baseline: Map<number, ThreadSample> | null,
  ) {}
}

/** What pass one makes of a thread. */
const NONE = 0;
const IDLE = 1;
/** No progress in a blocking call: counts toward "the whole process is stuck". */
const STILL = 2;
const OTHER = 3;
/** An event wait: idle when it is where the thread waited in the baseline, else a candidate. */
const EVENT = 4;
/** No progress, in a call nobody could read (a 'basic' sample, no permission): it cannot tell idle from stuck. */
const UNKNOWN = 5;

const SEVERITY_RANK: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };

export function verdictOf(findings: Finding[]): Verdict {
  let verdict: Verdict = 'healthy';
  for (const f of findings) {
    if (f.severity === 'critical') return 'hung';
    if (f.severity === 'warning') verdict = 'suspect';
  }
  return verdict;
}

export function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort(
    (a, b) =>
      SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
      (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0) ||
      (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0),
  );
}

function threadSubject(p: ProcessSample, t: ThreadSample, main: boolean): string {
  return `pid ${p.pid} (${p.name}) thread ${t.tid}${t.name !== null ? ` '${t.name}'` : ''}${main ? ' (main)' : ''}`;
}

/** What the wait means, in words a person can act on. */
export function waitHint(thread: ThreadSample): string {
  const kernel = kernelWaitHint(thread);
  if (kernel !== null) return kernel;
  const call = thread.blockedIn!.call;
  const target = thread.blockedIn?.target;
  if (/futex|psynch|ulock|semwait|sem_wait|semaphore_|lock/.test(call)) return 'it waits on a lock or condition that nobody releases';
  if (/^(read|readv|pread64|preadv2?|recv\w*|read_nocancel|pread_nocancel|recvmsg_nocancel|recvfrom_nocancel)$/.test(call)) {
    return `it waits for input${target !== undefined ? ` on ${target}` : ''} that does not come; find the other end`;
  }
  if (/^(write|writev|pwrite64|send\w*|write_nocancel)$/.test(call)) {
    return `it waits to write${target !== undefined ? ` to ${target}` : ''}: the reader is not reading`;
  }
  if (/^(open|openat|openat2|stat|newfstatat|statx|fsync|fdatasync|flock|fcntl)$/.test(call)) {
    return 'it waits on the filesystem (a lock, or a slow or unreachable mount)';
  }
  return 'it waits for something that does not happen';
}

function isStopped(t: ThreadSample): boolean {
  return t.state === 'stopped' || (t.suspendCount !== null && t.suspendCount > 0);
}

/**
 * Pass one: is the thread a candidate for a finding? Cheap for the common case (it made
 * progress, or not for long enough); the call is classified only for threads that sat still.
 */
function triage(t: ThreadSample, main: boolean, heldNs: number, spinNs: number, stallNs: number, expectExit: boolean): number {
  if (spinNs >= stallNs || isStopped(t)) return OTHER;
  if (heldNs < stallNs || t.state === 'zombie' || t.state === 'halted') return NONE;
  if (t.state === 'uninterruptible') return STILL;
  if (t.blockedIn === null) return UNKNOWN;
  const cls = waitClass(t.blockedIn.call);
  if (cls === 'block') return STILL; // driver calls (ioctl, the IOKit trap) are blocking calls too
  if (cls === 'event' && t.stack !== undefined && isDriverCall(t)) return STILL; // mach_msg under IOConnectCallMethod
  if (main && expectExit) return OTHER;
  return cls === 'event' ? EVENT : IDLE;
}

/**
 * A worker with no progress in a blocking call where it sat in the baseline is an idle pool
 * thread — unless every thread of the process is stuck. That is known only at the end of the
 * pass, but it is impossible as soon as one thread is not stuck (`still` < threads seen), which
 * in a live process is nearly always at the first thread: then it is settled here, without
 * building anything.
 */
function idleWorker(t: ThreadSample, sameBase: boolean, still: number, index: number): boolean {
  return sameBase && still < index + 1 && t.state !== 'uninterruptible' && !isDriverCall(t);
}

/** The candidates of one process, between pass one and pass two. */
class Candidates {
  index: number[] = [];
  prior: Prior[] = [];
  sameBase: boolean[] = [];
  push(i: number, prior: Prior, sameBase: boolean): void {
    this.index.push(i);
    this.prior.push(prior);
    this.sameBase.push(sameBase);
  }
}

/**
 * Pass one's count for a process, shared by compare() and watch() so both settle a triaged
 * thread the same way: idle here where they can, a candidate for pass two otherwise.
 */
class Tally {
  /** Threads with no progress in a blocking call: all of them means the process is stuck. */
  still = 0;
  idle = 0;
  /** Threads that progressed within the stall window (changed, or spun): work that a waiting thread may be waiting for. */
  progressing = 0;
  readonly candidates = new Candidates();

  /** True when the thread is a candidate; the caller then adds it with its prior. */
  admit(code: number, t: ThreadSample, main: boolean, index: number, sameBase: boolean): boolean {
    if (code === NONE) {
      if (t.state !== 'zombie' && t.state !== 'halted') this.progressing++;
      return false;
    }
    if (code === OTHER && !isStopped(t) && (t.state === 'running' || t.state === 'runnable')) this.progressing++;
    if (code === IDLE || (code === EVENT && sameBase)) {
      this.idle++;
      return false;
    }
    if (code === STILL) {
      this.still++;
      if (!main && idleWorker(t, sameBase, this.still, index)) {
        this.idle++;
        return false;
      }
    }
    return true;
  }
}

interface Scratch {
  findings: Finding[];
  blockedOnNode: Map<string, { pid: number; thread: ThreadSample }>;
}

/** Threads inside a driver call on a device node, by node (a read or poll on the same node waits for an event, not for the device). */
function noteNode(t: ThreadSample, pid: number, scratch: Scratch): void {
  const blocked = t.blockedIn;
  if (blocked === null || blocked.call !== 'ioctl' || blocked.target === undefined) return;
  if (blocked.target.startsWith('/dev/') && !scratch.blockedOnNode.has(blocked.target)) scratch.blockedOnNode.set(blocked.target, { pid, thread: t });
}

/**
 * The rules behind compare() and watch(), kept between samples: step() takes the next sample
 * and returns the Report for the window since the previous one (each thread's progress held
 * in one small record per live thread); between() compares two snapshots.
 */
export class ProgressTracker {
  readonly stallMs: number;
  readonly spinRatio: number;
  readonly expectExit: boolean;
  private processes = new Map<number, ProcessTrack>();
  private baseline: Map<number, Map<number, ThreadSample>> | null = null;
  /**
   * Earlier accelerator samples back to one at least stallMs old: accelerators are judged over
   * a stall window, not between two samples an interval apart (a queue that finishes nothing
   * for 5 s is not seen in 500 ms). Bounded by stallMs / interval entries.
   */
  private acceleratorHistory: { ns: number; accelerators: StepInput['accelerators'] }[] = [];
  private previousNs: number | null = null;
  private previousTimeouts = new Set<string>();
  private transitions = new Map<string, Transition>();
  private generation = 0;

  constructor(given: CompareOptions = {}) {
    const options = checkCompareOptions('ProgressTracker', given);
    this.stallMs = options.stallMs ?? DEFAULT_STALL_MS;
    this.spinRatio = options.spinRatio ?? DEFAULT_SPIN_RATIO;
    this.expectExit = options.expectExit ?? false;
  }

  /** Judge idle waits and accelerator changes against this snapshot instead of the first sample. */
  setBaseline(baseline: StepInput): void {
    checkSnapshotArgument('ProgressTracker.setBaseline()', baseline, 'the baseline');
    this.baseline = new Map();
    for (const p of baseline.processes) this.baseline.set(p.pid, new Map(p.threads.map((t) => [t.tid, t])));
    this.acceleratorHistory = [{ ns: Number.NEGATIVE_INFINITY, accelerators: baseline.accelerators }];
  }

  /** Forget what was seen (not the baseline): the next step starts every window again. */
  reset(): void {
    this.processes.clear();
    this.acceleratorHistory = [];
    this.previousNs = null;
    this.transitions.clear();
  }

  /** How many threads it keeps a track for (memory is this, not history). */
  get trackedThreads(): number {
    let n = 0;
    for (const p of this.processes.values()) n += p.tracks.size;
    return n;
  }

  /**
   * Take one sample in and judge it against what came before. With `discard`, the time since
   * the previous sample is not trusted (a late timer): every window starts again here.
   */
  step(sample: StepInput, discard = false): Report {
    checkSnapshotArgument('ProgressTracker.step()', sample, 'the sample');
    const seen = ++this.generation;
    const scratch: Scratch = { findings: [], blockedOnNode: new Map() };
    const summaries: ProcessSummary[] = [];
    const darwin = sample.host?.platform === 'darwin';
    const present = new Set<number>();
    for (const p of sample.processes) {
      present.add(p.pid);
      summaries.push(this.stepProcess(p, seen, darwin, discard, scratch));
    }
    for (const [pid, track] of this.processes) {
      if (present.has(pid)) continue;
      summaries.push(goneSummary(pid, track.name));
      this.processes.delete(pid);
    }
    return this.finish(sample, summaries, scratch);
  }

  /**
   * compare(): judge `later` against `earlier` directly, as two steps would, without tracks.
   * Used on a fresh tracker only.
   */
  between(earlier: StepInput, later: StepInput): Report {
    const scratch: Scratch = { findings: [], blockedOnNode: new Map() };
    const summaries: ProcessSummary[] = [];
    const darwin = later.host?.platform === 'darwin';
    const before = new Map<number, ProcessSample>();
    for (const p of earlier.processes) before.set(p.pid, p);
    for (const p of later.processes) {
      const b = before.get(p.pid);
      before.delete(p.pid);
      summaries.push(this.pairProcess(b, p, darwin, scratch));
    }
    for (const b of before.values()) summaries.push(goneSummary(b.pid, b.name));
    this.acceleratorHistory = [{ ns: earlier.monotonicNs, accelerators: earlier.accelerators }];
    this.previousNs = earlier.monotonicNs;
    this.timeoutFindings(earlier.limits, []);
    return this.finish(later, summaries, scratch);
  }

  private finish(sample: StepInput, summaries: ProcessSummary[], scratch: Scratch): Report {
    const findings = scratch.findings;
    const windowMs = this.previousNs === null ? null : (sample.monotonicNs - this.previousNs) / 1e6;
    // The newest earlier sample at least stallMs old, else the oldest there is.
    const history = this.acceleratorHistory;
    const cutoff = sample.monotonicNs - this.stallMs * 1e6;
    let anchor = 0;
    while (anchor + 1 < history.length && history[anchor + 1].ns <= cutoff) anchor++;
    if (anchor > 0) history.splice(0, anchor);
    const reference = history.length > 0 ? history[0] : null;
    const before = reference?.accelerators ?? null;
    const acceleratorWindowMs =
      reference === null || !Number.isFinite(reference.ns) ? windowMs : (sample.monotonicNs - reference.ns) / 1e6;
    acceleratorFindings(
      before ?? sample.accelerators,
      sample.accelerators,
      {
        nowNs: sample.monotonicNs,
        windowMs: acceleratorWindowMs !== null && acceleratorWindowMs > 0 ? acceleratorWindowMs : null,
        stallMs: this.stallMs,
        transitions: this.transitions,
        blockedOnNode: scratch.blockedOnNode,
      },
      findings,
    );
    this.timeoutFindings(sample.limits, findings);
    history.push({ ns: sample.monotonicNs, accelerators: sample.accelerators });
    this.previousNs = sample.monotonicNs;
    sortFindings(findings);
    return {
      verdict: verdictOf(findings),
      findings,
      processes: summaries,
      accelerators: { before: (before ?? sample.accelerators).length, after: sample.accelerators.length },
      windowMs: windowMs !== null && windowMs >= 0 ? windowMs : null,
      notes: [],
    };
  }

  private timeoutFindings(limits: Limitation[], out: Finding[]): void {
    const now = new Set<string>();
    for (const limit of limits) {
      // A stack walk that stopped at its own budget (macOS suspends a thread for at most a few ms) is our limit, not a hang.
      if (limit.code !== 'ETIMEDOUT' || limit.field === 'stack') continue;
      const key = `${limit.subject}\0${limit.field}`;
      now.add(key);
      out.push({
        kind: 'probe-timed-out',
        severity: 'critical',
        subject: limit.subject,
        ref: {},
        message: `reading ${limit.field} of ${limit.subject} did not return in time: the reading itself hung, so a driver or kernel path is stuck (${limit.reason})`,
        evidence: [{ field: limit.field, before: this.previousTimeouts.has(key) ? 'ETIMEDOUT' : null, after: 'ETIMEDOUT' }],
        durationMs: null,
      });
    }
    this.previousTimeouts = now;
  }

  /** compare(): one process of the later sample against the same pid in the earlier one. */
  private pairProcess(b: ProcessSample | undefined, p: ProcessSample, darwin: boolean, scratch: Scratch): ProcessSummary {
    const nowNs = p.sampledAtNs;
    const dt = b === undefined ? 0 : nowNs - b.sampledAtNs;
    const timeKnown = dt > 0;
    const stallNs = this.stallMs * 1e6;
    const spinNs = this.spinRatio * dt;
    const earlier = b === undefined ? [] : b.threads;
    const threads = p.threads;
    const tally = new Tally();
    let byTid: Map<number, ThreadSample> | null = null;
    let cpuNs = 0;
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i];
      noteNode(t, p.pid, scratch);
      const main = darwin ? i === 0 : t.tid === p.pid;
      let e: ThreadSample | undefined = i < earlier.length && earlier[i].tid === t.tid ? earlier[i] : undefined;
      if (e === undefined && earlier.length > 0) {
        byTid ??= new Map(earlier.map((x) => [x.tid, x]));
        e = byTid.get(t.tid);
      }
      if (e === undefined) {
        // No baseline for it: only what one sample shows.
        if (isStopped(t)) tally.candidates.push(i, { before: t.state, sinceNs: nowNs, spinSinceNs: -1, spinCpu: cpuOf(t), spinWait: 0 }, true);
        continue;
      }
      const cpu = cpuOf(t);
      const before = cpuOf(e);
      const dcpu = cpu - before;
      if (dcpu > 0) cpuNs += dcpu;
      const samePc = t.pc === undefined || e.pc === undefined || t.pc === e.pc;
      const unchanged =
        dcpu === 0 &&
        t.state === e.state &&
        samePc &&
        (t.contextSwitches === null || e.contextSwitches === null
          ? t.contextSwitches === e.contextSwitches
          : t.contextSwitches.voluntary === e.contextSwitches.voluntary && t.contextSwitches.involuntary === e.contextSwitches.involuntary) &&
        sameWait(t.blockedIn, t.wchan, e.blockedIn, e.wchan);
      const held = timeKnown && unchanged ? dt : 0;
      // Wanted a CPU the whole window: on one, or runnable and waiting for one (schedstat run delay).
      const dwait = (t.runDelayNs ?? 0) - (e.runDelayNs ?? 0);
      const spun = timeKnown && (t.state === 'running' || t.state === 'runnable') && dcpu + Math.max(dwait, 0) >= spinNs && samePc ? dt : 0;
      // The earlier sample is the baseline here, so an unchanged wait is the baseline's wait.
      if (tally.admit(triage(t, main, held, spun, stallNs, this.expectExit), t, main, i, true)) {
        tally.candidates.push(
          i,
          { before: e.state, sinceNs: nowNs - held, spinSinceNs: spun > 0 ? nowNs - spun : -1, spinCpu: before, spinWait: e.runDelayNs ?? 0 },
          true,
        );
      }
    }
    const idle = tally.idle + this.judgeAll(p, tally, darwin, nowNs, scratch.findings);
    return { pid: p.pid, name: p.name, threads: threads.length, idle, cpuNs, windowMs: timeKnown ? dt / 1e6 : 0, ...(b === undefined ? { new: true } : {}) };
  }

  private stepProcess(p: ProcessSample, seen: number, darwin: boolean, discard: boolean, scratch: Scratch): ProcessSummary {
    const nowNs = p.sampledAtNs;
    let proc = this.processes.get(p.pid);
    const fresh = proc === undefined;
    if (proc === undefined) {
      proc = new ProcessTrack(p.pid, p.name, nowNs, this.baseline?.get(p.pid) ?? null);
      this.processes.set(p.pid, proc);
    }
    proc.name = p.name;
    const stallNs = this.stallMs * 1e6;
    const dtNs = nowNs - proc.lastNs;
    const timeKnown = dtNs > 0 && !discard;
    const tally = new Tally();
    const order = proc.order;
    const nextOrder: ThreadTrack[] = new Array<ThreadTrack>(p.threads.length);
    let cpuNs = 0;
    const threads = p.threads;
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i];
      noteNode(t, p.pid, scratch);
      const main = darwin ? i === 0 : t.tid === p.pid;
      let track = i < order.length && order[i].tid === t.tid ? order[i] : proc.tracks.get(t.tid);
      if (track === undefined) {
        track = new ThreadTrack(t.tid, t, nowNs, proc.baseline?.get(t.tid) ?? t, seen);
        proc.tracks.set(t.tid, track);
        nextOrder[i] = track;
        if (isStopped(t)) tally.candidates.push(i, track, true);
        continue;
      }
      nextOrder[i] = track;
      track.seen = seen;
      track.before = track.state;
      const cpu = cpuOf(t);
      const voluntary = t.contextSwitches === null ? -1 : t.contextSwitches.voluntary;
      const involuntary = t.contextSwitches === null ? -1 : t.contextSwitches.involuntary;
      const pc = t.pc ?? -1;
      const dcpu = cpu - track.cpu;
      if (dcpu > 0) cpuNs += dcpu;
      // Wanted a CPU the whole time: CPU time plus time runnable but waiting for a CPU grew at
      // ≥ spinRatio of wall time, running, at the same pc when known (spinning, or starved).
      const wait = t.runDelayNs ?? 0;
      const dwait = wait - track.wait;
      if (
        timeKnown &&
        (t.state === 'running' || t.state === 'runnable') &&
        dcpu + Math.max(dwait, 0) >= this.spinRatio * (nowNs - track.lastNs) &&
        (pc === -1 || track.pc === -1 || pc === track.pc)
      ) {
        if (track.spinSinceNs < 0) {
          track.spinSinceNs = track.lastNs;
          track.spinCpu = track.cpu;
          track.spinWait = track.wait;
        }
      } else {
        track.spinSinceNs = -1;
      }
      track.wait = wait;
      if (
        discard ||
        dcpu !== 0 ||
        t.state !== track.state ||
        voluntary !== track.voluntary ||
        involuntary !== track.involuntary ||
        pc !== track.pc ||
        !sameWait(t.blockedIn, t.wchan, track.blocked, track.wchan)
      ) {
        track.sinceNs = nowNs;
        track.state = t.state;
        track.cpu = cpu;
        track.voluntary = voluntary;
        track.involuntary = involuntary;
        track.pc = pc;
        // Only on change: keeping the older, equal object lets each sample die young.
        track.blocked = t.blockedIn;
        track.wchan = t.wchan;
      }
      track.lastNs = nowNs;
      const held = timeKnown ? nowNs - track.sinceNs : 0;
      const spun = track.spinSinceNs >= 0 ? nowNs - track.spinSinceNs : 0;
      const code = triage(t, main, held, spun, stallNs, this.expectExit);
      const sameBase = code === STILL || code === EVENT || code === UNKNOWN ? sameWait(t.blockedIn, t.wchan, track.baseBlocked, track.baseWchan) : false;
      if (tally.admit(code, t, main, i, sameBase)) tally.candidates.push(i, track, sameBase);
    }
    proc.order = nextOrder;
    if (proc.tracks.size > threads.length) {
      for (const [tid, track] of proc.tracks) if (track.seen !== seen) proc.tracks.delete(tid);
    }
    const idle = tally.idle + this.judgeAll(p, tally, darwin, nowNs, scratch.findings);
    proc.lastNs = nowNs;
    const summary: ProcessSummary = { pid: p.pid, name: p.name, threads: threads.length, idle, cpuNs, windowMs: fresh ? 0 : dtNs / 1e6 };
    if (fresh && this.generation > 1) summary.new = true;
    return summary;
  }

  /** Pass two: the findings of the candidates; returns how many turned out idle. */
  private judgeAll(p: ProcessSample, tally: Tally, darwin: boolean, nowNs: number, out: Finding[]): number {
    const c = tally.candidates;
    // Frozen: every thread sat still in a blocking call; nothing in the process can wake the rest.
    const frozen = p.threads.length > 0 && tally.still === p.threads.length;
    let idle = 0;
    for (let k = 0; k < c.index.length; k++) {
      const i = c.index[k];
      const t = p.threads[i];
      const main = darwin ? i === 0 : t.tid === p.pid;
      if (this.judge(p, t, main, c.prior[k], nowNs, frozen, c.sameBase[k], tally, out)) idle++;
    }
    return idle;
  }

  /** One candidate's finding; true when it turned out idle (a worker parked where it was in the baseline). */
  private judge(
    p: ProcessSample,
    t: ThreadSample,
    main: boolean,
    prior: Prior,
    nowNs: number,
    frozen: boolean,
    sameBase: boolean,
    tally: Tally,
    out: Finding[],
  ): boolean {
    const subject = threadSubject(p, t, main);
    const ref = { pid: p.pid, tid: t.tid };
    const heldMs = (nowNs - prior.sinceNs) / 1e6;
    const cpu = cpuOf(t);
    const push = (kind: Finding['kind'], severity: Severity, message: string, evidence: Evidence[], durationMs: number): false => {
      out.push({ kind, severity, subject, ref, message, evidence, durationMs });
      return false;
    };
    const stillEvidence = (): Evidence[] => {
      const call = t.blockedIn === null ? null : t.blockedIn.call;
      const evidence: Evidence[] = [
        { field: 'blockedIn.call', before: call, after: call },
        { field: 'cpuNs', before: cpu, after: cpu },
        { field: 'state', before: prior.before, after: t.state },
      ];
      if (t.contextSwitches !== null) {
        evidence.push({ field: 'contextSwitches.voluntary', before: t.contextSwitches.voluntary, after: t.contextSwitches.voluntary });
      }
      if (t.blockedIn?.target !== undefined) evidence.push({ field: 'blockedIn.target', before: t.blockedIn.target, after: t.blockedIn.target });
      if (t.wchan !== undefined) evidence.push({ field: 'wchan', before: t.wchan, after: t.wchan });
      return evidence;
    };
    const noProgress = `no CPU progress${t.contextSwitches !== null ? ' and no context switches' : ''}`;

    if (isStopped(t)) {
      const byState = t.state === 'stopped';
      const long = heldMs >= this.stallMs;
      return push(
        'stopped',
        long ? 'critical' : 'warning',
        byState
          ? `stopped${long ? ` for ${formatMs(heldMs)}` : ''} (SIGSTOP, job control or a debugger): it runs again only after SIGCONT (kill -CONT ${p.pid})`
          : `suspended (suspend count ${t.suspendCount})${long ? ` for ${formatMs(heldMs)}` : ''}: a debugger or another task holds it; it runs again only when resumed`,
        [
          { field: 'state', before: prior.before, after: t.state },
          { field: 'suspendCount', before: t.suspendCount, after: t.suspendCount },
        ],
        heldMs,
      );
    }
    if (prior.spinSinceNs >= 0 && nowNs - prior.spinSinceNs >= this.stallMs * 1e6) {
      const spanMs = (nowNs - prior.spinSinceNs) / 1e6;
      const used = cpu - prior.spinCpu;
      const runDelay = t.runDelayNs ?? 0;
      const waited = runDelay - prior.spinWait;
      const percent = (ns: number) => Math.round((ns / (spanMs * 1e6)) * 100);
      if (waited * 2 >= spanMs * 1e6) {
        return push(
          'starved',
          'warning',
          `starved of CPU: runnable for ${formatMs(spanMs)} but waited ${formatCpu(waited)} (${percent(waited)}%) for a CPU and ran ${formatCpu(used)} (${percent(
            used,
          )}%): other work holds its CPUs (load, a CPU affinity mask, a real-time thread, or CPU limits of its cgroup)`,
          [
            { field: 'runDelayNs', before: prior.spinWait, after: runDelay },
            { field: 'cpuNs', before: prior.spinCpu, after: cpu },
            { field: 'state', before: prior.before, after: t.state },
          ],
          spanMs,
        );
      }
      const queued = waited > 0 ? ` and ${formatCpu(waited)} (${percent(waited)}%) waiting for a CPU` : '';
      return push(
        'spinning',
        'warning',
        `spinning: ${formatCpu(used)} of CPU in ${formatMs(spanMs)} (${percent(used)}%)${queued}${
          t.pc !== undefined ? ` at the same pc 0x${t.pc.toString(16)}` : ''
        }, never blocking: a busy loop, a spin-wait (on a GPU fence?) or a long computation`,
        [
          { field: 'cpuNs', before: prior.spinCpu, after: cpu },
          { field: 'state', before: prior.before, after: t.state },
          ...(waited > 0 ? [{ field: 'runDelayNs', before: prior.spinWait, after: runDelay }] : []),
          ...(t.pc !== undefined ? [{ field: 'pc', before: t.pc, after: t.pc }] : []),
        ],
        spanMs,
      );
    }
    const where = describeWait(t);
    if (isDriverCall(t)) {
      return push(
        'blocked-in-driver',
        'critical',
        `blocked in the GPU driver: ${where} for at least ${formatMs(heldMs)} with ${noProgress}${
          t.state === 'uninterruptible' ? ', uninterruptible' : ''
        }; the driver did not complete the request (check the kernel log: dmesg, or log show --predicate 'sender == "AGXFirmware"')`,
        stillEvidence(),
        heldMs,
      );
    }
    if (t.state === 'uninterruptible') {
      return push(
        'uninterruptible',
        'critical',
        `in uninterruptible sleep (D) in ${where} for at least ${formatMs(heldMs)} with ${noProgress}: it cannot be killed until the kernel call returns (the kernel's hung_task rule)${
          kernelWaitHint(t) !== null ? `; ${kernelWaitHint(t)}` : ''
        }`,
        stillEvidence(),
        heldMs,
      );
    }
    const cls = waitClass(t.blockedIn === null ? null : t.blockedIn.call);
    if (cls === 'event') {
      const expected = main && this.expectExit;
      return push(
        'waiting',
        expected ? 'warning' : 'info',
        expected
          ? `waits for events in ${where} for at least ${formatMs(heldMs)}, but the command should have finished${
              /^mach_msg/.test(t.blockedIn!.call) ? ' (on macOS also how IOConnectCallMethod waits for a driver: take stacks to tell)' : ''
            }`
          : `waits for events in ${where} for at least ${formatMs(heldMs)}; it was not parked there in the baseline`,
        [{ field: 'blockedIn.call', before: null, after: t.blockedIn!.call }],
        heldMs,
      );
    }
    if (cls === 'sleep' || cls === 'child') {
      return push(
        'waiting',
        'info',
        cls === 'sleep'
          ? `sleeping in ${where} for at least ${formatMs(heldMs)}: a timed sleep, it wakes by itself`
          : `waits for a child process in ${where} for at least ${formatMs(heldMs)}: the child decides (see its findings)`,
        [{ field: 'blockedIn.call', before: t.blockedIn!.call, after: t.blockedIn!.call }],
        heldMs,
      );
    }
    if (t.blockedIn === null) {
      // Nobody could read the call: idle and stuck look the same, so this never makes a hang.
      if (!main && sameBase) return true;
      return push(
        'stalled',
        main ? 'warning' : 'info',
        `no progress for at least ${formatMs(heldMs)} in ${where}: the call is unknown (sample with detail "full", or with permission to read the thread), so an idle wait cannot be told from a stuck one`,
        stillEvidence(),
        heldMs,
      );
    }
    // A blocking call with no progress.
    const joined = t.blockedIn.joining;
    if (joined !== undefined && joined !== t.tid && !frozen) {
      // pthread_join: judged by the joined thread, as a parent waiting for a child is.
      const stuck = joinedIsStuck(p, tally, joined);
      if (!stuck) return true; // the joined thread works, or is idle where it was: the join waits for it
      return push(
        'waiting',
        'info',
        `joining thread ${joined} for at least ${formatMs(heldMs)} (pthread_join): it waits for that thread to exit, which has itself made no progress (see its finding)`,
        [{ field: 'blockedIn.joining', before: joined, after: joined }],
        heldMs,
      );
    }
    const othersProgress = tally.progressing > 0;
    if (!frozen && sameBase && (!main || othersProgress)) {
      // Parked where it was in the baseline while other threads of the process progress: it
      // waits for their work (a pool thread between jobs, a main thread waiting for its workers).
      if (!main || !this.expectExit) return true;
      return push(
        'waiting',
        'info',
        `waits in ${where} for at least ${formatMs(heldMs)}, as in the baseline, while ${tally.progressing} other thread${
          tally.progressing === 1 ? '' : 's'
        } of the process make progress: it waits for their work (a join, or a condition a worker will signal); the command is still working`,
        [{ field: 'blockedIn.call', before: t.blockedIn.call, after: t.blockedIn.call }],
        heldMs,
      );
    }
    const severity: Severity = main || frozen ? 'critical' : 'warning';
    const why =
      (joined !== undefined ? `joining thread ${joined}; ` : '') +
      (frozen && !main
        ? `${waitHint(t)}; no thread of the process made progress`
        : main && !sameBase
          ? `${waitHint(t)}; it left the wait it had in the baseline for this one`
          : waitHint(t));
    return push('stalled', severity, `stalled in ${where} for at least ${formatMs(heldMs)} with ${noProgress}: ${why}`, stillEvidence(), heldMs);
  }
}

/** Is the joined thread itself stuck: a candidate for a finding in this pass (not progressing, not idle)? */
function joinedIsStuck(p: ProcessSample, tally: Tally, tid: number): boolean {
  const c = tally.candidates;
  for (let k = 0; k < c.index.length; k++) if (p.threads[c.index[k]].tid === tid) return true;
  return false;
}

function goneSummary(pid: number, name: string): ProcessSummary {
  return { pid, name, threads: 0, idle: 0, cpuNs: 0, windowMs: 0, gone: true };
}
