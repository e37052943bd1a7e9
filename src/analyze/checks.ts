/**
 * What compare(), watch() and the ProgressTracker check on the way in: options (each
 * read once, so a throwing getter is EINVAL too) and snapshots against the whole model,
 * so no TypeError can come out of the rules on a document the caller built by hand. A
 * snapshot is checked once per object: one checked before, or made by the library
 * (snapshot(), the samplers), is not walked again (src/snapshot-schema.ts).
 */
import { IokitSnapError } from '../errors';
import { checkBoolean, checkDuration, checkNonNegative, readOptions } from '../options';
import { checkStepInputShape, SchemaMismatch } from '../snapshot-schema';
import type { CompareOptions } from './types';

const COMPARE_KEYS = ['stallMs', 'spinRatio', 'expectExit'] as const;

/** stallMs (a duration, 0 allowed), spinRatio (≥ 0), expectExit (boolean). */
export function checkCompareOptions(who: string, options: unknown): CompareOptions {
  const checked = readOptions<CompareOptions>(who, options, COMPARE_KEYS);
  checkDuration(who, 'stallMs', checked.stallMs, { allowZero: true });
  checkNonNegative(who, 'spinRatio', checked.spinRatio);
  checkBoolean(who, 'expectExit', checked.expectExit);
  return checked;
}

/** A snapshot (or a tracker sample: host optional) the rules can read; EINVAL at its first bad field. Checked once per object. */
export function checkSnapshotArgument(who: string, value: unknown, which: string): void {
  try {
    checkStepInputShape(value);
  } catch (error) {
    /* c8 ignore next -- the schema throws only SchemaMismatch; anything else is a bug to see as is */
    if (!(error instanceof SchemaMismatch)) throw error;
    throw new IokitSnapError(
      'EINVAL',
      `${who}: ${which} is not an iokit-snap/1 snapshot: ${error.message}. Take snapshots with snapshot(), load saved ones with readSnapshot()`,
    );
  }
}
