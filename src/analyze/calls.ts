/**
 * What a blocking call means for hang analysis. A thread parked in an event wait is idle
 * when it was parked there when healthy too; a thread in a timed sleep or waiting for a
 * child is not hung by itself; a call into a GPU driver raises the severity of any stall.
 */
import type { BlockedIn, ThreadSample } from '../types';

/** How a call is judged when a thread makes no progress in it. */
export type WaitClass =
  /** Event-loop waits: idle when the baseline shows the same wait. */
  | 'event'
  /** A timed sleep: it wakes by itself. */
  | 'sleep'
  /** Waiting for a child process: the child's own state decides. */
  | 'child'
  /** Anything else (locks, reads, writes, ioctls…): no progress here is a stall. */
  | 'block';

const EVENT_WAITS = [
  // Linux
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'poll',
  'ppoll',
  'select',
  'pselect6',
  '_newselect',
  'accept',
  'accept4',
  'pause',
  'rt_sigsuspend',
  'rt_sigtimedwait',
  'sigsuspend',
  'io_getevents',
  'io_pgetevents',
  'io_uring_enter',
  // Darwin
  'kevent',
  'kevent64',
  'kevent_qos',
  'kevent_id',
  'workq_kernreturn',
  'mach_msg_trap',
  'mach_msg2_trap',
  'mach_msg_overwrite_trap',
  'poll_nocancel',
  'select_nocancel',
  'pselect',
  'pselect_nocancel',
  '__sigwait',
  '__sigwait_nocancel',
  'sigsuspend_nocancel',
];

const SLEEPS = ['nanosleep', 'clock_nanosleep', 'clock_nanosleep_time64', '__semwait_signal', '__semwait_signal_nocancel'];

const CHILD_WAITS = ['wait4', 'waitid', 'waitpid', 'wait4_nocancel', 'waitid_nocancel'];

/** One lookup per call: this runs for every thread that sat still, every step. */
const CLASS_OF = new Map<string, WaitClass>([
  ...EVENT_WAITS.map((call): [string, WaitClass] => [call, 'event']),
  ...SLEEPS.map((call): [string, WaitClass] => [call, 'sleep']),
  ...CHILD_WAITS.map((call): [string, WaitClass] => [call, 'child']),
]);

/** Darwin calls that enter an IOKit user client directly. */
const IOKIT_CALLS = new Set(['iokit_user_client_trap']);

const MACH_MSG = new Set(['mach_msg_trap', 'mach_msg2_trap', 'mach_msg_overwrite_trap']);

export function waitClass(call: string | null): WaitClass {
  return (call !== null && CLASS_OF.get(call)) || 'block';
}

/** Device nodes of GPU and accelerator drivers: NVIDIA, DRM (every vendor), compute accelerators, AMD KFD. */
const GPU_NODE = /^\/dev\/(?:nvidia[^/]*|dri\/[^/]+|accel\/[^/]+|kfd|mali\d*|kgsl-3d\d*)$/;

export function isGpuNode(target: string | undefined): boolean {
  return target !== undefined && GPU_NODE.test(target);
}

/** A user-space image that talks to a GPU driver on macOS: IOKit itself or a GPU driver bundle. */
const DRIVER_IMAGE = /\/IOKit\.framework\/|\/System\/Library\/Extensions\/[^/]+\.bundle\//;

/**
 * Is the thread blocked in a call into a GPU driver? Linux: ioctl on a GPU device node.
 * macOS: the IOKit user-client trap, or a mach_msg under IOKit/a GPU driver bundle (that
 * is how IOConnectCallMethod reaches the kernel), which only a stack can tell.
 */
export function isDriverCall(thread: ThreadSample): boolean {
  const blocked = thread.blockedIn;
  if (blocked === null) return false;
  if (blocked.call === 'ioctl') return isGpuNode(blocked.target);
  if (IOKIT_CALLS.has(blocked.call)) return true;
  if (MACH_MSG.has(blocked.call) && thread.stack !== undefined) {
    // The innermost few frames: mach_msg ← IOConnectCallMethod ← the driver's user library.
    const depth = Math.min(thread.stack.length, 8);
    for (let i = 0; i < depth; i++) {
      const module = thread.stack[i].module;
      if (module !== null && DRIVER_IMAGE.test(module)) return true;
    }
  }
  return false;
}

/** CPU time consumed so far, ns: schedstat where the platform has it (finer than clock ticks). */
export function cpuOf(thread: ThreadSample): number {
  return thread.cpuNs ?? thread.userNs + thread.systemNs;
}

/** Does a thread wait in the same place: the same call, fd and target, or the same kernel wait channel? */
export function sameWait(a: BlockedIn | null, aWchan: string | undefined, b: BlockedIn | null, bWchan: string | undefined): boolean {
  if (a === null || b === null) return a === b && aWchan === bWchan;
  return a.call === b.call && a.fd === b.fd && a.target === b.target;
}

/** How a person reads where the thread is: "futex", "read on pipe:[123] (fd 3)", "read on fd 3", "ioctl on /dev/nvidia0 (fd 5)". */
export function describeWait(thread: ThreadSample): string {
  const blocked = thread.blockedIn;
  if (blocked === null) return thread.wchan !== undefined ? `the kernel (wchan ${thread.wchan})` : 'an unknown call';
  if (blocked.fd === undefined) return blocked.call;
  return `${blocked.call} on ${blocked.target ?? `fd ${blocked.fd}`}${blocked.target !== undefined ? ` (fd ${blocked.fd})` : ''}`;
}
