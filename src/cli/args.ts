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

/** Strict parse: unknown options and missing values are usage errors that name the option. */
export function parseCommandArgs(argv: string[], options: OptionSpec, allowPositionals = true): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "5s", "2m", "1.5h" or a plain number of milliseconds → ms. */
export function parseDuration(text: string, option: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new UsageError(`${option} takes a duration like 500ms, 5s or 2m, got ${JSON.stringify(text)}`);
  const ms = Number(match[1]) * UNIT_MS[match[2] ?? 'ms'];
  if (!(ms > 0)) throw new UsageError(`${option} must be longer than zero, got ${JSON.stringify(text)}`);
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
