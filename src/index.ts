/**
 * iokit-snap: the public API. Re-exports only.
 *
 * The samplers and the error class load with the package; the rest (the snapshot files, the
 * importers, the analysis, the metrics and prom-client) each load on first use, through a
 * getter on this module's exports, so a program that only takes snapshots never loads the
 * others. (`import` from the ES module face binds every name when it is imported, which
 * loads them all.)
 */
import type * as SnapshotFile from './snapshot-file';
import type * as Ioreg from './import';
import type * as Reports from './import/reports';
import type * as Analyze from './analyze';
import type * as Explain from './explain';
import type * as Metrics from './metrics';
import type * as Go from './runtimes/go';
import type * as Memory from './runtimes/memory';
import type * as HostScan from './host/watch';

export { IokitSnapError } from './errors';
export type { IokitSnapErrorCode } from './errors';
export { sampleAccelerators, sampleThreads, createThreadSampler, snapshot, readHost } from './sample';

export declare const readSnapshot: typeof SnapshotFile.readSnapshot;
export declare const writeSnapshot: typeof SnapshotFile.writeSnapshot;
export declare const parseSnapshot: typeof SnapshotFile.parseSnapshot;
export declare const validateSnapshot: typeof SnapshotFile.validateSnapshot;
export declare const SNAPSHOT_FORMAT: typeof SnapshotFile.SNAPSHOT_FORMAT;
export declare const importIoreg: typeof Ioreg.importIoreg;
export declare const importReport: typeof Reports.importReport;
export declare const detectReportFormat: typeof Reports.detectReportFormat;
export declare const sampleGoroutines: typeof Go.sampleGoroutines;
export declare const readMemory: typeof Memory.readMemory;
export type { MemoryRange, ReadMemoryOptions } from './runtimes/memory';
export type { ImportReportOptions } from './import/reports';
export declare const compare: typeof Analyze.compare;
export declare const watch: typeof Analyze.watch;
export declare const Watcher: typeof Analyze.Watcher;
export type Watcher = Analyze.Watcher;
export declare const ProgressTracker: typeof Analyze.ProgressTracker;
export type ProgressTracker = Analyze.ProgressTracker;
export declare const watchHost: typeof HostScan.watchHost;
export declare const HostWatcher: typeof HostScan.HostWatcher;
export type HostWatcher = HostScan.HostWatcher;
export type { HostWatchOptions, HostSelector, HostEvent, HostPassEvent, HostProcessEvent, HostErrorEvent, ProcessLabels } from './host/watch';
export declare const explain: typeof Explain.explain;
export type { ExplainOptions } from './explain';
export type { ImportOptions } from './import';
export type * from './types';
export type * from './analyze/types';
export declare const createMetrics: typeof Metrics.createMetrics;
export declare const IokitSnapMetrics: typeof Metrics.IokitSnapMetrics;
export type IokitSnapMetrics = Metrics.IokitSnapMetrics;
export declare const Collector: typeof Metrics.Collector;
export type Collector = Metrics.Collector;
export declare const startMetricsServer: typeof Metrics.startMetricsServer;
export type * from './metrics';

/** Export `names` of the module `load` returns, loading it when one of them is first read. */
function onFirstUse(names: readonly string[], load: () => object): void {
  for (const name of names) {
    Object.defineProperty(exports, name, { enumerable: true, get: () => (load() as Record<string, unknown>)[name] });
  }
}

onFirstUse(['readSnapshot', 'writeSnapshot', 'parseSnapshot', 'validateSnapshot', 'SNAPSHOT_FORMAT'], () => require('./snapshot-file') as object);
onFirstUse(['importIoreg'], () => require('./import') as object);
onFirstUse(['importReport', 'detectReportFormat'], () => require('./import/reports') as object);
onFirstUse(['compare', 'watch', 'Watcher', 'ProgressTracker'], () => require('./analyze') as object);
onFirstUse(['watchHost', 'HostWatcher'], () => require('./host/watch') as object);
onFirstUse(['explain'], () => require('./explain') as object);
onFirstUse(['sampleGoroutines'], () => require('./runtimes/go') as object);
onFirstUse(['readMemory'], () => require('./runtimes/memory') as object);
onFirstUse(['createMetrics', 'IokitSnapMetrics', 'Collector', 'startMetricsServer'], () => require('./metrics') as object);
