/**
 * The thread rules: an ordered list of small named rules, each with its reason. A thread that
 * sat still for the stall window (or spun, or is stopped) is a case; the first rule that has
 * something to say about it decides: a finding, idle, or (for a wait on another process)
 * deferred until every process of the sample has been judged. src/analyze/README.md has the
 * same list in words.
 */
import type { Peer, ProcessSample, ThreadSample, ThreadState } from '../types';
import { cpuOf, describeWait, isDriverCall, kernelWaitHint } from './calls';
import { formatCpu, formatMs } from './format';
import { killability, type KillableVerdict } from './killable';
import { topFrames, type SignatureMatch } from './signatures';
import type { Evidence, Finding, Severity } from './types';
import type { WaitKind } from './wait-kind';

/** How far a stack could tell what the thread waits for. */
export type StackState =
  /** A stack was taken and read (it may still match no signature). */
  | 'taken'
  /** Nobody took one (a snapshot without --stacks). */
  | 'none'
  /** Asked for; it comes with a later sample. */
  | 'pending'
  /** It could not be taken (permission, a timeout): `stackNote` says why. */
  | 'failed';

/** When the thread began to spin: since when, its CPU time and run delay then, and its pc then (-1: not known). */
export interface SpinWindow {
  sinceNs: number;
  cpu: number;
  wait: number;
  pc: number;
}

/** One still (or spinning, or stopped) thread and what is known about it. */
export interface Case {
  p: ProcessSample;
  t: ThreadSample;
  main: boolean;
  nowNs: number;
  /** ms with no progress at all (CPU, switches, call, state, pc), or off CPU (offCpuNs), whichever is longer. */
  heldMs: number;
  /** ms in this same wait, waking and waiting again included (a timed re-park), at least heldMs. */
  waitMs: number;
  /** Its state in the sample its window began with. */
  before: ThreadState;
  spin: SpinWindow | null;
  kind: WaitKind;
  match: SignatureMatch | null;
  stack: StackState;
  stackNote?: string;
  /** The innermost frames from the matching one, when the stack was taken earlier (the sample itself has none). */
  frames?: string;
  /** Who is at the other end of its wait, when the sample does not say (a watch finds it with the stack). */
  peer?: Peer;
  /** It waits where it waited in the baseline. */
  sameBase: boolean;
  /** The baseline is a snapshot taken when things were healthy, not just the first sample watched. */
  baseKnown: boolean;
  /** It was seen waiting for events before (in the baseline, or an earlier sample): an event loop. */
  eventLoop: boolean;
}

/** What the rules know of the thread's process when they judge one of its threads. */
export interface ProcessView {
  stallMs: number;
  expectExit: boolean;
  /** Every thread sat still in a blocking wait (no event wait, sleep or peer): nothing in it can wake the rest. */
  frozen: boolean;
  /** Threads that progressed within the stall window. */
  progressing: number;
  /** Threads in a lock acquisition for the stall window. */
  lockWaiters: number;
  /** Still threads that entered their wait after the baseline. */
  movedIn: number;
  /** The findings (or 'idle') of threads judged so far in this process, by tid: a join is judged by the joined thread. */
  outcomes: Map<number, Outcome>;
}

export const IDLE = Symbol('idle');
export const DEFER = Symbol('defer');
export type Outcome = Finding | typeof IDLE | typeof DEFER;

export interface ThreadRule {
  name: string;
  /** Why the rule is there and in this place. */
  why: string;
  judge(c: Case, v: ProcessView): Outcome | undefined;
}

export function threadSubject(p: ProcessSample, t: ThreadSample, main: boolean): string {
  return `pid ${p.pid} (${p.name}) thread ${t.tid}${t.name !== null ? ` '${t.name}'` : ''}${main ? ' (main)' : ''}`;
}

export function isStopped(t: ThreadSample): boolean {
  return t.state === 'stopped' || (t.suspendCount !== null && t.suspendCount > 0);
}

function finding(c: Case, kind: Finding['kind'], severity: Severity, message: string, evidence: Evidence[], durationMs: number): Finding {
  return { kind, severity, subject: threadSubject(c.p, c.t, c.main), ref: { pid: c.p.pid, tid: c.t.tid }, message, evidence, durationMs };
}

/** What the wait is, in words a person can act on, when neither the stack nor the kernel says more. */
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

/** What a kill -9 would do, in words: killable, not, or not known, with what decided it. */
export function killWords(kill: KillableVerdict): string {
  const by = kill.frame !== undefined ? ` (${kill.frame})` : '';
  switch (kill.killability) {
    case 'killable':
      return `a killable wait${by}: kill -9 ends it`;
    case 'unkillable':
      return `a wait no signal ends${by}: even kill -9 waits until the kernel call returns${kill.endsWhen !== undefined ? ` (${kill.endsWhen})` : ''}`;
    default:
      return `whether kill -9 ends it is not known (${kill.reason})${kill.endsWhen !== undefined ? `; it ends when ${kill.endsWhen}` : ''}`;
  }
}

function noProgress(t: ThreadSample): string {
  return `no CPU progress${t.contextSwitches !== null ? ' and no context switches' : ''}`;
}

/** The stack's say, for a message: " (JVM monitor enter: ObjectMonitor::EnterI ← ObjectMonitor::enter ← …)". */
function stackWords(c: Case): string {
  if (c.t.stack === undefined && c.match === null && c.frames === undefined) return '';
  const frames = c.t.stack !== undefined ? topFrames(c.t.stack.slice(c.match?.frame ?? 0), 3) : (c.frames ?? c.match!.function);
  return c.match !== null ? ` (${c.match.signature.name}: ${frames})` : frames !== '' ? ` (${frames})` : '';
}

function stillEvidence(c: Case): Evidence[] {
  const t = c.t;
  const call = t.blockedIn === null ? null : t.blockedIn.call;
  const cpu = cpuOf(t);
  const evidence: Evidence[] = [
    { field: 'blockedIn.call', before: call, after: call },
    { field: 'cpuNs', before: cpu, after: cpu },
    { field: 'state', before: c.before, after: t.state },
  ];
  if (t.contextSwitches !== null) {
    evidence.push({ field: 'contextSwitches.voluntary', before: t.contextSwitches.voluntary, after: t.contextSwitches.voluntary });
  }
  if (t.blockedIn?.target !== undefined) evidence.push({ field: 'blockedIn.target', before: t.blockedIn.target, after: t.blockedIn.target });
  if (t.wchan !== undefined) evidence.push({ field: 'wchan', before: t.wchan, after: t.wchan });
  if (t.offCpuNs !== undefined) evidence.push({ field: 'offCpuNs', before: null, after: t.offCpuNs });
  if (c.match !== null) evidence.push({ field: 'stack', before: null, after: `${c.match.signature.name}: ${c.match.function}` });
  return evidence;
}

/** A stack frame of a GPU runtime or driver library: spinning there is polling the GPU. */
const GPU_LIBRARY = /\/(libcuda\.so|libnvidia-[\w-]+\.so|libamdhip64\.so|libhsa-runtime64\.so|libze_intel_gpu\.so|libigdrcl\.so|libvulkan_\w+\.so|libGLX?_nvidia\.so|[\w-]*_dri\.so)[^/]*$|\/Metal\.framework\/|\/System\/Library\/Extensions\/[^/]+\.bundle\//;

function spinsInGpuLibrary(t: ThreadSample): boolean {
  const stack = t.stack;
  if (stack === undefined) return false;
  for (let i = 0; i < Math.min(stack.length, 8); i++) if (stack[i].module !== null && GPU_LIBRARY.test(stack[i].module!)) return true;
  return false;
}

/** Go's OS threads (Ms) have no fixed role: any of them may wait for events, sleep or park in turn. */
function isGoThread(t: ThreadSample): boolean {
  const stack = t.stack;
  return stack !== undefined && stack.some((f) => f.symbol?.startsWith('runtime.') === true);
}

export const THREAD_RULES: readonly ThreadRule[] = [
  {
    name: 'stopped',
    why: 'a stopped thread (SIGSTOP, job control, a debugger, a Mach suspend count) runs again only when someone resumes it',
    judge(c, v) {
      const t = c.t;
      if (!isStopped(t)) return undefined;
      const byState = t.state === 'stopped';
      const long = c.heldMs >= v.stallMs;
      return finding(
        c,
        'stopped',
        long ? 'critical' : 'warning',
        byState
          ? `stopped${long ? ` for ${formatMs(c.heldMs)}` : ''} (SIGSTOP, job control or a debugger): it runs again only after SIGCONT (kill -CONT ${c.p.pid})`
          : `suspended (suspend count ${t.suspendCount})${long ? ` for ${formatMs(c.heldMs)}` : ''}: a debugger or another task holds it; it runs again only when resumed`,
        [
          { field: 'state', before: c.before, after: t.state },
          { field: 'suspendCount', before: t.suspendCount, after: t.suspendCount },
        ],
        c.heldMs,
      );
    },
  },
  {
    name: 'busy',
    why:
      'CPU time is progress: a thread that wanted a CPU the whole window is computing (info). It is a warning only when it polls the GPU (its stack is in a GPU runtime), spins at one pc, or is starved of CPU so badly that it hardly runs (under 2 % of the window: on a loaded machine every busy thread gets a small share)',
    judge(c, v) {
      if (c.spin === null || c.nowNs - c.spin.sinceNs < v.stallMs * 1e6) return undefined;
      const t = c.t;
      const spanMs = (c.nowNs - c.spin.sinceNs) / 1e6;
      const cpu = cpuOf(t);
      const used = cpu - c.spin.cpu;
      const runDelay = t.runDelayNs ?? 0;
      const waited = runDelay - c.spin.wait;
      const percent = (ns: number) => Math.round((ns / (spanMs * 1e6)) * 100);
      if (waited * 2 >= spanMs * 1e6) {
        const hardlyRuns = used * 50 < spanMs * 1e6;
        return finding(
          c,
          'starved',
          hardlyRuns ? 'warning' : 'info',
          `starved of CPU: runnable for ${formatMs(spanMs)} but waited ${formatCpu(waited)} (${percent(waited)}%) for a CPU and ran ${formatCpu(used)} (${percent(
            used,
          )}%): other work holds its CPUs (load, a CPU affinity mask, a real-time thread, or CPU limits of its cgroup)`,
          [
            { field: 'runDelayNs', before: c.spin.wait, after: runDelay },
            { field: 'cpuNs', before: c.spin.cpu, after: cpu },
            { field: 'state', before: c.before, after: t.state },
          ],
          spanMs,
        );
      }
      const queued = waited > 0 ? ` and ${formatCpu(waited)} (${percent(waited)}%) waiting for a CPU` : '';
      const gpu = spinsInGpuLibrary(t);
      // At one pc: known at both ends of the window, and the same (a window goes on only while it stays there).
      const samePc = t.pc !== undefined && c.spin.pc === t.pc;
      const where = gpu ? `, polling the GPU${stackWords(c) || ` in ${topFrames(t.stack!, 3)}`}` : samePc ? ` at the same pc 0x${t.pc!.toString(16)}` : '';
      return finding(
        c,
        'spinning',
        gpu || samePc ? 'warning' : 'info',
        gpu
          ? `spin-waiting on the GPU: ${formatCpu(used)} of CPU in ${formatMs(spanMs)} (${percent(used)}%)${queued}${where}: a GPU runtime busy-polls a fence or queue that does not complete`
          : `busy: ${formatCpu(used)} of CPU in ${formatMs(spanMs)} (${percent(used)}%)${queued}${where}, never blocking: ${
              samePc ? 'at one pc, a spin-wait on a flag or a lock' : 'computing (CPU time is progress; a busy loop looks the same from outside)'
            }`,
        [
          { field: 'cpuNs', before: c.spin.cpu, after: cpu },
          { field: 'state', before: c.before, after: t.state },
          ...(waited > 0 ? [{ field: 'runDelayNs', before: c.spin.wait, after: runDelay }] : []),
          ...(t.pc !== undefined ? [{ field: 'pc', before: t.pc, after: t.pc }] : []),
        ],
        spanMs,
      );
    },
  },
  {
    name: 'gpu-driver',
    why: 'a call into a GPU driver (an ioctl on its node, the IOKit user-client trap, a mach_msg under IOKit) that makes no progress for the stall window is the driver not completing a request',
    judge(c) {
      if (!isDriverCall(c.t)) return undefined;
      const t = c.t;
      return finding(
        c,
        'blocked-in-driver',
        'critical',
        `blocked in the GPU driver: ${describeWait(t)} for at least ${formatMs(c.heldMs)} with ${noProgress(t)}${
          t.state === 'uninterruptible' ? ', uninterruptible' : ''
        }; the driver did not complete the request (check the kernel log: dmesg, or log show --predicate 'sender == "AGXFirmware"')`,
        stillEvidence(c),
        c.heldMs,
      );
    },
  },
  {
    name: 'uninterruptible',
    why: "Linux D state with no context switches for the stall window: the kernel's hung_task rule",
    judge(c) {
      const t = c.t;
      if (t.state !== 'uninterruptible') return undefined;
      const hint = kernelWaitHint(t);
      const kill = killability(t);
      return finding(
        c,
        'uninterruptible',
        'critical',
        `in uninterruptible sleep (D) in ${describeWait(t)} for at least ${formatMs(c.heldMs)} with ${noProgress(t)} (the kernel's hung_task rule): ${killWords(kill)}${
          hint !== null ? `; ${hint}` : ''
        }`,
        [...stillEvidence(c), { field: 'killable', before: null, after: kill.killability }],
        c.heldMs,
      );
    },
  },
  {
    name: 'lock',
    why:
      'a thread acquiring a lock (its stack says so) for the stall window waits for the owner to let go. Two or more such threads with no progress are a deadlock candidate even while other threads tick (a JVM\'s GC and periodic threads always do); one is critical on the main thread (nothing else makes the process serve), else a warning',
    judge(c, v) {
      if (c.kind !== 'lock') return undefined;
      const t = c.t;
      const deadlock = v.lockWaiters >= 2;
      const severity: Severity = deadlock || c.main || v.frozen ? 'critical' : 'warning';
      const others = v.lockWaiters - 1;
      return finding(
        c,
        'stalled',
        severity,
        `blocked acquiring a lock${stackWords(c)} in ${describeWait(t)} for at least ${formatMs(c.waitMs)}${
          c.waitMs > c.heldMs ? ', waking and waiting again' : ` with ${noProgress(t)}`
        }: ${
          deadlock
            ? `${others} other thread${others === 1 ? '' : 's'} of the process wait${others === 1 ? 's' : ''} on locks the same way: a deadlock (each holds what another wants), or a lock whose owner is stuck`
            : c.match?.signature.name === 'PostgreSQL lock manager'
              ? 'another transaction holds the lock it needs (pg_locks shows which: SELECT * FROM pg_locks WHERE NOT granted)'
              : 'another thread holds the lock and does not let go'
        }`,
        stillEvidence(c),
        c.waitMs,
      );
    },
  },
  {
    name: 'join',
    why: 'a thread that waits for another thread to exit is as stuck as that thread: idle while it works or idles, and it points at it when it is stuck',
    judge(c, v) {
      if (c.kind !== 'join') return undefined;
      const joined = c.t.blockedIn?.joining;
      if (joined === undefined) return undefined; // a join seen only on the stack: judged as a condition below
      const outcome = v.outcomes.get(joined);
      if (outcome === undefined || outcome === IDLE || outcome === DEFER || outcome.severity === 'info') {
        if (!(c.main && v.expectExit)) return IDLE;
        return finding(
          c,
          'waiting',
          'info',
          `joining thread ${joined} for at least ${formatMs(c.heldMs)} (pthread_join): the command waits for that thread, which is working or waiting for work of its own`,
          [{ field: 'blockedIn.joining', before: joined, after: joined }],
          c.heldMs,
        );
      }
      return finding(
        c,
        'waiting',
        'info',
        `joining thread ${joined} for at least ${formatMs(c.heldMs)} (pthread_join): it waits for that thread to exit, which is ${outcome.kind} (${outcome.severity}): ${outcome.message}`,
        [{ field: 'blockedIn.joining', before: joined, after: joined }],
        c.heldMs,
      );
    },
  },
  {
    name: 'left-event-loop',
    why:
      'a thread that waited for events before (an event loop) and now sits, off CPU for the stall window, in a sleep or a blocking wait has stopped serving: a handler that sleeps or blocks freezes the loop (critical on the main thread, else a warning)',
    judge(c, v) {
      if (!c.eventLoop || c.heldMs < v.stallMs) return undefined;
      if (c.kind !== 'sleep' && c.kind !== 'condition' && c.kind !== 'block' && c.kind !== 'io') return undefined;
      if (isGoThread(c.t)) return undefined;
      const t = c.t;
      return finding(
        c,
        'stalled',
        c.main ? 'critical' : 'warning',
        `its event loop stopped: it waited for events before and has sat in ${describeWait(t)}${stackWords(c)} for at least ${formatMs(c.heldMs)} with ${noProgress(
          t,
        )}: a handler ${c.kind === 'sleep' ? 'sleeps' : 'blocks'} inside the loop, so nothing it serves is answered meanwhile`,
        stillEvidence(c),
        c.heldMs,
      );
    },
  },
  {
    name: 'idle-wait',
    why:
      'event waits, runtime and pool parks, timed sleeps and child waits are how idle threads wait; an event wait is idle where the thread waited in the baseline, or where its stack shows an event loop. With expectExit (exec) the main thread waiting for events is a warning: the command was supposed to finish',
    judge(c, v) {
      const t = c.t;
      const expected = c.main && v.expectExit;
      switch (c.kind) {
        case 'park':
          // Only the main thread of a command that should exit: pass one counts every other park idle (quickIdle, admit).
          return finding(c, 'waiting', 'info', `parked${stackWords(c)} in ${describeWait(t)} for at least ${formatMs(c.heldMs)}: its runtime waits for work`, stillEvidence(c), c.heldMs);
        case 'sleep':
        case 'child':
          if (!expected) return IDLE;
          return finding(
            c,
            'waiting',
            'info',
            c.kind === 'sleep'
              ? `sleeping in ${describeWait(t)} for at least ${formatMs(c.heldMs)}: a timed sleep, it wakes by itself`
              : `waits for a child process in ${describeWait(t)} for at least ${formatMs(c.heldMs)}: the child decides (see its findings)`,
            [{ field: 'blockedIn.call', before: t.blockedIn!.call, after: t.blockedIn!.call }],
            c.heldMs,
          );
        case 'event':
          if (expected) {
            return finding(
              c,
              'waiting',
              'warning',
              `waits for events in ${describeWait(t)}${stackWords(c)} for at least ${formatMs(c.heldMs)}, but the command should have finished${
                t.blockedIn !== null && /^mach_msg/.test(t.blockedIn.call) && t.stack === undefined ? ' (on macOS also how IOConnectCallMethod waits for a driver: take stacks to tell)' : ''
              }`,
              [{ field: 'blockedIn.call', before: null, after: t.blockedIn?.call ?? null }],
              c.heldMs,
            );
          }
          if (c.sameBase || c.match?.signature.kind === 'event') return IDLE;
          return finding(
            c,
            'waiting',
            'info',
            `waits for events in ${describeWait(t)} for at least ${formatMs(c.heldMs)}; it was not parked there in the baseline`,
            [{ field: 'blockedIn.call', before: null, after: t.blockedIn?.call ?? null }],
            c.heldMs,
          );
        default:
          return undefined;
      }
    },
  },
  {
    name: 'peer',
    why: 'a thread that waits on a pipe, fifo or socket waits for another process: it is judged by that process, once every process of the sample has been judged',
    judge(c) {
      return c.kind === 'peer' ? DEFER : undefined;
    },
  },
  {
    name: 'frozen',
    why:
      'every thread of the process sits still in a blocking wait (no event loop, sleep or peer among them): nothing in it can wake the rest. Critical when the process got there after the baseline (it was working, then everything stopped: a deadlock), or when it should finish; when every thread has waited so since the baseline it may be a program idle until a signal (a pool whose main thread joins it) as well as a deadlock older than the baseline, and a CPython deadlock looks the same: info',
    judge(c, v) {
      if (!v.frozen) return undefined;
      const t = c.t;
      const joined = t.blockedIn?.joining;
      if (v.movedIn === 0 && v.lockWaiters === 0 && !v.expectExit) {
        return finding(
          c,
          'waiting',
          'info',
          `waits in ${describeWait(t)}${stackWords(c)} for at least ${formatMs(c.heldMs)}, as every thread of the process has since the first sample: nothing in it can wake the others, so it is idle until a signal or another process wakes it, or stuck since before (a deadlock no stack names, as in CPython, looks the same)`,
          stillEvidence(c),
          c.heldMs,
        );
      }
      return finding(
        c,
        'stalled',
        'critical',
        `stalled in ${describeWait(t)}${stackWords(c)} for at least ${formatMs(c.heldMs)} with ${noProgress(t)}: ${
          joined !== undefined ? `joining thread ${joined}; ` : ''
        }${t.blockedIn !== null ? waitHint(t) : 'the call is unknown'}; no thread of the process made progress`,
        stillEvidence(c),
        c.heldMs,
      );
    },
  },
  {
    name: 'unknown-call',
    why: "nobody could read the call (a 'basic' sample, no permission), so an idle wait cannot be told from a stuck one: never a hang; a warning on the main thread",
    judge(c) {
      if (c.kind !== 'unknown') return undefined;
      if (!c.main && c.sameBase) return IDLE;
      return finding(
        c,
        'stalled',
        c.main ? 'warning' : 'info',
        `no progress for at least ${formatMs(c.heldMs)} in ${describeWait(c.t)}: the call is unknown (sample with detail "full", or with permission to read the thread), so an idle wait cannot be told from a stuck one`,
        stillEvidence(c),
        c.heldMs,
      );
    },
  },
  {
    name: 'stalled',
    why:
      'any other wait (a condition or futex no signature names, storage, another blocking call). A worker waiting where it waited in the baseline is an idle pool thread; the main thread is critical when it left a known healthy wait for this one, a warning when its stack could not be read or nothing else progresses, idle when it waits for the others\' work',
    judge(c, v) {
      const t = c.t;
      const where = `${describeWait(t)}${stackWords(c)}`;
      const base = `stalled in ${where} for at least ${formatMs(c.heldMs)} with ${noProgress(t)}`;
      if (!c.main) {
        if (c.sameBase) return IDLE;
        return finding(c, 'stalled', 'info', `${base}: ${waitHint(t)}; it was not waiting there in the baseline`, stillEvidence(c), c.heldMs);
      }
      const unread = c.stack === 'failed' || c.stack === 'none' ? (c.stackNote ?? 'no stack was taken') : null;
      if (!c.sameBase && c.baseKnown && unread === null) {
        return finding(c, 'stalled', 'critical', `${base}: ${waitHint(t)}; it left the wait it had in the baseline for this one`, stillEvidence(c), c.heldMs);
      }
      if (v.progressing > 0 && c.sameBase) {
        if (!v.expectExit) return IDLE;
        return finding(
          c,
          'waiting',
          'info',
          `waits in ${where} for at least ${formatMs(c.heldMs)}, as in the baseline, while ${v.progressing} other thread${v.progressing === 1 ? '' : 's'} of the process make progress: it waits for their work; the command is still working`,
          [{ field: 'blockedIn.call', before: t.blockedIn?.call ?? null, after: t.blockedIn?.call ?? null }],
          c.heldMs,
        );
      }
      if (!v.expectExit && c.sameBase && unread === null) return IDLE;
      return finding(
        c,
        'stalled',
        'warning',
        `${base}: ${
          unread !== null
            ? `without its stack (${unread}) an idle park cannot be told from a stuck wait`
            : v.expectExit
              ? `${waitHint(t)}, while its other threads wait for events: the command should have finished`
              : `${waitHint(t)}; it left the wait it had when watching began`
        }`,
        stillEvidence(c),
        c.heldMs,
      );
    },
  },
];

/** Judge one case: the first rule with something to say. */
export function judgeCase(c: Case, v: ProcessView): Outcome {
  for (const rule of THREAD_RULES) {
    const outcome = rule.judge(c, v);
    if (outcome !== undefined) return outcome;
  }
  /* c8 ignore next 2 -- 'stalled', the last rule, answers every case: the loop never ends without an outcome */
  return IDLE;
}
