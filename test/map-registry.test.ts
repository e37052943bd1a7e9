// acceleratorFromRegistry: the one (header, property tree) → Accelerator mapping, on the
// property tree of a real M4 capture and on variants derived from it here (each says
// which field it changes; the fixture file is never edited).
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseIoregText } from '../src/import/ioreg-text';
import { acceleratorFromRegistry, type RegistryHeader } from '../src/map/registry';
import type { PropertyValue } from '../src/types';

const M4_FILE = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');

type Tree = Record<string, PropertyValue>;

function m4Properties(): Tree {
  const properties = parseIoregText(fs.readFileSync(M4_FILE, 'utf8')).roots[0].properties;
  if (!properties) throw new Error('the M4 fixture has a property block');
  return properties;
}

/** What the live backend hands over for the M4 service (header facts as IOKit reports them). */
const M4_HEADER: RegistryHeader = {
  id: '0x100000478',
  name: 'AGXAcceleratorG16G',
  className: 'AGXAcceleratorG16G',
  classChain: ['AGXAcceleratorG16G', 'AGXFamilyAccelerator', 'AGXAccelerator', 'IOGPU', 'IOAccelerator', 'IOService', 'IORegistryEntry', 'OSObject'],
  location: null,
  busy: { count: 0, timeNs: 752_000_000 },
  serviceState: { registered: true, matched: true, active: true },
  retainCount: 101,
};

function withStatistics(change: (statistics: Tree) => void): Tree {
  const properties = m4Properties();
  change(properties.PerformanceStatistics as Tree);
  return properties;
}

t.test('M4 property tree: every mapped field, exactly', async (t) => {
  const accelerator = acceleratorFromRegistry(M4_HEADER, m4Properties());
  t.strictSame(accelerator, {
    id: '0x100000478',
    name: 'AGXAcceleratorG16G',
    className: 'AGXAcceleratorG16G',
    classChain: M4_HEADER.classChain,
    vendor: 'Apple',
    model: 'Apple M4',
    busy: { count: 0, timeNs: 752_000_000 },
    serviceState: { registered: true, matched: true, active: true },
    power: { state: 1, maxState: 1, desiredState: null, capabilityFlags: 2, runtimeStatus: null, machineState: null },
    probeScore: 10000,
    utilization: { devicePercent: 17, rendererPercent: 15, tilerPercent: 15 },
    memory: { inUseBytes: 430571520, allocatedBytes: 4597121024 },
    recovery: { count: 0, lastTime: 0 },
    queues: [
      { id: 25, submitted: 619246, finished: 619245, state: 'Idle' },
      { id: 26, submitted: 554668, finished: 554667, state: 'Idle' },
    ],
    location: null,
    retainCount: 101,
    commandSubmissionEnabled: true,
  });
  t.notOk('properties' in accelerator, 'the raw tree only when asked for');
  t.equal(accelerator.power?.state, 1, 'CurrentPowerState, not DriverPowerState');
});

t.test('includeProperties attaches the tree as given; AGCInfo stays there', async (t) => {
  const properties = m4Properties();
  const accelerator = acceleratorFromRegistry(M4_HEADER, properties, { includeProperties: true });
  t.equal(accelerator.properties, properties);
  t.strictSame(accelerator.properties?.AGCInfo, { fLastSubmissionPID: 835, fSubmissionsSinceLastCheck: 0, fBusyCount: 0 });
});

t.test('IOPowerManagement during a transition (variant: DesiredPowerState 0 and MachineState 2 added)', async (t) => {
  const properties = m4Properties();
  Object.assign(properties.IOPowerManagement as Tree, { DesiredPowerState: 0, MachineState: 2 });
  const { power } = acceleratorFromRegistry(M4_HEADER, properties);
  t.strictSame(power, { state: 1, maxState: 1, desiredState: 0, capabilityFlags: 2, runtimeStatus: null, machineState: 2 });
});

t.test('IOPowerManagement without CurrentPowerState (variant: key removed) gives no power state', async (t) => {
  const properties = m4Properties();
  delete (properties.IOPowerManagement as Tree).CurrentPowerState;
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).power, null);
  delete properties.IOPowerManagement;
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).power, null);
});

t.test('vendor-id: data (little-endian 32-bit), number, unknown id, and absent', async (t) => {
  const cases: [PropertyValue, string][] = [
    [{ $data: Buffer.from('86800000', 'hex').toString('base64') }, 'Intel'],
    [{ $data: Buffer.from('02100000', 'hex').toString('base64') }, 'AMD'],
    [{ $data: Buffer.from('de100000', 'hex').toString('base64') }, 'NVIDIA'],
    [{ $data: Buffer.from('6b10', 'hex').toString('base64') }, 'Apple'],
    [{ $data: Buffer.from('f41a0000', 'hex').toString('base64') }, '0x1af4'],
    [0x10de, 'NVIDIA'],
  ];
  for (const [vendorId, expected] of cases) {
    const properties = m4Properties();
    properties['vendor-id'] = vendorId;
    // A non-AGX class, so only vendor-id can name the vendor.
    t.equal(acceleratorFromRegistry({ ...M4_HEADER, className: 'IntelAccelerator' }, properties).vendor, expected, JSON.stringify(vendorId));
  }
  const properties = m4Properties();
  delete properties['vendor-id'];
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).vendor, 'Apple', 'AGX class without vendor-id: Apple (AGX drives only Apple GPUs)');
  const other = { ...M4_HEADER, className: 'SomeAccelerator' };
  t.equal(acceleratorFromRegistry(other, properties).vendor, 'Apple', 'bundle com.apple.AGXG16G without vendor-id: Apple');
  delete properties.CFBundleIdentifier;
  t.equal(acceleratorFromRegistry(other, properties).vendor, 'Apple', 'IOPersonalityPublisher com.apple.AGXG16G');
  delete properties.IOPersonalityPublisher;
  t.equal(acceleratorFromRegistry(other, properties).vendor, null, 'nothing names the vendor: null');
  properties['vendor-id'] = { $data: Buffer.from('01', 'hex').toString('base64') };
  t.equal(acceleratorFromRegistry(other, properties).vendor, null, 'a one-byte vendor-id is not an id');
});

t.test('model: string, data holding a C string, empty data, absent', async (t) => {
  const properties = m4Properties();
  properties.model = { $data: Buffer.from('AMD Radeon RX 5500 XT\0', 'latin1').toString('base64') };
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).model, 'AMD Radeon RX 5500 XT');
  properties.model = { $data: Buffer.from('Intel UHD 620', 'latin1').toString('base64') };
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).model, 'Intel UHD 620', 'no terminator');
  properties.model = { $data: Buffer.alloc(4).toString('base64') };
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).model, null, 'all zero bytes: no model');
  delete properties.model;
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).model, null);
});

t.test('PerformanceStatistics: Intel/AMD key, AMD video memory, partial and absent', async (t) => {
  const amdLike = withStatistics((s) => {
    for (const key of Object.keys(s)) delete s[key];
    Object.assign(s, { 'GPU Activity(%)': 42, inUseVidMemoryBytes: 435888128, recoveryCount: 1 });
  });
  const amd = acceleratorFromRegistry(M4_HEADER, amdLike);
  t.strictSame(amd.utilization, { devicePercent: 42, rendererPercent: null, tilerPercent: null });
  t.strictSame(amd.memory, { inUseBytes: 435888128, allocatedBytes: null });
  t.strictSame(amd.recovery, { count: 1, lastTime: null });

  const bothKeys = withStatistics((s) => Object.assign(s, { 'GPU Activity(%)': 99 }));
  t.equal(acceleratorFromRegistry(M4_HEADER, bothKeys).utilization?.devicePercent, 17, 'Device Utilization % wins over GPU Activity(%)');

  const onlyAllocated = withStatistics((s) => {
    for (const key of Object.keys(s)) delete s[key];
    s['Alloc system memory'] = 4597121024;
  });
  const partial = acceleratorFromRegistry(M4_HEADER, onlyAllocated);
  t.strictSame(partial.memory, { inUseBytes: null, allocatedBytes: 4597121024 });
  t.equal(partial.utilization, null, 'no utilization key: null, not zeros');
  t.equal(partial.recovery, null);

  const empty = withStatistics((s) => {
    for (const key of Object.keys(s)) delete s[key];
  });
  t.equal(acceleratorFromRegistry(M4_HEADER, empty).memory, null);

  const none = m4Properties();
  delete none.PerformanceStatistics;
  const bare = acceleratorFromRegistry(M4_HEADER, none);
  t.strictSame([bare.utilization, bare.memory, bare.recovery], [null, null, null]);

  const notDictionary = m4Properties();
  notDictionary.PerformanceStatistics = { $data: '' };
  t.equal(acceleratorFromRegistry(M4_HEADER, notDictionary).utilization, null, 'data is not a dictionary');
});

t.test('64-bit values carried as decimal strings are read as numbers', async (t) => {
  const properties = withStatistics((s) => {
    s.lastRecoveryTime = '18446744073709551615';
    s['In use system memory'] = '9007199254740993';
    s['Device Utilization %'] = 'n/a';
  });
  const accelerator = acceleratorFromRegistry(M4_HEADER, properties);
  t.equal(accelerator.recovery?.lastTime, 18446744073709551615);
  t.equal(accelerator.memory?.inUseBytes, 9007199254740992, 'rounded to the nearest double; the exact text stays in properties');
  t.equal(accelerator.utilization?.devicePercent, null, 'a string that is not an integer is not a number');
});

t.test('SchedulerState: malformed entries are left out, absent gives null', async (t) => {
  const properties = m4Properties();
  const scheduler = properties.SchedulerState as Tree;
  const queues = scheduler.BusyWorkQueues as Tree[];
  queues.push({ finished: 1, submitted: 2, state: 'Idle' }); // no id
  queues.push({ id: 27, submitted: 3, finished: 3 }); // no state
  (queues as PropertyValue[]).push('not a dictionary');
  t.strictSame(acceleratorFromRegistry(M4_HEADER, properties).queues, [
    { id: 25, submitted: 619246, finished: 619245, state: 'Idle' },
    { id: 26, submitted: 554668, finished: 554667, state: 'Idle' },
    { id: 27, submitted: 3, finished: 3, state: '' },
  ]);
  scheduler.BusyWorkQueues = [];
  t.strictSame(acceleratorFromRegistry(M4_HEADER, properties).queues, [], 'present and empty');
  delete scheduler.BusyWorkQueues;
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).queues, null);
  delete properties.SchedulerState;
  t.equal(acceleratorFromRegistry(M4_HEADER, properties).queues, null);
});

t.test('an empty tree maps to nulls, never to invented values', async (t) => {
  const accelerator = acceleratorFromRegistry({ ...M4_HEADER, className: 'IntelAccelerator', busy: null, serviceState: null, retainCount: null }, {});
  t.strictSame(accelerator, {
    id: '0x100000478',
    name: 'AGXAcceleratorG16G',
    className: 'IntelAccelerator',
    classChain: M4_HEADER.classChain,
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
    retainCount: null,
    commandSubmissionEnabled: null,
  });
  const located = acceleratorFromRegistry({ ...M4_HEADER, location: undefined }, { CommandSubmissionEnabled: false });
  t.equal(located.location, null);
  t.equal(located.commandSubmissionEnabled, false);
});
