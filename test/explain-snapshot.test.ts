// explain(snapshot): one report judged on its own, from what it proves (real captures in
// test/fixtures/reports), in compare()'s finding shape and wording.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { compare } from '../src/analyze/compare';
import { explain } from '../src/explain';
import { importReport } from '../src/import/reports';
import type { Snapshot } from '../src/types';

const DIR = path.join(__dirname, 'fixtures', 'reports');
const text = (name: string): string => fs.readFileSync(path.join(DIR, name), 'utf8');
const load = (name: string): Snapshot => importReport(text(name));

t.test('a real hung_task log: the GPU driver, the function and the lock, for more than 120 s', async (t) => {
  const report = explain(load('hungtask-k8s-device-plugin-nvc-uvm_gpu_retain.txt'));
  t.equal(report.verdict, 'hung');
  t.equal(report.findings.length, 1);
  const [f] = report.findings;
  t.same([f.kind, f.severity, f.subject, f.ref, f.durationMs], ['blocked-in-driver', 'critical', "pid 5403 (nvc:[driver]) thread 5403 'nvc:[driver]'", { pid: 5403, tid: 5403 }, 120_000]);
  t.match(f.message, /^blocked in the GPU driver: uvm_gpu_retain_by_uuid \[nvidia_uvm\] on mutex_lock for more than 2 min 0 s \(hung_task\), uninterruptible; .*dmesg/);
  t.match(f.evidence, [{ field: 'blockedIn.call', after: 'uvm_gpu_retain_by_uuid' }, { field: 'blockedIn.driver', after: 'nvidia_uvm' }, { field: 'blockedIn.lock', after: 'mutex_lock' }]);
  const amd = explain(load('hungtask-rocm-tensorflow-amdgpu-fence-wait.txt')).findings[0];
  t.match(amd.message, /^blocked in the GPU driver: amdgpu_bo_do_create \[amdgpu\] on dma_fence_wait_timeout for more than 2 min 0 s/);
});

t.test('a real sample of a process stuck in a condition variable: the main thread, its wait, for how long', async (t) => {
  const report = explain(load('sample-1password-op-psynch_cvwait.txt'));
  t.equal(report.verdict, 'hung');
  t.equal(report.windowMs, 2464);
  const main = report.findings.find((f) => f.subject.endsWith('(main)'))!;
  t.same([main.kind, main.severity, main.durationMs], ['stalled', 'critical', 2464]);
  t.equal(main.message, 'stalled in psynch_cvwait for at least 2.5 s (2464 of 2464 samples): it waits on a lock or condition that nobody releases');
  t.same(report.processes, [{ pid: 46825, name: 'op', threads: 2, idle: 0, cpuNs: 0, windowMs: 2464 }]);
  const lenient = explain(load('sample-1password-op-psynch_cvwait.txt'), { stallMs: 5000 });
  t.equal(lenient.findings[0].severity, 'warning', 'held 2.5 s is under a 5 s stall');
});

t.test('a spindump hang report: the main thread for all 13 steps, and the 82 s it was unresponsive before', async (t) => {
  const report = explain(load('spindump-qgroundcontrol-hang-timeline-unresponsive.txt'));
  t.equal(report.verdict, 'hung');
  t.match(report.findings[0], { kind: 'stalled', severity: 'critical', subject: 'pid 89978 (QGroundControl) thread 0 (main)', durationMs: 1300 });
  t.match(report.findings[0].message, /^stalled in semaphore_wait_trap for at least 1\.3 s \(13 of 13 samples\)/);
  t.ok(report.notes.includes('pid 89978 (QGroundControl) was unresponsive for 1 min 22 s before the sampling began'));
  t.ok(report.notes.includes('pid 89978 (QGroundControl): the report notes "Event: hang"'));
});

t.test('a lock chain spindump shows: the waiter, whom it waits for, and where that thread is', async (t) => {
  const report = explain(load('spindump-lldb-turnstile-lock-chain.txt'));
  const chain = report.findings.find((f) => f.ref.tid === -1)!;
  t.equal(chain.kind, 'stalled');
  t.match(chain.message, /waits for thread 0x2c4a6c of lldb-rpc-server \[12692\] 'RPC packet thread for client tid 002c4a6b \(2902635\)', which is itself in Packets::RunReadThread\(void\*\)/);
  // The holder cut out of the paste: said so, not guessed.
  const snap = load('spindump-lldb-turnstile-lock-chain.txt');
  snap.processes[0].threads = snap.processes[0].threads.filter((x) => x.tid === -1);
  t.match(explain(snap).findings[0].message, /waits for thread 0x2c4a6c of lldb-rpc-server \[12692\], which is not in the report/);
  snap.processes[0].threads[0].blockedBy = { pid: null, tid: null, name: null, text: 'a kernel lock' };
  t.match(explain(snap).findings[0].message, /waits for a kernel lock, which is not in the report/);
});

t.test('tasks of one log waiting on the same lock in the same function: one holder blocks them all', async (t) => {
  // Two copies of the same real task under different pids stand for two tasks on one lock.
  const one = text('hungtask-k8s-device-plugin-nvc-uvm_gpu_retain.txt');
  const report = explain(importReport(one + one.replaceAll('5403', '5404')));
  t.equal(report.findings.length, 2);
  t.ok(report.notes.some((n) => /^2 tasks wait on mutex_lock in uvm_gpu_retain_by_uuid: one holder blocks them all/.test(n)));
});

t.test('single stacks (crash report, lldb) prove where, not how long: warnings', async (t) => {
  const metal = explain(load('crash-tdesktop-metal-commandqueue-semaphore_wait_trap.txt'));
  t.equal(metal.verdict, 'suspect');
  t.match(metal.findings[0], { kind: 'blocked-in-driver', severity: 'warning', subject: 'pid 0 (unknown) thread 44', durationMs: null });
  t.match(metal.findings[0].message, /^waits for the GPU: semaphore_wait_trap under -\[_MTLCommandQueue _submitAvailableCommandBuffers\] when the stack was taken \(one stack: how long is not in the report\)/);
  const iokit = explain(load('crash-apptentive-ioconnectcallmethod-mach_msg_trap.txt')).findings[0];
  t.match(iokit.message, /^blocked in a driver call \(IOKit user client\): mach_msg_trap under IOConnectCallMethod when the stack was taken/);
  const amd = explain(load('lldb-metalnanovg-amd-driver-semaphore_wait_trap.txt')).findings[0];
  t.match(amd.message, /^blocked in the GPU driver: semaphore_wait_trap under -\[_MTLCommandBuffer initWithQueue:retainedReferences:synchronousDebugMode:\]/);
  const mps = explain(load('lldb-pytorch-mps-synchronize-bt.txt')).findings[0];
  t.match(mps.message, /^waits for the GPU: pthread_cond_wait under -\[_MTLCommandBuffer waitUntilCompleted\]/, 'found from the stack when the innermost frame is no syscall stub');
  const cv = explain(load('crash-xvim-xcode-psynch_cvwait-select.txt'));
  t.equal(cv.findings.length, 0, 'no thread is known to be main, and no thread is on a driver path');
  const run = explain(load('crash-nv-main-thread-mach_msg_trap.txt'));
  t.equal(run.verdict, 'healthy');
  t.match(run.findings[0], { kind: 'waiting', severity: 'info', message: /^the main thread waits for events in mach_msg_trap when the stack was taken/ });
  t.equal(run.processes[0].idle, 1, 'the dispatch manager in kevent');
});

t.test('hung_task without a duration, not a GPU, and sysrq-w', async (t) => {
  const uvm = explain(load('hungtask-returnn-nvidia_uvm-uvm_ioctl.txt')).findings[0];
  t.match(uvm, { kind: 'blocked-in-driver', severity: 'warning', durationMs: null });
  t.match(uvm.message, /when the blocked tasks were listed \(the report as pasted does not say for how long\)/);
  const udev = explain(load('hungtask-systemd-udevd-blkdev-mutex.txt')).findings[0];
  t.match(udev, { kind: 'uninterruptible', severity: 'critical', durationMs: 120_000 });
  t.match(udev.message, /^in uninterruptible sleep \(D\) in open in __blkdev_get on mutex_lock for more than 2 min 0 s \(hung_task\)/);
  const sysrq = explain(load('sysrq-w-qualcomm-rb1-kworker-hci.txt')).findings[0];
  t.match(sysrq, { kind: 'uninterruptible', severity: 'warning' });
});

t.test('the main thread: an unknown innermost frame, a wait for events while unresponsive, a sleep, a child', async (t) => {
  const settings = load('spindump-hacmini-ioregistryviewer-main.txt');
  const unknown = explain(settings).findings[0];
  t.match(unknown, { kind: 'stalled', severity: 'info' });
  t.match(unknown.message, /^the main thread is in -\[NSApplication\(NSAppleEventHandling\) _handleCoreEvent:withReplyEvent:\] in the samples shown \(the report does not prove it stayed there\); its innermost frame is no system call/);
  const hang = load('spindump-qgroundcontrol-hang-timeline-unresponsive.txt');
  const main = hang.processes[0].threads[0];
  main.blockedIn = { call: 'mach_msg_trap', number: -1 };
  const waiting = explain(hang).findings[0];
  t.match(waiting, { kind: 'waiting', severity: 'warning', message: /yet the report says the process was unresponsive/ });
  main.blockedIn = { call: '__semwait_signal', number: -1 };
  t.match(explain(hang).findings[0], { kind: 'waiting', severity: 'info', message: /^the main thread sleeps in __semwait_signal/ });
  main.blockedIn = { call: 'wait4', number: -1 };
  t.match(explain(hang).findings[0], { message: /^the main thread waits for a child process in wait4/ });
  main.blockedIn = null;
  main.stack = [];
  t.match(explain(hang).findings[0], { severity: 'warning', message: /^the main thread is in an unknown frame/ });
});

t.test('a live snapshot: the main thread by position (macOS) or tid = pid (Linux); no durations claimed', async (t) => {
  const live: Snapshot = {
    format: 'iokit-snap/1',
    takenAt: new Date(0).toISOString(),
    monotonicNs: 1,
    host: { platform: 'linux', arch: 'x64', osRelease: '6' },
    accelerators: [],
    limits: [],
    processes: [
      {
        pid: 7,
        name: 'app',
        sampledAtNs: 1,
        threads: [
          { tid: 8, name: 'worker', state: 'sleeping', userNs: 0, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: { call: 'futex', number: 202 } },
          { tid: 7, name: 'app', state: 'sleeping', userNs: 0, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: { call: 'futex', number: 202 } },
        ],
      },
    ],
  };
  const report = explain(live);
  t.equal(report.findings.length, 1);
  t.match(report.findings[0], { subject: "pid 7 (app) thread 7 'app' (main)", severity: 'warning', message: /^stalled in futex in this snapshot \(one snapshot proves no duration/ });
  t.ok(report.notes.some((n) => /a live snapshot proves no durations/.test(n)));
  live.host.platform = 'darwin';
  t.match(explain(live).findings[0], { subject: "pid 7 (app) thread 8 'worker' (main)" });
});

t.test('bad arguments are EINVAL', async (t) => {
  t.throws(() => explain(null as unknown as Snapshot), { code: 'EINVAL', message: /not an iokit-snap\/1 snapshot/ });
  t.throws(() => explain({} as Snapshot), { code: 'EINVAL' });
  t.throws(() => explain(load('crash-nv-main-thread-mach_msg_trap.txt'), { stallMs: -1 }), { code: 'EINVAL', message: /stallMs/ });
});

t.test('compare() with an imported report: no window between them, and what the later report proves', async (t) => {
  const earlier = load('lldb-kha-metal-waituntilcompleted-psynch_cvwait.txt');
  const later = load('sample-1password-op-psynch_cvwait.txt');
  const report = compare(earlier, later);
  t.equal(report.windowMs, null);
  t.equal(report.verdict, 'hung');
  t.match(report.findings[0], { kind: 'stalled', severity: 'critical', subject: 'pid 46825 (op) thread 1760964 (main)', durationMs: 2464 });
  t.ok(report.notes.some((n) => /imported report carries no monotonic clock/.test(n)));
  const backwards = compare(later, earlier);
  t.equal(backwards.verdict, 'suspect', "the later (lldb) report's own warning");
  const same = compare(later, later);
  t.equal(same.findings.filter((f) => f.ref.tid === 1760964).length, 1, 'one finding per thread, not one from each side');
});

t.test('lock chains in every shape spindump prints them, and a chain on a driver path', async (t) => {
  const snap = load('spindump-lldb-turnstile-lock-chain.txt');
  const [holder, waiter] = snap.processes[0].threads;
  t.equal(waiter.tid, -1);
  holder.name = null;
  holder.blockedIn = { call: 'psynch_mutexwait', number: -1 };
  holder.blockedBy = { pid: null, tid: 0x99, name: null, text: 'turnstile waiting for thread 0x99' };
  waiter.heldMs = 5000;
  const chained = explain(snap).findings.find((f) => f.ref.tid === -1)!;
  t.match(chained, { severity: 'critical', message: /waits for thread 0x2c4a6c of lldb-rpc-server \[12692\], which is itself in psynch_mutexwait and waits in turn$/ });
  t.match(explain(snap).findings.find((f) => f.ref.tid === holder.tid)!.message, /waits for thread 0x99, which is not in the report/);
  waiter.blockedBy = { pid: null, tid: 0x2c4a6c, name: 'lldb-rpc-server', text: 'x' };
  t.match(explain(snap).findings.find((f) => f.ref.tid === -1)!.message, /waits for thread 0x2c4a6c of lldb-rpc-server, which is itself/);
  waiter.blockedIn = { call: 'mach_msg_trap', number: -1, via: 'IOConnectCallMethod' };
  t.match(explain(snap).findings.find((f) => f.ref.tid === -1)!, { kind: 'blocked-in-driver', message: /^blocked in a driver call \(IOKit user client\): .*; it waits for thread 0x2c4a6c/ });
});

t.test('a live main thread with no call and no stack', async (t) => {
  const snap = load('crash-nv-main-thread-mach_msg_trap.txt');
  delete snap.source;
  delete snap.processes[0].report;
  const main = snap.processes[0].threads[0];
  main.blockedIn = null;
  delete main.stack;
  t.match(explain(snap).findings[0], { message: /^the main thread is in an unknown frame in this snapshot/ });
});
