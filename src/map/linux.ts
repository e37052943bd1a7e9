/**
 * A Linux PCI/DRM/NVML device record (native/linux/accelerators.cc) → Accelerator.
 * Pure: it reads only the record, so captured records map the same way as live ones.
 *
 * The native layer puts its facts in `properties` under these keys (the full list,
 * with the sysfs file each comes from, heads native/linux/accelerators.cc). A key is
 * present only when its source answered:
 *
 *   pci.vendorId "0x10de"          → vendor
 *   nvml.name, amdgpu.productName  → model (else null: a PCI device id is not a model name)
 *   pci.powerState "D0"…"D3cold"   → power.state
 *   runtimePm.status               → power.runtimeStatus
 *   nvml.performanceState 0…15     → power.performanceState
 *   nvml.powerDrawMilliwatts       → power.drawMilliwatts
 *   nvml.gpuUtilPercent, amdgpu.gpuBusyPercent        → utilization.devicePercent
 *   nvml.memoryUsedBytes, amdgpu.vramUsedBytes        → memory.inUseBytes
 *   deviceNodes ["/dev/dri/card0", "/dev/nvidia0", …] → deviceNodes. A GPU bound to the
 *     nvidia driver also lists the driver's shared control nodes /dev/nvidiactl and
 *     /dev/nvidia-uvm (every NVIDIA GPU lists them): a thread blocked in an ioctl on one of
 *     them is blocked in the NVIDIA driver, though not on a GPU it can name.
 *   nvml.gpuLost, nvml.resetRequired                  → health
 *
 * Linux has no IOService busy state, service state, probe score, GPU recovery
 * counter or scheduler queues in sysfs; those stay null rather than being guessed.
 */
import type { RawAccelerator } from '../native';
import type { Accelerator, MemoryUse, PowerState, PropertyValue, Utilization } from '../types';
import type { MapOptions } from './registry';

/**
 * PCI vendor ids (the PCI-SIG registry, as in pci.ids) of the makers whose devices show
 * up in the display / 3D / processing-accelerator classes: the GPU makers, the BMC
 * consoles every server has (ASPEED, Matrox), the virtual GPUs of VMs (virtio, VMware,
 * QEMU's standard VGA), and the accelerators that use the accel subsystem (Habana Gaudi,
 * Qualcomm Cloud AI 100).
 */
const PCI_VENDORS: Readonly<Record<string, string>> = {
  '0x10de': 'NVIDIA',
  '0x1002': 'AMD',
  '0x1022': 'AMD',
  '0x8086': 'Intel',
  '0x1a03': 'ASPEED',
  '0x102b': 'Matrox',
  '0x1af4': 'Red Hat (virtio)',
  '0x15ad': 'VMware',
  '0x1234': 'QEMU',
  '0x1da3': 'Habana Labs',
  '0x17cb': 'Qualcomm',
};

/** The vendor's name for a PCI vendor id; an id not in the table stays the id ("0x1e52"), never a guess. */
export function pciVendorName(vendorId: string | null): string | null {
  if (vendorId === null) return null;
  return PCI_VENDORS[vendorId.toLowerCase()] ?? vendorId.toLowerCase();
}

function text(properties: Record<string, PropertyValue>, key: string): string | null {
  const value = properties[key];
  return typeof value === 'string' ? value : null;
}

function count(properties: Record<string, PropertyValue>, key: string): number | null {
  const value = properties[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function flag(properties: Record<string, PropertyValue>, key: string): boolean | null {
  const value = properties[key];
  return typeof value === 'boolean' ? value : null;
}

function strings(properties: Record<string, PropertyValue>, key: string): string[] {
  const value = properties[key];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

function power(properties: Record<string, PropertyValue>): PowerState | null {
  const state = text(properties, 'pci.powerState');
  const runtimeStatus = text(properties, 'runtimePm.status');
  const performanceState = count(properties, 'nvml.performanceState');
  const drawMilliwatts = count(properties, 'nvml.powerDrawMilliwatts');
  if (state === null && runtimeStatus === null && performanceState === null && drawMilliwatts === null) return null;
  return {
    // Kernels without the power_state attribute say nothing about the D-state.
    state: state ?? 'unknown',
    maxState: null,
    desiredState: null,
    capabilityFlags: null,
    runtimeStatus,
    performanceState,
    drawMilliwatts,
  };
}

function utilization(properties: Record<string, PropertyValue>): Utilization | null {
  const devicePercent = count(properties, 'nvml.gpuUtilPercent') ?? count(properties, 'amdgpu.gpuBusyPercent');
  if (devicePercent === null) return null;
  return { devicePercent, rendererPercent: null, tilerPercent: null };
}

function memory(properties: Record<string, PropertyValue>): MemoryUse | null {
  const inUseBytes = count(properties, 'nvml.memoryUsedBytes') ?? count(properties, 'amdgpu.vramUsedBytes');
  if (inUseBytes === null) return null;
  return { inUseBytes, allocatedBytes: null };
}

function health(properties: Record<string, PropertyValue>): Accelerator['health'] {
  const gpuLost = flag(properties, 'nvml.gpuLost');
  const resetRequired = flag(properties, 'nvml.resetRequired');
  if (gpuLost === null && resetRequired === null) return null;
  return { gpuLost, resetRequired };
}

export function acceleratorFromLinux(raw: RawAccelerator, options: MapOptions = {}): Accelerator {
  const properties = raw.properties;
  const accelerator: Accelerator = {
    id: raw.id,
    name: raw.name,
    className: raw.className,
    classChain: raw.classChain,
    vendor: pciVendorName(text(properties, 'pci.vendorId')),
    model: text(properties, 'nvml.name') ?? text(properties, 'amdgpu.productName'),
    busy: null,
    serviceState: null,
    power: power(properties),
    probeScore: null,
    utilization: utilization(properties),
    memory: memory(properties),
    recovery: null,
    queues: null,
    location: raw.location || null,
    deviceNodes: strings(properties, 'deviceNodes'),
    health: health(properties),
  };
  if (options.includeProperties) accelerator.properties = properties;
  return accelerator;
}
