/**
 * The accelerator table, with the columns that mean something on the platform the data
 * came from: IOKit's (busy state, recoveries, scheduler queues) for macOS services, PCI's
 * (driver, device node, power state, VRAM, health) for Linux devices. At most 100 columns
 * wide: the model name gives way first.
 */
import type { Accelerator, PropertyValue } from '../types';
import { dash, formatBytes, formatNs, table, type Style } from './format';
import { bracketedName, openPciNames, shortVendorName, type PciNames } from './pci-names';

export interface AcceleratorTableOptions {
  /** Names for PCI ids (Linux); by default the system's pci.ids, read when first needed. */
  pciNames?: PciNames;
}

export const MAX_TABLE_WIDTH = 100;

function powerCell(a: Accelerator): string {
  if (!a.power) return '-';
  const p = a.power;
  let text = typeof p.state === 'number' && p.maxState !== null ? `${p.state}/${p.maxState}` : String(p.state);
  if (p.runtimeStatus) text += ` ${p.runtimeStatus}`;
  if (p.performanceState !== null && p.performanceState !== undefined) text += ` P${p.performanceState}`;
  if (p.desiredState !== null) text += ` →${p.desiredState}`;
  return text;
}

function utilizationCell(a: Accelerator): string {
  const u = a.utilization;
  if (!u) return '-';
  const parts = [u.devicePercent, u.rendererPercent, u.tilerPercent];
  if (parts[1] === null && parts[2] === null) return parts[0] === null ? '-' : `${parts[0]}%`;
  return parts.map(dash).join('/') + '%';
}

function queuesCell(a: Accelerator): string {
  if (!a.queues) return '-';
  const pending = a.queues.reduce((sum, q) => sum + Math.max(0, q.submitted - q.finished), 0);
  const states = [...new Set(a.queues.map((q) => q.state))].join(',');
  return `${a.queues.length}: ${pending} pending${states ? `, ${states}` : ''}`;
}

interface TableParts {
  header: string[];
  rows: string[][];
  /** The columns that give way when a line is too wide. */
  shrink: number[];
  /** Of those, the ones cut in the middle: an IOKit class name ends in what tells it apart (…G16G). */
  cutMiddle?: number[];
}

/** The vendor and the model, the vendor not repeated when the model already starts with it. */
function vendorModel(vendor: string | null, model: string | null): string {
  if (vendor && model && model.toLowerCase().startsWith(vendor.toLowerCase())) return model;
  return [vendor, model].filter(Boolean).join(' ') || '-';
}

/** macOS: IOKit services, with what IOKit says about them. */
function iokitRows(accelerators: Accelerator[]): TableParts {
  const rows = accelerators.map((a) => [
    a.id,
    // The class, after the name when they differ (a service renamed, e.g. IOServiceCompatibility).
    a.className && a.className !== a.name ? `${a.name} (${a.className})` : a.name,
    vendorModel(a.vendor, a.model),
    // IOService busy state: registration/matching/termination in progress, not GPU work.
    a.busy ? `${a.busy.count}${a.busy.timeNs !== null ? ` (${formatNs(a.busy.timeNs)})` : ''}` : '-',
    powerCell(a),
    utilizationCell(a),
    a.recovery ? String(a.recovery.count) : '-',
    queuesCell(a),
  ]);
  return { header: ['ID', 'NAME (CLASS)', 'MODEL', 'SVC-BUSY', 'POWER', 'UTIL', 'RECOVERIES', 'QUEUES'], rows, shrink: [1, 2], cutMiddle: [1] };
}

const property = (a: Accelerator, key: string): PropertyValue | undefined => a.properties?.[key];
const textProperty = (a: Accelerator, key: string): string | null => {
  const value = property(a, key);
  return typeof value === 'string' ? value : null;
};
const numberProperty = (a: Accelerator, key: string): number | null => {
  const value = property(a, key);
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
};

/** The device's node: its DRM card, else its accel or /dev/nvidiaN node; never the PCI address again. */
function nodeCell(a: Accelerator): string {
  if (a.name && a.name !== a.id) return a.name;
  const own = (a.deviceNodes ?? []).filter((node) => /^\/dev\/(dri\/card\d+|dri\/renderD\d+|accel\/accel\d+|nvidia\d+)$/.test(node));
  return own.length > 0 ? own[0].replace(/^\/dev\/(dri\/|accel\/)?/, '') : '-';
}

/** "NVIDIA H100 80GB HBM3" (NVML), "AMD Instinct MI210" (amdgpu), else pci.ids, else the ids. */
function modelCell(a: Accelerator, names: PciNames): string {
  const vendorId = textProperty(a, 'pci.vendorId');
  const deviceId = textProperty(a, 'pci.deviceId');
  const fromIds = vendorId !== null && a.vendor === vendorId.toLowerCase() ? names.vendor(vendorId) : null;
  const vendor = fromIds !== null ? shortVendorName(fromIds) : a.vendor;
  let model = a.model;
  if (model === null && vendorId !== null && deviceId !== null) {
    const name = names.device(vendorId, deviceId);
    model = name !== null ? bracketedName(name) : `[${vendorId.replace(/^0x/, '')}:${deviceId.replace(/^0x/, '')}]`;
  }
  return vendorModel(vendor, model);
}

/** PCI D-state, runtime PM when it is not plainly "active", NVIDIA P-state and board power. */
function pciPowerCell(a: Accelerator): string {
  const p = a.power;
  if (!p) return '-';
  const parts = [String(p.state)];
  if (p.runtimeStatus && p.runtimeStatus !== 'active' && p.runtimeStatus !== 'unsupported') parts.push(p.runtimeStatus);
  if (p.performanceState !== null && p.performanceState !== undefined) parts.push(`P${p.performanceState}`);
  if (p.drawMilliwatts !== null && p.drawMilliwatts !== undefined) parts.push(`${Math.round(p.drawMilliwatts / 1000)} W`);
  return parts.join(' ');
}

/** "1.0/79.6 GiB": in use over total, in the total's unit. */
function vramCell(a: Accelerator): string {
  const used = a.memory?.inUseBytes ?? null;
  const total = numberProperty(a, 'nvml.memoryTotalBytes') ?? numberProperty(a, 'amdgpu.vramTotalBytes');
  if (total === null || total <= 0) return formatBytes(used);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const power = Math.min(units.length - 1, Math.floor(Math.log(total) / Math.log(1024)));
  const scale = 1024 ** power;
  return `${used === null ? '-' : (used / scale).toFixed(1)}/${(total / scale).toFixed(1)} ${units[power]}`;
}

/**
 * What Linux says about the device's health: NVML's GPU-lost and reset-required, an NVML
 * that did not answer, a PCI power state or runtime PM in error (config space unreadable,
 * a failed resume), a link trained narrower than it can be. "ok" when the device's signals
 * were read and none of these holds; "-" when they were not (NVML missing for an NVIDIA GPU).
 */
function healthCell(a: Accelerator): string {
  const problems: string[] = [];
  if (a.health?.gpuLost) problems.push('GPU lost');
  if (a.health?.resetRequired) problems.push('reset required');
  const nvml = textProperty(a, 'nvml.status');
  if (nvml === 'timedOut') problems.push('NVML timed out');
  if (nvml === 'error') problems.push('NVML error');
  if (a.power?.state === 'error') problems.push('PCI error');
  if (a.power?.runtimeStatus === 'error') problems.push('runtime PM error');
  const width = numberProperty(a, 'pci.link.currentWidth');
  const maxWidth = numberProperty(a, 'pci.link.maxWidth');
  if (width !== null && maxWidth !== null && width < maxWidth) problems.push(`link x${width} of x${maxWidth}`);
  if (problems.length > 0) return problems.join(', ');
  // NVML not loaded: the NVIDIA driver's own signals are unknown, so "ok" would claim too much.
  if (nvml === 'unavailable' || nvml === 'disabled') return '-';
  return a.health || a.power || width !== null ? 'ok' : '-';
}

/** Linux: PCI devices, with what sysfs, amdgpu and NVML say about them. */
function pciRows(accelerators: Accelerator[], names: PciNames): TableParts {
  const rows = accelerators.map((a) => [
    a.id,
    nodeCell(a),
    a.className || '-',
    modelCell(a, names),
    pciPowerCell(a),
    vramCell(a),
    utilizationCell(a),
    healthCell(a),
  ]);
  return { header: ['PCI', 'NODE', 'DRIVER', 'MODEL', 'POWER', 'VRAM', 'UTIL', 'HEALTH'], rows, shrink: [3, 7] };
}

/**
 * Cuts the cells of the `shrink` columns, widest column first, until a line fits `width` (then
 * any other column but the id, if it must); a cut cell ends with "…" (or has it in the middle).
 * A column never gets narrower than its header.
 */
function fitWidth({ header, rows, shrink, cutMiddle = [] }: TableParts, width: number): string[][] {
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, r[i].length), h.length)); // no spread: rows may outnumber a call's arguments
  let over = widths.reduce((sum, w) => sum + w, 0) + 2 * (widths.length - 1) - width;
  // The named columns first; then, as a last resort, any but the first (the id).
  const lastResort = header.map((_, i) => i).slice(1);
  while (over > 0) {
    let candidates = shrink.filter((i) => widths[i] > header[i].length);
    if (candidates.length === 0) candidates = lastResort.filter((i) => widths[i] > header[i].length);
    /* c8 ignore next -- the headers alone fit in 100 columns, so some column can always give */
    if (candidates.length === 0) break;
    const widest = candidates.reduce((a, b) => (widths[b] > widths[a] ? b : a));
    widths[widest]--;
    over--;
  }
  const cut = (cell: string, room: number, middle: boolean): string => {
    if (cell.length <= room) return cell;
    if (!middle) return cell.slice(0, room - 1) + '…';
    const tail = Math.floor((room - 1) / 2);
    return cell.slice(0, room - 1 - tail) + '…' + cell.slice(cell.length - tail);
  };
  return rows.map((row) => row.map((cell, i) => cut(cell, widths[i], cutMiddle.includes(i))));
}

/** The accelerator table: the same for a live run and for `iokit-snap import`. */
export function acceleratorTable(accelerators: Accelerator[], style: Style, options: AcceleratorTableOptions = {}): string {
  const linux = accelerators.length > 0 && accelerators.every((a) => a.classChain[0] === 'pci');
  const parts = linux ? pciRows(accelerators, options.pciNames ?? openPciNames()) : iokitRows(accelerators);
  return table(parts.header, fitWidth(parts, MAX_TABLE_WIDTH), style);
}
