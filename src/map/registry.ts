/**
 * (IORegistry header, property tree) → Accelerator. The ONE mapping, used by the
 * live macOS backend (src/sample.ts) and by the ioreg importer (src/import/).
 * Pure: it reads what the tree holds and leaves null what it does not.
 *
 * Property names, as real dumps show them (test/fixtures/ioreg/):
 *   IOPowerManagement     CurrentPowerState, MaxPowerState, CapabilityFlags; DesiredPowerState
 *                         and MachineState only while a transition is in progress.
 *                         DriverPowerState is the driver's own view, not the current state.
 *   PerformanceStatistics Apple: "Device Utilization %", "Renderer Utilization %",
 *                         "Tiler Utilization %", "In use system memory", "Alloc system memory";
 *                         Intel and AMD: "GPU Activity(%)"; AMD: "inUseVidMemoryBytes"
 *                         (a user's RX 5500 `ioreg -l`, exelban/stats#451); all: recoveryCount,
 *                         lastRecoveryTime.
 *   SchedulerState        BusyWorkQueues: [{ id, submitted, finished, state, … }]
 *   IOProbeScore, model (string, or data holding a C string), vendor-id (data, 32-bit
 *   little-endian PCI vendor id), CommandSubmissionEnabled.
 */
import type { Accelerator, BusyState, PowerState, PropertyValue, Recovery, ServiceState, Utilization, WorkQueue } from '../types';

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

type Dictionary = Record<string, PropertyValue>;

/** PCI vendor ids of the GPU makers a Mac can hold. */
const PCI_VENDORS: Record<number, string> = {
  0x106b: 'Apple',
  0x8086: 'Intel',
  0x1002: 'AMD',
  0x10de: 'NVIDIA',
};

function isData(value: PropertyValue | undefined): value is { $data: string } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof value.$data === 'string' && Object.keys(value).length === 1;
}

function dictionary(value: PropertyValue | undefined): Dictionary | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isData(value) ? value : null;
}

/** A number, or an integer carried as a decimal string (64-bit values above 2^53, rounded here; past a double's range, none). */
function numeric(value: PropertyValue | undefined): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value) && Number.isFinite(Number(value))) return Number(value);
  return null;
}

function firstNumeric(source: Dictionary, keys: string[]): number | null {
  for (const key of keys) {
    const value = numeric(source[key]);
    if (value !== null) return value;
  }
  return null;
}

function power(properties: Dictionary): PowerState | null {
  const management = dictionary(properties.IOPowerManagement);
  const current = management ? numeric(management.CurrentPowerState) : null;
  if (!management || current === null) return null;
  return {
    state: current,
    maxState: numeric(management.MaxPowerState),
    desiredState: numeric(management.DesiredPowerState),
    capabilityFlags: numeric(management.CapabilityFlags),
    runtimeStatus: null,
    machineState: numeric(management.MachineState),
  };
}

function utilization(statistics: Dictionary | null): Utilization | null {
  if (!statistics) return null;
  const result: Utilization = {
    // Apple's key first; Intel and AMD drivers publish "GPU Activity(%)" (AMD may have both).
    devicePercent: firstNumeric(statistics, ['Device Utilization %', 'GPU Activity(%)']),
    rendererPercent: numeric(statistics['Renderer Utilization %']),
    tilerPercent: numeric(statistics['Tiler Utilization %']),
  };
  return result.devicePercent === null && result.rendererPercent === null && result.tilerPercent === null ? null : result;
}

function memory(statistics: Dictionary | null): Accelerator['memory'] {
  if (!statistics) return null;
  const inUseBytes = firstNumeric(statistics, ['In use system memory', 'inUseVidMemoryBytes']);
  const allocatedBytes = numeric(statistics['Alloc system memory']);
  return inUseBytes === null && allocatedBytes === null ? null : { inUseBytes, allocatedBytes };
}

function recovery(statistics: Dictionary | null): Recovery | null {
  const count = statistics ? numeric(statistics.recoveryCount) : null;
  if (!statistics || count === null) return null;
  return { count, lastTime: numeric(statistics.lastRecoveryTime) };
}

/** SchedulerState.BusyWorkQueues; an entry without a numeric id, submitted and finished is left out. */
function queues(properties: Dictionary): WorkQueue[] | null {
  const scheduler = dictionary(properties.SchedulerState);
  const busy = scheduler?.BusyWorkQueues;
  if (!Array.isArray(busy)) return null;
  const result: WorkQueue[] = [];
  for (const item of busy) {
    const queue = dictionary(item);
    if (!queue) continue;
    const id = numeric(queue.id);
    const submitted = numeric(queue.submitted);
    const finished = numeric(queue.finished);
    if (id === null || submitted === null || finished === null) continue;
    result.push({ id, submitted, finished, state: typeof queue.state === 'string' ? queue.state : String(queue.state ?? '') });
  }
  return result;
}

/** Bytes up to the first NUL, as text: how `model` reads when a driver stores it as data. */
export function cStringOf(value: PropertyValue | undefined): string | null {
  if (typeof value === 'string') return value;
  if (!isData(value)) return null;
  const bytes = Buffer.from(value.$data, 'base64');
  const end = bytes.indexOf(0);
  const text = bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
  return text.length > 0 ? text : null;
}

/**
 * vendor-id is PCI-style: data holding a 32-bit little-endian id (<6b100000> = 0x106b),
 * or a number. An id outside the table is reported as its hex. Without vendor-id,
 * Apple's AGX driver (class AGXAccelerator…, bundle com.apple.AGX…) drives only
 * Apple-designed GPUs, so it names the vendor; nothing else is guessed.
 */
function vendor(properties: Dictionary, className: string): string | null {
  const raw = properties['vendor-id'];
  let id: number | null = numeric(raw);
  if (id === null && isData(raw)) {
    const bytes = Buffer.from(raw.$data, 'base64');
    if (bytes.length >= 2) id = bytes.length >= 4 ? bytes.readUInt32LE(0) : bytes.readUInt16LE(0);
  }
  if (id !== null) return PCI_VENDORS[id] ?? `0x${id.toString(16).padStart(4, '0')}`;
  const bundle = properties.CFBundleIdentifier ?? properties.IOPersonalityPublisher;
  if (/^AGXAccelerator/.test(className) || (typeof bundle === 'string' && bundle.startsWith('com.apple.AGX'))) return 'Apple';
  return null;
}

export function acceleratorFromRegistry(header: RegistryHeader, properties: Dictionary, options: MapOptions = {}): Accelerator {
  const statistics = dictionary(properties.PerformanceStatistics);
  const submission = properties.CommandSubmissionEnabled;
  const accelerator: Accelerator = {
    id: header.id,
    name: header.name,
    className: header.className,
    classChain: header.classChain,
    vendor: vendor(properties, header.className),
    model: cStringOf(properties.model),
    busy: header.busy,
    serviceState: header.serviceState,
    power: power(properties),
    probeScore: numeric(properties.IOProbeScore),
    utilization: utilization(statistics),
    memory: memory(statistics),
    recovery: recovery(statistics),
    queues: queues(properties),
    location: header.location ?? null,
    retainCount: header.retainCount,
    commandSubmissionEnabled: typeof submission === 'boolean' ? submission : null,
  };
  if (options.includeProperties) accelerator.properties = properties;
  return accelerator;
}
