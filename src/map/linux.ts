/**
 * A Linux PCI/DRM/NVML device record (native/linux/accelerators.cc) → Accelerator.
 * Placeholder: the full mapping lands with the Linux accelerator reader.
 */
import type { RawAccelerator } from '../native';
import type { Accelerator } from '../types';
import type { MapOptions } from './registry';

export function acceleratorFromLinux(raw: RawAccelerator, options: MapOptions = {}): Accelerator {
  const accelerator: Accelerator = {
    id: raw.id,
    name: raw.name,
    className: raw.className,
    classChain: raw.classChain,
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
  };
  if (options.includeProperties) accelerator.properties = raw.properties;
  return accelerator;
}
