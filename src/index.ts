/** iokit-snap: the public API. Re-exports only. */
export { IokitSnapError } from './errors';
export type { IokitSnapErrorCode } from './errors';
export { sampleAccelerators, sampleThreads, createThreadSampler, snapshot, readHost } from './sample';
export { sampleGoroutines } from './runtimes/go';
export { readMemory } from './runtimes/memory';
export type { MemoryRange, ReadMemoryOptions } from './runtimes/memory';
export { readSnapshot, writeSnapshot, parseSnapshot, validateSnapshot, SNAPSHOT_FORMAT } from './snapshot-file';
export { importIoreg } from './import';
export { importReport, detectReportFormat } from './import/reports';
export type { ImportReportOptions } from './import/reports';
export { compare, watch, Watcher, ProgressTracker } from './analyze';
export { explain } from './explain';
export type { ExplainOptions } from './explain';
export type { ImportOptions } from './import';
export type * from './types';
export type * from './analyze/types';
export { createMetrics, IokitSnapMetrics, Collector, startMetricsServer } from './metrics';
export type * from './metrics';
