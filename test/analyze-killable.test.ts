/**
 * The killable classifier on what a live sample cannot show on demand: imported hung_task
 * and sysrq-w traces (real captures in test/fixtures/reports), full traces with the lock
 * functions in them, wait channels without a stack, and the table's own shape. The rows
 * themselves are proven on real processes in test/killable-linux.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { KILLABLE_ROWS, kernelFunctionName, killability, readKillPending } from '../src/analyze/killable';
import { importReport } from '../src/import/reports';
import type { ThreadSample } from '../src/types';
import { thread } from './helpers/analyze';

const FIXTURES = path.join(__dirname, 'fixtures', 'reports');
const d = (over: Partial<ThreadSample>): ThreadSample => thread(1, { state: 'uninterruptible', ...over });

t.test('every row has a reason, an example and its proof, and no function is in two rows', async (t) => {
  const seen = new Map<string, number>();
  KILLABLE_ROWS.forEach((row, i) => {
    t.ok(row.reason.length > 20 && row.example.length > 10 && row.proof.length > 10, `row ${i} (${row.functions[0]}) says why, where and how it is known`);
    for (const fn of row.functions) {
      t.notOk(seen.has(fn), `${fn} is in row ${i} only (also in ${seen.get(fn)})`);
      seen.set(fn, i);
    }
  });
});

t.test('a hung_task report proves an uninterruptible sleep; its frames agree', async (t) => {
  const snapshot = importReport(fs.readFileSync(path.join(FIXTURES, 'hungtask-systemd-udevd-blkdev-mutex.txt'), 'utf8'));
  const task = snapshot.processes.find((p) => p.name === 'systemd-udevd')!;
  const udevd = task.threads[0];
  t.equal(task.report?.format, 'hung-task');
  t.match(killability(udevd, { reportFormat: task.report!.format }), { killability: 'unkillable', by: 'hung-task', reason: /hung_task detector/ });
  // The full trace: __schedule, schedule, schedule_preempt_disabled, __mutex_lock.isra.5 pass; the uninterruptible slow path decides.
  t.match(killability(udevd), { killability: 'unkillable', by: 'stack', frame: '__mutex_lock_slowpath', reason: /mutex_lock sleeps in TASK_UNINTERRUPTIBLE/ });
  // A sysrq-w dump names blocked tasks without the detector: no heldMs, so the frames decide.
  t.match(killability({ ...udevd, heldMs: null }, { reportFormat: 'hung-task' }), { by: 'stack', frame: '__mutex_lock_slowpath' });

  const arm = importReport(fs.readFileSync(path.join(FIXTURES, 'hungtask-raspberrypi-arm-backtrace-synchronize_srcu.txt'), 'utf8'));
  const worker = arm.processes[0].threads[0];
  t.match(killability(worker), { killability: 'unkillable', frame: 'wait_for_completion', endsWhen: /completes/ }, 'ARM "(fn) from (caller)" frames');
});

t.test('full traces: killable lock variants by name, `?` frames skipped, the ARM and x86 print forms', async (t) => {
  // The shape the kernel prints for a sysrq-w task waiting in mutex_lock_killable (x86, 4.x form with addresses).
  const killableMutex = [
    '[<ffffffff8170e16e>] ? schedule_preempt_disabled+0xe/0x10',
    '[<ffffffff8170de85>] schedule+0x35/0x80',
    '[<ffffffff8170e16e>] schedule_preempt_disabled+0xe/0x10',
    '[<ffffffff8170f0a4>] __mutex_lock.constprop.0+0x263/0x490',
    '? alloc_internal.part.0+0x24/0x30 [nvidia_uvm]',
    '[<ffffffff8170fca4>] __mutex_lock_killable_slowpath+0x13/0x20',
    '[<ffffffff8170fd3f>] mutex_lock_killable+0x34/0x40',
    '[<ffffffffa09c376e>] drm_ioctl+0x26c/0x3e0 [drm]',
  ];
  t.match(killability(d({ kernelStack: killableMutex })), { killability: 'killable', by: 'stack', frame: '__mutex_lock_killable_slowpath', reason: /named \*_killable/ });
  t.match(killability(d({ kernelStack: ['[<c0882f18>] (__schedule) from [<c0883858>] (schedule+0x64/0xe4)', '[<c08837f4>] (rwsem_down_read_slowpath) from [<c0884cbc>] (down_read_killable+0xa0/0x128)', '[<c0884c1c>] (down_read_killable) from [<c00793ec>] (iterate_dir+0x58/0x84)'] })), {
    killability: 'killable',
    frame: 'down_read_killable',
  });
  t.match(killability(d({ kernelStack: ['rwsem_down_write_slowpath+0x2a0/0x4b0', 'down_write+0x3c/0x50', 'do_truncate+0x6e/0xd0'] })), { killability: 'unkillable', frame: 'down_write' });
  t.match(killability(d({ kernelStack: ['folio_wait_bit_common+0x13d/0x350', 'folio_wait_writeback+0x2b/0x80', '__filemap_fdatawait_range+0x8d/0xf0'] })), {
    killability: 'unkillable',
    frame: 'folio_wait_writeback',
    endsWhen: /write to the device/,
  });
  t.match(killability(d({ kernelStack: ['rpc_wait_bit_killable+0x1e/0xa0 [sunrpc]', '__wait_on_bit+0x31/0xa0', 'out_of_line_wait_on_bit+0x94/0xb0', '__rpc_execute+0x131/0x420 [sunrpc]'] })), {
    killability: 'killable',
    frame: 'rpc_wait_bit_killable',
  });
  // Imported frames whose confirmed ones are all `?`: the printed lines are read instead, then wchan.
  const unsure = { pc: null, module: null, offset: null, symbol: 'kernel_clone', unreliable: true };
  t.match(killability(d({ kernelFrames: [unsure], kernelStack: ['kernel_clone+0x202/0x450'] })), { killability: 'killable', by: 'stack', frame: 'kernel_clone' });
  t.match(killability(d({ kernelFrames: [unsure], kernelStack: ['<TASK>', '? kernel_clone+0x202/0x450'], wchan: '__refrigerator' })), { killability: 'unkillable', by: 'wchan', frame: '__refrigerator', reason: /freezer/ });
});

t.test('what the table cannot decide is unknown, with what stopped it', async (t) => {
  t.match(killability(d({ kernelStack: ['uvm_gpu_retain_by_uuid+0x1e/0x40 [nvidia_uvm]', 'uvm_ioctl+0x13e0/0x16f0 [nvidia_uvm]'] })), {
    killability: 'unknown',
    by: 'stack',
    frame: 'uvm_gpu_retain_by_uuid',
    reason: /no row for the wait in uvm_gpu_retain_by_uuid/,
  });
  t.match(killability(d({ kernelStack: ['folio_wait_bit_common+0x13d/0x350', 'ext4_mystery+0x1/0x2'] })), {
    killability: 'unknown',
    frame: 'ext4_mystery',
    reason: /folio_wait_bit_common sleeps as its caller ext4_mystery asks/,
  });
  // A row with `via` decides only below its primitive: filemap_read on top sleeps in something else.
  t.match(killability(d({ kernelStack: ['filemap_read+0x118/0x3e0', 'vfs_read+0x35a/0x4a0'] })), { killability: 'unknown', frame: 'filemap_read' });
  t.match(killability(d({ kernelStack: ['schedule+0x35/0x80', 'io_schedule+0x12/0x40'] })), { killability: 'unknown', frame: 'io_schedule', reason: /the stack ends in io_schedule/ });
  t.match(killability(d({ wchan: 'folio_wait_bit_common' })), { killability: 'unknown', by: 'wchan', reason: /only the kernel stack \(root\)/ });
  t.match(killability(d({ wchan: 'kernel_clone' })), { killability: 'killable', by: 'wchan', frame: 'kernel_clone' });
  t.match(killability(d({ wchan: '0' })), { killability: 'unknown', by: 'none', reason: /no kernel stack or wait channel/ });
  t.match(killability(d({})), { killability: 'unknown', by: 'none' });
});

t.test('outside D the state decides, and a pending SIGKILL decides in D', async (t) => {
  t.match(killability(thread(1, { state: 'sleeping', wchan: 'pipe_read' })), { killability: 'killable', by: 'state', reason: /interruptible sleep/ });
  t.match(killability(thread(1, { state: 'stopped' })), { killability: 'killable', by: 'state', reason: /stopped/ });
  t.match(killability(thread(1, { state: 'running' })), { killability: 'unknown', by: 'state' });
  t.match(killability(thread(1, { state: 'zombie' })), { killability: 'unknown', by: 'state', reason: /state zombie/ });
  t.match(killability(d({ wchan: 'kernel_clone' }), { killPending: true }), { killability: 'unkillable', by: 'kill-pending' });
  t.match(killability(d({ wchan: 'kernel_clone' }), { killPending: false }), { killability: 'killable' });
});

t.test('kernel function names without offset, module and compiler suffixes', async (t) => {
  t.equal(kernelFunctionName('__mutex_lock.constprop.0+0x4a1/0x8e0'), '__mutex_lock');
  t.equal(kernelFunctionName('__mutex_lock.isra.5'), '__mutex_lock');
  t.equal(kernelFunctionName('alloc_internal.part.0+0x24/0x30 [nvidia_uvm]'), 'alloc_internal');
  t.equal(kernelFunctionName('do_thing.cold'), 'do_thing');
  t.equal(kernelFunctionName('rm_ioctl+0x9c/0x150 [nvidia]'), 'rm_ioctl');
  t.equal(kernelFunctionName('kernel_clone'), 'kernel_clone');
});

t.test('readKillPending reads SigPnd and ShdPnd', async (t) => {
  t.equal(readKillPending(process.pid, process.pid), process.platform === 'linux' ? false : null, 'this process: nothing pending');
  // The layout of /proc/<pid>/task/<tid>/status (fields as Linux 6.18 prints them), for a
  // thread killed while in D (copied from a FUSE reader held after SIGKILL) and variants.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-status-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const status = (tid: number, sigPnd: string, shdPnd: string): void => {
    fs.mkdirSync(path.join(root, '7', 'task', String(tid)), { recursive: true });
    fs.writeFileSync(
      path.join(root, '7', 'task', String(tid), 'status'),
      `Name:\tfile-reader\nState:\tD (disk sleep)\nTgid:\t7\nPid:\t${tid}\nSigQ:\t2/31459\nSigPnd:\t${sigPnd}\nShdPnd:\t${shdPnd}\nSigBlk:\t0000000000000000\n`,
    );
  };
  status(7, '0000000000000100', '0000000000000300');
  status(8, '0000000000000000', '0000000000000100');
  status(9, '0000000000000000', '0000000000000200');
  t.equal(readKillPending(7, 7, root), true, 'SIGKILL in the thread’s own set');
  t.equal(readKillPending(7, 8, root), true, 'SIGKILL in the shared set');
  t.equal(readKillPending(7, 9, root), false, 'SIGUSR1 only');
  fs.mkdirSync(path.join(root, '7', 'task', '10'));
  fs.writeFileSync(path.join(root, '7', 'task', '10', 'status'), 'Name:\tx\n');
  t.equal(readKillPending(7, 10, root), null, 'a status without the signal lines');
  t.equal(readKillPending(7, 11, root), null, 'a thread that is gone');
});
