/**
 * Every kind of document iokit-snap reads or writes, recognised from its text, so that a
 * command handed one it cannot use says what it is and which command does use it, and a
 * command handed something else lists what it accepts:
 *
 *   snapshot        an iokit-snap/1 snapshot (snapshot -o, import -o, exec's baseline.json and hung.json)
 *   report          a Report (exec's report.json, diff --json, explain --json) or exec's --json line
 *   ioreg           ioreg output: plain, -l, -i, -a plist, a pasted property block
 *   thread-report   macOS sample, spindump, crash or hang report, lldb bt; Linux hung_task, sysrq-w
 *   threads         a `threads --json` sample of one process
 *   watch-events    `watch --json` events (NDJSON)
 *   metrics         serve's /metrics text
 */
import type { Report } from '../analyze/types';
import { IokitSnapError } from '../errors';
import { importIoreg } from '../import';
import { detectReportFormat, importReport } from '../import/reports';
import { readInputFile, readInputStream } from '../read-input';
import { SNAPSHOT_FORMAT, validateSnapshot } from '../snapshot-file';
import type { Limitation, ProcessSample, ReportFormat, Snapshot } from '../types';
import type { CliIO } from './io';

export type Document =
  | { kind: 'snapshot'; snapshot: Snapshot }
  | { kind: 'ioreg'; snapshot: Snapshot }
  | { kind: 'thread-report'; snapshot: Snapshot; format: ReportFormat }
  | { kind: 'report'; report: Report; exec?: { command: string[]; pid: number; outcome: string; saved: string | null } }
  | { kind: 'threads'; processes: ProcessSample[]; limits: Limitation[] }
  | { kind: 'watch-events' }
  | { kind: 'metrics' };

export type DocumentKind = Document['kind'];

/** What each kind is, in a sentence's words. */
export const KIND_WORDS: Record<DocumentKind, string> = {
  snapshot: 'an iokit-snap/1 snapshot',
  ioreg: 'ioreg output',
  'thread-report': 'a thread report',
  report: "an iokit-snap report (exec's report.json, or diff/explain --json)",
  threads: 'a `threads --json` sample',
  'watch-events': 'a `watch --json` event stream',
  metrics: "serve's /metrics text",
};

/** What the readers accept, for the message about a file that is none of them. */
export const ACCEPTED =
  "an iokit-snap/1 snapshot (snapshot -o, import -o, exec's baseline.json and hung.json), exec's report.json, " +
  'ioreg output (plain, -l, -i, or -a plist), macOS sample, spindump, crash and hang reports, lldb bt, and Linux hung_task and sysrq-w logs';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const VERDICTS = new Set(['healthy', 'suspect', 'hung']);

function isReport(value: unknown): value is Report {
  return isObject(value) && VERDICTS.has(value.verdict as string) && Array.isArray(value.findings) && Array.isArray(value.processes) && Array.isArray(value.notes);
}

function unknown(where: string, detail: string): IokitSnapError {
  return new IokitSnapError('EINVAL', `${where}: ${detail}, none of the documents iokit-snap reads. It reads ${ACCEPTED}.`);
}

function isThreadsSample(value: unknown): value is Record<string, unknown> {
  return isObject(value) && typeof value.pid === 'number' && Array.isArray(value.threads) && Array.isArray(value.limits);
}

/** `threads --json` samples (one object, or the array `threads --from --json` prints), checked as the processes of a snapshot. */
function threadsSamples(values: Record<string, unknown>[], where: string): Document {
  const processes = values.map(({ limits: _limits, cpu: _cpu, intervalMs: _interval, ...process }) => process);
  const checked = validateSnapshot(
    {
      format: SNAPSHOT_FORMAT,
      takenAt: new Date(0).toISOString(),
      monotonicNs: 0,
      host: { platform: 'linux', arch: '', osRelease: '' },
      accelerators: [],
      processes,
      limits: values.flatMap((v) => v.limits as unknown[]),
    },
    where,
  );
  return { kind: 'threads', processes: checked.processes, limits: checked.limits };
}

/** A parsed JSON value: which of iokit-snap's JSON documents it is. */
function jsonDocument(value: unknown, where: string): Document {
  if (isObject(value) && typeof value.format === 'string') return { kind: 'snapshot', snapshot: validateSnapshot(value, where) };
  if (isReport(value)) return { kind: 'report', report: value };
  if (isObject(value) && isReport(value.report) && typeof value.outcome === 'string') {
    const exec = { command: value.command as string[], pid: value.pid as number, outcome: value.outcome, saved: (value.saved as string | null) ?? null };
    return { kind: 'report', report: value.report, exec };
  }
  if (isThreadsSample(value)) return threadsSamples([value], where);
  if (Array.isArray(value) && value.length > 0 && value.every(isThreadsSample)) return threadsSamples(value, where);
  throw unknown(where, 'JSON, but no "format": "iokit-snap/1", no report, no thread sample');
}

/** Lines of JSON (NDJSON): watch's events, or exec's --json lines (the last report counts). */
function jsonLines(text: string, where: string): Document | null {
  const lines = text.split('\n').filter((line) => line.trim().startsWith('{'));
  const parsed: unknown[] = [];
  for (const line of lines) {
    try {
      parsed.push(JSON.parse(line));
    } catch {
      return null;
    }
  }
  const events = parsed.filter((v) => isObject(v) && typeof v.type === 'string' && typeof v.at === 'string');
  if (events.length > 0 && events.length === parsed.length) return { kind: 'watch-events' };
  const execLines = parsed.filter((v) => isObject(v) && typeof v.outcome === 'string' && isReport(v.report));
  if (execLines.length > 0) return jsonDocument(execLines[execLines.length - 1], where);
  return null;
}

/** Which document the text is; throws EINVAL naming what it accepts when it is none. */
export function parseDocument(text: string, where: string, options: { includeProperties?: boolean } = {}): Document {
  const start = text.trimStart();
  if (start.startsWith('{') || start.startsWith('[')) {
    let value: unknown;
    let parsed = true;
    try {
      value = JSON.parse(text);
    } catch {
      parsed = false;
    }
    if (parsed) return jsonDocument(value, where);
  }
  // Lines of JSON, maybe among other lines (exec --json's stderr holds the command's own too).
  if (/^\s*\{"/m.test(text)) {
    const lines = jsonLines(text, where);
    if (lines !== null) return lines;
  }
  if (/^# (?:HELP|TYPE) iokit_snap_/m.test(start.slice(0, 4096))) return { kind: 'metrics' };
  const format = detectReportFormat(text);
  if (format !== null) return { kind: 'thread-report', snapshot: importReport(text), format };
  try {
    return { kind: 'ioreg', snapshot: importIoreg(text, options) };
  } catch (error) {
    const message = (error as Error).message;
    // ioreg's own error says more once the text looked like ioreg past its first line (or is XML).
    if (!/line 1: expected a node line|is empty/.test(message)) throw error;
    if (start === '') throw unknown(where, 'empty');
    throw unknown(where, start.startsWith('{') ? 'not valid JSON, not ioreg output' : 'not recognised');
  }
}

/** Read FILE (or stdin for -) and recognise it; `what` names it in a read error ("snapshot or report"). */
export async function readDocument(
  source: string,
  io: CliIO,
  options: { includeProperties?: boolean; what?: string } = {},
): Promise<{ document: Document; where: string }> {
  const where = source === '-' ? 'stdin' : source;
  const what = options.what ?? 'snapshot or report';
  const text = source === '-' ? await readInputStream(io.stdin, what) : await readInputFile(source, what);
  return { document: parseDocument(text, where, options), where };
}

/**
 * A document the command recognised but cannot use: EINVAL saying what it is, what the
 * command takes, and what to run instead.
 */
export function notFor(command: string, document: Document, where: string, wants: string, instead?: string): IokitSnapError {
  return new IokitSnapError('EINVAL', `${where} is ${KIND_WORDS[document.kind]}; ${command} takes ${wants}${instead !== undefined ? `: ${instead}` : ''}`);
}
