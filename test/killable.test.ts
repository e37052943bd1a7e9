/**
 * The rows of src/analyze/killable.ts proven on real processes: each is put in its D wait,
 * read through the real sampler, classified, then sent SIGKILL, and the test checks that
 * a 'killable' one ended at once and an 'unkillable' one did not (it stays in D for a
 * second with SIGKILL pending, and ends only when what it waits for is released: the
 * FUSE daemon killed, the cgroup thawed, the file system unfrozen).
 *
 * The waits: a vfork parent; on a FUSE mount whose daemon never answers
 * (test/targets/fuse-hang.c), a page-cache read, an mmap page fault, an open behind an
 * unanswered read, a direct_io read before and after signals, and the waiters on a
 * directory lock that a hung create holds (ls, stat, touch, mkdir, mv); a sleep and a
 * poll loop and a mutex waiter frozen by the cgroup v1 freezer; a write to an ext4 frozen
 * with fsfreeze.
 *
 * Then the classifier on what a live sample cannot show on demand: imported hung_task and
 * sysrq-w traces (real captures in test/fixtures/reports), full traces with the lock
 * functions in them, wait channels without a stack, and the table's own shape.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { KILLABLE_ROWS, kernelFunctionName, killability, readKillPending, type KillableVerdict } from '../src/analyze/killable';
import { importReport } from '../src/import/reports';
import { sampleThreads } from '../src/sample';
import type { ThreadSample } from '../src/types';
import { thread } from './helpers/analyze';
import { fuseMissing, mountHang, spawnProcess, type Spawned } from './helpers/fuse';
import { buildC, start, waitFor } from './helpers/targets';

const notLinux = process.platform === 'linux' ? false : 'these waits are Linux kernel waits';
const notRoot = notLinux || (process.getuid?.() === 0 ? false : 'kernel stacks and the test mounts need root');
const fuseSkip = notRoot || fuseMissing();

/** Ended within this after SIGKILL: a killable wait ends in milliseconds; this allows a loaded machine. */
const KILLED_MS = 5000;
/** Still there this long after SIGKILL: not killable (the killable waits here end in 3 to 30 ms). */
const HELD_MS = 600;

const FILE_READER = path.join(__dirname, 'targets', 'file-reader.c');
const fileReader = (): Promise<string> => buildC(FILE_READER, 'file-reader', []);

function rowOf(verdict: KillableVerdict): string[] {
  return KILLABLE_ROWS.find((row) => row.functions.includes(verdict.frame ?? ''))?.functions.slice() ?? [];
}

/** The thread `tid` (default: the main thread) once it is in D with a kernel stack. */
async function inD(pid: number, what: string, tid = pid): Promise<ThreadSample> {
  return waitFor(async () => {
    const sample = await sampleThreads(pid);
    const thread = sample.threads.find((th) => th.tid === tid);
    return thread !== undefined && thread.state === 'uninterruptible' && (thread.kernelStack?.length ?? 0) > 0 && thread;
  }, `${what} (pid ${pid}) to be in D with a kernel stack`);
}

function stateOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** SIGKILL, then: it did not end within HELD_MS, it is still in D with SIGKILL pending, and the classifier says so. */
async function holdsAfterKill(t: Test, process_: Spawned, what: string): Promise<void> {
  process.kill(process_.pid, 'SIGKILL');
  t.equal(await process_.exitsWithin(HELD_MS), false, `${what}: still there ${HELD_MS} ms after SIGKILL`);
  t.equal(stateOf(process_.pid), 'D', `${what}: still in D`);
  t.equal(readKillPending(process_.pid, process_.pid), true, `${what}: SIGKILL pending in /proc/${process_.pid}/task/${process_.pid}/status`);
  const thread = await inD(process_.pid, what);
  t.match(killability(thread, { killPending: true }), { killability: 'unkillable', by: 'kill-pending' });
}

t.test('a vfork parent waits in D, and SIGKILL ends it at once', { skip: notRoot }, async (t) => {
  const target = await start(t, 'vfork-parent');
  const thread = await inD(target.pid, 'the vfork parent');
  const verdict = killability(thread);
  t.match(verdict, { killability: 'killable', by: 'stack', reason: /vfork parent/ }, `frame ${verdict.frame}`);
  t.ok(rowOf(verdict).includes('kernel_clone'));
  t.equal(readKillPending(target.pid, target.pid), false);
  const exited = new Promise<void>((resolve) => target.child.once('exit', () => resolve()));
  process.kill(target.pid, 'SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), KILLED_MS)))]);
  clearTimeout(timer);
  t.ok(ended, `the vfork parent ended within ${KILLED_MS} ms of SIGKILL`);
});

t.test('FUSE: a page-cache read and an mmap page fault wait killably for the unanswered read', { skip: fuseSkip }, async (t) => {
  const fuse = await mountHang(t);
  const binary = await fileReader();
  for (const mode of ['read', 'mmap']) {
    const file = `/${mode}-target`;
    const reader = spawnProcess(t, binary, [mode, path.join(fuse.dir, file)]);
    await fuse.request('read', file);
    const thread = await inD(reader.pid, `the ${mode} reader`);
    const verdict = killability(thread);
    t.match(verdict, { killability: 'killable', by: 'stack', reason: /page being read in/ }, `${mode}: frame ${verdict.frame}`);
    // The primitive is a pass-through row; the caller (filemap_read…, filemap_fault) decided.
    t.equal(thread.kernelStack![0].replace(/\+.*/, ''), 'folio_wait_bit_common', `${mode}: sleeps in the page-wait primitive`);
    t.equal(thread.wchan, 'folio_wait_bit_common');
    t.match(killability({ ...thread, kernelStack: undefined }), { killability: 'unknown', by: 'wchan', reason: /only the kernel stack \(root\) names the caller/ });
    process.kill(reader.pid, 'SIGKILL');
    t.ok(await reader.exitsWithin(KILLED_MS), `${mode}: ended within ${KILLED_MS} ms of SIGKILL`);
  }
});

t.test('FUSE: an open behind an unanswered read waits on the page lock, and SIGKILL does not end it', { skip: fuseSkip }, async (t) => {
  const fuse = await mountHang(t);
  const binary = await fileReader();
  const file = path.join(fuse.dir, 'shared');
  const reader = spawnProcess(t, binary, ['read', file]);
  await fuse.request('read', '/shared');
  await inD(reader.pid, 'the first reader');
  // Its open invalidates the file's cached pages (fuse_open), and one of them is locked for the read.
  const opener = spawnProcess(t, binary, ['read', file]);
  const thread = await inD(opener.pid, 'the second opener');
  const verdict = killability(thread);
  t.match(verdict, { killability: 'unkillable', by: 'stack', frame: '__folio_lock', endsWhen: /unlocked/ });
  process.kill(reader.pid, 'SIGKILL');
  t.ok(await reader.exitsWithin(KILLED_MS), 'the first reader ends on SIGKILL (its read stays unanswered, the page locked)');
  await holdsAfterKill(t, opener, 'the opener');
  await fuse.killDaemon();
  t.ok(await opener.exitsWithin(KILLED_MS), 'the opener ends once the daemon dies');
});

t.test('FUSE: a direct_io read sleeps in S, in D after a signal, and is held once the daemon has the request', { skip: fuseSkip }, async (t) => {
  const fuse = await mountHang(t);
  const binary = await fileReader();
  const reader = spawnProcess(t, binary, ['read', path.join(fuse.dir, 'direct-file')]);
  await fuse.request('read', '/direct-file');
  const asleep = await waitFor(async () => {
    const thread = (await sampleThreads(reader.pid)).threads[0];
    return thread.state === 'sleeping' && thread.wchan === 'request_wait_answer' && thread;
  }, 'the direct reader to sleep in request_wait_answer');
  t.match(killability(asleep), { killability: 'killable', by: 'state' });
  // file-reader handles SIGUSR1: the interruptible wait ends, the kernel sends FUSE_INTERRUPT,
  // and (the daemon not answering it) waits on, now killably.
  process.kill(reader.pid, 'SIGUSR1');
  const thread = await inD(reader.pid, 'the interrupted direct reader');
  const verdict = killability(thread);
  t.match(verdict, { killability: 'unknown', by: 'stack', frame: 'request_wait_answer', reason: /only while the daemon has not yet read the request/, endsWhen: /abort/ });
  // The daemon holds the request: after the kill, the kernel waits it out uninterruptibly.
  await holdsAfterKill(t, reader, 'the killed direct reader');
  await fuse.killDaemon();
  t.ok(await reader.exitsWithin(KILLED_MS), 'it ends once the daemon dies (the connection aborts)');
});

t.test('FUSE: the waiters on a directory lock that a hung create holds', { skip: fuseSkip }, async (t) => {
  const fuse = await mountHang(t);
  const creator = spawnProcess(t, 'touch', [path.join(fuse.dir, 'new-held')]);
  await fuse.request('create', '/new-held');
  t.match(killability((await sampleThreads(creator.pid)).threads[0]), { killability: 'killable', by: 'state' }, 'the creator itself sleeps interruptibly');

  const lister = spawnProcess(t, 'ls', [fuse.dir]);
  const listing = await inD(lister.pid, 'ls');
  t.match(killability(listing), { killability: 'killable', by: 'stack', frame: 'iterate_dir' });
  process.kill(lister.pid, 'SIGKILL');
  t.ok(await lister.exitsWithin(KILLED_MS), `ls ended within ${KILLED_MS} ms of SIGKILL`);

  const waiters: Array<[string, Spawned]> = [
    ['stat', spawnProcess(t, 'stat', [path.join(fuse.dir, 'other')])],
    ['touch', spawnProcess(t, 'touch', [path.join(fuse.dir, 'new-second')])],
    ['mkdir', spawnProcess(t, 'mkdir', [path.join(fuse.dir, 'new-dir')])],
    ['mv', spawnProcess(t, 'mv', [path.join(fuse.dir, 'a'), path.join(fuse.dir, 'b')])],
  ];
  for (const [name, waiter] of waiters) {
    const verdict = killability(await inD(waiter.pid, name));
    t.match(verdict, { killability: 'unkillable', by: 'stack', reason: /inode lock/ }, `${name}: frame ${verdict.frame}`);
  }
  for (const [, waiter] of waiters) process.kill(waiter.pid, 'SIGKILL');
  const held = await Promise.all(waiters.map(([, waiter]) => waiter.exitsWithin(HELD_MS)));
  waiters.forEach(([name, waiter], i) => {
    t.equal(held[i], false, `${name}: still there ${HELD_MS} ms after SIGKILL`);
    t.equal(readKillPending(waiter.pid, waiter.pid), true, `${name}: SIGKILL pending`);
  });
  await fuse.killDaemon();
  for (const [name, waiter] of waiters) t.ok(await waiter.exitsWithin(KILLED_MS), `${name}: ends once the daemon dies`);
});

const FREEZER = '/sys/fs/cgroup/freezer';
const freezerSkip = notRoot || (fs.existsSync(path.join(FREEZER, 'freezer.state')) || fs.existsSync(path.join(FREEZER, 'tasks')) ? false : `no cgroup v1 freezer at ${FREEZER}`);

t.test('a process frozen by the cgroup v1 freezer is in D, and SIGKILL ends it only once thawed', { skip: freezerSkip }, async (t) => {
  const group = path.join(FREEZER, `iokit-snap-test-${process.pid}`);
  fs.mkdirSync(group);
  t.teardown(() => {
    try {
      fs.writeFileSync(path.join(group, 'freezer.state'), 'THAWED');
    } catch {
      /* gone */
    }
    // The group can be removed once its processes are gone: retry while they exit.
    return waitFor(() => {
      fs.rmdirSync(group);
      return true;
    }, `removing ${group}`);
  });
  const sleeper = await start(t, 'sleep');
  const poller = await start(t, 'poll-idle');
  const locked = await start(t, 'deadlock');
  for (const target of [sleeper, poller, locked]) fs.writeFileSync(path.join(group, 'cgroup.procs'), String(target.pid));
  fs.writeFileSync(path.join(group, 'freezer.state'), 'FROZEN');
  await waitFor(() => fs.readFileSync(path.join(group, 'freezer.state'), 'utf8').trim() === 'FROZEN', 'the group to be frozen');
  // Frozen in place: sleeps that are freezable keep their own frame; the others enter the refrigerator.
  const expected: Array<[string, number, number, string]> = [
    ['the frozen sleep', sleeper.pid, sleeper.pid, 'hrtimer_nanosleep'],
    ['the frozen poll loop', poller.pid, poller.pid, '__refrigerator'],
    ['a frozen mutex waiter', locked.pid, Number(locked.info.a), 'futex_do_wait'],
  ];
  const exits: Array<Promise<boolean>> = [];
  for (const [what, pid, tid, frame] of expected) {
    const verdict = killability(await inD(pid, what, tid));
    t.match(verdict, { killability: 'unkillable', by: 'stack', frame, reason: /freezer/, endsWhen: /thawed/ }, what);
  }
  for (const target of [sleeper, poller, locked]) {
    const exited = new Promise<void>((resolve) => target.child.once('exit', () => resolve()));
    process.kill(target.pid, 'SIGKILL');
    exits.push(exited.then(() => true));
  }
  const early = await Promise.race([Promise.all(exits).then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), HELD_MS))]);
  t.equal(early, false, `none ended within ${HELD_MS} ms of SIGKILL while frozen`);
  t.equal(readKillPending(sleeper.pid, sleeper.pid), true);
  fs.writeFileSync(path.join(group, 'freezer.state'), 'THAWED');
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([Promise.all(exits).then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), KILLED_MS)))]);
  clearTimeout(timer);
  t.ok(ended, 'all end once thawed');
});

function commandMissing(...names: string[]): string | false {
  for (const name of names) {
    try {
      execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    } catch {
      return `${name} is not installed`;
    }
  }
  return false;
}

const fsfreezeSkip = notRoot || commandMissing('mkfs.ext4', 'fsfreeze', 'mount', 'umount') || (fs.existsSync('/dev/loop-control') ? false : 'no loop devices');

t.test('a write to a file system frozen with fsfreeze is in D, and SIGKILL does not end it', { skip: fsfreezeSkip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-fsfreeze-'));
  const image = path.join(dir, 'image');
  const mountPoint = path.join(dir, 'mnt');
  fs.mkdirSync(mountPoint);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 * 1024 * 1024);
  execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
  execFileSync('mount', ['-o', 'loop', image, mountPoint], { stdio: 'ignore' });
  let frozen = false;
  t.teardown(() => {
    if (frozen) execFileSync('fsfreeze', ['-u', mountPoint], { stdio: 'ignore' });
    execFileSync('umount', [mountPoint], { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  execFileSync('fsfreeze', ['-f', mountPoint]);
  frozen = true;
  const writer = spawnProcess(t, 'sh', ['-c', `echo x > ${path.join(mountPoint, 'file')}`]);
  const verdict = killability(await inD(writer.pid, 'the writer'));
  t.match(verdict, { killability: 'unkillable', by: 'stack', frame: 'percpu_rwsem_wait', endsWhen: /thawed/ });
  await holdsAfterKill(t, writer, 'the writer');
  execFileSync('fsfreeze', ['-u', mountPoint]);
  frozen = false;
  t.ok(await writer.exitsWithin(KILLED_MS), 'it ends once the file system is thawed');
});

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
