/** Argument parsing shared by every command: node's util.parseArgs, usage errors, durations. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the command was called. Exit code 64 (EX_USAGE). */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** parseArgs' errors in our own words: what was wrong, in one line, naming the argument. */
function usageMessage(error: NodeJS.ErrnoException, argv: string[]): string {
  const message = error.message;
  // "'--bogus'", "'-p, --pid <value>'": name the long form, find what the user typed.
  const named = /'(-\w)?(?:, )?(--[^' ]+)?/.exec(message);
  const option = named?.[2] ?? named?.[1] ?? '';
  const typed = argv.findIndex((arg) => arg === option || arg === named?.[1]);
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      /* c8 ignore next -- parseArgs always quotes the argument */
      return `unexpected argument ${JSON.stringify(/'([^']*)'/.exec(message)?.[1] ?? '')}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      if (/does not take an argument/.test(message)) return `${option} takes no value`;
      /* c8 ignore next -- the option parseArgs names is always one the user typed */
      const next = typed >= 0 ? argv[typed + 1] : undefined;
      if (/ambiguous/.test(message) && next !== undefined) {
        return `${option} needs a value; ${JSON.stringify(next)} looks like an option (write ${option}=${next} if it is the value)`;
      }
      return `${option} needs a value`;
    }
    /* c8 ignore next 2 -- every parseArgs error of Node 20 has one of the codes above */
    default:
      return message.split('\n')[0];
  }
}

/**
 * Strict parse: unknown options, missing values and (unless the command takes some) any
 * argument that is not an option are usage errors that name it.
 */
export function parseCommandArgs(argv: string[], options: OptionSpec, allowPositionals = false): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (error) {
    throw new UsageError(usageMessage(error as NodeJS.ErrnoException, argv));
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Node's timers hold at most 2^31 - 1 ms (about 24.8 days); a longer one fires at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** "500ms", "5s", "2m", "1.5h" → ms. A number without a unit is refused: it was too easy to mean seconds. */
export function parseDuration(text: string, option: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new UsageError(`${option} takes a duration like 500ms, 5s or 2m, got ${JSON.stringify(text)}`);
  if (match[2] === undefined) {
    throw new UsageError(`${option} ${match[1]} has no unit: write ${match[1]}s for seconds (or ${match[1]}ms, ${match[1]}m)`);
  }
  const ms = Number(match[1]) * UNIT_MS[match[2]];
  if (!(ms > 0)) throw new UsageError(`${option} must be longer than zero, got ${JSON.stringify(text)}`);
  if (ms > MAX_DURATION_MS) throw new UsageError(`${option} ${text} is too long: at most 24.8 days (${MAX_DURATION_MS} ms)`);
  return ms;
}

/** A process id argument. */
export function parsePid(text: string, option = 'pid'): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0x7fffffff) {
    throw new UsageError(`${option} must be a process id (a positive integer), got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** The values of a repeatable (`multiple: true`) string option. */
export function many(value: ParsedArgs['values'][string]): string[] {
  return ((value ?? []) as unknown[]).map(String);
}

/**
 * The file of `-o FILE`, or null for stdout: no -o, or `-o -` (as `-` reads stdin where a
 * command reads a file). A file named "-" is still reachable as ./-.
 */
export function outputFile(value: ParsedArgs['values'][string]): string | null {
  return typeof value === 'string' && value !== '-' ? value : null;
}
