/**
 * Reads `ioreg -a` output: an XML property list whose dictionaries are registry
 * entries. ioreg adds its own keys to each entry's properties (IOKitTools ioreg.c,
 * archive()): IORegistryEntryName, IORegistryEntryLocation, IORegistryEntryID,
 * IOObjectClass, IOObjectInheritance (with -i; IORegistryEntry first, the class
 * last, OSObject left out), IOObjectRetainCount, and for IOService objects
 * IOServiceState (bits), IOServiceBusyState and IOServiceBusyTime (ns); children
 * are in IORegistryEntryChildren. `-r` gives an array of such entries.
 */
import { IokitSnapError } from '../errors';
import { setOwn } from '../input-limits';
import type { PropertyValue } from '../types';
import { integerValue } from './ioreg-value';
import { parsePlistXml, PlistSyntaxError } from './plist-xml';
import { serviceStateFromBits, type ParsedDump, type RegistryNode } from './registry-node';

const HEADER_KEYS = new Set([
  'IORegistryEntryName',
  'IORegistryEntryLocation',
  'IORegistryEntryID',
  'IOObjectClass',
  'IOObjectInheritance',
  'IOObjectRetainCount',
  'IOServiceState',
  'IOServiceBusyState',
  'IOServiceBusyTime',
  'IORegistryEntryChildren',
]);

/** Whether the text is an XML property list rather than ioreg's tree text. */
export function looksLikePlist(text: string): boolean {
  return /^\uFEFF?\s*<(\?xml|!DOCTYPE plist|plist)/.test(text);
}

function invalid(what: string): never {
  throw new IokitSnapError('EINVAL', `ioreg -a input: ${what}. Pass the XML that \`ioreg -a …\` prints, unchanged.`);
}

function parseXml(xml: string): PropertyValue {
  try {
    return parsePlistXml(xml.replace(/^\uFEFF/, ''));
  } catch (error) {
    /* c8 ignore next -- the plist reader throws only PlistSyntaxError; anything else is a bug to see as is */
    if (!(error instanceof PlistSyntaxError)) throw error;
    invalid(`line ${error.line}, column ${error.column}: not a well-formed property list (${error.reason})`);
  }
}

function isDictionary(value: PropertyValue): value is Record<string, PropertyValue> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(typeof value.$data === 'string' && Object.keys(value).length === 1);
}

/** An integer that may have arrived as a number or (above 2^53) a decimal string. */
function toBigInt(value: unknown): bigint | null {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return null;
}

/** A count (busy, retain): an exact integer, or EINVAL naming the entry when it is past 2^53 (no count is). */
function toCount(value: unknown, place: Place, key: string): number | null {
  const big = toBigInt(value);
  if (big === null) return null;
  const count = integerValue(big);
  if (typeof count === 'number') return count;
  return invalid(`${pathOf(place)}: ${key} is ${count.length > 40 ? `${count.slice(0, 40)}…` : count}, larger than any count can be`);
}

/** A time in ns (64-bit, so it may pass 2^53 and is then rounded); null past a double's range. */
function toNs(value: unknown): number | null {
  const big = toBigInt(value);
  return big === null || !Number.isFinite(Number(big)) ? null : Number(big);
}

/** Where an entry sits, kept as links so a path is spelled out only for an error message. */
interface Place {
  parent: Place | null;
  /** The parent entry's name (for a child), or the top-level label. */
  label: string;
  index: number;
}

function pathOf(place: Place): string {
  const parts: string[] = [];
  for (let p: Place | null = place; p !== null; p = p.parent) parts.push(p.parent === null ? p.label : `${p.label} child ${p.index}`);
  return parts.reverse().join(' > ');
}

/** One entry without its children (parseIoregPlist links those, without recursion). */
function nodeFrom(entry: PropertyValue, place: Place): { node: RegistryNode; children: PropertyValue[] } {
  if (!isDictionary(entry)) invalid(`${pathOf(place)} is not a dictionary (a registry entry)`);
  const record = entry as Record<string, PropertyValue>;
  const name = record.IORegistryEntryName;
  if (typeof name !== 'string') invalid(`${pathOf(place)} has no IORegistryEntryName string, so it is not an ioreg entry`);

  const id = toBigInt(record.IORegistryEntryID);
  const inheritance = Array.isArray(record.IOObjectInheritance) ? record.IOObjectInheritance.filter((c): c is string => typeof c === 'string') : null;
  const className = typeof record.IOObjectClass === 'string' ? record.IOObjectClass : (inheritance?.[inheritance.length - 1] ?? null);
  const state = toBigInt(record.IOServiceState);
  const busyCount = toCount(record.IOServiceBusyState, place, 'IOServiceBusyState');

  const properties: Record<string, PropertyValue> = {};
  let propertyCount = 0;
  for (const [key, value] of Object.entries(record)) {
    if (HEADER_KEYS.has(key)) continue;
    setOwn(properties, key, value);
    propertyCount++;
  }

  const node: RegistryNode = {
    name,
    location: typeof record.IORegistryEntryLocation === 'string' ? record.IORegistryEntryLocation : null,
    className,
    inheritance: inheritance && inheritance.length > 0 ? inheritance : null,
    // IORegistryEntryID is written as a signed 64-bit CFNumber; the id is its unsigned hex.
    id: id === null ? null : `0x${BigInt.asUintN(64, id).toString(16)}`,
    serviceState: state === null ? null : serviceStateFromBits(state),
    busy: busyCount === null ? null : { count: busyCount, timeNs: toNs(record.IOServiceBusyTime) },
    busyTimeFromMilliseconds: false,
    retainCount: toCount(record.IOObjectRetainCount, place, 'IOObjectRetainCount'),
    // ioreg -a writes properties only for the entries it selected (-l, -c, -k, -n); the others carry only its own keys.
    properties: propertyCount > 0 ? properties : null,
    children: [],
    line: null,
    hasHeader: true,
  };
  return { node, children: Array.isArray(record.IORegistryEntryChildren) ? record.IORegistryEntryChildren : [] };
}

export function parseIoregPlist(xml: string): ParsedDump {
  const root = parseXml(xml);
  const entries = Array.isArray(root) ? root : [root];
  if (entries.length === 0) invalid('the property list holds no registry entries');
  const roots: RegistryNode[] = [];
  // Depth-first with an explicit stack (children pushed in reverse), so entries keep their order.
  const pending: { entry: PropertyValue; place: Place; into: RegistryNode[] }[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const label = Array.isArray(root) ? `entry ${i + 1}` : 'the top dictionary';
    pending.push({ entry: entries[i], place: { parent: null, label, index: 0 }, into: roots });
  }
  while (pending.length > 0) {
    const { entry, place, into } = pending.pop() as (typeof pending)[number];
    const { node, children } = nodeFrom(entry, place);
    into.push(node);
    for (let i = children.length - 1; i >= 0; i--) {
      pending.push({ entry: children[i], place: { parent: place, label: node.name, index: i + 1 }, into: node.children });
    }
  }
  return { format: 'ioreg-plist', roots, limits: [] };
}
