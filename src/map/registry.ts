/**
 * (IORegistry header, property tree) → Accelerator. The ONE mapping, used by the
 * live macOS backend (src/sample.ts) and by the ioreg importer (src/import/).
 * Placeholder: the full mapping lands with the macOS issue.
 */
import type { Accelerator, BusyState, PropertyValue, ServiceState } from '../types';

export interface RegistryHeader {
  id: string;
  name: string;
  className: string;
  classChain: string[];
  location?: string | null;
  busy: BusyState | null;
  serviceState: ServiceState | null;
  retainCount: number | null;
}

export interface MapOptions {
  includeProperties?: boolean;
}

export function acceleratorFromRegistry(
  header: RegistryHeader,
  properties: Record<string, PropertyValue>,
  options: MapOptions = {},
): Accelerator {
  const accelerator: Accelerator = {
    id: header.id,
    name: header.name,
    className: header.className,
    classChain: header.classChain,
    vendor: null,
    model: null,
    busy: header.busy,
    serviceState: header.serviceState,
    power: null,
    probeScore: null,
    utilization: null,
    memory: null,
    recovery: null,
    queues: null,
    location: header.location ?? null,
    retainCount: header.retainCount,
  };
  if (options.includeProperties) accelerator.properties = properties;
  return accelerator;
}
