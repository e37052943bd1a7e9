/** Hang analysis: pure functions over the iokit-snap/1 model, and the watcher built on them. */
export { compare } from './compare';
export { ProgressTracker } from './progress';
export { watch, Watcher } from './watch';
export type * from './types';
