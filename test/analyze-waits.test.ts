/**
 * A thread that waits for the work of other threads is not hung (src/analyze/README.md,
 * "Waiting for other threads"): the main thread in pthread_join, or in a lock its workers
 * will release, while they progress. Synthetic snapshots for the combinations a live
 * process cannot show on demand; test/analyze-joins.test.ts runs the real ones.
 */
import t from 'tap';
import { compare } from '../src/analyze';
import { ProgressTracker } from '../src/analyze/progress';
import type { BlockedIn, Frame, ThreadSample } from '../src/types';
import { blocked, findingsOf, frames, lockedOn, proc, snap, thread } from './helpers/analyze';

const futex = blocked('futex', 202);
const joining = (tid: number): BlockedIn => ({ ...futex, joining: tid });
const worked = (over: Partial<ThreadSample> = {}): Partial<ThreadSample> => ({ userNs: 900_000_000, contextSwitches: { voluntary: 99, involuntary: 1 }, ...over });

t.test('main parked in futex as in the baseline while a worker progresses: not hung', async (t) => {
  const before = snap(0, [proc(100, [thread(100, { blockedIn: futex }), thread(101, { blockedIn: blocked('clock_nanosleep', 230) })])]);
  const after = snap(2000, [proc(100, [thread(100, { blockedIn: futex }), thread(101, { blockedIn: blocked('clock_nanosleep', 230), ...worked() })])]);
  const report = compare(before, after, { stallMs: 1000 });
  t.equal(report.verdict, 'healthy');
  t.same(findingsOf(report, 100), []);
  t.equal(report.processes[0]!.idle, 1, 'the main thread counts as idle: it waits for its worker');
  // exec: the command is still working, which is worth a line but not a hang.
  const exec = compare(before, after, { stallMs: 1000, expectExit: true });
  t.equal(exec.verdict, 'healthy');
  t.match(findingsOf(exec, 100), [{ kind: 'waiting', severity: 'info', message: /as in the baseline, while 1 other thread of the process make progress/ }]);
});

t.test('main parked in futex while nothing else progresses: judged by its stack', async (t) => {
  // The worker sits in an event wait (not a block, so the process is not "frozen"), and nothing moves.
  const pair = (stack?: Frame[]) => {
    const threads = () => [thread(100, { blockedIn: futex, ...(stack !== undefined ? { stack } : {}) }), thread(101, { blockedIn: blocked('epoll_wait', 232, 4, 'anon_inode:[eventpoll]') })];
    return [snap(0, [proc(100, threads())]), snap(2000, [proc(100, threads())])] as const;
  };
  // No stack: an idle park (a Go M) and a stuck wait look the same: an honest suspect, never hung.
  const unread = compare(...pair(), { stallMs: 1000 });
  t.equal(unread.verdict, 'suspect');
  t.match(findingsOf(unread, 100), [{ kind: 'stalled', severity: 'warning', message: /stalled in futex .*: without its stack \(no stack was taken: take snapshots with --stacks\) an idle park cannot be told from a stuck wait$/ }]);
  // The stack says it acquires a mutex: the main thread blocked on a lock is hung.
  const lock = compare(...pair(frames('__lll_lock_wait', 'pthread_mutex_lock', 'main@app')), { stallMs: 1000 });
  t.equal(lock.verdict, 'hung');
  t.match(findingsOf(lock, 100), [{ kind: 'stalled', severity: 'critical', message: /^blocked acquiring a lock \(glibc mutex: __lll_lock_wait ← pthread_mutex_lock ← main\) in futex for at least 2\.0 s with no CPU progress/ }]);
  // The stack says the Go scheduler parked it: the main thread of a Go program is an ordinary M.
  const goPark = compare(...pair(frames('runtime.futex.abi0@srv', 'runtime.futexsleep@srv', 'runtime.notesleep@srv', 'runtime.stopm@srv', 'runtime.findRunnable@srv')), { stallMs: 1000 });
  t.equal(goPark.verdict, 'healthy');
  t.same(findingsOf(goPark, 100), []);
  // A condition wait no row names, as in the baseline: a daemon's main thread waiting (for shutdown, say) is idle; a command should have finished.
  const cond = pair(frames('__futex_abstimed_wait_common', 'pthread_cond_wait', 'main@app'));
  t.equal(compare(...cond, { stallMs: 1000 }).verdict, 'healthy');
  const exec = compare(...cond, { stallMs: 1000, expectExit: true });
  t.equal(exec.verdict, 'suspect');
  t.match(findingsOf(exec, 100), [{ severity: 'warning', message: /\(condition wait: pthread_cond_wait ← main\).*while its other threads wait for events: the command should have finished/ }]);
});

t.test('main that left its baseline wait for a new blocking one while workers progress: critical (an event loop that stopped serving)', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  const at = (ms: number, main: Partial<ThreadSample>, workerCpu: number) =>
    snap(ms, [proc(100, [thread(100, main), thread(101, { blockedIn: blocked('clock_nanosleep', 230), userNs: workerCpu })])]);
  tracker.setBaseline(at(0, { blockedIn: blocked('epoll_wait', 232, 4) }, 1));
  tracker.step(at(0, { blockedIn: blocked('epoll_wait', 232, 4) }, 1));
  tracker.step(at(500, { blockedIn: futex }, 2));
  tracker.step(at(1000, { blockedIn: futex }, 3));
  const report = tracker.step(at(2000, { blockedIn: futex }, 4));
  t.equal(report.verdict, 'hung');
  t.match(findingsOf(report, 100), [{ kind: 'stalled', severity: 'critical', message: /^its event loop stopped: it waited for events before and has sat in futex for at least 1\.5 s/ }]);
});

t.test('a join is judged by the thread it joins', async (t) => {
  // The joined worker progresses: the join is idle, even for a main thread that entered it after the baseline.
  const tracker = new ProgressTracker({ stallMs: 1000 });
  const at = (ms: number, main: Partial<ThreadSample>, worker: Partial<ThreadSample>) => snap(ms, [proc(100, [thread(100, main), thread(101, worker)])]);
  tracker.setBaseline(at(0, { blockedIn: blocked('epoll_wait', 232, 4) }, {}));
  tracker.step(at(0, { blockedIn: blocked('epoll_wait', 232, 4) }, {}));
  tracker.step(at(500, { blockedIn: joining(101) }, { userNs: 5 }));
  tracker.step(at(1500, { blockedIn: joining(101) }, { userNs: 6 }));
  const report = tracker.step(at(2500, { blockedIn: joining(101) }, { userNs: 7 }));
  t.equal(report.verdict, 'healthy', 'the worker it joins makes progress');
  t.same(findingsOf(report, 100), []);

  // The joined worker is stuck on a lock while another thread works: the worker's finding carries it; the join is info.
  const read: Partial<ThreadSample> = { blockedIn: futex, stack: frames('__lll_lock_wait', 'pthread_mutex_lock', 'work@app') };
  const before = snap(0, [proc(100, [thread(100, { blockedIn: joining(101) }), thread(101, { blockedIn: blocked('clock_nanosleep', 230) }), thread(102)])]);
  const after = snap(2000, [proc(100, [thread(100, { blockedIn: joining(101) }), thread(101, read), thread(102, worked())])]);
  const stuck = new ProgressTracker({ stallMs: 1000 });
  stuck.setBaseline(before);
  stuck.step(before);
  stuck.step(snap(500, [proc(100, [thread(100, { blockedIn: joining(101) }), thread(101, read), thread(102, worked({ userNs: 2 }))])]));
  const second = stuck.step(after);
  t.match(findingsOf(second, 100), [{ kind: 'waiting', severity: 'info', message: /joining thread 101 .*which is stalled \(warning\): blocked acquiring a lock/ }]);
  t.match(findingsOf(second, 101), [{ kind: 'stalled', severity: 'warning' }]);

  // Everything stuck, the join included: a deadlock, and the join says whom it waits for.
  const frozen = () => [thread(100, { blockedIn: joining(101) }), thread(101, { blockedIn: lockedOn(0x5000) }), thread(102, { blockedIn: lockedOn(0x6000) })];
  const deadlock = compare(snap(0, [proc(100, frozen())]), snap(2000, [proc(100, frozen())]), { stallMs: 1000 });
  t.equal(deadlock.verdict, 'hung');
  t.match(findingsOf(deadlock, 100), [{ severity: 'info', message: /joining thread 101 .*which is stalled \(critical\): blocked acquiring a lock in futex .*1 other thread of the process waits on locks the same way/ }]);
  t.match(findingsOf(deadlock, 101), [{ severity: 'critical' }]);
});

t.test('with expectExit, the count of the threads that progress', async (t) => {
  const sleeper = (over: Partial<ThreadSample> = {}) => ({ blockedIn: blocked('clock_nanosleep', 230), ...over });
  const before = snap(0, [proc(100, [thread(100, { blockedIn: futex }), thread(101, sleeper()), thread(102, sleeper())])]);
  const after = snap(2000, [proc(100, [thread(100, { blockedIn: futex }), thread(101, sleeper(worked())), thread(102, sleeper(worked()))])]);
  t.match(findingsOf(compare(before, after, { stallMs: 1000, expectExit: true }), 100), [{ message: /while 2 other threads of the process make progress/ }]);
});

t.test('an event loop\'s poll resumed as restart_syscall after a stop is still its event wait', async (t) => {
  // A stop (a stack walk, a debugger) ends a poll with no timeout; the kernel resumes it as
  // restart_syscall, its wait channel still poll's. The switches the stop cost are no progress.
  const poll = (voluntary: number, call: string): ThreadSample =>
    thread(100, { blockedIn: blocked(call, call === 'poll' ? 7 : 219), wchan: 'poll_schedule_timeout.constprop.0', contextSwitches: { voluntary, involuntary: 1 }, pc: 0x4242 });
  const tracker = new ProgressTracker({ stallMs: 2000 });
  tracker.step(snap(0, [proc(100, [poll(3, 'poll')])]));
  tracker.step(snap(500, [proc(100, [poll(5, 'restart_syscall')])]));
  let last = tracker.step(snap(1000, [proc(100, [poll(5, 'restart_syscall')])]));
  for (let ms = 1500; ms <= 12000; ms += 500) last = tracker.step(snap(ms, [proc(100, [poll(5, 'restart_syscall')])]));
  t.equal(last.verdict, 'healthy', last.findings.map((f) => f.message).join('\n'));
  // Seen first in restart_syscall (stopped before the watch began): the wait channel says poll.
  const fresh = new ProgressTracker({ stallMs: 2000 });
  let report = fresh.step(snap(0, [proc(100, [poll(5, 'restart_syscall')])]));
  for (let ms = 500; ms <= 12000; ms += 500) report = fresh.step(snap(ms, [proc(100, [poll(5, 'restart_syscall')])]));
  t.equal(report.verdict, 'healthy');
  t.equal(compare(snap(0, [proc(100, [poll(3, 'poll')])]), snap(12000, [proc(100, [poll(5, 'restart_syscall')])]), { stallMs: 2000 }).verdict, 'healthy', 'compare() too');
});
