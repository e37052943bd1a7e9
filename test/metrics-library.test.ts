/**
 * createMetrics(): the metrics in an agent's own prom-client registry, kept up to date by a
 * live watch of a real process; and every accelerator metric from real captured data (the
 * Apple M4 ioreg capture in test/fixtures/ioreg, the sysfs fixture trees in test/fixtures/sys)
 * judged by the same ProgressTracker serve uses.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as client from 'prom-client';
import { ProgressTracker } from '../src/analyze/progress';
import { importIoreg } from '../src/import';
import * as api from '../src/index';
import * as metricsModule from '../src/metrics';
import { createMetrics, IokitSnapMetrics } from '../src/metrics';
import type { MetricsSampleEvent } from '../src/metrics/collector';
import { callClassOf } from '../src/metrics/call-class';
import { sampleAccelerators, sampleThreads } from '../src/sample';
import type { Accelerator, ThreadSample } from '../src/types';
import { start, waitFor } from './helpers/targets';
import { parseText } from './helpers/prometheus';

const linux = process.platform === 'linux' ? false : 'the live watch reads /proc';
const M4 = 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt';
const m4 = (): Accelerator => importIoreg(fs.readFileSync(path.join(__dirname, 'fixtures', 'ioreg', M4), 'utf8')).accelerators[0];

async function text(registry: client.Registry) {
  return parseText(await registry.metrics());
}

t.test("the README's three lines: an agent's own registry, updated from a live watch", { skip: linux }, async (t) => {
  const target = await start(t, 'epoll-idle');
  const registry = new client.Registry();
  new client.Gauge({ name: 'agent_own_metric', help: 'the agent was here first', registers: [registry] }).set(1);

  const metrics = createMetrics({ registry });
  const watching = metrics.watch({ pids: [target.pid], intervalMs: 100, stallMs: 1000, accelerators: false });
  t.teardown(() => watching.close());

  const scraped = await waitFor(async () => {
    const s = await text(registry);
    return s.value('iokit_snap_process_verdict', { pid: String(target.pid) }) === 0 && (s.value('iokit_snap_samples_total') ?? 0) >= 3 && s;
  }, 'the watched process in the registry');
  t.equal(scraped.value('agent_own_metric'), 1, "the agent's own metrics are still there");
  t.notOk(scraped.families.has('process_resident_memory_bytes'), 'no default metrics unless asked: the agent has its own');
  t.ok(scraped.value('iokit_snap_process_threads_blocked', { pid: String(target.pid), call_class: 'event_wait' })! >= 1);
  t.throws(() => createMetrics({ registry }), { code: 'EINVAL', message: /already registered in this registry/ });

  await watching.close();
  const samples = (await text(registry)).value('iokit_snap_samples_total');
  t.equal(watching.listenerCount('sample'), 0, 'closing the watch detaches the metrics');
  t.equal((await text(registry)).value('iokit_snap_samples_total'), samples);
});

t.test('the public API exports the metrics side', async (t) => {
  for (const name of ['createMetrics', 'IokitSnapMetrics', 'Collector', 'startMetricsServer'] as const) {
    t.equal(api[name], metricsModule[name], name);
    t.type(api[name], 'function');
  }
});

t.test("createMetrics() without a registry uses prom-client's global one", async (t) => {
  t.teardown(() => client.register.clear());
  const metrics = createMetrics();
  t.equal(metrics.registry, client.register);
  t.ok(client.register.getSingleMetric('iokit_snap_process_verdict'));
  t.ok(metrics instanceof IokitSnapMetrics);
});

function event(tracker: ProgressTracker, nowNs: number, accelerators: Accelerator[], extra: Partial<MetricsSampleEvent> = {}): MetricsSampleEvent {
  const report = tracker.step({ monotonicNs: nowNs, processes: [], accelerators, limits: [], host: { platform: 'darwin' } });
  return {
    type: 'sample',
    at: new Date().toISOString(),
    monotonicNs: nowNs,
    verdict: report.verdict,
    findings: report.findings,
    threads: 0,
    processes: [],
    report,
    accelerators,
    limits: [],
    probes: [{ probe: 'accelerators', seconds: 0.004, timedOut: false }],
    ...extra,
  };
}

t.test('accelerator metrics from the Apple M4 capture: a recovery and a stuck power transition', async (t) => {
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const tracker = new ProgressTracker({ stallMs: 1000 });
  const before = m4();
  before.power = { ...before.power!, desiredState: 2 };
  metrics.update(event(tracker, 1e9, [before]));
  const healthy = await text(registry);
  const id = { accelerator: '0x100000478' };
  t.same(healthy.series('iokit_snap_accelerator_info')[0].labels, {
    accelerator: '0x100000478',
    name: before.name,
    class: 'AGXAcceleratorG16G',
    vendor: before.vendor ?? '',
    model: before.model ?? '',
    location: before.location ?? '',
  });
  t.equal(healthy.value('iokit_snap_accelerator_iokit_busy_operations', id), 0);
  t.equal(healthy.value('iokit_snap_accelerator_iokit_busy_seconds_total', id), 0.752);
  t.equal(healthy.value('iokit_snap_accelerator_power_state', id), 1);
  t.equal(healthy.value('iokit_snap_accelerator_power_max_state', id), 1);
  t.equal(healthy.value('iokit_snap_accelerator_power_transition_stuck', id), 0, 'a transition seen once is in progress, not stuck');
  t.equal(healthy.value('iokit_snap_accelerator_probe_score', id), 10000);
  t.equal(healthy.value('iokit_snap_accelerator_utilization_ratio', { ...id, engine: 'device' }), 0.17);
  t.equal(healthy.value('iokit_snap_accelerator_utilization_ratio', { ...id, engine: 'tiler' }), 0.15);
  t.equal(healthy.value('iokit_snap_accelerator_memory_used_bytes', id), 430571520);
  t.equal(healthy.value('iokit_snap_accelerator_memory_allocated_bytes', id), 4597121024);
  t.equal(healthy.value('iokit_snap_accelerator_recoveries_total', id), 0);
  t.equal(healthy.series('iokit_snap_accelerator_queue_pending_commands', id).length, before.queues!.length, 'one series per driver queue');
  t.equal(healthy.value('iokit_snap_accelerator_command_submission_enabled', id), 1);
  t.equal(healthy.series('iokit_snap_accelerator_pci_power_state').length, 0, 'no PCI D-state on macOS');
  t.equal(healthy.value('iokit_snap_accelerators'), 1);

  const after = m4();
  after.power = { ...after.power!, desiredState: 2 };
  after.recovery = { count: 1, lastTime: 12345 };
  metrics.update(event(tracker, 3e9, [after]));
  const faulted = await text(registry);
  t.equal(faulted.value('iokit_snap_accelerator_recoveries_total', id), 1);
  t.equal(faulted.value('iokit_snap_accelerator_power_transition_stuck', id), 1, 'the same DesiredPowerState for longer than the stall');
  t.equal(faulted.value('iokit_snap_accelerator_findings', { ...id, kind: 'recovery', severity: 'critical' }), 1);
  t.equal(faulted.series('iokit_snap_accelerator_findings', { ...id, kind: 'power-transition' }).length, 1);

  metrics.update(event(tracker, 4e9, []));
  const gone = await text(registry);
  t.equal(gone.series('iokit_snap_accelerator_info').length, 0, 'an accelerator that went away is no longer exported');
  t.equal(gone.value('iokit_snap_samples_total'), 3);
  t.equal(gone.series('iokit_snap_probe_duration_seconds').length, 1, 'one histogram per probe kind');
});

t.test('Linux accelerators from the sysfs fixtures: PCI D-state as a state set, amdgpu busy and VRAM', { skip: linux }, async (t) => {
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const tracker = new ProgressTracker();
  const missing = '/nonexistent/libnvidia-ml.so.1';
  const sleeping = await sampleAccelerators({ sysRoot: path.join(__dirname, 'fixtures', 'sys', 'amd-laptop-suspended'), nvmlLibrary: missing });
  const busy = await sampleAccelerators({ sysRoot: path.join(__dirname, 'fixtures', 'sys', 'amd-workstation'), nvmlLibrary: missing });
  // Two machines: their GPUs may share a PCI address, so one at a time.
  metrics.update(event(tracker, 1e9, sleeping.accelerators));
  let s = await text(registry);
  const d3 = { accelerator: sleeping.accelerators.find((a) => a.power?.state === 'D3cold')!.id };
  t.equal(s.value('iokit_snap_accelerator_pci_power_state', { ...d3, state: 'D3cold' }), 1);
  t.equal(s.value('iokit_snap_accelerator_pci_power_state', { ...d3, state: 'D0' }), 0);
  t.equal(s.series('iokit_snap_accelerator_pci_power_state', d3).length, 5, 'D0, D1, D2, D3hot, D3cold');
  t.equal(s.series('iokit_snap_accelerator_utilization_ratio', d3).length, 0, 'a sleeping GPU is not read: no value, not zero');
  metrics.update(event(tracker, 2e9, busy.accelerators));
  s = await text(registry);
  const radeon = busy.accelerators.find((a) => a.utilization?.devicePercent != null)!;
  t.equal(s.value('iokit_snap_accelerator_utilization_ratio', { accelerator: radeon.id, engine: 'device' }), radeon.utilization!.devicePercent! / 100);
  t.equal(s.value('iokit_snap_accelerator_memory_used_bytes', { accelerator: radeon.id }), radeon.memory!.inUseBytes);
  t.equal(s.series('iokit_snap_accelerator_power_state').length, 0, 'no IOKit power index on Linux');
  t.equal(s.series('iokit_snap_accelerator_power_transition_stuck').length, 0);
});

t.test('NVML facts: health, power draw, performance state', async (t) => {
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const gpu: Accelerator = {
    ...m4(),
    id: '0000:01:00.0',
    busy: null,
    power: { state: 'D0', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'active', performanceState: 2, drawMilliwatts: 312000 },
    health: { gpuLost: true, resetRequired: false },
    queues: null,
    recovery: null,
    commandSubmissionEnabled: null,
  };
  metrics.update(event(new ProgressTracker(), 1e9, [gpu]));
  const s = await text(registry);
  const id = { accelerator: '0000:01:00.0' };
  t.equal(s.value('iokit_snap_accelerator_gpu_lost', id), 1);
  t.equal(s.value('iokit_snap_accelerator_reset_required', id), 0);
  t.equal(s.value('iokit_snap_accelerator_power_usage_watts', id), 312);
  t.equal(s.value('iokit_snap_accelerator_performance_state', id), 2);
  t.equal(s.series('iokit_snap_accelerator_iokit_busy_operations', id).length, 0, 'no IOKit busy state: no series, not zero');
});

t.test('call classes: each blocked call maps to one bounded label value', async (t) => {
  const thread = (call: string | null, state: ThreadSample['state'] = 'sleeping', target?: string): ThreadSample => ({
    tid: 1,
    name: null,
    state,
    userNs: 0,
    systemNs: 0,
    contextSwitches: null,
    suspendCount: null,
    blockedIn: call === null ? null : { call, number: 0, ...(target !== undefined ? { fd: 3, target } : {}) },
  });
  t.equal(callClassOf(thread('epoll_wait')), 'event_wait');
  t.equal(callClassOf(thread('nanosleep')), 'sleep');
  t.equal(callClassOf(thread('wait4')), 'child');
  t.equal(callClassOf(thread('futex')), 'lock');
  t.equal(callClassOf(thread('psynch_mutexwait', 'waiting')), 'lock');
  t.equal(callClassOf(thread('read', 'sleeping', 'pipe:[1]')), 'io');
  t.equal(callClassOf(thread('ioctl', 'sleeping', '/dev/nvidia0')), 'driver');
  t.equal(callClassOf(thread('ioctl', 'sleeping', '/dev/tty1')), 'io');
  t.equal(callClassOf(thread('iokit_user_client_trap', 'waiting')), 'driver');
  t.equal(callClassOf(thread('membarrier')), 'other');
  t.equal(callClassOf(thread(null)), null, 'not known to be blocked');
  t.equal(callClassOf(thread('futex', 'running')), null, 'a running thread is not blocked');
});

t.test('CPU seconds per process: a thread that exits keeps its share, so the counter never goes down', { skip: linux }, async (t) => {
  const target = await start(t, 'threads', ['3']);
  const { limits: _limits, ...sample } = await sampleThreads(target.pid);
  t.equal(sample.threads.length, 4);
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const tracker = new ProgressTracker();
  const withThreads = (threads: ThreadSample[], cpuNs: number): MetricsSampleEvent =>
    event(tracker, 1e9, [], { processes: [{ ...sample, threads: threads.map((th) => ({ ...th, cpuNs, state: 'sleeping' as const })) }] }); // sleeping: a thread caught on its way in may read running
  metrics.update(withThreads(sample.threads, 1e9)); // 4 threads, 1 s each
  const labels = { pid: String(target.pid) };
  t.equal((await text(registry)).value('iokit_snap_process_cpu_seconds_total', labels), 4);
  metrics.update(withThreads(sample.threads.slice(0, 2), 2e9)); // two exited; the others ran 1 s more
  const after = await text(registry);
  t.equal(after.value('iokit_snap_process_cpu_seconds_total', labels), 6);
  t.equal(after.value('iokit_snap_process_threads', { ...labels, state: 'sleeping' }), 2);
  metrics.update(withThreads(sample.threads.slice(0, 2), 2e9));
  t.equal((await text(registry)).value('iokit_snap_process_cpu_seconds_total', labels), 6, 'nothing ran: nothing added');
});
