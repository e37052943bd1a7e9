// src/analyze/calls.ts (what a blocking call means for hang analysis) and
// src/analyze/format.ts (the numbers in the findings' messages), as pure functions.
// Call names are the ones the native layer gives: Linux syscall names from
// native/syscalls_linux_*.inc, Darwin BSD syscalls and Mach traps from
// native/syscalls_darwin_bsd.inc and native/mach_traps_darwin.inc.
import t from 'tap';
import { cpuOf, describeWait, isDriverCall, isGpuNode, sameWait, waitClass } from '../src/analyze/calls';
import { formatCpu, formatMs, plural } from '../src/analyze/format';
import type { BlockedIn, Frame, ThreadSample } from '../src/types';

/** A thread sample with only what the test sets; the rest as a plain sleeping thread. */
function thread(blockedIn: BlockedIn | null, extra: Partial<ThreadSample> = {}): ThreadSample {
  return {
    tid: 4242,
    name: 'main',
    state: 'sleeping',
    userNs: 30_000_000,
    systemNs: 10_000_000,
    contextSwitches: { voluntary: 12, involuntary: 3 },
    suspendCount: null,
    blockedIn,
    ...extra,
  };
}

const IOKIT = '/System/Library/Frameworks/IOKit.framework/Versions/A/IOKit';
const LIBSYSTEM_KERNEL = '/usr/lib/system/libsystem_kernel.dylib';
const AGX_METAL = '/System/Library/Extensions/AGXMetalG13X.bundle/Contents/MacOS/AGXMetalG13X';
const frame = (module: string | null, offset = 0x10): Frame => ({ pc: 0x1_8000_0000 + offset, module, offset });

t.test('waitClass: Linux names', async (t) => {
  for (const call of ['epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'poll', 'ppoll', 'select', 'pselect6', 'accept4', 'pause', 'rt_sigsuspend', 'rt_sigtimedwait', 'io_getevents', 'io_uring_enter']) {
    t.equal(waitClass(call), 'event', call);
  }
  for (const call of ['nanosleep', 'clock_nanosleep', 'clock_nanosleep_time64']) t.equal(waitClass(call), 'sleep', call);
  for (const call of ['wait4', 'waitid']) t.equal(waitClass(call), 'child', call);
  for (const call of ['futex', 'read', 'write', 'ioctl', 'openat', 'flock', 'syscall_999']) t.equal(waitClass(call), 'block', call);
});

t.test('waitClass: Darwin names', async (t) => {
  for (const call of ['kevent', 'kevent64', 'kevent_qos', 'kevent_id', 'workq_kernreturn', 'mach_msg_trap', 'mach_msg2_trap', 'mach_msg_overwrite_trap', 'poll_nocancel', 'select_nocancel', '__sigwait', 'sigsuspend_nocancel']) {
    t.equal(waitClass(call), 'event', call);
  }
  for (const call of ['__semwait_signal', '__semwait_signal_nocancel']) t.equal(waitClass(call), 'sleep', call);
  for (const call of ['wait4_nocancel', 'waitid_nocancel']) t.equal(waitClass(call), 'child', call);
  for (const call of ['psynch_cvwait', 'ulock_wait', 'ulock_wait2', 'iokit_user_client_trap', 'read_nocancel', 'semaphore_wait_trap']) {
    t.equal(waitClass(call), 'block', call);
  }
  t.equal(waitClass(null), 'block', 'an unknown call is judged as blocking: no progress in it is a stall');
});

t.test('isGpuNode: the device nodes of GPU and accelerator drivers only', async (t) => {
  for (const node of ['/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-modeset', '/dev/dri/card0', '/dev/dri/renderD128', '/dev/accel/accel0', '/dev/kfd', '/dev/mali0', '/dev/mali', '/dev/kgsl-3d0']) {
    t.ok(isGpuNode(node), node);
  }
  for (const node of ['/dev/null', '/dev/tty1', '/dev/dri', '/dev/dri/by-path/pci-0000:03:00.0-card', '/dev/kfd0', 'pipe:[123]', 'socket:[77]', '/home/u/dev/nvidia0', 'anon_inode:[eventpoll]', '']) {
    t.notOk(isGpuNode(node), node || 'the empty string');
  }
  t.notOk(isGpuNode(undefined), 'no target (the fd link could not be read)');
});

t.test('isDriverCall on Linux: ioctl on a GPU node, and nothing else', async (t) => {
  t.ok(isDriverCall(thread({ call: 'ioctl', number: 16, fd: 7, target: '/dev/dri/renderD128' })), 'ioctl on the DRM render node');
  t.ok(isDriverCall(thread({ call: 'ioctl', number: 29, fd: 5, target: '/dev/nvidia0' })), 'ioctl on /dev/nvidia0 (arm64 number 29)');
  t.notOk(isDriverCall(thread({ call: 'ioctl', number: 16, fd: 0, target: '/dev/pts/0' })), 'ioctl on a terminal');
  t.notOk(isDriverCall(thread({ call: 'ioctl', number: 16, fd: 9 })), 'ioctl whose fd target could not be read: unknown, not a driver call');
  t.notOk(isDriverCall(thread({ call: 'read', number: 0, fd: 7, target: '/dev/dri/card0' })), 'read on a DRM node waits for an event, not in the driver');
  t.notOk(isDriverCall(thread({ call: 'futex', number: 202 })), 'futex');
  t.notOk(isDriverCall(thread(null)), 'not blocked');
});

t.test('isDriverCall on macOS: the IOKit trap, or mach_msg under IOKit or a GPU driver bundle', async (t) => {
  t.ok(isDriverCall(thread({ call: 'iokit_user_client_trap', number: -100 })), 'iokit_user_client_trap needs no stack');
  // IOConnectCallMethod reaches the kernel as a mach_msg: libsystem_kernel frames innermost,
  // then IOKit.framework (io_connect_method ← IOConnectCallMethod), then the caller.
  const ioConnectCallMethod = [frame(LIBSYSTEM_KERNEL, 0x1234), frame(LIBSYSTEM_KERNEL, 0x8a0), frame(LIBSYSTEM_KERNEL, 0x5f8), frame(LIBSYSTEM_KERNEL, 0xd8), frame(IOKIT, 0x2a4), frame(IOKIT, 0x64), frame('/usr/local/go/bin/go', 0x9000)];
  t.ok(isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 }, { stack: ioConnectCallMethod })), 'mach_msg2_trap under IOKit.framework');
  t.ok(isDriverCall(thread({ call: 'mach_msg_trap', number: -31 }, { stack: [frame(LIBSYSTEM_KERNEL), frame(null), frame(AGX_METAL)] })), 'mach_msg_trap under the AGX Metal driver bundle (an unresolved frame in between)');
  t.ok(isDriverCall(thread({ call: 'mach_msg_overwrite_trap', number: -32 }, { stack: [frame(IOKIT)] })), 'mach_msg_overwrite_trap');
  t.notOk(isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 })), 'mach_msg2_trap without a stack: a run-loop wait and a driver call look the same');
  t.notOk(
    isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 }, { stack: [frame(LIBSYSTEM_KERNEL), frame('/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation'), frame(null)] })),
    'mach_msg2_trap in the CFRunLoop: an event wait',
  );
  const deep = [...Array.from({ length: 8 }, (_, i) => frame(LIBSYSTEM_KERNEL, i)), frame(IOKIT)];
  t.notOk(isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 }, { stack: deep })), 'IOKit only below the 8 innermost frames does not count');
  t.ok(isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 }, { stack: deep.slice(1) })), 'IOKit as the 8th frame counts');
  t.notOk(isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 }, { stack: [] })), 'an empty stack');
  t.notOk(isDriverCall(thread({ call: 'ulock_wait', number: 515 }, { stack: ioConnectCallMethod })), 'a lock wait, whatever the stack');
  t.notOk(
    isDriverCall(thread({ call: 'mach_msg2_trap', number: -47 }, { stack: [frame('/Users/me/Library/IOKit.framework.backup/IOKit'), frame('/System/Library/Extensions/AGXMetalG13X.kext/x')] })),
    'paths that only resemble IOKit.framework/ or a driver .bundle/',
  );
});

t.test('cpuOf: schedstat ns when the sample has them, else user + system', async (t) => {
  t.equal(cpuOf(thread(null)), 40_000_000);
  t.equal(cpuOf(thread(null, { cpuNs: 41_234_567 })), 41_234_567);
  t.equal(cpuOf(thread(null, { cpuNs: 0 })), 0, 'zero schedstat time is a value');
});

t.test('sameWait: the same call, fd and target, else the same wait channel', async (t) => {
  const same = (a: ThreadSample, b: ThreadSample): boolean => sameWait(a.blockedIn, a.wchan, b.blockedIn, b.wchan);
  const futex = thread({ call: 'futex', number: 202 });
  t.ok(same(futex, thread({ call: 'futex', number: 202 })), 'a call without an fd: the call');
  const ioctl = thread({ call: 'ioctl', number: 16, fd: 7, target: '/dev/dri/renderD128' });
  t.ok(same(ioctl, thread({ call: 'ioctl', number: 16, fd: 7, target: '/dev/dri/renderD128' })));
  t.notOk(same(ioctl, thread({ call: 'ioctl', number: 16, fd: 7, target: '/dev/dri/card0' })), 'another target');
  t.notOk(same(thread({ call: 'read', number: 0, fd: 3 }), thread({ call: 'read', number: 0, fd: 3, target: 'pipe:[1]' })), 'fd without a readable target');
  t.ok(same(thread(null, { wchan: 'drm_sched_job_timedout' }), thread(null, { wchan: 'drm_sched_job_timedout' })), 'no call: the wait channel');
  t.notOk(same(thread(null, { wchan: 'drm_sched_job_timedout' }), thread(null, { wchan: 'pipe_read' })));
  t.ok(same(futex, thread({ call: 'futex', number: 202 }, { wchan: 'futex_wait_queue' })), 'the call wins over the wait channel');
  t.ok(same(thread(null), thread(null)), 'nothing known on either side');
  t.notOk(same(futex, thread(null)), 'a call against none');
  t.notOk(
    same(thread({ call: 'read', number: 0, fd: 3, target: 'pipe:[1]' }), thread({ call: 'read', number: 0, fd: 4, target: 'pipe:[1]' })),
    'another fd is another wait',
  );
});

t.test('describeWait: how a person reads where the thread is', async (t) => {
  t.equal(describeWait(thread({ call: 'futex', number: 202 })), 'futex');
  t.equal(describeWait(thread({ call: 'read', number: 0, fd: 3, target: 'pipe:[123]' })), 'read on pipe:[123] (fd 3)');
  t.equal(describeWait(thread({ call: 'ioctl', number: 16, fd: 5, target: '/dev/nvidia0' })), 'ioctl on /dev/nvidia0 (fd 5)');
  t.equal(describeWait(thread({ call: 'read', number: 0, fd: 3 })), 'read on fd 3');
  t.equal(describeWait(thread(null, { wchan: 'nvkm_fifo_wait' })), 'the kernel (wchan nvkm_fifo_wait)');
  t.equal(describeWait(thread(null)), 'an unknown call');
});

t.test('formatMs: each range, and values just under a boundary round into the next unit', async (t) => {
  t.equal(formatMs(0), '0 ms');
  t.equal(formatMs(80), '80 ms');
  t.equal(formatMs(999.4), '999 ms');
  t.equal(formatMs(999.6), '1.0 s', 'not "1000 ms"');
  t.equal(formatMs(1000), '1.0 s');
  t.equal(formatMs(1234), '1.2 s');
  t.equal(formatMs(5000), '5.0 s');
  t.equal(formatMs(19_200), '19.2 s');
  t.equal(formatMs(59_940), '59.9 s');
  t.equal(formatMs(59_960), '1 min 0 s', 'not "60.0 s"');
  t.equal(formatMs(60_000), '1 min 0 s');
  t.equal(formatMs(125_000), '2 min 5 s');
  t.equal(formatMs(119_600), '2 min 0 s', 'not "1 min 60 s"');
  t.equal(formatMs(3_599_400), '59 min 59 s');
  t.equal(formatMs(3_599_600), '1 h 0 min', 'not "59 min 60 s"');
  t.equal(formatMs(3_600_000), '1 h 0 min');
  t.equal(formatMs(7_380_000), '2 h 3 min');
  t.equal(formatMs(7_199_999), '2 h 0 min', 'not "1 h 60 min"');
  t.equal(formatMs(90_000_000), '25 h 0 min', 'hours do not roll into days');
  t.equal(formatMs(Number.NaN), 'an unknown time');
  t.equal(formatMs(Number.POSITIVE_INFINITY), 'an unknown time');
});

t.test('formatCpu: ns, µs, then the wall-time units', async (t) => {
  t.equal(formatCpu(0), '0 ns');
  t.equal(formatCpu(12_345), '12 µs');
  t.equal(formatCpu(999_400), '999 µs');
  t.equal(formatCpu(999_600), '1 ms', 'not "1000 µs"');
  t.equal(formatCpu(12_000_000), '12 ms');
  t.equal(formatCpu(1_500_000_000), '1.5 s');
});

t.test('plural', async (t) => {
  t.equal(plural(0, 'thread'), '0 threads');
  t.equal(plural(1, 'thread'), '1 thread');
  t.equal(plural(2, 'thread'), '2 threads');
  t.equal(plural(1, 'process', 'processes'), '1 process');
  t.equal(plural(3, 'process', 'processes'), '3 processes');
});
