/**
 * sampleAccelerators on Linux: the real /sys of this machine, the fixture sysfs trees
 * (test/fixtures/sys, see its README), and NVML through a fake libnvidia-ml built here
 * from test/fixtures/nvml-fake.c, in its healthy, lost, reset-required, stuck and hung modes: one
 * NVML session per environment across samples, and a stuck call skipped rather than repeated.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { sampleAccelerators } from '../src/sample';
import type { Accelerator, AcceleratorSample, Limitation } from '../src/types';

const FIXTURES = path.join(__dirname, 'fixtures', 'sys');
const tree = (name: string) => path.join(FIXTURES, name);
const H100 = '0000:01:00.0';

const notLinux = process.platform === 'linux' ? false : 'the sysfs reader is the Linux backend';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-accel-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
const MISSING_NVML = path.join(work, 'no-such-libnvidia-ml.so.1');

/** Builds the fake NVML; null when this machine has no C compiler. */
function buildFakeNvml(name: string, defines: string[] = []): string | null {
  const output = path.join(work, name);
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O1', ...defines, '-o', output, path.join(__dirname, 'fixtures', 'nvml-fake.c')], {
      stdio: 'pipe',
    });
    return output;
  } catch {
    return null;
  }
}
const fakeNvml = notLinux ? null : buildFakeNvml('libnvidia-ml-fake.so');
const noFakeNvml = notLinux || (fakeNvml === null ? 'no C compiler (cc) to build the fake NVML' : false);

const HEALTHY_H100 =
  `device ${H100} minor=3 gpu=37 mem=12 pstate=0 power=312000 total=85520809984 used=1073741824 name=NVIDIA H100 80GB HBM3`;

let configCount = 0;
/** Writes a fake-NVML config; returns the file its calls are logged to. */
function configureNvml(lines: string[]): string {
  configCount++;
  const log = path.join(work, `calls-${configCount}.log`);
  const config = path.join(work, `config-${configCount}`);
  fs.writeFileSync(config, [...lines, `log ${log}`].join('\n') + '\n');
  process.env.IOKIT_SNAP_FAKE_NVML = config;
  return log;
}
const calls = (log: string) => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []);

function only(sample: AcceleratorSample, id: string): Accelerator {
  const found = sample.accelerators.filter((a) => a.id === id);
  if (found.length !== 1) throw new Error(`expected one accelerator ${id}, got ${sample.accelerators.map((a) => a.id)}`);
  return found[0];
}
const limitsOf = (sample: AcceleratorSample, subject: string): Limitation[] => sample.limits.filter((l) => l.subject === subject);

t.test("this machine's real /sys: exactly its PCI display/3D/accelerator devices (none here), not an error", { skip: notLinux }, async (t) => {
  const expected: string[] = [];
  const devices = '/sys/bus/pci/devices';
  if (fs.existsSync(devices)) {
    for (const address of fs.readdirSync(devices)) {
      const classCode = parseInt(fs.readFileSync(path.join(devices, address, 'class'), 'utf8'), 16);
      if ([0x0300, 0x0302, 0x0380, 0x1200].includes(classCode >> 8)) expected.push(address);
    }
  }
  const sample = await sampleAccelerators({ nvmlLibrary: MISSING_NVML });
  t.same(sample.accelerators.map((a) => a.id), expected.sort());
  if (expected.length === 0) t.same(sample.limits, [], 'no GPU: an empty list and nothing to explain');
});

t.test('NVIDIA H100 compute node without NVML: PCI is the truth, no DRM node, the NIC and bridges ignored', { skip: notLinux }, async (t) => {
  const sample = await sampleAccelerators({ sysRoot: tree('nvidia-h100'), nvmlLibrary: MISSING_NVML });
  t.same(sample.accelerators.map((a) => a.id), [H100, '0000:41:00.0'], 'the two GPUs; not the ConnectX NIC, not the root ports');
  const gpu = only(sample, H100);
  t.same(
    { ...gpu },
    {
      id: H100,
      name: H100,
      className: 'nvidia',
      classChain: ['pci', '0x030200'],
      vendor: 'NVIDIA',
      model: null,
      busy: null,
      serviceState: null,
      power: {
        state: 'D0',
        maxState: null,
        desiredState: null,
        capabilityFlags: null,
        runtimeStatus: 'active',
        performanceState: null,
        drawMilliwatts: null,
      },
      probeScore: null,
      utilization: null,
      memory: null,
      recovery: null,
      queues: null,
      location: path.join(tree('nvidia-h100'), 'devices/pci0000:00/0000:00:01.0', H100),
      deviceNodes: ['/dev/nvidiactl', '/dev/nvidia-uvm'],
      health: null,
    },
  );
  t.notOk('properties' in gpu, 'properties only when asked for');
  const nvml = limitsOf(sample, 'nvml');
  t.equal(nvml.length, 1);
  t.equal(nvml[0].code, 'ENOENT');
  t.match(nvml[0].reason, /^NVML not available: utilization and health unknown/);
  t.match(nvml[0].reason, /no-such-libnvidia-ml/);
  t.match(nvml[0].hint, /install the NVIDIA driver's libnvidia-ml\.so\.1/);

  const passthrough = only(sample, '0000:41:00.0');
  t.equal(passthrough.className, 'vfio-pci');
  t.equal(passthrough.health, null);
  t.match(limitsOf(sample, 'accelerator 0000:41:00.0'), [
    { field: 'utilization', code: 'ENOTSUP', reason: /bound to vfio-pci, not nvidia, so NVML cannot see it/ },
  ]);
});

t.test('includeProperties: the raw facts under their documented keys', { skip: notLinux }, async (t) => {
  const sample = await sampleAccelerators({ sysRoot: tree('nvidia-h100'), nvmlLibrary: MISSING_NVML, includeProperties: true });
  t.same(only(sample, H100).properties, {
    'pci.address': H100,
    'pci.class': '0x030200',
    'pci.vendorId': '0x10de',
    'pci.deviceId': '0x2330',
    'pci.subsystemVendorId': '0x10de',
    'pci.subsystemDeviceId': '0x16c1',
    'pci.revision': '0xa1',
    'pci.driver': 'nvidia',
    'pci.powerState': 'D0',
    'pci.d3coldAllowed': true,
    'pci.numaNode': 0,
    'pci.link.currentSpeed': '32.0 GT/s PCIe',
    'pci.link.currentWidth': 16,
    'pci.link.maxSpeed': '32.0 GT/s PCIe',
    'pci.link.maxWidth': 16,
    'runtimePm.status': 'active',
    'runtimePm.control': 'on',
    'runtimePm.activeTimeMs': 86400123,
    'runtimePm.suspendedTimeMs': 0,
    'drm.cards': [],
    'drm.renderNodes': [],
    'accel.nodes': [],
    'nvml.status': 'unavailable',
    'deviceNodes': ['/dev/nvidiactl', '/dev/nvidia-uvm'],
  });
  t.equal(only(sample, '0000:41:00.0').properties?.['nvml.status'], 'notManaged');
});

t.test('nvml: false skips NVML without a limit about it', { skip: notLinux }, async (t) => {
  const sample = await sampleAccelerators({ sysRoot: tree('nvidia-h100'), nvml: false, includeProperties: true });
  t.equal(only(sample, H100).properties?.['nvml.status'], 'disabled');
  t.same(limitsOf(sample, 'nvml'), []);
});

t.test('AMD workstation: amdgpu busy and VRAM read while active; the HDMI audio function ignored', { skip: notLinux }, async (t) => {
  const sample = await sampleAccelerators({ sysRoot: tree('amd-workstation') });
  t.same(sample.accelerators.map((a) => a.id), ['0000:03:00.0', '0000:83:00.0']);
  t.same(sample.limits, []);
  const radeon = only(sample, '0000:03:00.0');
  t.match(radeon, {
    name: 'card1',
    className: 'amdgpu',
    classChain: ['pci', '0x030000'],
    vendor: 'AMD',
    power: { state: 'D0', runtimeStatus: 'active', performanceState: null, drawMilliwatts: null },
    utilization: { devicePercent: 37, rendererPercent: null, tilerPercent: null },
    memory: { inUseBytes: 3221225472, allocatedBytes: null },
    deviceNodes: ['/dev/dri/card1', '/dev/dri/renderD128'],
    health: null,
  });
  t.equal(radeon.model, null, 'an empty product_name is not a model; nothing is invented');
  const instinct = only(sample, '0000:83:00.0');
  t.match(instinct, {
    name: 'card2',
    classChain: ['pci', '0x038000'],
    model: 'AMD Instinct MI210',
    utilization: { devicePercent: 100 },
    memory: { inUseBytes: 60129542144 },
    deviceNodes: ['/dev/dri/card2', '/dev/dri/renderD129'],
  });
});

t.test('Intel laptop: the iGPU with card0 + renderD128, the NPU with its accel node; the Ethernet controller ignored', { skip: notLinux }, async (t) => {
  const sample = await sampleAccelerators({ sysRoot: tree('intel-laptop'), includeProperties: true });
  t.same(sample.accelerators.map((a) => a.id), ['0000:00:02.0', '0000:00:0b.0']);
  t.same(sample.limits, [], 'i915 and intel_vpu have no attributes that would wake the device');
  const igpu = only(sample, '0000:00:02.0');
  t.match(igpu, {
    name: 'card0',
    className: 'i915',
    classChain: ['pci', '0x030000'],
    vendor: 'Intel',
    model: null,
    power: { state: 'D0', runtimeStatus: 'active' },
    utilization: null,
    memory: null,
    deviceNodes: ['/dev/dri/card0', '/dev/dri/renderD128'],
    location: path.join(tree('intel-laptop'), 'devices/pci0000:00/0000:00:02.0'),
  });
  const npu = only(sample, '0000:00:0b.0');
  t.match(npu, {
    name: '0000:00:0b.0',
    className: 'intel_vpu',
    classChain: ['pci', '0x120000'],
    power: { state: 'D3hot', runtimeStatus: 'suspended' },
    deviceNodes: ['/dev/accel/accel0'],
  });
  t.same(npu.properties?.['accel.nodes'], ['accel0']);
  t.notOk('pci.link.currentSpeed' in (npu.properties ?? {}), 'no link attributes read from a sleeping device');
});

t.test('a suspended AMD dGPU is not woken: no busy/VRAM read, a limit that says why', { skip: notLinux }, async (t) => {
  const sample = await sampleAccelerators({ sysRoot: tree('amd-laptop-suspended'), includeProperties: true });
  const gpu = only(sample, '0000:03:00.0');
  t.match(gpu, {
    name: 'card1',
    power: { state: 'D3cold', runtimeStatus: 'suspended' },
    deviceNodes: ['/dev/dri/card1', '/dev/dri/renderD129'],
  });
  t.equal(gpu.utilization, null, 'the fixture holds 99 % busy; it must not have been read');
  t.equal(gpu.memory, null);
  const properties = gpu.properties ?? {};
  for (const key of ['amdgpu.gpuBusyPercent', 'amdgpu.memBusyPercent', 'amdgpu.vramUsedBytes', 'amdgpu.vramTotalBytes', 'pci.link.currentSpeed']) {
    t.notOk(key in properties, `${key} not read`);
  }
  t.equal(properties['runtimePm.suspendedTimeMs'], 3535000);
  t.match(sample.limits, [
    {
      subject: 'accelerator 0000:03:00.0',
      field: 'utilization',
      code: 'EAGAIN',
      reason: /asleep \(runtime_status suspended, power_state D3cold\): gpu_busy_percent, .* were not read, because reading them would wake it/,
      hint: /power\/control/,
    },
  ]);
  t.equal(sample.limits.length, 1);
});

t.test('a sysRoot that is not a directory is a clear EINVAL; a sysfs without a PCI bus is an empty list and a limit', { skip: notLinux }, async (t) => {
  await t.rejects(sampleAccelerators({ sysRoot: path.join(work, 'nope') }), {
    name: 'IokitSnapError',
    code: 'EINVAL',
    message: /sysRoot '.*nope' is not a directory: pass the root of a sysfs tree \(default \/sys\)/,
  });
  const empty = path.join(work, 'container-sys');
  fs.mkdirSync(path.join(empty, 'class'), { recursive: true });
  const sample = await sampleAccelerators({ sysRoot: empty });
  t.same(sample.accelerators, []);
  t.match(sample.limits, [{ subject: 'accelerators', code: 'ENOENT', reason: /no PCI bus in sysfs/, hint: /container/ }]);
});

t.test('parallel samples of different trees do not disturb each other', { skip: notLinux }, async (t) => {
  const names = ['amd-workstation', 'intel-laptop', 'amd-laptop-suspended', 'amd-workstation', 'intel-laptop'];
  const samples = await Promise.all(names.map((name) => sampleAccelerators({ sysRoot: tree(name) })));
  t.same(
    samples.map((s) => s.accelerators.length),
    [2, 2, 1, 2, 2],
  );
});

// ---------------------------------------------------------------- NVML through the fake library
// The addon keeps one NVML session per JS environment, so each test below loads its own
// copy of the fake (a new library path opens a new session, and the fake reads its config
// at nvmlInit_v2). A test that leaves a call stuck lets it go and waits until NVML is
// usable again, so the next test starts clean.

let libraryCount = 0;
function freshNvml(): string {
  libraryCount++;
  const copy = path.join(work, `libnvidia-ml-${libraryCount}.so`);
  fs.copyFileSync(fakeNvml!, copy);
  return copy;
}
const releaseFile = (name: string) => path.join(work, `release-${name}`);
const release = (file: string) => fs.writeFileSync(file, '');
const DEVICE_CALLS = [
  'nvmlDeviceGetHandleByPciBusId_v2',
  'nvmlDeviceGetName',
  'nvmlDeviceGetUtilizationRates',
  'nvmlDeviceGetPerformanceState',
  'nvmlDeviceGetPowerUsage',
  'nvmlDeviceGetMemoryInfo',
  'nvmlDeviceGetMinorNumber',
];
const STUCK = /^probe timed out: an earlier NVML call/;
const stuckLimits = (sample: AcceleratorSample) => sample.limits.filter((l) => STUCK.test(l.reason));
const pause = () => new Promise((resolve) => setTimeout(resolve, 20));

/** Samples until NVML is no longer skipped for a stuck call (the call returned and its thread exited). */
async function untilUnstuck(options: Parameters<typeof sampleAccelerators>[0]): Promise<AcceleratorSample> {
  const deadline = Date.now() + 30000;
  for (;;) {
    const sample = await sampleAccelerators(options);
    if (stuckLimits(sample).length === 0) return sample;
    if (Date.now() > deadline) throw new Error('NVML stayed stuck for 30 s after the call was let go');
    await pause();
  }
}

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 30000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause();
  }
}

t.test('NVML (fake library): name, utilization, P-state, power, memory, device nodes, healthy; one session for many samples', { skip: noFakeNvml }, async (t) => {
  const log = configureNvml([HEALTHY_H100]);
  const library = freshNvml();
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: library, includeProperties: true };
  const sample = await sampleAccelerators(options);
  const gpu = only(sample, H100);
  t.match(gpu, {
    vendor: 'NVIDIA',
    model: 'NVIDIA H100 80GB HBM3',
    power: { state: 'D0', runtimeStatus: 'active', performanceState: 0, drawMilliwatts: 312000 },
    utilization: { devicePercent: 37, rendererPercent: null, tilerPercent: null },
    memory: { inUseBytes: 1073741824, allocatedBytes: null },
    health: { gpuLost: false, resetRequired: false },
  });
  t.same(gpu.deviceNodes, ['/dev/nvidia3', '/dev/nvidiactl', '/dev/nvidia-uvm'], 'its node, then the driver-wide control nodes');
  t.same(only(sample, '0000:41:00.0').deviceNodes, [], 'a GPU bound to vfio-pci is not reached through the nvidia nodes');
  t.match(gpu.properties, {
    'nvml.status': 'ok',
    'nvml.memoryUtilPercent': 12,
    'nvml.memoryTotalBytes': 85520809984,
    'nvml.memoryFreeBytes': 85520809984 - 1073741824,
    'nvml.minorNumber': 3,
  });
  t.same(limitsOf(sample, 'nvml'), []);
  t.same(limitsOf(sample, `accelerator ${H100}`), []);
  t.same(calls(log), ['nvmlInit_v2', ...DEVICE_CALLS], 'the vfio-pci GPU is not asked about; NVML stays initialized');

  for (let i = 0; i < 3; i++) t.equal(only(await sampleAccelerators(options), H100).utilization?.devicePercent, 37);
  t.same(calls(log), ['nvmlInit_v2', ...DEVICE_CALLS, ...DEVICE_CALLS, ...DEVICE_CALLS, ...DEVICE_CALLS], 'one nvmlInit_v2 for four samples');

  // Another library path: the session is closed (nvmlShutdown) and a new one opened.
  const otherLog = configureNvml([HEALTHY_H100]);
  const other = await sampleAccelerators({ ...options, nvmlLibrary: freshNvml() });
  t.equal(only(other, H100).model, 'NVIDIA H100 80GB HBM3');
  t.same(calls(log).slice(-1), ['nvmlShutdown'], 'the old session shut down');
  t.same(calls(otherLog), ['nvmlInit_v2', ...DEVICE_CALLS]);
});

t.test('concurrent samples in one environment share the session and each get the whole answer', { skip: noFakeNvml }, async (t) => {
  const log = configureNvml([HEALTHY_H100]);
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml() };
  const samples = await Promise.all(Array.from({ length: 6 }, () => sampleAccelerators(options)));
  for (const sample of samples) {
    t.match(only(sample, H100), { model: 'NVIDIA H100 80GB HBM3', utilization: { devicePercent: 37 }, memory: { inUseBytes: 1073741824 } });
    t.same(limitsOf(sample, 'nvml'), []);
  }
  t.equal(calls(log).filter((c) => c === 'nvmlInit_v2').length, 1, 'NVML initialized once');
  t.equal(calls(log).filter((c) => c === 'nvmlDeviceGetMinorNumber').length, 6, 'every sample asked');
});

t.test('NVML GPU_IS_LOST is a fact in health and properties, stops the questions, and re-initializes NVML next time', { skip: noFakeNvml }, async (t) => {
  const log = configureNvml([HEALTHY_H100, 'fail nvmlDeviceGetUtilizationRates 15']);
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), includeProperties: true };
  const sample = await sampleAccelerators(options);
  const gpu = only(sample, H100);
  t.same(gpu.health, { gpuLost: true, resetRequired: null });
  t.equal(gpu.properties?.['nvml.gpuLost'], true);
  t.equal(gpu.properties?.['nvml.status'], 'error');
  t.equal(gpu.model, 'NVIDIA H100 80GB HBM3', 'what NVML said before losing the GPU is kept');
  t.equal(gpu.utilization, null);
  t.match(limitsOf(sample, `accelerator ${H100}`), [
    {
      field: 'nvml',
      code: 'EIO',
      reason: /NVML reports the GPU is lost: nvmlDeviceGetUtilizationRates returned NVML_ERROR_GPU_IS_LOST \(GPU is lost\)/,
      hint: /Xid/,
    },
  ]);
  t.same(calls(log).slice(-1), ['nvmlDeviceGetUtilizationRates'], 'no questions after the GPU was lost');

  configureNvml([HEALTHY_H100]); // the re-init reads a healthy config (logged to a new file)
  const healed = await sampleAccelerators(options);
  t.equal(only(healed, H100).utilization?.devicePercent, 37, 'NVML started over and sees the GPU again');
  t.same(calls(log).slice(-1), ['nvmlShutdown'], 'the old NVML state was shut down before nvmlInit_v2');
});

t.test('NVML RESET_REQUIRED on the handle lookup; UNINITIALIZED asks for a re-init too', { skip: noFakeNvml }, async (t) => {
  configureNvml([HEALTHY_H100, 'fail nvmlDeviceGetHandleByPciBusId_v2 16']);
  const sample = await sampleAccelerators({ sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml() });
  const gpu = only(sample, H100);
  t.same(gpu.health, { gpuLost: null, resetRequired: true });
  t.equal(gpu.model, null);
  t.match(limitsOf(sample, `accelerator ${H100}`), [
    { code: 'EIO', reason: /needs a reset: .*NVML_ERROR_RESET_REQUIRED/, hint: /gpu-reset/ },
  ]);

  const log = configureNvml([HEALTHY_H100, 'fail nvmlDeviceGetMemoryInfo 1']);
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml() };
  const uninitialized = await sampleAccelerators(options);
  t.equal(only(uninitialized, H100).memory, null);
  t.match(limitsOf(uninitialized, `accelerator ${H100}`), [
    { field: 'memory', code: 'EIO', reason: /NVML_ERROR_UNINITIALIZED.*initialized again on the next sample/ },
  ]);
  await sampleAccelerators(options);
  t.same(calls(log).filter((c) => c === 'nvmlInit_v2' || c === 'nvmlShutdown'), ['nvmlInit_v2', 'nvmlShutdown', 'nvmlInit_v2']);
});

t.test('a stuck NVML call: one ETIMEDOUT, then samples skip NVML with one limit until the call returns', { skip: noFakeNvml }, async (t) => {
  const gate = releaseFile('utilization');
  const log = configureNvml([HEALTHY_H100, `block nvmlDeviceGetUtilizationRates ${gate}`]);
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 200, includeProperties: true };
  // Without the per-call deadline the fake would not return until released, and this
  // would reject with the whole probe's ETIMEDOUT instead of resolving.
  const sample = await sampleAccelerators(options);
  const gpu = only(sample, H100);
  t.equal(gpu.properties?.['nvml.status'], 'timedOut');
  t.equal(gpu.model, 'NVIDIA H100 80GB HBM3', 'what was answered before the stuck call is kept');
  t.equal(gpu.utilization, null);
  t.same(gpu.health, { gpuLost: false, resetRequired: false }, 'it did answer the handle lookup');
  t.match(limitsOf(sample, `accelerator ${H100}`), [
    {
      field: 'utilization',
      code: 'ETIMEDOUT',
      reason: /^probe timed out: nvmlDeviceGetUtilizationRates did not return within 200 ms; NVML was abandoned/,
      hint: /Xid/,
    },
  ]);
  t.same(limitsOf(sample, 'nvml'), []);
  const callsWhenStuck = calls(log);
  t.same(callsWhenStuck, ['nvmlInit_v2', ...DEVICE_CALLS.slice(0, 3)]);

  for (let i = 0; i < 3; i++) {
    const skipped = await sampleAccelerators(options);
    t.equal(only(skipped, H100).properties?.['nvml.status'], 'timedOut');
    t.equal(only(skipped, H100).model, null);
    t.same(limitsOf(skipped, `accelerator ${H100}`), [], 'no per-device limit while skipped');
    t.match(limitsOf(skipped, 'nvml'), [
      {
        field: 'nvml',
        code: 'ETIMEDOUT',
        reason: /^probe timed out: an earlier NVML call, nvmlDeviceGetUtilizationRates, has not returned since it was made \d+\.\d s ago; NVML is not called again until it returns/,
        hint: /Xid/,
      },
    ]);
    t.equal(limitsOf(skipped, 'nvml').length, 1, 'exactly one limit about it');
  }
  t.same(calls(log), callsWhenStuck, 'no NVML call (and no thread) was started while the earlier one was stuck');

  release(gate); // the call returns late
  const healed = await untilUnstuck(options);
  t.equal(only(healed, H100).utilization?.devicePercent, 37, 'NVML is used again');
  t.same(
    calls(log),
    [...callsWhenStuck, 'nvmlShutdown', 'nvmlInit_v2', ...DEVICE_CALLS],
    'nothing more asked after the late return: the helper shut its NVML down, and a new session started',
  );
});

t.test('a stuck nvmlInit_v2, and a stuck nvmlShutdown while re-initializing, are limits too', { skip: noFakeNvml }, async (t) => {
  const initGate = releaseFile('init');
  configureNvml([HEALTHY_H100, `block nvmlInit_v2 ${initGate}`]);
  const atInit = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 200, includeProperties: true };
  const first = await sampleAccelerators(atInit);
  t.equal(only(first, H100).properties?.['nvml.status'], 'timedOut');
  t.match(limitsOf(first, 'nvml'), [{ field: 'nvml', code: 'ETIMEDOUT', reason: /^probe timed out: nvmlInit_v2 did not return within 200 ms/ }]);
  t.match(limitsOf(await sampleAccelerators(atInit), 'nvml'), [{ reason: /an earlier NVML call, nvmlInit_v2, has not returned/ }]);
  release(initGate);
  t.equal(only(await untilUnstuck(atInit), H100).utilization?.devicePercent, 37);

  const shutdownGate = releaseFile('shutdown');
  configureNvml([HEALTHY_H100, 'fail nvmlDeviceGetUtilizationRates 15', `block nvmlShutdown ${shutdownGate}`]);
  const atShutdown = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 200 };
  t.same(only(await sampleAccelerators(atShutdown), H100).health, { gpuLost: true, resetRequired: null });
  const reinit = await sampleAccelerators(atShutdown);
  t.match(limitsOf(reinit, 'nvml'), [{ code: 'ETIMEDOUT', reason: /^probe timed out: nvmlShutdown did not return within 200 ms/ }]);
  release(shutdownGate);
  configureNvml([HEALTHY_H100]);
  t.equal(only(await untilUnstuck(atShutdown), H100).utilization?.devicePercent, 37);
});

t.test("a sample's NVML time is capped below its timeoutMs: a long callTimeoutMs still resolves with limits", { skip: noFakeNvml }, async (t) => {
  const gate = releaseFile('budget');
  configureNvml([HEALTHY_H100, `block nvmlDeviceGetName ${gate}`]);
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 600000, timeoutMs: 4000 };
  // Were the per-call deadline (10 min) not capped by the budget (80 % of 4000 ms), this
  // would reject with the probe's own ETIMEDOUT.
  const sample = await sampleAccelerators(options);
  t.match(limitsOf(sample, `accelerator ${H100}`), [
    {
      field: 'model',
      code: 'ETIMEDOUT',
      reason: /^probe timed out: nvmlDeviceGetName did not return within \d+ ms \(what was left of this sample's NVML budget of 3200 ms\)/,
    },
  ]);
  release(gate);
  t.equal(only(await untilUnstuck(options), H100).model, 'NVIDIA H100 80GB HBM3');
});

/** Runs samples in a worker thread (its own JS environment), through the raw binding. */
function inWorker(samples: object[]): Promise<{ results: { accelerators: { id: string; properties: Record<string, unknown> }[]; limits: Limitation[] }[]; exited: Promise<number> }> {
  const script = `
    const { parentPort, workerData } = require('node:worker_threads');
    const native = require('node-gyp-build')(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      const results = [];
      for (const options of workerData) results.push(await native.sampleAccelerators(options));
      parentPort.postMessage(results);
    })();
  `;
  const worker = new Worker(script, { eval: true, workerData: samples });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  return new Promise((resolve, reject) => {
    worker.once('message', (results) => resolve({ results, exited }));
    worker.once('error', reject);
  });
}

t.test('each environment has its own NVML context: a Worker is not blocked by a call stuck in the main one', { skip: noFakeNvml }, async (t) => {
  const gate = releaseFile('environments');
  configureNvml([HEALTHY_H100, `block nvmlDeviceGetUtilizationRates ${gate}`]);
  const main = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 200 };
  await sampleAccelerators(main);
  t.equal(stuckLimits(await sampleAccelerators(main)).length, 1, 'the main environment is stuck');

  // A healthy Worker: its own session, shut down when the Worker's environment goes.
  const workerLog = configureNvml([HEALTHY_H100]);
  const healthy = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 2000 };
  const { results, exited } = await inWorker([healthy, healthy]);
  for (const result of results) {
    t.equal(result.accelerators.find((a) => a.id === H100)?.properties['nvml.gpuUtilPercent'], 37);
    t.same(result.limits.filter((l) => l.subject === 'nvml'), []);
  }
  t.equal(await exited, 0);
  await until('the worker environment to shut its NVML down', () => calls(workerLog).includes('nvmlShutdown'));
  t.same(calls(workerLog), ['nvmlInit_v2', ...DEVICE_CALLS, ...DEVICE_CALLS, 'nvmlShutdown'], 'one init, then shutdown at teardown');

  // A Worker whose NVML hangs for good: it gets its own timeout and stuck limit, and its
  // environment still ends (the stuck thread is left to clean up after itself).
  configureNvml([HEALTHY_H100, 'hang nvmlDeviceGetPowerUsage']);
  const wedged = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), callTimeoutMs: 200 };
  const hung = await inWorker([wedged, wedged]);
  t.match(hung.results[0].limits, [{ subject: `accelerator ${H100}`, code: 'ETIMEDOUT', reason: /nvmlDeviceGetPowerUsage did not return within 200 ms/ }]);
  t.match(hung.results[1].limits, [{ subject: 'nvml', reason: /an earlier NVML call, nvmlDeviceGetPowerUsage, has not returned/ }]);
  t.equal(await hung.exited, 0, 'the Worker exits although a call of its NVML never returns');

  t.equal(stuckLimits(await sampleAccelerators(main)).length, 1, 'the main environment is still stuck on its own call');
  const mainLog = configureNvml([HEALTHY_H100]); // what the main environment's next session reads
  release(gate);
  t.equal(only(await untilUnstuck(main), H100).memory?.inUseBytes, 1073741824);
  t.same(calls(mainLog), ['nvmlInit_v2', ...DEVICE_CALLS]);
});

t.test('NVML refusals: driver not loaded (retried next sample), GPU not visible, a value not supported, unknown P-state', { skip: noFakeNvml }, async (t) => {
  const log = configureNvml([HEALTHY_H100, 'fail nvmlInit_v2 9']);
  const options = { sysRoot: tree('nvidia-h100'), nvmlLibrary: freshNvml(), includeProperties: true };
  const noDriver = await sampleAccelerators(options);
  t.equal(only(noDriver, H100).properties?.['nvml.status'], 'unavailable');
  t.same(only(noDriver, H100).deviceNodes, ['/dev/nvidiactl', '/dev/nvidia-uvm'], 'the control nodes do not need NVML');
  t.match(limitsOf(noDriver, 'nvml'), [
    { code: 'ENOENT', reason: /NVML could not start: nvmlInit_v2 returned NVML_ERROR_DRIVER_NOT_LOADED/, hint: /modprobe nvidia/ },
  ]);
  t.same(calls(log), ['nvmlInit_v2']);
  configureNvml([HEALTHY_H100]);
  t.equal(only(await sampleAccelerators(options), H100).utilization?.devicePercent, 37, 'the driver came up: the next sample starts NVML');

  const invisibleLog = configureNvml([]);
  const invisible = await sampleAccelerators({ ...options, nvmlLibrary: freshNvml() });
  t.equal(only(invisible, H100).properties?.['nvml.status'], 'error');
  t.equal(only(invisible, H100).health, null);
  t.match(limitsOf(invisible, `accelerator ${H100}`), [
    { code: 'ENOENT', reason: /NVML_ERROR_NOT_FOUND/, hint: /NVML sees 0 GPU\(s\) but not this one/ },
  ]);
  t.same(calls(invisibleLog), ['nvmlInit_v2', 'nvmlDeviceGetHandleByPciBusId_v2', 'nvmlDeviceGetCount_v2']);

  configureNvml([HEALTHY_H100.replace('pstate=0', 'pstate=32'), 'fail nvmlDeviceGetPowerUsage 3']);
  const partial = await sampleAccelerators({ ...options, nvmlLibrary: freshNvml() });
  const gpu = only(partial, H100);
  t.match(gpu.power, { performanceState: null, drawMilliwatts: null });
  t.equal(gpu.memory?.inUseBytes, 1073741824, 'the values after an unsupported one are still read');
  t.same(gpu.deviceNodes, ['/dev/nvidia3', '/dev/nvidiactl', '/dev/nvidia-uvm']);
  t.match(limitsOf(partial, `accelerator ${H100}`), [
    { field: 'power.performanceState', code: 'ENOTSUP', reason: /does not know the performance state \(P32\)/ },
    { field: 'power.drawMilliwatts', code: 'ENOTSUP', reason: /nvmlDeviceGetPowerUsage returned NVML_ERROR_NOT_SUPPORTED/ },
  ]);
});

t.test('a library without an entry point iokit-snap needs is not used', { skip: noFakeNvml }, async (t) => {
  const old = buildFakeNvml('libnvidia-ml-old.so', ['-DFAKE_NVML_WITHOUT_MINOR']);
  configureNvml([HEALTHY_H100]);
  const sample = await sampleAccelerators({ sysRoot: tree('nvidia-h100'), nvmlLibrary: old! });
  t.equal(only(sample, H100).utilization, null);
  t.match(limitsOf(sample, 'nvml'), [{ code: 'ENOENT', reason: /is not a usable NVML: it has no nvmlDeviceGetMinorNumber/ }]);
});
