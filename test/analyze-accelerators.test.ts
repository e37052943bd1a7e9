// The accelerator findings of compare(healthy, hung), on snapshot pairs built from the REAL
// ioreg captures in test/fixtures/ioreg/ (SOURCES.md there says where each comes from).
//
// Each capture goes through the project's own importer (importIoreg) into Accelerator
// records, which are wrapped into a healthy snapshot; the hung snapshot is a deep copy taken
// 5 s later on the monotonic clock, with exactly ONE field changed. Each test name says which
// field, and where in the capture it comes from. Where a test needs a base pair that differs
// from the capture (a field the capture lacks, or a value set in both snapshots), the name
// says "derived" and what was set; the fixture files are never edited.
//
// Linux has no ioreg: the Linux-shaped records go through the project's Linux mapper
// (acceleratorFromLinux) from the facts the native sysfs reader hands over.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { compare, ProgressTracker } from '../src/index';
import { importIoreg } from '../src/import';
import { acceleratorFromLinux } from '../src/map/linux';
import type { Finding, FindingKind, Report } from '../src/analyze/types';
import type { RawAccelerator } from '../src/native';
import type { Accelerator, Host, ProcessSample, PropertyValue, Snapshot, ThreadSample } from '../src/types';

const FIXTURES = path.join(__dirname, 'fixtures', 'ioreg');

interface Capture {
  file: string;
  /** What the capture's machine was; ioreg output carries neither arch nor release. */
  arch: string;
  /** '' where SOURCES.md does not say (the importer leaves it empty too). */
  osRelease: string;
  accelerators: number;
}

const CAPTURES = {
  m4: { file: 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt', arch: 'arm64', osRelease: '', accelerators: 1 },
  // macOS 11.2.3 is Darwin 20.3.0.
  m1: { file: 'apple-m1-MacBookAir10,1-macOS11.2.3-ioreg-i-tree-AGXAcceleratorG13G_B0.txt', arch: 'arm64', osRelease: '20.3.0', accelerators: 1 },
  // The Intel and AMD captures come from Intel Macs (a MacBookPro15,2 hackintosh; an RX 5500 user).
  intel: { file: 'intel-hackintosh-MacBookPro15,2-ioreg-tree-IntelAccelerator-busy-retain.txt', arch: 'x86_64', osRelease: '', accelerators: 1 },
  gotcha: { file: 'intel-hackintosh-MacBookPro15,2-ioreg-tree-IOAccelerator-named-IOServiceCompatibility-gotcha.txt', arch: 'x86_64', osRelease: '', accelerators: 0 },
  amd: { file: 'amd-rx5500-navi14-ioreg-AMDRadeonX6000_AMDNavi14GraphicsAccelerator-EXCERPT.txt', arch: 'x86_64', osRelease: '', accelerators: 1 },
} satisfies Record<string, Capture>;
type CaptureName = keyof typeof CAPTURES;

const TAKEN_AT = '2026-11-29T10:00:00.000Z';
/** The healthy snapshot's monotonic clock (an import has none: it says monotonicNs 0). */
const T0 = 86_400_000_000_000;
const WINDOW_NS = 5e9;

const imported = new Map<CaptureName, Accelerator[]>();
/** The capture's Accelerator records, as importIoreg gives them (a fresh copy each call). */
function acceleratorsOf(name: CaptureName): Accelerator[] {
  let records = imported.get(name);
  if (records === undefined) {
    const { file, arch, osRelease } = CAPTURES[name];
    records = importIoreg(fs.readFileSync(path.join(FIXTURES, file), 'utf8'), { takenAt: TAKEN_AT, host: { arch, osRelease } }).accelerators;
    imported.set(name, records);
  }
  return structuredClone(records);
}

function snapshotOf(accelerators: Accelerator[], host: Host, processes: ProcessSample[] = []): Snapshot {
  return { format: 'iokit-snap/1', takenAt: TAKEN_AT, monotonicNs: T0, host, accelerators, processes, limits: [] };
}

/** The healthy snapshot of a capture; `derive` adjusts the base pair (both snapshots) where a test says so. */
function healthyOf(name: CaptureName, derive?: (a: Accelerator[]) => void): Snapshot {
  const accelerators = acceleratorsOf(name);
  derive?.(accelerators);
  const { arch, osRelease } = CAPTURES[name];
  return snapshotOf(accelerators, { platform: 'darwin', arch, osRelease });
}

/** A deep copy of `healthy` taken 5 s later, with `change` applied to it. */
function hungOf(healthy: Snapshot, change?: (hung: Snapshot) => void): Snapshot {
  const hung = structuredClone(healthy);
  hung.monotonicNs = healthy.monotonicNs + WINDOW_NS;
  hung.takenAt = new Date(Date.parse(healthy.takenAt) + WINDOW_NS / 1e6).toISOString();
  for (const p of hung.processes) p.sampledAtNs += WINDOW_NS;
  change?.(hung);
  return hung;
}

/** compare() on the capture's pair, the hung one changed by `change` (on its first accelerator). */
function pairOf(
  name: CaptureName,
  change: ((a: Accelerator, hung: Snapshot) => void) | null,
  options: { derive?: (a: Accelerator[]) => void; stallMs?: number } = {},
): { healthy: Snapshot; hung: Snapshot; report: Report } {
  const healthy = healthyOf(name, options.derive);
  const hung = hungOf(healthy, change === null ? undefined : (s) => change(s.accelerators[0], s));
  const report = compare(healthy, hung, options.stallMs === undefined ? {} : { stallMs: options.stallMs });
  return { healthy, hung, report };
}

const acceleratorFindings = (report: Report): Finding[] => report.findings.filter((f) => f.ref.accelerator !== undefined);
const kinds = (findings: Finding[]): string[] => findings.map((f) => `${f.kind} ${f.severity}`);
function only(t: Test, report: Report, kind: FindingKind): Finding {
  const findings = acceleratorFindings(report);
  t.equal(findings.length, 1, `exactly one accelerator finding: ${kinds(findings).join(', ')}`);
  t.equal(findings[0]?.kind, kind);
  return findings[0];
}

const M4_ID = '0x100000478';
const M4_SUBJECT = `accelerator AGXAcceleratorG16G ${M4_ID}`;
const INTEL_ID = '0x10000048d';

// -------------------------------------------------------------------------------------------
// The false-positive check: an unchanged pair of every capture is healthy.

t.test('every capture, unchanged pair: healthy, no findings', async (t) => {
  for (const name of Object.keys(CAPTURES) as CaptureName[]) {
    const { report } = pairOf(name, null);
    t.equal(report.verdict, 'healthy', `${name}: verdict`);
    t.strictSame(report.findings, [], `${name}: no findings`);
    t.strictSame(report.accelerators, { before: CAPTURES[name].accelerators, after: CAPTURES[name].accelerators }, `${name}: accelerator counts`);
    t.equal(report.windowMs, 5000, `${name}: window`);
    t.strictSame(report.notes, [], `${name}: no notes`);
  }
});

t.test('M4 capture unchanged: its idle queues (SchedulerState BusyWorkQueues 25, 26: submitted = finished + 1, "Idle") are not a stall', async (t) => {
  const { healthy, report } = pairOf('m4', null);
  t.strictSame(healthy.accelerators[0].queues, [
    { id: 25, submitted: 619246, finished: 619245, state: 'Idle' },
    { id: 26, submitted: 554668, finished: 554667, state: 'Idle' },
  ], 'what the capture holds');
  t.strictSame(acceleratorFindings(report), []);
  const long = compare(healthy, hungOf(healthy, (s) => (s.monotonicNs = T0 + 600e9)));
  t.strictSame(long.findings, [], 'not even over 10 minutes');
});

t.test('every capture with the limits its import reported (ENOTSUP, ENOENT) in both snapshots: no finding', async (t) => {
  for (const name of Object.keys(CAPTURES) as CaptureName[]) {
    const { file, arch, osRelease } = CAPTURES[name];
    const whole = importIoreg(fs.readFileSync(path.join(FIXTURES, file), 'utf8'), { takenAt: TAKEN_AT, host: { arch, osRelease } });
    t.ok(whole.limits.length > 0 && whole.limits.every((l) => l.code !== 'ETIMEDOUT'), `${name}: the import's limits`);
    const healthy: Snapshot = { ...whole, monotonicNs: T0 };
    const report = compare(healthy, hungOf(healthy));
    t.equal(report.verdict, 'healthy', name);
    t.strictSame(report.findings, [], name);
  }
});

// -------------------------------------------------------------------------------------------
// macOS rules, on the M4 capture (the one with PerformanceStatistics, IOPowerManagement,
// IOProbeScore, SchedulerState and CommandSubmissionEnabled).

t.test('recovery.count 0 → 1 (M4 PerformanceStatistics recoveryCount): recovery, critical, hung', async (t) => {
  const { healthy, report } = pairOf('m4', (a) => (a.recovery!.count = 1));
  t.strictSame(healthy.accelerators[0].recovery, { count: 0, lastTime: 0 }, 'the capture: recoveryCount 0, lastRecoveryTime 0');
  const f = only(t, report, 'recovery');
  t.equal(f.severity, 'critical');
  t.equal(f.subject, M4_SUBJECT);
  t.strictSame(f.ref, { accelerator: M4_ID });
  t.strictSame(f.evidence, [
    { field: 'recovery.count', before: 0, after: 1 },
    { field: 'recovery.lastTime', before: 0, after: 0 },
  ]);
  t.match(f.message, /^GPU recovery count 0 → 1: the driver reset the GPU/);
  t.equal(f.durationMs, 5000);
  t.equal(report.verdict, 'hung');
});

t.test('recovery.lastTime alone changed (M4 PerformanceStatistics lastRecoveryTime 0 → 1234): no finding, the count decides', async (t) => {
  const { report } = pairOf('m4', (a) => (a.recovery!.lastTime = 1234));
  t.strictSame(acceleratorFindings(report), []);
});

t.test('power.state 1 → 0 (M4 IOPowerManagement CurrentPowerState): power-dropped, warning', async (t) => {
  const { healthy, report } = pairOf('m4', (a) => (a.power!.state = 0));
  t.equal(healthy.accelerators[0].power!.state, 1, 'the capture: CurrentPowerState 1');
  const f = only(t, report, 'power-dropped');
  t.equal(f.severity, 'warning');
  t.equal(f.message, 'power state dropped 1 → 0 (max 1): the device is powered down; a thread that waits on it waits for the wake-up');
  t.strictSame(f.evidence, [{ field: 'power.state', before: 1, after: 0 }]);
  t.equal(report.verdict, 'suspect');
});

t.test('power.state 1 → 2 (M4 IOPowerManagement CurrentPowerState raised): no finding', async (t) => {
  const { report } = pairOf('m4', (a) => (a.power!.state = 2));
  t.strictSame(acceleratorFindings(report), []);
});

t.test('power.desiredState added in the hung one only (M4 IOPowerManagement has no DesiredPowerState): power-transition, info', async (t) => {
  const { healthy, report } = pairOf('m4', (a) => (a.power!.desiredState = 0));
  t.equal(healthy.accelerators[0].power!.desiredState, null, 'the capture: no DesiredPowerState');
  const f = only(t, report, 'power-transition');
  t.equal(f.severity, 'info');
  t.equal(f.message, 'IOPowerManagement.DesiredPowerState 0 while the current state is 1: a power transition is in progress');
  t.strictSame(f.evidence, [
    { field: 'power.desiredState', before: null, after: 0 },
    { field: 'power.machineState', before: null, after: null },
    { field: 'power.state', before: 1, after: 1 },
  ]);
  t.equal(f.durationMs, null, 'seen once: no duration yet');
  t.equal(report.verdict, 'healthy');
});

t.test('power.desiredState 0 in both (derived: M4 IOPowerManagement with DesiredPowerState 0 added to both): stuck, warning, ~5 s', async (t) => {
  const derive = (list: Accelerator[]) => (list[0].power!.desiredState = 0);
  const { report } = pairOf('m4', null, { derive });
  const f = only(t, report, 'power-transition');
  t.equal(f.severity, 'warning');
  t.match(f.message, /^IOPowerManagement\.DesiredPowerState 0 stuck for 2 samples \(5\.0 s\), current state 1: a power transition that does not finish/);
  t.ok(Math.abs(f.durationMs! - 5000) < 1, `durationMs ${f.durationMs}`);
  t.strictSame(f.evidence[0], { field: 'power.desiredState', before: 0, after: 0 }, 'the earlier value is the evidence, not null');
  t.equal(report.verdict, 'suspect');

  const patient = pairOf('m4', null, { derive, stallMs: 10_000 }).report;
  const g = only(t, patient, 'power-transition');
  t.equal(g.severity, 'info', 'held 5 s, under a stallMs of 10 s: not stuck yet');
  t.equal(g.durationMs, 5000);
});

t.test('power.desiredState 0 → 1 (derived: DesiredPowerState 0 added to the healthy M4): a new transition, info', async (t) => {
  const { report } = pairOf('m4', (a) => (a.power!.desiredState = 1), { derive: (list) => (list[0].power!.desiredState = 0) });
  const f = only(t, report, 'power-transition');
  t.equal(f.severity, 'info');
  t.strictSame(f.evidence[0], { field: 'power.desiredState', before: 0, after: 1 });
  t.equal(f.durationMs, null);
});

t.test('power.desiredState 0 → null (derived: DesiredPowerState 0 in the healthy M4 only): the transition finished, no finding', async (t) => {
  const { report } = pairOf('m4', (a) => (a.power!.desiredState = null), { derive: (list) => (list[0].power!.desiredState = 0) });
  t.strictSame(acceleratorFindings(report), []);
});

t.test('power.machineState 2 added in the hung one only (M4 IOPowerManagement has no MachineState): power-transition, info', async (t) => {
  const { report } = pairOf('m4', (a) => (a.power!.machineState = 2));
  const f = only(t, report, 'power-transition');
  t.equal(f.message, 'IOPowerManagement.MachineState 2 while the current state is 1: a power transition is in progress');
  t.strictSame(f.evidence[1], { field: 'power.machineState', before: null, after: 2 });
});

t.test('a DesiredPowerState held over three watch samples (derived: M4 with DesiredPowerState 0): stuck for 3 samples', async (t) => {
  const healthy = healthyOf('m4', (list) => (list[0].power!.desiredState = 0));
  const tracker = new ProgressTracker({ stallMs: 5000 });
  const first = tracker.step(healthy);
  t.equal(first.findings[0].severity, 'info', 'first sample: in progress');
  const second = tracker.step(hungOf(healthy, (s) => (s.monotonicNs = T0 + 2e9)));
  t.equal(second.findings[0].severity, 'info', '2 s: under stallMs');
  const third = tracker.step(hungOf(healthy, (s) => (s.monotonicNs = T0 + 6e9)));
  t.equal(third.findings[0].severity, 'warning');
  t.match(third.findings[0].message, /stuck for 3 samples \(6\.0 s\)/);
  t.equal(third.findings[0].durationMs, 6000);
});

t.test('power null → {state 0, desiredState 2} (AMD capture: no IOPowerManagement in the healthy one): power-transition info, nothing else', async (t) => {
  const { report } = pairOf('amd', (a) => (a.power = { state: 0, maxState: 2, desiredState: 2, capabilityFlags: null, runtimeStatus: null }));
  const f = only(t, report, 'power-transition');
  t.equal(f.severity, 'info');
  t.strictSame(f.evidence, [
    { field: 'power.desiredState', before: null, after: 2 },
    { field: 'power.machineState', before: null, after: null },
    { field: 'power.state', before: null, after: 0 },
  ]);
});

t.test('a service that appears in a power transition (Intel capture + the AMD service with DesiredPowerState 2): appeared and transition, both info', async (t) => {
  const [egpu] = acceleratorsOf('amd');
  egpu.power = { state: 0, maxState: 2, desiredState: 2, capabilityFlags: null, runtimeStatus: null };
  const { report } = pairOf('intel', (_a, hung) => hung.accelerators.push(egpu));
  t.strictSame(kinds(acceleratorFindings(report)), ['accelerator-appeared info', 'power-transition info']);
  t.strictSame(acceleratorFindings(report)[1].evidence[0], { field: 'power.desiredState', before: null, after: 2 });
});

t.test('watch: a transition is forgotten when its service goes, and starts again when it comes back', async (t) => {
  const healthy = healthyOf('m4', (list) => (list[0].power!.desiredState = 0));
  const tracker = new ProgressTracker({ stallMs: 1000 });
  tracker.step(healthy);
  const gone = tracker.step(hungOf(healthy, (s) => (s.accelerators = [])));
  t.strictSame(kinds(gone.findings), ['accelerator-disappeared critical']);
  tracker.step(hungOf(healthy, (s) => ((s.monotonicNs = T0 + 10e9), (s.accelerators = []))));
  const back = tracker.step(hungOf(healthy, (s) => (s.monotonicNs = T0 + 15e9)));
  const f = back.findings.find((g) => g.kind === 'power-transition')!;
  t.equal(f.severity, 'info', 'not "stuck for 4 samples": the service was away');
  t.equal(f.durationMs, null);
});

t.test('probeScore 10000 → 9000 (M4 IOProbeScore): probe-score-changed, warning', async (t) => {
  const { healthy, report } = pairOf('m4', (a) => (a.probeScore = 9000));
  t.equal(healthy.accelerators[0].probeScore, 10000, 'the capture: IOProbeScore = 10000');
  const f = only(t, report, 'probe-score-changed');
  t.equal(f.severity, 'warning');
  t.equal(f.message, 'probe score 10000 → 9000: the service was matched again');
  t.strictSame(f.evidence, [{ field: 'probeScore', before: 10000, after: 9000 }]);
});

t.test('serviceState.active true → false (M4 node header "active"): service-state, critical', async (t) => {
  const { report } = pairOf('m4', (a) => (a.serviceState!.active = false));
  const f = only(t, report, 'service-state');
  t.equal(f.severity, 'critical');
  t.match(f.message, /no longer active: it is being terminated/);
  t.strictSame(f.evidence, [{ field: 'serviceState.active', before: true, after: false }]);
  t.equal(report.verdict, 'hung');
});

t.test('serviceState.registered and .matched true → false (M4 node header "registered, matched"): service-state, warning', async (t) => {
  for (const field of ['registered', 'matched'] as const) {
    const { report } = pairOf('m4', (a) => (a.serviceState![field] = false));
    const f = only(t, report, 'service-state');
    t.equal(f.severity, 'warning', field);
    t.equal(f.message, `the service is no longer ${field}`);
    t.strictSame(f.evidence, [{ field: `serviceState.${field}`, before: true, after: false }]);
  }
});

t.test('serviceState.active false → true (derived: M4 header "inactive" in the healthy one): no finding', async (t) => {
  const { report } = pairOf('m4', (a) => (a.serviceState!.active = true), { derive: (list) => (list[0].serviceState!.active = false) });
  t.strictSame(acceleratorFindings(report), []);
});

t.test('commandSubmissionEnabled true → false (M4 CommandSubmissionEnabled = Yes): command-submission-disabled, critical', async (t) => {
  const { healthy, report } = pairOf('m4', (a) => (a.commandSubmissionEnabled = false));
  t.equal(healthy.accelerators[0].commandSubmissionEnabled, true, 'the capture: CommandSubmissionEnabled = Yes');
  const f = only(t, report, 'command-submission-disabled');
  t.equal(f.severity, 'critical');
  t.strictSame(f.evidence, [{ field: 'commandSubmissionEnabled', before: true, after: false }]);
  t.equal(report.verdict, 'hung');
});

// SchedulerState BusyWorkQueues of the M4 capture: id 25 619246/619245 Idle, id 26 554668/554667 Idle.

t.test('queues[25].submitted 619246 → 619250 (M4 SchedulerState BusyWorkQueues), finished unchanged: queue-stalled, critical', async (t) => {
  const { report } = pairOf('m4', (a) => (a.queues![0].submitted = 619250));
  const f = only(t, report, 'queue-stalled');
  t.equal(f.severity, 'critical');
  t.equal(f.message, 'queue 25: 4 submitted, none finished in 5.0 s (pending 1 → 5, state Idle): the GPU stopped completing work');
  t.strictSame(f.evidence, [
    { field: 'queues[25].submitted', before: 619246, after: 619250 },
    { field: 'queues[25].finished', before: 619245, after: 619245 },
    { field: 'queues[25].state', before: 'Idle', after: 'Idle' },
  ]);
  t.equal(f.durationMs, 5000);
  t.equal(report.verdict, 'hung');
});

t.test('queues[25].submitted grew, but the samples are closer than stallMs (stallMs 10 s): no finding, a frame may take that long', async (t) => {
  const { report } = pairOf('m4', (a) => (a.queues![0].submitted = 619250), { stallMs: 10_000 });
  t.strictSame(acceleratorFindings(report), []);
});

t.test('queues[25] submitted and finished both grew by 100 (M4 SchedulerState, two counters of one queue): progress, no finding', async (t) => {
  const { report } = pairOf('m4', (a) => {
    a.queues![0].submitted += 100;
    a.queues![0].finished += 100;
  });
  t.strictSame(acceleratorFindings(report), []);
});

t.test('a constant pending gap of 5 (derived: M4 queue 25 submitted 619250 in both): queue-stalled, warning', async (t) => {
  const { report } = pairOf('m4', null, { derive: (list) => (list[0].queues![0].submitted = 619250) });
  const f = only(t, report, 'queue-stalled');
  t.equal(f.severity, 'warning');
  t.equal(f.message, 'queue 25: 5 pending, none finished in 5.0 s (state Idle)');
  t.strictSame(f.evidence, [
    { field: 'queues[25].submitted', before: 619250, after: 619250 },
    { field: 'queues[25].finished', before: 619245, after: 619245 },
  ]);
  t.equal(report.verdict, 'suspect');
});

t.test('queues[25].state "Idle" → "Busy" (M4 SchedulerState), one pending, nothing finished: queue-stalled, warning', async (t) => {
  const { report } = pairOf('m4', (a) => (a.queues![0].state = 'Busy'));
  const f = only(t, report, 'queue-stalled');
  t.equal(f.severity, 'warning');
  t.equal(f.message, 'queue 25: 1 pending, none finished in 5.0 s (state Busy)');
});

t.test('queues[25].submitted 619246 → 619245 (M4 SchedulerState: counter went back, nothing pending): no finding', async (t) => {
  const { report } = pairOf('m4', (a) => (a.queues![0].submitted = 619245));
  t.strictSame(acceleratorFindings(report), []);
});

t.test('a queue only in the hung one (M4 SchedulerState with a queue 27 added): no baseline, no finding', async (t) => {
  const { report } = pairOf('m4', (a) => a.queues!.push({ id: 27, submitted: 10, finished: 2, state: 'Busy' }));
  t.strictSame(acceleratorFindings(report), []);
});

t.test('utilization.devicePercent 17 → 100 (M4 PerformanceStatistics Device Utilization %), queues finish nothing: utilization-pegged, warning', async (t) => {
  const { healthy, report } = pairOf('m4', (a) => (a.utilization!.devicePercent = 100));
  t.strictSame(healthy.accelerators[0].utilization, { devicePercent: 17, rendererPercent: 15, tilerPercent: 15 }, 'the capture');
  const f = only(t, report, 'utilization-pegged');
  t.equal(f.severity, 'warning');
  t.equal(f.message, 'utilization at 100% while no queue finished any work: the GPU is busy on something that does not complete');
  t.strictSame(f.evidence, [
    { field: 'utilization.devicePercent', before: 17, after: 100 },
    { field: 'utilization.rendererPercent', before: 15, after: 15 },
    { field: 'utilization.tilerPercent', before: 15, after: 15 },
  ]);
  t.equal(report.verdict, 'suspect');
});

t.test('utilization.tilerPercent 15 → 99 (M4 PerformanceStatistics Tiler Utilization %): pegged counts any of the three, and shows it', async (t) => {
  const { report } = pairOf('m4', (a) => (a.utilization!.tilerPercent = 99));
  const f = only(t, report, 'utilization-pegged');
  t.match(f.message, /^utilization at 99%/);
  t.strictSame(f.evidence[2], { field: 'utilization.tilerPercent', before: 15, after: 99 });
});

t.test('utilization.rendererPercent 15 → 98 (M4 Renderer Utilization %): under 99 is not pegged', async (t) => {
  const { report } = pairOf('m4', (a) => (a.utilization!.rendererPercent = 98));
  t.strictSame(acceleratorFindings(report), []);
});

t.test('utilization 100 while queue 25 finished work (M4: devicePercent 17 → 100, queue 25 submitted and finished +10): busy and completing, no finding', async (t) => {
  const { report } = pairOf('m4', (a) => {
    a.utilization!.devicePercent = 100;
    a.queues![0].submitted += 10;
    a.queues![0].finished += 10;
  });
  t.strictSame(acceleratorFindings(report), []);
});

t.test('utilization pegged at 100 in both, no queue info (derived: M4 with queues null and devicePercent 100 in both): info', async (t) => {
  const derive = (list: Accelerator[]) => {
    list[0].queues = null;
    list[0].utilization!.devicePercent = 100;
  };
  const { report } = pairOf('m4', null, { derive });
  const f = only(t, report, 'utilization-pegged');
  t.equal(f.severity, 'info');
  t.equal(f.message, 'utilization at 100% in both samples; this device gives no queue counters, so whether work completes is unknown');
  t.equal(report.verdict, 'healthy');

  const once = pairOf('m4', (a) => (a.utilization!.devicePercent = 100), { derive: (list) => (list[0].queues = null) }).report;
  t.strictSame(acceleratorFindings(once), [], 'no queue info and pegged only in the hung one: a busy moment, no finding');
});

t.test('utilization pegged at 100 in both, samples closer than stallMs (derived: M4 devicePercent 100 in both; stallMs 10 s): info', async (t) => {
  const { report } = pairOf('m4', null, { derive: (list) => (list[0].utilization!.devicePercent = 100), stallMs: 10_000 });
  const f = only(t, report, 'utilization-pegged');
  t.equal(f.severity, 'info');
  t.match(f.message, /the samples are 5\.0 s apart, too short \(under 10\.0 s\) for the queue counters/);
});

t.test('utilization pegged in both, hung snapshot earlier on the monotonic clock (derived: M4 devicePercent 100 in both): info, time unknown', async (t) => {
  const healthy = healthyOf('m4', (list) => (list[0].utilization!.devicePercent = 100));
  const report = compare(healthy, hungOf(healthy, (s) => (s.monotonicNs = T0 - WINDOW_NS)));
  const f = only(t, report, 'utilization-pegged');
  t.equal(f.severity, 'info');
  t.match(f.message, /the time between the samples is unknown/);
  t.equal(f.durationMs, null);
  t.equal(report.windowMs, null);
  t.match(report.notes.join('\n'), /not later than the healthy one/);
});

t.test('utilization null → 100 (derived: M4 with utilization null in the healthy one), queues finish nothing: pegged is a state of the hung sample, warning', async (t) => {
  // The queue counters (present on both sides) decide; the earlier utilization is evidence only.
  const { report } = pairOf('m4', (a) => (a.utilization = { devicePercent: 100, rendererPercent: 100, tilerPercent: null }), {
    derive: (list) => (list[0].utilization = null),
  });
  const f = only(t, report, 'utilization-pegged');
  t.equal(f.severity, 'warning');
  t.strictSame(f.evidence, [
    { field: 'utilization.devicePercent', before: null, after: 100 },
    { field: 'utilization.rendererPercent', before: null, after: 100 },
    { field: 'utilization.tilerPercent', before: null, after: null },
  ]);
});

t.test('utilization with every value null (derived from M4): never pegged', async (t) => {
  const { report } = pairOf('m4', null, {
    derive: (list) => (list[0].utilization = { devicePercent: null, rendererPercent: null, tilerPercent: null }),
  });
  t.strictSame(acceleratorFindings(report), []);
});

// -------------------------------------------------------------------------------------------
// IOKit busy state: registration, matching or termination, never GPU work. Intel capture:
// `+-o IntelAccelerator  <class IntelAccelerator, id 0x10000048d, registered, matched, active, busy 0 (1312 ms), retain 59>`.

t.test('busy.count 0 → 1 (Intel node header "busy 0 (1312 ms)"): busy, warning, and the message says it is not GPU work', async (t) => {
  const { healthy, report } = pairOf('intel', (a) => (a.busy!.count = 1));
  t.strictSame(healthy.accelerators[0].busy, { count: 0, timeNs: 1_312_000_000 }, 'the capture');
  const f = only(t, report, 'busy');
  t.equal(f.severity, 'warning');
  t.equal(f.subject, `accelerator IntelAccelerator ${INTEL_ID}`);
  t.match(f.message, /^IOKit busy count 0 → 1: registration, matching or termination of the service is in progress/);
  t.match(f.message, /not GPU work/);
  t.notMatch(f.message, /GPU busy/i, 'never relabelled as GPU busy');
  t.strictSame(f.evidence, [
    { field: 'busy.count', before: 0, after: 1 },
    { field: 'busy.timeNs', before: 1_312_000_000, after: 1_312_000_000 },
  ]);
  t.equal(report.verdict, 'suspect');
});

t.test('busy.timeNs 1312 ms → 1400 ms with busy.count 0 (Intel node header "(1312 ms)"): busy, info', async (t) => {
  const { report } = pairOf('intel', (a) => (a.busy!.timeNs = 1_400_000_000));
  const f = only(t, report, 'busy');
  t.equal(f.severity, 'info');
  t.equal(
    f.message,
    'IOKit busy time grew by 88 ms (busy count is 0 again): the service went through registration, matching or termination in between (not GPU work)',
  );
  t.strictSame(f.evidence, [{ field: 'busy.timeNs', before: 1_312_000_000, after: 1_400_000_000 }]);
  t.equal(report.verdict, 'healthy');
});

t.test('busy.timeNs grew while busy.count stayed 1 (derived: Intel header with busy 1 in both): busy, warning', async (t) => {
  const { report } = pairOf('intel', (a) => (a.busy!.timeNs = 6_312_000_000), { derive: (list) => (list[0].busy!.count = 1) });
  const f = only(t, report, 'busy');
  t.equal(f.severity, 'warning');
  t.equal(f.message, 'IOKit busy count stayed at 1 and busy time grew by 5.0 s: matching or termination did not finish (IOService busy state, not GPU work)');
});

t.test('busy.count 1 → 0 (derived: Intel header with busy 1 in the healthy one), time unchanged: no finding', async (t) => {
  const { report } = pairOf('intel', (a) => (a.busy!.count = 0), { derive: (list) => (list[0].busy!.count = 1) });
  t.strictSame(acceleratorFindings(report), []);
});

t.test('busy.count 0 → 1 on the AMD capture (header "busy 0 (317 ms)"): the same rule on another driver', async (t) => {
  const { report } = pairOf('amd', (a) => (a.busy!.count = 1));
  const f = only(t, report, 'busy');
  t.equal(f.subject, 'accelerator AMDRadeonX6000_AMDNavi14GraphicsAccelerator 0x100000461');
  t.strictSame(f.evidence[1], { field: 'busy.timeNs', before: 317_000_000, after: 317_000_000 });
});

// -------------------------------------------------------------------------------------------
// Identity: re-created, disappeared, appeared.

t.test('id 0x10000048d → 0x1000004f0 (Intel node header id; same name and class): accelerator-recreated, not appeared/disappeared', async (t) => {
  const { report } = pairOf('intel', (a) => (a.id = '0x1000004f0'));
  const f = only(t, report, 'accelerator-recreated');
  t.equal(f.severity, 'warning');
  t.equal(f.subject, 'accelerator IntelAccelerator 0x1000004f0');
  t.strictSame(f.ref, { accelerator: '0x1000004f0' });
  t.match(f.message, /^IntelAccelerator was re-created: registry id 0x10000048d → 0x1000004f0/);
  t.strictSame(f.evidence, [{ field: 'id', before: INTEL_ID, after: '0x1000004f0' }]);
  t.notOk(report.findings.some((g) => g.kind === 'accelerator-appeared' || g.kind === 'accelerator-disappeared'));
  t.equal(report.verdict, 'suspect');
});

t.test('id re-created (M4 node header id 0x100000478 → 0x100000a10): the re-created service is still compared with the old one', async (t) => {
  // Same pair, and the same recoveryCount: nothing but the re-creation.
  const { report } = pairOf('m4', (a) => (a.id = '0x100000a10'));
  t.strictSame(kinds(acceleratorFindings(report)), ['accelerator-recreated warning']);
});

t.test('the Intel accelerator removed (Intel capture, hung has no accelerator): accelerator-disappeared, critical', async (t) => {
  const { report } = pairOf('intel', (_a, hung) => (hung.accelerators = []));
  const f = only(t, report, 'accelerator-disappeared');
  t.equal(f.severity, 'critical');
  t.equal(f.subject, `accelerator IntelAccelerator ${INTEL_ID}`);
  t.match(f.message, /^IntelAccelerator 0x10000048d disappeared: the service was terminated/);
  t.strictSame(f.evidence, [{ field: 'id', before: INTEL_ID, after: null }]);
  t.strictSame(report.accelerators, { before: 1, after: 0 });
  t.equal(report.verdict, 'hung');
});

t.test('a new service in the hung one (Intel capture + the AMD capture\'s service, an eGPU plugged in): accelerator-appeared, info', async (t) => {
  const [egpu] = acceleratorsOf('amd');
  const { report } = pairOf('intel', (_a, hung) => hung.accelerators.push(egpu));
  const f = only(t, report, 'accelerator-appeared');
  t.equal(f.severity, 'info');
  t.equal(f.message, 'AMDRadeonX6000_AMDNavi14GraphicsAccelerator appeared (0x100000461)');
  t.strictSame(f.evidence, [{ field: 'id', before: null, after: '0x100000461' }]);
  t.strictSame(report.accelerators, { before: 1, after: 2 });
  t.equal(report.verdict, 'healthy');
});

t.test('the M4 accelerator removed while in a power transition (derived: DesiredPowerState 0 in the healthy one): disappeared only', async (t) => {
  const { report } = pairOf('m4', (_a, hung) => (hung.accelerators = []), { derive: (list) => (list[0].power!.desiredState = 0) });
  t.strictSame(kinds(acceleratorFindings(report)), ['accelerator-disappeared critical']);
});

// -------------------------------------------------------------------------------------------
// A dump without registry ids: the M1 capture (the ioreg-archive form cut `, id …`).

t.test('M1 capture (no registry id): unchanged healthy; removed → disappeared "(no registry id)"', async (t) => {
  const { healthy } = pairOf('m1', null);
  t.equal(healthy.accelerators[0].id, '', 'the import: id ""');
  const { report } = pairOf('m1', (_a, hung) => (hung.accelerators = []));
  const f = only(t, report, 'accelerator-disappeared');
  t.equal(f.subject, 'accelerator AGXAcceleratorG13G_B0 (no registry id)');
  t.match(f.message, /^AGXAcceleratorG13G_B0 \(no registry id\) disappeared/);
});

t.test('two id-less services (derived: the M1 record and the Intel record with its id cut, as the archive form prints it)', async (t) => {
  const derive = (list: Accelerator[]) => {
    const [intel] = acceleratorsOf('intel');
    intel.id = '';
    list.push(intel);
  };
  const unchanged = pairOf('m1', null, { derive }).report;
  t.strictSame(unchanged.findings, [], 'unchanged pair: each is compared with itself, none is folded into the other');

  const busy = pairOf('m1', (_a, hung) => (hung.accelerators[1].busy!.count = 1), { derive }).report;
  const f = only(t, busy, 'busy');
  t.equal(f.subject, 'accelerator IntelAccelerator (no registry id)', 'busy.count 0 → 1 on the second: reported against it');

  const gone = pairOf('m1', (_a, hung) => hung.accelerators.shift(), { derive }).report;
  t.strictSame(kinds(acceleratorFindings(gone)), ['accelerator-disappeared critical'], 'the first removed');
  t.equal(acceleratorFindings(gone)[0].subject, 'accelerator AGXAcceleratorG13G_B0 (no registry id)');

  const added = pairOf('m1', (_a, hung) => hung.accelerators.push({ ...structuredClone(hung.accelerators[0]), name: 'AGXAcceleratorG13G_B1', className: 'AGXAcceleratorG13G_B1' }), {
    derive,
  }).report;
  const g = only(t, added, 'accelerator-appeared');
  t.equal(g.message, 'AGXAcceleratorG13G_B1 appeared (no registry id)');
});

// -------------------------------------------------------------------------------------------
// null fields on either side never produce a finding.

t.test('null → value and value → null never produce findings', async (t) => {
  const cases: Array<[string, CaptureName, (a: Accelerator) => void, ((list: Accelerator[]) => void)?]> = [
    ['recovery null → {count 3} (AMD capture: no PerformanceStatistics)', 'amd', (a) => (a.recovery = { count: 3, lastTime: 99 })],
    ['recovery {count 0} → null (M4 PerformanceStatistics recoveryCount)', 'm4', (a) => (a.recovery = null)],
    ['probeScore null → 10000 (Intel capture: no IOProbeScore)', 'intel', (a) => (a.probeScore = 10000)],
    ['probeScore 10000 → null (M4 IOProbeScore)', 'm4', (a) => (a.probeScore = null)],
    ['power null → {state 0} (AMD capture: no IOPowerManagement)', 'amd', (a) => (a.power = { state: 0, maxState: 2, desiredState: null, capabilityFlags: null, runtimeStatus: null })],
    ['power {state 1} → null (M4 IOPowerManagement)', 'm4', (a) => (a.power = null)],
    ['busy null → {count 1} (M1 capture: no busy in the archive header)', 'm1', (a) => (a.busy = { count: 1, timeNs: 5e9 })],
    ['busy {count 0} → null (Intel header busy 0)', 'intel', (a) => (a.busy = null)],
    ['busy.timeNs 1312 ms → null (Intel header "(1312 ms)")', 'intel', (a) => (a.busy!.timeNs = null)],
    ['serviceState null → inactive (M1 capture: no state in the archive header)', 'm1', (a) => (a.serviceState = { registered: false, matched: false, active: false })],
    ['serviceState {active} → null (M4 header)', 'm4', (a) => (a.serviceState = null)],
    ['commandSubmissionEnabled null → false (Intel capture: no CommandSubmissionEnabled)', 'intel', (a) => (a.commandSubmissionEnabled = false)],
    ['commandSubmissionEnabled true → null (M4 CommandSubmissionEnabled)', 'm4', (a) => (a.commandSubmissionEnabled = null)],
    ['queues null → one stalled-looking queue (AMD capture: no SchedulerState)', 'amd', (a) => (a.queues = [{ id: 1, submitted: 100, finished: 0, state: 'Busy' }])],
    ['queues [25, 26] → null (M4 SchedulerState)', 'm4', (a) => (a.queues = null)],
    ['utilization null → 100% (Intel capture: no PerformanceStatistics)', 'intel', (a) => (a.utilization = { devicePercent: 100, rendererPercent: null, tilerPercent: null })],
    ['utilization 17% → null (M4)', 'm4', (a) => (a.utilization = null)],
    ['health undefined → null (M4: no NVML on macOS)', 'm4', (a) => (a.health = null)],
  ];
  for (const [what, name, change] of cases) {
    const { report } = pairOf(name, change);
    t.strictSame(kinds(acceleratorFindings(report)), [], what);
    t.equal(report.verdict, 'healthy', what);
  }
  // busy.timeNs null in the healthy one (derived from the Intel header), count 0 → 1 in the hung one: the count still tells.
  const counted = pairOf('intel', (a) => (a.busy!.count = 1), { derive: (list) => (list[0].busy!.timeNs = null) }).report;
  t.strictSame(acceleratorFindings(counted)[0].evidence, [
    { field: 'busy.count', before: 0, after: 1 },
    { field: 'busy.timeNs', before: null, after: null },
  ]);
});

// -------------------------------------------------------------------------------------------
// The reading itself timed out.

t.test('a limit with code ETIMEDOUT in the hung snapshot (M4 pair, IOPowerManagement read timed out): probe-timed-out, critical', async (t) => {
  const { report } = pairOf('m4', (_a, hung) =>
    hung.limits.push({
      subject: `accelerator ${M4_ID}`,
      field: 'IOPowerManagement',
      code: 'ETIMEDOUT',
      reason: 'IORegistryEntryCreateCFProperty did not return within 2000 ms',
      hint: 'probe timed out: reading the system hung; this is itself evidence of the hang',
    }),
  );
  t.strictSame(acceleratorFindings(report), [], 'no accelerator finding: the accelerator fields did not change');
  const timedOut = report.findings.filter((f) => f.kind === 'probe-timed-out');
  t.equal(timedOut.length, 1);
  t.equal(timedOut[0].severity, 'critical');
  t.equal(timedOut[0].subject, `accelerator ${M4_ID}`);
  t.match(timedOut[0].message, /reading IOPowerManagement of accelerator 0x100000478 did not return in time/);
  t.strictSame(timedOut[0].evidence, [{ field: 'IOPowerManagement', before: null, after: 'ETIMEDOUT' }]);
  t.equal(report.verdict, 'hung');
});

// -------------------------------------------------------------------------------------------
// Linux-shaped accelerators, through the project's Linux mapper (src/map/linux.ts) from the
// facts the sysfs reader hands over: an AMD dGPU of a hybrid laptop (like the
// amd-laptop-suspended sysfs fixture) bound to amdgpu with card0 and renderD128.

const DGPU = '0000:03:00.0';
const RENDER = '/dev/dri/renderD128';

function linuxAccelerator(properties: Record<string, PropertyValue> = {}, overrides: Partial<RawAccelerator> = {}): Accelerator {
  return acceleratorFromLinux({
    id: DGPU,
    name: DGPU,
    className: 'amdgpu',
    classChain: ['pci', '0x038000'],
    location: `/sys/devices/pci0000:00/0000:00:08.1/${DGPU}`,
    busyCount: null,
    busyTimeNs: null,
    serviceState: null,
    retainCount: null,
    properties: {
      'pci.vendorId': '0x1002',
      'pci.powerState': 'D0',
      'runtimePm.status': 'active',
      deviceNodes: ['/dev/dri/card0', RENDER],
      ...properties,
    },
    ...overrides,
  });
}

function blockedThread(tid: number, call: string, number: number, target: string, state: ThreadSample['state'] = 'uninterruptible'): ThreadSample {
  return {
    tid,
    name: 'vkcube',
    state,
    userNs: 120_000_000,
    systemNs: 40_000_000,
    contextSwitches: { voluntary: 310, involuntary: 4 },
    suspendCount: null,
    blockedIn: { call, number, fd: 7, target },
    cpuNs: 161_000_000,
    wchan: 'dma_fence_default_wait',
  };
}

const LINUX_HOST: Host = { platform: 'linux', arch: 'x86_64', osRelease: '6.8.0-49-generic' };

function linuxPair(
  accelerators: Accelerator[],
  threads: ThreadSample[],
  change: (hung: Snapshot) => void,
): { healthy: Snapshot; hung: Snapshot; report: Report } {
  const processes: ProcessSample[] = threads.length === 0 ? [] : [{ pid: 4242, name: 'vkcube', sampledAtNs: T0, threads }];
  const healthy = snapshotOf(accelerators, LINUX_HOST, processes);
  const hung = hungOf(healthy, change);
  return { healthy, hung, report: compare(healthy, hung) };
}

t.test('Linux: the mapped record is Linux-shaped', async (t) => {
  const a = linuxAccelerator();
  t.match(a, { id: DGPU, className: 'amdgpu', classChain: ['pci', '0x038000'], vendor: 'AMD', busy: null, serviceState: null, probeScore: null, recovery: null, queues: null });
  t.strictSame(a.power, { state: 'D0', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'active', performanceState: null, drawMilliwatts: null });
  t.strictSame(a.deviceNodes, ['/dev/dri/card0', RENDER]);
  const { report } = linuxPair([a], [], () => {});
  t.strictSame(report.findings, [], 'unchanged pair: healthy');
});

t.test('Linux: power.state D0 → D3cold while a thread is blocked in ioctl on /dev/dri/renderD128: d3cold-while-blocked, critical', async (t) => {
  const { report } = linuxPair([linuxAccelerator()], [blockedThread(4242, 'ioctl', 16, RENDER)], (hung) => (hung.accelerators[0].power!.state = 'D3cold'));
  const d3 = report.findings.filter((f) => f.kind === 'd3cold-while-blocked');
  t.equal(d3.length, 1);
  t.equal(d3[0].severity, 'critical');
  t.equal(d3[0].subject, `accelerator ${DGPU} ${DGPU}`);
  t.equal(d3[0].message, `the device is in D3cold (powered off) while pid 4242 thread 4242 is blocked in ioctl on ${RENDER}: the driver waits for a device that is off`);
  t.strictSame(d3[0].evidence, [{ field: 'power.state', before: 'D0', after: 'D3cold' }]);
  t.strictSame(kinds(acceleratorFindings(report)), ['d3cold-while-blocked critical', 'power-dropped warning']);
  t.equal(acceleratorFindings(report)[1].message, 'power state dropped D0 → D3cold: the device is powered down; a thread that waits on it waits for the wake-up');
  t.ok(report.findings.some((f) => f.kind === 'blocked-in-driver' && f.ref.tid === 4242), 'the thread itself: blocked in the GPU driver');
  t.equal(report.verdict, 'hung');
});

t.test('Linux: power null → D3cold (derived: runtime PM unreadable in the healthy one) while a thread is in ioctl on renderD128: d3cold is a state, reported', async (t) => {
  const a = linuxAccelerator();
  a.power = null;
  const { report } = linuxPair([a], [blockedThread(4242, 'ioctl', 16, RENDER)], (hung) => (hung.accelerators[0].power = linuxAccelerator({ 'pci.powerState': 'D3cold' }).power));
  t.strictSame(kinds(acceleratorFindings(report)), ['d3cold-while-blocked critical'], 'no power-dropped: there is no earlier state');
  t.strictSame(acceleratorFindings(report)[0].evidence, [{ field: 'power.state', before: null, after: 'D3cold' }]);
});

t.test('Linux: D0 → D3cold while a thread reads DRM events on card0 (not an ioctl): power-dropped only', async (t) => {
  const { report } = linuxPair([linuxAccelerator()], [blockedThread(4243, 'read', 0, '/dev/dri/card0', 'sleeping')], (hung) => (hung.accelerators[0].power!.state = 'D3cold'));
  t.strictSame(kinds(acceleratorFindings(report)), ['power-dropped warning']);
});

t.test('Linux: D0 → D3cold with no thread on its nodes: power-dropped only', async (t) => {
  const { report } = linuxPair([linuxAccelerator()], [blockedThread(4242, 'ioctl', 16, '/dev/dri/renderD129')], (hung) => (hung.accelerators[0].power!.state = 'D3cold'));
  t.strictSame(kinds(acceleratorFindings(report)), ['power-dropped warning']);
});

t.test('Linux: D3cold with no device nodes known (derived: deviceNodes absent), thread in ioctl on renderD128: no d3cold finding', async (t) => {
  const a = linuxAccelerator();
  delete a.deviceNodes;
  const { report } = linuxPair([a], [blockedThread(4242, 'ioctl', 16, RENDER)], (hung) => (hung.accelerators[0].power!.state = 'D3cold'));
  t.strictSame(kinds(acceleratorFindings(report)), ['power-dropped warning']);
});

t.test('Linux: two NVIDIA GPUs share /dev/nvidiactl; GPU 1 goes D3cold while a thread is in ioctl on nvidiactl: no d3cold finding', async (t) => {
  const nvidia = (id: string, minor: number) =>
    linuxAccelerator({ 'pci.vendorId': '0x10de', deviceNodes: [`/dev/nvidia${minor}`, '/dev/nvidiactl', '/dev/nvidia-uvm'] }, { id, name: id, className: 'nvidia', classChain: ['pci', '0x030200'] });
  const { report } = linuxPair([nvidia('0000:01:00.0', 0), nvidia('0000:02:00.0', 1)], [blockedThread(4242, 'ioctl', 16, '/dev/nvidiactl')], (hung) => (hung.accelerators[1].power!.state = 'D3cold'));
  t.strictSame(kinds(acceleratorFindings(report)), ['power-dropped warning'], 'the shared node does not say which GPU');
  const own = linuxPair([nvidia('0000:01:00.0', 0), nvidia('0000:02:00.0', 1)], [blockedThread(4242, 'ioctl', 16, '/dev/nvidia1')], (hung) => (hung.accelerators[1].power!.state = 'D3cold'));
  t.strictSame(kinds(acceleratorFindings(own.report)), ['d3cold-while-blocked critical', 'power-dropped warning'], 'its own node does');
});

t.test('Linux: power.state D3hot → D3cold (derived: D3hot in the healthy one): power-dropped, no "(max …)" without a max state', async (t) => {
  const { report } = linuxPair([linuxAccelerator({ 'pci.powerState': 'D3hot' })], [], (hung) => (hung.accelerators[0].power!.state = 'D3cold'));
  const f = only(t, report, 'power-dropped');
  t.equal(f.message, 'power state dropped D3hot → D3cold: the device is powered down; a thread that waits on it waits for the wake-up');
});

t.test('Linux: power.state D3cold → D0 (woken), unknown → D3cold, and a number → a D-state: no finding', async (t) => {
  const woke = linuxPair([linuxAccelerator({ 'pci.powerState': 'D3cold' })], [], (hung) => (hung.accelerators[0].power!.state = 'D0'));
  t.strictSame(acceleratorFindings(woke.report), [], 'D3cold → D0');
  const unknown = linuxPair([linuxAccelerator({ 'pci.powerState': 'unknown' })], [], (hung) => (hung.accelerators[0].power!.state = 'D3cold'));
  t.strictSame(acceleratorFindings(unknown.report), [], '"unknown" is no D-state: no order');
  const mixed = linuxPair([linuxAccelerator()], [], (hung) => (hung.accelerators[0].power!.state = 0));
  t.strictSame(acceleratorFindings(mixed.report), [], 'D0 → 0: not comparable');
});

t.test('Linux: health.gpuLost false → true (NVML): gpu-lost, critical', async (t) => {
  const { report } = linuxPair([linuxAccelerator({ 'nvml.gpuLost': false, 'nvml.resetRequired': false })], [], (hung) => (hung.accelerators[0].health!.gpuLost = true));
  const f = only(t, report, 'gpu-lost');
  t.equal(f.severity, 'critical');
  t.match(f.message, /^NVML reports the GPU lost \(fallen off the bus\)/);
  t.strictSame(f.evidence, [
    { field: 'health.gpuLost', before: false, after: true },
    { field: 'health.resetRequired', before: false, after: false },
  ]);
  t.equal(f.durationMs, null);
  t.equal(report.verdict, 'hung');
});

t.test('Linux: health.resetRequired false → true (NVML): gpu-lost, critical, "needs a reset"', async (t) => {
  const { report } = linuxPair([linuxAccelerator({ 'nvml.gpuLost': false, 'nvml.resetRequired': false })], [], (hung) => (hung.accelerators[0].health!.resetRequired = true));
  const f = only(t, report, 'gpu-lost');
  t.equal(f.message, 'NVML reports that the GPU needs a reset (nvidia-smi -r, or a reboot)');
});

t.test('Linux: health null → {gpuLost true} (NVML answered only in the hung one): gpu-lost is a state, reported; before is null', async (t) => {
  const { report } = linuxPair([linuxAccelerator()], [], (hung) => (hung.accelerators[0].health = { gpuLost: true, resetRequired: null }));
  const f = only(t, report, 'gpu-lost');
  t.strictSame(f.evidence, [
    { field: 'health.gpuLost', before: null, after: true },
    { field: 'health.resetRequired', before: null, after: null },
  ]);
});

t.test('Linux: a device with no driver bound appears, and one disappears: messages use the name when className is ""', async (t) => {
  const unbound = linuxAccelerator({}, { id: '0000:04:00.0', name: '0000:04:00.0', className: '' });
  const appeared = linuxPair([linuxAccelerator()], [], (hung) => hung.accelerators.push(unbound));
  t.equal(only(t, appeared.report, 'accelerator-appeared').message, '0000:04:00.0 appeared (0000:04:00.0)');
  const gone = linuxPair([linuxAccelerator(), unbound], [], (hung) => hung.accelerators.pop());
  t.match(only(t, gone.report, 'accelerator-disappeared').message, /^0000:04:00\.0 0000:04:00\.0 disappeared/);
});
