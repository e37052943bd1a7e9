/**
 * The objects known to fit the snapshot model (src/snapshot-schema.ts): checked there, or made
 * by the library itself. A module of its own so that the samplers can mark what they make
 * without loading the schema, which the commands that only sample never need.
 */

/** Whole snapshots (format, takenAt and host included) that fit. */
export const fitSnapshots = new WeakSet<object>();
/** Tracker samples (a snapshot less its header) that fit: every fitting snapshot is one too. */
export const fitStepInputs = new WeakSet<object>();
/** Thread lists (ProcessSample.threads) every thread of which fits. */
export const fitThreadLists = new WeakSet<object>();
/** Accelerator records that fit. */
export const fitAccelerators = new WeakSet<object>();

/** A snapshot the library made (snapshot()): remembered as fitting, without a walk. */
export function markProducedSnapshot(value: object): void {
  fitSnapshots.add(value);
  fitStepInputs.add(value);
}

/** A thread list a sampler made (sampleThreads, createThreadSampler). */
export function markProducedThreads(threads: object): void {
  fitThreadLists.add(threads);
}

/** An accelerator record sampleAccelerators made. */
export function markProducedAccelerator(accelerator: object): void {
  fitAccelerators.add(accelerator);
}
