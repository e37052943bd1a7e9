/**
 * lldb `bt` and `thread backtrace all`:
 *
 *     * thread #1, queue = 'com.apple.main-thread', stop reason = signal SIGSTOP
 *       * frame #0: 0x00007fff76de17de libsystem_kernel.dylib`__psynch_cvwait + 10
 *         frame #2: 0x00007fff4e67c93b Metal`-[_MTLCommandBuffer waitUntilCompleted] + 67
 *
 * Disassembly, prompts and command echoes between threads are skipped.
 */
import type { Frame } from '../../types';
import { parenthesesBalanced } from './crash';
import { LineTrail } from './line-trail';
import { idAt, MAX_PID, newProcess, newReport, newThread, offsetOf, parseAddress, truncated, UNKNOWN_TID, type ParsedReport, type ParsedThread } from './parsed';

const THREAD_HEADER = /^\s*(?:\*\s*)?thread #(\d+)(.*)$/;
const FRAME_LINE = /^\s*(?:\*\s*)?frame #(\d+): 0x([0-9a-fA-F]+)(?: (.*))?$/;
const SYMBOL = /^(.*?)(?: \+ (\d+))?$/;
const PROCESS = /^Process (\d+) (?:stopped|launched: '([^']*)')/;

/** "libsystem_kernel.dylib`__psynch_cvwait + 10" / "app`main(argc=1) + 111 at main.m:16" → a frame. */
export function lldbFrame(address: string, rest: string | undefined, text: string): Frame {
  const frame: Frame = { pc: parseAddress(address), module: null, offset: null, symbol: null, symbolOffset: null, text: text.trim() };
  if (rest === undefined) return frame;
  const tick = rest.indexOf('`');
  let symbolPart = rest;
  if (tick >= 0) {
    frame.module = rest.slice(0, tick);
    symbolPart = rest.slice(tick + 1);
  }
  const at = symbolPart.lastIndexOf(' at ');
  if (at >= 0 && /^ at \S+:\d+(?::\d+)?$/.test(symbolPart.slice(at))) symbolPart = symbolPart.slice(0, at);
  const symbol = SYMBOL.exec(symbolPart) as RegExpExecArray;
  frame.symbol = symbol[1];
  frame.symbolOffset = symbol[2] === undefined ? null : offsetOf(symbol[2]);
  return frame;
}

export function parseLldb(lines: string[]): ParsedReport {
  const report = newReport('lldb', 'darwin', lines.length);
  const process = newProcess('lldb');
  report.processes.push(process);
  let current: ParsedThread | null = null;
  let cutOff: ParsedThread | null = null;
  const byTid = new Map<number, number>();
  const trail = new LineTrail(lines);

  for (let i = 0; i < lines.length; i++) {
    const text = lines[i];
    const trimmed = text.trim();
    if (trimmed === '') continue;
    const header = THREAD_HEADER.exec(text);
    if (header !== null) {
      const tail = header[2];
      const tid = /tid = (0x[0-9a-fA-F]+|\d+)/.exec(tail);
      current = newThread(tid === null ? idAt(header[1], i + 1, 'thread number') : idAt(tid[1], i + 1, 'thread id'), tid === null, i + 1);
      const queue = /queue = '([^']*)'/.exec(tail);
      const name = /name = '([^']*)'/.exec(tail);
      if (queue !== null) current.queue = queue[1];
      if (name !== null) current.name = name[1];
      current.main = header[1] === '1' || current.queue === 'com.apple.main-thread';
      // `thread backtrace all` prints each thread once; a later `bt` of the same thread replaces it.
      const same = byTid.get(current.tid);
      if (same !== undefined) process.threads[same] = current;
      else {
        byTid.set(current.tid, process.threads.length);
        process.threads.push(current);
      }
      continue;
    }
    const frame = FRAME_LINE.exec(text);
    if (frame !== null) {
      if (current === null) {
        trail.headlessFrame(i);
        cutOff ??= newThread(UNKNOWN_TID, false, i + 1);
        cutOff.stack.push(lldbFrame(frame[2], frame[3], text));
        continue;
      }
      current.stack.push(lldbFrame(frame[2], frame[3], text));
      if (frame[3] === undefined || !parenthesesBalanced(frame[3])) trail.cutShort(i);
      continue;
    }
    if (current !== null && /^\s*(?:\*\s*)?f(?:r(?:a(?:m(?:e(?: #\d*:?)?)?)?)?)?$/.test(text.trimEnd())) {
      trail.cutShort(i); // "    fra": a frame line cut short
      continue;
    }
    const started = PROCESS.exec(trimmed);
    if (started !== null) {
      process.pid = idAt(started[1], i + 1, 'pid', MAX_PID);
      if (started[2] !== undefined) process.name = started[2].slice(started[2].lastIndexOf('/') + 1);
    }
  }
  trail.reportHeadless(report);
  if (cutOff !== null) process.threads.push(cutOff);
  trail.reportCut(report, 'a frame cut short');
  if (trail.lastComplete && current !== null && current.stack.length === 0 && current.line === trail.lastLine) {
    truncated(report, trail.lastLine, 'a thread header without its frames', trail.lastText);
  }
  const main = process.threads.findIndex((t) => t.main);
  if (main > 0) process.threads.unshift(...process.threads.splice(main, 1));
  return report;
}
