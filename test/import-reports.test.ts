// importReport on real captures (test/fixtures/reports, provenance in SOURCES.md): every
// format, each asserting specific threads, frames and the blockedIn the stack implies.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { IokitSnapError } from '../src/errors';
import { detectReportFormat, importReport, MAX_LINE, reportTime } from '../src/import/reports';
import { validateSnapshot } from '../src/snapshot-file';
import type { Snapshot, ThreadSample } from '../src/types';

const DIR = path.join(__dirname, 'fixtures', 'reports');

function load(name: string): Snapshot {
  const snap = importReport(fs.readFileSync(path.join(DIR, name), 'utf8'));
  validateSnapshot(snap, name);
  return snap;
}

function thread(snap: Snapshot, tid: number, pid?: number): ThreadSample {
  const p = pid === undefined ? snap.processes[0] : snap.processes.find((q) => q.pid === pid);
  const found = p?.threads.find((x) => x.tid === tid);
  if (found === undefined) throw new Error(`no thread ${tid}`);
  return found;
}

/** Does the snapshot carry a limit with this field whose reason matches? */
function hasLimit(snap: Snapshot, field: string, reason: RegExp = /./): boolean {
  return snap.limits.some((l) => l.field === field && reason.test(l.reason));
}

function cutAt(snap: Snapshot): number | null {
  const limit = snap.limits.find((l) => /the report is cut at line (\d+)/.test(l.reason));
  return limit === undefined ? null : Number(/line (\d+)/.exec(limit.reason)![1]);
}

t.test('every capture in the corpus imports, is a valid snapshot, and is attributed in SOURCES.md', async (t) => {
  const sources = fs.readFileSync(path.join(DIR, 'SOURCES.md'), 'utf8');
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.txt'));
  t.ok(files.length >= 15);
  const perFormat = new Map<string, number>();
  for (const f of files) {
    t.match(sources, `| ${f} |`, `${f} has a provenance row`);
    const snap = load(f);
    perFormat.set(snap.source!.format, (perFormat.get(snap.source!.format) ?? 0) + 1);
    t.equal(snap.format, 'iokit-snap/1');
    t.ok(snap.processes.length > 0, `${f}: a process`);
  }
  for (const format of ['sample', 'spindump', 'crash', 'lldb', 'hung-task']) t.ok((perFormat.get(format) ?? 0) >= 3, `three or more real ${format} captures`);
});

t.test('sample: header, call graph, main thread in __psynch_cvwait for every sample', async (t) => {
  const snap = load('sample-1password-op-psynch_cvwait.txt');
  t.equal(snap.source?.format, 'sample');
  t.equal(snap.host.platform, 'darwin');
  t.equal(snap.host.osRelease, 'macOS 14.2.1 (23C71)');
  t.equal(snap.host.arch, 'arm64');
  t.equal(snap.takenAt, '2023-12-31T04:16:45.530Z', "the report's Date/Time with its zone");
  const p = snap.processes[0];
  t.same([p.pid, p.name], [46825, 'op']);
  t.same([p.report?.samples, p.report?.sampledMs], [2464, 2464], '2464 samples at 1 ms: at least 2.5 s');
  const main = p.threads[0];
  t.same([main.tid, main.queue, main.state, main.samples, main.heldMs], [1760964, 'com.apple.main-thread', 'waiting', 2464, 2464]);
  t.same(main.blockedIn, { call: 'psynch_cvwait', number: -1 });
  t.same(main.stack![0], {
    pc: 0x18983106c,
    module: 'libsystem_kernel.dylib',
    offset: null,
    symbol: '__psynch_cvwait',
    symbolOffset: 8,
    text: '2464 __psynch_cvwait  (in libsystem_kernel.dylib) + 8  [0x18983106c]',
    samples: 2464,
  });
  t.equal(main.stack!.at(-1)!.symbol, 'runtime.asmcgocall.abi0', 'outermost last');
  t.equal(main.pc, 0x18983106c);
  const worker = thread(snap, 1760968);
  t.equal(worker.stack![0].symbol, '_pthread_cond_wait', 'the cut thread keeps what was printed');
  t.equal(worker.blockedIn, null, 'its innermost frame is not a syscall stub');
  t.equal(cutAt(snap), 32, 'the paste ends in a tree line with no frame');
});

t.test('sample: an indented "Call graph:" and a run loop in mach_msg_trap; the last address is cut', async (t) => {
  const snap = load('sample-secretive-agent-mach_msg_trap.txt');
  const main = snap.processes[0].threads[0];
  t.same([main.tid, main.queue, main.samples], [34130, 'com.apple.main-thread', 2566]);
  t.equal(main.stack![0].symbol, 'mach_msg', 'the cut last line is not a frame');
  t.equal(main.blockedIn?.call, 'mach_msg', 'innermost complete frame');
  t.equal(main.heldMs, null, 'no sampling interval in the paste: counts are not time');
  t.ok(hasLimit(snap, 'heldMs'), 'limit heldMs');
  t.equal(cutAt(snap), 16);
});

t.test('sample: a Metal wait in semaphore_wait_trap, the Sort by top of stack table, a thread cut off its header', async (t) => {
  const snap = load('sample-gfx-quad-metal-semaphore_wait_trap.txt');
  const p = snap.processes[0];
  t.same(p.report?.topOfStack, [
    { symbol: '__workq_kernreturn', module: 'libsystem_kernel.dylib', samples: 924 },
    { symbol: 'semaphore_wait_trap', module: 'libsystem_kernel.dylib', samples: 924 },
  ]);
  const cut = thread(snap, -1);
  t.equal(cut, p.threads.at(-1), 'the headless thread is listed last');
  t.same(cut.blockedIn, { call: 'semaphore_wait_trap', number: -1 });
  t.same(cut.stack!.map((f) => f.symbol), ['semaphore_wait_trap', '_dispatch_sema4_wait', '_dispatch_semaphore_wait_slow']);
  t.same(thread(snap, 11572163).blockedIn, { call: 'workq_kernreturn', number: -1 });
  t.ok(hasLimit(snap, 'threads', /lines 1-3 .* kept as thread -1/), 'limit threads');
});

t.test('sample: one thread listed under two dispatch queues is one thread with the samples of both', async (t) => {
  const snap = load('sample-bettertouchtool-workq-split-thread.txt');
  const split = snap.processes[0].threads.filter((x) => x.tid === 945147);
  t.equal(split.length, 1);
  t.equal(split[0].samples, 2533, '2532 + 1');
  t.equal(split[0].stack![0].symbol, '__workq_kernreturn', 'the heavier tree gives the stack');
  t.equal(split[0].queue, 'com.apple.root.default-qos.overcommit');
  t.ok(hasLimit(snap, 'stack', /heaviest call path; 1 lighter path/), 'limit stack');
});

t.test('spindump: thread headers, kernel frames marked *, semaphore_wait_trap → semaphore_wait_continue', async (t) => {
  const snap = load('spindump-quicksilver-semaphore_wait-kernel-frames.txt');
  t.equal(snap.processes.length, 1, 'threads without a Process header share one process');
  const worker = thread(snap, 0xbb80c);
  t.same([worker.queue, worker.samples, worker.state], ['DispatchQueue 10', 1000, 'waiting']);
  t.same(worker.blockedIn, { call: 'semaphore_wait_trap', number: -1 });
  t.same(worker.stack![0], {
    pc: 0x7fff8c7ea51a,
    module: 'libsystem_kernel.dylib',
    offset: 70938,
    symbol: 'semaphore_wait_trap',
    symbolOffset: 10,
    text: '1000  semaphore_wait_trap + 10 (libsystem_kernel.dylib + 70938) [0x7fff8c7ea51a]',
    samples: 1000,
  });
  t.equal(worker.stack![2].module, 'Services Menu Plugin', 'an image name with spaces');
  t.same(worker.kernelFrames!.map((f) => [f.symbol, f.module, f.offset]), [['semaphore_wait_continue', 'kernel', 1353536]]);
  t.same(worker.kernelStack, ['*1000  semaphore_wait_continue + 0 (kernel + 1353536) [0xffffff800034a740]']);
  t.equal(worker.kernelFrames![0].pc, null, 'a kernel address above 2^53 is not a safe number; the text keeps it');
  t.equal(cutAt(snap), 18);
});

t.test('spindump: a hang report proves the main thread sat in semaphore_wait_trap for all 13 steps, unresponsive 82 s before', async (t) => {
  const snap = load('spindump-qgroundcontrol-hang-timeline-unresponsive.txt');
  const p = snap.processes[0];
  t.same([p.pid, p.name], [89978, 'QGroundControl']);
  t.same([p.report?.samples, p.report?.sampledMs, p.report?.unresponsiveMs], [13, 1300, 82000]);
  t.same(p.report?.notes, ['Event: hang']);
  t.equal(snap.host.model, 'MacBookAir6,2');
  const main = p.threads[0];
  t.same([main.tid, main.state, main.heldMs, main.samples], [0, 'waiting', 1300, 13]);
  t.same(main.blockedIn, { call: 'semaphore_wait_trap', number: -1 });
  t.same(main.stack!.map((f) => f.symbol), ['semaphore_wait_trap', '<truncated backtrace>']);
  t.equal(main.kernelFrames![0].symbol, 'semaphore_wait_continue');
  t.ok(hasLimit(snap, 'tid', /Heaviest stack for the main thread/), 'limit tid');
});

t.test('spindump -timeline: sample ranges after frames, thread names, QoS lines', async (t) => {
  const snap = load('spindump-hammerspoon-timeline-thread-names.txt');
  const loader = thread(snap, 0x700acf);
  t.same([loader.name, loader.samples], ['com.apple.NSURLConnectionLoader', 12]);
  t.same(loader.blockedIn, { call: 'mach_msg_trap', number: -1 });
  t.same(loader.stack!.map((f) => f.symbol), ['mach_msg_trap', '__CFRunLoopServiceMachPort', '__CFRunLoopRun', '<truncated backtrace>']);
  t.equal(loader.stack![0].text, '12  mach_msg_trap + 10 (libsystem_kernel.dylib + 4650) [0x7fff6297f22a] 1-12', 'the range stays in the text');
  t.equal(loader.kernelFrames![0].symbol, 'ipc_mqueue_receive_continue');
  t.equal(cutAt(snap), 18, 'the last kernel frame is cut');
});

t.test('spindump: a lock chain (blocked by turnstile waiting for … thread 0x2c4a6c) and the holder thread', async (t) => {
  const snap = load('spindump-lldb-turnstile-lock-chain.txt');
  const waiter = thread(snap, -1);
  t.same(waiter.blockedIn, { call: 'psynch_mutexwait', number: -1 });
  t.same(waiter.blockedBy, { pid: 12692, tid: 0x2c4a6c, name: 'lldb-rpc-server', text: 'turnstile waiting for lldb-rpc-server [12692] [unique pid 112195] thread 0x2c4a6c' });
  t.equal(waiter.stack![1].module, 'libsystem_pthread.dylib', '"pthread_mutex.c:1490 in libsystem_pthread.dylib + 6812"');
  t.equal(waiter.stack![1].offset, 6812);
  t.equal(waiter.kernelFrames![0].module, 'com.apple.kec.pthread');
  const holder = thread(snap, 0x2c4a6c);
  t.equal(holder.name, 'RPC packet thread for client tid 002c4a6b (2902635)');
  t.equal(holder.stack![0].symbol, 'Packets::RunReadThread(void*)');
});

t.test('spindump: a process header with Num samples and Note: Unresponsive, cut inside the first thread header', async (t) => {
  const snap = load('spindump-flutter-system-settings-unresponsive.txt');
  const p = snap.processes[0];
  t.same([p.pid, p.name, p.report?.samples], [7349, 'System Settings', 1001]);
  t.same(p.report?.notes, ['Unresponsive', '1 idle work queue thread omitted']);
  t.same(p.threads.map((x) => [x.tid, x.stack?.length]), [[0xc453, 0]]);
  t.equal(cutAt(snap), 22);
});

t.test('spindump: the main thread (DispatchQueue 1) of a frozen IORegistryExplorer', async (t) => {
  const snap = load('spindump-hacmini-ioregistryviewer-main.txt');
  const main = snap.processes[0].threads[0];
  t.same([main.tid, main.queue, main.samples], [0x2240, 'DispatchQueue 1', 1000]);
  t.equal(main.stack![0].symbol, '-[NSApplication(NSAppleEventHandling) _handleCoreEvent:withReplyEvent:]');
  t.equal(main.stack![4].symbol, 'dispatchEventAndSendReply(AEDesc const*, AEDesc*)', 'a symbol with parentheses');
  t.equal(main.blockedIn, null, 'the paste ends before the innermost frame');
  t.equal(cutAt(snap), 14);
});

t.test('crash report: a Metal command queue thread in semaphore_wait_trap (tab-separated columns)', async (t) => {
  const snap = load('crash-tdesktop-metal-commandqueue-semaphore_wait_trap.txt');
  const metal = thread(snap, 44);
  t.equal(metal.queue, 'com.Metal.CommandQueueDispatch');
  t.same(metal.blockedIn, { call: 'semaphore_wait_trap', number: -1, via: '-[_MTLCommandQueue _submitAvailableCommandBuffers]' });
  t.same(metal.stack![3], {
    pc: 0x7fff4c8b012b,
    module: 'com.apple.Metal',
    offset: null,
    symbol: '-[_MTLCommandQueue _submitAvailableCommandBuffers]',
    symbolOffset: 1005,
    text: '3   com.apple.Metal               \t0x00007fff4c8b012b -[_MTLCommandQueue _submitAvailableCommandBuffers] + 1005',
  });
  const idle = thread(snap, 45);
  t.same(idle.stack![1], { pc: 0x7000069b5b40, module: null, offset: null, symbol: null, symbolOffset: null, text: '1   ???                           \t0x00007000069b5b40 0 + 123145413155648' });
  t.ok(hasLimit(snap, 'tid', /numbers its threads/), 'limit tid');
});

t.test('crash report: Thread 0 is the main thread in mach_msg_trap; Thread 1 in kevent', async (t) => {
  const snap = load('crash-nv-main-thread-mach_msg_trap.txt');
  const [main, manager] = snap.processes[0].threads;
  t.same([main.tid, main.queue, main.blockedIn?.call, main.stack!.length], [0, 'com.apple.main-thread', 'mach_msg_trap', 13]);
  t.equal(main.stack![12].module, 'net.elasticthreads.nv');
  t.same([manager.tid, manager.queue, manager.blockedIn?.call], [1, 'com.apple.libdispatch-manager', 'kevent']);
});

t.test('crash report: frames before any header, a named thread in __select, a cut C++ signature', async (t) => {
  const snap = load('crash-xvim-xcode-psynch_cvwait-select.txt');
  t.same(thread(snap, 21).blockedIn, { call: 'psynch_cvwait', number: -1 });
  const lldb = thread(snap, 22);
  t.same([lldb.name, lldb.blockedIn?.call], ['<lldb.comm.debugger.input>', 'select']);
  t.same(thread(snap, -1).stack!.length, 7, 'the headless frames up to the blank line');
  t.equal(cutAt(snap), 20, 'unbalanced parentheses on the last frame');
});

t.test("crash report (a third-party reporter's layout): mach_msg_trap under IOConnectCallMethod is a driver call", async (t) => {
  const snap = load('crash-apptentive-ioconnectcallmethod-mach_msg_trap.txt');
  const main = snap.processes[0].threads[0];
  t.same([main.queue, main.stack!.length], ['com.apple.main-thread', 14]);
  t.same(main.blockedIn, { call: 'mach_msg_trap', number: -1, via: 'IOConnectCallMethod' });
  t.same([main.stack![8].symbol, main.stack![8].symbolOffset], ['-[ApptentiveBackend initWithApptentiveKey:signature:baseURL:storagePath:operationQueue:]', null]);
  t.equal(cutAt(snap), 16, '"14 UIKit" has no address');
});

t.test('lldb bt: tid, queue, the selected frame and "at file:line"', async (t) => {
  const snap = load('lldb-react-native-bt-mach_msg_trap.txt');
  const main = snap.processes[0].threads[0];
  t.same([main.tid, main.queue, main.blockedIn?.call], [0xc10373, 'com.apple.main-thread', 'mach_msg_trap']);
  t.same([main.stack![7].module, main.stack![7].symbol, main.stack![7].symbolOffset], ['app', 'main(argc=1, argv=0x00007fff557a86a8)', 111]);
  t.notOk(snap.limits.some((l) => l.field === 'tid'), 'tids are real here');
});

t.test('lldb bt: Metal waitUntilCompleted in __psynch_cvwait, cut at "fra"', async (t) => {
  const snap = load('lldb-kha-metal-waituntilcompleted-psynch_cvwait.txt');
  const main = snap.processes[0].threads[0];
  t.same(main.blockedIn, { call: 'psynch_cvwait', number: -1, via: '-[_MTLCommandBuffer waitUntilCompleted]' });
  t.equal(main.stack!.length, 10);
  t.equal(cutAt(snap), 12);
});

t.test('lldb bt: the AMD Metal driver on the path to semaphore_wait_trap', async (t) => {
  const snap = load('lldb-metalnanovg-amd-driver-semaphore_wait_trap.txt');
  const main = snap.processes[0].threads[0];
  t.same(main.blockedIn, {
    call: 'semaphore_wait_trap',
    number: -1,
    via: '-[_MTLCommandBuffer initWithQueue:retainedReferences:synchronousDebugMode:]',
    driver: 'AMDRadeonX5000MTLDriver',
  });
  t.equal(main.stack![7].symbol, '-[AMD_MtlCmdQueue commandBuffer]');
});

t.test('lldb thread backtrace all: disassembly between threads is skipped; a last header without frames is a cut', async (t) => {
  const snap = load('lldb-node-thread-backtrace-all-disassembly.txt');
  const threads = snap.processes[0].threads;
  t.same(threads.map((x) => x.tid), [0x28, 0x29, 0x2a, 0x2b]);
  for (const x of threads.slice(0, 3)) t.same([x.stack!.length, x.blockedIn?.call], [1, 'mach_msg_trap']);
  t.equal(cutAt(snap), 28);
});

t.test('lldb bt: pytorch MPS synchronize; an innermost frame that is not a syscall stub gives no blockedIn', async (t) => {
  const snap = load('lldb-pytorch-mps-synchronize-bt.txt');
  const main = snap.processes[0].threads[0];
  t.equal(main.blockedIn, null);
  t.equal(main.state, 'unknown');
  t.equal(main.stack![1].symbol, '-[_MTLCommandBuffer waitUntilCompleted]');
  t.equal(cutAt(snap), 18, 'an address cut short');
});

t.test('hung_task: NVIDIA uvm ioctl in D state, new task: form, ? frames unreliable', async (t) => {
  const snap = load('hungtask-returnn-nvidia_uvm-uvm_ioctl.txt');
  t.equal(snap.host.platform, 'linux');
  const p = snap.processes[0];
  t.same([p.pid, p.name], [15277, 'python3.11']);
  const task = p.threads[0];
  t.same([task.tid, task.state, task.heldMs], [15277, 'uninterruptible', null]);
  t.same(task.blockedIn, { call: 'uvm_page_tree_get_ptes_async', number: -1, driver: 'nvidia_uvm', lock: 'mutex_lock' });
  const unreliable = task.kernelFrames!.find((f) => f.symbol === 'alloc_internal.part.0')!;
  t.same(unreliable, { pc: null, module: 'nvidia_uvm', offset: null, symbol: 'alloc_internal.part.0', symbolOffset: 0x24, text: '? alloc_internal.part.0+0x24/0x30 [nvidia_uvm]', unreliable: true });
  t.equal(task.kernelStack![0], '__schedule+0x23d/0x590');
  t.ok(task.kernelFrames!.some((f) => f.symbol === 'uvm_ioctl' && f.module === 'nvidia_uvm'));
});

t.test('hung_task: INFO line (blocked for more than 120 seconds), the pre-4.14 task line, [<addr>] frames', async (t) => {
  const snap = load('hungtask-k8s-device-plugin-nvc-uvm_gpu_retain.txt');
  t.equal(snap.processes.length, 1);
  const task = snap.processes[0].threads[0];
  t.same([task.tid, task.name, task.state, task.heldMs], [5403, 'nvc:[driver]', 'uninterruptible', 120_000]);
  t.same(task.blockedIn, { call: 'uvm_gpu_retain_by_uuid', number: -1, driver: 'nvidia_uvm', lock: 'mutex_lock' });
  t.same(task.kernelFrames![0], { pc: null, module: null, offset: null, symbol: 'schedule_preempt_disabled', symbolOffset: 0xe, text: '[<ffffffff8170e16e>] ? schedule_preempt_disabled+0xe/0x10', unreliable: true });
  t.equal(snap.host.osRelease, '4.4.146-1.el7.elrepo.x86_64');
  t.ok(hasLimit(snap, 'threads', /lines 1-4 .* skipped/), 'limit threads');
  t.ok(hasLimit(snap, 'kernelStack', /line 19 .* may be cut/), 'limit kernelStack');
});

t.test('hung_task: amdgpu waiting on a fence; built-in amdgpu without module tags; a reset worker on a mutex', async (t) => {
  const fence = load('hungtask-rocm-tensorflow-amdgpu-fence-wait.txt').processes[0].threads[0];
  t.same(fence.blockedIn, { call: 'amdgpu_bo_do_create', number: -1, driver: 'amdgpu', lock: 'dma_fence_wait_timeout' });
  t.equal(fence.heldMs, 120_000);
  const xorg = load('hungtask-steam-xorg-amdgpu-gem-va-ioctl.txt').processes[0].threads[0];
  t.same([xorg.name, xorg.blockedIn?.call, xorg.blockedIn?.driver], ['Xorg', 'amd_sched_entity_push_job', 'amdgpu']);
  const reset = load('hungtask-nixpkgs-kworker-amdgpu-reset-dm_suspend.txt');
  const worker = reset.processes[0];
  t.same([worker.pid, worker.name, worker.threads[0].heldMs], [3921699, 'kworker/u32:26', 122_000]);
  t.same(worker.threads[0].blockedIn, { call: 'dm_suspend', number: -1, driver: 'amdgpu', lock: '__mutex_lock' });
  t.same(worker.report?.notes, ['blocked for more than 122 seconds (hung_task)', 'Workqueue: amdgpu-reset-dev drm_sched_job_timedout [gpu_sched]']);
});

t.test('hung_task: not a GPU (open of a block device), and the ARM Backtrace form', async (t) => {
  const udev = load('hungtask-systemd-udevd-blkdev-mutex.txt').processes[0].threads[0];
  t.same(udev.blockedIn, { call: 'open', number: -1, via: '__blkdev_get', lock: 'mutex_lock' });
  const arm = load('hungtask-raspberrypi-arm-backtrace-synchronize_srcu.txt').processes[0].threads[0];
  t.same(arm.kernelFrames!.map((f) => f.symbol), [
    '__schedule',
    'schedule',
    'schedule_timeout',
    'wait_for_completion',
    'synchronize_srcu',
    'fsnotify_connector_destroy_workfn',
    'process_one_work',
    'worker_thread',
  ]);
  t.equal(arm.kernelFrames!.at(-1)!.symbolOffset, 0x34, 'the last caller keeps its offset');
  t.same(arm.blockedIn, { call: 'fsnotify_connector_destroy_workfn', number: -1, lock: 'synchronize_srcu' });
});

t.test('sysrq-w: Show Blocked State, old and new task lines; no duration claimed', async (t) => {
  const old = load('sysrq-w-esos-xfs-readahead-old-format.txt');
  const task = old.processes[0].threads[0];
  t.same([task.tid, task.name, task.state, task.heldMs], [3937, 'compute2-f1_3', 'uninterruptible', null]);
  t.ok(task.kernelFrames!.every((f) => f.unreliable), 'every frame is a ? frame');
  t.equal(task.blockedIn?.call, '__blk_run_queue', 'with no reliable frame the unreliable ones are all there is');
  t.ok(hasLimit(old, 'heldMs', /sysrq-w/), 'limit heldMs');
  const fresh = load('sysrq-w-qualcomm-rb1-kworker-hci.txt').processes[0];
  t.same([fresh.pid, fresh.name, fresh.threads[0].state, fresh.threads[0].blockedIn], [72, 'kworker/u17:0', 'uninterruptible', null]);
  t.same(fresh.report?.notes, ['Workqueue: hci0 hci_power_on']);
});

t.test('unrecognised text is EINVAL naming the line; empty text too; bad arguments', async (t) => {
  t.throws(() => importReport('hello\nworld\n'), { code: 'EINVAL', message: /^line 1: "hello" does not start any report/ });
  t.throws(() => importReport('\n\n   \nnot a report\n'), { code: 'EINVAL', message: /^line 4: "not a report"/ });
  t.throws(() => importReport(''), { code: 'EINVAL', message: /empty/ });
  t.throws(() => importReport(42 as unknown as string), { code: 'EINVAL' });
  t.throws(() => importReport('x', null as unknown as object), { code: 'EINVAL' });
  t.throws(() => importReport('x', { takenAt: 'yesterday' }), { code: 'EINVAL', message: /takenAt/ });
  t.throws(() => importReport('+-o Root  <class IORegistryEntry, id 0x100000100, retain 12>\n'), { code: 'EINVAL' }, 'an ioreg dump is not a report');
  t.throws(() => importReport('{"format": "iokit-snap/1"}'), { code: 'EINVAL' }, 'nor is a snapshot');
  t.type(new IokitSnapError('EINVAL', 'x'), Error);
});

t.test('options: takenAt and host facts from the caller win; without a time the import time is used and said', async (t) => {
  const text = fs.readFileSync(path.join(DIR, 'crash-nv-main-thread-mach_msg_trap.txt'), 'utf8');
  const snap = importReport(text, { takenAt: '2020-01-02T03:04:05Z', host: { arch: 'x86_64', osRelease: '10.7.3', model: 'MacBookPro8,1', platform: 'darwin' } });
  t.equal(snap.takenAt, '2020-01-02T03:04:05.000Z');
  t.same(snap.host, { platform: 'darwin', arch: 'x86_64', osRelease: '10.7.3', model: 'MacBookPro8,1' });
  t.notOk(snap.limits.some((l) => l.subject === 'host'));
  const bare = importReport(text);
  t.ok(hasLimit(bare, 'takenAt'), 'limit takenAt');
  t.ok(hasLimit(bare, 'arch, osRelease'), 'limit arch, osRelease');
});

t.test('Markdown fences, CRLF line ends and overlong lines', async (t) => {
  const text = fs.readFileSync(path.join(DIR, 'lldb-react-native-bt-mach_msg_trap.txt'), 'utf8');
  const fenced = importReport('```\r\n' + text.replace(/\n/g, '\r\n') + '```\r\n');
  t.same(fenced.processes[0].threads[0].stack!.length, 10);
  const long = importReport(`Thread 0:\n0   libsystem_kernel.dylib   0x1 ${'x'.repeat(MAX_LINE * 2)}\n`);
  t.ok(hasLimit(long, 'lines', /longer than 8192 characters \(the first at line 2\)/), 'limit lines');
  t.equal(long.processes[0].threads[0].stack![0].text!.length <= MAX_LINE, true);
});

t.test('detectReportFormat names the format, or null for other text', async (t) => {
  const expect: [string, string][] = [
    ['sample-1password-op-psynch_cvwait.txt', 'sample'],
    ['spindump-flutter-system-settings-unresponsive.txt', 'spindump'],
    ['crash-apptentive-ioconnectcallmethod-mach_msg_trap.txt', 'crash'],
    ['lldb-node-thread-backtrace-all-disassembly.txt', 'lldb'],
    ['sysrq-w-esos-xfs-readahead-old-format.txt', 'hung-task'],
  ];
  for (const [file, format] of expect) t.equal(detectReportFormat(fs.readFileSync(path.join(DIR, file), 'utf8')), format, file);
  t.equal(detectReportFormat('+-o AGXAcceleratorG13X  <class AGXAcceleratorG13X, id 0x1000008a5>'), null);
  t.equal(detectReportFormat(7 as unknown as string), null);
  // As pasted into an issue: in a Markdown fence, after an overlong line; as importReport() reads it.
  const lldb = fs.readFileSync(path.join(DIR, 'lldb-node-thread-backtrace-all-disassembly.txt'), 'utf8');
  for (const pasted of ['```\n' + lldb + '```\n', '~~~ text\n' + lldb, `${'x'.repeat(MAX_LINE * 2)}\n${lldb}`]) {
    t.equal(detectReportFormat(pasted), 'lldb');
    t.equal(importReport(pasted).source?.format, 'lldb');
  }
  t.equal(detectReportFormat('```\n+-o AGXAcceleratorG13X  <class AGXAcceleratorG13X, id 0x1000008a5>\n```\n'), null, 'a fenced ioreg dump is still not a report');
});

t.test("reportTime reads Apple's Date/Time with or without a zone", async (t) => {
  t.equal(reportTime('2016-12-16 16:19:39 -0500'), '2016-12-16T21:19:39.000Z');
  t.match(reportTime('2016-12-16 16:19:39.250'), /^2016-12-16T\d\d:19:39\.250Z$/);
  t.equal(reportTime('Tue Dec 16'), null);
});

t.test('spindump, the 10.7 layout: User stack and Kernel stack trees per thread', async (t) => {
  const snap = load('spindump-selfcontrol-configd-user-kernel-stacks.txt');
  const empty = thread(snap, 0x170);
  t.same([empty.stack!.length, empty.kernelFrames!.map((f) => f.symbol)], [0, ['wakeup']]);
  const runLoop = thread(snap, 0x181);
  t.same(runLoop.blockedIn, { call: 'mach_msg_trap', number: -1 });
  t.same(runLoop.stack![0].module, 'libsystem_kernel.dylib', '"(in IMAGE)" frames');
  t.same(runLoop.kernelFrames!.map((f) => [f.symbol, f.module]), [['ipc_mqueue_receive_continue', 'mach_kernel']]);
  t.same(thread(snap, 0x28b9f).blockedIn?.call, 'workq_kernreturn');
});

t.test('crash report: unsymbolized frames keep the offset into their image', async (t) => {
  const snap = load('crash-valkyrie-unity-unsymbolized-semaphore_wait_trap.txt');
  const worker = thread(snap, 14);
  t.same([worker.name, worker.blockedIn?.call], ['Background Job.Worker 9', 'semaphore_wait_trap']);
  t.same(worker.stack![3], { pc: 0x10f6fde69, module: 'UnityPlayer.dylib', offset: 7605865, symbol: null, symbolOffset: null, text: '3   UnityPlayer.dylib             \t0x000000010f6fde69 0x10efbd000 + 7605865' });
  t.equal(thread(snap, 13).name, 'tid_8b03');
});

t.test('lldb: "Process N launched: PATH" names the process', async (t) => {
  const snap = load('lldb-pytorch-mps-trap-process-launch.txt');
  t.same([snap.processes[0].pid, snap.processes[0].name], [19018, 'python']);
  t.same(snap.processes[0].threads[0].blockedIn, { call: 'psynch_cvwait', number: -1 });
});

t.test('sample: named threads; only the Sort by top of stack table', async (t) => {
  const named = load('sample-quicksilver-jsc-marking-thread-names.txt');
  const marking = thread(named, 1330655);
  t.same([marking.name, marking.blockedIn?.call, marking.stack!.length], ['JavaScriptCore::Marking', 'psynch_cvwait', 8]);
  t.equal(thread(named, 1330656).name, 'JavaScriptCore::Marking');
  const sorted = load('sample-racket-sort-by-top-of-stack-only.txt');
  t.same(sorted.processes[0].threads, []);
  t.same(sorted.processes[0].report?.topOfStack?.slice(2, 4), [
    { symbol: '__workq_kernreturn', module: 'libsystem_kernel.dylib', samples: 2281 },
    { symbol: '???', module: '<unknown binary>', samples: 205 },
  ]);
});

// Constructed lines, each in a documented layout no capture above happens to contain:
// report headers (Apple's crash and sample headers), the current spindump thread header,
// a frame with an unknown image, a top-of-stack entry without an image.
t.test('grammar not in the corpus: report headers, the current spindump thread header, unknown images', async (t) => {
  const crash = importReport(
    'Process:               Example [4242]\nOS Version:            macOS 14.4 (23E214)\nCode Type:             ARM-64 (Native)\nHardware Model:        Mac14,2\n' +
      'Date/Time:             2024-03-01 10:00:00.000 +0100\n\nThread 0 Crashed:: Dispatch queue: com.apple.main-thread\n0   libsystem_kernel.dylib        0x000000018c5a1a60 __pthread_kill + 8\n',
  );
  t.same([crash.processes[0].pid, crash.processes[0].name, crash.host.arch, crash.host.model, crash.host.osRelease], [4242, 'Example', 'arm_64', 'Mac14,2', 'macOS 14.4 (23E214)']);
  t.same(crash.processes[0].threads[0].blockedIn, { call: '__pthread_kill', number: -1 });
  const sampled = importReport(
    'Analysis of sampling Example (pid 4242) every 1 millisecond\nProcess:         Example [4242]\nCode Type:       X86-64\nHardware Model:  MacBookPro16,1\n\nCall graph:\n' +
      '    10 Thread_77: worker\n    + 10 ???  (in <unknown binary>)  [0x1055a0509]\n\nSort by top of stack, same collapsed (when >= 5):\n        ???        10\n',
  );
  const worker = sampled.processes[0].threads[0];
  t.same([worker.name, worker.stack![0].module, worker.stack![0].symbolOffset, worker.main], ['worker', null, null, true]);
  t.same([sampled.host.arch, sampled.host.model], ['x86_64', 'MacBookPro16,1']);
  t.same(sampled.processes[0].report?.topOfStack, [{ symbol: '???', module: null, samples: 10 }]);
  const spin = importReport('  Thread 0x1c2f    DispatchQueue "com.apple.main-thread"(1)    5 samples (1-5)    priority 47 (base 47)\n  5  mach_msg2_trap + 8 (libsystem_kernel.dylib + 5100) [0x18c59a1f4]\n');
  const main = spin.processes[0].threads[0];
  t.same([main.queue, main.main, main.blockedIn?.call], ['com.apple.main-thread', true, 'mach_msg2_trap']);
});

t.test('grammar not in the corpus: split threads heavier later, empty names, lldb names, spindump headers and chains', async (t) => {
  const sampled = importReport('Call graph:\n    1 Thread_5:\n    + 1 a  (in x) + 1  [0x1]\n    5 Thread_5   DispatchQueue_2: q  (concurrent)\n    + 5 b  (in x) + 1  [0x2]\n');
  const split = sampled.processes[0].threads[0];
  t.same([split.name, split.samples, split.stack![0].symbol, split.queue], [null, 6, 'b', 'q'], 'the later, heavier tree gives the stack');
  const lldb = importReport("* thread #2, name = 'worker', stop reason = signal SIGSTOP\n  * frame #0: 0x0000000187b126ec libsystem_kernel.dylib`__ulock_wait + 8\n");
  t.same([lldb.processes[0].threads[0].name, lldb.processes[0].threads[0].blockedIn?.call], ['worker', 'ulock_wait']);
  // Only the heaviest stack of the main thread, with no Command/PID header: an unknown process.
  const bare = importReport('Heaviest stack for the main thread of the target process:\n  5  mach_msg_trap + 10 (libsystem_kernel.dylib + 4650) [0x7fff6297f22a]\n');
  t.same([bare.processes[0].pid, bare.processes[0].threads[0].main, bare.processes[0].threads[0].heldMs], [0, true, null]);
  // The main thread's own section wins over the heaviest stack; Duration not in seconds is not read.
  const both = importReport(
    'Duration:        n/a\nSteps:           5 (100ms sampling interval)\nProcess:         App [12]\n\nHeaviest stack for the main thread of the target process:\n  5  mach_msg_trap + 10 (libsystem_kernel.dylib + 4650) [0x7fff6297f22a]\n\n' +
      '  Thread 0x1c2f    DispatchQueue "com.apple.main-thread"(1)    5 samples (1-5)    priority 47 (base 47)\n  5  __psynch_mutexwait + 8 (libsystem_kernel.dylib + 1) [0x18c59a1f4] (blocked by a kernel lock)\n',
  );
  const p = both.processes[0];
  t.same([p.pid, p.name, p.threads.length, p.report?.sampledMs], [12, 'App', 1, null]);
  t.same(p.threads[0].blockedBy, { pid: null, tid: null, name: null, text: 'a kernel lock' });
  t.equal(p.threads[0].heldMs, null, 'no duration, no held time');
});
