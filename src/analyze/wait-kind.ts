/**
 * What a still thread waits for, from everything one sample says about it: the call and the
 * file it waits on, the kernel's wait channel and stack, and the user stack when one was
 * taken (signatures.ts). The rules (thread-rules.ts) judge the kind, not the call.
 */
import type { BlockedIn, ThreadSample } from '../types';

import { kernelWaitKind, waitClass } from './calls';
import type { SignatureMatch } from './signatures';

export type WaitKind =
  /** Waiting for the next event: epoll/poll/select/kevent, accept, a read on an event device (/dev/fuse, a tty, inotify, eventfd). */
  | 'event'
  /** A runtime scheduler or a pool parked between jobs (from the stack). */
  | 'park'
  /** A timed sleep. */
  | 'sleep'
  /** Waiting for a child process. */
  | 'child'
  /** Acquiring a lock (from the stack, or a kernel lock from the kernel's view). */
  | 'lock'
  /** Waiting for a thread of the same process to exit. */
  | 'join'
  /** Waiting for another process: the other end of a pipe, a fifo or a socket, or a server's reply. */
  | 'peer'
  /** Storage: a page, a buffer, a filesystem. */
  | 'io'
  /** A futex, condition variable or semaphore, with nothing known about who would end it. */
  | 'condition'
  /** Any other blocking call (an ioctl on a device that is no GPU, a write to a file…). */
  | 'block'
  /** The call is not known (a 'basic' sample, or no permission to read it). */
  | 'unknown';

/** Reads on these wait for an event, not for a peer: FUSE requests, terminal input, tun packets, inotify, eventfd, signalfd, timerfd. */
const EVENT_SOURCE = /^(\/dev\/(fuse|net\/tun|tty\w*|pts\/\d+|input\/.*|uinput|vhost-.*)|anon_inode:(inotify|\[eventfd\]|\[signalfd\]|\[timerfd\]|\[fanotify\]|\[userfaultfd\]|\[pidfd\]))$/;
/** Targets of a transfer that another process serves: a pipe or fifo, a socket. */
const PEER_TARGET = /^(pipe:|socket:|\/.*\.sock$)/;

/** Calls by what a wait in them can be, before the kernel's view is asked (one lookup a thread: this runs for every still thread). */
const CALL_KIND = new Map<string, 'condition' | 'lock' | 'read' | 'transfer'>([
  // Darwin names the mutex wait apart from the condition wait: psynch_mutexwait is pthread_mutex_lock blocking.
  ...['psynch_mutexwait', '__psynch_mutexwait', 'psynch_rw_rdlock', 'psynch_rw_wrlock', 'psynch_rw_longrdlock', 'psynch_rw_yieldwrlock'].map(
    (call): [string, 'lock'] => [call, 'lock'],
  ),
  ...['futex', 'futex_time64', 'futex_wait', 'futex_waitv', 'semop', 'semtimedop', 'ulock_wait', 'ulock_wait2', '__ulock_wait', '__ulock_wait2'].map(
    (call): [string, 'condition'] => [call, 'condition'],
  ),
  ...['psynch_cvwait', '__psynch_cvwait', 'semaphore_wait_trap', 'semaphore_timedwait_trap'].map(
    (call): [string, 'condition'] => [call, 'condition'],
  ),
  ...['read', 'readv', 'pread64', 'preadv', 'preadv2', 'recvfrom', 'recvmsg', 'recvmmsg', 'read_nocancel', 'recvfrom_nocancel', 'recvmsg_nocancel'].map(
    (call): [string, 'read'] => [call, 'read'],
  ),
  ...['write', 'writev', 'pwrite64', 'pwritev', 'pwritev2', 'sendto', 'sendmsg', 'sendmmsg', 'splice', 'tee', 'sendfile', 'connect', 'write_nocancel', 'sendto_nocancel', 'sendmsg_nocancel', 'connect_nocancel'].map(
    (call): [string, 'transfer'] => [call, 'transfer'],
  ),
]);

export function waitKindOf(t: ThreadSample, match: SignatureMatch | null): WaitKind {
  if (match !== null) return match.signature.kind;
  const blocked = t.blockedIn;
  if (blocked === null) return kernelWaitKind(t) ?? 'unknown';
  if (blocked.joining !== undefined && blocked.joining !== t.tid) return 'join';
  const cls = waitClass(blocked.call);
  // poll/select of a client on its only connection: it waits for the process at the other end.
  if (cls === 'event' && blocked.peer?.inferred === true) return 'peer';
  // restart_syscall resumes a poll as well as a sleep (after a stop): the wait channel tells which.
  if (blocked.call === 'restart_syscall') return kernelWaitKind(t) ?? cls;
  if (cls !== 'block') return cls;
  const call = CALL_KIND.get(blocked.call);
  // A futex: a lock when the operation says so (a PI lock; FUTEX_WAIT expecting 2, glibc's and Go's
  // "locked, with waiters"), else a condition, semaphore or join: the kernel's view says no more.
  if (call === 'condition') return isLockWord(blocked.futex) ? 'lock' : 'condition';
  if (call === 'lock') return 'lock';
  if (call === 'read' && blocked.target !== undefined && EVENT_SOURCE.test(blocked.target)) return 'event';
  const kernel = kernelWaitKind(t);
  if (kernel !== null) return kernel;
  if (call !== undefined && (blocked.target === undefined || PEER_TARGET.test(blocked.target))) return 'peer';
  return 'block';
}

/** Waits whose meaning only a stack can tell: an idle park and a deadlock look alike from the kernel. */
export function needsStack(kind: WaitKind): boolean {
  return kind === 'condition' || kind === 'event' || kind === 'peer' || kind === 'block';
}

/** A futex wait that is a lock acquisition by its operation: PI locks, and FUTEX_WAIT on a word holding 2. */
export function isLockWord(futex: BlockedIn['futex']): boolean {
  if (futex === undefined) return false;
  return futex.op === 'lock_pi' || futex.op === 'lock_pi2' || (futex.op === 'wait' && futex.value === 2);
}
