/**
 * Numbers in an imported document that no system could have printed: ids past 2^53 or past
 * pid_t, counts past 2^53, values past a double's range (1e400), durations longer than any
 * machine stays up, utilizations outside 0..100 %. An importer gives a valid snapshot (the
 * value null, with a limit saying why) or EINVAL naming the line; never a snapshot its own
 * validation refuses. The reports are the real captures of test/fixtures with one number
 * damaged, the ioreg text the real Apple M4 capture, the plists laid out as ioreg -a writes
 * them (see import-ioreg-plist.test.ts).
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import plist from 'plist';
import { explain as describe } from '../src/cli/explain';
import { explain } from '../src/explain';
import { importIoreg } from '../src/import';
import { importReport } from '../src/import/reports';
import { validateSnapshot } from '../src/snapshot-file';
import type { Snapshot } from '../src/types';
import { runCli } from './helpers/cli';

const REPORTS = path.join(__dirname, 'fixtures', 'reports');
const capture = (name: string): string => fs.readFileSync(path.join(REPORTS, name), 'utf8');
const M4 = fs.readFileSync(path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt'), 'utf8');

const HUGE = '99999999999999999999'; // 1e20: past 2^53 and past pid_t
const VAST = '9'.repeat(400); // past a double: Number() gives Infinity

/** The capture with its first match of `from` replaced. */
function damaged(name: string, from: RegExp, to: string): string {
  const text = capture(name);
  if (!from.test(text)) throw new Error(`${name} has no ${from}`);
  return text.replace(from, to);
}

/** The limits of `code`, for matching by position. */
const coded = (snap: Snapshot, code: string) => snap.limits.filter((l) => l.code === code);

/** Which 1-based line of `text` holds `needle`. */
const lineOf = (text: string, needle: string): number => text.slice(0, text.indexOf(needle)).split('\n').length;

t.test('an id no system could print: EINVAL naming the line, in every report format', async (t) => {
  const cases: [string, string, RegExp, string][] = [
    ['hung_task INFO pid', 'hungtask-systemd-udevd-blkdev-mutex.txt', /systemd-udevd:326/, `systemd-udevd:${HUGE}`],
    ['hung_task task line pid past pid_t', 'hungtask-returnn-nvidia_uvm-uvm_ioctl.txt', /pid:15277/, 'pid:3000000000'],
    ['old task line pid', 'sysrq-w-esos-xfs-readahead-old-format.txt', /3937      2/, `${HUGE}      2`],
    ['sample thread id', 'sample-1password-op-psynch_cvwait.txt', /Thread_\d+/, `Thread_${HUGE}`],
    ['sample pid', 'sample-1password-op-psynch_cvwait.txt', /\(pid \d+\)/, `(pid ${HUGE})`],
    ['sample count', 'sample-1password-op-psynch_cvwait.txt', /^( +)\d+ Thread_/m, `$1${HUGE} Thread_`],
    ['spindump thread id', 'spindump-lldb-turnstile-lock-chain.txt', /Thread 0x[0-9a-f]+/, 'Thread 0xfffffffffffffffffff'],
    ['spindump blocked-by pid', 'spindump-lldb-turnstile-lock-chain.txt', /lldb-rpc-server \[\d+\]/, `lldb-rpc-server [${HUGE}]`],
    ['lldb tid', 'lldb-react-native-bt-mach_msg_trap.txt', /tid = 0x[0-9a-f]+/, 'tid = 0xfffffffffffffffffff'],
    ['crash thread number', 'crash-nv-main-thread-mach_msg_trap.txt', /^Thread 1::/m, `Thread ${HUGE}::`],
  ];
  for (const [what, name, from, to] of cases) {
    const text = damaged(name, from, to);
    const line = lineOf(text, to.replace(/^\$1/, '').trim());
    t.throws(() => importReport(text), { name: 'IokitSnapError', code: 'EINVAL', message: new RegExp(`^line ${line}: .* is larger than any .* can be`) }, what);
  }
});

t.test('an offset past 2^53 is unknown (null), as an address past 2^53 already was', async (t) => {
  const snap = importReport(damaged('crash-nv-main-thread-mach_msg_trap.txt', /mach_msg_trap \+ 10/, `mach_msg_trap + ${HUGE}`));
  validateSnapshot(snap);
  t.equal(snap.processes[0].threads[0].stack![0].symbolOffset, null);
  t.equal(snap.processes[0].threads[0].stack![0].symbol, 'mach_msg_trap');
  const spin = importReport(damaged('spindump-quicksilver-semaphore_wait-kernel-frames.txt', /\(libsystem_kernel\.dylib \+ \d+\)/, `(libsystem_kernel.dylib + ${VAST})`));
  validateSnapshot(spin);
});

t.test('a duration that cannot be real: null with a limit naming the line, never "stalled for at least 68444444444444440000 h"', async (t) => {
  const text = damaged('hungtask-systemd-udevd-blkdev-mutex.txt', /blocked for more than 120 seconds/, 'blocked for more than 246399999999999990000 seconds');
  const snap = validateSnapshot(importReport(text));
  const thread = snap.processes[0].threads[0];
  t.equal(thread.heldMs, null, 'not used');
  t.match(coded(snap, 'ERANGE'), [{ subject: 'report', field: 'heldMs', reason: /^line 4: heldMs would be 2\.46e\+20 s, which cannot be real/ }]);
  const words = describe(explain(snap), { color: false });
  t.notMatch(words, /\d{12,} h/, 'no absurd duration in the text');
  t.match(words, /when the blocked tasks were listed/, 'said as a wait of unknown length');

  const late = damaged('spindump-qgroundcontrol-hang-timeline-unresponsive.txt', /unresponsive for \d+ seconds/, `unresponsive for ${VAST} seconds`);
  const spin = validateSnapshot(importReport(late));
  t.equal(spin.processes.find((p) => p.report?.unresponsiveMs !== undefined)!.report!.unresponsiveMs, null);
  t.match(coded(spin, 'ERANGE'), [{ field: 'unresponsiveMs', reason: /^process QGroundControl: unresponsiveMs would be past any number of seconds/ }]);
  const long = damaged('spindump-qgroundcontrol-hang-timeline-unresponsive.txt', /^Duration:\s+[\d.]+s/m, `Duration:        ${HUGE}s`);
  const spun = validateSnapshot(importReport(long));
  t.ok(spun.processes.every((p) => p.report!.sampledMs === null && p.threads.every((th) => th.heldMs === null)));
  const slow = damaged('sample-1password-op-psynch_cvwait.txt', /every \d+ millisecond/, `every ${HUGE} millisecond`);
  const sampled = validateSnapshot(importReport(slow));
  t.ok(sampled.processes[0].threads.every((th) => th.heldMs === null), 'samples × a 1e20 ms interval: not used');
  t.match(coded(sampled, 'ERANGE'), [{ field: 'sampledMs' }, { field: 'heldMs', reason: /^line 23: / }]);
});

t.test('ioreg text: a utilization outside 0..100 % and a busy time of 1e20 ms are not used; a count past 2^53 is EINVAL naming the line', async (t) => {
  // ioreg prints a negative CFNumber as its 64-bit two's complement.
  const text = M4.replace('"Device Utilization %"=17', '"Device Utilization %"=18446744073709551615').replace('"recoveryCount"=0', `"recoveryCount"=${VAST}`);
  const snap = validateSnapshot(importIoreg(text, { includeProperties: true }));
  const a = snap.accelerators[0];
  t.equal(a.utilization!.devicePercent, null);
  t.equal(a.utilization!.rendererPercent, 15, 'the others are kept');
  t.equal(a.recovery, null, 'a count past a double is no count');
  t.match(coded(snap, 'ERANGE'), [{ subject: 'accelerator 0x100000478', field: 'utilization.devicePercent', reason: /gives 18446744073709552000 %, which is no utilization/ }]);
  const busy = validateSnapshot(importIoreg(M4.replace('busy 0 (752 ms)', `busy 0 (${HUGE} ms)`)));
  t.same(busy.accelerators[0].busy, { count: 0, timeNs: null });
  t.match(coded(busy, 'ERANGE'), [{ field: 'busy.timeNs', reason: /the dump \(the entry at line 1\) gives a busy time of 1\.00e\+17 s/ }]);
  t.throws(() => importIoreg(M4.replace('busy 0 (752 ms)', `busy ${HUGE} (752 ms)`)), { code: 'EINVAL', message: /^ioreg input, line 1: the busy count 99999999999999999999 is larger than any busy count can be/ });
  t.throws(() => importIoreg(M4.replace('retain 101', `retain ${VAST}`)), { code: 'EINVAL', message: /line 1: the retain count 9{40}… is larger/ });
});

/** An M4 entry as ioreg -a archives it (the layout of import-ioreg-plist.test.ts), with `statistics` for its PerformanceStatistics. */
function plistWith(entry: Record<string, unknown>, statistics: Record<string, unknown> = {}): string {
  const xml = plist.build([
    {
      IORegistryEntryName: 'AGXAcceleratorG16G',
      IORegistryEntryID: 0x100000478,
      IOObjectClass: 'AGXAcceleratorG16G',
      IOObjectRetainCount: 101,
      IOServiceState: 0x6,
      IOServiceBusyState: 0,
      IOServiceBusyTime: 752_000_000,
      IOMatchCategory: 'IOAccelerator',
      PerformanceStatistics: { 'Device Utilization %': 17, 'Renderer Utilization %': 15, ...statistics },
      ...entry,
    } as plist.PlistValue,
  ]);
  return xml;
}

t.test('ioreg -a: <real>1e400</real> is kept as written (as nan and inf are), so --json and -o give the same valid snapshot', async (t) => {
  const xml = plistWith({ Huge: 1 }).replace(/(<key>Huge<\/key>\s*)<integer>1<\/integer>/, '$1<real>1e400</real>');
  t.match(xml, /<real>1e400<\/real>/);
  const snap = validateSnapshot(importIoreg(xml, { includeProperties: true }));
  t.equal(snap.accelerators[0].properties!.Huge, '1e400');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-damaged-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'gpu.plist'), xml);
  const json = await runCli(['import', path.join(dir, 'gpu.plist'), '--json', '--properties']);
  t.equal(json.code, 0, json.stderr);
  t.equal((JSON.parse(json.stdout) as Snapshot).accelerators[0].properties!.Huge, '1e400', '--json: the text, not null');
  const out = await runCli(['import', path.join(dir, 'gpu.plist'), '-o', path.join(dir, 'gpu.json'), '--properties']);
  t.equal(out.code, 0, out.stderr);
  t.equal((JSON.parse(fs.readFileSync(path.join(dir, 'gpu.json'), 'utf8')) as Snapshot).accelerators[0].properties!.Huge, '1e400', '-o writes it too');
});

t.test('ioreg -a: negative and 1e20 % utilization, a busy time past ten years: not used; a busy count past 2^53: EINVAL naming the entry', async (t) => {
  const xml = plistWith({ IOServiceBusyTime: 1 }, { 'Device Utilization %': -5, 'Renderer Utilization %': 1e20, 'Tiler Utilization %': 100 })
    .replace(/(<key>IOServiceBusyTime<\/key>\s*)<integer>1<\/integer>/, `$1<integer>${HUGE}000</integer>`);
  const snap = validateSnapshot(importIoreg(xml));
  t.same(snap.accelerators[0].utilization, { devicePercent: null, rendererPercent: null, tilerPercent: 100 });
  t.equal(snap.accelerators[0].busy!.timeNs, null);
  t.equal(snap.limits.filter((l) => l.code === 'ERANGE').length, 3);
  const busy = plistWith({ IOServiceBusyState: 1 }).replace(/(<key>IOServiceBusyState<\/key>\s*)<integer>1<\/integer>/, `$1<integer>${HUGE}</integer>`);
  t.throws(() => importIoreg(busy), { code: 'EINVAL', message: /^ioreg -a input: entry 1: IOServiceBusyState is 99999999999999999999, larger than any count can be/ });
  const endless = plistWith({ IOServiceBusyState: 1 }).replace(/(<key>IOServiceBusyState<\/key>\s*)<integer>1<\/integer>/, `$1<integer>${'7'.repeat(60)}</integer>`);
  t.throws(() => importIoreg(endless), { code: 'EINVAL', message: new RegExp(`^ioreg -a input: entry 1: IOServiceBusyState is ${'7'.repeat(40)}…, larger than any count can be`) }, 'a long number cut to 40 digits in the message');
  const vast = plistWith({ IOServiceBusyTime: 1 }).replace(/(<key>IOServiceBusyTime<\/key>\s*)<integer>1<\/integer>/, `$1<integer>${VAST}</integer>`);
  t.equal(validateSnapshot(importIoreg(vast)).accelerators[0].busy!.timeNs, null, 'a time past a double: none');
});
