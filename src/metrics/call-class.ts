/**
 * What a blocked thread waits for, in the few classes a dashboard can show: the analysis's own
 * classification (src/analyze/calls: event waits, timed sleeps, child waits, GPU driver calls),
 * with its catch-all "block" split into locks and I/O so a deadlock and a stuck read look
 * different. A fixed set of label values: the cardinality stays bounded whatever the call.
 */
import { isDriverCall, waitClass } from '../analyze/calls';
import type { ThreadSample } from '../types';

export const CALL_CLASSES = ['event_wait', 'sleep', 'child', 'lock', 'io', 'driver', 'other'] as const;
export type CallClass = (typeof CALL_CLASSES)[number];

/** Linux futexes and file locks; Darwin pthread (psynch) and os_unfair_lock (ulock) waits. */
const LOCK_CALLS = new Set([
  'futex',
  'futex_waitv',
  'futex_wait',
  'flock',
  'psynch_mutexwait',
  'psynch_cvwait',
  'psynch_rw_rdlock',
  'psynch_rw_wrlock',
  'ulock_wait',
  'ulock_wait2',
  'sem_wait',
  'semop',
  'semtimedop',
]);

/** Reads, writes, opens, syncs and socket traffic on both platforms. */
const IO_CALLS = new Set([
  'read',
  'write',
  'readv',
  'writev',
  'pread64',
  'pwrite64',
  'preadv',
  'pwritev',
  'preadv2',
  'pwritev2',
  'pread',
  'pwrite',
  'read_nocancel',
  'write_nocancel',
  'pread_nocancel',
  'pwrite_nocancel',
  'readv_nocancel',
  'writev_nocancel',
  'recvfrom',
  'recvmsg',
  'recvmmsg',
  'sendto',
  'sendmsg',
  'sendmmsg',
  'recvfrom_nocancel',
  'recvmsg_nocancel',
  'sendto_nocancel',
  'sendmsg_nocancel',
  'connect',
  'connect_nocancel',
  'open',
  'openat',
  'openat2',
  'open_nocancel',
  'openat_nocancel',
  'close',
  'close_nocancel',
  'fsync',
  'fdatasync',
  'fsync_nocancel',
  'sync',
  'syncfs',
  'sync_file_range',
  'splice',
  'tee',
  'sendfile',
  'copy_file_range',
  'ioctl',
  'fcntl',
  'fcntl_nocancel',
]);

/** The class of what a blocked thread is in; null when it is not blocked in a known call. */
export function callClassOf(thread: ThreadSample): CallClass | null {
  const blocked = thread.blockedIn;
  if (blocked === null || thread.state === 'running' || thread.state === 'runnable') return null;
  if (isDriverCall(thread)) return 'driver';
  switch (waitClass(blocked.call)) {
    case 'event':
      return 'event_wait';
    case 'sleep':
      return 'sleep';
    case 'child':
      return 'child';
    default:
      if (LOCK_CALLS.has(blocked.call)) return 'lock';
      if (IO_CALLS.has(blocked.call)) return 'io';
      return 'other';
  }
}
