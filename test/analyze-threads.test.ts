/**
 * compare(healthy, hung) on real processes in known states (test/targets/target.c): two
 * threads-only snapshots of one target, the second taken once stallMs has passed on the
 * monotonic clock. Every wait polls with a deadline; every target is killed in teardown.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compare } from '../src/analyze';
import type { Report } from '../src/analyze/types';
import { monotonicNs } from '../src/sample';
import type { Snapshot } from '../src/types';
import { evidenceOf, findingsOf, snapshotPair, start, threadIn, threadsOf } from './helpers/analyze';
import { waitFor, type Target } from './helpers/targets';

const STALL_MS = 300;

function mainOf(s: Snapshot, pid: number) {
  return threadIn(s, pid);
}

/** The main thread asleep in `call`: parked, not on its way in (a sample taken on the way in sees CPU move after it). */
function parkedIn(s: Snapshot, pid: number, call: RegExp): boolean {
  const main = mainOf(s, pid);
  return main?.state === 'sleeping' && call.test(main.blockedIn?.call ?? '');
}

/**
 * A reader blocked in read on a fifo that this process holds open for writing and never
 * writes unless the test does (O_RDWR on a fifo does not block, and makes this process that writer).
 */
async function fifoReader(t: Test): Promise<{ fifo: string; writer: number; target: Target }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-analyze-fifo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'requests');
  execFileSync('mkfifo', [fifo]);
  const writer = fs.openSync(fifo, fs.constants.O_RDWR);
  t.teardown(() => fs.closeSync(writer));
  return { fifo, writer, target: await start(t, 'fifo-reader', [fifo]) };
}

function describe(report: Report): string {
  return JSON.stringify(report.findings.map((f) => [f.severity, f.kind, f.subject, f.message]));
}

if (process.platform === 'linux') linuxTests();
else t.plan(0, 'live compare() is tested against the Linux targets');

function linuxTests(): void {
  t.test('deadlock: hung; threads a and b each stalled in futex, critical', async (t) => {
    const target = await start(t, 'deadlock');
    const inFutex = (s: Snapshot, tid: string) => threadIn(s, tid)?.blockedIn?.call === 'futex' && threadIn(s, tid)?.state === 'sleeping';
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => inFutex(s, target.info.a!) && inFutex(s, target.info.b!));
    const report = compare(healthy, hung, { stallMs: STALL_MS });
    t.equal(report.verdict, 'hung', describe(report));
    for (const tid of [target.info.a!, target.info.b!]) {
      const found = findingsOf(report, tid);
      t.equal(found.length, 1, `one finding for thread ${tid}`);
      const [finding] = found;
      t.match(finding, {
        kind: 'stalled',
        severity: 'critical',
        ref: { pid: target.pid, tid: Number(tid) },
        subject: `pid ${target.pid} (target) thread ${tid} 'target'`,
        // glibc's mutex sleeps in FUTEX_WAIT expecting 2: a lock acquisition even without a stack.
        message: /^blocked acquiring a lock in futex for at least .* with no CPU progress and no context switches: 1 other thread of the process waits on locks the same way: a deadlock/,
      });
      t.same(evidenceOf(finding!, 'blockedIn.call'), { field: 'blockedIn.call', before: 'futex', after: 'futex' });
      t.ok(finding!.durationMs! >= STALL_MS, `held for ${finding!.durationMs} ms`);
    }
    t.match(
      findingsOf(report, target.pid),
      [{ kind: 'waiting', severity: 'info', subject: /\(main\)$/, message: /^joining thread \d+ .*\(pthread_join\): it waits for that thread to exit, which is stalled \(critical\): blocked acquiring a lock in futex/ }],
      'main waits in pthread_join, and the finding points at the thread it joins',
    );
    t.match(report.processes, [{ pid: target.pid, name: 'target', threads: 3, idle: 0, cpuNs: 0 }]);
    t.ok(report.windowMs! >= STALL_MS);
    t.same(report.notes, []);
  });

  t.test('fifo reader: a daemon waiting for its writer is idle; a command that should have finished is suspect, and the finding names the fifo', async (t) => {
    const { fifo, target } = await fifoReader(t);
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => parkedIn(s, target.pid, /^read$/));
    const idle = compare(healthy, hung, { stallMs: STALL_MS });
    t.equal(idle.verdict, 'healthy', `waiting for input where it waited before is how a reader idles: ${describe(idle)}`);
    const report = compare(healthy, hung, { stallMs: STALL_MS, expectExit: true });
    t.equal(report.verdict, 'suspect', describe(report));
    const [finding] = findingsOf(report, target.pid);
    t.match(finding, {
      kind: 'stalled',
      severity: 'warning',
      message: `waits in read on ${fifo} (fd ${target.info.fd})`,
    });
    // The writer is this test (not sampled): named, as the other end.
    t.match(finding!.message, new RegExp(`on pid ${process.pid} \\(node\\) \\(not sampled\\): the command should have finished`));
    t.same(evidenceOf(finding!, 'blockedIn.target'), { field: 'blockedIn.target', before: fifo, after: fifo });
    t.same(evidenceOf(finding!, 'blockedIn.call'), { field: 'blockedIn.call', before: 'read', after: 'read' });
  });

  t.test('a thread that progressed between the samples is not stalled', async (t) => {
    const { writer, target } = await fifoReader(t);
    const inRead = (s: Snapshot) => mainOf(s, target.pid)?.blockedIn?.call === 'read' && mainOf(s, target.pid)?.state === 'sleeping';
    const healthy = await waitFor(async () => {
      const s = await threadsOf(target.pid);
      return inRead(s) && s;
    }, 'the reader in read');
    const before = mainOf(healthy, target.pid)!;
    // One byte: the reader wakes, reads it, and goes back to the same read on the same fd.
    fs.writeSync(writer, 'x');
    const firstAt = healthy.processes[0]!.sampledAtNs;
    const hung = await waitFor(async () => {
      if (monotonicNs() - firstAt < (STALL_MS + 50) * 1e6) return false;
      const s = await threadsOf(target.pid);
      const now = mainOf(s, target.pid);
      return inRead(s) && now!.contextSwitches!.voluntary > before.contextSwitches!.voluntary && s;
    }, 'the reader back in read, one wake-up later');
    const report = compare(healthy, hung, { stallMs: STALL_MS });
    t.same(report.findings, [], `same call, same fd, but it moved: ${describe(report)}`);
    t.equal(report.verdict, 'healthy');
    t.ok(report.processes[0]!.cpuNs > 0, 'the CPU it used to read the byte is counted');

    // The control: the same reader, left alone for another stallMs, is stalled.
    const later = await waitFor(async () => {
      if (monotonicNs() - hung.processes[0]!.sampledAtNs < (STALL_MS + 50) * 1e6) return false;
      return threadsOf(target.pid);
    }, `${STALL_MS} ms more`);
    t.match(compare(hung, later, { stallMs: STALL_MS, expectExit: true }).findings, [{ kind: 'stalled', ref: { tid: target.pid } }]);
  });

  t.test('spin: busy, an info finding (CPU time is progress), verdict healthy', async (t) => {
    const target = await start(t, 'spin');
    // On a loaded 2-core machine a spinner can get well under the default 90 % of a core
    // (the threshold itself is tested on synthetic samples in analyze-compare): judge it at
    // 20 %, which an idle or blocked thread never reaches, and retry a window it was starved in.
    const report = await waitFor(async () => {
      const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => mainOf(s, target.pid)?.state === 'running');
      const r = compare(healthy, hung, { stallMs: STALL_MS, spinRatio: 0.2 });
      // Spinning, or starved where the load kept it waiting for a CPU most of the window.
      return r.findings.some((f) => f.kind === 'spinning' || f.kind === 'starved') && r;
    }, 'a window in which the spinner wanted the CPU');
    t.not(report.verdict, 'hung', 'a thread using CPU is never hung');
    t.match(report.findings, [
      {
        kind: /^(spinning|starved)$/,
        severity: /^(info|warning)$/,
        ref: { pid: target.pid, tid: target.pid },
        message: /^(busy: .* of CPU in .* \(\d+%\)(?: and .* waiting for a CPU)?, never blocking: computing|starved of CPU: )/,
      },
    ]);
    if (report.findings[0]!.kind === 'spinning') t.equal(report.verdict, 'healthy', 'busy computing is healthy');
    t.ok(report.findings[0]!.evidence.some((e) => e.field === 'cpuNs'), 'the CPU time is evidence');
    t.equal(report.findings.length, 1);
    const cpu = evidenceOf(report.findings[0]!, 'cpuNs')!;
    t.ok((cpu.after as number) > (cpu.before as number), 'CPU time grew');
  });

  t.test('a SIGSTOPped target: stopped, critical', async (t) => {
    const target = await start(t, 'sleep');
    process.kill(target.pid, 'SIGSTOP');
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => mainOf(s, target.pid)?.state === 'stopped');
    const report = compare(healthy, hung, { stallMs: STALL_MS });
    t.equal(report.verdict, 'hung');
    t.match(report.findings, [
      {
        kind: 'stopped',
        severity: 'critical',
        ref: { pid: target.pid, tid: target.pid },
        message: new RegExp(`^stopped for .* \\(SIGSTOP, job control or a debugger\\): it runs again only after SIGCONT \\(kill -CONT ${target.pid}\\)$`),
        evidence: [{ field: 'state', after: 'stopped' }, { field: 'suspendCount', before: null, after: null }],
      },
    ]);
    t.equal(report.findings.length, 1);
  });

  t.test('vfork parent: uninterruptible, critical', async (t) => {
    const target = await start(t, 'vfork-parent');
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => mainOf(s, target.pid)?.state === 'uninterruptible');
    const report = compare(healthy, hung, { stallMs: STALL_MS });
    t.equal(report.verdict, 'hung', describe(report));
    t.match(report.findings, [
      {
        kind: 'uninterruptible',
        severity: 'critical',
        ref: { tid: target.pid },
        message: /^in uninterruptible sleep \(D\) in (vfork|clone|clone3) for .* \(the kernel's hung_task rule\): a killable wait \(kernel_clone\): kill -9 ends it/,
        evidence: [{ field: 'blockedIn.call' }, { field: 'cpuNs' }, { field: 'state', before: 'uninterruptible', after: 'uninterruptible' }],
      },
    ]);
  });

  t.test('idle servers in epoll_wait and poll: healthy, no findings (no false positive)', async (t) => {
    for (const [mode, call] of [
      ['epoll-idle', /^epoll_p?wait2?$/],
      ['poll-idle', /^p?poll$/],
    ] as const) {
      const target = await start(t, mode);
      const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => parkedIn(s, target.pid, call));
      const report = compare(healthy, hung, { stallMs: STALL_MS });
      t.equal(report.verdict, 'healthy', `${mode}: ${describe(report)}`);
      t.same(report.findings, [], mode);
      t.ok(report.processes[0]!.idle >= 1, `${mode}: counted idle`);
      t.match(report.processes, [{ pid: target.pid, threads: 1, idle: 1 }]);
    }
  });

  t.test('sleep: healthy; with expectExit the sleeping main thread is an info waiting finding', async (t) => {
    const target = await start(t, 'sleep');
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => parkedIn(s, target.pid, /^clock_nanosleep$/));
    const plain = compare(healthy, hung, { stallMs: STALL_MS });
    t.equal(plain.verdict, 'healthy');
    t.same(plain.findings, []);
    t.equal(plain.processes[0]!.idle, 1);
    const expecting = compare(healthy, hung, { stallMs: STALL_MS, expectExit: true });
    t.equal(expecting.verdict, 'healthy', 'a timed sleep wakes by itself');
    t.match(expecting.findings, [
      {
        kind: 'waiting',
        severity: 'info',
        ref: { tid: target.pid },
        message: /^sleeping in clock_nanosleep for .*: a timed sleep, it wakes by itself$/,
      },
    ]);
    t.equal(expecting.findings.length, 1);
  });

  t.test('a sleep resumed after a stop (restart_syscall): still a timed sleep, not a stall', async (t) => {
    // SIGSTOP/SIGCONT, a debugger or a ptrace stack walk: the kernel resumes the sleep as restart_syscall.
    const target = await start(t, 'sleep');
    await snapshotPair(target.pid, 1, (s) => parkedIn(s, target.pid, /^clock_nanosleep$/));
    process.kill(target.pid, 'SIGSTOP');
    await snapshotPair(target.pid, 1, (s) => mainOf(s, target.pid)?.state === 'stopped');
    process.kill(target.pid, 'SIGCONT');
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => parkedIn(s, target.pid, /^restart_syscall$/));
    const report = compare(healthy, hung, { stallMs: STALL_MS, expectExit: true });
    t.equal(report.verdict, 'healthy', describe(report));
    t.match(report.findings, [{ kind: 'waiting', severity: 'info', message: /^sleeping in restart_syscall for .*: a timed sleep, it wakes by itself$/ }]);
  });

  t.test('expectExit with poll-idle: the main thread waiting for events is a warning', async (t) => {
    const target = await start(t, 'poll-idle');
    const { healthy, hung } = await snapshotPair(target.pid, STALL_MS, (s) => parkedIn(s, target.pid, /^p?poll$/));
    const report = compare(healthy, hung, { stallMs: STALL_MS, expectExit: true });
    t.equal(report.verdict, 'suspect');
    t.match(report.findings, [
      {
        kind: 'waiting',
        severity: 'warning',
        subject: new RegExp(`thread ${target.pid} 'target' \\(main\\)$`),
        message: /^waits for events in p?poll for .*, but the command should have finished$/,
      },
    ]);
    t.equal(report.processes[0]!.idle, 0, 'not idle when it should have finished');
  });

  t.test('a zombie is not a stall', async (t) => {
    const target = await start(t, 'zombie');
    const zombie = Number(target.info.zombie);
    const { healthy, hung } = await snapshotPair(zombie, STALL_MS, (s) => threadIn(s, zombie)?.state === 'zombie');
    const report = compare(healthy, hung, { stallMs: STALL_MS });
    t.same(report.findings, []);
    t.equal(report.verdict, 'healthy');
  });
}
