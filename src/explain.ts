/**
 * explain(snapshot): judge one snapshot on its own, with no healthy baseline, from what
 * it proves by itself: an imported report's sample counts over the sampled time,
 * hung_task's "blocked for more than N seconds", spindump's "Unresponsive" notes and
 * "blocked by" chains. It names the main thread's wait, every thread in a GPU driver or
 * on the IOKit user-client path, and the lock chains it can see. The findings have the
 * shape and wording compare() gives, so `iokit-snap explain` prints like `diff`.
 */
import { describeWait, waitClass } from './analyze/calls';
import { formatMs, plural } from './analyze/format';
import { ProgressTracker, verdictOf, waitHint } from './analyze/progress';
import { killability } from './analyze/killable';
import { killWords } from './analyze/thread-rules';
import type { Evidence, Finding, ProcessSummary, Report, Severity } from './analyze/types';
import { IokitSnapError } from './errors';
import { driverEntry, isGpuWait, onDriverPath } from './import/reports/derive';
import type { ProcessSample, Snapshot, ThreadSample } from './types';

export interface ExplainOptions {
  /** A wait the snapshot proves held at least this long is a hang (default 1000 ms, as compare()). */
  stallMs?: number;
}

const SEVERITY_ORDER: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };
/** Tasks a "wait on one lock" note names by subject; the rest are counted. */
const MAX_NAMED_WAITERS = 20;

/** The subject compare() writes for a thread. */
function subjectOf(p: ProcessSample, t: ThreadSample, main: boolean): string {
  return `pid ${p.pid} (${p.name}) thread ${t.tid}${t.name !== null ? ` '${t.name}'` : ''}${main ? ' (main)' : ''}`;
}

/** How long, in words a person trusts: "for at least 2.5 s (2464 of 2464 samples)", or why it is not known. */
function heldWords(p: ProcessSample, t: ThreadSample): string {
  const facts = p.report;
  const samples = t.samples !== undefined && facts?.samples != null ? ` (${t.samples} of ${facts.samples} samples)` : '';
  if (t.heldMs != null) {
    return facts?.format === 'hung-task' ? `for more than ${formatMs(t.heldMs)} (hung_task)` : `for at least ${formatMs(t.heldMs)}${samples}`;
  }
  if (facts === undefined) return 'in this snapshot (one snapshot proves no duration: take two and use diff)';
  if (facts.format === 'crash' || facts.format === 'lldb') return 'when the stack was taken (one stack: how long is not in the report)';
  if (facts?.format === 'hung-task') return 'when the blocked tasks were listed (the report as pasted does not say for how long)';
  return `in the samples shown${samples} (the report does not prove it stayed there)`;
}

/** "mach_msg_trap under IOConnectCallMethod", "uvm_gpu_retain_by_uuid [nvidia_uvm] on mutex_lock". */
function whereWords(t: ThreadSample): string {
  const blocked = t.blockedIn;
  if (blocked === null) {
    const entry = driverEntry(t.stack ?? []);
    const top = t.stack?.[0]?.symbol;
    return `${top ?? 'an unknown frame'}${entry.via !== undefined ? ` under ${entry.via}` : ''}`;
  }
  let words = describeWait(t);
  if (blocked.driver !== undefined && /^[a-z_]+$/.test(blocked.driver)) words += ` [${blocked.driver}]`;
  if (blocked.via !== undefined) words += blocked.number === -1 && t.kernelFrames !== undefined ? ` in ${blocked.via}` : ` under ${blocked.via}`;
  if (blocked.lock !== undefined) words += ` on ${blocked.lock}`;
  return words;
}

function evidenceOf(p: ProcessSample, t: ThreadSample): Evidence[] {
  const evidence: Evidence[] = [{ field: 'blockedIn.call', before: null, after: t.blockedIn?.call ?? null }];
  if (t.blockedIn?.driver !== undefined) evidence.push({ field: 'blockedIn.driver', before: null, after: t.blockedIn.driver });
  if (t.blockedIn?.via !== undefined) evidence.push({ field: 'blockedIn.via', before: null, after: t.blockedIn.via });
  if (t.blockedIn?.lock !== undefined) evidence.push({ field: 'blockedIn.lock', before: null, after: t.blockedIn.lock });
  evidence.push({ field: 'state', before: null, after: t.state });
  if (t.samples !== undefined) evidence.push({ field: 'samples', before: p.report?.samples ?? null, after: t.samples });
  if (t.heldMs != null) evidence.push({ field: 'heldMs', before: null, after: t.heldMs });
  return evidence;
}

/**
 * A stack that reaches a GPU driver or the IOKit user client ('driver'), or that waits
 * for the GPU through Metal/OpenGL ('gpu'), even when its innermost frame is no syscall stub.
 */
function gpuPath(t: ThreadSample): 'driver' | 'iokit' | 'gpu' | null {
  const entry = t.blockedIn !== null ? { via: t.blockedIn.via, driver: t.blockedIn.driver } : driverEntry(t.stack ?? []);
  if (entry.driver !== undefined) return 'driver';
  if (onDriverPath(t.blockedIn) || (t.blockedIn === null && entry.via !== undefined && !isGpuWait(entry.via))) return 'iokit';
  return isGpuWait(entry.via) ? 'gpu' : null;
}

const PATH_WORDS = {
  driver: 'blocked in the GPU driver',
  // IOConnectCallMethod reaches whichever driver owns the user client; the stack does not say it is the GPU's.
  iokit: 'blocked in a driver call (IOKit user client)',
  gpu: 'waits for the GPU',
};

/** A thread that waits for another: spindump's "blocked by … thread 0x…", and who that holder is, when it is in the snapshot. */
function lockChain(p: ProcessSample, t: ThreadSample, byTid: Map<number, { p: ProcessSample; t: ThreadSample }>): string | null {
  if (t.blockedBy === undefined) return null;
  const holder = t.blockedBy.tid !== null ? byTid.get(t.blockedBy.tid) : undefined;
  const who = `thread 0x${(t.blockedBy.tid ?? 0).toString(16)}${t.blockedBy.name !== null ? ` of ${t.blockedBy.name}${t.blockedBy.pid !== null ? ` [${t.blockedBy.pid}]` : ''}` : ''}`;
  if (holder === undefined) return `it waits for ${t.blockedBy.tid !== null ? who : t.blockedBy.text}, which is not in the report`;
  const where = whereWords(holder.t);
  return `it waits for ${who}${holder.t.name !== null ? ` '${holder.t.name}'` : ''}, which is itself in ${where}${holder.t.blockedBy !== undefined ? ' and waits in turn' : ''}`;
}

/**
 * Judge one snapshot on its own, with no healthy baseline: what it proves by itself (an imported
 * report's sample counts and durations, hung_task's "blocked for more than", lock chains; a live
 * snapshot proves where threads wait, not for how long). The Report has compare()'s shape.
 *
 * @throws IokitSnapError EINVAL when the argument is not a snapshot or stallMs is out of range
 */
export function explain(snapshot: Snapshot, options: ExplainOptions = {}): Report {
  const s = snapshot as Partial<Snapshot> | null;
  if (s === null || typeof s !== 'object' || !Array.isArray(s.processes) || !Array.isArray(s.limits) || !Array.isArray(s.accelerators)) {
    throw new IokitSnapError('EINVAL', 'explain(): the argument is not an iokit-snap/1 snapshot (load a report with importReport() or a saved file with readSnapshot())');
  }
  const stallMs = options.stallMs ?? 1000;
  if (!(typeof stallMs === 'number' && stallMs >= 0 && Number.isFinite(stallMs))) {
    throw new IokitSnapError('EINVAL', `explain(): stallMs must be a non-negative number, got ${String(options.stallMs)}`);
  }
  if (snapshot.source === undefined && snapshot.processes.some((p) => p.threads.some((t) => t.offCpuNs !== undefined))) {
    // A live snapshot with each thread's off-CPU time proves how long every still thread had sat: the tracker's rules apply.
    const report = new ProgressTracker({ stallMs }).alone(snapshot);
    report.notes.unshift(
      'judged from this one snapshot, with no healthy baseline: how long each thread had been off CPU when it was taken (offCpuNs) is what it proves; a wait is not compared with a healthy one',
    );
    return report;
  }
  const findings: Finding[] = [];
  const processes: ProcessSummary[] = [];
  const notes: string[] = ['judged from this one snapshot, with no healthy baseline: durations are only what it proves by itself'];
  const byTid = new Map<number, { p: ProcessSample; t: ThreadSample }>();
  for (const p of snapshot.processes) for (const t of p.threads) byTid.set(t.tid, { p, t });
  // Tasks of one hung_task log waiting on the same lock in the same function: one holder blocks them all.
  const sameLock = new Map<string, string[]>();
  let windowMs: number | null = null;

  for (const p of snapshot.processes) {
    const facts = p.report;
    const unresponsive = facts !== undefined && (facts.unresponsiveMs !== null || facts.notes.some((n) => /unresponsive|Event: hang/i.test(n)));
    for (const note of facts?.notes ?? []) if (/unresponsive|hang/i.test(note)) notes.push(`pid ${p.pid} (${p.name}): the report notes "${note}"`);
    if (facts?.unresponsiveMs != null) notes.push(`pid ${p.pid} (${p.name}) was unresponsive for ${formatMs(facts.unresponsiveMs)} before the sampling began`);
    if (facts?.sampledMs != null) windowMs = Math.max(windowMs ?? 0, facts.sampledMs);
    let idle = 0;
    p.threads.forEach((t, i) => {
      // An imported report says which thread is main (or that it cannot tell); a live sample lists it first (macOS) or as tid = pid (Linux).
      const main = snapshot.source !== undefined ? t.main === true : snapshot.host?.platform === 'linux' ? t.tid === p.pid : i === 0;
      const subject = subjectOf(p, t, main);
      const ref = { pid: p.pid, tid: t.tid };
      const held = heldWords(p, t);
      const proven = t.heldMs != null && t.heldMs >= stallMs;
      const push = (kind: Finding['kind'], severity: Severity, message: string): void => {
        findings.push({ kind, severity, subject, ref, message, evidence: evidenceOf(p, t), durationMs: t.heldMs ?? null });
      };
      const chain = lockChain(p, t, byTid);
      if (t.blockedIn?.lock !== undefined && t.state === 'uninterruptible') {
        const key = `${t.blockedIn.lock} in ${t.blockedIn.via ?? t.blockedIn.call}`;
        const waiters = sameLock.get(key);
        // Pushed, not copied: 200,000 tasks on one lock made copying quadratic (minutes).
        if (waiters === undefined) sameLock.set(key, [subject]);
        else waiters.push(subject);
      }
      const path = gpuPath(t);
      if (path !== null) {
        const uninterruptible = t.state === 'uninterruptible';
        push(
          'blocked-in-driver',
          proven || (uninterruptible && t.heldMs != null) ? 'critical' : 'warning',
          `${PATH_WORDS[path]}: ${whereWords(t)} ${held}${uninterruptible ? ', uninterruptible' : ''}; the driver did not complete the request (check the kernel log: ${
            snapshot.host?.platform === 'linux' ? 'dmesg, for the driver\'s own errors (NVIDIA: Xid)' : `log show --predicate 'sender == "AGXFirmware"'`
          })${chain !== null ? `; ${chain}` : ''}`,
        );
        return;
      }
      if (t.state === 'uninterruptible') {
        push(
          'uninterruptible',
          t.heldMs != null ? 'critical' : 'warning',
          `in uninterruptible sleep (D) in ${whereWords(t)} ${held} (the kernel's hung_task rule): ${killWords(killability(t, { reportFormat: p.report?.format }))}`,
        );
        return;
      }
      if (chain !== null) {
        push('stalled', proven ? 'critical' : 'warning', `stalled in ${whereWords(t)} ${held}: ${chain}`);
        return;
      }
      if (!main) {
        if (t.blockedIn !== null && waitClass(t.blockedIn.call) === 'event') idle++;
        return;
      }
      const cls = t.blockedIn === null ? null : waitClass(t.blockedIn.call);
      if (t.blockedIn === null) {
        push('stalled', unresponsive ? 'warning' : 'info', `the main thread is in ${whereWords(t)} ${held}; its innermost frame is no system call, so the wait is not known`);
      } else if (cls === 'event') {
        push(
          'waiting',
          unresponsive ? 'warning' : 'info',
          `the main thread waits for events in ${whereWords(t)} ${held}${
            unresponsive ? ', yet the report says the process was unresponsive: an event it waits for never comes (on macOS a run-loop mach_msg is also how a synchronous XPC or driver call waits)' : ''
          }`,
        );
      } else if (cls === 'sleep' || cls === 'child') {
        push('waiting', 'info', `the main thread ${cls === 'sleep' ? 'sleeps' : 'waits for a child process'} in ${whereWords(t)} ${held}`);
      } else {
        push('stalled', proven ? 'critical' : 'warning', `stalled in ${whereWords(t)} ${held}: ${waitHint(t)}`);
      }
    });
    const summary: ProcessSummary = { pid: p.pid, name: p.name, threads: p.threads.length, idle, cpuNs: 0, windowMs: facts?.sampledMs ?? 0 };
    processes.push(summary);
  }
  for (const [lock, waiters] of sameLock) {
    if (waiters.length <= 1) continue;
    // Each waiter is a finding of its own; the note names the first few, not a megabyte of them.
    const named = waiters.length > MAX_NAMED_WAITERS ? `${waiters.slice(0, MAX_NAMED_WAITERS).join('; ')}; and ${waiters.length - MAX_NAMED_WAITERS} more` : waiters.join('; ');
    notes.push(`${plural(waiters.length, 'task')} wait on ${lock}: one holder blocks them all (${named})`);
  }
  if (snapshot.source === undefined) notes.push('a live snapshot proves no durations by itself: take two and use diff, or watch');
  findings.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || a.kind.localeCompare(b.kind) || a.subject.localeCompare(b.subject));
  const verdict = verdictOf(findings);
  return { verdict, findings, processes, accelerators: { before: snapshot.accelerators.length, after: snapshot.accelerators.length }, windowMs, notes };
}
