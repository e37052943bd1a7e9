/**
 * Where a line-by-line report parser got to: whether the report's last line was cut short,
 * so that a cut paste is said to be cut rather than read as complete; and the frames that came
 * before any thread header, so that a paste starting mid-thread says so.
 *
 * The parser only marks the lines it finds cut short or headless; which line was the last is
 * found once at the end. Nothing is written per line, so the parsers' loops stay as fast as
 * when each kept these in its own locals.
 */
import { headless, truncated, type ParsedReport } from './parsed';

export class LineTrail {
  /** The first and last lines (1-based) of frames before any thread header; 0 when none. */
  headlessFrom = 0;
  headlessTo = 0;
  /** The latest line (1-based) found cut short; 0 when none. */
  private cutLine = 0;

  /** message: a line's content as the parser reads it ('' for a line it skips as blank). */
  constructor(
    private readonly lines: readonly string[],
    private readonly message: (line: string) => string = (line) => line.trim(),
  ) {}

  /** Line index i (0-based) holds a frame that no thread header came before. */
  headlessFrame(i: number): void {
    if (this.headlessFrom === 0) this.headlessFrom = i + 1;
    this.headlessTo = i + 1;
  }

  /** Line index i (0-based) ends before what it began was complete. */
  cutShort(i: number): void {
    this.cutLine = i + 1;
  }

  /** The last line (1-based) that is not blank; 0 when there is none. */
  get lastLine(): number {
    let i = this.lines.length - 1;
    while (i >= 0 && this.message(this.lines[i]) === '') i--;
    return i + 1;
  }

  /** What the last line that is not blank says ('' when there is none). */
  get lastText(): string {
    const last = this.lastLine;
    return last === 0 ? '' : this.message(this.lines[last - 1]);
  }

  /** Whether the report's last line that is not blank ends whole. */
  get lastComplete(): boolean {
    return this.cutLine === 0 || this.cutLine !== this.lastLine;
  }

  /** At the end: say which lines were frames without a header (kept as a thread, or skipped). */
  reportHeadless(report: ParsedReport, kept = true): void {
    if (this.headlessFrom > 0) headless(report, this.headlessFrom, this.headlessTo, kept);
  }

  /** At the end: say where the report is cut when its last line was cut short (what: of what). */
  reportCut(report: ParsedReport, what: string): void {
    if (!this.lastComplete) truncated(report, this.lastLine, what, this.lastText);
  }
}
