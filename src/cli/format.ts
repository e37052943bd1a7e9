/** How iokit-snap shows things to a person: tables, durations, colour (NO_COLOR respected). */
import { threadCpuNs } from '../cpu-share';
import type { ThreadSample } from '../types';

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
      dash(t.blockedIn?.target),
    ];
  });
  return table(['TID', 'NAME', 'STATE', ...(percent !== undefined ? ['%CPU'] : []), 'CPU TOTAL', 'BLOCKED IN', 'TARGET'], rows, style);
}

/**
 * Each thread's user stack (threads --stacks), innermost frame first:
 *   #0  read + 18                 libc.so.6 +0xf7a02
 * A frame without a symbol shows its pc; one outside any file shows only the pc.
 */
export function stackLines(threads: ThreadSample[], style: Style): string {
  let text = '';
  for (const t of threads) {
    if (t.stack === undefined || t.stack.length === 0) continue;
    const where = t.blockedIn ? `, in ${t.blockedIn.call}` : '';
    text += `\n${paint(style, 'bold', `thread ${t.tid}`)} (${dash(t.name)}) ${t.state}${where}:\n`;
    const rows = t.stack.map((f, i) => {
      const at = f.symbol != null ? `${f.symbol}${f.symbolOffset != null ? ` + ${f.symbolOffset}` : ''}` : f.pc !== null ? `0x${f.pc.toString(16)}` : '?';
      const module = f.module !== null ? `${f.module.slice(f.module.lastIndexOf('/') + 1)}${f.offset !== null ? ` +0x${f.offset.toString(16)}` : ''}` : '';
      return [`  #${i}`, at, paint(style, 'dim', module)];
    });
    const width = rows.reduce((w, r) => Math.max(w, r[1].length), 0);
    text += rows.map((r) => `${r[0].padEnd(5)} ${r[1].padEnd(width)}  ${r[2]}`.trimEnd()).join('\n') + '\n';
  }
  return text;
}
