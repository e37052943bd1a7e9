/** A Report as a person reads it: the verdict, then what is stuck, in what, for how long. */
import { formatMs, plural } from '../analyze/format';
import type { Finding, Report, Severity } from '../analyze/types';
import type { Accelerator, Snapshot, ThreadSample } from '../types';
import { paint, topFrames, type Style } from './format';

const COLOR: Record<Severity, 'red' | 'yellow' | 'dim'> = { critical: 'red', warning: 'yellow', info: 'dim' };
const CHUNK_CHARS = 1 << 20;

export interface ExplainOptions {
  /** Show every info finding (default: the first 8). */
  verbose?: boolean;
  /** The accelerators of the later snapshot, for a one-line summary of each. */
  accelerators?: Accelerator[];
  /** The snapshot the findings are about: a culprit thread's top frames are shown under its finding, where it has stacks. */
  snapshot?: Snapshot;
  /** The file that snapshot is in, for the line that says how to see every thread's stacks. */
  snapshotFile?: string;
}

/** Findings whose evidence is in the kernel: their kernel frames come first. */
const KERNEL_FINDINGS = new Set<Finding['kind']>(['uninterruptible', 'blocked-in-driver']);

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

/** The thread a finding is about, in the snapshot. */
function culprit(f: Finding, snapshot: Snapshot | undefined): ThreadSample | undefined {
  if (snapshot === undefined || f.ref.tid === undefined) return undefined;
  const process = snapshot.processes.find((p) => p.pid === f.ref.pid);
  return process?.threads.find((t) => t.tid === f.ref.tid);
}

function findingLines(f: Finding, style: Style, snapshot: Snapshot | undefined): { text: string; frames: boolean } {
  const label = paint(style, COLOR[f.severity], f.severity.padEnd(8));
  let text = `  ${label}  ${paint(style, 'bold', f.subject)}\n            ${f.message}\n`;
  const thread = culprit(f, snapshot);
  const top = thread !== undefined ? topFrames(thread, KERNEL_FINDINGS.has(f.kind), style, '            ') : { text: '', more: 0 };
  text += top.text;
  if (top.more > 0) text += paint(style, 'dim', `            … ${plural(top.more, 'more frame')}`) + '\n';
  return { text, frames: top.text !== '' };
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
  let frames = false;
  for (const list of [shown, infoShown]) {
    for (const f of list) {
      // Frames for what is wrong; an info finding (an idle wait) is one line.
      const lines = findingLines(f, style, f.severity === 'info' ? undefined : options.snapshot);
      out += lines.text;
      frames ||= lines.frames;
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
  if (frames && options.snapshotFile !== undefined) {
    const file = /^[\w@%+=:,./-]+$/.test(options.snapshotFile) ? options.snapshotFile : `'${options.snapshotFile.replace(/'/g, `'\\''`)}'`;
    out += paint(style, 'dim', `  every thread's stacks: iokit-snap threads --from ${file} --stacks`) + '\n';
  }
  yield out;
}
