/**
 * The metrics of a whole-host scan (serve --all): processes by verdict, a verdict series for
 * each process that is not healthy (healthy ones are counted, never listed: the cardinality is
 * the number of processes in trouble), and what the scan itself costs.
 */
import * as client from 'prom-client';
import type { HostEvent, HostWatcher, ProcessLabels } from '../host/watch';
import type { Verdict } from '../analyze/types';

const VERDICT_VALUE: Record<Verdict, number> = { healthy: 0, suspect: 1, hung: 2 };
/** A pass is ~1 ms per 200 threads: 0.5 ms to 2.5 s. */
const PASS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

function labelValues(l: ProcessLabels): Record<string, string> {
  return { pid: String(l.pid), name: l.name, unit: l.unit ?? '', container: l.container ?? '', uid: l.uid === null ? '' : String(l.uid) };
}

/** Register the host-scan metrics in `registry` and keep them up to date from `watcher`'s events. */
export function observeHost(registry: client.Registry, watcher: HostWatcher): void {
  const registers = [registry];
  const byVerdict = new client.Gauge({
    name: 'iokit_snap_host_processes',
    help: 'Processes of the host scan by verdict (a process not watched in full is healthy: nothing in it could be stuck at the last pass).',
    labelNames: ['verdict'],
    registers,
  });
  const verdict = new client.Gauge({
    name: 'iokit_snap_host_process_verdict',
    help: 'The verdict of each process of the host scan that is not healthy: 1 suspect, 2 hung (healthy processes are counted in iokit_snap_host_processes, not listed).',
    labelNames: ['pid', 'name', 'unit', 'container', 'uid'],
    registers,
  });
  const watched = new client.Gauge({ name: 'iokit_snap_host_watched_processes', help: 'Processes watched in full now (each had a thread that could be stuck).', registers });
  const passes = new client.Counter({ name: 'iokit_snap_host_passes_total', help: 'Cheap passes of the host scan.', registers });
  const processes = new client.Counter({ name: 'iokit_snap_host_scanned_processes_total', help: 'Processes read by the cheap passes (rate(): processes scanned per second).', registers });
  const threads = new client.Counter({ name: 'iokit_snap_host_scanned_threads_total', help: 'Threads read by the cheap passes (rate(): threads scanned per second).', registers });
  const duration = new client.Histogram({ name: 'iokit_snap_host_pass_duration_seconds', help: 'Wall time of each cheap pass.', buckets: PASS_BUCKETS, registers });
  /** The processes not healthy now, by pid: the series to export. */
  const troubled = new Map<number, { labels: ProcessLabels; verdict: Verdict }>();
  const drop = (pid: number): void => {
    const known = troubled.get(pid);
    if (known === undefined) return;
    verdict.remove(labelValues(known.labels));
    troubled.delete(pid);
  };
  const onEvent = (event: HostEvent): void => {
    if (event.type === 'pass') {
      passes.inc();
      processes.inc(event.processes);
      threads.inc(event.threads);
      duration.observe(event.durationMs / 1000);
      watched.set(event.watched);
      for (const v of ['healthy', 'suspect', 'hung'] as const) byVerdict.set({ verdict: v }, event.verdicts[v]);
      // A process whose full watch ended (settled healthy, or gone) is not in trouble any more.
      const now = new Set(watcher.watchedPids);
      for (const pid of [...troubled.keys()]) if (!now.has(pid)) drop(pid);
    } else if (event.type === 'sample') {
      if (event.discarded !== undefined) return;
      if (event.verdict === 'healthy') drop(event.pid);
      else {
        troubled.set(event.pid, { labels: event.labels, verdict: event.verdict });
        verdict.set(labelValues(event.labels), VERDICT_VALUE[event.verdict]);
      }
    } else if (event.type === 'exit') drop(event.pid);
  };
  for (const type of ['pass', 'sample', 'exit'] as const) watcher.on(type, onEvent);
}
