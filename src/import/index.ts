/**
 * importIoreg: a Snapshot from `ioreg` output captured on some Mac (text in any of
 * its forms, or `ioreg -a` XML), through the same mapping the live reader uses.
 */
import { IokitSnapError } from '../errors';
import { MAX_DURATION_MS } from '../input-limits';
import { checkSnapshotShape, SchemaMismatch } from '../snapshot-schema';
import { acceleratorFromRegistry, cStringOf } from '../map/registry';
import type { Accelerator, Host, Limitation, Snapshot } from '../types';
import { classChainOf, classNameOf, isAccelerator } from './accelerators';
import { looksLikePlist, parseIoregPlist } from './ioreg-plist';
import { parseIoregText } from './ioreg-text';
import { walk, type ParsedDump, type RegistryNode } from './registry-node';

export interface ImportOptions {
  /** Attach each accelerator's raw property tree. */
  includeProperties?: boolean;
  /** When the dump was taken (ISO 8601), if the caller knows; otherwise the import time, with a limit saying so. */
  takenAt?: string;
  /** Host facts the caller knows (ioreg output does not carry them). */
  host?: Partial<Host>;
}

const MISSING = 'ENOENT';

function subjectOf(node: RegistryNode): string {
  return `accelerator ${node.id ?? (classNameOf(node) || node.name || 'from a bare property block')}`;
}

/** The Mac's model identifier, when the dump includes the platform expert node (`ioreg -l` from the root). */
function hostModel(dump: ParsedDump): string | null {
  for (const node of walk(dump.roots)) {
    const isPlatform = node.className === 'IOPlatformExpertDevice' || node.inheritance?.includes('IOPlatformExpertDevice');
    if (isPlatform && node.properties) return cStringOf(node.properties.model);
  }
  return null;
}

function acceleratorOf(node: RegistryNode, includeProperties: boolean, limits: Limitation[]): Accelerator {
  const subject = subjectOf(node);
  const className = classNameOf(node) ?? '';
  if (!node.hasHeader) {
    limits.push({
      subject,
      field: 'header',
      code: MISSING,
      reason:
        'a bare property block: the node line (registry id, busy state, service state, retain count) was not in the input; ' +
        (className ? 'the class and name are taken from its IOClass (and IOName) properties' : 'it has no IOClass property either'),
      hint: 'include the `+-o name  <class …>` line above the block',
    });
  } else {
    const absent = [
      node.id === null ? 'id' : null,
      node.busy === null ? 'busy' : null,
      node.serviceState === null ? 'serviceState' : null,
      node.retainCount === null ? 'retainCount' : null,
    ].filter((field): field is string => field !== null);
    if (absent.length > 0) {
      limits.push({
        subject,
        field: absent.join(', '),
        code: MISSING,
        reason: `the node line${node.line === null ? '' : ` (line ${node.line})`} does not carry ${absent.join(', ')}`,
        hint: 'capture with a plain `ioreg` (not a post-processed copy) so the header keeps `id …, busy …, retain …`',
      });
    }
  }
  if (node.properties === null) {
    limits.push({
      subject,
      field: 'properties',
      code: MISSING,
      reason: 'the dump has no properties for this node, so what is read from them (power, probe score, utilization, memory, recovery, queues, model, vendor-id) is null',
      hint: 'capture with `ioreg -r -d 1 -w 0 -c IOAccelerator` or `ioreg -l -w 0`',
    });
  }
  const ioName = node.properties?.IOName;
  const accelerator = acceleratorFromRegistry(
    {
      id: node.id ?? '',
      // An IOService's name is its class name unless IOName is set (IORegistryEntry::getName).
      name: node.hasHeader ? node.name : typeof ioName === 'string' ? ioName : className,
      className,
      classChain: classChainOf(node),
      location: node.location,
      busy: node.busy,
      serviceState: node.serviceState,
      retainCount: node.retainCount,
    },
    node.properties ?? {},
    { includeProperties },
  );
  return onlyReal(accelerator, subject, node, limits);
}

/**
 * What a dump says that cannot be real is not used: a utilization outside 0..100 % (ioreg
 * prints a negative CFNumber as its 64-bit two's complement, 18446744073709551615), a busy
 * time longer than any machine stays up. Each becomes null, with a limit naming it.
 */
function onlyReal(accelerator: Accelerator, subject: string, node: RegistryNode, limits: Limitation[]): Accelerator {
  const where = node.line === null ? '' : ` (the entry at line ${node.line})`;
  const u = accelerator.utilization;
  if (u !== null) {
    for (const field of ['devicePercent', 'rendererPercent', 'tilerPercent'] as const) {
      const percent = u[field];
      if (percent === null || (percent >= 0 && percent <= 100)) continue;
      u[field] = null;
      limits.push({ subject, field: `utilization.${field}`, code: 'ERANGE', reason: `the dump${where} gives ${percent} %, which is no utilization (0 to 100 %); it is not used` });
    }
  }
  const busy = accelerator.busy;
  if (busy !== null && busy.timeNs !== null && !(busy.timeNs >= 0 && busy.timeNs / 1e6 <= MAX_DURATION_MS)) {
    limits.push({
      subject,
      field: 'busy.timeNs',
      code: 'ERANGE',
      reason: `the dump${where} gives a busy time of ${(busy.timeNs / 1e9).toPrecision(3)} s, longer than any machine stays up (ten years); it is not used`,
    });
    accelerator.busy = { count: busy.count, timeNs: null };
  }
  return accelerator;
}

/** Parse `ioreg` output (any text form, or `ioreg -a` XML) into an iokit-snap/1 snapshot. */
export function importIoreg(text: string, options: ImportOptions = {}): Snapshot {
  if (typeof text !== 'string') throw new IokitSnapError('EINVAL', 'importIoreg needs the ioreg output as a string');
  if (options === null || typeof options !== 'object') throw new IokitSnapError('EINVAL', 'options must be an object');
  if (options.takenAt !== undefined && Number.isNaN(Date.parse(options.takenAt))) {
    throw new IokitSnapError('EINVAL', `takenAt must be an ISO 8601 time, got ${JSON.stringify(options.takenAt)}`);
  }
  if (text.trim() === '') {
    throw new IokitSnapError('EINVAL', 'ioreg input is empty: pass the output of `ioreg -l -w 0` or `ioreg -r -d 1 -w 0 -c IOAccelerator`.');
  }
  const dump = looksLikePlist(text) ? parseIoregPlist(text) : parseIoregText(text);
  const limits: Limitation[] = [
    {
      subject: 'snapshot',
      field: 'monotonicNs',
      code: 'ENOTSUP',
      reason: `imported from ${dump.format === 'ioreg-plist' ? '`ioreg -a` XML' : '`ioreg` text'}, which carries no monotonic clock; monotonicNs is 0`,
    },
    {
      subject: 'snapshot',
      field: 'processes',
      code: 'ENOTSUP',
      reason: 'ioreg output holds registry entries only, no process or thread samples',
    },
  ];
  if (options.takenAt === undefined) {
    limits.push({ subject: 'snapshot', field: 'takenAt', code: 'ENOTSUP', reason: 'ioreg output carries no capture time; takenAt is the time of the import' });
  }
  const host: Host = { platform: 'darwin', arch: options.host?.arch ?? '', osRelease: options.host?.osRelease ?? '' };
  const model = options.host?.model ?? hostModel(dump);
  if (model) host.model = model;
  const unknownHost = [!host.arch ? 'arch' : null, !host.osRelease ? 'osRelease' : null].filter((f): f is string => f !== null);
  if (unknownHost.length > 0) {
    limits.push({ subject: 'host', field: unknownHost.join(', '), code: 'ENOTSUP', reason: `ioreg output does not carry the host's ${unknownHost.join(' or ')}; left empty` });
  }
  for (const limit of dump.limits) limits.push(limit); // one per odd line, so no spread: a big dump has more than a call takes

  const accelerators: Accelerator[] = [];
  let busyFromText = false;
  for (const node of walk(dump.roots)) {
    if (!isAccelerator(node)) continue;
    accelerators.push(acceleratorOf(node, options.includeProperties === true, limits));
    busyFromText ||= node.busyTimeFromMilliseconds;
  }
  if (accelerators.length === 0) {
    limits.push({
      subject: 'accelerators',
      field: 'accelerators',
      code: MISSING,
      reason:
        'no entry in the dump is an IOAccelerator: none has IOAccelerator in its class chain, a known accelerator class, ' +
        'IOMatchCategory "IOAccelerator" or GPU PerformanceStatistics (a node merely NAMED IOAccelerator does not count)',
      hint: 'capture with `ioreg -r -d 1 -w 0 -c IOAccelerator`',
    });
  }
  if (busyFromText) {
    limits.push({
      subject: 'accelerators',
      field: 'busy.timeNs',
      code: 'ENOTSUP',
      reason: 'ioreg text prints the accumulated busy time in whole milliseconds (truncated), so busy.timeNs is that × 1e6 and may be short by up to 1 ms',
      hint: '`ioreg -a` gives it in ns',
    });
  }
  const snapshot: Snapshot = {
    format: 'iokit-snap/1',
    takenAt: options.takenAt === undefined ? new Date().toISOString() : new Date(options.takenAt).toISOString(),
    monotonicNs: 0,
    host,
    accelerators,
    processes: [],
    limits,
  };
  // A guard: an importer never emits what it would itself refuse to read back (every number is checked where it is read).
  try {
    checkSnapshotShape(snapshot);
    /* c8 ignore start */
  } catch (error) {
    if (!(error instanceof SchemaMismatch)) throw error;
    throw new IokitSnapError('EINVAL', `the ioreg input holds a value no snapshot can hold (${error.message}); it is damaged there`);
  }
  /* c8 ignore stop */
  return snapshot;
}
