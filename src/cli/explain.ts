/** A Report as a person reads it: the verdict, then what is stuck, in what, for how long. */
import { formatMs, plural } from '../analyze/format';
import type { Finding, Report, Severity } from '../analyze/types';
import type { Accelerator } from '../types';
import { paint, type Style } from './format';

const COLOR: Record<Severity, 'red' | 'yellow' | 'dim'> = { critical: 'red', warning: 'yellow', info: 'dim' };
const CHUNK_CHARS = 1 << 20;

export interface ExplainOptions {
  /** Show every info finding (default: the first 8). */
  verbose?: boolean;
  /** The accelerators of the later snapshot, for a one-line summary of each. */
  accelerators?: Accelerator[];
}

/**
 * The verdict in one line. A hang says how long its longest finding has held — the figure the
 * findings below repeat — and only falls back to the window between the two looks when no
 * finding knows its duration (a window can be shorter than a stall that began before it).
 */
function headline(report: Report, style: Style): string {
  const critical = report.findings.filter((f) => f.severity === 'critical').length;
  const warning = report.findings.filter((f) => f.severity === 'warning').length;
  // A loop, not Math.max(...durations): a report may hold more findings than a call takes arguments.
  let longest: number | null = null;
  for (const f of report.findings) if (f.severity !== 'info' && f.durationMs !== null && (longest === null || f.durationMs > longest)) longest = f.durationMs;
  const window = report.windowMs !== null ? ` over ${formatMs(report.windowMs)}` : '';
  const span = longest !== null ? `, the longest for at least ${formatMs(longest)}` : window;
  if (report.verdict === 'hung') {
    return `${paint(style, 'red', paint(style, 'bold', 'HUNG'))}: ${plural(critical, 'critical finding')}${warning ? `, ${plural(warning, 'warning')}` : ''}${span}`;
  }
  if (report.verdict === 'suspect') return `${paint(style, 'yellow', paint(style, 'bold', 'SUSPECT'))}: ${plural(warning, 'warning')}${span}`;
  return `${paint(style, 'green', paint(style, 'bold', 'HEALTHY'))}: nothing stuck${window}`;
}

function findingLines(f: Finding, style: Style): string {
  const label = paint(style, COLOR[f.severity], f.severity.padEnd(8));
  return `  ${label}  ${paint(style, 'bold', f.subject)}\n            ${f.message}\n`;
}

function acceleratorLine(a: Accelerator): string {
  const parts: string[] = [];
  if (a.busy !== null) parts.push(`busy ${a.busy.count}${a.busy.timeNs !== null ? ` (${formatMs(a.busy.timeNs / 1e6)} total)` : ''}`);
  if (a.power !== null) parts.push(`power ${a.power.state}${a.power.desiredState != null ? ` → ${a.power.desiredState}` : ''}`);
  if (a.recovery !== null) parts.push(`recoveries ${a.recovery.count}`);
  if (a.utilization?.devicePercent != null) parts.push(`utilization ${a.utilization.devicePercent}%`);
  if (a.queues !== null) parts.push(plural(a.queues.length, 'queue'));
  return `  ${a.name} ${a.id}${parts.length ? `: ${parts.join(', ')}` : ''}\n`;
}

export function explain(report: Report, style: Style, options: ExplainOptions = {}): string {
  return [...explainChunks(report, style, options)].join('');
}

/**
 * The same text in pieces of about a megabyte: a report of a few hundred thousand findings
 * (a hung_task log of a machine full of blocked tasks) is more text than one string holds.
 */
export function* explainChunks(report: Report, style: Style, options: ExplainOptions = {}): Generator<string, void, undefined> {
  let out = headline(report, style) + '\n';
  const shown = report.findings.filter((f) => f.severity !== 'info');
  const info = report.findings.filter((f) => f.severity === 'info');
  const infoShown = options.verbose ? info : info.slice(0, 8);
  for (const list of [shown, infoShown]) {
    for (const f of list) {
      out += findingLines(f, style);
      if (out.length >= CHUNK_CHARS) {
        yield out;
        out = '';
      }
    }
  }
  if (infoShown.length < info.length) out += `  … and ${info.length - infoShown.length} more info findings (--verbose or --json)\n`;
  for (const p of report.processes) {
    if (out.length >= CHUNK_CHARS) {
      yield out;
      out = '';
    }
    const facts = p.gone
      ? 'exited'
      : `${plural(p.threads, 'thread')}${p.idle ? `, ${p.idle} idle` : ''}, ${formatMs(p.cpuNs / 1e6)} CPU${
          p.windowMs > 0 ? ` in ${formatMs(p.windowMs)}` : ''
        }${p.new ? ' (no baseline)' : ''}`;
    out += paint(style, 'dim', `  pid ${p.pid} (${p.name}): ${facts}`) + '\n';
  }
  const accelFindings = report.findings.some((f) => f.ref.accelerator !== undefined);
  if (options.accelerators !== undefined) {
    if (options.accelerators.length === 0) out += paint(style, 'dim', '  accelerators: none seen') + '\n';
    else {
      out += paint(style, 'dim', `  accelerators${accelFindings ? '' : ' (no change)'}:`) + '\n';
      for (const a of options.accelerators) out += paint(style, 'dim', '  ' + acceleratorLine(a).trimEnd()) + '\n';
    }
  }
  for (const note of report.notes) {
    out += paint(style, 'yellow', `  note: ${note}`) + '\n';
    if (out.length >= CHUNK_CHARS) {
      yield out;
      out = '';
    }
  }
  yield out;
}
