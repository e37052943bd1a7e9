/**
 * Whether `kill -9` ends a thread's uninterruptible (D) wait.
 *
 * /proc shows two different kernel sleeps as `D`: TASK_UNINTERRUPTIBLE, which no signal
 * ends, and TASK_KILLABLE (TASK_UNINTERRUPTIBLE | TASK_WAKEKILL), which SIGKILL ends at
 * once. The state letter cannot tell them apart: `__task_state_index()` masks the state
 * with TASK_REPORT, which has no TASK_WAKEKILL bit, and it reports a task frozen by the
 * cgroup v1 freezer (TASK_FROZEN) as `D` too. Nothing else in /proc carries the bit, and
 * no signal can probe it without killing. What user space can read is where the thread
 * sleeps: its wait channel (wchan) and, as root, its kernel stack; which wait it is says
 * which sleep the kernel chose. That is the table below, one row per wait with its reason,
 * a real example and what proves it (test/killable.test.ts puts real processes in
 * each proven wait, kills them and checks whether they ended).
 *
 * Two facts decide before the table: a thread still in D with SIGKILL already pending
 * (/proc/<pid>/task/<tid>/status SigPnd, readKillPending()) was killed and did not end;
 * and a thread that the kernel's hung_task detector reported ("INFO: task … blocked for
 * more than N seconds") is in a plain TASK_UNINTERRUPTIBLE sleep, because the detector
 * skips TASK_KILLABLE, TASK_IDLE and TASK_FROZEN tasks (kernel/hung_task.c).
 *
 * Live stacks (/proc/<pid>/task/<tid>/stack) leave out every function in the scheduler's
 * text section (stack_trace_save_tsk skips in_sched_functions()): schedule(), the mutex,
 * rwsem, semaphore and completion functions, killable or not. So a thread waiting for a
 * kernel lock shows its caller on top (iterate_dir, walk_component…), and the table names
 * those callers. Hung-task and sysrq-w dumps print the whole trace; there the lock
 * functions themselves decide (mutex_lock is uninterruptible, mutex_lock_killable is not).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ReportFormat, ThreadSample } from '../types';

export type Killability = 'killable' | 'unkillable' | 'unknown';

export interface KillableVerdict {
  killability: Killability;
  /**
   * What decided: the thread's state (not in D), a SIGKILL already pending, the hung_task
   * detector's report, a frame of the kernel stack, the wait channel, or nothing.
   */
  by: 'state' | 'kill-pending' | 'hung-task' | 'stack' | 'wchan' | 'none';
  /** The kernel function that decided ("iterate_dir"), without offset or compiler suffix. */
  frame?: string;
  /** Why, in words a finding can quote. */
  reason: string;
  /** What ends the wait where kill -9 does not (or may not). */
  endsWhen?: string;
}

/** What the caller knows beyond the thread sample. */
export interface KillableContext {
  /** SIGKILL is pending for the thread (readKillPending): it was killed and is still in D. */
  killPending?: boolean;
  /** The format of the report the thread was imported from: 'hung-task' with heldMs set means the hung_task detector named it. */
  reportFormat?: ReportFormat;
}

export interface KillableRow {
  /** Kernel functions as /proc/<pid>/stack, wchan and dmesg traces name them (no offset, no .constprop/.isra/.part suffix). */
  functions: readonly string[];
  /**
   * pass: a wait primitive whose sleep state is its caller's choice; the next frame out decides.
   * frozen: a sleep that is always interruptible and freezable (S), so seen in D it was frozen in place.
   */
  verdict: Killability | 'pass' | 'frozen';
  /** Only when the frames passed on the way here include one of these (the primitive the caller slept in). */
  via?: readonly string[];
  reason: string;
  endsWhen?: string;
  /** A real situation in which a thread sleeps here. */
  example: string;
  /** The test that puts a real process in this wait and kills it, or the kernel source the row is read from. */
  proof: string;
}

const PAGE_WAIT = ['folio_wait_bit_common', 'wait_on_page_bit_common'];
const FROZEN_ENDS = 'it is thawed (freezer.state THAWED in its cgroup v1 freezer); the kill then takes effect';
const LOCK_ENDS = 'the task holding the lock lets go (often one itself waiting for a file system or device)';

/** First match wins; the frames are walked innermost first. */
export const KILLABLE_ROWS: readonly KillableRow[] = [
  {
    functions: [
      '__schedule',
      'schedule',
      'schedule_timeout',
      'schedule_preempt_disabled',
      'io_schedule',
      'io_schedule_timeout',
      'schedule_hrtimeout',
      'schedule_hrtimeout_range',
      'schedule_hrtimeout_range_clock',
      '__mutex_lock',
      '__mutex_lock_common',
      '__ww_mutex_lock',
      'rwsem_down_read_slowpath',
      'rwsem_down_write_slowpath',
      '__down_common',
      'do_wait_for_common',
      '__wait_for_common',
      'wait_for_common',
      'wait_for_common_io',
      'wait_for_completion_state',
      '__wait_on_bit',
      '__wait_on_bit_lock',
      'out_of_line_wait_on_bit',
      'out_of_line_wait_on_bit_lock',
      'bit_wait',
      'bit_wait_io',
      'wait_woken',
      ...PAGE_WAIT,
    ],
    verdict: 'pass',
    reason: 'a wait primitive that sleeps in whatever state its caller asks for',
    example: 'folio_wait_bit_common, below filemap_read (killable) or folio_wait_writeback (not)',
    proof: 'source: mm/filemap.c folio_wait_bit_common(folio, bit, state, behavior); kernel/locking/rwsem.c rwsem_down_read_slowpath(sem, count, state)',
  },
  {
    functions: ['kernel_clone', '_do_fork', 'do_fork', 'wait_for_vfork_done'],
    verdict: 'killable',
    reason: 'a vfork parent waits for its child to exec or exit in wait_for_vfork_done, a TASK_KILLABLE sleep',
    example: 'the parent of vfork() or posix_spawn() while the child has not yet exec’d (the child sleeps, or execs a binary on a hung mount)',
    proof: 'test/killable.test.ts: a vfork parent whose child sleeps (D, wchan kernel_clone) ends at once on SIGKILL',
  },
  {
    functions: ['filemap_get_pages', 'filemap_read', 'filemap_update_page', 'filemap_read_folio', 'filemap_fault', '__folio_lock_or_retry'],
    via: PAGE_WAIT,
    verdict: 'killable',
    reason: 'a read or a page fault waits for a page being read in with a killable page lock wait (folio_put_wait_locked(TASK_KILLABLE), __folio_lock_killable, folio_wait_locked_killable)',
    example: 'read(2) or an mmap page fault on a FUSE file whose daemon does not answer, or on a slow disk',
    proof: 'test/killable.test.ts: a reader and an mmap page fault on a FUSE mount whose daemon never answers end at once on SIGKILL',
  },
  {
    functions: ['folio_wait_writeback', 'folio_wait_stable', 'wait_on_page_writeback', '__filemap_fdatawait_range'],
    via: PAGE_WAIT,
    verdict: 'unkillable',
    reason: 'it waits for a page’s writeback to finish (folio_wait_bit, TASK_UNINTERRUPTIBLE)',
    endsWhen: 'the write to the device or file server completes or fails',
    example: 'fsync(2) or truncate of a file whose dirty pages the disk or a FUSE/NFS server does not take',
    proof: 'source: mm/page-writeback.c folio_wait_writeback → folio_wait_bit(folio, PG_writeback), TASK_UNINTERRUPTIBLE',
  },
  {
    functions: ['__folio_lock', 'folio_wait_bit', '__lock_page', 'wait_on_page_bit', 'migration_entry_wait_on_locked'],
    verdict: 'unkillable',
    reason: 'it waits for a page lock in TASK_UNINTERRUPTIBLE (folio_lock, not folio_lock_killable)',
    endsWhen: 'the page is unlocked: the read or write holding it completes or fails',
    example: 'opening a FUSE file (fuse_open → invalidate_inode_pages2_range) while an earlier read of it is unanswered',
    proof: 'test/killable.test.ts: an open on a FUSE mount behind an unanswered read stays in D after SIGKILL, until the daemon dies',
  },
  {
    functions: ['request_wait_answer'],
    verdict: 'unknown',
    reason:
      'it waits for a FUSE daemon’s answer; in D, kill -9 ends the wait only while the daemon has not yet read the request: once the daemon holds it, a killed caller stays in D',
    endsWhen: 'the daemon answers, dies, or the connection is aborted (echo 1 > /sys/fs/fuse/connections/N/abort)',
    example: 'read(2) of a direct_io FUSE file, or a create, whose daemon hangs in its handler',
    proof:
      'test/killable.test.ts: a direct_io reader waits in S, in D after a handled signal, and stays in D after SIGKILL until the daemon dies (fs/fuse/dev.c: wait_event_interruptible, then wait_event_killable, then wait_event once the request is sent)',
  },
  {
    functions: ['iterate_dir'],
    verdict: 'killable',
    reason: 'listing a directory takes its inode lock with down_read_killable (or down_write_killable)',
    endsWhen: LOCK_ENDS,
    example: 'ls of a FUSE or NFS directory while a create in it hangs',
    proof: 'test/killable.test.ts: getdents on a FUSE directory whose lock a hung create holds ends at once on SIGKILL',
  },
  {
    functions: ['walk_component', 'lookup_slow', 'path_openat', 'open_last_lookups', 'filename_create', 'do_renameat2', 'lock_rename', 'do_unlinkat', 'do_rmdir'],
    verdict: 'unkillable',
    reason: 'a path lookup, create, rename or unlink takes the directory’s inode lock with inode_lock or inode_lock_shared (down_write/down_read, TASK_UNINTERRUPTIBLE)',
    endsWhen: LOCK_ENDS,
    example: 'stat, open(O_CREAT), mkdir or rename in a FUSE or NFS directory while a create in it hangs',
    proof: 'test/killable.test.ts: stat, touch, mkdir and mv in a FUSE directory whose lock a hung create holds stay in D after SIGKILL, until the daemon dies',
  },
  {
    functions: ['percpu_rwsem_wait', '__percpu_down_read', 'percpu_down_write'],
    verdict: 'unkillable',
    reason: 'it waits for a frozen file system (sb_start_write: percpu_rwsem_wait, TASK_UNINTERRUPTIBLE)',
    endsWhen: 'the file system is thawed (fsfreeze -u, or the snapshot tool finishes)',
    example: 'a write to a file system frozen with fsfreeze -f (a backup or LVM snapshot)',
    proof: 'test/killable.test.ts: an open for writing on a frozen ext4 stays in D after SIGKILL until fsfreeze -u',
  },
  {
    functions: ['mutex_lock', '__mutex_lock_slowpath', 'mutex_lock_nested', 'mutex_lock_io'],
    verdict: 'unkillable',
    reason: 'mutex_lock sleeps in TASK_UNINTERRUPTIBLE (only mutex_lock_killable and _interruptible do not)',
    endsWhen: LOCK_ENDS,
    example: 'a driver ioctl behind another that holds the device mutex (hung-task reports: __blkdev_get, uvm_gpu_retain_by_uuid)',
    proof: 'source: kernel/locking/mutex.c __mutex_lock_slowpath → __mutex_lock(lock, TASK_UNINTERRUPTIBLE, …)',
  },
  {
    functions: ['down_read', 'down_write', 'down_read_nested', 'down_write_nested', 'down', '__down'],
    verdict: 'unkillable',
    reason: 'down_read, down_write and down sleep in TASK_UNINTERRUPTIBLE (their _killable variants do not)',
    endsWhen: LOCK_ENDS,
    example: 'a page fault behind a task holding its process’s mmap lock for writing',
    proof: 'source: kernel/locking/rwsem.c down_read → __down_read_common(sem, TASK_UNINTERRUPTIBLE); kernel/locking/semaphore.c __down',
  },
  {
    functions: ['wait_for_completion', 'wait_for_completion_timeout', 'wait_for_completion_io', 'wait_for_completion_io_timeout'],
    verdict: 'unkillable',
    reason: 'wait_for_completion sleeps in TASK_UNINTERRUPTIBLE (wait_for_completion_killable does not)',
    endsWhen: 'the work it waits for completes (a device command, an RCU grace period, a flush)',
    example: 'synchronize_srcu in a kworker; submit_bio_wait for a disk that does not answer',
    proof: 'source: kernel/sched/completion.c wait_for_completion → wait_for_common(x, MAX_SCHEDULE_TIMEOUT, TASK_UNINTERRUPTIBLE)',
  },
  {
    functions: ['__refrigerator'],
    verdict: 'frozen',
    reason: 'it is frozen by the cgroup v1 freezer (or a system suspend): the freezer holds it in TASK_FROZEN, which /proc shows as D',
    endsWhen: FROZEN_ENDS,
    example: 'a poll, epoll or pipe wait in a cgroup whose freezer.state is FROZEN',
    proof: 'test/killable.test.ts: a frozen poll loop is in D (__refrigerator) and ends on SIGKILL only once thawed',
  },
  {
    functions: ['hrtimer_nanosleep', 'do_nanosleep', 'futex_do_wait', 'futex_wait_queue', 'futex_wait_queue_me'],
    verdict: 'frozen',
    reason: 'this sleep is always interruptible (S); seen in D it was frozen in place by the cgroup v1 freezer (TASK_FROZEN, which /proc shows as D)',
    endsWhen: FROZEN_ENDS,
    example: 'a sleeping or lock-waiting program in a cgroup whose freezer.state is FROZEN',
    proof: 'test/killable.test.ts: a frozen sleep (hrtimer_nanosleep) and a frozen mutex waiter (futex_do_wait) are in D and end on SIGKILL only once thawed',
  },
];

/** The kernel names its killable wait variants so: mutex_lock_killable, down_read_killable, __folio_lock_killable, rpc_wait_bit_killable… */
const KILLABLE_NAME = /_killable(?:_|$)/;
const KILLABLE_NAME_REASON =
  'the kernel’s killable waits are named *_killable (mutex_lock_killable, down_read_killable, wait_for_completion_killable, __folio_lock_killable, NFS’s rpc_wait_bit_killable): they sleep in TASK_KILLABLE, which SIGKILL wakes';

const BY_FUNCTION = new Map<string, KillableRow>();
for (const row of KILLABLE_ROWS) for (const fn of row.functions) if (!BY_FUNCTION.has(fn)) BY_FUNCTION.set(fn, row);

/** "folio_wait_bit_common+0x15d/0x360" → "folio_wait_bit_common"; "__mutex_lock.constprop.0" → "__mutex_lock". */
export function kernelFunctionName(text: string): string {
  return text.replace(/[+\s].*$/s, '').replace(/\.(?:constprop|isra|part|cold|llvm|lto_priv)(?:\.\w+)*$/, '');
}

/** A printed kernel frame: "[<ffffffff8170e16e>] ? schedule+0x35/0x80 [mod]", "[<c0882f18>] (__schedule) from […]", or a bare "name+0x1/0x2". */
function parseFrameText(text: string): { name: string; unreliable: boolean } | null {
  let rest = text.trim().replace(/^\[<[0-9a-f]+>\]\s*/i, '');
  const unreliable = rest.startsWith('? ');
  if (unreliable) rest = rest.slice(2);
  const arm = /^\(([^)\s]+)\)/.exec(rest);
  if (arm !== null) rest = arm[1];
  const name = kernelFunctionName(rest);
  return /^[A-Za-z_][\w.$]*$/.test(name) ? { name, unreliable } : null;
}

/** The thread's kernel frames, innermost first, without the `?` frames the unwinder could not confirm. */
function framesOf(thread: ThreadSample): { names: string[]; from: 'stack' | 'wchan' } | null {
  if (thread.kernelFrames !== undefined && thread.kernelFrames.length > 0) {
    const names = thread.kernelFrames.filter((f) => f.unreliable !== true && typeof f.symbol === 'string').map((f) => kernelFunctionName(f.symbol as string));
    if (names.length > 0) return { names, from: 'stack' };
  }
  if (thread.kernelStack !== undefined && thread.kernelStack.length > 0) {
    const names: string[] = [];
    for (const line of thread.kernelStack) {
      const frame = parseFrameText(line);
      if (frame !== null && !frame.unreliable) names.push(frame.name);
    }
    if (names.length > 0) return { names, from: 'stack' };
  }
  // "0" is what /proc/<pid>/wchan reads for a thread that is not asleep.
  if (thread.wchan !== undefined && thread.wchan !== '' && thread.wchan !== '0') return { names: [kernelFunctionName(thread.wchan)], from: 'wchan' };
  return null;
}

function verdictOf(row: KillableRow, by: 'stack' | 'wchan', frame: string): KillableVerdict {
  const verdict: KillableVerdict = {
    killability: row.verdict === 'frozen' ? 'unkillable' : (row.verdict as Killability),
    by,
    frame,
    reason: row.reason,
  };
  if (row.endsWhen !== undefined) verdict.endsWhen = row.endsWhen;
  return verdict;
}

/**
 * Whether SIGKILL ends `thread`'s wait. Threads not in D: an interruptible sleep or a
 * stop ends on SIGKILL; other states are 'unknown'. In D: see the file comment.
 */
export function killability(thread: ThreadSample, context: KillableContext = {}): KillableVerdict {
  if (thread.state !== 'uninterruptible') {
    if (thread.state === 'sleeping' || thread.state === 'stopped') {
      return { killability: 'killable', by: 'state', reason: `it is ${thread.state === 'sleeping' ? 'in an interruptible sleep (S)' : 'stopped (T)'}, which SIGKILL ends` };
    }
    return { killability: 'unknown', by: 'state', reason: `it is not in a kernel wait (state ${thread.state})` };
  }
  if (context.killPending === true) {
    return {
      killability: 'unkillable',
      by: 'kill-pending',
      reason: 'SIGKILL is already pending and it is still in D: it was killed and its wait did not end',
    };
  }
  if (context.reportFormat === 'hung-task' && thread.heldMs !== undefined && thread.heldMs !== null) {
    return {
      killability: 'unkillable',
      by: 'hung-task',
      reason: 'the kernel’s hung_task detector reported it, and it reports only TASK_UNINTERRUPTIBLE sleeps (it skips killable, idle and frozen ones)',
    };
  }
  const frames = framesOf(thread);
  if (frames === null) return { killability: 'unknown', by: 'none', reason: 'no kernel stack or wait channel was read (both need root or the same user)' };
  const passed: string[] = [];
  for (const name of frames.names) {
    const row = BY_FUNCTION.get(name);
    if (row !== undefined && (row.via === undefined || passed.some((p) => row.via!.includes(p)))) {
      if (row.verdict !== 'pass') return verdictOf(row, frames.from, name);
      passed.push(name);
      continue;
    }
    if (KILLABLE_NAME.test(name)) return { killability: 'killable', by: frames.from, frame: name, reason: KILLABLE_NAME_REASON };
    const why =
      passed.length > 0
        ? `${passed[passed.length - 1]} sleeps as its caller ${name} asks, and the table has no row for ${name}`
        : `the table has no row for the wait in ${name}`;
    return { killability: 'unknown', by: frames.from, frame: name, reason: `the kernel does not show whether SIGKILL ends this wait: ${why}` };
  }
  const last = passed[passed.length - 1];
  return {
    killability: 'unknown',
    by: frames.from,
    frame: last,
    reason:
      frames.from === 'wchan'
        ? `${last} sleeps as its caller asks, and only the kernel stack (root) names the caller`
        : `the stack ends in ${last}, which sleeps as its caller asks`,
  };
}

/**
 * Whether SIGKILL is pending for thread `tid` of `pid` (its SigPnd or the process's ShdPnd
 * in /proc/<pid>/task/<tid>/status), or null when the file cannot be read. The status
 * file takes no lock of the target's memory map, so it answers for a hung process too.
 */
export function readKillPending(pid: number, tid: number, procRoot = '/proc'): boolean | null {
  let text: string;
  try {
    text = readFileSync(path.join(procRoot, String(pid), 'task', String(tid), 'status'), 'latin1');
  } catch {
    return null;
  }
  const masks = [...text.matchAll(/^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$/gm)].map((m) => m[1]);
  if (masks.length === 0) return null;
  // Signal 9 is bit 8 of the mask: the third hex digit from the right.
  return masks.some((mask) => mask.length >= 3 && (Number.parseInt(mask[mask.length - 3], 16) & 0x1) !== 0);
}
