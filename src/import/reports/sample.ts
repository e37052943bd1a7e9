/**
 * macOS `sample <pid>` output: the header block, "Call graph:" (a tree per thread with
 * sample counts), "Sort by top of stack", "Binary Images:".
 *
 *     Analysis of sampling op (pid 46825) every 1 millisecond
 *     Call graph:
 *         2464 Thread_1760964   DispatchQueue_1: com.apple.main-thread  (serial)
 *         + 2464 _pthread_cond_wait  (in libsystem_pthread.dylib) + 1228  [0x18986e5fc]
 *         +   2464 __psynch_cvwait  (in libsystem_kernel.dylib) + 8  [0x18983106c]
 */
import type { Frame } from '../../types';
import { CallTree } from './call-tree';
import { LineTrail } from './line-trail';
import { countAt, idAt, MAX_PID, newProcess, newReport, newThread, offsetOf, parseAddress, UNKNOWN_TID, type ParsedReport, type ParsedThread } from './parsed';

/** A tree line: tree markers, the count, the rest. The markers and the count never overlap, so this cannot backtrack. */
const TREE_LINE = /^([ +!:|]*)(\d+) (.*)$/;
const THREAD_HEADER = /^Thread_(\d+)(.*)$/;
const FRAME_TAIL = /^(?: \+ (\d+))?\s+\[0x([0-9a-fA-F]+)[\],]/;
const ANALYSIS = /^Analysis of sampling (.*) \(pid (\d+)\) every (\d+(?:\.\d+)?) milliseconds?/;
const HEADER_FIELD = /^([A-Z][A-Za-z /()]*?):\s+(.*)$/;
const TRAILING_COUNT = /\s(\d+)$/;

/** `SYMBOL  (in MODULE) + OFF  [0xADDR]` → a frame; null when the line is not one (or is cut). */
export function sampleFrame(rest: string, line: string = rest): Frame | null {
  const at = rest.lastIndexOf('  (in ');
  if (at < 0) return null;
  const close = rest.indexOf(')', at + 6);
  if (close < 0) return null;
  const tail = FRAME_TAIL.exec(rest.slice(close + 1));
  if (tail === null) return null;
  const module = rest.slice(at + 6, close);
  return {
    pc: parseAddress(tail[2]),
    module: module === '<unknown binary>' ? null : module,
    offset: null,
    symbol: rest.slice(0, at).trim(),
    symbolOffset: tail[1] === undefined ? null : offsetOf(tail[1]),
    text: line.trim(),
  };
}

interface ThreadTrees {
  thread: ParsedThread;
  tree: CallTree;
  samples: number;
}

function threadFromHeader(tid: number, tail: string, line: number): ParsedThread {
  const thread = newThread(tid, false, line);
  const rest = tail.trim();
  const queue = /^DispatchQueue_\d+: (.*?)(?:\s+\((?:serial|concurrent)\))?$/.exec(rest);
  if (queue !== null) thread.queue = queue[1];
  else if (rest.startsWith(':')) thread.name = rest.slice(1).trim() || null;
  thread.main = thread.queue === 'com.apple.main-thread';
  return thread;
}

export function parseSample(lines: string[]): ParsedReport {
  const report = newReport('sample', 'darwin', lines.length);
  const process = newProcess('sample');
  report.processes.push(process);
  let intervalMs: number | null = null;
  let section: 'header' | 'graph' | 'top' | 'done' = 'header';
  const byTid = new Map<number, ThreadTrees[]>();
  const order: number[] = [];
  let current: ThreadTrees | null = null;
  let cutOff: ThreadTrees | null = null;
  const trail = new LineTrail(lines);
  const topOfStack: { symbol: string; module: string | null; samples: number }[] = [];

  for (let i = 0; i < lines.length; i++) {
    const text = lines[i];
    const trimmed = text.trim();
    if (trimmed === '') continue;
    if (trimmed === 'Call graph:') {
      section = 'graph';
      continue;
    }
    if (trimmed.startsWith('Sort by top of stack')) {
      section = 'top';
      continue;
    }
    if (trimmed === 'Binary Images:') {
      section = 'done';
      continue;
    }
    if (section === 'done') continue;
    if (trimmed.startsWith('Total number in stack')) {
      section = 'top';
      continue;
    }
    const analysis = ANALYSIS.exec(trimmed);
    if (analysis !== null) {
      process.name = analysis[1];
      process.pid = idAt(analysis[2], i + 1, 'pid', MAX_PID);
      intervalMs = Number(analysis[3]);
      continue;
    }
    const tree = TREE_LINE.exec(text);
    if (tree !== null && section !== 'top') {
      section = 'graph';
      const depth = tree[1].length;
      const count = countAt(tree[2], i + 1, 'sample count');
      const header = THREAD_HEADER.exec(tree[3]);
      if (header !== null) {
        const tid = idAt(header[1], i + 1, 'thread id');
        const thread = threadFromHeader(tid, header[2], i + 1);
        current = { thread, tree: new CallTree(), samples: count };
        let seen = byTid.get(tid);
        if (seen === undefined) {
          seen = [];
          byTid.set(tid, seen);
          order.push(tid);
        }
        seen.push(current);
        continue;
      }
      const frame = sampleFrame(tree[3], text.slice(depth));
      if (frame === null) {
        trail.cutShort(i);
        continue;
      }
      frame.samples = count;
      if (current === null) {
        trail.headlessFrame(i);
        cutOff ??= { thread: newThread(UNKNOWN_TID, false, i + 1), tree: new CallTree(), samples: 0 };
        cutOff.tree.add(depth, count, frame);
        continue;
      }
      current.tree.add(depth, count, frame);
      continue;
    }
    if (section === 'top') {
      // "        __workq_kernreturn  (in libsystem_kernel.dylib)        4443"
      const line = text.trimEnd();
      const count = TRAILING_COUNT.exec(line);
      if (count !== null) {
        const entry = line.slice(0, count.index).trim();
        const image = entry.lastIndexOf('(in ');
        const close = entry.indexOf(')', image);
        topOfStack.push({
          symbol: image < 0 ? entry : entry.slice(0, image).trim(),
          module: image < 0 || close < 0 ? null : entry.slice(image + 4, close),
          samples: countAt(count[1], i + 1, 'sample count'),
        });
      }
      continue;
    }
    if (section === 'graph') {
      trail.cutShort(i); // "    +": a tree line cut before its count
      continue;
    }
    if (section === 'header') {
      const field = HEADER_FIELD.exec(trimmed);
      if (field === null) continue;
      const [, key, value] = field;
      if (key === 'Process') {
        const m = /^(.*) \[(\d+)\]$/.exec(value);
        if (m !== null) {
          process.name = m[1];
          process.pid = idAt(m[2], i + 1, 'pid', MAX_PID);
        }
      } else if (key === 'Date/Time') report.takenAt = value;
      else if (key === 'OS Version') report.osRelease = value;
      else if (key === 'Code Type') report.arch = value.toLowerCase().replace(/-64$/, '_64');
      else if (key === 'Hardware Model') report.model = value;
    }
  }
  trail.reportHeadless(report);
  if (section === 'graph') trail.reportCut(report, 'a frame line without its module and address');

  let total = 0;
  let otherPaths = 0;
  for (const tid of order) {
    const trees = byTid.get(tid) as ThreadTrees[];
    // One thread can appear under several dispatch queues (one tree each): its samples add up, its stack is the heaviest tree's.
    let heaviest = trees[0];
    let samples = 0;
    for (const t of trees) {
      samples += t.samples;
      if (t.samples > heaviest.samples) heaviest = t;
      otherPaths += t.tree.otherPaths;
    }
    otherPaths += trees.length - 1;
    const thread = heaviest.thread;
    if (trees.some((t) => t.thread.main)) thread.main = true;
    if (thread.queue === null) thread.queue = trees.find((t) => t.thread.queue !== null)?.thread.queue ?? null;
    const path = heaviest.tree.heaviest();
    thread.stack = path.stack;
    thread.samples = samples;
    total = Math.max(total, samples);
    // Every sample of the thread in one innermost frame: it sat there the whole time it was sampled.
    thread.heldMs = intervalMs !== null && path.leafCount === samples && path.stack.length > 0 ? samples * intervalMs : null;
    process.threads.push(thread);
  }
  if (cutOff !== null) {
    // Listed last: a live macOS sample lists the main thread first, and this one is not known to be it.
    const path = cutOff.tree.heaviest();
    cutOff.thread.stack = path.stack;
    cutOff.thread.samples = cutOff.tree.rootCount;
    otherPaths += cutOff.tree.otherPaths;
    process.threads.push(cutOff.thread);
  }
  // sample lists the main thread first; a paste that starts mid-thread does not show which was first.
  if (trail.headlessFrom === 0 && process.threads.length > 0 && !process.threads.some((t) => t.main)) process.threads[0].main = true;
  const main = process.threads.findIndex((t) => t.main);
  if (main > 0) process.threads.unshift(...process.threads.splice(main, 1));
  process.facts.samples = total > 0 ? total : null;
  process.facts.sampledMs = intervalMs !== null && total > 0 ? total * intervalMs : null;
  if (topOfStack.length > 0) process.facts.topOfStack = topOfStack;
  if (intervalMs === null) {
    report.limits.push({
      subject: 'report',
      field: 'heldMs',
      code: 'ENODATA',
      reason: 'the "Analysis of sampling … every N millisecond" line is not in the paste, so sample counts cannot be turned into time',
      hint: 'paste the report from its first line',
    });
  }
  if (otherPaths > 0) {
    report.limits.push({
      subject: 'report',
      field: 'stack',
      code: 'ENOTSUP',
      reason: `each thread's stack is its heaviest call path; ${otherPaths} lighter path(s) are not in the stacks (their samples are counted in samples)`,
    });
  }
  return report;
}
