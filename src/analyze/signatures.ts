/**
 * What a thread waits for, told by its user stack. The kernel's view of a wait (futex, a read
 * on a socket, epoll_wait) is the same for an idle runtime thread and a deadlocked one; the
 * functions on the stack above the system call are not. Each row names functions that, when
 * they are among the innermost frames of a thread that sits still, say what it waits for,
 * with the reason and a real stack it was taken from (all seen on Debian 12, x86-64, with
 * `iokit-snap threads PID --stacks`).
 *
 * Rows are ordered: the first row (in table order) that matches any of the innermost frames
 * wins, wherever the frame is, so a lock manager's sleep beats the latch wait it sleeps in.
 */
import type { Frame } from '../types';

/** What a signature says the thread waits for. */
export type SignatureKind =
  /** Acquiring a lock: a mutex, a monitor, a database lock. Two of them still for the stall window is a deadlock candidate. */
  | 'lock'
  /** A runtime's scheduler or a pool parked between jobs: idle by design. */
  | 'park'
  /** An event loop waiting for its next event: idle. */
  | 'event'
  /** A timed sleep: it wakes by itself. */
  | 'sleep'
  /** Waiting for a thread to exit. */
  | 'join'
  /** A condition or semaphore wait that no row names better: what would end it is not known from the stack. */
  | 'condition'
  /** A client waiting for its server's reply: judged by the server. */
  | 'peer';

export interface Signature {
  /** Short name, shown in findings: "glibc mutex", "JVM monitor enter". */
  name: string;
  kind: SignatureKind;
  /** Function names (as the symbol tables give them, without C++ parameters and compiler suffixes). */
  functions: readonly string[];
  /** Only frames this many from the innermost count. */
  depth: number;
  reason: string;
  /** A real stack, innermost first, where the row was seen. */
  example: string;
}

/** The table. Order matters: earlier rows win. */
export const SIGNATURES: readonly Signature[] = [
  // --- Lock acquisition -------------------------------------------------------------------
  {
    name: 'glibc mutex',
    kind: 'lock',
    functions: [
      '__lll_lock_wait',
      '__lll_lock_wait_private',
      '__lll_robust_lock_wait',
      'pthread_mutex_lock',
      '___pthread_mutex_lock',
      '__pthread_mutex_lock',
      '__pthread_mutex_lock_full',
      'pthread_mutex_timedlock',
      '__pthread_mutex_clocklock_common',
      '___pthread_rwlock_rdlock',
      '___pthread_rwlock_wrlock',
      'pthread_rwlock_rdlock',
      'pthread_rwlock_wrlock',
      '__pthread_rwlock_rdlock_full64',
      '__pthread_rwlock_wrlock_full64',
    ],
    depth: 4,
    reason: 'pthread_mutex_lock and the rwlock locks wait in futex only when another thread holds the lock',
    example: 'futex ← __lll_lock_wait ← pthread_mutex_lock ← worker (test/targets/target.c deadlock)',
  },
  {
    name: 'JVM monitor enter',
    kind: 'lock',
    functions: [
      'ObjectMonitor::EnterI',
      'ObjectMonitor::ReenterI',
      'ObjectMonitor::enter',
      'ObjectSynchronizer::enter',
      'InterpreterRuntime::monitorenter',
      'SharedRuntime::complete_monitor_locking_C',
    ],
    depth: 8,
    reason:
      'a Java thread entering a synchronized block or method whose monitor another thread owns; the responsible waiter re-parks with a timeout (up to 1 s), so it wakes and waits again without progress',
    example:
      'futex ← pthread_cond_timedwait ← os::PlatformEvent::park(long) ← ObjectMonitor::EnterI ← ObjectMonitor::enter ← ObjectSynchronizer::enter ← InterpreterRuntime::monitorenter (OpenJDK 17, two threads, two monitors)',
  },
  {
    name: 'PostgreSQL lock manager',
    kind: 'lock',
    functions: ['ProcSleep', 'WaitOnLock', 'LockAcquireExtended', 'XactLockTableWait', 'LockTuple', 'ProcWaitForSignal', 'LWLockAcquire', 'LWLockAcquireOrWait', 'LWLockWaitForVar', 'ConditionVariableSleep'],
    depth: 10,
    reason: 'a backend waiting for a heavyweight lock (a row, a table) or a lightweight lock held by another backend',
    example: 'epoll_wait ← WaitEventSetWait ← WaitLatch ← ProcSleep ← … ← LockAcquireExtended ← XactLockTableWait ← heap_update (UPDATE of a row another open transaction updated)',
  },
  {
    name: 'InnoDB lock wait',
    kind: 'lock',
    functions: ['lock_wait_suspend_thread', 'lock_wait', 'srv_suspend_thread', 'os_event_wait_low'],
    depth: 8,
    reason: 'a MySQL/MariaDB connection thread waiting for a row lock (innodb_lock_wait_timeout ends it)',
    example: 'futex ← pthread_cond_wait ← os_event::wait_low ← lock_wait_suspend_thread ← row_mysql_handle_errors',
  },
  {
    name: 'Go runtime lock',
    kind: 'lock',
    functions: ['runtime.lock2', 'runtime.lockWithRank', 'runtime.lock'],
    depth: 4,
    reason: "an M waiting for one of the Go runtime's own locks (sched, a channel's lock), which is held only briefly when the runtime is well",
    example: 'runtime.futex ← runtime.futexsleep ← runtime.lock2 ← runtime.lockWithRank',
  },
  // --- Joins -----------------------------------------------------------------------------------
  {
    name: 'pthread_join',
    kind: 'join',
    functions: ['__pthread_clockjoin_ex', 'pthread_join', '___pthread_join', '__pthread_timedjoin_ex'],
    depth: 4,
    reason: 'waiting for another thread to exit: judged by that thread',
    example: 'futex ← __futex_abstimed_wait_common ← __pthread_clockjoin_ex ← CallJavaMainInNewThread (the JVM launcher thread)',
  },
  // --- Clients waiting for their server ----------------------------------------------------------
  {
    name: 'database client',
    kind: 'peer',
    functions: ['PQgetResult', 'PQexec', 'PQexecParams', 'pqWait', 'pqWaitTimed', 'mysql_real_query', 'mysql_read_query_result', 'cli_safe_read', 'redisGetReply', 'redisBufferRead'],
    depth: 10,
    reason: 'a client library waiting for the reply to a query: it is as stuck as the server is',
    example: 'poll ← (libpq) ← PQgetResult ← psql (a query waiting for a row lock, or a long computation)',
  },
  // --- Timed sleeps -----------------------------------------------------------------------------
  {
    name: 'timed sleep',
    kind: 'sleep',
    functions: ['JavaThread::sleep', 'JVM_Sleep', 'pg_sleep', 'pg_usleep', 'pysleep', 'time_sleep', 'usleep', 'sleep'],
    depth: 6,
    reason: 'a sleep for a set time: it wakes by itself',
    example: 'futex ← pthread_cond_timedwait ← os::PlatformEvent::park(long) ← JavaThread::sleep ← JVM_Sleep (Thread.sleep)',
  },
  // --- Runtime schedulers and pools parked between jobs -------------------------------------------
  {
    name: 'Go scheduler park',
    kind: 'park',
    functions: [
      'runtime.notesleep',
      'runtime.notetsleep',
      'runtime.notetsleep_internal',
      'runtime.notetsleepg',
      'runtime.stopm',
      'runtime.findRunnable',
      'runtime.findrunnable',
      'runtime.schedule',
      'runtime.park_m',
      'runtime.sysmon',
      'runtime.usleep',
      'runtime.templateThread',
      'runtime.stoplockedm',
      'runtime.startlockedm',
      'runtime.gcBgMarkWorker',
    ],
    depth: 6,
    reason:
      "an OS thread (M) of a Go program with nothing to run: Go parks idle Ms in futex, and any M can be the main thread (tid = pid): a goroutine's wait is not visible on an M's stack",
    example: 'runtime.futex ← runtime.futexsleep ← runtime.notesleep ← runtime.stopm ← runtime.findRunnable ← runtime.schedule (an idle net/http server)',
  },
  {
    name: 'JVM park',
    kind: 'park',
    functions: [
      'Parker::park',
      'Unsafe_Park',
      'ObjectMonitor::wait',
      'JVM_MonitorWait',
      'Monitor::wait',
      'Monitor::wait_without_safepoint_check',
      'os::PlatformMonitor::wait',
      'PosixSemaphore::wait',
      'GangWorker::loop',
      'JVM_WaitForReferencePendingList',
      'CompileQueue::get',
      'os::signal_wait',
    ],
    depth: 6,
    reason:
      'a JVM thread parked by LockSupport.park (pool workers in getTask, java.util.concurrent waits), Object.wait, or a VM-internal monitor (GC, compiler, service threads): their waits are idle; a java.util.concurrent lock also parks here, and its Java frames are not read',
    example: 'futex ← pthread_cond_wait ← Parker::park ← Unsafe_Park ← (Java: ThreadPoolExecutor.getTask) (an idle ExecutorService worker)',
  },
  {
    name: 'PostgreSQL latch wait',
    kind: 'park',
    functions: ['WaitLatch', 'WaitLatchOrSocket', 'CheckpointerMain', 'BackgroundWriterMain', 'WalWriterMain', 'AutoVacLauncherMain', 'ApplyLauncherMain', 'PgArchiverMain', 'WalSndLoop', 'WalReceiverMain'],
    depth: 6,
    reason: "a PostgreSQL auxiliary process waiting on its latch for the next job; a backend's lock waits match the lock-manager row first",
    example: 'epoll_wait ← WaitEventSetWait ← WaitLatch ← CheckpointerMain (the checkpointer, idle)',
  },
  {
    name: 'worker pool',
    kind: 'park',
    functions: [
      '_queue_SimpleQueue_get_impl',
      'bioProcessBackgroundJobs',
      'ngx_thread_pool_cycle',
      'uv_cond_wait',
      'node::TaskQueue::BlockingPop',
      'node::PlatformWorkerThread',
      'v8::base::ConditionVariable::Wait',
      'g_thread_pool_wait_for_new_task',
      'g_async_queue_pop_intern_unlocked',
    ],
    depth: 6,
    reason: 'a pool thread waiting on its queue for the next job: CPython ThreadPoolExecutor workers, libuv and V8 worker threads, redis bio threads, nginx thread pools, GLib pools',
    example: 'futex ← __new_sem_wait_slow64 ← PyThread_acquire_lock_timed ← _queue_SimpleQueue_get_impl (an idle ThreadPoolExecutor worker)',
  },
  // --- Event loops ------------------------------------------------------------------------------
  {
    name: 'event loop',
    kind: 'event',
    functions: [
      'aeMain',
      'aeProcessEvents',
      'uv__io_poll',
      'uv_run',
      'ngx_process_events_and_timers',
      'ngx_epoll_process_events',
      'event_base_loop',
      'g_main_loop_run',
      'g_main_context_iterate',
      'secure_read',
      'pq_getbyte',
      'ReadCommand',
      'ServerLoop',
      'runtime.netpoll',
      'runtime.epollwait',
      'fuse_session_loop',
      'fuse_session_loop_mt',
      'fuse_session_receive_buf',
      'fuse_do_work',
      'fuse_loop_worker',
    ],
    depth: 8,
    reason: 'an event loop waiting for its next event (redis, libuv/Node, nginx, libevent, GLib, a PostgreSQL backend waiting for its client, the Go netpoller, a FUSE session reading /dev/fuse)',
    example: 'epoll_wait ← (aeProcessEvents) ← aeMain ← main (redis-server, idle)',
  },
  // --- Waits that say no more than the call ------------------------------------------------------
  {
    name: 'condition wait',
    kind: 'condition',
    functions: [
      'pthread_cond_wait',
      '___pthread_cond_wait',
      'pthread_cond_timedwait',
      '___pthread_cond_timedwait',
      '__pthread_cond_wait_common',
      'pthread_cond_clockwait',
      'sem_wait',
      '__new_sem_wait_slow64',
      'sem_timedwait',
      'sem_clockwait',
      'PyThread_acquire_lock_timed',
    ],
    depth: 4,
    reason:
      'a condition variable or semaphore wait that no row above names: what would end it is not known (CPython Lock.acquire, Condition.wait, queue.get and join all wait here, so a CPython deadlock is told only by the whole process standing still)',
    example: 'futex ← __new_sem_wait_slow64 ← PyThread_acquire_lock_timed ← acquire_timed ← lock_PyThread_acquire_lock (CPython, any of them)',
  },
];

/** A function name as the rows write it: no C++ parameters or qualifiers, no compiler or ABI suffixes. */
export function functionName(symbol: string): string {
  // A C++ parameter list ends the name ("ObjectMonitor::EnterI(JavaThread*)", "…() const");
  // Go's receivers are inside it ("sync.(*Mutex).Lock") and stay.
  let name = symbol.endsWith(')') || symbol.endsWith(') const') ? symbol.replace(/\((?:[^()]|\([^()]*\))*\)(?: const)?$/, '') : symbol;
  // GCC clones (.constprop.0, .isra.0, .part.0, .cold), Go ABI wrappers (.abi0), symbol versions (@GLIBC_2.34).
  return name.replace(/(\.(constprop|isra|part|cold|lto_priv|abi0|abiinternal)(\.\d+)?)+$|@.*$/, '');
}

const BY_FUNCTION = new Map<string, { row: number; depth: number }>();
SIGNATURES.forEach((signature, row) => {
  for (const fn of signature.functions) if (!BY_FUNCTION.has(fn)) BY_FUNCTION.set(fn, { row, depth: signature.depth });
});
const MAX_DEPTH = Math.max(...SIGNATURES.map((s) => s.depth));

/** The row that matched and the frame that matched it (innermost first, as on the stack). */
export interface SignatureMatch {
  signature: Signature;
  /** The index of the matching frame. */
  frame: number;
  /** The matching function. */
  function: string;
}

/** One classification per stack array: a snapshot's threads are judged again by every compare(). */
const matched = new WeakMap<readonly Frame[], SignatureMatch | null>();

/** What the stack says the thread waits for, or null when no row matches (or no frame is named). */
export function matchSignature(stack: readonly Frame[]): SignatureMatch | null {
  const known = matched.get(stack);
  if (known !== undefined) return known;
  let best: SignatureMatch | null = null;
  let bestRow = SIGNATURES.length;
  const depth = Math.min(stack.length, MAX_DEPTH);
  for (let i = 0; i < depth; i++) {
    const symbol = stack[i].symbol;
    if (symbol === undefined || symbol === null) continue;
    const name = functionName(symbol);
    const hit = BY_FUNCTION.get(name);
    if (hit !== undefined && i < hit.depth && hit.row < bestRow) {
      bestRow = hit.row;
      best = { signature: SIGNATURES[hit.row], frame: i, function: name };
    }
  }
  matched.set(stack, best);
  return best;
}

/** The innermost named frames, for a finding: "ObjectMonitor::EnterI ← ObjectMonitor::enter ← InterpreterRuntime::monitorenter". */
export function topFrames(stack: readonly Frame[], count = 4): string {
  const names: string[] = [];
  for (const frame of stack) {
    if (names.length === count) break;
    if (frame.symbol !== undefined && frame.symbol !== null) names.push(functionName(frame.symbol));
    else if (frame.module !== null) names.push(`${frame.module.replace(/^.*\//, '')}+0x${(frame.offset ?? 0).toString(16)}`);
  }
  return names.join(' ← ');
}
