/**
 * The thread sections of macOS crash and hang reports (.crash/.ips text), and the same
 * numbered-frame blocks third-party crash reporters print under a bare header line:
 *
 *     Thread 0 Crashed:: Dispatch queue: com.apple.main-thread
 *     0   libsystem_kernel.dylib        0x00007fff6fcdc7fe semaphore_wait_trap + 10
 *
 *     com.apple.main-thread
 *     0  libsystem_kernel.dylib         0x182cbbde8 mach_msg_trap + 8
 */
import type { Frame } from '../../types';
import { LineTrail } from './line-trail';
import { idAt, MAX_PID, newProcess, newReport, newThread, offsetOf, parseAddress, UNKNOWN_TID, type ParsedReport, type ParsedThread } from './parsed';

const THREAD_HEADER = /^Thread (\d+)( Crashed)?:(?::?\s*(.*))?$/;
const FRAME_START = /^(\d+)\s+(?=\S)/;
/** The address column: whitespace, 0x, hex, then whitespace or the end. Searched from the module on. */
const ADDRESS = /\s0x([0-9a-fA-F]+)(?:\s+|$)/g;
const SYMBOL = /^(.*?)(?: \+ (\d+))?(?: \(([^()]*)\))?$/;
const HEADER_FIELD = /^([A-Z][A-Za-z /()]*?):\s+(.*)$/;

/** `3   com.apple.Metal   0x00007fff4c8b012b -[_MTLCommandQueue _submitAvailableCommandBuffers] + 1005` → a frame. */
export function crashFrame(text: string): Frame | null {
  const start = FRAME_START.exec(text);
  if (start === null) return null;
  ADDRESS.lastIndex = start[0].length;
  const address = ADDRESS.exec(text);
  if (address === null) return null;
  // Never empty: the address search starts after the module's first character.
  const module = text.slice(start[0].length, address.index).trim();
  const rest = text.slice(address.index + address[0].length).trim();
  const frame: Frame = { pc: parseAddress(address[1]), module: module === '???' ? null : module, offset: null, symbol: null, symbolOffset: null, text: text.trim() };
  const unsymbolized = /^(0x[0-9a-fA-F]+|0) \+ (\d+)$/.exec(rest);
  if (unsymbolized !== null) {
    // "0x10efbd000 + 7605865": the image's load address and the offset into it.
    if (unsymbolized[1] !== '0') frame.offset = offsetOf(unsymbolized[2]);
    return frame;
  }
  const symbol = SYMBOL.exec(rest) as RegExpExecArray;
  frame.symbol = symbol[1] === '' ? null : symbol[1];
  frame.symbolOffset = symbol[2] === undefined ? null : offsetOf(symbol[2]);
  return frame;
}

function balanced(text: string): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 40) depth++;
    else if (c === 41) depth--;
  }
  return depth === 0;
}

export { balanced as parenthesesBalanced };

export function parseCrash(lines: string[]): ParsedReport {
  const report = newReport('crash', 'darwin', lines.length);
  const process = newProcess('crash');
  report.processes.push(process);
  let current: ParsedThread | null = null;
  let cutOff: ParsedThread | null = null;
  let ordinal = 0;
  const trail = new LineTrail(lines);
  let lastHeadless = 0;
  let done = false;

  for (let i = 0; i < lines.length; i++) {
    const text = lines[i];
    const trimmed = text.trim();
    if (trimmed === '') {
      current = null;
      continue;
    }
    if (trimmed === 'Binary Images:') done = true;
    if (done) continue;
    const header = THREAD_HEADER.exec(trimmed);
    if (header !== null) {
      current = newThread(idAt(header[1], i + 1, 'thread number'), true, i + 1);
      const label = header[3]?.trim() ?? '';
      const queue = /^Dispatch queue: (.*)$/.exec(label);
      if (queue !== null) current.queue = queue[1];
      else if (label !== '') current.name = label;
      current.main = current.tid === 0 || current.queue === 'com.apple.main-thread';
      process.threads.push(current);
      ordinal = Math.max(ordinal, current.tid + 1);
      continue;
    }
    const frame = crashFrame(text);
    if (frame !== null) {
      if (current === null) {
        trail.headlessFrame(i);
        cutOff ??= newThread(UNKNOWN_TID, false, i + 1);
        // Only the frames up to the first blank line belong to the cut thread.
        if (cutOff.stack.length === 0 || trail.headlessTo === lastHeadless + 1) cutOff.stack.push(frame);
        lastHeadless = i + 1;
        if (!balanced(trimmed)) trail.cutShort(i);
        continue;
      }
      current.stack.push(frame);
      if (!balanced(trimmed)) trail.cutShort(i);
      continue;
    }
    if (current !== null && FRAME_START.test(trimmed)) {
      trail.cutShort(i); // "14 UIKit": a frame cut before its address
      continue;
    }
    // A bare line followed by frame 0 is a thread header of a third-party reporter.
    const next = i + 1 < lines.length ? lines[i + 1] : '';
    if (/^0\s/.test(next) && crashFrame(next) !== null) {
      current = newThread(ordinal++, true, i + 1);
      const label = trimmed.replace(/:+$/, '');
      if (/^com\.apple\.main-thread$|^[a-z]+(?:\.[\w-]+){2,}$/.test(label)) current.queue = label;
      else current.name = label;
      current.main = current.queue === 'com.apple.main-thread' || (process.threads.length === 0 && /^(?:#?\d+\.?\s*)?(?:main|Thread 0)\b/i.test(label));
      process.threads.push(current);
      continue;
    }
    current = null;
    const field = HEADER_FIELD.exec(trimmed);
    if (field === null) continue;
    const [, key, value] = field;
    if (key === 'Process') {
      const m = /^(.*?)\s*\[(\d+)\]$/.exec(value);
      if (m !== null) {
        process.name = m[1];
        process.pid = idAt(m[2], i + 1, 'pid', MAX_PID);
      }
    } else if (key === 'Date/Time') report.takenAt = value;
    else if (key === 'OS Version') report.osRelease = value;
    else if (key === 'Code Type') report.arch = value.replace(/\s*\(.*\)$/, '').toLowerCase().replace('-', '_');
    else if (key === 'Hardware Model') report.model = value;
  }
  trail.reportHeadless(report);
  if (cutOff !== null) process.threads.push(cutOff);
  trail.reportCut(report, 'a frame cut short');
  const main = process.threads.findIndex((t) => t.main);
  if (main > 0) process.threads.unshift(...process.threads.splice(main, 1));
  return report;
}
