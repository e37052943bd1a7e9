/**
 * watchHost() and its cheap pass on real processes in known states (test/targets/target.c):
 * the hung ones (a mutex deadlock, a stopped process, a vfork parent in D) are reported with
 * their labels, the idle ones (a sleeper, an epoll loop, a fifo reader, a pool of sleeping
 * threads) never, and they are settled out of the full watch. Selection keeps to the test's
 * own targets (name ^target$ and their pids), so other processes on the machine do not count.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProgressTracker } from '../src/analyze/progress';
import { IokitSnapError } from '../src/errors';
import { watchHost, HostWatcher, settleRequests, type HostEvent, type HostErrorEvent, type HostPassEvent, type HostProcessEvent } from '../src/host/watch';
import * as api from '../src/index';
import { cgroupPath } from '../src/host/labels';
import { binding, type RawHostScanner } from '../src/native';
import type { ProcessSample, ThreadSample } from '../src/types';
import { start, waitFor, type Target } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the host scan reads /proc (Linux)';
// No stack walks: the targets of tests running beside this one are named "target" too, and a walk stirs their waits.
const FAST = { intervalMs: 100, stallMs: 1000, stacks: false };
const DEADLINE_MS = 20000;

type Of<K extends HostEvent['type']> = Extract<HostEvent, { type: K }>;

function record(w: HostWatcher): { events: HostEvent[]; of<K extends HostEvent['type']>(type: K): Of<K>[] } {
  const log = {
    events: [] as HostEvent[],
    of<K extends HostEvent['type']>(type: K) {
      return log.events.filter((e): e is Of<K> => e.type === type);
    },
  };
  for (const type of ['pass', 'sample', 'hang', 'recover', 'exit', 'error'] as const) w.on(type, (e: HostEvent) => log.events.push(e));
  return log;
}

/** A fifo this process holds open for writing and never writes: its reader waits idle (as in the threads tests). */
function fifo(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-host-'));
  const file = path.join(dir, 'requests');
  execFileSync('mkfifo', [file]);
  const writer = fs.openSync(file, fs.constants.O_RDWR);
  t.teardown(() => {
    fs.closeSync(writer);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return file;
}

t.test('a host of real processes: exactly the hung ones are reported, with labels; the idle ones are settled out of the full watch', { skip: linux }, async (t) => {
  const hung = { deadlock: await start(t, 'deadlock'), stopped: await start(t, 'sleep'), vfork: await start(t, 'vfork-parent') };
  const idle = { sleep: await start(t, 'sleep'), epoll: await start(t, 'epoll-idle'), fifo: await start(t, 'fifo-reader', [fifo(t)]), pool: await start(t, 'threads', ['20']) };
  process.kill(hung.stopped.pid, 'SIGSTOP');
  const ours = new Set<number>([...Object.values(hung), ...Object.values(idle)].map((x: Target) => x.pid));
  const vforkChild = Number(hung.vfork.info.child);
  const name = (pid: number): string => Object.entries({ ...hung, ...idle }).find(([, v]) => v.pid === pid)?.[0] ?? String(pid);
  const w = watchHost({ ...FAST, include: [{ name: '^target$' }] });
  t.teardown(() => w.close());
  const log = record(w);
  const reported = (): Set<number> => new Set(log.of('hang').map((e) => e.pid));
  await waitFor(() => [hung.deadlock.pid, hung.stopped.pid, hung.vfork.pid].every((pid) => reported().has(pid)), 'a hang for each planted one', DEADLINE_MS);
  // Every idle one is judged healthy over a stall window, and settled: only the hung ones (and the vfork child, a D-state partner) stay watched.
  await waitFor(() => Object.values(idle).every((x) => !w.watchedPids.includes(x.pid)), 'the idle ones settled out of the full watch', DEADLINE_MS);
  const troubled = log.of('sample').filter((e) => e.verdict !== 'healthy' && ours.has(e.pid) && !Object.values(hung).some((h) => h.pid === e.pid));
  t.same(troubled.map((e) => `${name(e.pid)}: ${e.findings.map((f) => f.kind).join(', ')}`), [], 'no idle process was ever judged suspect or hung');
  t.notOk([...reported()].some((pid) => Object.values(idle).some((x) => x.pid === pid)), 'no hang for an idle one');
  for (const pid of [hung.deadlock.pid, hung.stopped.pid, hung.vfork.pid]) t.ok(w.watchedPids.includes(pid), `${name(pid)} stays watched while hung`);
  // What a responder reads: who, where, in what.
  const deadlock = log.of('hang').find((e) => e.pid === hung.deadlock.pid)!;
  t.match(deadlock.labels, { pid: hung.deadlock.pid, name: 'target', uid: process.getuid!(), kernel: false, devices: Array });
  t.equal(deadlock.labels.cgroup, cgroupPath(fs.readFileSync(`/proc/${hung.deadlock.pid}/cgroup`, 'utf8')), 'the cgroup path of its /proc/PID/cgroup');
  t.ok(deadlock.report.findings.some((f) => f.severity === 'critical' && /lock in futex/.test(f.message)), 'the deadlock is a lock wait in futex');
  t.ok(log.of('hang').find((e) => e.pid === hung.vfork.pid)!.report.findings.some((f) => /uninterruptible/.test(f.kind)), 'the vfork parent: D state');
  t.ok(log.of('hang').find((e) => e.pid === hung.stopped.pid)!.report.findings.some((f) => f.kind === 'stopped'), 'the stopped one: stopped');
  const pass = await waitFor(() => log.of('pass').find((p) => p.verdicts.hung >= 3), 'a pass that counts the three hung processes');
  t.ok(pass.threads >= 30 && pass.processes >= 7, 'the pass read every thread of the targets');
  t.ok(pass.durationMs >= 0 && pass.keyReads >= 0 && pass.labelReads >= 0);
  t.ok(w.labelsOf(hung.deadlock.pid) !== undefined && w.labelsOf(process.pid) === undefined, 'its own process is never scanned');

  // A settled idle process stopped later: its leader's state makes every thread a candidate again.
  process.kill(idle.sleep.pid, 'SIGSTOP');
  await waitFor(() => log.of('hang').some((e) => e.pid === idle.sleep.pid), 'a hang for the sleeper stopped after it was settled', DEADLINE_MS);
  // A recovery: SIGCONT, and the stopped one runs (sleeps) again.
  process.kill(hung.stopped.pid, 'SIGCONT');
  await waitFor(() => log.of('recover').some((e) => e.pid === hung.stopped.pid), 'the stopped one recovering', DEADLINE_MS);
  // An exit of a watched process.
  await hung.deadlock.stop();
  await waitFor(() => log.of('exit').some((e) => e.pid === hung.deadlock.pid), 'the deadlock exiting', DEADLINE_MS);
  await waitFor(() => !w.watchedPids.includes(hung.deadlock.pid), 'its watch ended');
  t.ok(vforkChild > 0);
  // A settled process that exits: what the scan kept of it goes at the next pass (its pid is no longer listed).
  await idle.epoll.stop();
  const passes = log.of('pass').length;
  await waitFor(() => log.of('pass').length > passes + 1, 'a pass after it exited');
  t.equal(w.labelsOf(idle.epoll.pid), undefined, 'forgotten');
  w.close();
  await w.done;
  t.equal(w.watchedPids.length, 0, 'close() ends every full watch');
});

t.test('selectors: include and exclude by name, uid and cgroup; the async iterator', { skip: linux }, async (t) => {
  const a = await start(t, 'sleep');
  const b = await start(t, 'deadlock');
  const own = fs.readFileSync(`/proc/${a.pid}/cgroup`, 'utf8');
  const cgroup = cgroupPath(own)!;
  const seen = async (options: Parameters<typeof watchHost>[0]): Promise<Set<number>> => {
    const w = watchHost({ ...FAST, ...options });
    const found = new Set<number>();
    let passes = 0;
    for await (const event of w) {
      if (event.type === 'pass' && ++passes >= 2) break; // leaving the loop closes it
    }
    await w.done;
    for (const pid of [a.pid, b.pid]) if (w.labelsOf(pid) !== undefined) found.add(pid);
    return found;
  };
  t.same(await seen({ include: [{ name: '^target$', uid: process.getuid!() }], exclude: [{ name: /^nothing$/ }] }), new Set([a.pid, b.pid]), 'name and uid');
  t.same(await seen({ include: [{ name: '^target$', uid: process.getuid!() + 1 }] }), new Set(), 'another uid selects neither');
  t.same(await seen({ include: [{ name: '^target$' }], exclude: [{ name: 'target' }] }), new Set(), 'exclude wins');
  t.same(await seen({ include: [{ name: '^target$', cgroup }] }), new Set([a.pid, b.pid]), `cgroup ${cgroup}`);
  t.same(await seen({ include: [{ name: '^target$', cgroup: '/' }] }), new Set([a.pid, b.pid]), 'cgroup / holds everything');
  t.same(await seen({ include: [{ name: '^target$', cgroup: '/no/such/slice' }] }), new Set(), 'a cgroup elsewhere');
});

t.test('a process not selected that execs a selected program is looked at again by its new name', { skip: linux }, async (t) => {
  const { spawn } = await import('node:child_process');
  // `sh` waits for `sleep 1`, then becomes `sleep 30` under the same pid.
  const sh = spawn('sh', ['-c', 'sleep 1; exec sleep 30'], { stdio: 'ignore' });
  t.teardown(() => sh.kill('SIGKILL'));
  const w = watchHost({ ...FAST, passMs: 50, include: [{ name: '^sleep$' }] });
  t.teardown(() => w.close());
  await waitFor(() => /^sh\n?$/.test(fs.readFileSync(`/proc/${sh.pid!}/comm`, 'utf8')) && w.labelsOf(sh.pid!) === undefined, 'sh, not selected');
  await waitFor(() => w.labelsOf(sh.pid!)?.name === 'sleep', 'the same pid selected as sleep after its exec', DEADLINE_MS);
  w.close();
  await w.done;
});

t.test('options are checked: EINVAL naming the option', { skip: linux }, async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /options must be an object/],
    [{ intervalMs: -1 }, /intervalMs/],
    [{ stacks: 'yes' }, /stacks/],
    [{ detail: 'most' }, /detail must be 'basic' or 'full'/],
    [{ maxWatched: 0 }, /maxWatched/],
    [{ procRoot: 7 }, /procRoot/],
    [{ signal: {} }, /signal must be an AbortSignal/],
    [{ include: 'x' }, /include must be an array/],
    [{ include: [null] }, /include\[0\] must be/],
    [{ include: [{ name: '(' }] }, /is not a regular expression/],
    [{ include: [{ name: 5 }] }, /name must be a regular expression/],
    [{ exclude: [{ cgroup: '' }] }, /cgroup must be/],
    [{ exclude: [{ uid: -1 }] }, /uid must be a uid/],
    [{ exclude: [{}] }, /selects nothing/],
  ];
  for (const [options, message] of bad) {
    t.throws(() => watchHost(options as never), { code: 'EINVAL', message }, JSON.stringify(options));
  }
  // An aborted signal: nothing is scanned; a signal aborted later stops it.
  const aborted = watchHost({ signal: AbortSignal.abort() });
  await aborted.done;
  const controller = new AbortController();
  const w = watchHost({ ...FAST, include: [{ name: '^no process has this name$' }], signal: controller.signal, exclude: [{ cgroup: '/x/' }] });
  await new Promise((resolve) => w.once('pass', resolve));
  controller.abort();
  await w.done;
  t.pass('stopped by its signal');
  t.equal(api.watchHost, watchHost, 'exported from the package');
  t.equal(api.HostWatcher, HostWatcher);
});

t.test('a pass that misses its deadline: an error naming the process it was reading, left out from then on', { skip: linux }, async (t) => {
  const target = await start(t, 'threads', ['50']);
  const w = new HostWatcher({ ...FAST, include: [{ name: '^target$' }], timeoutMs: 1 });
  t.teardown(() => w.close());
  const log = record(w);
  const error = await waitFor(() => log.of('error')[0], 'a timed-out pass');
  t.equal(error.error.code, 'ETIMEDOUT');
  t.ok(error.error instanceof IokitSnapError);
  if (error.pid !== undefined) t.match(error.error.message, new RegExp(`reading /proc/${error.pid}/`));
  w.close();
  await w.done;
  t.ok(target.pid > 0);
});

t.test('a procfs that is not there: ENOENT, and the scan ends', { skip: linux }, async (t) => {
  const w = watchHost({ ...FAST, procRoot: '/nonexistent-proc' });
  const log = record(w);
  await w.done;
  t.match(log.of('error')[0]?.error, { code: 'ENOENT', message: /cannot list \/nonexistent-proc/ });
});

t.test('labels that cannot be read in time are a limit; processes are judged without them; maxWatched bounds the full watches', { skip: linux }, async (t) => {
  const a = await start(t, 'deadlock');
  const b = await start(t, 'deadlock');
  const native = binding();
  const readLabels = native.readLabels;
  native.readLabels = () => new Promise(() => undefined); // a cgroup read that never returns
  t.teardown(() => {
    native.readLabels = readLabels;
  });
  const w = watchHost({ ...FAST, include: [{ name: '^target$' }], maxWatched: 1, timeoutMs: 300 });
  t.teardown(() => w.close());
  const log = record(w);
  const labelsLimit = await waitFor(() => log.of('pass').flatMap((p) => p.limits).find((l) => l.field === 'labels'), 'a labels limit');
  t.equal(labelsLimit.code, 'ETIMEDOUT');
  native.readLabels = readLabels;
  const waiting = await waitFor(() => log.of('pass').flatMap((p) => p.limits).find((l) => l.code === 'EAGAIN'), 'a process waiting for a full watch');
  t.match(waiting.reason, /1 processes are watched in full already/);
  t.equal(w.watchedPids.length, 1);
  t.equal(w.labelsOf(a.pid)?.cgroup ?? w.labelsOf(b.pid)?.cgroup, null, 'no cgroup when it could not be read');
});

t.test('the cheap pass (native): still threads are candidates until settled, and tid 0 gives them back', { skip: linux }, async (t) => {
  const target = await start(t, 'threads', ['4']);
  const scanner: RawHostScanner = binding().openHostScanner!({});
  t.teardown(() => scanner.close());
  const pids = Int32Array.of(target.pid);
  const first = await scanner.scan(pids, new Int32Array(0));
  const fresh = first.processes.find((p) => p.pid === target.pid)!;
  t.ok(fresh.fresh && fresh.identity !== undefined, 'the first pass says who it is');
  t.equal(fresh.identity!.name, 'target');
  t.equal(fresh.newThreads.length, 5, 'five threads, none with an earlier value');
  const second = await waitFor(async () => {
    const pass = await scanner.scan(pids, Int32Array.of(target.pid));
    const p = pass.processes.find((x) => x.pid === target.pid)!;
    return p.candidates.length === 5 && p;
  }, 'every sleeping thread a candidate');
  t.same([...second.tids].sort(), [...second.candidates].sort(), 'a detailed process lists every tid');
  scanner.settle(Float64Array.from(second.tids.flatMap((tid) => [target.pid, tid, -1, -1])));
  const settled = await scanner.scan(pids, Int32Array.of(target.pid));
  const s = settled.processes.find((x) => x.pid === target.pid)!;
  t.equal(s.candidates.length, 0, 'settled: no candidates');
  t.equal(s.settled, 5);
  const quiet = await scanner.scan(pids, new Int32Array(0));
  t.notOk(quiet.processes.some((x) => x.pid === target.pid), 'a process with nothing to say is only counted');
  t.equal(quiet.unchangedProcesses, 1, 'none of its threads ran: its CPU clock did not move');
  t.equal(quiet.threadReads, 0, 'so nothing of it was read');
  t.equal(quiet.threadCount, 5, 'and its five threads are covered');
  // Stopped: every thread is a candidate, settled or not, also in the passes that read nothing of it.
  process.kill(target.pid, 'SIGSTOP');
  await waitFor(() => /\) T /.test(fs.readFileSync(`/proc/${target.pid}/stat`, 'utf8')), 'the target stopped');
  const stoppedRead = await scanner.scan(pids, new Int32Array(0));
  t.equal(stoppedRead.processes.find((x) => x.pid === target.pid)?.candidates.length, 5, 'stopped: every thread a candidate');
  // (Each thread stops on its own when it gets the signal: a pass may still see the last ones move.)
  const stoppedQuiet = await waitFor(async () => {
    const pass = await scanner.scan(pids, new Int32Array(0));
    return pass.unchangedProcesses === 1 && pass;
  }, 'a pass in which none of its threads ran');
  t.equal(stoppedQuiet.processes.find((x) => x.pid === target.pid)?.candidates.length, 5, 'still, and still every thread a candidate');
  process.kill(target.pid, 'SIGCONT');
  await waitFor(() => !/\) T /.test(fs.readFileSync(`/proc/${target.pid}/stat`, 'utf8')), 'the target running again');
  await scanner.scan(pids, new Int32Array(0));
  // tid 0: every thread of the process a candidate again.
  scanner.settle(Float64Array.of(target.pid, 0, -1, -1));
  const again = await scanner.scan(pids, new Int32Array(0));
  t.equal(again.processes.find((x) => x.pid === target.pid)?.candidates.length, 5, 'unsettled by tid 0 (or by the SIGCONT: the sleepers woke in their wait)');
  t.equal(scanner.reading(), null, 'reads nothing between passes');
  // Bad arguments.
  t.throws(() => scanner.scan([1] as never, new Int32Array(0)), { code: 'EINVAL' });
  t.throws(() => scanner.scan(Int32Array.of(0), new Int32Array(0)), { code: 'EINVAL' });
  t.throws(() => scanner.settle(Float64Array.of(1, 2, 3)), { code: 'EINVAL' });
  t.throws(() => scanner.settle(Float64Array.of(0.5, 2, 3, 4)), { code: 'EINVAL' });
  t.throws(() => scanner.settle([] as never), { code: 'EINVAL' });
  // A pass over 200,000 pids (none of them there) takes tens of milliseconds; a second call comes within microseconds.
  const everyone = binding().openHostScanner!({});
  const all = Int32Array.from({ length: 200000 }, (_, i) => 0x7f000000 + i);
  const inFlight = everyone.scan(all, new Int32Array(0));
  t.throws(() => everyone.scan(all, new Int32Array(0)), { code: 'EAGAIN' }, 'one pass at a time');
  everyone.close(); // while the pass is in flight: it is freed when the pass ends
  t.equal((await inFlight).processes.filter((p) => p.status === 'gone').length, 200000, 'each one gone');
  await target.stop();
  const gone = await scanner.scan(pids, new Int32Array(0));
  t.equal(gone.processes.find((x) => x.pid === target.pid)?.status, 'gone');
  scanner.close();
  t.throws(() => scanner.scan(pids, new Int32Array(0)), { code: 'EINVAL' }, 'closed');
  await t.rejects(binding().openHostScanner!({ procRoot: '/nonexistent' }).scan(pids, new Int32Array(0)), { code: 'ENOENT' });
});

t.test('the cheap pass: a kernel thread is read by its state alone', { skip: linux }, async (t) => {
  const kthreadd = 2;
  const stat = fs.readFileSync(`/proc/${kthreadd}/stat`, 'utf8');
  t.ok(/\) [A-Z] 0 /.test(stat), 'pid 2 is kthreadd');
  const scanner = binding().openHostScanner!({});
  t.teardown(() => scanner.close());
  const pass = await scanner.scan(Int32Array.of(kthreadd), Int32Array.of(kthreadd));
  const p = pass.processes[0];
  t.equal(p.identity?.kernel, true);
  t.equal(p.threads, 1);
  t.same(p.candidates, [], 'not in D: nothing could be stuck');
  t.same(p.tids, [kthreadd], 'detailed');
  const labels = await binding().readLabels!(Int32Array.of(kthreadd, 0x7fff0000), {});
  t.equal(labels[0].found, true);
  t.equal(labels[1].found, false, 'a pid that is not there');
});

t.test('settleRequests: idle waits are settled with their call and first argument; what a judgement must see again is not', async (t) => {
  const thread = (tid: number, over: Partial<ThreadSample>): ThreadSample => ({
    tid,
    name: 'x',
    state: 'sleeping',
    userNs: 0,
    systemNs: 0,
    contextSwitches: null,
    suspendCount: null,
    blockedIn: null,
    ...over,
  });
  const sample: ProcessSample = {
    pid: 10,
    name: 'x',
    sampledAtNs: 0,
    threads: [
      thread(11, { blockedIn: { call: 'futex', number: 202, futex: { address: 4096, op: 'wait_bitset', value: 0 } } }),
      thread(12, { blockedIn: { call: 'epoll_wait', number: 232, fd: 5 } }),
      thread(13, { blockedIn: { call: 'nanosleep', number: 35 } }),
      thread(14, {}),
      thread(15, { blockedIn: { call: 'read', number: -1, fd: 3 } }),
      thread(20, { state: 'running' }),
      thread(21, { state: 'uninterruptible' }),
      thread(22, { state: 'stopped' }),
      thread(23, { blockedIn: { call: 'futex', number: 202, futex: { address: 8, op: 'wait', value: 2 } } }),
      thread(24, { blockedIn: { call: 'futex', number: 202, joining: 11 } }),
      thread(25, { blockedIn: { call: 'ioctl', number: 16, fd: 7, target: '/dev/nvidia0' } }),
    ],
  };
  t.same(settleRequests(sample), [10, 11, 202, 4096, 10, 12, 232, 5, 10, 13, 35, -1, 10, 14, -1, -1, 10, 15, -1, 3]);
});

t.test('a scheduler-clock calibration a busy CPU did not run is our limit, not a probe-timed-out finding', async (t) => {
  const tracker = new ProgressTracker({ stallMs: 1000 });
  const limit = { subject: 'pid 1', field: 'offCpuNs', code: 'ETIMEDOUT', reason: 'CPU 1 did not run the calibration within 100 ms' };
  const step = (ns: number, limits: typeof limit[]) => tracker.step({ monotonicNs: ns, processes: [], accelerators: [], limits });
  step(0, []);
  t.same(step(1e9, [limit]).findings, [], 'no finding');
  t.equal(step(2e9, [{ ...limit, field: 'threads' }]).findings[0]?.kind, 'probe-timed-out', 'a threads probe that timed out still is one');
});

// Keep the types exercised: a HostPassEvent, a process event and an error event are what the iterator yields.
export type Yielded = HostPassEvent | HostProcessEvent | HostErrorEvent;

t.test('the edges of a host watch: a full iterator queue, a pass stuck on a known process, odd /proc entries, events after a watch', { skip: linux }, async (t) => {
  // Odd entries in a /proc-shaped tree: only positive integer names are pids; an empty pid directory is a process gone.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-hostproc-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const name of ['0', '12x', '7', 'self']) fs.mkdirSync(path.join(root, name));
  const fake = watchHost({ ...FAST, procRoot: root });
  const fakeLog = record(fake);
  await waitFor(() => fakeLog.of('pass').length >= 1, 'a pass over the fake tree');
  fake.close();
  await fake.done;
  t.equal(fakeLog.of('pass')[0].processes, 0, 'nothing there is a process');
  // A procRoot that is a file: EIO.
  const file = path.join(root, 'file');
  fs.writeFileSync(file, '');
  const notDir = watchHost({ ...FAST, procRoot: file });
  const notDirLog = record(notDir);
  await notDir.done;
  t.equal(notDirLog.of('error')[0]?.error.code, 'EIO');

  // A pass stuck on a process the scan knows: its name in the error, and it is left out.
  const target = await start(t, 'sleep');
  const native = binding();
  const open = native.openHostScanner!;
  let scans = 0;
  native.openHostScanner = (options) => {
    const real = open(options);
    return {
      scan: (pids, detail) => (++scans === 3 || scans === 6 ? new Promise(() => undefined) : real.scan(pids, detail)),
      settle: (requests) => real.settle(requests),
      reading: () => (scans === 3 ? { pid: target.pid, file: 'syscall' } : scans === 6 ? { pid: 0x7ffffff0, file: 'stat' } : real.reading()),
      close: () => real.close(),
    };
  };
  t.teardown(() => {
    native.openHostScanner = open;
  });
  const w = watchHost({ ...FAST, include: [{ name: '^target$' }], timeoutMs: 500 });
  t.teardown(() => w.close());
  const log = record(w);
  const stuck = await waitFor(() => log.of('error')[0], 'the stuck pass');
  t.match(stuck, { pid: target.pid, labels: { name: 'target' }, error: { code: 'ETIMEDOUT', message: new RegExp(`reading /proc/${target.pid}/syscall \\(target\\): that process is left out`) } });
  await waitFor(() => log.of('pass').length >= 3, 'passes go on with a new scanner');
  const unknown = await waitFor(() => log.of('error').find((e) => e.pid === 0x7ffffff0), 'a pass stuck on a process it did not know');
  t.equal(unknown.labels, undefined);
  t.match(unknown.error.message, /reading \/proc\/2147483632\/stat: that process/);
  t.equal(w.labelsOf(target.pid), undefined, 'the stuck process is not scanned again');

  // Events of a process's watch: a sub-watch that fails (ESRCH: gone before its first sample) says nothing;
  // another error is published with the process's labels; a discarded window changes no verdict.
  const internals = w as unknown as { startWatch(pid: number, labels: object): void; watched: Map<number, { watcher: NodeJS.EventEmitter; verdict: string }> };
  const labels = { pid: 0x7fff0000, name: 'gone', uid: 0, kernel: false, cgroup: null, unit: null, container: null, pod: null, devices: [] };
  internals.startWatch(0x7fff0000, labels);
  await waitFor(() => !internals.watched.has(0x7fff0000), 'the failed watch ends');
  t.notOk(log.of('error').some((e) => e.pid === 0x7fff0000), 'ESRCH is no error of the scan');
  const other = await start(t, 'sleep');
  internals.startWatch(other.pid, { ...labels, pid: other.pid, name: 'target' });
  const sub = internals.watched.get(other.pid)!;
  sub.watcher.emit('error', { type: 'error', at: '', monotonicNs: 0, error: new IokitSnapError('EIO', 'a read failed') });
  t.match(log.of('error').at(-1), { pid: other.pid, labels: { name: 'target' }, error: { code: 'EIO' } });
  sub.watcher.emit('sample', { type: 'sample', at: '', monotonicNs: 0, verdict: 'hung', findings: [], threads: 1, cpu: [], discarded: { reason: 'late', lateMs: 1 } });
  t.equal(sub.verdict, 'healthy', 'a discarded window is no verdict');

  // The iterator: a consumer that does not read keeps at most 256 events, dropping passes and samples first.
  const it = w[Symbol.asyncIterator]();
  const publish = (w as unknown as { publish(e: HostEvent): void }).publish.bind(w);
  const pass = log.of('pass')[0];
  for (let i = 0; i < 300; i++) publish({ type: 'exit', at: '', monotonicNs: i, pid: 1, labels: labels as never });
  publish(pass);
  publish({ type: 'exit', at: '', monotonicNs: 999, pid: 1, labels: labels as never });
  const first = await it.next();
  t.equal(first.done, false);
  t.ok((first.value as Of<'exit'>).monotonicNs > 0, 'the oldest were dropped');
  await it.return!();
  t.same(await it.next(), { value: undefined, done: true }, 'a finished iterator stays finished');
  w.close();
  await w.done;
});
