/**
 * Checks for what callers pass to the API: options objects, pids, durations. Every
 * failure is IokitSnapError EINVAL naming the option as the caller spelled it, with the
 * value shown as it is (NaN, a BigInt), never a plain TypeError from reading it.
 */
import { IokitSnapError } from './errors';
import { describeValue } from './describe-value';

/** setTimeout's limit (2^31 − 1 ms, about 24.8 days); past it Node fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function invalid(who: string, message: string): never {
  throw new IokitSnapError('EINVAL', `${who}: ${message}`);
}

/**
 * A plain copy of the options the callee knows, each read once. A getter or proxy trap
 * that throws becomes EINVAL naming the option; what is not listed is not read at all.
 */
export function readOptions<T extends object>(who: string, options: unknown, keys: readonly (keyof T & string)[]): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    invalid(who, `options must be an object, got ${describeValue(options)}`);
  }
  const copy: Partial<T> = {};
  for (const key of keys) {
    let value: unknown;
    try {
      value = (options as Record<string, unknown>)[key];
    } catch (error) {
      invalid(who, `reading option ${key} threw: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (value !== undefined) (copy as Record<string, unknown>)[key] = value;
  }
  return copy;
}

/** A positive integer pid (what kill(2) and the kernel accept). */
export function checkPid(who: string, pid: unknown, name = 'pid'): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1 || pid > 0x7fffffff) {
    invalid(who, `${name} must be a positive integer process id, got ${describeValue(pid)}`);
  }
  return pid;
}

/** A duration in ms: finite, positive (or zero when allowed), within the timer limit. */
export function checkDuration(who: string, name: string, value: unknown, options: { allowZero?: boolean } = {}): number | undefined {
  if (value === undefined) return undefined;
  const allowZero = options.allowZero === true;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    invalid(who, `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number of milliseconds, got ${describeValue(value)}`);
  }
  if (value > MAX_TIMER_MS) {
    invalid(who, `${name} must be at most ${MAX_TIMER_MS} ms (about 24.8 days, the timer limit), got ${describeValue(value)}`);
  }
  return value;
}

/** A non-negative finite number (ratios). */
export function checkNonNegative(who: string, name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) invalid(who, `${name} must be a non-negative number, got ${describeValue(value)}`);
  return value;
}

export function checkBoolean(who: string, name: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') invalid(who, `${name} must be true or false, got ${describeValue(value)}`);
  return value;
}
