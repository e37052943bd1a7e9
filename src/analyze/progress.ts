/**
 * The core of compare() and watch(): per-thread progress, judged the same way for a saved
 * pair and for a live stream.
 *
 * watch() keeps a track per thread: what it waited in, its CPU time and context switches
 * when last seen, since when none of that changed, and since when it has sat in the same
 * wait (waking and waiting again included). A step is one pass over the new sample,
 * O(threads), with no allocation for a thread that is fine; memory holds one track per live
 * thread, never the history. compare(healthy, hung) makes the same judgement from the two
 * samples directly, pairing threads by position when the order matches (it nearly always
 * does) and by tid otherwise, without building tracks at all.
 *
 * Pass one settles most threads: progressing, or idle by the kind of their wait. The rest
 * are cases for pass two, the ordered rules of thread-rules.ts. A wait whose meaning only a
 * stack can tell is examined by its stack: in a snapshot taken with stacks, from the stack;
 * in a watch, the tracker asks for the stacks of such threads (takeExaminations) and the
 * watcher hands them back (examined), once per wait.
 */
import type { Frame, Limitation, Peer, ProcessSample, Snapshot, ThreadSample, ThreadState } from '../types';
import { checkCompareOptions, checkSnapshotArgument } from './checks';
import { acceleratorFindings, type Transition } from './accelerators';
import { cpuOf, isDriverCall, RESTARTABLE, restarted, sameWait, waitClass } from './calls';
import { goroutineFindings, goroutineWaitKey, lockFrame, lockWaits } from './goroutine-rule';
import { peerOutcome, type PeerFacts } from './peer-rule';
import { matchSignature, topFrames, type SignatureMatch } from './signatures';
import { DEFER, IDLE, isStopped, judgeCase, type Case, type Outcome, type ProcessView, type SpinWindow, type StackState } from './thread-rules';
import type { CompareOptions, Finding, ProcessSummary, Report, Severity, Verdict } from './types';
import { needsStack, waitKindOf, type WaitKind } from './wait-kind';

export { waitHint } from './thread-rules';

export const DEFAULT_STALL_MS = 1000;
export const DEFAULT_SPIN_RATIO = 0.9;

/**
 * CPU a thread may use waking up and waiting again in the same wait without that counting as
 * leaving it (a JVM monitor waiter re-parks every second, a timed condition wait times out and
 * waits again): 2 % of the time in the wait, at least 2 ms.
 */
const REWAIT_CPU_SHARE = 0.02;

/** Why a case has no stack when nobody took one. */
const NO_STACK = 'no stack was taken: take snapshots with --stacks';
const REWAIT_CPU_MIN_NS = 2e6;

/** What step() needs of a sample: a Snapshot, or the parts of one a watcher has. */
export type StepInput = Pick<Snapshot, 'monotonicNs' | 'processes' | 'accelerators' | 'limits'> & {
  host?: Pick<Snapshot['host'], 'platform'>;
};

/** A stack a watcher took for the tracker: what it says, or why there is none. */
export interface Examined {
  pid: number;
  tid: number;
  /** The stack, or null when it could not be taken (then `reason` says why). */
  stack: Frame[] | null;
  reason?: string;
  /** Who is at the other end of its wait, when it waits on a pipe or socket and that was found. */
  peer?: Peer;
}

/** What the tracker asks a watcher to take: the stacks of these threads of a process. */
export interface ExaminationRequest {
  pid: number;
  tids: number[];
}

interface Examination {
  match: SignatureMatch | null;
  state: 'taken' | 'failed' | 'pending';
  note?: string;
  /** The innermost frames from the matching one, for the finding. */
  frames?: string;
  /** Who is at the other end of the wait. */
  peer?: Peer;
}

/** `now` is restart_syscall resuming `call` (restarted(), from the copied call name). */
function restartedFrom(now: ThreadSample['blockedIn'], call: string | null): boolean {
  return now !== null && call !== null && now.call === 'restart_syscall' && RESTARTABLE.has(call);
}

class ThreadTrack {
  state: ThreadState;
  before: ThreadState;
  cpu: number;
  voluntary: number;
  involuntary: number;
  pc: number;
  blocked: ThreadSample['blockedIn'];
  /**
   * What sameWait() compares of `blocked`, copied here: the step compares the new sample's
   * call with these and never reads the old sample's object (one cache miss less per thread).
   */
  call: string | null = null;
  fd: number | undefined = undefined;
  target: string | undefined = undefined;
  futex: number | undefined = undefined;
  wchan: string | undefined;
  sinceNs: number;
  lastNs: number;
  spinSinceNs = -1;
  spinCpu = 0;
  spinWait = 0;
  spinPc = -1;
  /** schedstat run delay when last seen: ns runnable but waiting for a CPU. */
  wait: number;
  seen: number;
  /** Since when it has sat in the same wait, waking and waiting again included, and its CPU time then. */
  waitSinceNs: number;
  waitCpu: number;
  /** It has been seen waiting for events: an event loop. */
  eventLoop: boolean;
  /** What its stack said of the current wait (undefined: not asked). */
  exam: Examination | undefined = undefined;
  /** The current wait's kind, once worked out (undefined: not yet, or the wait changed). */
  kind: WaitKind | undefined = undefined;
  /** Its stack was just taken: the next wake-up in the same wait was caused by that, not by progress. */
  absorb = false;
  /** Where it waited in the baseline (or when first seen): the waits that count as idle. */
  readonly baseBlocked: ThreadSample['blockedIn'];
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
    this.setBlocked(t.blockedIn);
    this.wchan = t.wchan;
    this.sinceNs = nowNs;
    this.lastNs = nowNs;
    this.waitSinceNs = nowNs;
    this.waitCpu = this.cpu;
    this.baseBlocked = base.blockedIn;
    this.baseWchan = base.wchan;
    this.eventLoop = isEventWait(base) || isEventWait(t);
    this.seen = seen;
  }

  setBlocked(b: ThreadSample['blockedIn']): void {
    this.blocked = b;
    if (b === null) {
      this.call = null;
      return;
    }
    this.call = b.call;
    this.fd = b.fd;
    this.target = b.target;
    this.futex = b.futex?.address;
  }

  /** sameWait(now, wchan, blocked, this.wchan) || restarted(now, blocked), from the copies. */
  sameCall(now: ThreadSample['blockedIn'], wchan: string | undefined): boolean {
    const call = this.call;
    if (now === null || call === null) return now === null && call === null && wchan === this.wchan;
    return (now.call === call && now.fd === this.fd && now.target === this.target && now.futex?.address === this.futex) || restartedFrom(now, call);
  }
}

class ProcessTrack {
  tracks = new Map<number, ThreadTrack>();
  /** Go programs: the goroutines acquiring a lock, by goid: which wait, and since when it was first seen. */
  goroutineWaits = new Map<number, { key: string; sinceNs: number }>();
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

function isEventWait(t: ThreadSample): boolean {
  return t.blockedIn !== null && waitClass(t.blockedIn.call) === 'event';
}

function isRunning(t: ThreadSample): boolean {
  return t.state === 'running' || t.state === 'runnable';
}

/** No progress for this long: the window of the samples, or the kernel's off-CPU time when it says more. */
function heldFor(t: ThreadSample, windowNs: number): number {
  const off = t.offCpuNs;
  return off !== undefined && off > windowNs && !isRunning(t) ? off : windowNs;
}

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

/** A case less what pass two fills in: kept per candidate between the passes. */
type Pending = Omit<Case, 'p' | 'nowNs'>;

/**
 * Pass one's count for a process, shared by compare() and watch() so both settle a thread
 * the same way: idle here where they can, a case for pass two otherwise.
 */
class Tally {
  /** Threads still in a blocking wait (not an event wait, sleep, park or peer): all of them means nothing can wake the rest. */
  still = 0;
  idle = 0;
  /** Threads that progressed within the stall window: work that a waiting thread may be waiting for. */
  progressing = 0;
  /** Threads in a lock acquisition for the stall window. */
  lockWaiters = 0;
  /** Still threads that entered their wait after the baseline: the process was doing something, then stopped. */
  movedIn = 0;
  readonly cases: Pending[] = [];
}

interface PassOne {
  t: ThreadSample;
  index: number;
  main: boolean;
  heldNs: number;
  waitNs: number;
  spin: SpinWindow | null;
  before: ThreadState;
  stallNs: number;
  expectExit: boolean;
  match: SignatureMatch | null;
  stack: StackState;
  stackNote: string | undefined;
  frames?: string;
  peer?: Peer;
  sameBase: boolean;
  baseKnown: boolean;
  eventLoop: boolean;
}

/**
 * Pass one for a thread that sat in its wait for the stall window (or spun, or is stopped):
 * idle (counted), or a case for pass two. Cheap for the common idle thread: one lookup of its
 * wait's kind.
 */
function admit(tally: Tally, o: PassOne, kind: WaitKind): void {
  const t = o.t;
  if (o.heldNs < o.stallNs && t.state !== 'zombie' && t.state !== 'halted') tally.progressing++;
  const spinning = o.spin !== null;
  if (!spinning && !isStopped(t)) {
    if (t.state === 'zombie' || t.state === 'halted') return;
    // Woke and waited again within the window: progress, unless what it waits for is a lock (a re-parking monitor waiter).
    if (o.heldNs < o.stallNs && kind !== 'lock') return;
    // D state, or a call into a GPU driver (a mach_msg under IOKit included): judged whatever the wait's kind.
    if (t.state === 'uninterruptible' || isDriverCall(t)) tally.still++;
    else {
      if (!o.sameBase && kind !== 'park' && kind !== 'sleep' && kind !== 'child' && kind !== 'event' && kind !== 'peer') tally.movedIn++;
      switch (kind) {
        case 'park':
        case 'sleep':
        case 'child':
          // quickIdle() counted the idle ones already: a park here is the main thread of a command
          // that should exit, a sleep or child wait that or one in a process with an event loop.
          break;
        case 'event':
          if (!(o.main && o.expectExit) && (o.sameBase || o.match?.signature.kind === 'event')) return void tally.idle++;
          break;
        case 'lock':
          tally.still++;
          tally.lockWaiters++;
          break;
        case 'join':
        case 'condition':
        case 'io':
        case 'block':
          tally.still++;
          // A worker where it waited in the baseline is an idle pool thread, unless every thread
          // is stuck; that is impossible once one thread was not, known here without building anything.
          if (!o.main && o.sameBase && kind !== 'join' && tally.still < o.index + 1) return void tally.idle++;
          break;
        case 'unknown':
          if (!o.main && o.sameBase) return void tally.idle++;
          break;
        case 'peer':
          break;
      }
    }
  }
  tally.cases.push({
    t,
    main: o.main,
    heldMs: o.heldNs / 1e6,
    waitMs: o.waitNs / 1e6,
    before: o.before,
    spin: o.spin,
    kind,
    match: o.match,
    stack: o.stack,
    stackNote: o.stackNote,
    frames: o.frames,
    peer: o.peer,
    sameBase: o.sameBase,
    baseKnown: o.baseKnown,
    eventLoop: o.eventLoop,
  });
}

/**
 * Pass one's shortcut for the commonest thread of all, an idle one (a park, a sleep, a child
 * wait, or one that woke within the window): counted as admit() would, without the rest of its
 * facts being gathered. False when admit() has to see it.
 */
function quickIdle(tally: Tally, t: ThreadSample, kind: WaitKind, heldNs: number, stallNs: number, expected: boolean, eventLoop: boolean): boolean {
  if (isStopped(t) || t.state === 'uninterruptible' || t.state === 'zombie' || t.state === 'halted' || kind === 'lock') return false;
  if (heldNs < stallNs) {
    tally.progressing++;
    return true;
  }
  if (expected || isDriverCall(t)) return false;
  if (kind === 'park' || ((kind === 'sleep' || kind === 'child') && !eventLoop)) {
    tally.idle++;
    return true;
  }
  return false;
}

interface Scratch {
  findings: Finding[];
  blockedOnNode: Map<string, { pid: number; thread: ThreadSample }>;
  /** Waits on another process, judged once every process of the sample has been. */
  deferred: Case[];
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
  /** Pass one's facts of the thread at hand, one object reused for every thread (no allocation for a thread that is fine). */
  private readonly pass: PassOne = {
    t: undefined as unknown as ThreadSample,
    index: 0,
    main: false,
    heldNs: 0,
    waitNs: 0,
    spin: null,
    before: 'unknown',
    stallNs: 0,
    expectExit: false,
    match: null,
    stack: 'none',
    stackNote: undefined,
    frames: undefined,
    peer: undefined,
    sameBase: false,
    baseKnown: false,
    eventLoop: false,
  };
  /** Whether a watcher takes stacks when asked (examine()); without one, a thread's stack is whatever the sample carries. */
  private examining = false;
  /** Stacks to take, by pid, since the last takeExaminations(). */
  private wanted = new Map<number, number[]>();

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

  /**
   * The caller takes stacks when asked: a thread whose wait only a stack can tell, still for
   * half the stall window, is listed by takeExaminations() once per wait, and judged from the
   * stack handed back to examined(). Until then its judgement waits (it is not a finding yet).
   */
  examine(): void {
    this.examining = true;
  }

  /** The stacks to take now (each thread once per wait), at most `limit` threads a process; the rest are asked for next time. */
  takeExaminations(limit = Number.POSITIVE_INFINITY): ExaminationRequest[] {
    const requests: ExaminationRequest[] = [];
    for (const [pid, tids] of this.wanted) {
      if (tids.length <= limit) {
        requests.push({ pid, tids });
        this.wanted.delete(pid);
      } else {
        requests.push({ pid, tids: tids.slice(0, limit) });
        this.wanted.set(pid, tids.slice(limit));
      }
    }
    return requests;
  }

  /**
   * Stacks taken for takeExaminations(): each counts for the wait the thread is in now.
   * Returns the processes found at the other end of those waits, which the caller may sample
   * too (as peers: a wait on them is judged by them).
   */
  examined(results: Examined[]): Map<number, number> {
    const peers = new Map<number, number>();
    for (const r of results) {
      for (const holder of r.peer?.pids ?? []) if (!this.processes.has(holder.pid) && !peers.has(holder.pid)) peers.set(holder.pid, r.pid);
      const track = this.processes.get(r.pid)?.tracks.get(r.tid);
      if (track === undefined || track.exam?.state !== 'pending') continue;
      if (r.stack === null) {
        track.exam = { match: null, state: 'failed', note: r.reason ?? 'the stack could not be taken' };
      } else {
        const match = r.stack.length > 0 ? matchSignature(r.stack) : null;
        track.exam = { match, state: 'taken', frames: topFrames(r.stack.slice(match?.frame ?? 0), 3), ...(r.stack.length === 0 ? { note: 'the stack was empty' } : {}) };
      }
      track.kind = undefined;
      if (r.peer !== undefined) track.exam.peer = r.peer;
      // Taking the stack may have woken it (a ptrace stop): a wake-up in the same wait right after is ours, not progress.
      track.absorb = true;
    }
    return peers;
  }

  /** Forget what was seen (not the baseline): the next step starts every window again. */
  reset(): void {
    this.processes.clear();
    this.acceleratorHistory = [];
    this.previousNs = null;
    this.transitions.clear();
    this.wanted.clear();
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
    const scratch: Scratch = { findings: [], blockedOnNode: new Map(), deferred: [] };
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
      this.wanted.delete(pid);
    }
    return this.finish(sample, summaries, scratch);
  }

  /**
   * compare(): judge `later` against `earlier` directly, as two steps would, without tracks.
   * Used on a fresh tracker only.
   */
  between(earlier: StepInput, later: StepInput): Report {
    const scratch: Scratch = { findings: [], blockedOnNode: new Map(), deferred: [] };
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
    this.resolvePeers(scratch, summaries);
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
      // A stack walk that stopped at its own budget (macOS suspends a thread for at most a few ms) is our limit, not a hang;
      // so is a scheduler-clock calibration that a busy CPU did not run in time (offCpuNs: our own thread, not the target).
      if (limit.code !== 'ETIMEDOUT' || limit.field === 'stack' || limit.field === 'offCpuNs') continue;
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

  /**
   * explain() of a live snapshot: judge it on its own, from what it proves by itself, which is
   * how long each thread had been off CPU (offCpuNs). No baseline: nothing left a known wait.
   */
  alone(sample: StepInput): Report {
    this.single = true;
    try {
      return this.between(sample, sample);
    } finally {
      this.single = false;
    }
  }

  /** Set while alone() judges one sample against itself. */
  private single = false;

  /** compare(): one process of the later sample against the same pid in the earlier one. */
  private pairProcess(b: ProcessSample | undefined, p: ProcessSample, darwin: boolean, scratch: Scratch): ProcessSummary {
    const nowNs = p.sampledAtNs;
    const dt = b === undefined ? 0 : nowNs - b.sampledAtNs;
    const timeKnown = dt > 0 && Number.isFinite(dt);
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
      const cpu = cpuOf(t);
      let heldNs = 0;
      let waitNs = 0;
      let spin: SpinWindow | null = null;
      let sameBase = true;
      let eventLoop = isEventWait(t);
      if (e !== undefined) {
        const before = cpuOf(e);
        const dcpu = cpu - before;
        if (dcpu > 0) cpuNs += dcpu;
        const samePc = t.pc === undefined || e.pc === undefined || t.pc === e.pc;
        const sameCall = sameWait(t.blockedIn, t.wchan, e.blockedIn, e.wchan) || restarted(t.blockedIn, e.blockedIn);
        const unchanged =
          dcpu === 0 &&
          t.state === e.state &&
          samePc &&
          (t.contextSwitches === null || e.contextSwitches === null
            ? t.contextSwitches === e.contextSwitches
            : t.contextSwitches.voluntary === e.contextSwitches.voluntary && t.contextSwitches.involuntary === e.contextSwitches.involuntary) &&
          sameCall;
        if (timeKnown) {
          heldNs = unchanged ? dt : 0;
          // The same wait, waking and waiting again with next to no CPU: how a timed park re-parks.
          if (sameCall && samePc && t.blockedIn !== null && dcpu <= Math.max(REWAIT_CPU_MIN_NS, REWAIT_CPU_SHARE * dt)) waitNs = dt;
          // Wanted a CPU the whole window: on one, or runnable and waiting for one (schedstat run delay).
          const dwait = (t.runDelayNs ?? 0) - (e.runDelayNs ?? 0);
          if (dt >= stallNs && isRunning(t) && dcpu + Math.max(dwait, 0) >= spinNs && samePc) spin = { sinceNs: nowNs - dt, cpu: before, wait: e.runDelayNs ?? 0, pc: e.pc ?? -1 };
        }
        // The earlier sample is the baseline here, so an unchanged wait is the baseline's wait.
        sameBase = sameCall;
        eventLoop = isEventWait(e) || (e.stack !== undefined && matchSignature(e.stack)?.signature.kind === 'event');
      } else if (!isStopped(t) && t.offCpuNs === undefined) {
        continue; // no baseline for it and no off-CPU time: only what one sample shows (stopped)
      }
      heldNs = heldFor(t, heldNs);
      waitNs = Math.max(waitNs, heldNs);
      if (spin === null && waitNs < stallNs && !isStopped(t)) {
        if (t.state !== 'zombie' && t.state !== 'halted') tally.progressing++;
        continue;
      }
      const match = t.stack !== undefined && t.stack.length > 0 ? matchSignature(t.stack) : null;
      const kind = waitKindOf(e !== undefined && restarted(t.blockedIn, e.blockedIn) ? { ...t, blockedIn: e.blockedIn } : t, match);
      const expectExit = this.expectExit && p.peerOf === undefined;
      if (spin === null && quickIdle(tally, t, kind, heldNs, stallNs, main && expectExit, eventLoop)) continue;
      const o = this.pass;
      o.t = t;
      o.index = i;
      o.main = main;
      o.heldNs = heldNs;
      o.waitNs = waitNs;
      o.spin = spin;
      o.before = e?.state ?? t.state;
      o.stallNs = stallNs;
      o.expectExit = expectExit;
      o.match = match;
      o.stack = t.stack !== undefined ? 'taken' : 'none';
      o.frames = undefined;
      o.peer = undefined;
      o.stackNote = t.stack !== undefined ? undefined : NO_STACK;
      o.sameBase = sameBase;
      o.baseKnown = e !== undefined && !this.single;
      o.eventLoop = eventLoop;
      admit(tally, o, kind);
    }
    if (p.goroutines !== undefined) {
      // Go: a goroutine in the same lock wait in both samples has waited since the earlier one.
      const before = new Map((b?.goroutines ?? []).map((g) => [g.goid, g]));
      const waits = lockWaits(p, (g) => {
        const e = before.get(g.goid);
        return timeKnown && e !== undefined && goroutineWaitKey(e) === goroutineWaitKey(g) ? b!.sampledAtNs : undefined;
      }, this.stallMs);
      for (const f of goroutineFindings(p, waits)) scratch.findings.push(f);
    }
    const idle = tally.idle + this.judgeProcess(p, tally, nowNs, scratch);
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
    let wanted: number[] | undefined;
    const threads = p.threads;
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i];
      noteNode(t, p.pid, scratch);
      const main = darwin ? i === 0 : t.tid === p.pid;
      let track = i < order.length && order[i].tid === t.tid ? order[i] : proc.tracks.get(t.tid);
      const cpu = cpuOf(t);
      if (track === undefined) {
        const base = proc.baseline?.get(t.tid);
        track = new ThreadTrack(t.tid, t, nowNs, base ?? t, seen);
        proc.tracks.set(t.tid, track);
      } else {
        track.seen = seen;
        track.before = track.state;
        const voluntary = t.contextSwitches === null ? -1 : t.contextSwitches.voluntary;
        const involuntary = t.contextSwitches === null ? -1 : t.contextSwitches.involuntary;
        const pc = t.pc ?? -1;
        const dcpu = cpu - track.cpu;
        if (dcpu > 0) cpuNs += dcpu;
        // Wanted a CPU the whole time: CPU time plus time runnable but waiting for a CPU grew at
        // ≥ spinRatio of wall time, running, at the same pc when known (spinning, or starved).
        const wait = t.runDelayNs ?? 0;
        const dwait = wait - track.wait;
        if (timeKnown && isRunning(t) && dcpu + Math.max(dwait, 0) >= this.spinRatio * (nowNs - track.lastNs) && (pc === -1 || track.pc === -1 || pc === track.pc)) {
          if (track.spinSinceNs < 0) {
            track.spinSinceNs = track.lastNs;
            track.spinCpu = track.cpu;
            track.spinWait = track.wait;
            track.spinPc = track.pc;
          }
        } else {
          track.spinSinceNs = -1;
        }
        track.wait = wait;
        const sameCall = track.sameCall(t.blockedIn, t.wchan);
        // The wake-up our own stack walk caused (a ptrace stop): the same wait, next to no CPU. Not progress.
        const ours = track.absorb && sameCall && t.state === track.state && pc === track.pc && dcpu <= REWAIT_CPU_MIN_NS;
        track.absorb = false;
        if (ours) {
          track.cpu = cpu;
          track.waitCpu = cpu;
          track.voluntary = voluntary;
          track.involuntary = involuntary;
        } else if (
          discard ||
          dcpu !== 0 ||
          t.state !== track.state ||
          voluntary !== track.voluntary ||
          involuntary !== track.involuntary ||
          pc !== track.pc ||
          !sameCall
        ) {
          // A new wait, or the same one left with real CPU work in between: its wait clock and its examination start again.
          if (discard || !sameCall || pc !== track.pc || t.blockedIn === null || cpu - track.waitCpu > Math.max(REWAIT_CPU_MIN_NS, REWAIT_CPU_SHARE * (nowNs - track.waitSinceNs))) {
            track.waitSinceNs = nowNs;
            track.waitCpu = cpu;
            track.exam = undefined;
            track.kind = undefined;
          }
          track.sinceNs = nowNs;
          track.state = t.state;
          track.cpu = cpu;
          track.voluntary = voluntary;
          track.involuntary = involuntary;
          track.pc = pc;
          // Only on change: keeping the older, equal object lets each sample die young.
          // A wait resumed as restart_syscall (after a stop: our own stack walk, a debugger) is
          // still the wait it was: the call it restarted stays (an event loop's poll stays an event wait).
          if (!restartedFrom(t.blockedIn, track.call)) track.setBlocked(t.blockedIn);
          track.wchan = t.wchan;
        }
      }
      nextOrder[i] = track;
      track.lastNs = nowNs;
      // A discarded window judges nothing, not even with the kernel's own off-CPU clock: the
      // sample that follows does.
      const heldNs = discard ? 0 : heldFor(t, timeKnown ? nowNs - track.sinceNs : 0);
      const waitNs = Math.max(timeKnown ? nowNs - track.waitSinceNs : 0, heldNs);
      const spinning = track.spinSinceNs >= 0 && nowNs - track.spinSinceNs >= stallNs;
      if (!spinning && waitNs * 2 < stallNs && !isStopped(t)) {
        if (t.state !== 'zombie' && t.state !== 'halted') tally.progressing++;
        continue;
      }
      // Still for half the window at least: what it waits for (once per wait), and its stack when only a stack can tell.
      if (track.kind === undefined) {
        const match = t.stack !== undefined && t.stack.length > 0 ? matchSignature(t.stack) : (track.exam?.match ?? null);
        // A restarted wait is still the wait it restarted (track.blocked keeps that call); the
        // other end found with its stack counts as the sample's own would (a client's poll).
        let blocked = restarted(t.blockedIn, track.blocked) ? track.blocked : t.blockedIn;
        if (blocked !== null && blocked.peer === undefined && track.exam?.peer !== undefined) blocked = { ...blocked, peer: track.exam.peer };
        track.kind = waitKindOf(blocked === t.blockedIn ? t : { ...t, blockedIn: blocked }, match);
        if (!track.eventLoop && track.kind === 'event') track.eventLoop = true;
      }
      if (this.examining && track.exam === undefined && t.stack === undefined && t.blockedIn !== null && needsStack(track.kind) && t.state !== 'uninterruptible') {
        track.exam = { match: null, state: 'pending' };
        (wanted ??= []).push(t.tid);
      }
      if (!spinning && waitNs < stallNs && !isStopped(t)) {
        if (t.state !== 'zombie' && t.state !== 'halted') tally.progressing++;
        continue;
      }
      const expectExit = this.expectExit && p.peerOf === undefined;
      if (!spinning && quickIdle(tally, t, track.kind, heldNs, stallNs, main && expectExit, track.eventLoop)) continue;
      const exam = track.exam;
      const o = this.pass;
      o.t = t;
      o.index = i;
      o.main = main;
      o.heldNs = heldNs;
      o.waitNs = waitNs;
      o.spin = spinning ? { sinceNs: track.spinSinceNs, cpu: track.spinCpu, wait: track.spinWait, pc: track.spinPc } : null;
      o.before = track.before;
      o.stallNs = stallNs;
      o.expectExit = expectExit;
      o.match = t.stack !== undefined && t.stack.length > 0 ? matchSignature(t.stack) : (exam?.match ?? null);
      o.stack = t.stack !== undefined ? 'taken' : exam === undefined ? 'none' : exam.state;
      o.frames = t.stack !== undefined ? undefined : exam?.frames;
      o.peer = exam?.peer;
      o.stackNote = t.stack !== undefined ? undefined : exam?.note ?? (exam === undefined ? NO_STACK : undefined);
      o.sameBase = sameWait(t.blockedIn, t.wchan, track.baseBlocked, track.baseWchan) || restarted(t.blockedIn, track.baseBlocked);
      o.baseKnown = proc.baseline !== null;
      o.eventLoop = track.eventLoop;
      admit(tally, o, track.kind);
    }
    if (wanted !== undefined) this.wanted.set(p.pid, [...(this.wanted.get(p.pid) ?? []), ...wanted]);
    proc.order = nextOrder;
    if (proc.tracks.size > threads.length) {
      for (const [tid, track] of proc.tracks) if (track.seen !== seen) proc.tracks.delete(tid);
    }
    if (p.goroutines !== undefined) this.stepGoroutines(proc, p, discard, scratch);
    const idle = tally.idle + this.judgeProcess(p, tally, nowNs, scratch);
    proc.lastNs = nowNs;
    const summary: ProcessSummary = { pid: p.pid, name: p.name, threads: threads.length, idle, cpuNs, windowMs: fresh ? 0 : dtNs / 1e6 };
    if (fresh && this.generation > 1) summary.new = true;
    return summary;
  }

  /** Go: follow the goroutines acquiring a lock from sample to sample, and judge them (goroutine-rule.ts). */
  private stepGoroutines(proc: ProcessTrack, p: ProcessSample, discard: boolean, scratch: Scratch): void {
    const next = new Map<number, { key: string; sinceNs: number }>();
    for (const g of p.goroutines ?? []) {
      if (lockFrame(g) < 0) continue;
      const key = goroutineWaitKey(g);
      const known = proc.goroutineWaits.get(g.goid);
      next.set(g.goid, { key, sinceNs: known !== undefined && known.key === key && !discard ? known.sinceNs : p.sampledAtNs });
    }
    proc.goroutineWaits = next;
    for (const f of goroutineFindings(p, lockWaits(p, (g) => next.get(g.goid)?.sinceNs, this.stallMs))) scratch.findings.push(f);
  }

  /** Pass two: the findings of a process's cases, in rule order; returns how many turned out idle. */
  private judgeProcess(p: ProcessSample, tally: Tally, nowNs: number, scratch: Scratch): number {
    const cases = tally.cases;
    if (cases.length === 0) {
      this.peerFacts.set(p.pid, { progressing: tally.progressing, waitsForChild: mainWaitsForChild(p) });
      return 0;
    }
    const view: ProcessView = {
      stallMs: this.stallMs,
      expectExit: this.expectExit && p.peerOf === undefined,
      frozen: p.threads.length > 0 && tally.still === p.threads.length,
      progressing: tally.progressing,
      lockWaiters: tally.lockWaiters,
      movedIn: tally.movedIn,
      outcomes: new Map(),
    };
    let idle = 0;
    const settle = (pending: Pending): void => {
      const c = pending as Case;
      c.p = p;
      c.nowNs = nowNs;
      // Waiting for the stack that tells: judged when it comes (the next sample).
      const outcome: Outcome = c.stack === 'pending' && needsStack(c.kind) && c.t.state !== 'uninterruptible' && !isDriverCall(c.t) && !isStopped(c.t) && c.spin === null ? IDLE : judgeCase(c, view);
      view.outcomes.set(c.t.tid, outcome);
      if (outcome === IDLE) idle++;
      else if (outcome === DEFER) scratch.deferred.push(c);
      else scratch.findings.push(outcome);
    };
    // A join is judged by the thread it joins: those first.
    for (const c of cases) if (c.kind !== 'join') settle(c);
    for (const c of cases) if (c.kind === 'join') settle(c);
    this.peerFacts.set(p.pid, { progressing: tally.progressing, waitsForChild: mainWaitsForChild(p) });
    return idle;
  }

  /** Per process of the sample being judged: what a wait on it needs to know. */
  private peerFacts = new Map<number, PeerFacts>();

  /** Waits on another process, judged by that process now that every process of the sample has been. */
  private resolvePeers(scratch: Scratch, summaries: ProcessSummary[]): void {
    if (scratch.deferred.length === 0) {
      this.peerFacts.clear();
      return;
    }
    // (judgeProcess records every process, including those with no case of their own.)
    const hungBy = new Map<number, Finding>();
    for (const f of scratch.findings) if (f.severity === 'critical' && f.ref.pid !== undefined && !hungBy.has(f.ref.pid)) hungBy.set(f.ref.pid, f);
    const cpuBy = new Map(summaries.map((s) => [s.pid, s.cpuNs]));
    for (const c of scratch.deferred) {
      const outcome = peerOutcome(c, this.stallMs, this.expectExit && c.p.peerOf === undefined, hungBy, cpuBy, this.peerFacts);
      if (outcome !== IDLE) scratch.findings.push(outcome);
      else {
        const summary = summaries.find((s) => s.pid === c.p.pid);
        if (summary !== undefined) summary.idle++;
      }
    }
    this.peerFacts.clear();
  }

}

/** Its main thread (tid = pid; on macOS the first) waits for a child process. */
function mainWaitsForChild(p: ProcessSample): boolean {
  const main = p.threads.find((t) => t.tid === p.pid) ?? p.threads[0];
  return main?.blockedIn !== undefined && main.blockedIn !== null && waitClass(main.blockedIn.call) === 'child';
}

function goneSummary(pid: number, name: string): ProcessSummary {
  return { pid, name, threads: 0, idle: 0, cpuNs: 0, windowMs: 0, gone: true };
}
