/**
 * Showing what was captured: a finding names its culprit thread's top frames where the
 * snapshot has stacks (diff, explain, exec's report), `threads --from` prints a saved snapshot's
 * threads as `threads` prints a live process, with its kernel stacks; and import, explain, diff
 * and threads --from recognise every document iokit-snap reads or writes, and list what they
 * read when handed something else. Real deadlocked and vfork-blocked processes, real snapshots.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { compare } from '../src/analyze/compare';
import { snapshot } from '../src/sample';
import { writeSnapshot } from '../src/snapshot-file';
import type { Snapshot } from '../src/types';
import { runCli, runCliWithStdin } from './helpers/cli';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test targets (test/targets/target.c) and ptrace stacks are Linux';
const root = process.getuid?.() === 0;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-documents-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const M4 = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
const SAMPLE = path.join(__dirname, 'fixtures', 'reports', 'sample-1password-op-psynch_cvwait.txt');
const HUNG_TASK = path.join(__dirname, 'fixtures', 'reports', 'hungtask-returnn-nvidia_uvm-uvm_ioctl.txt');

/** exec's save directory, made the way exec makes it: a baseline, a hung snapshot with stacks, the report. */
async function savedRun(dir: string, pid: number): Promise<{ baseline: Snapshot; hung: Snapshot }> {
  fs.mkdirSync(dir);
  const baseline = await snapshot({ pids: [pid], accelerators: false });
  // Each deadlocked thread has been stuck for longer than the stall by the time of the second look.
  await new Promise((resolve) => setTimeout(resolve, 700));
  const hung = await snapshot({ pids: [pid], accelerators: false, threads: { stacks: true } });
  await writeSnapshot(path.join(dir, 'baseline.json'), baseline);
  await writeSnapshot(path.join(dir, 'hung.json'), hung);
  fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(compare(baseline, hung, { stallMs: 500 }), null, 2));
  return { baseline, hung };
}

t.test('a deadlock saved with stacks: its findings show the culprits\' top frames; threads --from shows every stack', { skip: linux }, async (t) => {
  const target = await start(t, 'deadlock');
  await waitFor(async () => (await snapshot({ pids: [target.pid], accelerators: false })).processes[0].threads.filter((th) => th.blockedIn?.call === 'futex').length === 3, 'three threads in futex');
  const dir = path.join(tmp, 'deadlock');
  const { hung } = await savedRun(dir, target.pid);
  const stacked = hung.processes[0].threads.filter((th) => (th.stack ?? []).length > 0);
  t.equal(stacked.length, 3, 'the hung snapshot has user stacks');
  const hungFile = path.join(dir, 'hung.json');

  const [diff, explained, saved, threads, fromJson] = await Promise.all([
    runCli(['diff', path.join(dir, 'baseline.json'), hungFile, '--stall', '500ms']),
    runCli(['explain', hungFile, '--stall', '500ms']),
    runCli(['explain', path.join(dir, 'report.json')]),
    runCli(['threads', '--from', hungFile, '--stacks']),
    runCli(['threads', '--from', hungFile, String(target.pid), '--json']),
  ]);
  // Under the finding of each thread taking a mutex: its innermost frames, libc's lock wait and the caller.
  const lockFrames = new RegExp(`thread ${target.info.a} 'target'\\n {12}blocked acquiring a lock \\(glibc mutex: [^\\n]*\\n {12}#0 +\\S*lll_lock_wait \\+ \\d+ +libc\\S* \\+0x[0-9a-f]+\\n {12}#1 +pthread_mutex_lock`);
  // explain of the one hung snapshot proves the waits from each thread's off-CPU time, and says so.
  for (const [name, run] of [['diff', diff], ['explain report.json', saved], ['explain hung.json', explained]] as const) {
    t.equal(run.code, 2, `${name}: ${run.stderr}`);
    t.match(run.stdout, lockFrames, `${name} shows the frames under the finding`);
    t.match(run.stdout, new RegExp(`take_in_order \\+ \\d+ +target`), `${name}: the program's own function`);
    t.match(run.stdout, `every thread's stacks: iokit-snap threads --from ${hungFile} --stacks`);
  }
  t.match(explained.stdout, /note: judged from this one snapshot, with no healthy baseline: how long each thread had been off CPU/);
  t.match(saved.stdout, /^\S+report\.json: a saved report\nHUNG: 2 critical findings/);

  t.equal(threads.code, 0, threads.stderr);
  t.match(threads.stdout, new RegExp(`^pid ${target.pid} \\(target\\): 3 threads in ${hungFile}, taken \\S+\\nTID +NAME +STATE +CPU TOTAL +BLOCKED IN +TARGET\\n`));
  t.match(threads.stdout, new RegExp(`\\n${target.pid} +target +sleeping +\\S+ ms +futex +joins thread ${target.info.a}\\n`), 'the main thread: what it joins');
  t.match(threads.stdout, new RegExp(`\\nthread ${target.info.b} \\(target\\) sleeping, in futex:\\n(?:  kernel +\\S+\\n)*  #0 +\\S*lll_lock_wait`));
  if (root) t.match(threads.stdout, /\n  kernel +futex\w*\+0x[0-9a-f]+\/0x[0-9a-f]+\n/, 'the kernel stack too (root reads it)');
  const [process] = JSON.parse(fromJson.stdout);
  t.equal(process.pid, target.pid);
  t.equal(process.threads.length, 3);
  t.ok(Array.isArray(process.limits));

});

t.test('a D-state wait: the kernel frames come first under an uninterruptible finding', { skip: linux || (root ? false : 'needs root, to read kernel stacks') }, async (t) => {
  const target = await start(t, 'vfork-parent');
  await waitFor(async () => (await snapshot({ pids: [target.pid], accelerators: false })).processes[0].threads[0].state === 'uninterruptible', 'the parent in D');
  const dir = path.join(tmp, 'vfork');
  await savedRun(dir, target.pid);
  const run = await runCli(['diff', path.join(dir, 'baseline.json'), path.join(dir, 'hung.json'), '--stall', '500ms']);
  t.match(run.stdout, /uninterruptible[^\n]*\n(?: {12}[^\n]*\n)*? {12}kernel +\S+\+0x/, `kernel frames under the finding: ${run.stdout}`);
});

t.test('each reader recognises each document, and names what to use instead', async (t) => {
  const snap = path.join(tmp, 'accelerators.json');
  await writeSnapshot(snap, await snapshot({ accelerators: false }));
  const report = path.join(tmp, 'report.json');
  const healthy = await snapshot({ pids: [process.pid], accelerators: false });
  fs.writeFileSync(report, JSON.stringify(compare(healthy, { ...healthy, monotonicNs: healthy.monotonicNs + 1 })));
  const execLine = path.join(tmp, 'exec-stderr.log');
  fs.writeFileSync(execLine, `some output of the command\n${JSON.stringify({ command: ['x'], pid: 7, ranForMs: 1, saved: null, outcome: 'left-running', report: JSON.parse(fs.readFileSync(report, 'utf8')) })}\n`);
  const events = path.join(tmp, 'events.ndjson');
  fs.writeFileSync(events, '{"type":"sample","at":"2026-01-01T00:00:00.000Z","verdict":"healthy"}\n{"type":"exit","at":"2026-01-01T00:00:01.000Z","pid":4}\n');
  const metrics = path.join(tmp, 'metrics.txt');
  fs.writeFileSync(metrics, '# HELP iokit_snap_up 1 when sampling works\n# TYPE iokit_snap_up gauge\niokit_snap_up 1\n');
  const threadsJson = path.join(tmp, 'threads.json');
  fs.writeFileSync(threadsJson, (await runCli(['threads', String(process.pid), '--json'])).stdout);
  const other = path.join(tmp, 'other.txt');
  fs.writeFileSync(other, 'Hello, this is a letter and no report.\n');
  const brokenLines = path.join(tmp, 'broken-lines.txt');
  fs.writeFileSync(brokenLines, 'a log\n{"cut": \n');
  fs.writeFileSync(path.join(tmp, 'empty.txt'), '');
  const otherLines = path.join(tmp, 'other.ndjson');
  fs.writeFileSync(otherLines, '{"a": 1}\n{"b": 2}\n');
  const brokenIoreg = path.join(tmp, 'broken-ioreg.txt');
  fs.writeFileSync(brokenIoreg, '+-o Root  <class IORegistryEntry, id 0x100000100, retain 10>\n  this line is no ioreg\n');
  const otherJson = path.join(tmp, 'package.json');
  fs.writeFileSync(otherJson, '{"name": "x", "version": "1.0.0"}\n');

  // What each reader does with each document: [argv, exit status, what it says].
  const cases: [string[], number, RegExp][] = [
    [['import', snap], 0, /^$/],
    [['import', report], 1, /report\.json is an iokit-snap report .*; import takes ioreg output, a thread report or a snapshot: iokit-snap explain \S+report\.json shows it/],
    [['import', threadsJson], 1, /is a `threads --json` sample; .*iokit-snap threads --from \S+threads\.json shows it/],
    [['explain', report], 0, /^$/],
    [['explain', execLine], 0, /^$/],
    [['explain', M4], 1, /is ioreg output; explain takes one snapshot or thread report: it holds accelerators only/],
    [['explain', events], 1, /events\.ndjson is a `watch --json` event stream; explain takes/],
    [['explain', metrics], 1, /metrics\.txt is serve's \/metrics text; explain takes/],
    [['diff', report, report], 1, /report\.json is an iokit-snap report .*: it is already the comparison; exec saves the snapshots it came from beside it: iokit-snap diff \S+baseline\.json \S+hung\.json/],
    [['diff', M4, M4], 1, /twice: the same snapshot/],
    [['threads', '--from', M4], 1, /is ioreg output; threads --from takes a snapshot or a thread report: it holds accelerators only/],
    [['threads', '--from', snap], 1, /holds no process \(a snapshot taken without --pid\)/],
    [['threads', '--from', threadsJson], 0, /^$/],
    [['threads', '--from', report], 1, /report\.json is an iokit-snap report .*: exec saves the snapshots beside it: iokit-snap threads --from \S+hung\.json$/m],
    [['threads', '--from', events], 1, /events\.ndjson is a `watch --json` event stream; threads --from takes a snapshot or a thread report\n$/],
    [['threads', '--from', SAMPLE, '--interval', '1s'], 64, /--interval samples a live process; it does not go with --from/],
    [['threads', '--from', SAMPLE, '1', '2'], 64, /threads --from FILE takes at most one process id/],
    [['explain', threadsJson], 1, /a thread sample proves nothing alone: take two snapshots/],
    [['diff', events, snap], 1, /events\.ndjson is a `watch --json` event stream; diff takes two snapshots .*: take snapshots with iokit-snap snapshot --pid N -o FILE/],
    [['import', events], 1, /events\.ndjson is a `watch --json` event stream; import takes ioreg output, a thread report or a snapshot\n$/],
    [['threads', '--from', brokenLines], 1, /broken-lines\.txt: not recognised, none of the documents/],
    [['import', brokenIoreg], 1, /^iokit-snap import: EINVAL: ioreg input, line 2: /],
    [['explain', '/dev/null'], 1, /\/dev\/null is a character device, not a regular file/],
    [['import', path.join(tmp, 'empty.txt')], 1, /empty\.txt: empty, none of the documents/],
    [['explain', otherLines], 1, /other\.ndjson: not valid JSON, not ioreg output, none of the documents/],
    [['threads', '--from', SAMPLE], 0, /^(note: .*\n)*$/],
    [['threads', '--from', SAMPLE, '1'], 1, /ESRCH: \S+ holds no pid 1: it holds pid \d+/],
  ];
  for (const command of ['import', 'explain', 'diff', 'threads']) {
    const argv = command === 'diff' ? [command, other, snap] : command === 'threads' ? [command, '--from', other] : [command, other];
    cases.push([argv, 1, /other\.txt: not recognised, none of the documents iokit-snap reads\. It reads an iokit-snap\/1 snapshot .*exec's report\.json, ioreg output .*hung_task and sysrq-w logs\.\n$/]);
    const json = command === 'diff' ? [command, snap, otherJson] : command === 'threads' ? [command, '--from', otherJson] : [command, otherJson];
    cases.push([json, 1, /package\.json: JSON, but no "format": "iokit-snap\/1", no report, no thread sample, none of the documents/]);
  }
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  for (const [i, [argv, status, said]] of cases.entries()) {
    t.equal(runs[i].code, status, `${argv.join(' ')}: ${runs[i].stderr}`);
    t.match(runs[i].stderr, said, argv.join(' '));
    if (status === 1) t.match(runs[i].stderr, new RegExp(`^iokit-snap ${argv[0]}: E[A-Z]+: `), 'the CMD: CODE: message form');
  }
  t.match(runs[0].stdout, /^No accelerators|^\S+accelerators\.json: a snapshot with no accelerators and no process\.\n$/, 'import shows a snapshot');
  t.match(runs[3].stdout, /report\.json: a saved report\nHEALTHY/);
  t.match(runs[4].stdout, /exec-stderr\.log: a saved report of exec pid 7 \(left-running\)\nHEALTHY/);
  t.match(runs[12].stdout, new RegExp(`^pid ${process.pid} \\(\\S+\\): \\d+ threads? in \\S+threads\\.json\\n`));
  t.match(runs[25].stdout, /^pid \d+ \(op\): \d+ threads? in \S+ from sample output\n/);
  // What threads --from --json prints, threads --from reads back.
  const array = path.join(tmp, 'array.json');
  fs.writeFileSync(array, (await runCli(['threads', '--from', threadsJson, '--json'])).stdout);
  const again = await runCli(['threads', '--from', array]);
  t.equal(again.code, 0, again.stderr);
  t.equal(again.stdout.replace(/array\.json/, 'threads.json'), runs[12].stdout);

  // Either side of diff may be stdin, and ioreg dumps compare by their accelerators.
  const twoDumps = await runCliWithStdin(['diff', '-', path.join(__dirname, 'fixtures', 'ioreg', 'intel-hackintosh-MacBookPro15,2-ioreg-tree-IntelAccelerator-busy-retain.txt')], fs.readFileSync(M4, 'utf8'));
  t.not(twoDumps.code, 1, twoDumps.stderr);
  t.match(twoDumps.stdout, /^(HEALTHY|SUSPECT|HUNG)/);
  const bothStdin = await runCli(['diff', '-', '-']);
  t.equal(bothStdin.code, 64);
  // A saved report: --json prints it as saved; from stdin there is no hung.json beside it; a hung.json that is no snapshot gives no frames.
  const reportJson = await runCli(['explain', report, '--json']);
  t.same(JSON.parse(reportJson.stdout), JSON.parse(fs.readFileSync(report, 'utf8')));
  const fromStdin = await runCliWithStdin(['explain', '-'], fs.readFileSync(report, 'utf8'));
  t.match(fromStdin.stdout, /^stdin: a saved report\nHEALTHY/);
  const odd = path.join(tmp, 'odd');
  fs.mkdirSync(odd);
  fs.copyFileSync(report, path.join(odd, 'report.json'));
  fs.copyFileSync(report, path.join(odd, 'hung.json'));
  t.equal((await runCli(['explain', path.join(odd, 'report.json')])).code, 0);
  // Two processes in one file: one table each.
  const two = path.join(tmp, 'two.json');
  await writeSnapshot(two, await snapshot({ pids: [process.pid, process.ppid], accelerators: false }));
  const both = await runCli(['threads', '--from', two]);
  t.equal(both.stdout.match(/^pid \d+ \(/gm)?.length, 2, both.stdout);
  t.match(both.stdout, /\n\npid \d+ /, 'a blank line between them');
  // A snapshot with accelerators: import shows their table.
  const m4 = path.join(tmp, 'm4.json');
  t.equal((await runCli(['import', M4, '-o', m4])).code, 0);
  t.match((await runCli(['import', m4])).stdout, /^ID +NAME \(CLASS\) .*\n0x100000478 +AGX.* +Apple M4 /);

  const hungTask = await runCli(['explain', HUNG_TASK]);
  t.equal(hungTask.code, 2, 'a thread report is judged as before');
  t.match(hungTask.stdout, /kernel +\S+/, 'its kernel frames under the finding');
});

t.test('the frames as text: parsed kernel frames of an imported report, a file name a shell needs quoted', async (t) => {
  const { stackLines, topFrames } = await import('../src/cli/format');
  const { explain } = await import('../src/cli/explain');
  const thread = {
    tid: 9,
    name: 'w',
    state: 'uninterruptible' as const,
    userNs: 0,
    systemNs: 0,
    contextSwitches: null,
    suspendCount: null,
    blockedIn: null,
    kernelFrames: [
      { pc: null, module: 'nvidia_uvm', offset: null, symbol: 'uvm_gpu_retain_by_uuid', symbolOffset: 52 },
      { pc: null, module: null, offset: null, symbol: 'schedule', symbolOffset: null },
    ],
  };
  t.equal(stackLines([thread], { color: false }), '\nthread 9 (w) uninterruptible:\n  kernel  uvm_gpu_retain_by_uuid + 52  nvidia_uvm\n  kernel  schedule\n');
  t.equal(topFrames(thread, true, { color: false }, '  ', 4, 1).more, 1, 'what was left out is counted');
  const snap = {
    format: 'iokit-snap/1' as const,
    takenAt: '',
    monotonicNs: 0,
    host: { platform: 'linux' as const, arch: 'x64', osRelease: '' },
    accelerators: [],
    processes: [{ pid: 9, name: 'w', sampledAtNs: 0, threads: [thread] }],
    limits: [],
  };
  const finding = { kind: 'uninterruptible' as const, severity: 'critical' as const, subject: 'pid 9 (w) thread 9', ref: { pid: 9, tid: 9 }, message: 'in D', evidence: [], durationMs: 1 };
  const report = { verdict: 'hung' as const, findings: [finding], processes: [], accelerators: { before: 0, after: 0 }, windowMs: 1, notes: [] };
  const text = explain(report, { color: false }, { snapshot: snap, snapshotFile: "/tmp/it's here/hung.json" });
  t.match(text, /in D\n {12}kernel  uvm_gpu_retain_by_uuid \+ 52  nvidia_uvm\n {12}kernel  schedule\n/);
  t.match(text, `iokit-snap threads --from '/tmp/it'\\''s here/hung.json' --stacks`);
});

t.test('diff: the hint to list every stack names the hung snapshot’s file, and is left out when it came from stdin', async (t) => {
  const { frames, lockedOn, proc, snap, thread } = await import('./helpers/analyze');
  // Two threads each acquiring the lock the other holds, their stacks taken.
  const stuck = (tid: number, lock: number) => thread(tid, { blockedIn: lockedOn(lock), stack: frames('__lll_lock_wait@libc.so.6', 'pthread_mutex_lock@libc.so.6', 'take@app') });
  const healthy = path.join(tmp, 'stacks-healthy.json');
  const hung = path.join(tmp, 'stacks-hung.json');
  fs.writeFileSync(healthy, JSON.stringify(snap(0, [proc(100, [thread(100), stuck(101, 0x5000), stuck(102, 0x6000)])])));
  const hungSnapshot = JSON.stringify(snap(2000, [proc(100, [thread(100), stuck(101, 0x5000), stuck(102, 0x6000)])]));
  fs.writeFileSync(hung, hungSnapshot);
  const fromFile = await runCli(['diff', healthy, hung]);
  t.equal(fromFile.code, 2, fromFile.stderr);
  t.match(fromFile.stdout, /#0 +__lll_lock_wait/);
  t.match(fromFile.stdout, `every thread's stacks: iokit-snap threads --from ${hung} --stacks`);
  const fromStdin = await runCliWithStdin(['diff', healthy, '-'], hungSnapshot);
  t.equal(fromStdin.code, 2, fromStdin.stderr);
  t.match(fromStdin.stdout, /#0 +__lll_lock_wait/, 'the same frames');
  t.notMatch(fromStdin.stdout, /every thread's stacks/, 'no file to name');
});
