/**
 * Text → lines for the importers, within the engine's limits. `text.split(/\r?\n|\r/)` on
 * 120 MB of newlines (under the 256 MB input cap) does not throw: it aborts the process
 * ("FATAL ERROR: invalid array length"), because an array cannot hold that many elements.
 * These split with a bound on the count instead, and say so with EINVAL; and eachLine()
 * reads lines without keeping them, for a caller that stops at the first line that decides.
 */
import { IokitSnapError } from '../errors';
import { MAX_INPUT_LINES } from '../input-limits';

export interface SplitOptions {
  /** A lone \r ends a line too (old Mac line ends; reports pasted from anywhere), as \n and \r\n do. Default true. */
  loneCR?: boolean;
  /** Names the input in the error ("the report", "ioreg input"). */
  what?: string;
  /** At most this many lines (default MAX_INPUT_LINES). */
  max?: number;
}

/** Each line of `text` (\n, \r\n and, unless loneCR is false, \r end a line), without building an array. */
export function* eachLine(text: string, loneCR = true): Generator<string, void, undefined> {
  let start = 0;
  let nextLF = text.indexOf('\n');
  let nextCR = text.indexOf('\r');
  for (;;) {
    if (nextCR >= 0 && nextCR < start) nextCR = text.indexOf('\r', start);
    if (nextLF >= 0 && nextLF < start) nextLF = text.indexOf('\n', start);
    let end: number;
    let width = 1;
    if (loneCR && nextCR >= 0 && (nextLF < 0 || nextCR < nextLF - 1)) end = nextCR; // a \r that is not the one of a \r\n
    else if (nextLF >= 0) {
      end = nextLF;
      if (nextLF > start && text.charCodeAt(nextLF - 1) === 13) {
        end--;
        width = 2;
      }
    } else end = -1;
    if (end < 0) {
      yield text.slice(start);
      return;
    }
    yield text.slice(start, end);
    start = end + width;
  }
}

/** All the lines of `text`, as eachLine() reads them; EINVAL past MAX_INPUT_LINES (an array that long would abort the process). */
export function splitLines(text: string, options: SplitOptions = {}): string[] {
  const lines: string[] = [];
  const max = options.max ?? MAX_INPUT_LINES;
  for (const line of eachLine(text, options.loneCR ?? true)) {
    if (lines.length === max) {
      throw new IokitSnapError(
        'EINVAL',
        `${options.what ?? 'the input'} has more than ${max} lines, more than any report or ioreg dump (their lines are tens of bytes each); check that it is the file you meant`,
      );
    }
    lines.push(line);
  }
  return lines;
}
