/** The explanation a person reads: the verdict line, findings by severity, processes, accelerators, notes. */
import t from 'tap';
import type { Finding, Report } from '../src/analyze/types';
import { explain } from '../src/cli/explain';
import type { Accelerator } from '../src/types';
import { accelerator } from './helpers/analyze';

const plain = { color: false };

function finding(severity: Finding['severity'], n: number): Finding {
  return { kind: 'stalled', severity, subject: `pid 1 (x) thread ${n}`, ref: { pid: 1, tid: n }, message: `message ${n}`, evidence: [], durationMs: 1000 };
}

function report(findings: Finding[], extra: Partial<Report> = {}): Report {
  const verdict = findings.some((f) => f.severity === 'critical') ? 'hung' : findings.some((f) => f.severity === 'warning') ? 'suspect' : 'healthy';
  return { verdict, findings, processes: [], accelerators: { before: 0, after: 0 }, windowMs: 2000, notes: [], ...extra };
}

const bare = accelerator({ name: 'GA102', classChain: ['pci', '0x030000'], vendor: null, model: null });

t.test('the verdict line', async (t) => {
  t.equal(explain(report([]), plain).split('\n')[0], 'HEALTHY: nothing stuck over 2.0 s');
  t.equal(explain(report([], { windowMs: null }), plain).split('\n')[0], 'HEALTHY: nothing stuck', 'no window when the clocks do not say');
  t.equal(explain(report([finding('warning', 1), finding('warning', 2)]), plain).split('\n')[0], 'SUSPECT: 2 warnings, the longest for at least 1.0 s');
  t.equal(explain(report([finding('critical', 1)]), plain).split('\n')[0], 'HUNG: 1 critical finding, the longest for at least 1.0 s');
  t.equal(explain(report([finding('critical', 1), finding('critical', 2), finding('warning', 3)]), plain).split('\n')[0], 'HUNG: 2 critical findings, 1 warning, the longest for at least 1.0 s');
  // A stall that began before the window (watch keeps each thread's history): the header says what the findings say.
  const older = [{ ...finding('critical', 1), durationMs: 2500 }, { ...finding('critical', 2), durationMs: 1800 }];
  t.equal(explain(report(older, { windowMs: 476 }), plain).split('\n')[0], 'HUNG: 2 critical findings, the longest for at least 2.5 s');
  const unknown = [{ ...finding('critical', 1), durationMs: null }];
  t.equal(explain(report(unknown), plain).split('\n')[0], 'HUNG: 1 critical finding over 2.0 s', 'the window when no finding knows how long');
  t.match(explain(report([finding('critical', 1)]), { color: true }), /^\u001b\[31m\u001b\[1mHUNG\u001b\[0m\u001b\[0m: /);
});

t.test('findings: each with its subject and message; info ones capped unless verbose', async (t) => {
  const many = [finding('critical', 0), ...Array.from({ length: 10 }, (_, i) => finding('info', i + 1))];
  const short = explain(report(many), plain);
  t.match(short, /\n {2}critical {2}pid 1 \(x\) thread 0\n {12}message 0\n/);
  t.equal(short.match(/ {2}info {6}/g)?.length, 8);
  t.match(short, /… and 2 more info findings \(--verbose or --json\)\n/);
  const verbose = explain(report(many), plain, { verbose: true });
  t.equal(verbose.match(/ {2}info {6}/g)?.length, 10);
  t.notMatch(verbose, /more info findings/);
});

t.test('processes: threads, idle, CPU, window; exited and without a baseline', async (t) => {
  const text = explain(
    report([], {
      processes: [
        { pid: 10, name: 'a', threads: 3, idle: 2, cpuNs: 5e6, windowMs: 2000 },
        { pid: 11, name: 'b', threads: 1, idle: 0, cpuNs: 0, windowMs: 0, new: true },
        { pid: 12, name: 'c', threads: 0, idle: 0, cpuNs: 0, windowMs: 0, gone: true },
      ],
    }),
    plain,
  );
  t.match(text, /pid 10 \(a\): 3 threads, 2 idle, 5 ms CPU in 2\.0 s\n/);
  t.match(text, /pid 11 \(b\): 1 thread, 0 ms CPU \(no baseline\)\n/);
  t.match(text, /pid 12 \(c\): exited\n/);
});

t.test('accelerators: a line each with what the platform gave; none; notes', async (t) => {
  const full: Accelerator = {
    ...bare,
    busy: { count: 1, timeNs: null },
    power: { state: 1, maxState: 2, desiredState: 2, capabilityFlags: null, runtimeStatus: null },
    recovery: { count: 0, lastTime: null },
    utilization: { devicePercent: null, rendererPercent: 50, tilerPercent: null },
    queues: [{ id: 0, submitted: 1, finished: 1, state: 'Idle' }],
  };
  const text = explain(report([], { notes: ['the snapshots come from different hosts'] }), plain, { accelerators: [bare, full] });
  t.match(text, /accelerators \(no change\):\n {4}GA102 0000:01:00\.0\n {4}GA102 0000:01:00\.0: busy 1, power 1 → 2, recoveries 0, 1 queue\n/);
  t.match(text, /note: the snapshots come from different hosts\n$/);
  const gpuFinding: Finding = { ...finding('critical', 1), ref: { accelerator: bare.id } };
  t.match(explain(report([gpuFinding]), plain, { accelerators: [bare] }), /\n {2}accelerators:\n/);
  t.match(explain(report([]), plain, { accelerators: [] }), /accelerators: none seen\n/);
  t.notMatch(explain(report([]), plain), /accelerators/, 'nothing about accelerators when none were asked for');
});
