// importIoreg on `ioreg -a` XML. No real `ioreg -a` capture exists among the fixtures,
// so the plists here are BUILT IN THE TEST: from the values of the real M4 text capture
// (its property tree as the text reader parses it, and its header facts), laid out the
// way IOKitTools ioreg.c archive() writes them. The round trip must give the same
// Accelerator as the text import.
import * as fs from 'node:fs';
import * as path from 'node:path';
import plist, { type PlistValue } from 'plist';
import t from 'tap';
import { importIoreg } from '../src/import';
import { parseIoregText } from '../src/import/ioreg-text';
import type { PropertyValue } from '../src/types';

const M4 = fs.readFileSync(
  path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt'),
  'utf8',
);

/** PropertyValue → what the plist builder writes: { $data } as <data>, the rest as is. */
function toPlist(value: PropertyValue): PlistValue {
  if (Array.isArray(value)) return value.map(toPlist);
  if (value !== null && typeof value === 'object') {
    if (typeof value.$data === 'string' && Object.keys(value).length === 1) return Buffer.from(value.$data, 'base64');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlist(v)]));
  }
  return value as PlistValue;
}

const M4_PROPERTIES = parseIoregText(M4).roots[0].properties as Record<string, PropertyValue>;

/** The M4 entry as `ioreg -a -r -d 1 -c IOAccelerator` would archive it. */
function m4Entry(extra: Record<string, PlistValue> = {}): Record<string, PlistValue> {
  return {
    ...(toPlist(M4_PROPERTIES) as Record<string, PlistValue>),
    IORegistryEntryName: 'AGXAcceleratorG16G',
    IORegistryEntryID: 0x100000478,
    IOObjectClass: 'AGXAcceleratorG16G',
    IOObjectRetainCount: 101,
    IOServiceState: 0x6, // registered | matched, not inactive
    IOServiceBusyState: 0,
    IOServiceBusyTime: 752_000_000,
    ...extra,
  };
}

t.test('a plist built from the M4 values round-trips to the same Accelerator as the text', async (t) => {
  const fromText = importIoreg(M4, { includeProperties: true });
  const xml = plist.build([m4Entry()]);
  const fromPlist = importIoreg(xml, { includeProperties: true });
  t.strictSame(fromPlist.accelerators, fromText.accelerators);
  t.match(fromPlist.limits[0], { field: 'monotonicNs', reason: /`ioreg -a` XML/ });
  t.notOk(fromPlist.limits.some((l) => l.field === 'busy.timeNs'), 'ns from the plist: no millisecond note');
});

t.test('exact busy ns, inheritance, children, service state bits, location', async (t) => {
  const chain = ['IORegistryEntry', 'IOService', 'IOAccelerator', 'IOGPU', 'AGXAccelerator', 'AGXFamilyAccelerator', 'AGXAcceleratorG16G'];
  const root = {
    IORegistryEntryName: 'gpu',
    IORegistryEntryLocation: '4000000',
    IORegistryEntryID: 0x1000002a0,
    IOObjectClass: 'AppleARMIODevice',
    IOObjectInheritance: ['IORegistryEntry', 'IOService', 'AppleARMIODevice'],
    IOObjectRetainCount: 12,
    IOServiceState: 0x6,
    IOServiceBusyState: 0,
    IOServiceBusyTime: 1_234_567,
    IORegistryEntryChildren: [
      m4Entry({ IOObjectInheritance: chain, IOServiceBusyTime: 752_123_456, IOServiceState: 0x7, IOServiceBusyState: 2 }),
      {
        IORegistryEntryName: 'AGXDeviceUserClient',
        IORegistryEntryID: 0x100000a01,
        IOObjectClass: 'AGXDeviceUserClient',
        IOObjectInheritance: ['IORegistryEntry', 'IOService', 'IOUserClient', 'IOGPUDeviceUserClient', 'AGXDeviceUserClient'],
        IOObjectRetainCount: 6,
        IOServiceState: 0,
        IOServiceBusyState: 0,
        IOServiceBusyTime: 0,
      },
    ],
  };
  const snapshot = importIoreg(plist.build(root));
  t.equal(snapshot.accelerators.length, 1);
  t.match(snapshot.accelerators[0], {
    id: '0x100000478',
    className: 'AGXAcceleratorG16G',
    classChain: [...chain].reverse().concat('OSObject'),
    busy: { count: 2, timeNs: 752_123_456 },
    serviceState: { registered: true, matched: true, active: false },
    retainCount: 101,
  });
});

t.test('`-r` gives an array of entries; an entry without properties is reported', async (t) => {
  const bare = { IORegistryEntryName: 'IntelAccelerator', IORegistryEntryID: 0x10000048d, IOObjectClass: 'IntelAccelerator', IOObjectRetainCount: 59 };
  const snapshot = importIoreg(plist.build([m4Entry(), bare]));
  t.equal(snapshot.accelerators.length, 2);
  t.match(snapshot.accelerators[1], { id: '0x10000048d', busy: null, serviceState: null, retainCount: 59, classChain: ['IntelAccelerator'] });
  t.match(
    snapshot.limits.filter((l) => l.subject === 'accelerator 0x10000048d').map((l) => l.field),
    ['busy, serviceState', 'properties'],
  );
  const noCount = importIoreg(plist.build([{ IORegistryEntryName: 'x', IOObjectClass: 'IntelAccelerator', IOServiceBusyState: 0 }]));
  t.strictSame(noCount.accelerators[0].busy, { count: 0, timeNs: null }, 'a busy count without a time: time unknown');
  t.match(noCount.limits.find((l) => l.subject === 'accelerator IntelAccelerator'), { field: 'id, serviceState, retainCount' });
  const onlyInheritance = importIoreg(plist.build([{ IORegistryEntryName: 'y', IOObjectInheritance: ['IORegistryEntry', 'IOService', 'IOAccelerator', 'IntelAccelerator'] }]));
  t.equal(onlyInheritance.accelerators[0].className, 'IntelAccelerator', 'class from the chain when IOObjectClass is missing');
});

t.test('integers beyond 2^53 stay exact; negative ids read as unsigned; dates and reals', async (t) => {
  const xml = plist
    .build([m4Entry({ KDebugVersion: 4242424242, When: new Date('2026-11-02T09:00:00Z'), Ratio: 0.5, IORegistryEntryID: -1 })])
    .replace('<integer>4242424242</integer>', '<integer>18446744073709551615</integer>');
  const [accelerator] = importIoreg(xml, { includeProperties: true }).accelerators;
  t.equal(accelerator.properties?.KDebugVersion, '18446744073709551615');
  t.equal(accelerator.properties?.When, '2026-11-02T09:00:00.000Z');
  t.equal(accelerator.properties?.Ratio, 0.5);
  t.equal(accelerator.id, '0xffffffffffffffff', 'a signed 64-bit -1 is the id 0xffffffffffffffff');
  const bigId = plist.build([m4Entry()]).replace('<integer>4294968440</integer>', '<integer>18446744073709551614</integer>');
  t.equal(importIoreg(bigId).accelerators[0].id, '0xfffffffffffffffe');
  const badDate = plist.build([m4Entry({ When: new Date('2026-11-02T09:00:00Z') })]).replace(/<date>[^<]*<\/date>/, '<date>not a date</date>');
  t.equal(importIoreg(badDate, { includeProperties: true }).accelerators[0].properties?.When, 'Invalid Date');
});

t.test('malformed plists: EINVAL naming the line or the entry, and nothing on the console', async (t) => {
  const logged: unknown[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    const broken = plist.build([m4Entry()]).replace('<key>IOProbeScore</key>', '<key>IOProbeScore</kye>');
    const line = broken.split('\n').findIndex((l) => l.includes('</kye>')) + 1;
    t.throws(() => importIoreg(broken), { code: 'EINVAL', message: new RegExp(`ioreg -a input: line ${line}, column \\d+: not a well-formed property list`) });
    t.throws(() => importIoreg('<?xml version="1.0"?>\n<html></html>'), { code: 'EINVAL', message: /not a well-formed property list \(<html> is not a property list element/ });
    t.throws(() => importIoreg(plist.build({ CFBundleName: 'not ioreg' })), { code: 'EINVAL', message: /the top dictionary has no IORegistryEntryName/ });
    t.throws(() => importIoreg(plist.build([m4Entry(), 'text'])), { code: 'EINVAL', message: /entry 2 is not a dictionary/ });
    t.throws(() => importIoreg(plist.build([])), { code: 'EINVAL', message: /holds no registry entries/ });
    t.throws(
      () => importIoreg(plist.build({ IORegistryEntryName: 'Root', IORegistryEntryChildren: [{ IOObjectClass: 'x' }] })),
      { code: 'EINVAL', message: /the top dictionary > Root child 1 has no IORegistryEntryName/ },
    );
  } finally {
    console.error = consoleError;
  }
  t.strictSame(logged, [], 'nothing on the console');
});
