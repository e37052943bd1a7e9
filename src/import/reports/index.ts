/**
 * importReport: an iokit-snap/1 Snapshot from the reports people already hold when
 * something hangs: macOS `sample`, `spindump`, crash/hang report thread sections, lldb
 * backtraces, and Linux hung_task / sysrq-w blocks. Each thread keeps its frames as
 * printed; its state, blockedIn and how long it sat there come only from what the report
 * proves. A cut paste is read as far as it goes, with a limit saying where it stopped.
 */
import { IokitSnapError } from '../../errors';
import { eachLine, splitLines as splitInputLines } from '../lines';
import { importedThreadBudget, MAX_DURATION_MS } from '../../input-limits';
import type { Host, Limitation, ProcessSample, ReportFormat, Snapshot, ThreadSample } from '../../types';
import { parseCrash } from './crash';
import { darwinBlockedIn, linuxBlockedIn, stateOf } from './derive';
import { detectReport } from './detect';
import { parseHungTask } from './hung-task';
import { parseLldb } from './lldb';
import { withThreadBudget, type ParsedReport, type ParsedThread } from './parsed';
import { parseSample } from './sample';
import { parseSpindump } from './spindump';

export interface ImportReportOptions {
  /** When the report was taken (ISO 8601), if the caller knows better than the report's own Date/Time. */
  takenAt?: string;
  /** Host facts the caller knows (reports carry few). */
  host?: Partial<Host>;
}

const PARSERS: Record<ReportFormat, (lines: string[]) => ParsedReport> = {
  sample: parseSample,
  spindump: parseSpindump,
  crash: parseCrash,
  lldb: parseLldb,
  'hung-task': parseHungTask,
};

const FORMAT_NAMES: Record<ReportFormat, string> = {
  sample: '`sample` output',
  spindump: '`spindump` output',
  crash: 'a crash/hang report',
  lldb: 'an lldb backtrace',
  'hung-task': 'a Linux hung_task/sysrq-w report',
};

/**
 * Lines longer than this are read up to here (frames are far shorter): it keeps every
 * pattern's work per line bounded, so the whole import stays linear in the input.
 */
export const MAX_LINE = 8192;

/** Split into lines, drop Markdown fences, cap line length. */
function splitLines(text: string, limits: Limitation[]): string[] {
  const lines = splitInputLines(text, { what: 'the report' });
  let cut = 0;
  let firstCut = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.length > MAX_LINE) {
      lines[i] = line.slice(0, MAX_LINE);
      if (cut++ === 0) firstCut = i + 1;
    } else if (/^\s*(?:```|~~~)/.test(line)) lines[i] = '';
  }
  if (cut > 0) {
    limits.push({
      subject: 'report',
      field: 'lines',
      code: 'ENOTSUP',
      reason: `${cut} line(s) longer than ${MAX_LINE} characters (the first at line ${firstCut}) were read only up to that length`,
    });
  }
  return lines;
}

/** "2023-12-30 21:16:45.530 -0700" (Apple's Date/Time) → ISO 8601; null when it is not a time. */
export function reportTime(value: string): string | null {
  const apple = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)(?: ([+-]\d\d)(\d\d))?/.exec(value);
  const parsed = apple !== null ? Date.parse(`${apple[1]}T${apple[2]}${apple[3] !== undefined ? `${apple[3]}:${apple[4]}` : ''}`) : Number.NaN;
  return Number.isNaN(parsed) ? null : new Date(parsed).toISOString();
}

function threadOf(t: ParsedThread, platform: 'darwin' | 'linux'): ThreadSample {
  const blockedIn = platform === 'linux' ? linuxBlockedIn(t.kernelFrames) : darwinBlockedIn(t.stack);
  const sample: ThreadSample = {
    tid: t.tid,
    name: t.name,
    state: t.state ?? stateOf(blockedIn),
    userNs: 0,
    systemNs: 0,
    contextSwitches: null,
    suspendCount: null,
    blockedIn,
    stack: t.stack,
  };
  if (t.kernelFrames.length > 0) {
    sample.kernelFrames = t.kernelFrames;
    sample.kernelStack = t.kernelFrames.map((f) => String(f.text)); // every parser keeps the line
  }
  if (t.main) sample.main = true;
  if (t.queue !== null) sample.queue = t.queue;
  if (t.samples !== null) sample.samples = t.samples;
  sample.heldMs = t.heldMs;
  if (t.blockedBy !== undefined) sample.blockedBy = t.blockedBy;
  if (t.stack.length > 0 && t.stack[0].pc !== null) sample.pc = t.stack[0].pc;
  return sample;
}

function build(parsed: ParsedReport, options: ImportReportOptions): Snapshot {
  const limits: Limitation[] = [
    {
      subject: 'snapshot',
      field: 'monotonicNs',
      code: 'ENOTSUP',
      reason: `imported from ${FORMAT_NAMES[parsed.format]}, which carries no monotonic clock; monotonicNs and sampledAtNs are 0 (durations come from what the report proves: heldMs)`,
    },
    {
      subject: 'snapshot',
      field: 'userNs, systemNs, contextSwitches',
      code: 'ENOTSUP',
      reason: 'a report shows where threads were, not their CPU time or context switches; those are 0/null',
    },
    ...parsed.limits,
  ];
  const processes: ProcessSample[] = [];
  let indexNote = false;
  /** A duration the report states or implies, or null (with a limit) when it cannot be real: negative, or longer than MAX_DURATION_MS. */
  const real = (ms: number | null, where: string, field: string): number | null => {
    if (ms === null || (ms >= 0 && ms <= MAX_DURATION_MS)) return ms;
    limits.push({
      subject: 'report',
      field,
      code: 'ERANGE',
      reason: `${where}: ${field} would be ${Number.isFinite(ms) ? `${(ms / 1000).toPrecision(3)} s` : 'past any number of seconds'}, which cannot be real (no machine stays up ten years); the report is damaged there, and the duration is not used`,
    });
    return null;
  };
  for (const p of parsed.processes) {
    p.facts.sampledMs = real(p.facts.sampledMs, `process ${p.name ?? p.pid ?? 'unknown'}`, 'sampledMs');
    p.facts.unresponsiveMs = real(p.facts.unresponsiveMs, `process ${p.name ?? p.pid ?? 'unknown'}`, 'unresponsiveMs');
    for (const t of p.threads) t.heldMs = real(t.heldMs, `line ${t.line}`, 'heldMs');
    if (p.pid === null) {
      limits.push({ subject: `process ${p.name ?? 'unknown'}`, field: 'pid', code: 'ENODATA', reason: 'the report does not give the process id; 0 stands for it', hint: 'paste the report header too (Process: NAME [PID])' });
    }
    const threads = p.threads.map((t) => threadOf(t, parsed.platform));
    indexNote ||= p.threads.some((t) => t.tidIsIndex);
    processes.push({ pid: p.pid ?? 0, name: p.name ?? 'unknown', sampledAtNs: 0, threads, report: p.facts });
  }
  if (indexNote) {
    limits.push({
      subject: 'report',
      field: 'tid',
      code: 'ENOTSUP',
      reason: 'this report numbers its threads ("Thread 3:", "thread #2") rather than giving their kernel thread ids; tid is that number',
    });
  }
  let takenAt = options.takenAt === undefined ? null : new Date(options.takenAt).toISOString();
  if (takenAt === null && parsed.takenAt !== null) takenAt = reportTime(parsed.takenAt);
  if (takenAt === null) {
    limits.push({ subject: 'snapshot', field: 'takenAt', code: 'ENOTSUP', reason: 'the report (as pasted) carries no capture time; takenAt is the time of the import' });
    takenAt = new Date().toISOString();
  }
  const host: Host = {
    platform: options.host?.platform ?? parsed.platform,
    arch: options.host?.arch ?? parsed.arch,
    osRelease: options.host?.osRelease ?? parsed.osRelease,
  };
  const model = options.host?.model ?? parsed.model;
  if (model) host.model = model;
  const unknownHost = [!host.arch ? 'arch' : null, !host.osRelease ? 'osRelease' : null].filter((f): f is string => f !== null);
  if (unknownHost.length > 0) {
    limits.push({ subject: 'host', field: unknownHost.join(', '), code: 'ENOTSUP', reason: `the report does not carry the host's ${unknownHost.join(' or ')}; left empty` });
  }
  limits.push({ subject: 'snapshot', field: 'accelerators', code: 'ENOTSUP', reason: 'a report holds threads only, no accelerator state (import an ioreg dump or take a live snapshot for that)' });
  return {
    format: 'iokit-snap/1',
    takenAt,
    monotonicNs: 0,
    host,
    accelerators: [],
    processes,
    limits,
    source: { format: parsed.format, lines: parsed.lines },
  };
}

/** Which report format a text is, or null when it is none of them (an ioreg dump, a snapshot, other text). */
export function detectReportFormat(text: string): ReportFormat | null {
  if (typeof text !== 'string') return null;
  // Line by line, without splitting the whole text: the first line that decides ends it. The lines
  // go in as they are: detectReport() reads the first 4096 characters of each, and no format's
  // line starts as a Markdown fence does, so a fence or an overlong line decides the same as
  // importReport()'s cleaned lines.
  return detectReport(eachLine(text))?.format ?? null;
}

/** Parse a report into an iokit-snap/1 snapshot. Throws only IokitSnapError (EINVAL for text it cannot read). */
export function importReport(text: string, options: ImportReportOptions = {}): Snapshot {
  if (typeof text !== 'string') throw new IokitSnapError('EINVAL', 'importReport needs the report as a string');
  if (options === null || typeof options !== 'object') throw new IokitSnapError('EINVAL', 'options must be an object');
  if (options.takenAt !== undefined && Number.isNaN(Date.parse(options.takenAt))) {
    throw new IokitSnapError('EINVAL', `takenAt must be an ISO 8601 time, got ${JSON.stringify(options.takenAt)}`);
  }
  const limits: Limitation[] = [];
  const lines = splitLines(text, limits);
  const detected = detectReport(lines);
  if (detected === null) {
    const first = lines.findIndex((line) => line.trim() !== '');
    throw new IokitSnapError(
      'EINVAL',
      first < 0
        ? 'the report is empty: pass the text of `sample`, `spindump`, a crash report, an lldb backtrace or a hung_task log'
        : `line ${first + 1}: ${JSON.stringify(lines[first].trim().slice(0, 80))} does not start any report iokit-snap reads, and no later line does either ` +
            '(it reads `sample` and `spindump` output, crash/hang report thread sections, lldb `bt` / `thread backtrace all`, Linux hung_task and sysrq-w logs)',
    );
  }
  try {
    const threads = importedThreadBudget(text.length, lines.length);
    if (threads <= 0) {
      throw new IokitSnapError('EINVAL', `the report has ${lines.length} lines: more than a report of its size can be read with (it would not fit in memory); pass the part about the process you need`);
    }
    const parsed = withThreadBudget(() => PARSERS[detected.format](lines), threads);
    parsed.limits = limits.concat(parsed.limits);
    return build(parsed, options);
    /* c8 ignore start -- a safety net: the parsers do not throw (the fuzz test holds them to it) */
  } catch (error) {
    if (error instanceof IokitSnapError) throw error;
    throw new IokitSnapError('EIO', `iokit-snap could not read this ${FORMAT_NAMES[detected.format]} (a bug: please report it with the text): ${(error as Error)?.message}`, {
      cause: error,
    });
  }
  /* c8 ignore stop */
}
