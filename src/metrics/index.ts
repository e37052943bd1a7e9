/** Metrics for monitoring agents: createMetrics() for a prom-client registry, startMetricsServer() for `iokit-snap serve`. */
export { createMetrics, IokitSnapMetrics } from './metrics';
export type { MetricsOptions } from './metrics';
export { Collector } from './collector';
export type { CollectorOptions, CollectorEvent, MetricsSampleEvent, ProbeTiming } from './collector';
export type { ProcessSelection } from './selection';
export { startMetricsServer } from './server';
export type { ServeOptions, MetricsServer } from './server';
