/**
 * The peer rule: a thread that waits on a pipe, a fifo or a socket waits for another process,
 * and is judged by it once every process of the sample has been judged (progress.ts defers
 * such cases to the end of a step). Who is at the other end comes from the snapshot
 * (BlockedIn.peer, src/peer.ts); without it, only the wait itself.
 */
import { describeWait } from './calls';
import { formatMs } from './format';
import { IDLE, threadSubject, waitHint, type Case } from './thread-rules';
import type { Finding, Severity } from './types';

/** What a wait on a process needs to know of it, once it has been judged. */
export interface PeerFacts {
  /** Threads that progressed within the stall window. */
  progressing: number;
  /** Its main thread waits for a child process (wait4, waitid). */
  waitsForChild: boolean;
}

/** "pid 4242 (postgres)", "pids 10, 11 (python3, python3)". */
function peerNames(pids: Array<{ pid: number; name: string }>): string {
  if (pids.length === 1) return `pid ${pids[0].pid} (${pids[0].name})`;
  return `pids ${pids.map((p) => p.pid).join(', ')} (${pids.map((p) => p.name).join(', ')})`;
}

/**
 * A thread waiting on a pipe, fifo or socket, judged by who is at the other end: nobody (it
 * waits forever), a hung process (it is stuck with it), one that works (it waits for that work),
 * or one that is idle itself.
 */
export function peerOutcome(
  c: Case,
  stallMs: number,
  expectExit: boolean,
  hungBy: Map<number, Finding>,
  cpuBy: Map<number, number>,
  facts: Map<number, PeerFacts>,
): Finding | typeof IDLE {
  const t = c.t;
  const where = describeWait(t);
  const peer = t.blockedIn?.peer ?? c.peer;
  const expected = c.main && expectExit;
  const finding = (severity: Severity, message: string): Finding => ({
    kind: severity === 'info' ? 'waiting' : 'stalled',
    severity,
    subject: threadSubject(c.p, t, c.main),
    ref: { pid: c.p.pid, tid: t.tid },
    message,
    evidence: [
      { field: 'blockedIn.call', before: t.blockedIn?.call ?? null, after: t.blockedIn?.call ?? null },
      ...(t.blockedIn?.target !== undefined ? [{ field: 'blockedIn.target', before: t.blockedIn.target, after: t.blockedIn.target }] : []),
      ...(peer?.remote !== undefined ? [{ field: 'blockedIn.peer.remote', before: null, after: peer.remote }] : []),
      ...(peer?.pids !== undefined ? [{ field: 'blockedIn.peer.pids', before: null, after: peer.pids.map((p) => p.pid).join(',') }] : []),
    ],
    durationMs: c.heldMs,
  });
  const address = peer?.remote !== undefined ? ` at ${peer.remote}` : '';
  const pids = peer?.pids;
  if (/^(wait_for_partner|fifo_open)/.test(t.wchan ?? '')) {
    // Opening a fifo waits until a process opens the other side: nobody holds it yet.
    if (expected) {
      return finding(
        'critical',
        `stalled in ${where} for at least ${formatMs(c.heldMs)}: ${waitHint(t)}; no process has it open from the other side, so the command cannot go on`,
      );
    }
    return c.sameBase ? IDLE : finding('info', `waits in ${where} for at least ${formatMs(c.heldMs)}: ${waitHint(t)}`);
  }
  if (pids !== undefined && pids.length === 0 && peer?.kind === 'pipe') {
    return finding(
      c.main ? 'critical' : 'warning',
      `waits in ${where} for at least ${formatMs(c.heldMs)}, and no process holds the other end of the pipe: nothing will ever come (or be read)`,
    );
  }
  if (pids !== undefined && pids.length > 0) {
    const others = pids.filter((x) => x.pid !== c.p.pid);
    const hung = others.map((x) => hungBy.get(x.pid)).find((f) => f !== undefined);
    if (hung !== undefined) {
      return finding(
        c.main ? 'critical' : 'warning',
        `waits in ${where} for at least ${formatMs(c.heldMs)} on ${peerNames(others)}${address}, which is hung: ${hung.subject}: ${hung.message}`,
      );
    }
    // Its parent holds the other end and waits for it to exit: neither can go on.
    const parent = others.find((x) => x.pid === c.p.ppid && facts.get(x.pid)?.waitsForChild === true && (facts.get(x.pid)?.progressing ?? 0) === 0);
    if (parent !== undefined) {
      return finding(
        'critical',
        `waits in ${where} for at least ${formatMs(c.heldMs)} on ${peerNames([parent])}, its parent, which waits for it to exit: a deadlock between the two processes (the parent must read or close its end before it waits)`,
      );
    }
    const sampled = pids.filter((x) => facts.has(x.pid));
    const working = sampled.find((x) => (facts.get(x.pid)?.progressing ?? 0) > 0 || (cpuBy.get(x.pid) ?? 0) > 0);
    if (working !== undefined) {
      if (!expected) return IDLE;
      return finding('info', `waits in ${where} for ${peerNames([working])}${address}, which is working: the command waits for it`);
    }
    if (sampled.length > 0) {
      if (!expected) return IDLE;
      return finding(
        'warning',
        `waits in ${where} for at least ${formatMs(c.heldMs)} on ${peerNames(sampled)}${address}, which is idle itself (nothing of it progressed for ${formatMs(stallMs)}): nothing is coming, but the command should have finished`,
      );
    }
    if (expected) {
      return finding('warning', `waits in ${where} for at least ${formatMs(c.heldMs)} on ${peerNames(others.length > 0 ? others : pids)}${address} (not sampled): the command should have finished`);
    }
    return c.sameBase ? IDLE : finding('info', `waits in ${where} on ${peerNames(others.length > 0 ? others : pids)}${address}; it did not wait there in the baseline`);
  }
  // Nobody could say who is at the other end.
  if (expected) {
    return finding(
      'warning',
      `waits in ${where}${address} for at least ${formatMs(c.heldMs)}: ${c.t.blockedIn !== null ? waitHint(c.t) : 'the call is unknown'}; the other end was not found, and the command should have finished`,
    );
  }
  if (c.sameBase) return IDLE;
  return finding(c.main && c.baseKnown ? 'warning' : 'info', `waits in ${where}${address} for at least ${formatMs(c.heldMs)}: ${waitHint(c.t)}; it did not wait there in the baseline`);
}

