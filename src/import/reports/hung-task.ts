/**
 * Linux hung_task and sysrq-w (Show Blocked State) reports from dmesg, journalctl or syslog:
 *
 *     INFO: task nvc:[driver]:5403 blocked for more than 120 seconds.
 *     task:python3.11      state:D stack:    0 pid:15277 ppid: 15257 flags:0x00000002
 *     nvc:[driver]    D ffff883f2cc43bd8     0  5403   5396 0x00000084      (before 4.14)
 *     Call Trace:
 *      [<ffffffffa09c376e>] uvm_gpu_retain_by_uuid+0x1e/0x40 [nvidia_uvm]
 *      ? alloc_internal.part.0+0x24/0x30 [nvidia_uvm]
 *
 * Every task becomes a process of one thread (the report names a task, not its thread
 * group); a `?` frame is a stale return address the unwinder could not confirm.
 */
import type { Frame, ThreadState } from '../../types';
import { LineTrail } from './line-trail';
import { idAt, MAX_PID, newProcess, newReport, newThread, parseAddress, type ParsedProcess, type ParsedReport, type ParsedThread } from './parsed';

const SYSLOG = /^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?) \S+ kernel: ?/;
/** dmesg timestamps ("[  721.028170]", "[  +0.000049]", "[Wed Sep 26 00:30:18 2018]"), caller ids ("[T368845]"), log levels ("<6>"). */
const BRACKETS = /^(?:<\d>)?(?:\[[^\]<\n]{0,64}\] ?)*/;
const INFO = /^INFO: task (.+):(\d+) blocked for more than (\d+) seconds/;
const TASK_NEW = /^task:(.{1,16}?)\s+state:([RSDTtZXIWPK])/;
const TASK_OLD = /^(.{1,16}?)\s+([RSDTtZXIWPK])\s+(?:[0-9a-f]{8,16}\s+)?\d+\s+(\d+)\s+\d+\s+0x[0-9a-f]+$/;
const FRAME = /^(?:\[<([0-9a-f]+)>\]\s+)?(\? )?([^\s+]+)\+0x([0-9a-f]+)\/0x([0-9a-f]+)(?: \[([\w-]+)\])?/;
const ARM_FRAME = /^\[<([0-9a-f]+)>\] \(([^)\s]+)\) from \[<[0-9a-f]+>\] \(([^)\s]+)\)$/;
const BARE_SYMBOL = /^(?:\[<([0-9a-f]+)>\]\s+)?(\? )?([A-Za-z_][\w.]*)$/;

const STATES: Record<string, ThreadState> = {
  D: 'uninterruptible',
  R: 'running',
  S: 'sleeping',
  I: 'sleeping',
  T: 'stopped',
  t: 'stopped',
  Z: 'zombie',
  X: 'zombie',
  W: 'unknown',
  P: 'unknown',
  K: 'unknown',
};

/** The message without its dmesg, journal or syslog prefix. */
export function kernelMessage(line: string): string {
  let text = line;
  const syslog = SYSLOG.exec(text);
  if (syslog !== null) text = text.slice(syslog[0].length);
  const brackets = BRACKETS.exec(text) as RegExpExecArray;
  return text.slice(brackets[0].length).trim();
}

function symbolFrame(symbol: string, offset: string | undefined, pc: string | undefined, module: string | undefined, unreliable: boolean, text: string): Frame {
  const frame: Frame = {
    pc: pc === undefined ? null : parseAddress(pc),
    module: module ?? null,
    offset: null,
    symbol,
    symbolOffset: offset === undefined ? null : parseAddress(offset),
    text,
  };
  if (unreliable) frame.unreliable = true;
  return frame;
}

export function parseHungTask(lines: string[]): ParsedReport {
  const report = newReport('hung-task', 'linux', lines.length);
  type Task = { process: ParsedProcess; thread: ParsedThread };
  // Assigned inside startTask too, so never narrowed to null by the compiler.
  let task = null as Task | null;
  let inTrace = false;
  let armCaller: Frame | null = null;
  let pending: { name: string; pid: number; seconds: number; line: number } | null = null;
  // A line cut short here is a frame without its offset: the paste may have been cut there.
  const trail = new LineTrail(lines, kernelMessage);

  const endTrace = (): void => {
    if (task !== null && armCaller !== null) task.thread.kernelFrames.push(armCaller);
    armCaller = null;
    inTrace = false;
  };
  const startTask = (name: string, pid: number, state: string, line: number): void => {
    endTrace();
    const process = newProcess('hung-task', pid, name.trim());
    const thread = newThread(pid, false, line);
    thread.name = name.trim();
    // A task line names one thread; whether it leads its thread group is not in the report.
    thread.state = STATES[state]; // the task-line patterns admit only these letters
    if (pending !== null && pending.pid === pid) {
      thread.heldMs = pending.seconds * 1000;
      process.facts.notes.push(`blocked for more than ${pending.seconds} seconds (hung_task)`);
    }
    pending = null;
    process.threads.push(thread);
    report.processes.push(process);
    task = { process, thread };
  };

  for (let i = 0; i < lines.length; i++) {
    const message = kernelMessage(lines[i]);
    if (message === '') continue;
    const info = INFO.exec(message);
    if (info !== null) {
      endTrace();
      task = null as Task | null;
      // Kernels before 4.14 print the task line after this one; later ones print `task:NAME state:D`.
      pending = { name: info[1], pid: idAt(info[2], i + 1, 'pid', MAX_PID), seconds: Number(info[3]), line: i + 1 };
      continue;
    }
    const fresh = TASK_NEW.exec(message);
    if (fresh !== null) {
      const pid = /\bpid:\s*(\d+)/.exec(message);
      if (pid !== null) startTask(fresh[1], idAt(pid[1], i + 1, 'pid', MAX_PID), fresh[2], i + 1);
      continue;
    }
    const old = TASK_OLD.exec(message);
    if (old !== null) {
      startTask(old[1], idAt(old[3], i + 1, 'pid', MAX_PID), old[2], i + 1);
      continue;
    }
    if (message === 'Call Trace:' || message === 'Backtrace:') {
      if (task === null && pending !== null) startTask(pending.name, pending.pid, 'D', pending.line);
      inTrace = true;
      continue;
    }
    if (message === '<TASK>' || message === '</TASK>') continue;
    if (/^Workqueue: /.test(message) && task !== null) {
      task.process.facts.notes.push(message);
      continue;
    }
    if (/^(?:Not tainted|Tainted:)/.test(message)) {
      const release = /\s(\d+\.\d+\S*) #/.exec(message);
      if (release !== null && report.osRelease === '') report.osRelease = release[1];
      continue;
    }
    if (/^sys ?rq ?: Show Blocked State/i.test(message)) {
      report.limits.push({ subject: 'report', field: 'heldMs', code: 'ENOTSUP', reason: 'a sysrq-w (Show Blocked State) dump shows who is blocked, not for how long' });
      continue;
    }
    const frame = FRAME.exec(message);
    const arm = frame === null ? ARM_FRAME.exec(message) : null;
    const bare = frame === null && arm === null && inTrace ? BARE_SYMBOL.exec(message) : null;
    if (frame === null && arm === null && bare === null) {
      // Registers, stack words, other kernel messages: the trace is over unless they sit inside it.
      if (!/^(?:[A-Z0-9]{2,3}:|r\d+:|[0-9a-f]{8,16}(?: [0-9a-f]{8,16})*$|Stack :|\.\.\.|Code:|Modules linked in)/.test(message)) endTrace();
      continue;
    }
    if (task === null || !inTrace) {
      trail.headlessFrame(i);
      continue;
    }
    const frames = task.thread.kernelFrames;
    if (frame !== null) frames.push(symbolFrame(frame[3], frame[4], frame[1], frame[6], frame[2] !== undefined, message));
    else if (arm !== null) {
      frames.push(symbolFrame(arm[2], undefined, arm[1], undefined, false, message));
      const caller = /^(.*?)\+0x([0-9a-f]+)\/0x[0-9a-f]+$/.exec(arm[3]);
      armCaller = symbolFrame(caller === null ? arm[3] : caller[1], caller?.[2], undefined, undefined, false, message);
    } else if (bare !== null) {
      frames.push(symbolFrame(bare[3], undefined, bare[1], undefined, bare[2] !== undefined, message));
      trail.cutShort(i);
    }
  }
  endTrace();
  if (pending !== null) {
    // The INFO line survived but the paste ends before the task's own lines.
    const p: { name: string; pid: number; seconds: number; line: number } = pending;
    startTask(p.name, p.pid, 'D', p.line);
  }
  trail.reportHeadless(report, false);
  if (!trail.lastComplete) {
    report.limits.push({
      subject: 'report',
      field: 'kernelStack',
      code: 'ENODATA',
      reason: `line ${trail.lastLine} ends the paste with a frame that has no +0x…/0x… offset (${JSON.stringify(trail.lastText.slice(0, 80))}): the paste may be cut there`,
      hint: 'paste the whole dmesg block, up to the next task or the end of the trace',
    });
  }
  if (report.processes.length > 0) {
    report.limits.push({
      subject: 'report',
      field: 'pid',
      code: 'ENOTSUP',
      reason: 'a hung_task or sysrq-w report names tasks (threads): each pid is the thread id, and the thread group it belongs to is not in the report',
    });
  }
  return report;
}
