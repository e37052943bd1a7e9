/** src/map/linux.ts: native Linux accelerator records → Accelerator, as a pure function. */
import t from 'tap';
import { acceleratorFromLinux, pciVendorName } from '../src/map/linux';
import type { RawAccelerator } from '../src/native';
import type { PropertyValue } from '../src/types';

function raw(properties: Record<string, PropertyValue>, overrides: Partial<RawAccelerator> = {}): RawAccelerator {
  return {
    id: '0000:01:00.0',
    name: '0000:01:00.0',
    className: 'nvidia',
    classChain: ['pci', '0x030200'],
    location: '/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0',
    busyCount: null,
    busyTimeNs: null,
    serviceState: null,
    retainCount: null,
    properties,
    ...overrides,
  };
}

t.test('vendor names from PCI vendor ids; an unknown id stays the id', async (t) => {
  t.equal(pciVendorName('0x10de'), 'NVIDIA');
  t.equal(pciVendorName('0x1002'), 'AMD');
  t.equal(pciVendorName('0x8086'), 'Intel');
  t.equal(pciVendorName('0x1A03'), 'ASPEED', 'case does not matter');
  t.equal(pciVendorName('0x1e52'), '0x1e52', 'not a guessed name');
  t.equal(pciVendorName(null), null);
});

t.test('a bare PCI device: identity only, every fact Linux lacks is null', async (t) => {
  const accelerator = acceleratorFromLinux(raw({}, { location: '' }));
  t.same(accelerator, {
    id: '0000:01:00.0',
    name: '0000:01:00.0',
    className: 'nvidia',
    classChain: ['pci', '0x030200'],
    vendor: null,
    model: null,
    busy: null,
    serviceState: null,
    power: null,
    probeScore: null,
    utilization: null,
    memory: null,
    recovery: null,
    queues: null,
    location: null,
    deviceNodes: [],
    health: null,
  });
});

t.test('NVML facts win over nothing; the full NVIDIA record', async (t) => {
  const properties: Record<string, PropertyValue> = {
    'pci.vendorId': '0x10de',
    'pci.powerState': 'D0',
    'runtimePm.status': 'active',
    'nvml.name': 'NVIDIA H100 80GB HBM3',
    'nvml.gpuUtilPercent': 99,
    'nvml.performanceState': 2,
    'nvml.powerDrawMilliwatts': 650000,
    'nvml.memoryUsedBytes': 123,
    'nvml.gpuLost': false,
    'nvml.resetRequired': false,
    deviceNodes: ['/dev/nvidia0'],
  };
  const accelerator = acceleratorFromLinux(raw(properties));
  t.match(accelerator, {
    vendor: 'NVIDIA',
    model: 'NVIDIA H100 80GB HBM3',
    power: {
      state: 'D0',
      maxState: null,
      desiredState: null,
      capabilityFlags: null,
      runtimeStatus: 'active',
      performanceState: 2,
      drawMilliwatts: 650000,
    },
    utilization: { devicePercent: 99, rendererPercent: null, tilerPercent: null },
    memory: { inUseBytes: 123, allocatedBytes: null },
    deviceNodes: ['/dev/nvidia0'],
    health: { gpuLost: false, resetRequired: false },
    location: '/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0',
  });
  t.notOk('properties' in accelerator);
  t.equal(acceleratorFromLinux(raw(properties), { includeProperties: true }).properties, properties);
});

t.test('amdgpu facts: busy percent and VRAM; product name as the model', async (t) => {
  const accelerator = acceleratorFromLinux(
    raw({ 'pci.vendorId': '0x1002', 'amdgpu.productName': 'AMD Instinct MI210', 'amdgpu.gpuBusyPercent': 0, 'amdgpu.vramUsedBytes': 0 }),
  );
  t.equal(accelerator.model, 'AMD Instinct MI210');
  t.same(accelerator.utilization, { devicePercent: 0, rendererPercent: null, tilerPercent: null }, 'zero is a value, not missing');
  t.same(accelerator.memory, { inUseBytes: 0, allocatedBytes: null });
  t.equal(accelerator.power, null);
});

t.test('power without a D-state attribute, and health from one NVML answer', async (t) => {
  const accelerator = acceleratorFromLinux(raw({ 'runtimePm.status': 'suspended', 'nvml.gpuLost': true }));
  t.same(accelerator.power, {
    state: 'unknown',
    maxState: null,
    desiredState: null,
    capabilityFlags: null,
    runtimeStatus: 'suspended',
    performanceState: null,
    drawMilliwatts: null,
  });
  t.same(accelerator.health, { gpuLost: true, resetRequired: null });
  t.same(acceleratorFromLinux(raw({ 'nvml.resetRequired': true })).health, { gpuLost: null, resetRequired: true });
  t.match(acceleratorFromLinux(raw({ 'nvml.performanceState': 8 })).power, { state: 'unknown', performanceState: 8 });
});

t.test('values of the wrong type are ignored, not coerced', async (t) => {
  const accelerator = acceleratorFromLinux(
    raw({
      'pci.vendorId': 4318,
      'nvml.name': 7,
      'nvml.gpuUtilPercent': '37',
      'amdgpu.gpuBusyPercent': Number.NaN,
      'nvml.gpuLost': 'yes',
      deviceNodes: ['/dev/dri/card0', 5, null],
    }),
  );
  t.equal(accelerator.vendor, null);
  t.equal(accelerator.model, null);
  t.equal(accelerator.utilization, null);
  t.equal(accelerator.health, null);
  t.same(accelerator.deviceNodes, ['/dev/dri/card0']);
  t.same(acceleratorFromLinux(raw({ deviceNodes: 'card0' })).deviceNodes, []);
});
