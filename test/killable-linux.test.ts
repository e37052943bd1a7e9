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
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { killability, readKillPending, KILLABLE_ROWS, type KillableVerdict } from '../src/analyze/killable';
import { sampleThreads } from '../src/sample';
import type { ThreadSample } from '../src/types';
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
