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

// restart_syscall is how the kernel resumes a timed wait (nanosleep, clock_nanosleep, a poll or
// futex wait with a timeout) after the thread was stopped (SIGSTOP/SIGCONT, a debugger, a ptrace
// stack walk) or ran a signal handler: only calls with a timeout restart that way.
const SLEEPS = ['nanosleep', 'clock_nanosleep', 'clock_nanosleep_time64', 'restart_syscall', '__semwait_signal', '__semwait_signal_nocancel'];

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

/** Calls the kernel resumes as restart_syscall after a stop or a signal handler: the waits with a timeout. */
export const RESTARTABLE = new Set(['nanosleep', 'clock_nanosleep', 'clock_nanosleep_time64', 'poll', 'ppoll', 'ppoll_time64', 'select', 'pselect6', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'futex', 'futex_time64']);

/**
 * A wait that a stop interrupted (SIGSTOP/SIGCONT, a debugger, a --stacks walk) and the kernel
 * resumed as restart_syscall is the same wait it was: `now` is restart_syscall, `before` the call
 * it restarted.
 */
export function restarted(now: BlockedIn | null, before: BlockedIn | null): boolean {
  return now !== null && before !== null && now.call === 'restart_syscall' && RESTARTABLE.has(before.call);
}

/** Does a thread wait in the same place: the same call, fd and target, or the same kernel wait channel? */
export function sameWait(a: BlockedIn | null, aWchan: string | undefined, b: BlockedIn | null, bWchan: string | undefined): boolean {
  if (a === null || b === null) return a === b && aWchan === bWchan;
  return a.call === b.call && a.fd === b.fd && a.target === b.target && a.futex?.address === b.futex?.address;
}

/** How a person reads where the thread is: "futex", "read on pipe:[123] (fd 3)", "read on fd 3", "ioctl on /dev/nvidia0 (fd 5)". */
export function describeWait(thread: ThreadSample): string {
  const blocked = thread.blockedIn;
  if (blocked === null) return thread.wchan !== undefined ? `the kernel (wchan ${thread.wchan})` : 'an unknown call';
  if (blocked.fd === undefined) return blocked.call;
  return `${blocked.call} on ${blocked.target ?? `fd ${blocked.fd}`}${blocked.target !== undefined ? ` (fd ${blocked.fd})` : ''}`;
}

/**
 * Where the kernel sleeps says what a call alone cannot (an openat that waits for the other
 * end of a fifo, a read that is really a page fault): the wait channel (wchan) and, as root,
 * the kernel stack, read by the Linux sampler. What the wait is, and what would end it; null
 * when neither tells more than the call.
 */
const KERNEL_WAITS: Array<[RegExp, KernelWaitKind, (thread: ThreadSample) => string]> = [
  [/^wait_for_partner$|^fifo_open/, 'peer', (t) => `it opens a fifo and waits for the other end: a reader waits for a writer and a writer for a reader; it ends when another process opens ${t.blockedIn?.target ?? 'the fifo'} from the other side`],
  [/^(anon_|fifo_)?pipe_(read|wait|wait_readable)$/, 'peer', (t) => `it waits for input on a pipe${t.blockedIn?.target !== undefined ? ` (${t.blockedIn.target})` : ''}; it ends when the writer writes or closes its end`],
  [/^(anon_|fifo_)?pipe_(write|wait_writable)$/, 'peer', () => 'the pipe is full and it waits to write; it ends when the reader reads (or closes its end)'],
  [/^(unix_stream_data_wait|unix_stream_read_generic|sk_wait_data|tcp_recvmsg\w*|skb_wait_for_more_packets|__skb_wait_for_more_packets|wait_for_unix_gc)$/, 'peer', () => 'it waits for data on a socket; it ends when the peer sends, or closes the connection'],
  [/^(sk_stream_wait_memory|unix_wait_for_peer|sock_alloc_send_pskb)$/, 'peer', () => 'it waits to send on a socket whose buffer is full; it ends when the peer reads'],
  [/^(inet_csk_accept|unix_accept)$/, 'event', () => 'it waits for a connection to accept; it ends when a client connects'],
  [/^(folio_wait_bit\w*|wait_on_page_bit\w*|__lock_page\w*|__folio_lock\w*|io_schedule\w*|bit_wait_io|wait_on_buffer)$/, 'io', () => 'it waits for a page or buffer to come in from storage (I/O on a slow or stuck device or network file system); it ends when that I/O completes'],
  [/^(rwsem_down_read_slowpath|rwsem_down_write_slowpath|down_read\w*|down_write\w*)$/, 'lock', (t) => t.kernelStack?.some((f) => /mmap|mm_|fault/.test(f)) ? 'it waits for the memory map lock of its process, which another thread holds (often one stuck in a page fault or an mmap); it ends when that thread lets go' : 'it waits for a kernel read-write semaphore that another task holds; it ends when that task lets go'],
  [/^(__mutex_lock\w*|mutex_lock\w*)$/, 'lock', (t) => `it waits for a kernel mutex${driverFrame(t) !== null ? ` in ${driverFrame(t)}` : ''} that another thread holds; it ends when that thread leaves the driver (look for the holder: the other threads in the same driver)`],
];

/** What a kernel wait channel says a thread waits for (wait-kind.ts). */
export type KernelWaitKind = 'peer' | 'event' | 'io' | 'lock';

/** Page-fault frames in a kernel stack: the call is not what it waits in. */
const FAULT_FRAME = /^(exc_page_fault|do_user_addr_fault|handle_mm_fault|do_page_fault|filemap_fault|__do_fault)\b/;
/** The first frame of a GPU or accelerator driver module in a kernel stack: "nvidia", "amdgpu", "i915", "drm". */
const DRIVER_FRAME = /\[(nvidia\w*|amdgpu|radeon|i915|xe|nouveau|drm\w*|habanalabs|mali\w*)\]|^(drm_\w+|dma_fence_\w+)/;

function driverFrame(t: ThreadSample): string | null {
  for (const frame of t.kernelStack ?? []) {
    const m = DRIVER_FRAME.exec(frame);
    if (m !== null) return m[1] !== undefined ? `the ${m[1]} driver` : `the DRM layer (${m[2]})`;
  }
  return null;
}

/** The row of KERNEL_WAITS that the wait channel or the kernel stack matches, or 'fault' for a page fault under any call. */
type KernelWaitRow = (typeof KERNEL_WAITS)[number];
/** The row each wait channel matched: few distinct channels exist, and every still thread asks. */
const rowOfWchan = new Map<string, KernelWaitRow | null>();

function kernelWait(thread: ThreadSample): KernelWaitRow | 'fault' | null {
  if (thread.wchan !== undefined) {
    let row = rowOfWchan.get(thread.wchan);
    if (row === undefined) {
      // Compiler clones keep the name before the dot: "__mutex_lock.constprop.0".
      const wchan = thread.wchan.replace(/\..*$/, '');
      row = KERNEL_WAITS.find((r) => r[0].test(wchan)) ?? null;
      if (rowOfWchan.size < 4096) rowOfWchan.set(thread.wchan, row);
    }
    if (row !== null) return row;
  }
  const stack = thread.kernelStack;
  if (stack === undefined) return null;
  if (stack.some((frame) => FAULT_FRAME.test(frame))) return 'fault';
  for (const frame of stack) {
    const name = frame.replace(/[+.].*$/, '');
    for (const row of KERNEL_WAITS) if (row[0].test(name)) return row;
  }
  return null;
}

export function kernelWaitHint(thread: ThreadSample): string | null {
  const row = kernelWait(thread);
  if (row === null) return null;
  if (row === 'fault') {
    return `it is in a page fault (${thread.blockedIn !== null ? `during ${thread.blockedIn.call}, ` : ''}touching memory that must be read in): it waits for storage, swap or a network file system; it ends when that I/O completes`;
  }
  return row[2](thread);
}

/** What the kernel's view says the thread waits for, when it says more than the call. */
export function kernelWaitKind(thread: ThreadSample): KernelWaitKind | null {
  const row = kernelWait(thread);
  return row === null ? null : row === 'fault' ? 'io' : row[1];
}
