/**
 * compare() and ProgressTracker over synthetic snapshots: the edge cases a live process
 * cannot show on demand (other hosts, clocks that run backwards, darwin suspend counts,
 * ioctls on a GPU node, IOKit stacks), each judged the way docs/ARCHITECTURE.md describes the model.
 */
import t from 'tap';
import { compare, ProgressTracker } from '../src/analyze';
import { IokitSnapError } from '../src/errors';
import type { Snapshot, ThreadSample } from '../src/types';
import { accelerator, blocked, DARWIN, evidenceOf, findingsOf, frames, LINUX, lockedOn, proc, snap, thread } from './helpers/analyze';

const FUTEX = blocked('futex', 202);
/** glibc's mutex: the kernel's view says it is a lock acquisition. */
const LOCKED = lockedOn();
const EPOLL = blocked('epoll_wait', 232, 4, 'anon_inode:[eventpoll]');
const IOKIT = '/System/Library/Frameworks/IOKit.framework/Versions/A/IOKit';
const KERNEL = '/usr/lib/system/libsystem_kernel.dylib';

/** One process `pid` whose threads are the same in both snapshots, `ms` apart. */
function still(threads: ThreadSample[], ms = 2000, host = LINUX, pid = 100): [Snapshot, Snapshot] {
  return [snap(0, [proc(pid, threads)], { host }), snap(ms, [proc(pid, threads)], { host })];
}

t.test('argument checks: not a snapshot, bad stallMs or spinRatio → IokitSnapError EINVAL', async (t) => {
  const good = snap(0, []);
  const bad: unknown[] = [null, undefined, 42, 'snapshot', {}, { ...good, monotonicNs: '5' }, { ...good, processes: {} }, { ...good, accelerators: null }, { ...good, limits: undefined }];
  for (const value of bad) {
    t.throws(() => compare(value as Snapshot, good), { name: 'IokitSnapError', code: 'EINVAL', message: /healthy \(first\).*readSnapshot/ }, `healthy ${JSON.stringify(value)}`);
    t.throws(() => compare(good, value as Snapshot), { code: 'EINVAL', message: /hung \(second\)/ }, `hung ${JSON.stringify(value)}`);
  }
  for (const stallMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5', null]) {
    t.throws(() => compare(good, good, { stallMs: stallMs as number }), {
      code: 'EINVAL',
      message: `compare(): stallMs must be a non-negative number of milliseconds, got ${typeof stallMs === 'string' ? `"${stallMs}"` : String(stallMs)}`,
    });
  }
  for (const spinRatio of [-0.5, Number.NaN, 'high']) {
    t.throws(() => compare(good, good, { spinRatio: spinRatio as number }), { code: 'EINVAL', message: /spinRatio must be a non-negative number/ });
  }
  const error = (() => {
    try {
      compare(good, null as unknown as Snapshot);
    } catch (e) {
      return e;
    }
  })();
  t.ok(error instanceof IokitSnapError, 'the one error type');
  t.equal(compare(good, good, { stallMs: 0, spinRatio: 0 }).verdict, 'healthy', 'zero is allowed');
  t.same(compare(good, snap(1000, [])), { verdict: 'healthy', findings: [], processes: [], accelerators: { before: 0, after: 0 }, windowMs: 1000, notes: [] });
});

t.test('clocks that run backwards (another boot, or the arguments swapped): a note, windowMs null, no stalls', async (t) => {
  const threads = [thread(100, { blockedIn: LOCKED }), thread(101, { blockedIn: LOCKED })];
  const [earlier, later] = still(threads, 5000);
  const forwards = compare(earlier, later);
  t.equal(forwards.verdict, 'hung', 'in order, the pair is a deadlock');
  t.equal(forwards.windowMs, 5000);

  const swapped = compare(later, earlier);
  t.equal(swapped.windowMs, null);
  t.match(swapped.notes, [/not later than the healthy one on the monotonic clock.*only state changes are reported/]);
  t.same(swapped.findings, [], 'nothing has "held for stallMs" without a time base');
  t.equal(swapped.verdict, 'healthy');
  t.equal(swapped.processes.length, 1);

  // Another boot: the hung snapshot's clock restarted near zero, far below the healthy one.
  const reboot = compare(snap(9_000_000, [proc(100, threads)]), snap(3000, [proc(100, threads)]), { stallMs: 10 });
  t.equal(reboot.windowMs, null);
  t.same(reboot.findings, []);

  // A state change still shows without a time base: a thread that is stopped now.
  const stopped = compare(snap(5000, [proc(100, [thread(100, { blockedIn: FUTEX })])]), snap(1000, [proc(100, [thread(100, { state: 'stopped' })])]));
  t.match(stopped.findings, [{ kind: 'stopped', severity: 'warning', ref: { pid: 100, tid: 100 } }]);
  t.equal(stopped.windowMs, null);
});

t.test('durations are unknown with backwards clocks: null, never -Infinity', async (t) => {
  const threads = [thread(100, { state: 'stopped' })];
  const report = compare(snap(5000, [proc(100, threads)]), snap(1000, [proc(100, threads)]));
  t.match(report.findings, [{ kind: 'stopped', ref: { tid: 100 } }]);
  t.equal(report.findings[0]!.durationMs, null, 'Finding.durationMs: "null when not known"');
  t.ok(Number.isFinite(report.processes[0]!.windowMs), `ProcessSummary.windowMs is a number of ms, got ${report.processes[0]!.windowMs}`);
});

t.test('snapshots from different hosts get a note; the same host does not', async (t) => {
  const a = snap(0, []);
  t.same(compare(a, snap(1000, [])).notes, []);
  const arm = compare(a, snap(1000, [], { host: { ...LINUX, arch: 'arm64' } }));
  t.match(arm.notes, [/different hosts or systems \(linux x64 6\.8\.0 vs linux arm64 6\.8\.0\): thread ids and accelerator ids do not match/]);
  t.match(compare(a, snap(1000, [], { host: { ...LINUX, osRelease: '6.9.1' } })).notes, [/6\.8\.0 vs linux x64 6\.9\.1/]);
  t.match(compare(a, snap(1000, [], { host: DARWIN })).notes, [/linux x64 6\.8\.0 vs darwin arm64 24\.1\.0 Mac14,2\)/]);
  t.match(compare(snap(0, [], { host: DARWIN }), snap(1000, [], { host: { ...DARWIN, model: 'Mac15,3' } })).notes, [/Mac14,2 vs darwin arm64 24\.1\.0 Mac15,3/]);
  t.same(compare(snap(0, [], { host: DARWIN }), snap(1000, [], { host: { ...DARWIN } })).notes, [], 'same model');
  // A snapshot without host (hand-built, older tools) is compared without the check.
  const hostless = { ...snap(1000, []) } as Partial<Snapshot>;
  delete hostless.host;
  t.same(compare(a, hostless as Snapshot).notes, []);
  t.same(compare(hostless as Snapshot, snap(2000, [])).notes, []);
});

t.test('a process that is gone, one that is new, and a healthy snapshot without processes', async (t) => {
  const report = compare(
    snap(0, [proc(100, [thread(100)]), proc(200, [thread(200)], 'worker')]),
    snap(2000, [proc(100, [thread(100)]), proc(300, [thread(300, { state: 'stopped' })], 'newcomer')]),
  );
  t.match(report.processes, [
    { pid: 100, threads: 1, windowMs: 2000 },
    { pid: 300, name: 'newcomer', threads: 1, new: true, windowMs: 0 },
    { pid: 200, name: 'worker', threads: 0, idle: 0, cpuNs: 0, gone: true },
  ]);
  t.notOk('gone' in report.processes[0]! || 'new' in report.processes[0]!);
  t.match(findingsOf(report, 300), [{ kind: 'stopped', severity: 'warning', durationMs: 0 }], 'a stopped newcomer is reported, not yet for long');
  t.same(report.notes, []);

  const noBaseline = compare(snap(0, []), snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX })])]));
  t.match(noBaseline.notes, [/the healthy snapshot has no processes: threads have no baseline \(take it with --pid\)/]);
  t.same(noBaseline.findings, [], 'no baseline, no window');
  t.equal(noBaseline.processes[0]!.new, true);
});

t.test('threads that exit and threads that appear', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  // Two threads acquiring locks (their stacks say so): a deadlock candidate whatever the rest does.
  const PIPE: Partial<ThreadSample> = { blockedIn: FUTEX, stack: frames('__lll_lock_wait', 'pthread_mutex_lock') };
  const LOCK: Partial<ThreadSample> = { blockedIn: FUTEX, stack: frames('__lll_lock_wait', 'pthread_mutex_lock') };
  tracker.step(snap(0, [proc(100, [thread(100, PIPE), thread(101, { blockedIn: FUTEX }), thread(102, { blockedIn: FUTEX })])]));
  t.equal(tracker.trackedThreads, 3);
  const report = tracker.step(snap(2000, [proc(100, [thread(100, PIPE), thread(103, LOCK)])]));
  t.equal(tracker.trackedThreads, 2, 'the exited threads are forgotten, the new one is tracked');
  t.same(findingsOf(report, 103), [], 'a new thread has no window yet');
  t.match(report.findings, [{ kind: 'stalled', severity: 'critical', ref: { tid: 100 } }]);
  t.equal(report.findings.length, 1);
  t.match(report.processes, [{ pid: 100, threads: 2 }]);
  const later = tracker.step(snap(4000, [proc(100, [thread(100, PIPE), thread(103, LOCK)])]));
  t.match(findingsOf(later, 103), [{ kind: 'stalled', severity: 'critical', durationMs: 2000 }], 'its window began when it was first seen');
  t.match(findingsOf(later, 100), [{ durationMs: 4000 }]);
  tracker.step(snap(5000, [proc(100, [thread(100, PIPE)])]));
  t.equal(tracker.trackedThreads, 1);
  tracker.step(snap(6000, []));
  t.equal(tracker.trackedThreads, 0, 'and the process');
});

t.test('darwin: the main thread is the first one (Mach thread ids are not the pid)', async (t) => {
  const threads = [thread(9001, { name: null, state: 'waiting', blockedIn: blocked('psynch_mutexwait', 301) }), thread(9002, { state: 'waiting', blockedIn: blocked('kevent_qos', 374) })];
  const mac = compare(...still(threads, 2000, DARWIN, 500));
  t.equal(mac.verdict, 'hung');
  t.match(mac.findings, [
    {
      kind: 'stalled',
      severity: 'critical',
      subject: 'pid 500 (app) thread 9001 (main)',
      message: /^blocked acquiring a lock in psynch_mutexwait for at least 2\.0 s with no CPU progress and no context switches: another thread holds the lock and does not let go$/,
    },
  ]);
  t.equal(mac.findings.length, 1, 'the kevent thread is idle');
  t.equal(mac.processes[0]!.idle, 1);

  const linuxThreads = [thread(9001, { blockedIn: FUTEX }), thread(9002, { blockedIn: blocked('epoll_wait', 232, 4) })];
  const linux = compare(...still(linuxThreads, 2000, LINUX, 500));
  t.notOk(
    linux.findings.some((f) => f.subject.endsWith('(main)')),
    'on Linux the main thread is tid == pid: none here',
  );
  t.equal(linux.verdict, 'healthy', 'a worker parked where it was in the baseline is not a hang');
});

t.test('darwin: a suspend count above zero is stopped, critical once it held stallMs', async (t) => {
  const suspended = thread(9001, { state: 'waiting', suspendCount: 1, blockedIn: blocked('mach_msg2_trap', -47) });
  const held = compare(...still([suspended], 3000, DARWIN, 500));
  t.match(held.findings, [
    {
      kind: 'stopped',
      severity: 'critical',
      ref: { pid: 500, tid: 9001 },
      message: /^suspended \(suspend count 1\) for (?:at least )?3\.0 s: a debugger or another task holds it/,
      evidence: [
        { field: 'state', before: 'waiting', after: 'waiting' },
        { field: 'suspendCount', before: 1, after: 1 },
      ],
      durationMs: 3000,
    },
  ]);
  t.equal(held.verdict, 'hung');
  const running = thread(9001, { state: 'running', suspendCount: 0, userNs: 5_000_000 });
  const fresh = compare(snap(0, [proc(500, [running])], { host: DARWIN }), snap(3000, [proc(500, [{ ...suspended, suspendCount: 2 }])], { host: DARWIN }));
  t.match(fresh.findings, [{ kind: 'stopped', severity: 'warning', message: /^suspended \(suspend count 2\): / }], 'just suspended: a warning');
  t.equal(fresh.verdict, 'suspect');
});

t.test('SIGSTOP: stopped, with the state it was stopped from as evidence', async (t) => {
  const report = compare(snap(0, [proc(100, [thread(100, { blockedIn: EPOLL })])]), snap(3000, [proc(100, [thread(100, { state: 'stopped', blockedIn: null })])]));
  t.match(report.findings, [{ kind: 'stopped', severity: 'warning', message: /^stopped \(SIGSTOP, job control or a debugger\): it runs again only after SIGCONT \(kill -CONT 100\)$/ }]);
  t.same(evidenceOf(report.findings[0]!, 'state'), { field: 'state', before: 'sleeping', after: 'stopped' }, 'before is the healthy state');
});

t.test('stopped in both snapshots: critical, for how long', async (t) => {
  const report = compare(...still([thread(100, { state: 'stopped' })], 2500));
  t.match(report.findings, [{ kind: 'stopped', severity: 'critical', message: /^stopped for (?:at least )?2\.5 s \(SIGSTOP/, durationMs: 2500 }]);
});

t.test('a worker in the same futex as in the healthy snapshot, main idle in epoll_wait: an idle worker, not a finding', async (t) => {
  // src/analyze/README.md rule 7: a worker parked where it was in the baseline while the
  // process runs on is idle (thread pools park in futex between jobs), counted, not reported.
  const report = compare(...still([thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: FUTEX })]));
  t.equal(report.verdict, 'healthy');
  t.same(report.findings, []);
  t.match(report.processes, [{ threads: 2, idle: 2, cpuNs: 0, windowMs: 2000 }]);
  // The same worker when nothing else in the process moves, and the process got there after the
  // baseline (its threads ran then; the kernel says how long they have been off CPU since): a deadlock.
  const ran = (tid: number) => thread(tid, { state: 'running', cpuNs: 5e6 });
  const frozen = compare(
    snap(0, [proc(100, [ran(100), ran(101)])]),
    snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX, cpuNs: 5e6, offCpuNs: 1.5e9 }), thread(101, { blockedIn: FUTEX, cpuNs: 5e6, offCpuNs: 1.5e9 })])]),
  );
  t.match(findingsOf(frozen, 101), [{ kind: 'stalled', severity: 'critical', message: /no thread of the process made progress$/, durationMs: 1500 }]);
  // Frozen like that since the first sample: a pool whose main thread joins it, idle until a signal, looks the same as a deadlock older than the baseline.
  const asleep = compare(...still([thread(100, { blockedIn: FUTEX }), thread(101, { blockedIn: FUTEX })]));
  t.equal(asleep.verdict, 'healthy');
  t.match(findingsOf(asleep, 101), [{ kind: 'waiting', severity: 'info', message: /as every thread of the process has since the first sample: nothing in it can wake the others/ }]);
  // Parked in the same ioctl on a GPU node is not idle: a driver call that does not return.
  const gpu = compare(...still([thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: blocked('ioctl', 16, 7, '/dev/nvidia0') })]));
  t.match(gpu.findings, [{ kind: 'blocked-in-driver', ref: { tid: 101 } }]);
  // And uninterruptible sleep is never idle.
  const d = compare(...still([thread(100, { blockedIn: EPOLL }), thread(101, { state: 'uninterruptible', blockedIn: FUTEX })]));
  t.match(d.findings, [{ kind: 'uninterruptible', ref: { tid: 101 } }]);
});

t.test('a worker stalled in another call than in the baseline: info, not a verdict (ProgressTracker + setBaseline)', async (t) => {
  const main = thread(100, { blockedIn: EPOLL });
  const tracker = new ProgressTracker({ stallMs: 1000 });
  tracker.setBaseline(snap(0, [proc(100, [main, thread(101, { blockedIn: blocked('read', 0, 5, 'pipe:[77]') })])]));
  const first = tracker.step(snap(10_000, [proc(100, [main, thread(101, { blockedIn: FUTEX })])]));
  t.same(first.findings, [], 'the first sample starts the window');
  t.equal(first.windowMs, null);
  t.notOk(first.processes[0]!.new, 'the first step: nothing is new');
  const report = tracker.step(snap(12_000, [proc(100, [main, thread(101, { blockedIn: FUTEX })])]));
  t.match(report.findings, [{ kind: 'stalled', severity: 'info', ref: { tid: 101 }, message: /stalled in futex for (?:at least )?2\.0 s .*: it waits on a lock or condition that nobody releases; it was not waiting there in the baseline$/ }]);
  t.equal(report.verdict, 'healthy', 'a pool thread parks where it likes: only a lock, or the whole process, makes it more');
  t.match(report.processes, [{ idle: 1 }], 'main sits in the epoll_wait it had in the baseline');

  // Without the baseline the first sample is the baseline: the same worker is not a warning.
  const plain = new ProgressTracker({ stallMs: 1000 });
  plain.step(snap(10_000, [proc(100, [main, thread(101, { blockedIn: FUTEX })])]));
  const idle = plain.step(snap(12_000, [proc(100, [main, thread(101, { blockedIn: FUTEX })])]));
  t.equal(idle.verdict, 'healthy');
  t.notOk(idle.findings.some((f) => f.severity !== 'info'));
});

t.test('a thread now parked in an event wait it did not have in the baseline: waiting (info)', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  tracker.step(snap(0, [proc(100, [thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: FUTEX })])]));
  const moved = tracker.step(snap(1000, [proc(100, [thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: blocked('poll', 7) })])]));
  t.same(findingsOf(moved, 101), [], 'it just moved there');
  const report = tracker.step(snap(3000, [proc(100, [thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: blocked('poll', 7) })])]));
  t.match(report.findings, [
    {
      kind: 'waiting',
      severity: 'info',
      ref: { tid: 101 },
      message: /^waits for events in poll for (?:at least )?2\.0 s; it was not parked there in the baseline$/,
      evidence: [{ field: 'blockedIn.call', after: 'poll' }],
    },
  ]);
  t.equal(report.verdict, 'healthy');
});

t.test('an unknown call (blockedIn null): a warning on the main thread, info elsewhere', async (t) => {
  const report = compare(...still([thread(100, { blockedIn: null }), thread(101, { blockedIn: EPOLL })]));
  t.match(report.findings, [
    {
      kind: 'stalled',
      severity: 'warning',
      ref: { tid: 100 },
      message: /^no progress for at least 2\.0 s in an unknown call: the call is unknown \(sample with detail "full", or with permission to read the thread\), so an idle wait cannot be told from a stuck one$/,
    },
  ]);
  t.equal(report.findings.length, 1, 'the epoll_wait thread is idle');
  t.equal(report.verdict, 'suspect');

  // A worker whose wait is not known, and was known to be elsewhere in the baseline.
  const tracker = new ProgressTracker({ stallMs: 1000 });
  tracker.setBaseline(snap(0, [proc(100, [thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: FUTEX })])]));
  const worker = thread(101, { blockedIn: null, wchan: 'do_sys_poll' });
  tracker.step(snap(1000, [proc(100, [thread(100, { blockedIn: EPOLL }), worker])]));
  const later = tracker.step(snap(3000, [proc(100, [thread(100, { blockedIn: EPOLL }), worker])]));
  const [finding] = findingsOf(later, 101);
  t.match(finding, { kind: 'stalled', severity: 'info', message: /^no progress for at least 2\.0 s in the kernel \(wchan do_sys_poll\): the call is unknown/ });
  t.same(evidenceOf(finding!, 'wchan'), { field: 'wchan', before: 'do_sys_poll', after: 'do_sys_poll' });
  t.equal(later.verdict, 'healthy');
});

t.test('a detail "basic" sample (no calls, no context switches) of an idle process is not hung', async (t) => {
  // What ps shows: every thread asleep, no CPU. An idle server looks exactly like this; the
  // rules can say "unknown call on the main thread" (a warning), not "hung".
  const basic = (tid: number): ThreadSample => thread(tid, { blockedIn: null, contextSwitches: null });
  const single = compare(...still([basic(100)], 10_000));
  t.not(single.verdict, 'hung', JSON.stringify(single.findings.map((f) => [f.severity, f.message])));
  t.match(single.findings, [{ kind: 'stalled', severity: 'warning', ref: { tid: 100 } }]);
  const pool = compare(...still([basic(100), basic(101), basic(102)], 10_000));
  t.not(pool.verdict, 'hung', JSON.stringify(pool.findings.map((f) => [f.severity, f.message])));
});

t.test('a timed sleep and a wait for a child: idle, or info waiting when the process should finish', async (t) => {
  const threads = [thread(100, { blockedIn: blocked('clock_nanosleep', 230) }), thread(101, { blockedIn: blocked('wait4', 61) })];
  const plain = compare(...still(threads));
  t.same(plain.findings, []);
  t.match(plain.processes, [{ idle: 2 }]);
  const sleeping = compare(...still(threads), { expectExit: true });
  t.match(sleeping.findings, [{ kind: 'waiting', severity: 'info', ref: { tid: 100 }, message: /^sleeping in clock_nanosleep for (?:at least )?2\.0 s: a timed sleep, it wakes by itself$/ }]);
  t.equal(sleeping.findings.length, 1, 'expectExit is about the main thread only');
  t.equal(sleeping.verdict, 'healthy');
  const child = compare(...still([thread(100, { blockedIn: blocked('wait4', 61) })]), { expectExit: true });
  t.match(child.findings, [{ kind: 'waiting', severity: 'info', message: /^waits for a child process in wait4 for (?:at least )?2\.0 s: the child decides/, evidence: [{ field: 'blockedIn.call', before: 'wait4', after: 'wait4' }] }]);
});

t.test('expectExit: a main thread waiting for events is a warning; on darwin mach_msg says how to tell a driver wait', async (t) => {
  const linux = compare(...still([thread(100, { blockedIn: EPOLL })]), { expectExit: true });
  t.match(linux.findings, [{ kind: 'waiting', severity: 'warning', message: /^waits for events in epoll_wait on anon_inode:\[eventpoll\] \(fd 4\) for (?:at least )?2\.0 s, but the command should have finished$/ }]);
  t.equal(linux.verdict, 'suspect');
  const mac = compare(...still([thread(1, { state: 'waiting', blockedIn: blocked('mach_msg2_trap', -47) })], 2000, DARWIN, 500), { expectExit: true });
  t.match(mac.findings, [{ kind: 'waiting', severity: 'warning', message: /should have finished \(on macOS also how IOConnectCallMethod waits for a driver: take stacks to tell\)$/ }]);
});

t.test('an ioctl on /dev/nvidia0 that does not return: blocked-in-driver, critical', async (t) => {
  const nvidia = blocked('ioctl', 16, 7, '/dev/nvidia0');
  const report = compare(...still([thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: nvidia })]));
  t.equal(report.verdict, 'hung');
  t.match(report.findings, [
    {
      kind: 'blocked-in-driver',
      severity: 'critical',
      ref: { pid: 100, tid: 101 },
      message: /^blocked in the GPU driver: ioctl on \/dev\/nvidia0 \(fd 7\) for (?:at least )?2\.0 s with no CPU progress and no context switches; the driver did not complete the request \(check the kernel log/,
    },
  ]);
  t.same(evidenceOf(report.findings[0]!, 'blockedIn.target'), { field: 'blockedIn.target', before: '/dev/nvidia0', after: '/dev/nvidia0' });
  const d = compare(...still([thread(100, { state: 'uninterruptible', blockedIn: blocked('ioctl', 16, 9, '/dev/dri/renderD128') })]));
  t.match(d.findings, [{ kind: 'blocked-in-driver', message: /renderD128 \(fd 9\) for (?:at least )?2\.0 s with no CPU progress and no context switches, uninterruptible;/ }]);
  // Not a GPU node: an ordinary stall.
  const tty = compare(...still([thread(100, { blockedIn: blocked('ioctl', 16, 0, '/dev/pts/3') })]), { stallMs: 1000, expectExit: true });
  t.match(tty.findings, [{ kind: 'stalled', severity: 'critical', message: /ioctl on \/dev\/pts\/3 \(fd 0\) .*: it waits for something that does not happen; no thread of the process made progress$/ }]);
});

t.test('macOS: mach_msg2_trap under IOKit (IOConnectCallMethod) is blocked-in-driver; iokit_user_client_trap too', async (t) => {
  const stack = [
    { pc: 0x1a0001000, module: KERNEL, offset: 0x1000 },
    { pc: 0x1a2002000, module: IOKIT, offset: 0x2000 },
    { pc: 0x100003000, module: '/usr/local/go/bin/go', offset: 0x3000 },
  ];
  const main = thread(7001, { state: 'waiting', blockedIn: blocked('mach_msg2_trap', -47), pc: 0x1a0001000, stack });
  const idle = thread(7002, { state: 'waiting', blockedIn: blocked('kevent_qos', 374) });
  const withExit = compare(...still([main, idle], 19_200, DARWIN, 500), { expectExit: true });
  t.match(withExit.findings, [{ kind: 'blocked-in-driver', severity: 'critical', subject: 'pid 500 (app) thread 7001 \'app\' (main)', message: /^blocked in the GPU driver: mach_msg2_trap for (?:at least )?19\.2 s/ }]);

  const trap = compare(...still([thread(7001, { state: 'waiting', blockedIn: blocked('iokit_user_client_trap', -100) }), idle], 2000, DARWIN, 500));
  t.match(trap.findings, [{ kind: 'blocked-in-driver', severity: 'critical', ref: { tid: 7001 } }]);

  const bundle = [{ pc: 0x1a0001000, module: KERNEL, offset: 1 }, { pc: 0x1b0000000, module: '/System/Library/Extensions/AGXMetal13_3.bundle/Contents/MacOS/AGXMetal13_3', offset: 2 }];
  const agx = compare(...still([thread(7001, { state: 'waiting', blockedIn: blocked('mach_msg2_trap', -47), stack: bundle }), idle], 2000, DARWIN, 500), { expectExit: true });
  t.match(agx.findings, [{ kind: 'blocked-in-driver', ref: { tid: 7001 } }], 'a GPU driver bundle counts as the driver');

  // The same wait from a run loop (no driver frame) is an idle main thread.
  const runLoop = [{ pc: 0x1a0001000, module: KERNEL, offset: 1 }, { pc: 0x1a5000000, module: '/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation', offset: 2 }];
  const app = compare(...still([thread(7001, { state: 'waiting', blockedIn: blocked('mach_msg2_trap', -47), stack: runLoop }), idle], 2000, DARWIN, 500));
  t.same(app.findings, [], 'a GUI app parked in its run loop is idle');
  t.equal(app.processes[0]!.idle, 2);
});

t.test('macOS: the classic hang of docs/ARCHITECTURE.md (main in mach_msg2_trap under IOConnectCallMethod) is found without expectExit', async (t) => {
  const stack = [
    { pc: 0x1a0001000, module: KERNEL, offset: 0x1000 },
    { pc: 0x1a2002000, module: IOKIT, offset: 0x2000 },
  ];
  const main = thread(7001, { state: 'waiting', blockedIn: blocked('mach_msg2_trap', -47), pc: 0x1a0001000, stack });
  const report = compare(...still([main], 19_200, DARWIN, 500));
  t.match(report.findings, [{ kind: 'blocked-in-driver', severity: 'critical', ref: { tid: 7001 } }]);
  t.equal(report.verdict, 'hung');
});

t.test('the pc counts as progress: a new pc is not a stall, the same pc is', async (t) => {
  const at = (pc: number): ThreadSample => thread(100, { blockedIn: LOCKED, pc });
  const moved = compare(snap(0, [proc(100, [at(0x1000)])]), snap(2000, [proc(100, [at(0x2000)])]));
  t.same(moved.findings, []);
  const same = compare(snap(0, [proc(100, [at(0x1000)])]), snap(2000, [proc(100, [at(0x1000)])]));
  t.match(same.findings, [{ kind: 'stalled', severity: 'critical' }]);
  // Context switches and state are progress too.
  const switched = compare(snap(0, [proc(100, [thread(100, { blockedIn: FUTEX })])]), snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX, contextSwitches: { voluntary: 11, involuntary: 1 } })])]));
  t.same(switched.findings, []);
  const preempted = compare(snap(0, [proc(100, [thread(100, { blockedIn: FUTEX })])]), snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX, contextSwitches: { voluntary: 10, involuntary: 2 } })])]));
  t.same(preempted.findings, []);
  const cpu = compare(snap(0, [proc(100, [thread(100, { blockedIn: FUTEX, cpuNs: 5 })])]), snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX, cpuNs: 6 })])]));
  t.same(cpu.findings, [], 'schedstat ns count before clock ticks');
  t.equal(cpu.processes[0]!.cpuNs, 1);
});

t.test('spinning: CPU at or above spinRatio of wall time, running, at the same pc', async (t) => {
  const spin = (ms: number, cpuMs: number, pc?: number): Snapshot =>
    snap(ms, [proc(100, [thread(100, { state: 'running', cpuNs: cpuMs * 1e6, ...(pc !== undefined ? { pc } : {}) })])]);
  const report = compare(spin(0, 100), spin(2000, 2050));
  t.match(report.findings, [
    {
      kind: 'spinning',
      severity: 'info',
      message: /^busy: 2\.0 s of CPU in 2\.0 s \(98%\), never blocking: computing \(CPU time is progress/,
      evidence: [
        { field: 'cpuNs', before: 100e6, after: 2050e6 },
        { field: 'state', after: 'running' },
      ],
      durationMs: 2000,
    },
  ]);
  t.equal(report.findings[0]!.evidence.length, 2, 'no pc without stacks');
  t.equal(report.verdict, 'healthy', 'CPU time is progress');
  t.same(compare(spin(0, 100), spin(2000, 1000)).findings, [], '45 % is not spinning');
  t.match(compare(spin(0, 100), spin(2000, 1000), { spinRatio: 0.4 }).findings, [{ kind: 'spinning' }], 'spinRatio is honoured');
  t.same(compare(spin(0, 100), spin(500, 600)).findings, [], 'not for stallMs yet');
  const samePc = compare(spin(0, 100, 0x4000), spin(2000, 2050, 0x4000));
  t.match(samePc.findings, [{ kind: 'spinning', severity: 'warning', message: /at the same pc 0x4000, never blocking: at one pc, a spin-wait/, evidence: [{}, {}, { field: 'pc', before: 0x4000, after: 0x4000 }] }]);
  t.equal(samePc.verdict, 'suspect');
  t.same(compare(spin(0, 100, 0x4000), spin(2000, 2050, 0x5000)).findings, [], 'a moving pc is a computation that progresses');
  // A thread that spins in the kernel is runnable, and counts too.
  const runnable = compare(snap(0, [proc(100, [thread(100, { state: 'runnable', cpuNs: 0 })])]), snap(2000, [proc(100, [thread(100, { state: 'runnable', cpuNs: 1900e6 })])]));
  t.match(runnable.findings, [{ kind: 'spinning' }]);
});

t.test('spinning is judged across steps: the window runs from the first spinning step', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  const at = (ms: number, cpuMs: number, state: ThreadSample['state'] = 'running') => snap(ms, [proc(100, [thread(100, { state, cpuNs: cpuMs * 1e6 })])]);
  tracker.step(at(0, 0));
  t.same(tracker.step(at(600, 600)).findings, []);
  t.match(tracker.step(at(1200, 1200)).findings, [{ kind: 'spinning', durationMs: 1200 }]);
  t.same(tracker.step(at(1800, 1200, 'sleeping')).findings, [], 'it blocked: the run ends');
  t.same(tracker.step(at(2400, 1800)).findings, [], 'a new run starts its own window');
});

t.test('step(sample, true) discards the window: stalls and spins start again', async (t) => {
  const frozen = (ms: number) => snap(ms, [proc(100, [thread(100, { blockedIn: FUTEX }), thread(101, { state: 'running', cpuNs: ms * 1e6 })])]);
  const normal = new ProgressTracker({ stallMs: 1000 });
  normal.step(frozen(0));
  // The main thread waits in futex while its worker spins: it waits for that work (idle).
  t.match(normal.step(frozen(3000)).findings, [{ kind: 'spinning' }]);

  const discarding = new ProgressTracker({ stallMs: 1000 });
  discarding.step(frozen(0));
  const discarded = discarding.step(frozen(3000), true);
  t.same(discarded.findings, [], 'nothing held: the window was thrown away');
  t.equal(discarded.windowMs, 3000);
  t.same(discarding.step(frozen(3500)).findings, [], 'the new window is only 500 ms old');
  t.match(discarding.step(frozen(4000)).findings, [{ kind: 'spinning', ref: { tid: 101 }, durationMs: 1000 }]);
});

t.test('reset(): every window starts again, the previous sample is forgotten', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  const at = (ms: number) => snap(ms, [proc(100, [thread(100, { blockedIn: LOCKED })])]);
  tracker.step(at(0));
  t.match(tracker.step(at(2000)).findings, [{ kind: 'stalled' }]);
  t.equal(tracker.trackedThreads, 1);
  tracker.reset();
  t.equal(tracker.trackedThreads, 0);
  const after = tracker.step(at(4000));
  t.same(after.findings, []);
  t.equal(after.windowMs, null, 'no previous sample');
  t.match(tracker.step(at(5500)).findings, [{ kind: 'stalled', durationMs: 1500 }]);
});

t.test('what the stall is about: the hint follows the call', async (t) => {
  // Single-threaded and still: a blocking wait is the whole process standing still (critical); a wait on
  // another process (a socket, a pipe) is judged by that process, here unknown: a command that should have
  // finished is suspect.
  const cases: [ThreadSample['blockedIn'], RegExp][] = [
    [blocked('read', 0, 3, '/tmp/fifo'), /stalled in read on \/tmp\/fifo \(fd 3\) .*: it waits for input on \/tmp\/fifo that does not come; find the other end; no thread of the process made progress$/],
    [blocked('recvfrom', 45, 6), /waits in recvfrom on fd 6 .*: it waits for input that does not come; find the other end; the other end was not found/],
    [blocked('recvmsg_nocancel', 401), /waits in recvmsg_nocancel .*: it waits for input that does not come/],
    [blocked('write', 1, 1, 'pipe:[42]'), /: it waits to write to pipe:\[42\]: the reader is not reading; the other end was not found/],
    [blocked('sendmsg', 46, 9), /: it waits to write: the reader is not reading; the other end/],
    [blocked('openat', 257), /: it waits on the filesystem \(a lock, or a slow or unreachable mount\); no thread of the process made progress$/],
    [blocked('fsync', 74, 3, '/mnt/nfs/db'), /: it waits on the filesystem/],
    [blocked('psynch_cvwait', 305), /: it waits on a lock or condition that nobody releases; no thread of the process made progress$/],
    [blocked('__ulock_wait', 515), /: it waits on a lock or condition/],
    [blocked('syscall_999', 999), /stalled in syscall_999 .*: it waits for something that does not happen; no thread of the process made progress$/],
  ];
  for (const [blockedIn, message] of cases) {
    const report = compare(...still([thread(100, { blockedIn })]), { stallMs: 1000, expectExit: true });
    t.match(report.findings, [{ kind: 'stalled', severity: /^(critical|warning)$/, message }], blockedIn!.call);
  }
});

t.test('evidence and words when context switches are not known and the thread has no name', async (t) => {
  const report = compare(...still([thread(100, { name: null, contextSwitches: null, blockedIn: LOCKED, wchan: 'futex_wait_queue' })]));
  const [finding] = report.findings;
  t.equal(finding!.subject, 'pid 100 (app) thread 100 (main)');
  t.match(finding!.message, /^blocked acquiring a lock in futex for at least 2\.0 s with no CPU progress: /);
  t.same(
    finding!.evidence.map((e) => e.field),
    ['blockedIn.call', 'cpuNs', 'state', 'wchan'],
  );
});

t.test('frozen: when every thread sits in a blocking wait, a worker is critical too', async (t) => {
  // (A read on a pipe or a socket would wait for another process: judged by it, so never part of a frozen process.)
  const report = compare(...still([thread(100, { blockedIn: FUTEX }), thread(101, { blockedIn: blocked('read', 0, 3, '/srv/spool/queue') })]), { stallMs: 1000, expectExit: true });
  t.match(findingsOf(report, 101), [{ severity: 'critical', message: /that does not come; find the other end; no thread of the process made progress$/ }]);
  t.match(findingsOf(report, 100), [{ severity: 'critical', message: /nobody releases; no thread of the process made progress$/ }], 'the main thread too');
});

t.test('zombies and halted threads are not stalls; uninterruptible sleep is, whatever the call', async (t) => {
  const report = compare(...still([thread(100, { state: 'zombie' }), thread(101, { state: 'halted', blockedIn: FUTEX })]));
  t.same(report.findings, []);
  const d = compare(...still([thread(100, { state: 'uninterruptible', blockedIn: blocked('epoll_wait', 232) })]));
  t.match(d.findings, [{ kind: 'uninterruptible', severity: 'critical', message: /^in uninterruptible sleep \(D\) in epoll_wait for (?:at least )?2\.0 s/ }]);
  t.match(compare(...still([thread(100, { blockedIn: EPOLL }), thread(101, { state: 'uninterruptible', blockedIn: null, wchan: 'nfs_wait' })])).findings, [
    { kind: 'uninterruptible', ref: { tid: 101 }, message: /in the kernel \(wchan nfs_wait\)/ },
  ]);
});

t.test('findings are sorted: most severe first, then by kind, then by subject', async (t) => {
  const report = compare(
    ...still([
      thread(100, { blockedIn: null }),
      thread(104, { blockedIn: EPOLL }),
      thread(103, { state: 'stopped' }),
      thread(102, { blockedIn: blocked('ioctl', 16, 7, '/dev/nvidia0') }),
      thread(101, { state: 'stopped' }),
    ]),
  );
  t.same(
    report.findings.map((f) => [f.severity, f.kind, f.ref.tid]),
    [
      ['critical', 'blocked-in-driver', 102],
      ['critical', 'stopped', 101],
      ['critical', 'stopped', 103],
      ['warning', 'stalled', 100],
    ],
  );
  t.equal(report.verdict, 'hung');
});

t.test('a probe that timed out is a critical finding; the same timeout again says so', async (t) => {
  const limit = { subject: 'accelerator 0000:01:00.0', field: 'nvml', code: 'ETIMEDOUT', reason: 'probe timed out: nvmlDeviceGetPowerUsage did not return within 200 ms' };
  const other = { subject: 'thread 101', field: 'kernelStack', code: 'EPERM', reason: 'not root' };
  const tracker = new ProgressTracker();
  const first = tracker.step(snap(0, [], { limits: [limit, other] }));
  t.same(first.findings, [
    {
      kind: 'probe-timed-out',
      severity: 'critical',
      subject: 'accelerator 0000:01:00.0',
      ref: {},
      message: 'reading nvml of accelerator 0000:01:00.0 did not return in time: the reading itself hung, so a driver or kernel path is stuck (probe timed out: nvmlDeviceGetPowerUsage did not return within 200 ms)',
      evidence: [{ field: 'nvml', before: null, after: 'ETIMEDOUT' }],
      durationMs: null,
    },
  ]);
  t.equal(first.verdict, 'hung');
  t.match(tracker.step(snap(1000, [], { limits: [limit] })).findings, [{ evidence: [{ before: 'ETIMEDOUT', after: 'ETIMEDOUT' }] }]);
  t.same(tracker.step(snap(2000, [])).findings, [], 'it returned');
  t.match(tracker.step(snap(3000, [], { limits: [limit] })).findings, [{ evidence: [{ before: null }] }]);
  t.match(compare(snap(0, []), snap(1000, [], { limits: [limit] })).findings, [{ kind: 'probe-timed-out' }], 'compare reads the hung snapshot limits');
  // Two timeouts of one subject: same severity, kind and subject; both kept, in the order read.
  const power = { ...limit, field: 'IOPowerManagement', reason: 'probe timed out: power' };
  const both = compare(snap(0, []), snap(1000, [], { limits: [power, limit] }));
  t.same(
    both.findings.map((f) => f.evidence[0]!.field),
    ['IOPowerManagement', 'nvml'],
  );
});

t.test('accelerators: counted in both snapshots; a baseline gives the first step its before', async (t) => {
  const gpu = accelerator();
  const report = compare(snap(0, [], { accelerators: [gpu] }), snap(1000, [], { accelerators: [gpu] }));
  t.same(report.accelerators, { before: 1, after: 1 });
  t.same(report.findings, []);
  const tracker = new ProgressTracker();
  tracker.setBaseline(snap(0, [], { accelerators: [gpu] }));
  const first = tracker.step(snap(1000, []));
  t.same(first.accelerators, { before: 1, after: 0 }, 'the baseline is the before of the first step');
  t.match(first.findings, [{ kind: 'accelerator-disappeared', ref: { accelerator: '0000:01:00.0' } }]);
});

t.test('a thread blocked on a device node is joined to the accelerator behind it', async (t) => {
  // The tracker hands threads blocked on /dev nodes to the accelerator rules; a node that is
  // not a GPU's is not joined to anything and changes nothing.
  const threads = [thread(100, { blockedIn: blocked('ioctl', 16, 3, '/dev/ttyS0') }), thread(101, { blockedIn: blocked('read', 0, 4, '/tmp/x') })];
  const report = compare(...still(threads), { stallMs: 1000, expectExit: true });
  t.match(report.findings, [{ kind: 'stalled', ref: { tid: 100 } }, { kind: 'stalled', ref: { tid: 101 } }]);
});

t.test('defaults: stallMs 1000, spinRatio 0.9, expectExit false', async (t) => {
  const tracker = new ProgressTracker();
  t.equal(tracker.stallMs, 1000);
  t.equal(tracker.spinRatio, 0.9);
  t.equal(tracker.expectExit, false);
  t.same(compare(...still([thread(100, { blockedIn: LOCKED })], 999)).findings, [], 'under a second: not yet');
  t.match(compare(...still([thread(100, { blockedIn: LOCKED })], 1000)).findings, [{ kind: 'stalled' }], 'at a second: stalled');
});

t.test('compare(a, b) judges exactly as two tracker steps do (a saved pair and a live watch agree)', async (t) => {
  const IOKIT_STACK = [
    { pc: 0x1a0001000, module: KERNEL, offset: 0x1000 },
    { pc: 0x1a2002000, module: IOKIT, offset: 0x2000 },
  ];
  const scenarios: [string, Snapshot, Snapshot, Parameters<typeof compare>[2]?][] = [
    ['deadlock', ...still([thread(100, { blockedIn: FUTEX }), thread(101, { blockedIn: LOCKED }), thread(102, { blockedIn: lockedOn(0x6000) })])],
    ['asleep since the first sample', ...still([thread(100, { blockedIn: FUTEX }), thread(101, { blockedIn: FUTEX })])],
    ['idle worker', ...still([thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: FUTEX })])],
    ['stopped since the healthy sample', snap(0, [proc(100, [thread(100, { blockedIn: EPOLL })])]), snap(3000, [proc(100, [thread(100, { state: 'stopped' })])])],
    ['stopped in both', ...still([thread(100, { state: 'stopped' })])],
    ['spinning', snap(0, [proc(100, [thread(100, { state: 'running', cpuNs: 0 })])]), snap(2000, [proc(100, [thread(100, { state: 'running', cpuNs: 1950e6 })])])],
    ['ioctl on a GPU', ...still([thread(100, { blockedIn: EPOLL }), thread(101, { blockedIn: blocked('ioctl', 16, 7, '/dev/nvidia0') })])],
    ['uninterruptible', ...still([thread(100, { state: 'uninterruptible', blockedIn: blocked('vfork', 58) })])],
    ['unknown main', ...still([thread(100, { blockedIn: null }), thread(101, { blockedIn: EPOLL })])],
    ['expectExit', ...still([thread(100, { blockedIn: EPOLL })]), { expectExit: true }],
    ['sleep with expectExit', ...still([thread(100, { blockedIn: blocked('clock_nanosleep', 230) })]), { expectExit: true }],
    ['a timed sleep and a child wait', ...still([thread(100, { blockedIn: blocked('clock_nanosleep', 230) }), thread(101, { blockedIn: blocked('wait4', 61) })])],
    ['darwin suspended', ...still([thread(9, { state: 'waiting', suspendCount: 1 })], 2000, DARWIN, 500)],
    ['darwin IOKit', ...still([thread(9, { state: 'waiting', blockedIn: blocked('mach_msg2_trap', -47), stack: IOKIT_STACK })], 19_200, DARWIN, 500)],
    [
      'spinning, the pc known only in the later sample',
      snap(0, [proc(100, [thread(100, { state: 'running', cpuNs: 0 })])]),
      snap(2000, [proc(100, [thread(100, { state: 'running', cpuNs: 1950e6, pc: 0x4000 })])]),
    ],
    [
      'spinning at the same pc',
      snap(0, [proc(100, [thread(100, { state: 'running', cpuNs: 0, pc: 0x4000 })])]),
      snap(2000, [proc(100, [thread(100, { state: 'running', cpuNs: 1950e6, pc: 0x4000 })])]),
    ],
    [
      'running at another pc: a computation that moves on',
      snap(0, [proc(100, [thread(100, { state: 'running', cpuNs: 0, pc: 0x4000 })])]),
      snap(2000, [proc(100, [thread(100, { state: 'running', cpuNs: 1950e6, pc: 0x5000 })])]),
    ],
    ['no context switches known', ...still([thread(100, { blockedIn: FUTEX, contextSwitches: null }), thread(101, { blockedIn: EPOLL, contextSwitches: null })])],
    ['pc moved', snap(0, [proc(100, [thread(100, { blockedIn: FUTEX, pc: 1 })])]), snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX, pc: 2 })])])],
    [
      'threads listed in another order',
      snap(0, [proc(100, [thread(100, { blockedIn: FUTEX }), thread(102, { blockedIn: EPOLL }), thread(101, { state: 'stopped' })])]),
      snap(2000, [proc(100, [thread(101, { state: 'stopped' }), thread(100, { blockedIn: FUTEX }), thread(102, { blockedIn: EPOLL })])]),
    ],
    [
      'a thread gone, a thread new, a process gone, a process new',
      snap(0, [proc(100, [thread(100, { blockedIn: FUTEX }), thread(101, { blockedIn: FUTEX })]), proc(200, [thread(200)])]),
      snap(2000, [proc(100, [thread(100, { blockedIn: FUTEX }), thread(103, { state: 'stopped' })]), proc(300, [thread(300, { state: 'stopped' })])]),
    ],
    [
      'a probe that timed out',
      snap(0, [], { limits: [{ subject: 'pid 5', field: 'threads', code: 'ETIMEDOUT', reason: 'x' }] }),
      snap(1000, [], { limits: [{ subject: 'pid 5', field: 'threads', code: 'ETIMEDOUT', reason: 'x' }] }),
    ],
  ];
  for (const [name, a, b, options] of scenarios) {
    const pair = compare(a, b, options);
    const tracker = new ProgressTracker(options);
    tracker.step(a);
    const stepped = tracker.step(b);
    t.same(stepped, pair, name);
  }
});

t.test('a main thread that left its baseline wait for an unnamed one, its stack read, while a worker idles in events: critical', async (t) => {
  const worker = thread(101, { blockedIn: EPOLL });
  const stuck = thread(100, { blockedIn: FUTEX, stack: frames('futex_wait@libc.so.6', 'Store::flush@libapp.so', 'main@app') });
  const tracker = new ProgressTracker({ stallMs: 1000 });
  tracker.setBaseline(snap(0, [proc(100, [thread(100, { blockedIn: blocked('clock_nanosleep', 230) }), worker])]));
  tracker.step(snap(10_000, [proc(100, [stuck, worker])]));
  const report = tracker.step(snap(12_000, [proc(100, [stuck, worker])]));
  t.match(findingsOf(report, 100), [{ kind: 'stalled', severity: 'critical', message: /^stalled in futex .*: it waits on a lock or condition that nobody releases; it left the wait it had in the baseline for this one$/ }]);

  // Where it waited so in the baseline too, it is waiting for work (not a finding without expectExit).
  const same = new ProgressTracker({ stallMs: 1000 });
  same.setBaseline(snap(0, [proc(100, [stuck, worker])]));
  same.step(snap(10_000, [proc(100, [stuck, worker])]));
  t.same(findingsOf(same.step(snap(12_000, [proc(100, [stuck, worker])])), 100), []);
});

t.test('takeExaminations: at most `limit` threads a process each time, the rest the next time, each asked once', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  tracker.examine();
  const threads = [100, 101, 102].map((tid) => thread(tid, { blockedIn: FUTEX }));
  const other = [thread(200, { blockedIn: FUTEX })];
  tracker.step(snap(0, [proc(100, threads), proc(200, other)]));
  tracker.step(snap(1000, [proc(100, threads), proc(200, other)]));
  t.same(tracker.takeExaminations(2), [
    { pid: 100, tids: [100, 101] },
    { pid: 200, tids: [200] },
  ]);
  t.same(tracker.takeExaminations(2), [{ pid: 100, tids: [102] }], 'the rest of pid 100');
  t.same(tracker.takeExaminations(2), [], 'nothing asked twice');
});
