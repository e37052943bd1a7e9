// The commands on real reports (test/fixtures/reports): `import` shows their threads,
// `explain` judges one, `diff` reads them beside snapshots; in-process, with stdin.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { readSnapshot } from '../src/snapshot-file';
import { runCliWithStdin, spawnCli } from './helpers/cli';

const DIR = path.join(__dirname, 'fixtures', 'reports');
const file = (name: string): string => path.join(DIR, name);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-reports-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('import <report>: each process with its threads, the notes on stderr', async (t) => {
  const result = await runCliWithStdin(['import', file('hungtask-k8s-device-plugin-nvc-uvm_gpu_retain.txt')]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^pid 5403 \(nvc:\[driver\]\): 1 thread from hung-task output\nTID +NAME +STATE +CPU TOTAL +BLOCKED IN +TARGET\n5403 +nvc:\[driver\] +uninterruptible +0 ms +uvm_gpu_retain_by_uuid +-\n$/);
  t.match(result.stderr, /note: report: kernelStack unavailable \(ENODATA\): line 19 ends the paste/);
  t.notMatch(result.stderr, /monotonicNs/, 'notes about the document stay in the JSON');
});

t.test('import - (stdin) --json, and -o writes a snapshot diff reads', async (t) => {
  const text = fs.readFileSync(file('sample-1password-op-psynch_cvwait.txt'), 'utf8');
  const json = await runCliWithStdin(['import', '-', '--json'], text);
  t.equal(json.code, 0);
  const snap = JSON.parse(json.stdout);
  t.same([snap.source, snap.processes[0].threads[0].blockedIn.call], [{ format: 'sample', lines: 33 }, 'psynch_cvwait']);
  const out = path.join(tmp, 'op.json');
  const written = await runCliWithStdin(['import', file('sample-1password-op-psynch_cvwait.txt'), '-o', out]);
  t.equal(written.code, 0);
  t.match(written.stderr, /^wrote .*op\.json: 2 thread\(s\)\n/);
  t.equal((await readSnapshot(out)).processes[0].pid, 46825);
});

t.test('explain <report>: the verdict, the findings, exit 2 when hung; --json; stdin', async (t) => {
  const hung = await runCliWithStdin(['explain', file('sample-1password-op-psynch_cvwait.txt')]);
  t.equal(hung.code, 2);
  t.match(hung.stdout, /^HUNG: 1 critical finding, the longest for at least 2\.5 s\n {2}critical {2}pid 46825 \(op\) thread 1760964 \(main\)\n {12}stalled in psynch_cvwait for at least 2\.5 s \(2464 of 2464 samples\)/);
  const json = await runCliWithStdin(['explain', file('hungtask-k8s-device-plugin-nvc-uvm_gpu_retain.txt'), '--json', '--stall', '200s']);
  t.equal(json.code, 2);
  const report = JSON.parse(json.stdout);
  t.match(report.findings[0], { kind: 'blocked-in-driver', severity: 'critical', durationMs: 120000 }, 'uninterruptible for 120 s stays critical under any stall');
  const healthy = await runCliWithStdin(['explain', '-', '--verbose'], fs.readFileSync(file('crash-nv-main-thread-mach_msg_trap.txt'), 'utf8'));
  t.equal(healthy.code, 0);
  t.match(healthy.stdout, /^HEALTHY: nothing stuck\n {2}info {6}pid 0 \(unknown\) thread 0 \(main\)/);
});

t.test('explain <snapshot.json> reads saved snapshots too; errors and usage', async (t) => {
  const out = path.join(tmp, 'crash.json');
  t.equal((await runCliWithStdin(['import', file('crash-tdesktop-metal-commandqueue-semaphore_wait_trap.txt'), '-o', out])).code, 0);
  const saved = await runCliWithStdin(['explain', out]);
  t.equal(saved.code, 2);
  t.match(saved.stdout, /waits for the GPU: semaphore_wait_trap under -\[_MTLCommandQueue _submitAvailableCommandBuffers\]/);
  const junk = path.join(tmp, 'junk.txt');
  fs.writeFileSync(junk, 'this is not a report\n');
  const bad = await runCliWithStdin(['explain', junk]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /iokit-snap explain: EINVAL: .*junk\.txt: not recognised, none of the documents iokit-snap reads\. It reads an iokit-snap\/1 snapshot/);
  const missing = await runCliWithStdin(['explain', path.join(tmp, 'nope.txt')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read snapshot or report/);
  const usage = await runCliWithStdin(['explain']);
  t.equal(usage.code, 64);
  t.match(usage.stderr, /explain takes one report or snapshot file/);
  const help = await runCliWithStdin(['explain', '--help']);
  t.match(help.stdout, /^Usage: iokit-snap explain <FILE\|->/);
});

t.test('diff reads a report on either side: two reports, or a live snapshot and a report', async (t) => {
  const pair = await runCliWithStdin(['diff', file('lldb-kha-metal-waituntilcompleted-psynch_cvwait.txt'), file('spindump-qgroundcontrol-hang-timeline-unresponsive.txt')]);
  t.equal(pair.code, 2);
  t.match(pair.stdout, /^HUNG: 1 critical finding, the longest for at least 1\.3 s\n {2}critical {2}pid 89978 \(QGroundControl\) thread 0 \(main\)\n {12}stalled in semaphore_wait_trap for at least 1\.3 s/);
  t.match(pair.stdout, /note: an imported report carries no monotonic clock/);
  const live = path.join(tmp, 'live.json');
  t.equal((await runCliWithStdin(['snapshot', '--pid', String(process.pid), '--no-accelerators', '-o', live])).code, 0);
  const mixed = await runCliWithStdin(['diff', live, file('hungtask-rocm-tensorflow-amdgpu-fence-wait.txt'), '--json']);
  t.equal(mixed.code, 2);
  const report = JSON.parse(mixed.stdout);
  t.match(report.findings[0], { kind: 'blocked-in-driver', subject: "pid 19772 (python) thread 19772 'python'" });
  t.equal(report.windowMs, null);
});

t.test('the real binary: explain on a report', async (t) => {
  const result = await spawnCli(['explain', path.relative(process.cwd(), file('hungtask-nixpkgs-kworker-amdgpu-reset-dm_suspend.txt'))]);
  t.equal(result.code, 2, result.stderr);
  t.match(result.stdout, /blocked in the GPU driver: dm_suspend \[amdgpu\] on __mutex_lock for more than 2 min 2 s \(hung_task\)/);
});
