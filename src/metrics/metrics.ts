/**
 * createMetrics(): the iokit-snap metrics, registered in a prom-client registry (the agent's
 * own, or serve's), and updated from the collector's sample events. Names follow Prometheus
 * conventions and node_exporter / dcgm-exporter where those name the same thing; the mapping
 * and the cardinality bound are in docs/metrics.md.
 *
 * Counters and histograms are updated from every sample; the per-process and per-accelerator
 * gauges are rebuilt from the latest sample when the registry is read (a scrape every 15 s
 * need not pay for a rebuild every second), so a process that exited or an accelerator that
 * went away is not exported any more. Labels are ids, names
 * and fixed vocabularies only (no tid, no message text): at most one series per
 * (process, finding kind).
 */
import * as fs from 'node:fs';
import * as client from 'prom-client';
import { cpuOf } from '../analyze/calls';
import type { Finding, Severity } from '../analyze/types';
import { IokitSnapError } from '../errors';
import type { Accelerator, ThreadState } from '../types';
import { CALL_CLASSES, callClassOf, type CallClass } from './call-class';
import { Collector, type CollectorEvent, type CollectorOptions, type MetricsSampleEvent } from './collector';

export const THREAD_STATES: ThreadState[] = ['running', 'runnable', 'sleeping', 'waiting', 'uninterruptible', 'stopped', 'halted', 'zombie', 'unknown'];
export const PCI_POWER_STATES = ['D0', 'D1', 'D2', 'D3hot', 'D3cold'];
/** A finding's severity as the verdict it makes: 2 hung, 1 suspect, 0 healthy. */
const VERDICT_OF: Record<Severity, number> = { critical: 2, warning: 1, info: 0 };

export interface MetricsOptions {
  /** The prom-client Registry to register in (default: prom-client's global register). */
  registry?: client.Registry;
  /** Also register prom-client's default process metrics (CPU, RSS, event loop) (default false: an agent has its own). */
  defaultMetrics?: boolean;
}

/** Probe duration buckets, seconds: a healthy /proc read is ~1 ms, a deadline is seconds. */
const PROBE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The pid a probe-timed-out finding is about ("pid 4242"), if any. */
function pidOfSubject(subject: string): number | null {
  const m = /^pid (\d+)$/.exec(subject);
  return m === null ? null : Number(m[1]);
}

/**
 * iokit-snap's Prometheus metrics in a prom-client registry (the default one unless given):
 * watch() starts a Collector whose samples update them; scrapes read the latest sample.
 */
export class IokitSnapMetrics {
  readonly registry: client.Registry;
  private readonly g: ReturnType<typeof defineMetrics>;
  /** Per pid: each thread's CPU ns last seen and the running total (exited threads keep their share). */
  private readonly cpu = new Map<number, { byTid: Map<number, number>; totalNs: number }>();
  private readonly names = new Map<number, string>();
  private lastSampleMs = 0;
  /**
   * The latest sample, counted down to numbers, until a scrape turns it into gauges. It holds
   * no thread objects: a sample's thousands of them die young (cheap for the GC) instead of
   * living until the next scrape.
   */
  private pending: Pending | null = null;
  private readonly collectors = new Set<Collector>();

  constructor(options: MetricsOptions = {}) {
    this.registry = options.registry ?? client.register;
    if (this.registry.getSingleMetric('iokit_snap_samples_total') !== undefined) {
      throw new IokitSnapError('EINVAL', 'the iokit-snap metrics are already registered in this registry: call createMetrics() once per registry and keep the result');
    }
    this.g = defineMetrics(this.registry, () => this.lastSampleMs, () => this.render());
    if (options.defaultMetrics === true) registerDefaultMetrics(this.registry);
  }

  /**
   * Start watching processes (pids, name/command-line patterns, cgroups) and the accelerators,
   * and keep these metrics up to date from it. close() the returned collector to stop.
   */
  watch(options: CollectorOptions): Collector {
    const collector = new Collector(options);
    this.observe(collector);
    return collector;
  }

  /** Update from every sample event of a collector (created by watch() here, or your own). */
  observe(collector: Collector): this {
    this.collectors.add(collector);
    const onSample = (event: CollectorEvent): void => {
      if (event.type === 'sample') this.update(event);
    };
    collector.on('sample', onSample);
    collector.once('close', () => {
      collector.off('sample', onSample);
      this.collectors.delete(collector);
    });
    return this;
  }

  /** Take one sample event in. */
  update(event: MetricsSampleEvent): void {
    const g = this.g;
    this.lastSampleMs = Date.now();
    g.samples.inc();
    if (event.discarded !== undefined) g.discarded.inc();
    g.lastSample.set(this.lastSampleMs / 1000);
    if (event.selection !== undefined) {
      // A handful of series (one per selector given), replaced whole: a selector's count can only be its latest.
      g.selectorProcesses.reset();
      for (const c of event.selection) g.selectorProcesses.set({ kind: c.kind, selector: c.selector }, c.processes);
    }
    for (const probe of event.probes) {
      g.probeDuration.observe({ probe: probe.probe }, probe.seconds);
      if (probe.timedOut) g.probeTimeouts.inc({ probe: probe.probe });
    }
    // What must not miss a sample: each thread's CPU (exited threads keep their share), and names.
    const byPid = new Map<number, Finding[]>();
    for (const f of event.findings) {
      const pid = f.ref.pid ?? (f.kind === 'probe-timed-out' ? pidOfSubject(f.subject) : null);
      if (pid === null || f.ref.accelerator !== undefined) continue;
      const list = byPid.get(pid);
      if (list === undefined) byPid.set(pid, [f]);
      else list.push(f);
    }
    const present = new Set<number>();
    const processes: ProcessCounts[] = [];
    for (const p of event.processes) {
      present.add(p.pid);
      this.names.set(p.pid, p.name);
      let cpu = this.cpu.get(p.pid);
      if (cpu === undefined) this.cpu.set(p.pid, (cpu = { byTid: new Map<number, number>(), totalNs: 0 }));
      const states = new Array<number>(THREAD_STATES.length).fill(0);
      const classes = new Array<number>(CALL_CLASSES.length).fill(0);
      for (const t of p.threads) {
        const ns = cpuOf(t);
        cpu.totalNs += Math.max(0, ns - (cpu.byTid.get(t.tid) ?? 0));
        cpu.byTid.set(t.tid, ns);
        states[STATE_INDEX.get(t.state)!]++;
        const cls = callClassOf(t);
        if (cls !== null) classes[CLASS_INDEX.get(cls)!]++;
      }
      // Every current tid is set: more entries than threads means some exited; drop them.
      if (cpu.byTid.size !== p.threads.length) cpu.byTid = new Map(p.threads.map((t) => [t.tid, cpuOf(t)]));
      processes.push({ pid: p.pid, name: p.name, states, classes });
    }
    for (const pid of this.cpu.keys()) if (!present.has(pid)) this.cpu.delete(pid);
    for (const pid of this.names.keys()) if (!present.has(pid) && !byPid.has(pid)) this.names.delete(pid);
    this.pending = { processes, byPid, accelerators: event.accelerators, findings: event.findings };
  }

  /** Turn the latest sample into gauges: called when the registry is read. */
  private render(): void {
    if (this.pending === null) return;
    const pending = this.pending;
    this.pending = null;
    this.renderProcesses(pending);
    this.renderAccelerators(pending);
  }

  private renderProcesses({ processes, byPid }: Pending): void {
    const g = this.g;
    for (const metric of [g.threads, g.blocked, g.cpuSeconds, g.verdict, g.findings]) metric.reset();
    for (const p of processes) {
      const labels = { pid: String(p.pid), name: p.name };
      THREAD_STATES.forEach((state, i) => g.threads.set({ ...labels, state }, p.states[i]));
      CALL_CLASSES.forEach((cls, i) => g.blocked.set({ ...labels, call_class: cls }, p.classes[i]));
      g.cpuSeconds.inc(labels, this.cpu.get(p.pid)!.totalNs / 1e9);
    }
    // Every watched pid gets a verdict, also one whose sample timed out this time.
    const pids = new Set([...processes.map((p) => p.pid), ...byPid.keys()]);
    for (const pid of pids) {
      const name = this.names.get(pid) ?? 'unknown';
      const labels = { pid: String(pid), name };
      const findings = byPid.get(pid) ?? [];
      let verdict = 0; // a loop, not Math.max(...): a process may have more findings than a call takes arguments
      for (const f of findings) verdict = Math.max(verdict, VERDICT_OF[f.severity]);
      g.verdict.set(labels, verdict);
      for (const [kind, { n, severity }] of tally(findings)) g.findings.set({ ...labels, kind, severity }, n);
    }
    g.watched.set(processes.length);
  }

  private renderAccelerators(event: Pick<Pending, 'accelerators' | 'findings'>): void {
    const g = this.g;
    for (const metric of g.acceleratorMetrics) metric.reset();
    const stuck = new Set<string>();
    const findings = new Map<string, Finding[]>();
    for (const f of event.findings) {
      const id = f.ref.accelerator;
      if (id === undefined) continue;
      if (f.kind === 'power-transition' && f.severity !== 'info') stuck.add(id);
      const list = findings.get(id);
      if (list === undefined) findings.set(id, [f]);
      else list.push(f);
    }
    for (const a of event.accelerators) {
      const labels = { accelerator: a.id };
      g.info.set({ ...labels, name: a.name, class: a.className, vendor: text(a.vendor), model: text(a.model), location: text(a.location) }, 1);
      setAccelerator(g, a, labels);
      if (a.power !== null && typeof a.power.state === 'number') g.powerTransitionStuck.set(labels, stuck.has(a.id) ? 1 : 0);
      for (const [kind, { n, severity }] of tally(findings.get(a.id) ?? [])) g.acceleratorFindings.set({ ...labels, kind, severity }, n);
    }
    g.accelerators.set(event.accelerators.length);
  }
}

type Gauges = ReturnType<typeof defineMetrics>;

/** How old the process_open_fds count may be: counting is a listing of /proc/self/fd. */
const OPEN_FDS_MAX_AGE_MS = 60_000;

/**
 * prom-client's default metrics (the exporter's own CPU, memory, event loop), with two costs
 * cut that an exporter holding thousands of fds pays on every scrape or all the time
 * (bench/agent.js): the event-loop delay is sampled once a second, not every 10 ms (100
 * wake-ups a second cost an idle exporter about as much CPU as all its /proc reads), and
 * process_open_fds is counted at most once a minute (a listing of /proc/self/fd: about 4 µs
 * per fd, and the thread samplers keep a few per watched thread).
 */
function registerDefaultMetrics(registry: client.Registry): void {
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  const counted = registry.getSingleMetric('process_open_fds');
  /* c8 ignore next -- prom-client counts open fds on Linux only */
  if (counted === undefined) return;
  registry.removeSingleMetric('process_open_fds');
  let countedAt = Number.NEGATIVE_INFINITY;
  let count = 0;
  new client.Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors (counted at most once a minute).',
    registers: [registry],
    collect() {
      const now = Date.now();
      if (now - countedAt >= OPEN_FDS_MAX_AGE_MS) {
        try {
          count = fs.readdirSync('/proc/self/fd').length - 1; // less the one the listing used
          countedAt = now;
          /* c8 ignore next 3 -- /proc/self/fd is always there on Linux; prom-client's own gives up the same way */
        } catch {
          return;
        }
      }
      this.set(count);
    },
  });
}

/** One process of a sample, as counts: threads per state and per call class (THREAD_STATES, CALL_CLASSES order). */
interface ProcessCounts {
  pid: number;
  name: string;
  states: number[];
  classes: number[];
}

interface Pending {
  processes: ProcessCounts[];
  byPid: Map<number, Finding[]>;
  accelerators: Accelerator[];
  findings: Finding[];
}

const STATE_INDEX = new Map(THREAD_STATES.map((s, i) => [s, i]));
const CLASS_INDEX = new Map(CALL_CLASSES.map((c, i) => [c, i]));

/** A label value for a field that may be unknown: unknown is the empty string (Prometheus's "no value"). */
function text(value: string | null | undefined): string {
  return value ?? '';
}

/**
 * Findings by kind: how many, and the worst severity of the kind. Findings come most severe
 * first (compare() and watch() sort them), so the first of a kind is its worst.
 */
function tally(findings: Finding[]): Map<string, { n: number; severity: Severity }> {
  const perKind = new Map<string, { n: number; severity: Severity }>();
  for (const f of findings) {
    const k = perKind.get(f.kind);
    if (k === undefined) perKind.set(f.kind, { n: 1, severity: f.severity });
    else k.n++;
  }
  return perKind;
}

function setAccelerator(g: Gauges, a: Accelerator, labels: { accelerator: string }): void {
  if (a.busy !== null) {
    g.busyCount.set(labels, a.busy.count);
    if (a.busy.timeNs !== null) g.busySeconds.inc(labels, a.busy.timeNs / 1e9);
  }
  if (a.power !== null) {
    if (typeof a.power.state === 'number') g.powerState.set(labels, a.power.state);
    else for (const state of PCI_POWER_STATES) g.pciPowerState.set({ ...labels, state }, a.power.state === state ? 1 : 0);
    if (a.power.maxState !== null) g.powerMaxState.set(labels, a.power.maxState);
    if (a.power.drawMilliwatts != null) g.powerWatts.set(labels, a.power.drawMilliwatts / 1000);
    if (a.power.performanceState != null) g.performanceState.set(labels, a.power.performanceState);
  }
  if (a.probeScore !== null) g.probeScore.set(labels, a.probeScore);
  if (a.utilization !== null) {
    const u = a.utilization;
    for (const [engine, percent] of [['device', u.devicePercent], ['renderer', u.rendererPercent], ['tiler', u.tilerPercent]] as const) {
      if (percent !== null) g.utilization.set({ ...labels, engine }, percent / 100);
    }
  }
  if (a.memory !== null) {
    if (a.memory.inUseBytes !== null) g.memoryUsed.set(labels, a.memory.inUseBytes);
    if (a.memory.allocatedBytes !== null) g.memoryAllocated.set(labels, a.memory.allocatedBytes);
  }
  if (a.recovery !== null) g.recoveries.inc(labels, a.recovery.count);
  for (const q of a.queues ?? []) g.queuePending.set({ ...labels, queue: String(q.id) }, Math.max(0, q.submitted - q.finished));
  if (a.commandSubmissionEnabled != null) g.commandSubmission.set(labels, Number(a.commandSubmissionEnabled));
  if (a.health != null) {
    if (a.health.gpuLost !== null) g.gpuLost.set(labels, Number(a.health.gpuLost));
    if (a.health.resetRequired !== null) g.resetRequired.set(labels, Number(a.health.resetRequired));
  }
}

function defineMetrics(registry: client.Registry, lastSampleMs: () => number, render: () => void) {
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: string[] = []) => new client.Gauge({ name: `iokit_snap_${name}`, help, labelNames, registers });
  const counter = (name: string, help: string, labelNames: string[] = []) => new client.Counter({ name: `iokit_snap_${name}`, help, labelNames, registers });
  const proc = ['pid', 'name'];
  const acc = ['accelerator'];
  const m = {
    // the exporter
    samples: counter('samples_total', 'Samples taken (each: the selected processes and the accelerators).'),
    discarded: counter(
      'samples_discarded_total',
      'Samples whose window was thrown away because our own timer fired late (this process stopped or starved, the machine asleep): stall clocks restart.',
    ),
    lastSample: gauge('last_sample_timestamp_seconds', 'Unix time of the latest completed sample: what every other series describes.'),
    sampleAge: new client.Gauge({
      name: 'iokit_snap_sample_age_seconds',
      help: 'Seconds since the latest completed sample (a scrape never waits for a probe; this says how old its answer is).',
      registers,
      collect() {
        const last = lastSampleMs();
        if (last > 0) this.set((Date.now() - last) / 1000);
      },
    }),
    probeDuration: new client.Histogram({
      name: 'iokit_snap_probe_duration_seconds',
      help: 'How long each probe took: threads (one process) or accelerators (all of them).',
      labelNames: ['probe'],
      buckets: PROBE_BUCKETS,
      registers,
    }),
    probeTimeouts: counter('probe_timeouts_total', 'Probes that did not return within their deadline (the system, a driver or a target may be hung).', ['probe']),
    // Registered before every gauge render() sets: prom-client reads metrics in this order.
    watched: new client.Gauge({
      name: 'iokit_snap_watched_processes',
      help: 'Processes sampled in the latest sample.',
      registers,
      collect: render,
    }),
    accelerators: gauge('accelerators', 'Accelerators found in the latest sample.'),
    selectorProcesses: gauge(
      'selector_processes',
      'Processes each selector selects now (kind: pid, match or cgroup; selector: as given). 0 is a selector that matches nothing: a pid that is not there, a pattern no process matches, a cgroup that does not exist or is empty.',
      ['kind', 'selector'],
    ),
    // processes
    threads: gauge('process_threads', 'Threads of a watched process by scheduler state.', [...proc, 'state']),
    blocked: gauge(
      'process_threads_blocked',
      'Threads of a watched process blocked in a call, by class: event_wait, sleep, child, lock, io, driver (a GPU driver call), other.',
      [...proc, 'call_class'],
    ),
    cpuSeconds: counter('process_cpu_seconds_total', 'CPU time used by the threads of a watched process since it was first sampled (user + system).', proc),
    verdict: gauge('process_verdict', "The process's current verdict: 0 healthy, 1 suspect, 2 hung.", proc),
    findings: gauge(
      'process_findings',
      'Findings that hold now about a watched process, by kind; severity is the worst of that kind (one series per process and kind).',
      [...proc, 'kind', 'severity'],
    ),
    // accelerators
    info: gauge('accelerator_info', 'An accelerator (always 1): its name, class (IOKit class or Linux driver), vendor, model and location.', [
      ...acc,
      'name',
      'class',
      'vendor',
      'model',
      'location',
    ]),
    busyCount: gauge(
      'accelerator_iokit_busy_operations',
      'IOService busy count: registration, matching or termination operations in progress on the service. Not GPU load.',
      acc,
    ),
    busySeconds: counter(
      'accelerator_iokit_busy_seconds_total',
      'Accumulated time the IOService was busy with registration, matching or termination. Not GPU load.',
      acc,
    ),
    powerState: gauge('accelerator_power_state', 'IOKit power state index (CurrentPowerState).', acc),
    powerMaxState: gauge('accelerator_power_max_state', 'The highest IOKit power state index of the device.', acc),
    powerTransitionStuck: gauge('accelerator_power_transition_stuck', '1 while a power transition (DesiredPowerState/MachineState) has persisted for the stall time.', acc),
    pciPowerState: gauge('accelerator_pci_power_state', 'Linux PCI power state (power_state): 1 for the current D-state, 0 for the others.', [...acc, 'state']),
    powerWatts: gauge('accelerator_power_usage_watts', 'Board power draw (NVML).', acc),
    performanceState: gauge('accelerator_performance_state', 'NVIDIA performance state P0..P15 as a number (NVML).', acc),
    probeScore: gauge('accelerator_probe_score', 'The IOKit probe score the driver matched with.', acc),
    utilization: gauge('accelerator_utilization_ratio', "The driver's own utilization figure, 0..1, by engine: device, renderer, tiler.", [...acc, 'engine']),
    memoryUsed: gauge('accelerator_memory_used_bytes', 'Device memory in use.', acc),
    memoryAllocated: gauge('accelerator_memory_allocated_bytes', 'Device memory allocated (macOS: Alloc system memory; Linux: total VRAM).', acc),
    recoveries: counter('accelerator_recoveries_total', 'GPU recoveries (resets after a fault) the driver counted.', acc),
    queuePending: gauge('accelerator_queue_pending_commands', 'Commands submitted to a driver work queue and not finished yet.', [...acc, 'queue']),
    commandSubmission: gauge('accelerator_command_submission_enabled', '1 when the driver accepts command submission (AGX CommandSubmissionEnabled).', acc),
    gpuLost: gauge('accelerator_gpu_lost', '1 when NVML says the GPU is lost (fell off the bus).', acc),
    resetRequired: gauge('accelerator_reset_required', '1 when NVML says the GPU needs a reset.', acc),
    acceleratorFindings: gauge(
      'accelerator_findings',
      'Findings that hold now about an accelerator, by kind; severity is the worst of that kind.',
      [...acc, 'kind', 'severity'],
    ),
  };
  return {
    ...m,
    acceleratorMetrics: [
      m.info,
      m.busyCount,
      m.busySeconds,
      m.powerState,
      m.powerMaxState,
      m.powerTransitionStuck,
      m.pciPowerState,
      m.powerWatts,
      m.performanceState,
      m.probeScore,
      m.utilization,
      m.memoryUsed,
      m.memoryAllocated,
      m.recoveries,
      m.queuePending,
      m.commandSubmission,
      m.gpuLost,
      m.resetRequired,
      m.acceleratorFindings,
    ] as Array<client.Gauge | client.Counter>,
  };
}

/** Register the iokit-snap metrics in `registry` (an agent's own prom-client Registry). */
export function createMetrics(options: MetricsOptions = {}): IokitSnapMetrics {
  return new IokitSnapMetrics(options);
}
