/**
 * `spindump` text (and the .hang/.spin reports it writes), heavy and `-timeline` forms:
 *
 *     Duration:        1.30s (process was unresponsive for 82 seconds before sampling)
 *     Steps:           13 (100ms sampling interval)
 *     Process:         QGroundControl [89978]
 *     Note:            Unresponsive
 *       Thread 0xbb80c    DispatchQueue 10    1000 samples (1-1000)    priority 37
 *       1000  start_wqthread + 13 (libsystem_pthread.dylib + 5085) [0x7fff8cefb3dd]
 *         1000  semaphore_wait_trap + 10 (libsystem_kernel.dylib + 70938) [0x7fff8c7ea51a]
 *          *1000  semaphore_wait_continue + 0 (kernel + 1353536) [0xffffff800034a740]
 *
 * `*` marks a kernel frame; the timeline form ends frame lines with the sample range.
 */
import type { Frame } from '../../types';
import { CallTree } from './call-tree';
import { LineTrail } from './line-trail';
import { countAt, idAt, MAX_PID, newProcess, newReport, newThread, offsetOf, parseAddress, UNKNOWN_TID, type ParsedProcess, type ParsedReport, type ParsedThread } from './parsed';

const FRAME_LINE = /^(\s*)(\*?)(\d+)\s+(\S.*)$/;
const THREAD_HEADER = /^\s+Thread 0x([0-9a-fA-F]+)\b(.*)$/;
const HEADER_FIELD = /^([A-Z][A-Za-z /()]*?):\s*(.*)$/;
const RANGE_TAIL = / (\d+)-(\d+)$/;
const BLOCKED_BY = /\(blocked by ([^)]*(?:\)[^)]*)*)\)\s*$/;

/** `SYMBOL + OFF (WHERE) [0xADDR] TAIL` → a frame and what follows it. */
export function spindumpFrame(rest: string, line: string = rest): { frame: Frame; tail: string } | null {
  const bracket = rest.lastIndexOf(' [0x');
  if (bracket < 0) {
    // `<truncated backtrace>` (with a timeline range) has no image and no address.
    if (!rest.startsWith('<truncated backtrace>')) return null;
    return { frame: { pc: null, module: null, offset: null, symbol: '<truncated backtrace>', symbolOffset: null, text: line }, tail: rest.slice(21) };
  }
  const end = rest.indexOf(']', bracket);
  if (end < 0) return null;
  const pc = parseAddress(rest.slice(bracket + 4, end));
  const head = rest.slice(0, bracket);
  let symbolPart = head;
  let module: string | null = null;
  let offset: number | null = null;
  if (head.endsWith(')')) {
    const open = head.lastIndexOf(' (');
    if (open >= 0) {
      symbolPart = head.slice(0, open);
      const where = head.slice(open + 2, -1);
      // "libsystem_kernel.dylib + 70938", "pthread_mutex.c:1490 in libsystem_pthread.dylib + 6812", "in CoreFoundation".
      const inImage = where.lastIndexOf(' in ');
      const image = /^(.*?)(?: \+ (\d+))?$/.exec(inImage >= 0 ? where.slice(inImage + 4) : where.replace(/^in /, '')) as RegExpExecArray;
      module = image[1];
      offset = image[2] === undefined ? null : offsetOf(image[2]);
    }
  }
  const sym = /^(.*?)(?: \+ (\d+))?$/.exec(symbolPart.trim()) as RegExpExecArray;
  return {
    frame: { pc, module, offset, symbol: sym[1], symbolOffset: sym[2] === undefined ? null : offsetOf(sym[2]), text: line },
    tail: rest.slice(end + 1),
  };
}

function parseThreadHeader(tid: number, tail: string, line: number): { thread: ParsedThread; complete: boolean } {
  const thread = newThread(tid, false, line);
  const samples = /(\d+) samples? \((\d+)-(\d+)\)/.exec(tail);
  if (samples !== null) thread.samples = countAt(samples[1], line, 'sample count');
  const named = /Thread name "([^"]*)"/.exec(tail);
  if (named !== null) thread.name = named[1];
  const queueNew = /DispatchQueue "([^"]*)"\((\d+)\)/.exec(tail);
  const queueOld = /DispatchQueue (\d+)\b/.exec(tail);
  if (queueNew !== null) {
    thread.queue = queueNew[1];
    thread.main = queueNew[1] === 'com.apple.main-thread';
  } else if (queueOld !== null) {
    thread.queue = `DispatchQueue ${queueOld[1]}`;
    thread.main = queueOld[1] === '1';
  }
  return { thread, complete: samples !== null };
}

function seconds(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*s/.exec(text);
  return m === null ? null : Number(m[1]) * 1000;
}

interface OpenThread {
  thread: ParsedThread;
  tree: CallTree;
  /** Old spindumps print the kernel stack as its own tree under "Kernel stack:". */
  kernelTree: CallTree;
  process: ParsedProcess;
  kernelSection: boolean;
}

export function parseSpindump(lines: string[]): ParsedReport {
  const report = newReport('spindump', 'darwin', lines.length);
  let target: ParsedProcess | null = null;
  let process: ParsedProcess | null = null;
  let durationMs: number | null = null;
  let steps: number | null = null;
  let unresponsiveMs: number | null = null;
  const reportNotes: string[] = [];
  let open: OpenThread | null = null;
  const finished: OpenThread[] = [];
  let heaviestMain: { tree: CallTree; line: number } | null = null;
  let inHeaviest = false;
  const trail = new LineTrail(lines);
  let otherPaths = 0;

  // A full-system spindump holds hundreds of processes: find them by pid, not by a scan.
  const byPid = new Map<number | null, ParsedProcess>();
  const processFor = (pid: number | null, name: string | null): ParsedProcess => {
    const known = byPid.get(pid);
    if (known !== undefined && (pid !== null || name === null || known.name === null || known.name === name)) {
      if (known.name === null) known.name = name;
      return known;
    }
    const fresh = newProcess('spindump', pid, name);
    report.processes.push(fresh);
    byPid.set(pid, fresh);
    return fresh;
  };
  const close = (): void => {
    if (open !== null) finished.push(open);
    open = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const text = lines[i];
    const trimmed = text.trim();
    if (trimmed === '') {
      inHeaviest = false;
      continue;
    }
    if (trimmed.startsWith('Heaviest stack for the main thread')) {
      close();
      inHeaviest = true;
      heaviestMain = { tree: new CallTree(), line: i + 1 };
      continue;
    }
    if (trimmed === 'Binary Images:') {
      close();
      process = null;
      continue;
    }
    const header = THREAD_HEADER.exec(text);
    if (header !== null) {
      close();
      inHeaviest = false;
      process ??= target ?? processFor(null, null);
      const owner = process;
      const parsed = parseThreadHeader(idAt(`0x${header[1]}`, i + 1, 'thread id'), header[2], i + 1);
      if (!parsed.complete) trail.cutShort(i);
      open = { thread: parsed.thread, tree: new CallTree(), kernelTree: new CallTree(), process: owner, kernelSection: false };
      continue;
    }
    if (open !== null && (trimmed === 'Kernel stack:' || trimmed === 'User stack:')) {
      open.kernelSection = trimmed === 'Kernel stack:';
      continue;
    }
    const frameLine = FRAME_LINE.exec(text);
    if (frameLine !== null && !/^\d+\s*$/.test(trimmed)) {
      const parsed = spindumpFrame(frameLine[4], trimmed);
      if (parsed === null) {
        trail.cutShort(i);
        continue;
      }
      const kernel = frameLine[2] === '*' || (open?.kernelSection ?? false);
      const count = countAt(frameLine[3], i + 1, 'sample count');
      const depth = frameLine[1].length + frameLine[2].length;
      parsed.frame.samples = count;
      const blockedBy = BLOCKED_BY.exec(parsed.tail);
      if (inHeaviest && heaviestMain !== null) {
        // A flat list, outermost first: each line is the callee of the one before.
        heaviestMain.tree.add(heaviestMain.tree.size, count, parsed.frame, kernel);
        continue;
      }
      if (open === null) {
        trail.headlessFrame(i);
        process ??= target ?? processFor(null, null);
        open = { thread: newThread(UNKNOWN_TID, false, i + 1), tree: new CallTree(), kernelTree: new CallTree(), process, kernelSection: false };
      }
      if (open.kernelSection) open.kernelTree.add(depth, count, parsed.frame);
      else open.tree.add(depth, count, parsed.frame, kernel);
      if (blockedBy !== null && open.thread.blockedBy === undefined) open.thread.blockedBy = parseBlockedBy(blockedBy[1], i + 1);
      continue;
    }
    if (trimmed.startsWith('<')) continue; // `<process frontmost, thread QoS …>` lines
    const field = HEADER_FIELD.exec(trimmed);
    if (field === null) continue;
    close();
    inHeaviest = false;
    const [, key, value] = field;
    switch (key) {
      case 'Process': {
        const m = /^(.*?) \[(\d+)\]/.exec(value);
        process = m === null ? processFor(null, value) : processFor(idAt(m[2], i + 1, 'pid', MAX_PID), m[1]);
        break;
      }
      case 'Command':
        target = processFor(target?.pid ?? null, value);
        break;
      case 'PID':
        if (/^\d+$/.test(value)) {
          const pid = idAt(value, i + 1, 'pid', MAX_PID);
          if (target === null) target = processFor(pid, null);
          else if (target.pid === null) {
            byPid.delete(null);
            target.pid = pid;
            byPid.set(target.pid, target);
          }
        }
        break;
      case 'Date/Time':
        report.takenAt = value;
        break;
      case 'OS Version':
        report.osRelease = value;
        break;
      case 'Architecture':
        if (process === null && report.arch === '') report.arch = value;
        break;
      case 'Hardware model':
      case 'Hardware Model':
        report.model = value;
        break;
      case 'Duration': {
        durationMs = seconds(value);
        const late = /unresponsive for (\d+(?:\.\d+)?) seconds before sampling/.exec(value);
        if (late !== null) unresponsiveMs = Number(late[1]) * 1000;
        break;
      }
      case 'Steps': {
        const m = /^(\d+)/.exec(value);
        if (m !== null) steps = countAt(m[1], i + 1, 'step count');
        break;
      }
      case 'Num samples': {
        const m = /^(\d+)/.exec(value);
        if (m !== null && process !== null) process.facts.samples = countAt(m[1], i + 1, 'sample count');
        break;
      }
      case 'Event':
        reportNotes.push(`Event: ${value}`);
        break;
      case 'Note':
        if (process !== null) process.facts.notes.push(value);
        else reportNotes.push(value);
        break;
    }
  }
  close();
  trail.reportHeadless(report);
  trail.reportCut(report, 'a line cut before its image and address');

  for (const t of finished) {
    const path = t.tree.heaviest();
    t.thread.stack = path.stack;
    t.thread.kernelFrames = t.kernelTree.size > 0 ? t.kernelTree.heaviest().stack : path.kernelFrames;
    otherPaths += t.tree.otherPaths + t.kernelTree.otherPaths;
    const total = t.process.facts.samples ?? steps;
    if (t.thread.samples === null && t.tree.size > 0) t.thread.samples = t.tree.rootCount;
    const all = total !== null && t.thread.samples === total && path.leafCount === total && t.tree.size > 0;
    t.thread.heldMs = all && durationMs !== null ? durationMs : null;
    t.process.threads.push(t.thread);
  }
  if (heaviestMain !== null && heaviestMain.tree.size > 0) {
    const owner = target ?? report.processes[0] ?? processFor(null, null);
    if (!owner.threads.some((t) => t.main)) {
      // Only the heaviest stack of the main thread survived (the report was cut before its thread sections).
      const thread = newThread(0, false, heaviestMain.line);
      thread.main = true;
      const path = heaviestMain.tree.heaviest();
      thread.stack = path.stack;
      thread.kernelFrames = path.kernelFrames;
      thread.samples = heaviestMain.tree.rootCount;
      thread.heldMs = steps !== null && path.leafCount === steps && durationMs !== null ? durationMs : null;
      owner.threads.unshift(thread);
      report.limits.push({
        subject: `pid ${owner.pid ?? 'unknown'}`,
        field: 'tid',
        code: 'ENODATA',
        reason: "only the report's \"Heaviest stack for the main thread\" is in the paste, not the main thread's own section, so its thread id is unknown (0 stands for it)",
      });
    }
  }
  for (const p of report.processes) {
    if (p.facts.samples === null) p.facts.samples = steps;
    p.facts.sampledMs = durationMs;
    if (p === target || report.processes.length === 1) {
      p.facts.unresponsiveMs = unresponsiveMs;
      p.facts.notes = reportNotes.concat(p.facts.notes); // not unshift(...): a report may carry more notes than a call takes arguments
    }
    // The main thread first, as a live macOS sample lists it; a thread whose header was cut last.
    const cut = p.threads.findIndex((t) => t.tid === UNKNOWN_TID);
    if (cut >= 0) p.threads.push(...p.threads.splice(cut, 1));
    const main = p.threads.findIndex((t) => t.main);
    if (main > 0) p.threads.unshift(...p.threads.splice(main, 1));
  }
  if (otherPaths > 0) {
    report.limits.push({
      subject: 'report',
      field: 'stack',
      code: 'ENOTSUP',
      reason: `each thread's stack is its heaviest call path; ${otherPaths} lighter path(s) are not in the stacks`,
    });
  }
  return report;
}

/** "turnstile waiting for lldb-rpc-server [12692] [unique pid 112195] thread 0x2c4a6c" → who. */
function parseBlockedBy(text: string, line: number): { pid: number | null; tid: number | null; name: string | null; text: string } {
  const who = /(?:waiting for|held by|owned by) (.*?) \[(\d+)\]/.exec(text);
  const thread = /thread 0x([0-9a-fA-F]+)/.exec(text);
  return {
    pid: who === null ? null : idAt(who[2], line, 'pid', MAX_PID),
    tid: thread === null ? null : idAt(`0x${thread[1]}`, line, 'thread id'),
    name: who === null ? null : who[1],
    text,
  };
}
