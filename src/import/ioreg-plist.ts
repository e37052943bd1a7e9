/**
 * Reads `ioreg -a` output: an XML property list whose dictionaries are registry
 * entries. ioreg adds its own keys to each entry's properties (IOKitTools ioreg.c,
 * archive()): IORegistryEntryName, IORegistryEntryLocation, IORegistryEntryID,
 * IOObjectClass, IOObjectInheritance (with -i; IORegistryEntry first, the class
 * last, OSObject left out), IOObjectRetainCount, and for IOService objects
 * IOServiceState (bits), IOServiceBusyState and IOServiceBusyTime (ns); children
 * are in IORegistryEntryChildren. `-r` gives an array of such entries.
 */
import plist from 'plist';
import { IokitSnapError } from '../errors';
import type { PropertyValue } from '../types';
import { integerValue } from './ioreg-value';
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

const SAFE_LIMIT = 1n << 53n;

/** Whether the text is an XML property list rather than ioreg's tree text. */
export function looksLikePlist(text: string): boolean {
  return /^\uFEFF?\s*<(\?xml|!DOCTYPE plist|plist)/.test(text);
}

function invalid(what: string): never {
  throw new IokitSnapError('EINVAL', `ioreg -a input: ${what}. Pass the XML that \`ioreg -a …\` prints, unchanged.`);
}

/**
 * The plist package reads <integer> with parseInt, which rounds above 2^53. Such
 * integers are turned into <string> first, which is how the snapshot model carries
 * them anyway (decimal strings). ioreg's XML has no CDATA or comments that could
 * hold a literal "<integer>".
 */
function protectLargeIntegers(xml: string): string {
  return xml.replace(/<integer>\s*(-?\d+)\s*<\/integer>/g, (whole, digits: string) => {
    const value = BigInt(digits);
    return value > SAFE_LIMIT || value < -SAFE_LIMIT ? `<string>${value.toString()}</string>` : whole;
  });
}

/**
 * xmldom (under plist) reports a fatal error on console.error before it throws; the
 * thrown ParseError carries the same facts, so the console copy is held back while
 * this synchronous call runs. Nothing else can run in between.
 */
function withoutConsoleErrors<T>(run: () => T): T {
  const consoleError = console.error;
  console.error = () => undefined;
  try {
    return run();
  } finally {
    console.error = consoleError;
  }
}

function parseXml(xml: string): unknown {
  try {
    return withoutConsoleErrors(() => plist.parse(protectLargeIntegers(xml)));
  } catch (error) {
    const locator = (error as { locator?: { lineNumber?: number; columnNumber?: number } }).locator;
    const where = locator?.lineNumber ? `line ${locator.lineNumber}, column ${locator.columnNumber}: ` : '';
    invalid(`${where}not a well-formed property list (${(error as Error).message})`);
  }
}

function toPropertyValue(value: unknown): PropertyValue {
  if (Buffer.isBuffer(value)) return { $data: value.toString('base64') };
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (Array.isArray(value)) return value.map(toPropertyValue);
  if (value !== null && typeof value === 'object') {
    const entries: Record<string, PropertyValue> = {};
    for (const [key, item] of Object.entries(value)) entries[key] = toPropertyValue(item);
    return entries;
  }
  return value as PropertyValue;
}

/** An integer that may have arrived as a number or (above 2^53) a decimal string. */
function toBigInt(value: unknown): bigint | null {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return null;
}

function toCount(value: unknown): number | null {
  const big = toBigInt(value);
  return big === null ? null : Number(integerValue(big));
}

function nodeFrom(entry: unknown, path: string): RegistryNode {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry) || Buffer.isBuffer(entry)) {
    invalid(`${path} is not a dictionary (a registry entry)`);
  }
  const record = entry as Record<string, unknown>;
  const name = record.IORegistryEntryName;
  if (typeof name !== 'string') invalid(`${path} has no IORegistryEntryName string, so it is not an ioreg entry`);

  const id = toBigInt(record.IORegistryEntryID);
  const inheritance = Array.isArray(record.IOObjectInheritance) ? record.IOObjectInheritance.filter((c): c is string => typeof c === 'string') : null;
  const className = typeof record.IOObjectClass === 'string' ? record.IOObjectClass : (inheritance?.[inheritance.length - 1] ?? null);
  const state = toBigInt(record.IOServiceState);
  const busyCount = toCount(record.IOServiceBusyState);

  const properties: Record<string, PropertyValue> = {};
  let propertyCount = 0;
  for (const [key, value] of Object.entries(record)) {
    if (HEADER_KEYS.has(key)) continue;
    properties[key] = toPropertyValue(value);
    propertyCount++;
  }

  const children = Array.isArray(record.IORegistryEntryChildren) ? record.IORegistryEntryChildren : [];
  return {
    name,
    location: typeof record.IORegistryEntryLocation === 'string' ? record.IORegistryEntryLocation : null,
    className,
    inheritance: inheritance && inheritance.length > 0 ? inheritance : null,
    // IORegistryEntryID is written as a signed 64-bit CFNumber; the id is its unsigned hex.
    id: id === null ? null : `0x${BigInt.asUintN(64, id).toString(16)}`,
    serviceState: state === null ? null : serviceStateFromBits(state),
    busy: busyCount === null ? null : { count: busyCount, timeNs: toCount(record.IOServiceBusyTime) },
    busyTimeFromMilliseconds: false,
    retainCount: toCount(record.IOObjectRetainCount),
    // ioreg -a writes properties only for the entries it selected (-l, -c, -k, -n); the others carry only its own keys.
    properties: propertyCount > 0 ? properties : null,
    children: children.map((child, i) => nodeFrom(child, `${path} > ${name} child ${i + 1}`)),
    line: null,
    hasHeader: true,
  };
}

export function parseIoregPlist(xml: string): ParsedDump {
  const root = parseXml(xml);
  const entries = Array.isArray(root) ? root : [root];
  if (entries.length === 0) invalid('the property list holds no registry entries');
  return {
    format: 'ioreg-plist',
    roots: entries.map((entry, i) => nodeFrom(entry, Array.isArray(root) ? `entry ${i + 1}` : 'the top dictionary')),
    limits: [],
  };
}
