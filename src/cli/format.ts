/** How iokit-snap shows things to a person: tables, durations, colour (NO_COLOR respected). */
import { threadCpuNs } from '../cpu-share';
import type { Frame, ThreadSample } from '../types';

export { cpuPercent } from '../cpu-share';

export interface Style {
  color: boolean;
}

/** Colour only on a TTY, never with NO_COLOR (https://no-color.org), always with FORCE_COLOR. */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const CODES = { bold: 1, dim: 2, red: 31, green: 32, yellow: 33, cyan: 36 } as const;
export function paint(style: Style, code: keyof typeof CODES, text: string): string {
  return style.color ? `\u001b[${CODES[code]}m${text}\u001b[0m` : text;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
const visibleLength = (text: string): number => text.replace(ANSI, '').length;

/** A plain-text table; columns sized to their content, the last column left unpadded. */
export function table(header: string[], rows: string[][], style: Style): string {
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, visibleLength(r[i])), h.length)); // no spread: rows may outnumber a call's arguments
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i] - visibleLength(cell))))
      .join('  ')
      .trimEnd();
  return [paint(style, 'bold', line(header)), ...rows.map(line)].join('\n') + '\n';
}

/** ns → "0 ms", "752 ms", "19.2 s", "3 m 05 s". */
export function formatNs(ns: number | null | undefined): string {
  if (ns === null || ns === undefined) return '-';
  const ms = ns / 1e6;
  if (ms < 1000) return `${ms < 10 && ms > 0 ? ms.toFixed(1) : Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return `${m} m ${String(Math.round(s - m * 60)).padStart(2, '0')} s`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export const dash = (value: unknown): string => (value === null || value === undefined || value === '' ? '-' : String(value));

/** What a thread's call is on: the file its fd points at, or the thread it joins (pthread_join waits in futex on that thread's tid). */
function targetOf(t: ThreadSample): string {
  if (t.blockedIn?.target !== undefined) return t.blockedIn.target;
  if (t.blockedIn?.joining !== undefined) return `joins thread ${t.blockedIn.joining}`;
  return '-';
}

/**
 * The thread table: tid, name, state, CPU time so far (cumulative, as ps shows it), blocked in,
 * target; with `percent` (two samples), %CPU over the interval between them first, as top shows it.
 */
export function threadTable(threads: ThreadSample[], style: Style, percent?: Map<number, number>): string {
  const stateColor = (state: string): string =>
    state === 'running' ? paint(style, 'green', state) : state === 'uninterruptible' || state === 'stopped' ? paint(style, 'yellow', state) : state;
  const rows = threads.map((t) => {
    const share = percent?.get(t.tid);
    return [
      String(t.tid),
      dash(t.name),
      stateColor(t.state),
      ...(percent !== undefined ? [share === undefined ? '-' : share.toFixed(1)] : []),
      formatNs(threadCpuNs(t)),
      t.blockedIn ? t.blockedIn.call : t.wchan ? `(${t.wchan})` : '-',
      targetOf(t),
    ];
  });
  return table(['TID', 'NAME', 'STATE', ...(percent !== undefined ? ['%CPU'] : []), 'CPU TOTAL', 'BLOCKED IN', 'TARGET'], rows, style);
}

/** One frame as its columns: where (symbol + offset, else the pc) and which module (file +0xoffset). */
export function frameCells(f: Frame): [string, string] {
  const at = f.symbol != null ? `${f.symbol}${f.symbolOffset != null ? ` + ${f.symbolOffset}` : ''}` : f.pc !== null ? `0x${f.pc.toString(16)}` : (f.text ?? '?');
  const module = f.module !== null ? `${f.module.slice(f.module.lastIndexOf('/') + 1)}${f.offset !== null ? ` +0x${f.offset.toString(16)}` : ''}` : '';
  return [at, module];
}

/** A thread's kernel frames as text, innermost first: /proc's lines as read, else an imported report's parsed frames. */
export function kernelLines(t: ThreadSample): string[] {
  if (t.kernelStack !== undefined && t.kernelStack.length > 0) return t.kernelStack;
  return (t.kernelFrames ?? []).map((f) => {
    const [at, module] = frameCells(f);
    return module !== '' ? `${at}  ${module}` : at;
  });
}

/** Rows of [label, where, module] as aligned lines under `indent`. */
function frameRows(rows: [string, string, string][], style: Style, indent: string): string {
  // Loops, not Math.max(...): an imported stack may have more frames than a call takes arguments.
  let labelWidth = 0;
  // The where column is as wide as its longest entry that has a module after it.
  let width = 0;
  for (const r of rows) {
    labelWidth = Math.max(labelWidth, r[0].length);
    if (r[2] !== '') width = Math.max(width, r[1].length);
  }
  return rows.map((r) => `${indent}${r[0].padEnd(labelWidth)}  ${r[1].padEnd(width)}  ${paint(style, 'dim', r[2])}`.trimEnd()).join('\n') + '\n';
}

/**
 * Each thread's stacks (threads --stacks), innermost frame first: the kernel stack where one
 * was read, then the user stack:
 *   kernel  futex_do_wait+0x4a/0x80
 *   #0      read + 18                 libc.so.6 +0xf7a02
 * A frame without a symbol shows its pc; one outside any file shows only the pc.
 */
export function stackLines(threads: ThreadSample[], style: Style): string {
  let text = '';
  for (const t of threads) {
    const kernel = kernelLines(t);
    const user = t.stack ?? [];
    if (kernel.length === 0 && user.length === 0) continue;
    const where = t.blockedIn ? `, in ${t.blockedIn.call}` : '';
    text += `\n${paint(style, 'bold', `thread ${t.tid}`)} (${dash(t.name)}) ${t.state}${where}:\n`;
    const rows: [string, string, string][] = [
      ...kernel.map((line): [string, string, string] => ['kernel', line, '']),
      ...user.map((f, i): [string, string, string] => [`#${i}`, ...frameCells(f)]),
    ];
    text += frameRows(rows, style, '  ');
  }
  return text;
}

export interface TopFrames {
  /** The lines, indented; empty when the thread has no stack. */
  text: string;
  /** Frames not shown. */
  more: number;
}

/**
 * The top of a culprit thread's stacks, for a finding: its user frames (at most `userFrames`),
 * and its kernel frames first where they are the evidence (in the kernel: uninterruptible, in a
 * driver) or the only stack there is.
 */
export function topFrames(t: ThreadSample, kernelFirst: boolean, style: Style, indent: string, userFrames = 4, kernelFrames = 3): TopFrames {
  const user = t.stack ?? [];
  const kernel = kernelFirst || user.length === 0 ? kernelLines(t) : [];
  const rows: [string, string, string][] = [
    ...kernel.slice(0, kernelFrames).map((line): [string, string, string] => ['kernel', line, '']),
    ...user.slice(0, userFrames).map((f, i): [string, string, string] => [`#${i}`, ...frameCells(f)]),
  ];
  if (rows.length === 0) return { text: '', more: 0 };
  return { text: frameRows(rows, style, indent), more: Math.max(0, kernel.length - kernelFrames) + Math.max(0, user.length - userFrames) };
}
