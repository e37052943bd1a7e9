/**
 * The accelerator table shows what the platform at hand can say: on Linux the PCI device's
 * node, driver, model (NVML, amdgpu, else pci.ids), power, VRAM, utilization and health,
 * read from the fixture /sys trees (test/fixtures/sys, see its README), NVML through the
 * fake libnvidia-ml (test/fixtures/nvml-fake.c), and names from test/fixtures/pci.ids (an
 * excerpt of Debian's pci.ids; its header says which). macOS keeps IOKit's columns.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { acceleratorTable, MAX_TABLE_WIDTH } from '../src/cli/accelerator-table';
import { bracketedName, openPciNames, PCI_IDS_PATHS, shortVendorName } from '../src/cli/pci-names';
import { importIoreg } from '../src/import';
import { sampleAccelerators } from '../src/sample';
import type { Accelerator } from '../src/types';
import { runCli } from './helpers/cli';

const notLinux = process.platform === 'linux' ? false : 'the sysfs reader is the Linux backend';
const tree = (name: string) => path.join(__dirname, 'fixtures', 'sys', name);
const PCI_IDS = path.join(__dirname, 'fixtures', 'pci.ids');
const names = openPciNames([PCI_IDS]);
const plain = { color: false };

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-table-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

/** A fake NVML of its own (the addon keeps one session per library), answering from `lines`. */
function fakeNvml(name: string, lines: string[]): string | null {
  const library = path.join(work, `${name}.so`);
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', library, path.join(__dirname, 'fixtures', 'nvml-fake.c')], { stdio: 'pipe' });
  } catch {
    return null;
  }
  fs.writeFileSync(path.join(work, `${name}.conf`), lines.join('\n') + '\n');
  process.env.IOKIT_SNAP_FAKE_NVML = path.join(work, `${name}.conf`);
  return library;
}

const H100 = '0000:01:00.0';
const HEALTHY =
  `device ${H100} minor=3 gpu=37 mem=12 pstate=0 power=312000 total=85520809984 used=1073741824 name=NVIDIA H100 80GB HBM3`;

async function tableOf(sysRoot: string, nvmlLibrary?: string): Promise<{ lines: string[]; accelerators: Accelerator[] }> {
  const sample = await sampleAccelerators({ sysRoot, includeProperties: true, nvmlLibrary: nvmlLibrary ?? path.join(work, 'none.so') });
  const text = acceleratorTable(sample.accelerators, plain, { pciNames: names });
  return { lines: text.trimEnd().split('\n'), accelerators: sample.accelerators };
}

const cells = (line: string) => line.split(/ {2,}/);
const widest = (lines: string[]) => Math.max(...lines.map((l) => l.length));

t.test('pci.ids: vendor and device names, each looked up inside its own vendor block', async (t) => {
  t.equal(names.vendor('0x10de'), 'NVIDIA Corporation');
  t.equal(names.vendor('0x10DE'), 'NVIDIA Corporation', 'ids are matched without regard to case');
  t.equal(names.device('0x10de', '0x2330'), 'GH100[H100 SXM5 80GB]');
  t.equal(names.device('0x8086', '0x2330'), 'DH89xxCC SMBus Controller', 'the same device id under another vendor');
  t.equal(names.device('0x8086', '0x7d55'), null, 'a device newer than the list is unknown, not taken from a neighbour');
  t.equal(names.device('0x1002', '0x1da2'), null, 'a subsystem line is not a device line');
  t.equal(names.vendor('0x1da2'), null, 'a subsystem vendor is not a vendor line');
  t.equal(names.vendor('0x0300'), null, 'the class list is not a vendor list');
  t.equal(names.vendor('nonsense'), null);
  t.equal(names.device('0x10de', 'nonsense'), null);
  t.equal(bracketedName('Navi 31 [Radeon RX 7900 XT/7900 XTX]'), 'Radeon RX 7900 XT/7900 XTX');
  t.equal(bracketedName('DH89xxCC SMBus Controller'), 'DH89xxCC SMBus Controller');
  t.equal(shortVendorName('Advanced Micro Devices, Inc. [AMD/ATI]'), 'AMD/ATI');
  t.equal(shortVendorName('NVIDIA Corporation'), 'NVIDIA');
  t.equal(shortVendorName('Moore Threads Technology Co.,Ltd'), 'Moore Threads');
  // The last line without a newline, the last vendor's block running to the end, empty names.
  const edge = path.join(work, 'edge.ids');
  fs.writeFileSync(edge, 'abcd  \n\t0001  \n10de  NVIDIA Corporation\n\t2330  GH100');
  const edges = openPciNames([path.join(work, 'absent.ids'), edge]);
  t.equal(edges.device('0x10de', '0x2330'), 'GH100', 'the first file that exists is read');
  t.equal(edges.vendor('0xabcd'), null, 'an empty name is no name');
  t.equal(edges.device('0xabcd', '0x0001'), null);
  const none = openPciNames([path.join(work, 'no-pci.ids')]);
  t.equal(none.vendor('0x10de'), null, 'no pci.ids: no names, no error');
  t.equal(none.device('0x10de', '0x2330'), null);
  t.ok(PCI_IDS_PATHS.includes('/usr/share/misc/pci.ids') && PCI_IDS_PATHS.includes('/usr/share/hwdata/pci.ids'));
});

t.test('the real pci.ids, when this machine has one, names the fixture GPUs as the excerpt does', async (t) => {
  const system = PCI_IDS_PATHS.find((file) => fs.existsSync(file));
  if (!system) return t.skip('no pci.ids installed (apt-get install pciutils)');
  const real = openPciNames([system]);
  t.equal(real.vendor('0x10de'), names.vendor('0x10de'));
  t.equal(real.device('0x1002', '0x744c'), names.device('0x1002', '0x744c'));
});

t.test('NVIDIA compute GPU with no DRM card: NODE is not the PCI address again; NVML fills VRAM, power, utilization, health', { skip: notLinux }, async (t) => {
  const library = fakeNvml('healthy', [HEALTHY]);
  if (library === null) return t.skip('no C compiler (cc) to build the fake NVML');
  const { lines } = await tableOf(tree('nvidia-h100'), library);
  t.same(cells(lines[0]), ['PCI', 'NODE', 'DRIVER', 'MODEL', 'POWER', 'VRAM', 'UTIL', 'HEALTH']);
  const h100 = cells(lines.find((l) => l.startsWith(H100)) as string);
  t.same(h100, [H100, 'nvidia3', 'nvidia', 'NVIDIA H100 80GB HBM3', 'D0 P0 312 W', '1.0/79.6 GiB', '37%', 'ok']);
  const passedThrough = cells(lines.find((l) => l.startsWith('0000:41:00.0')) as string);
  t.same(passedThrough, ['0000:41:00.0', '-', 'vfio-pci', 'NVIDIA H100 SXM5 80GB', 'D0', '-', '-', 'ok'], 'a GPU given to a VM: named from pci.ids');
  t.ok(widest(lines) <= MAX_TABLE_WIDTH);
});

t.test("health: NVML's GPU lost and reset required, and NVML missing, are what the column says", { skip: notLinux }, async (t) => {
  // NVML_ERROR_GPU_IS_LOST (15) on the first per-device call.
  const lost = fakeNvml('lost', [HEALTHY, 'fail nvmlDeviceGetUtilizationRates 15']);
  if (lost === null) return t.skip('no C compiler (cc) to build the fake NVML');
  const gone = (await tableOf(tree('nvidia-h100'), lost)).lines.find((l) => l.startsWith(H100)) as string;
  t.match(cells(gone).at(-1), /GPU lost/);
  const reset = fakeNvml('reset', [HEALTHY, 'fail nvmlDeviceGetUtilizationRates 16']);
  const stuck = (await tableOf(tree('nvidia-h100'), reset as string)).lines.find((l) => l.startsWith(H100)) as string;
  t.match(cells(stuck).at(-1), /reset required/);
  const missing = (await tableOf(tree('nvidia-h100'))).lines.find((l) => l.startsWith(H100)) as string;
  t.equal(cells(missing).at(-1), '-', 'without NVML the NVIDIA GPU is not called healthy');
});

t.test('amdgpu: card nodes, product or pci.ids names, VRAM used/total while awake; a sleeping GPU is not woken', { skip: notLinux }, async (t) => {
  const { lines } = await tableOf(tree('amd-workstation'));
  t.same(cells(lines[1]), ['0000:03:00.0', 'card1', 'amdgpu', 'AMD Radeon RX 7900 XT/7900 XTX', 'D0', '3.0/24.0 GiB', '37%', 'ok']);
  t.same(cells(lines[2]).slice(0, 4), ['0000:83:00.0', 'card2', 'amdgpu', 'AMD Instinct MI210'], 'product_name wins, its vendor not repeated');
  const asleep = await tableOf(tree('amd-laptop-suspended'));
  t.same(cells(asleep.lines[1]).slice(4), ['D3cold suspended', '-', '-', 'ok']);
});

t.test('Intel: accel nodes; a device missing from pci.ids shows its ids, never a guess', { skip: notLinux }, async (t) => {
  const { lines } = await tableOf(tree('intel-laptop'));
  t.same(cells(lines[1]).slice(0, 4), ['0000:00:02.0', 'card0', 'i915', 'Intel [8086:7d55]']);
  t.same(cells(lines[2]).slice(0, 5), ['0000:00:0b.0', 'accel0', 'intel_vpu', 'Intel [8086:7d1d]', 'D3hot suspended']);
});

t.test("Linux's own failure signals: PCI error, runtime PM error, a narrowed link, NVML timing out", async (t) => {
  const device: Accelerator = {
    id: '0000:01:00.0', name: '0000:01:00.0', className: '', classChain: ['pci', '0x030200'], vendor: '0x1e52', model: null,
    busy: null, serviceState: null, probeScore: null, utilization: null, memory: { inUseBytes: 512, allocatedBytes: null },
    recovery: null, queues: null, deviceNodes: [],
    power: { state: 'error', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'error' },
    properties: { 'pci.vendorId': '0x1e52', 'pci.deviceId': '0x0100', 'pci.link.currentWidth': 8, 'pci.link.maxWidth': 16, 'nvml.status': 'timedOut' },
  };
  const lines = acceleratorTable([device], plain, { pciNames: names }).trimEnd().split('\n');
  t.same(cells(lines[1]).slice(0, 7), ['0000:01:00.0', '-', '-', '0x1e52 [1e52:0100]', 'error error', '512 B', '-']);
  t.match(cells(lines[1])[7], /^NVML timed out, PCI error.*…$/, 'every signal, cut to fit 100 columns');
  t.ok(widest(lines) <= MAX_TABLE_WIDTH);
  const resumeFailed = { ...device, power: { ...device.power!, state: 'D0' }, properties: { 'pci.link.currentWidth': 8, 'pci.link.maxWidth': 16, 'nvml.status': 'notManaged' } };
  t.equal(cells(acceleratorTable([resumeFailed], plain, { pciNames: names }).split('\n')[1]).at(-1), 'runtime PM error, link x8 of x16');
  const unread = acceleratorTable([{ ...device, power: null, memory: null, properties: undefined, deviceNodes: undefined }], plain, { pciNames: names });
  t.match(unread.split('\n')[1], /^0000:01:00\.0 +- +- +0x1e52 +- +- +- +-$/, 'nothing read: dashes, not "ok"');
});

t.test('a vendor iokit-snap does not name is named by pci.ids; VRAM total without a reading of use', async (t) => {
  const moore: Accelerator = {
    id: '0000:05:00.0', name: 'card0', className: 'mtgpu', classChain: ['pci', '0x030000'], vendor: '0x1ed5', model: null,
    busy: null, serviceState: null, probeScore: null, utilization: null, memory: null, recovery: null, queues: null, power: null,
    properties: { 'pci.vendorId': '0x1ed5', 'pci.deviceId': '0x0100', 'amdgpu.vramTotalBytes': 32 * 2 ** 30 },
  };
  const row = cells(acceleratorTable([moore], plain, { pciNames: names }).split('\n')[1]);
  t.same(row, ['0000:05:00.0', 'card0', 'mtgpu', 'Moore Threads MTT S10', '-', '-/32.0 GiB', '-', '-']);
});

t.test('at most 100 columns: a long model name gives way, with an ellipsis', async (t) => {
  const long: Accelerator = {
    id: '0000:c1:00.0', name: 'card12', className: 'amdgpu', classChain: ['pci', '0x030000'], vendor: 'AMD',
    model: 'AMD Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M with a very long board partner name', busy: null, serviceState: null,
    probeScore: null, utilization: { devicePercent: 100, rendererPercent: null, tilerPercent: null }, memory: null, recovery: null, queues: null,
    power: { state: 'D0', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'resuming', performanceState: 15, drawMilliwatts: 450000 },
  };
  const lines = acceleratorTable([long], plain, { pciNames: names }).trimEnd().split('\n');
  t.ok(widest(lines) <= MAX_TABLE_WIDTH, `${widest(lines)} columns`);
  t.match(lines[1], /AMD Radeon RX 7900.*… +D0 resuming P15 450 W +- +100% +ok$/);
  const capture = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
  const [m4] = importIoreg(fs.readFileSync(capture, 'utf8')).accelerators;
  const mac = acceleratorTable([{ ...m4, model: 'x'.repeat(120) }], plain).trimEnd().split('\n');
  t.ok(widest(mac) <= MAX_TABLE_WIDTH, 'the macOS table fits too');
  t.match(mac[0], /SVC-BUSY +POWER +UTIL +RECOVERIES +QUEUES$/, 'macOS keeps its IOKit columns');
  t.match(mac[1], /x…/);
});

t.test('the command: the Linux columns over a fixture /sys, --pci-ids names, a missing --pci-ids file is a usage error', { skip: notLinux }, async (t) => {
  const run = await runCli(['--sys-root', tree('nvidia-h100'), '--pci-ids', PCI_IDS]);
  t.equal(run.code, 0);
  const lines = run.stdout.trimEnd().split('\n');
  t.match(lines[0], /^PCI +NODE +DRIVER +MODEL +POWER +VRAM +UTIL +HEALTH$/);
  t.match(run.stdout, /0000:41:00\.0 +- +vfio-pci +NVIDIA H100 SXM5 80GB +D0/);
  t.notMatch(run.stdout, /0000:01:00\.0 +0000:01:00\.0/, 'NAME does not repeat the PCI address');
  t.ok(widest(lines) <= MAX_TABLE_WIDTH);
  const bad = await runCli(['--sys-root', tree('nvidia-h100'), '--pci-ids', path.join(work, 'missing.ids')]);
  t.equal(bad.code, 64);
  t.match(bad.stderr, /--pci-ids/);
});
