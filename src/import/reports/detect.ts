/**
 * Which report a text is: the first line that only one format prints decides. Each test
 * is anchored and cannot backtrack far, so detection is linear in the text.
 */
import type { ReportFormat } from '../../types';
import { kernelMessage } from './hung-task';

const LLDB = /^\s*(?:\*\s*)?(?:thread #\d+\b|frame #\d+: 0x[0-9a-fA-F]+)/;
const HUNG = /^(?:INFO: task .+:\d+ blocked for more than \d+ seconds|task:\S.{0,15}\s+state:\w|sys ?rq ?: Show Blocked State|Call Trace:$|(?:\[<[0-9a-f]+>\]\s+)?(?:\? )?[\w.]+\+0x[0-9a-f]+\/0x[0-9a-f]+)/i;
const SAMPLE = /^(?:Analysis of sampling .* \(pid \d+\)|\s*Call graph:$|Sort by top of stack|[ +!:|]*\d+ Thread_\d+|[ +!:|]*\d+ \S.*  \(in [^)]*\)(?: \+ \d+)?  \[0x)/;
const SPINDUMP = /^(?:\s+Thread 0x[0-9a-fA-F]+\s.*\d+ samples? \(|Heaviest stack for the main thread|Data Source:\s+Stackshots|Num samples:\s+\d+ \(\d+-\d+\)|\s+(?:User|Kernel) stack:$|\s*\*?\d+\s+\S.* \([^()]* \+ \d+\) \[0x[0-9a-fA-F]+\])/;
const CRASH = /^(?:Thread \d+(?: Crashed)?:|\d+\s+\S.*?\s0x[0-9a-fA-F]+ (?:\S.* \+ \d+|0x[0-9a-fA-F]+ \+ \d+|\S.*\(\S+:\d+\))$)/;

/** An `ioreg` dump or a snapshot: not a report (the import command reads those itself). */
const NOT_A_REPORT = /^(?:\s*[|+ ]*\+-o \S|\s*<\?xml|\s*<plist|\s*<!DOCTYPE plist|\s*\{\s*"format"\s*:)/;

export interface Detected {
  format: ReportFormat;
  /** 1-based line that decided. */
  line: number;
}

/** Long lines are tested on their first 4 KiB: a signature is always near the start. */
const PROBE = 4096;

/** The first line only one format prints decides; `lines` may be an array or read lazily. */
export function detectReport(lines: Iterable<string>): Detected | null {
  let i = -1;
  for (const line of lines) {
    i++;
    const raw = line.length > PROBE ? line.slice(0, PROBE) : line;
    if (raw.trim() === '') continue;
    if (NOT_A_REPORT.test(raw)) return null;
    if (LLDB.test(raw)) return { format: 'lldb', line: i + 1 };
    if (HUNG.test(kernelMessage(raw))) return { format: 'hung-task', line: i + 1 };
    if (SAMPLE.test(raw)) return { format: 'sample', line: i + 1 };
    if (SPINDUMP.test(raw)) return { format: 'spindump', line: i + 1 };
    if (CRASH.test(raw)) return { format: 'crash', line: i + 1 };
  }
  return null;
}
