/**
 * A thread that waits for the work of other threads is not hung (src/analyze/README.md,
 * "Waiting for other threads"): the main thread in pthread_join, or in a lock its workers
 * will release, while they progress. Synthetic snapshots for the combinations a live
 * process cannot show on demand; test/analyze-joins.test.ts runs the real ones.
 */
import t from 'tap';
import { compare } from '../src/analyze';
import { ProgressTracker } from '../src/analyze/progress';
import type { BlockedIn, ThreadSample } from '../src/types';
import { blocked, findingsOf, proc, snap, thread } from './helpers/analyze';

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

t.test('main parked in futex while nothing else progresses: critical', async (t) => {
  // The worker sits in an event wait (not a block, so the process is not "frozen"), and nothing moves.
  const threads = () => [thread(100, { blockedIn: futex }), thread(101, { blockedIn: blocked('epoll_wait', 232, 4, 'anon_inode:[eventpoll]') })];
  const report = compare(snap(0, [proc(100, threads())]), snap(2000, [proc(100, threads())]), { stallMs: 1000 });
  t.equal(report.verdict, 'hung');
  t.match(findingsOf(report, 100), [{ kind: 'stalled', severity: 'critical', message: /stalled in futex .*nobody releases$/ }]);
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
  t.match(findingsOf(report, 100), [{ kind: 'stalled', severity: 'critical', message: /left the wait it had in the baseline/ }]);
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

  // The joined worker is stuck somewhere new while another thread works: the worker's finding carries it; the join is info.
  const read = blocked('read', 0, 3, 'pipe:[7]');
  const before = snap(0, [proc(100, [thread(100, { blockedIn: joining(101) }), thread(101, { blockedIn: blocked('clock_nanosleep', 230) }), thread(102)])]);
  const after = snap(2000, [proc(100, [thread(100, { blockedIn: joining(101) }), thread(101, { blockedIn: read }), thread(102, worked())])]);
  const stuck = new ProgressTracker({ stallMs: 1000 });
  stuck.setBaseline(before);
  stuck.step(before);
  stuck.step(snap(500, [proc(100, [thread(100, { blockedIn: joining(101) }), thread(101, { blockedIn: read }), thread(102, worked({ userNs: 2 }))])]));
  const second = stuck.step(after);
  t.match(findingsOf(second, 100), [{ kind: 'waiting', severity: 'info', message: /joining thread 101 .*which has itself made no progress/ }]);
  t.match(findingsOf(second, 101), [{ kind: 'stalled', severity: 'warning' }]);

  // Everything stuck, the join included: a deadlock, and the join says whom it waits for.
  const frozen = () => [thread(100, { blockedIn: joining(101) }), thread(101, { blockedIn: futex }), thread(102, { blockedIn: futex })];
  const deadlock = compare(snap(0, [proc(100, frozen())]), snap(2000, [proc(100, frozen())]), { stallMs: 1000 });
  t.equal(deadlock.verdict, 'hung');
  t.match(findingsOf(deadlock, 100), [{ severity: 'critical', message: /joining thread 101; it waits on a lock/ }]);
});

t.test('with expectExit, the count of the threads that progress', async (t) => {
  const sleeper = (over: Partial<ThreadSample> = {}) => ({ blockedIn: blocked('clock_nanosleep', 230), ...over });
  const before = snap(0, [proc(100, [thread(100, { blockedIn: futex }), thread(101, sleeper()), thread(102, sleeper())])]);
  const after = snap(2000, [proc(100, [thread(100, { blockedIn: futex }), thread(101, sleeper(worked())), thread(102, sleeper(worked()))])]);
  t.match(findingsOf(compare(before, after, { stallMs: 1000, expectExit: true }), 100), [{ message: /while 2 other threads of the process make progress/ }]);
});
