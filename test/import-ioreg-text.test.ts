// importIoreg on the real `ioreg` text captures in test/fixtures/ioreg/ (SOURCES.md there
// says where each comes from), with exact expected values; and on variants derived from
// them in this file, each saying what it changes. The fixture files are never edited.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { importIoreg } from '../src/import';
import { classChainOf, isAccelerator } from '../src/import/accelerators';
import { parseIoregText } from '../src/import/ioreg-text';
import { walk, type RegistryNode } from '../src/import/registry-node';
import { IokitSnapError } from '../src/errors';
import { validateSnapshot } from '../src/snapshot-file';
import type { Accelerator, Snapshot } from '../src/types';

const FIXTURES = path.join(__dirname, 'fixtures', 'ioreg');
const read = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const M4 = read('apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
const INTEL = read('intel-hackintosh-MacBookPro15,2-ioreg-tree-IntelAccelerator-busy-retain.txt');
const GOTCHA = read('intel-hackintosh-MacBookPro15,2-ioreg-tree-IOAccelerator-named-IOServiceCompatibility-gotcha.txt');
const M1 = read('apple-m1-MacBookAir10,1-macOS11.2.3-ioreg-i-tree-AGXAcceleratorG13G_B0.txt');
const AMD = read('amd-rx5500-navi14-ioreg-AMDRadeonX6000_AMDNavi14GraphicsAccelerator-EXCERPT.txt');

const M4_ACCELERATOR: Accelerator = {
  id: '0x100000478',
  name: 'AGXAcceleratorG16G',
  className: 'AGXAcceleratorG16G',
  classChain: ['AGXAcceleratorG16G'],
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
};

function invalid(t: Test, text: string, message: RegExp, what: string): void {
  t.throws(() => importIoreg(text), { name: 'IokitSnapError', code: 'EINVAL', message }, what);
}

function limitFields(snapshot: Snapshot): string[] {
  return snapshot.limits.map((limit) => `${limit.subject} | ${limit.field}`);
}

const lines = (text: string): string[] => text.split('\n');

t.test('M4 `ioreg -r -d 1 -c IOAccelerator`: one accelerator, every value exact', async (t) => {
  const before = Date.now();
  const snapshot = importIoreg(M4);
  const after = Date.now();
  t.equal(snapshot.format, 'iokit-snap/1');
  t.equal(snapshot.host.platform, 'darwin');
  t.equal(snapshot.monotonicNs, 0);
  t.strictSame(snapshot.processes, []);
  const takenAt = Date.parse(snapshot.takenAt);
  t.ok(takenAt >= before && takenAt <= after, 'takenAt: the import time');
  t.strictSame(snapshot.accelerators, [M4_ACCELERATOR]);
  t.strictSame(limitFields(snapshot), [
    'snapshot | monotonicNs',
    'snapshot | processes',
    'snapshot | takenAt',
    'host | arch, osRelease',
    'accelerators | busy.timeNs',
  ]);
  t.match(snapshot.limits.find((l) => l.field === 'busy.timeNs')?.reason, /whole milliseconds/);
  validateSnapshot(JSON.parse(JSON.stringify(snapshot)));
});

t.test('M4 with properties: the raw tree, with data, arrays, 64-bit numbers and odd strings', async (t) => {
  const [accelerator] = importIoreg(M4, { includeProperties: true }).accelerators;
  const properties = accelerator.properties ?? {};
  t.equal(Object.keys(properties).length, 36, 'all 36 property lines');
  t.strictSame(properties['vendor-id'], { $data: Buffer.from([0x6b, 0x10, 0, 0]).toString('base64') });
  t.equal(properties.SCMVersionNumber, '');
  t.equal(properties.IOGeneralInterest, 'IOCommand is not serializable');
  t.equal(properties.KDebugVersion, 4294967296);
  t.strictSame(properties.SurfaceList, []);
  t.strictSame(properties.IONameMatch, ['gpu,t8015', 'gpu,t8027', 'gpu,t8030', 'gpu,t8103', 'gpu,t8122', 'gpu,t8132']);
  t.strictSame(properties.AGCInfo, { fLastSubmissionPID: 835, fSubmissionsSinceLastCheck: 0, fBusyCount: 0 });
  t.strictSame((properties.SchedulerState as Record<string, unknown>).Stamps, [{ idx: 25, sub: 896195072, gpu: 896194816 }]);
  t.strictSame((properties.GPUConfigurationVariable as Record<string, unknown>).core_mask_list, [1023]);
  t.equal(properties.IOMatchedAtBoot, true);
});

t.test('Intel plain tree: exactly one accelerator; framebuffers, the PCI nub, AGPM and clients are not', async (t) => {
  const snapshot = importIoreg(INTEL);
  t.strictSame(snapshot.accelerators, [
    {
      id: '0x10000048d',
      name: 'IntelAccelerator',
      className: 'IntelAccelerator',
      classChain: ['IntelAccelerator'],
      vendor: null,
      model: null,
      busy: { count: 0, timeNs: 1_312_000_000 },
      serviceState: { registered: true, matched: true, active: true },
      power: null,
      probeScore: null,
      utilization: null,
      memory: null,
      recovery: null,
      queues: null,
      location: null,
      retainCount: 59,
      commandSubmissionEnabled: null,
    },
  ]);
  t.match(snapshot.limits, [{}, {}, {}, {}, { subject: 'accelerator 0x10000048d', field: 'properties', code: 'ENOENT' }, { field: 'busy.timeNs' }]);

  const dump = parseIoregText(INTEL);
  const nodes = [...walk(dump.roots)];
  t.equal(nodes.length, 101, 'every line is a node');
  t.equal(dump.roots.length, 1, 'IGPU@2 is the top of the excerpt');
  const byClass = (name: string): RegistryNode[] => nodes.filter((n) => n.className === name);
  for (const className of [
    'IOPCIDevice',
    'AppleIntelFramebufferController',
    'AppleIntelFramebuffer',
    'AGPM',
    'AGPMClient',
    'IntelFBClientControl',
    'AppleGraphicsDevicePolicy',
    'IOFramebufferUserClient',
    'IGAccelDevice',
    'IGAccelSharedUserClient',
    'IGAccelCommandQueue',
    'IGAccel2DContext',
    'IOAccelDisplayPipeUserClient2',
  ]) {
    t.ok(byClass(className).length > 0, `${className} is in the dump`);
    t.notOk(byClass(className).some(isAccelerator), `${className} is not an accelerator`);
  }
  const igpu = dump.roots[0];
  t.equal(igpu.name, 'IGPU');
  t.equal(igpu.location, '2');
  t.equal(byClass('AppleIntelFramebuffer')[1].location, '1');
  const intel = byClass('IntelAccelerator')[0];
  t.equal(intel.children.length, 53, 'the user clients and queues under IntelAccelerator');
  t.equal(igpu.children.length, 5, 'controller, three framebuffers, accelerator');

  const agdpUserClient = nodes.find((n) => n.id === '0x1000004f0') as RegistryNode;
  t.strictSame(agdpUserClient.busy, { count: 0, timeNs: 0 }, '`busy 0` without `(T ms)`: ioreg omits the time only when it is 0');
  t.strictSame(agdpUserClient.serviceState, { registered: false, matched: false, active: true }, '!registered, !matched');
  t.equal(agdpUserClient.retainCount, 5);
  const policy = nodes.find((n) => n.id === '0x1000004c2') as RegistryNode;
  t.strictSame(policy.busy, { count: 0, timeNs: 7_000_000 });
});

t.test('the node NAMED IOAccelerator of class IOServiceCompatibility is not an accelerator', async (t) => {
  const snapshot = importIoreg(GOTCHA);
  t.strictSame(snapshot.accelerators, []);
  t.match(snapshot.limits[snapshot.limits.length - 1], { subject: 'accelerators', field: 'accelerators', code: 'ENOENT', reason: /NAMED IOAccelerator/ });
  const named = [...walk(parseIoregText(GOTCHA).roots)].find((n) => n.name === 'IOAccelerator') as RegistryNode;
  t.equal(named.className, 'IOServiceCompatibility');
  t.equal(named.id, '0x1000002cd');
  t.strictSame(named.busy, { count: 0, timeNs: 0 }, '`busy 0 (0 ms)`: under 1 ms');
  t.notOk(isAccelerator(named));
  t.strictSame(parseIoregText(GOTCHA).roots[0].serviceState, { registered: false, matched: false, active: true });
});

t.test('M1 `-i` archive form: the full class chain; the 54 AGXDeviceUserClient children are not accelerators', async (t) => {
  const snapshot = importIoreg(M1);
  t.equal(snapshot.accelerators.length, 1);
  const [accelerator] = snapshot.accelerators;
  t.strictSame(accelerator, {
    id: '',
    name: 'AGXAcceleratorG13G_B0',
    className: 'AGXAcceleratorG13G_B0',
    classChain: [
      'AGXAcceleratorG13G_B0',
      'AGXAcceleratorG13',
      'AGXFamilyAccelerator',
      'AGXAccelerator',
      'IOGPU',
      'IOAccelerator',
      'IOService',
      'IORegistryEntry',
      'OSObject',
    ],
    vendor: 'Apple',
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
  t.match(snapshot.limits, [
    {},
    {},
    {},
    {},
    { subject: 'accelerator AGXAcceleratorG13G_B0', field: 'id, busy, serviceState, retainCount', reason: /line 2/ },
    { subject: 'accelerator AGXAcceleratorG13G_B0', field: 'properties' },
  ]);
  const dump = parseIoregText(M1);
  const sgx = dump.roots[0];
  t.equal(sgx.name, 'sgx');
  t.equal(sgx.location, '4000000');
  t.strictSame(classChainOf(sgx), ['AppleARMIODevice', 'IOService', 'IORegistryEntry', 'OSObject']);
  const agx = sgx.children[0];
  t.equal(agx.children.length, 54, 'the capture holds 54 user client lines (SOURCES.md says 53)');
  t.ok(agx.children.every((c) => c.className === 'AGXDeviceUserClient' && !isAccelerator(c)));
  t.strictSame(agx.children[0].inheritance, ['IORegistryEntry', 'IOService', 'IOUserClient', 'IOGPUDeviceUserClient', 'AGXDeviceUserClient']);
});

t.test('the real `-i` form `<class A:B:C, id …>` (variant: the M1 chain in an M4-style header)', async (t) => {
  const chain = 'IORegistryEntry:IOService:IOAccelerator:IOGPU:AGXAccelerator:AGXFamilyAccelerator:AGXAcceleratorG13:AGXAcceleratorG13G_B0';
  const text = [
    `+-o AGXAcceleratorG13G_B0  <class ${chain}, id 0x1000003ef, registered, matched, active, busy 0 (45 ms), retain 60>`,
    '  +-o AGXDeviceUserClient  <class IORegistryEntry:IOService:IOUserClient:IOGPUDeviceUserClient:AGXDeviceUserClient, id 0x100000a01, !registered, !matched, active, busy 0, retain 6>',
    '+-o IOAccelerator  <class IORegistryEntry:IOService:IOServiceCompatibility, id 0x1000002cd, registered, matched, active, busy 0 (0 ms), retain 5>',
  ].join('\n');
  const snapshot = importIoreg(text);
  t.equal(snapshot.accelerators.length, 1);
  t.match(snapshot.accelerators[0], {
    id: '0x1000003ef',
    className: 'AGXAcceleratorG13G_B0',
    classChain: chain.split(':').reverse().concat('OSObject'),
    busy: { count: 0, timeNs: 45_000_000 },
    retainCount: 60,
  });
});

t.test('AMD excerpt: header facts, AGCInfo, and a paste that ended mid-block', async (t) => {
  const snapshot = importIoreg(AMD, { includeProperties: true });
  t.equal(snapshot.accelerators.length, 1);
  const [accelerator] = snapshot.accelerators;
  t.match(accelerator, {
    id: '0x100000461',
    name: 'AMDRadeonX6000_AMDNavi14GraphicsAccelerator',
    className: 'AMDRadeonX6000_AMDNavi14GraphicsAccelerator',
    busy: { count: 0, timeNs: 317_000_000 },
    serviceState: { registered: true, matched: true, active: true },
    retainCount: 118,
    vendor: null,
    power: null,
    utilization: null,
  });
  const properties = accelerator.properties ?? {};
  t.strictSame(properties.AGCInfo, { fBusyCount: 0, poweredOffByAGC: false, fSubmissionsSinceLastCheck: 150996, fLastSubmissionPID: 188 });
  t.equal(properties.IOGeneralInterest, 'IOCommand is not serializable');
  t.equal(properties.IOGVAHEVCEncode, '1', 'a quoted number stays a string');
  t.strictSame(properties.InternalStatistics, {});
  t.equal(Object.keys(properties).length, 14, 'every property up to where the paste stops');
  t.match(
    snapshot.limits.find((l) => l.subject === 'input'),
    { field: 'properties', code: 'ENODATA', reason: /input ended early.*line 2 has no closing/ },
  );
});

t.test('a bare property block pasted without its node line (variant: the M4 block alone)', async (t) => {
  const block = lines(M4).slice(1).join('\n');
  const snapshot = importIoreg(block);
  t.equal(snapshot.accelerators.length, 1);
  t.strictSame(snapshot.accelerators[0], {
    ...M4_ACCELERATOR,
    id: '',
    busy: null,
    serviceState: null,
    retainCount: null,
  });
  t.match(
    snapshot.limits.find((l) => l.field === 'header'),
    { subject: 'accelerator AGXAcceleratorG16G', code: 'ENOENT', reason: /IOClass/ },
  );
  t.notOk(snapshot.limits.some((l) => l.field === 'busy.timeNs'), 'no busy time, so no note on its resolution');

  const withName = block.replace('"IOProbeScore" = 10000', '"IOProbeScore" = 10000\n      "IOName" = "gpu"');
  t.equal(importIoreg(withName).accelerators[0].name, 'gpu', 'IOName names it when present');

  const noClass = block.replace(/^.*"IOClass".*\n/m, '');
  const [unnamed] = importIoreg(noClass).accelerators;
  t.equal(unnamed.className, '', 'no IOClass: no class');
  t.strictSame(unnamed.classChain, []);
  t.equal(unnamed.probeScore, 10000, 'still an accelerator: IOMatchCategory says so');
  t.match(importIoreg(noClass).limits.find((l) => l.field === 'header'), { subject: 'accelerator from a bare property block', reason: /no IOClass/ });

  const two = `${block}\n${block}`;
  t.equal(importIoreg(two).accelerators.length, 2, 'two pasted blocks, two entries');
});

t.test('property lines without braces (what `ioreg -l | grep` leaves) belong to the node above, or stand alone', async (t) => {
  const grepped = '    | |   "PerformanceStatistics" = {"Device Utilization %"=23,"In use system memory"=755056640,"recoveryCount"=2}';
  const alone = importIoreg(grepped);
  t.equal(alone.accelerators.length, 1);
  t.strictSame(alone.accelerators[0].utilization, { devicePercent: 23, rendererPercent: null, tilerPercent: null });
  t.strictSame(alone.accelerators[0].recovery, { count: 2, lastTime: null });

  const underNode = `${lines(INTEL)[47]}\n${grepped}`;
  const [intel] = importIoreg(underNode).accelerators;
  t.equal(intel.id, '0x10000048d');
  t.equal(intel.memory?.inUseBytes, 755056640);
});

t.test('`ioreg -l` layout: a block under each node, the blank bar line after it, and a root without service state', async (t) => {
  const text = [
    '+-o Root  <class IORegistryEntry, id 0x100000100, retain 27>',
    '  {',
    '    "IOKitBuildVersion" = "Darwin Kernel Version 24.1.0"',
    '  }',
    '  ',
    '  +-o MacBookAir10,1  <class IOPlatformExpertDevice, id 0x100000110, registered, matched, active, busy 0 (1534 ms), retain 37>',
    '    {',
    '      "model" = <"MacBookAir10,1">',
    '      "compatible" = <"MacBookAir10,1","AppleARM">',
    '    }',
    '    ',
    '    +-o AGXAcceleratorG13G  <class AGXAcceleratorG13G, id 0x1000003ef, registered, matched, active, busy 0 (12 ms), retain 60>',
    '      {',
    '        "IOProbeScore" = 10000',
    '      }',
    '      ',
  ].join('\r\n');
  const snapshot = importIoreg(text);
  t.equal(snapshot.host.model, 'MacBookAir10,1', 'host model from the IOPlatformExpertDevice node');
  t.equal(snapshot.accelerators.length, 1);
  t.equal(snapshot.accelerators[0].probeScore, 10000);
  const root = parseIoregText(text).roots[0];
  t.equal(root.serviceState, null, 'not an IOService: no state');
  t.equal(root.busy, null);
  t.equal(root.retainCount, 27);
  t.strictSame(root.children[0].properties?.compatible, { $data: Buffer.from('MacBookAir10,1\0AppleARM\0', 'latin1').toString('base64') });

  const noModel = text.replace(/^.*"model".*\r\n/m, '');
  t.notOk('model' in importIoreg(noModel).host, 'no model property: no host model');
  t.notOk('model' in importIoreg(M4).host);
  const given = importIoreg(M4, { host: { arch: 'arm64', osRelease: '24.1.0', model: 'Mac16,1' }, takenAt: '2026-11-02T10:00:00+01:00' });
  t.strictSame(given.host, { platform: 'darwin', arch: 'arm64', osRelease: '24.1.0', model: 'Mac16,1' });
  t.equal(given.takenAt, '2026-11-02T09:00:00.000Z');
  t.notOk(given.limits.some((l) => l.subject === 'host' || l.field === 'takenAt'), 'what the caller gave is not reported missing');
});

t.test('numbers beyond 2^53 stay exact decimal strings (variants of KDebugVersion)', async (t) => {
  const cases: [string, number | string][] = [
    ['18446744073709551615', '18446744073709551615'],
    ['9007199254740993', '9007199254740993'],
    ['9007199254740992', 9007199254740992],
    ['0xffffffffffffffff', '18446744073709551615'],
    ['0x2710', 10000],
  ];
  for (const [printed, expected] of cases) {
    const text = M4.replace('"KDebugVersion" = 4294967296', `"KDebugVersion" = ${printed}`);
    const [accelerator] = importIoreg(text, { includeProperties: true }).accelerators;
    t.equal(accelerator.properties?.KDebugVersion, expected, printed);
  }
});

t.test('lines a terminal cut at its width (ending in `$`) are reported, not misread', async (t) => {
  const cutProperty = M4.replace(/"PerformanceStatistics" = \{"In use system memory \(driver\)"=0,.*$/m, '"PerformanceStatistics" = {"In use system memory (driver)"=0,"Alloc syst$');
  const snapshot = importIoreg(cutProperty);
  t.equal(snapshot.accelerators[0].utilization, null, 'the cut property is not in the import');
  t.equal(snapshot.accelerators[0].probeScore, 10000, 'the lines after it are');
  t.match(snapshot.limits.find((l) => l.field === 'PerformanceStatistics'), { subject: 'line 15', code: 'ENODATA', hint: /-w 0/ });

  const cutHeader = M4.replace(', busy 0 (752 ms), retain 101>', ', busy 0 (75$');
  const cut = importIoreg(cutHeader);
  t.equal(cut.accelerators[0].busy, null, 'the cut busy item is dropped');
  t.strictSame(cut.accelerators[0].serviceState, { registered: true, matched: true, active: true });
  t.match(cut.limits.find((l) => l.field === 'header'), { subject: 'line 1', code: 'ENODATA' });

  const cutClass = M4.replace(/<class AGXAcceleratorG16G, .*>$/m, '<class AGXAccel$');
  const [byProperties] = importIoreg(cutClass).accelerators;
  t.equal(byProperties.className, 'AGXAcceleratorG16G', 'the class cut away: IOClass names it');
  t.equal(byProperties.id, '');
});

t.test('a string holding newlines, printed raw across lines (variant: SCMBuildTime spans three lines)', async (t) => {
  const text = M4.replace('"SCMBuildTime" = ""', '"SCMBuildTime" = "built\nby | someone\n{on a Tuesday}"');
  const [accelerator] = importIoreg(text, { includeProperties: true }).accelerators;
  t.equal(accelerator.properties?.SCMBuildTime, 'built\nby | someone\n{on a Tuesday}');
  t.equal(accelerator.properties?.AGXParameterBufferMaxSize, 862322688, 'the lines after it parse');
});

t.test('a paste that stops inside a value keeps what came before it', async (t) => {
  const text = lines(M4).slice(0, 15).join('\n').replace(/"Allocated PB Size".*$/, '"Allocated PB');
  const snapshot = importIoreg(text, { includeProperties: true });
  const [accelerator] = snapshot.accelerators;
  t.equal(accelerator.properties?.PerformanceStatistics, undefined);
  t.equal(accelerator.properties?.CommandSubmissionEnabled, true);
  t.match(
    snapshot.limits.filter((l) => l.subject === 'input').map((l) => l.reason),
    [/line 15 stops inside the value of "PerformanceStatistics"/, /no closing `}`/],
  );
});

t.test('a pasted bare block that stops inside a key', async (t) => {
  const text = lines(M4).slice(1, 20).join('\n') + '\n      "AGXParameterBuff';
  const snapshot = importIoreg(text);
  t.equal(snapshot.accelerators.length, 1, 'IOMatchCategory is past the cut, PerformanceStatistics is not');
  t.match(
    snapshot.limits.filter((l) => l.subject === 'input'),
    [
      { field: 'property', reason: /line 20 stops inside a property key$/ },
      { field: 'properties', reason: /the property block of the pasted block opened at line 1/ },
    ],
  );
});

t.test('PerformanceStatistics that is data, not a dictionary, does not make an accelerator', async (t) => {
  const text = ['{', '  "PerformanceStatistics" = <00>', '  "IOClass" = "AppleM2ScalerCSCDriver"', '}'].join('\n');
  t.strictSame(importIoreg(text).accelerators, []);
  const dictionary = text.replace('<00>', '{"Device Utilization %"=3}');
  t.equal(importIoreg(dictionary).accelerators.length, 1);
});

t.test('a paste copied from an issue (Markdown fences) and `ioreg -b` bold names (variant of the M4 capture)', async (t) => {
  const fenced = ['```text', M4.replace('+-o AGXAcceleratorG16G  <', '+-o \u001b[1mAGXAcceleratorG16G\u001b[0m  <'), '```', ''].join('\n');
  t.strictSame(importIoreg(fenced).accelerators, [M4_ACCELERATOR]);
});

t.test('an unknown header item is reported and ignored', async (t) => {
  const text = M4.replace(', retain 101>', ', retain 101, quiesced>');
  const snapshot = importIoreg(text);
  t.equal(snapshot.accelerators[0].retainCount, 101);
  t.match(snapshot.limits.find((l) => l.subject === 'line 1'), { field: 'header', code: 'ENOTSUP', reason: /"quiesced"/ });
});

t.test('malformed input: EINVAL naming the line and what was expected', async (t) => {
  const m4 = lines(M4);
  const at = (index: number, line: string): string => [...m4.slice(0, index), line, ...m4.slice(index)].join('\n');
  invalid(t, at(5, 'ioreg -r -d 1 -c IOAccelerator'), /line 6: expected a node line .*"ioreg -r -d 1 -c IOAccelerator"/, 'a stray command line');
  invalid(t, at(5, '      "broken" = @@'), /line 6: expected a value .*column 18/, 'an unknown value');
  invalid(t, at(5, '      "broken" = {"a"=1 "b"=2}'), /line 6: expected `,` or `}`/, 'a dictionary without commas');
  invalid(t, at(5, '      "broken" = (1 2)'), /line 6: expected `,` or `\)`/, 'an array without commas');
  invalid(t, at(5, '      "broken" = {"a" 1}'), /line 6: expected `=` after the key/, 'a key without =');
  invalid(t, at(5, '      "broken" = {a=1}'), /line 6: expected a quoted key/, 'an unquoted key');
  invalid(t, at(5, '      "broken" = <abc>'), /line 6: expected an even number of hex digits/, 'odd hex');
  invalid(t, at(5, '      "broken" = <zz>'), /line 6: expected hex digits or `>`/, 'not hex');
  invalid(t, at(5, '      "broken" = <"a"x>'), /line 6: expected `,` or `>` after a string in <data>/, 'string data followed by junk');
  invalid(t, at(5, '      "broken" = ("a"x)'), /line 6: expected `,` `\)` `\}` `\]` or the end of the line after the string \(column 22\)/, 'a string followed by junk');
  invalid(t, at(5, '      "broken" = ("a"}'), /line 6: expected `,` or `\)`/, 'an array closed by }');
  invalid(t, at(5, '      "broken" = 12 13'), /line 6: expected the end of the line after the value/, 'two values');
  invalid(t, at(5, '      "broken" 12'), /line 6: expected `=` after the key/, 'no =');
  invalid(t, at(5, '      "broken"'), /line 6: expected `=` after the key/, 'a key alone');
  invalid(t, at(5, '      "broken" = "a'), /line 6: expected a closing `"`/, 'an unterminated string before other lines');
  invalid(t, at(5, '    {'), /line 6: expected a property line or `}` \(a block is already open since line 2\)/, 'a nested block');
  invalid(t, at(5, '+-o Other  <class IntelAccelerator, id 0x1, retain 1>'), /line 6: expected `}` closing the property block opened at line 2/, 'a node inside a block');
  invalid(t, `${M4}\n}`, /line 41: expected a node line or `{` \(this `}` closes no property block\)/, 'a stray }');
  invalid(t, M4.replace(', retain 101>', ', retain 101'), /line 1: expected `>` closing the node header/, 'an unclosed header');
  invalid(t, M4.replace('  <class ', ' (class '), /line 1: expected a node header/, 'a header without <class');
  invalid(t, '', /ioreg input is empty/, 'empty');
  invalid(t, '  | |\n   \n', /ioreg input is empty/, 'only tree bars');
  t.throws(() => importIoreg(42 as unknown as string), { code: 'EINVAL', message: /as a string/ });
  t.throws(() => importIoreg(M4, null as unknown as object), { code: 'EINVAL', message: /options must be an object/ });
  t.throws(() => importIoreg(M4, { takenAt: 'yesterday' }), { code: 'EINVAL', message: /takenAt must be an ISO 8601 time/ });
  try {
    importIoreg(at(5, 'garbage'));
    t.fail('should throw');
  } catch (error) {
    t.type(error, IokitSnapError);
  }
});

t.test('a byte order mark before the first line (a dump saved by a Windows editor) is not part of it', async (t) => {
  const plain = parseIoregText(M4);
  t.same(parseIoregText('\ufeff' + M4), plain);
  t.ok(plain.roots.length > 0, 'the M4 tree itself');
});
