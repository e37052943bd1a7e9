/**
 * What a cross-check of the Linux thread sampler against ps, strace, gdb and an
 * independent reader of /proc found wrong, each proven on real processes: kernel
 * threads are not in read(0); a worker's fd is named after its main thread exited;
 * 32-bit processes are named from their own table; a join names the joined thread.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sampleThreads, createThreadSampler } from '../src/sample';
import { start, targetBinary, waitFor } from './helpers/targets';

const PF_KTHREAD = 0x00200000;

/** Field 9 of /proc/<pid>/stat, read here independently of the addon. */
function statFlags(pid: number): number | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[6]);
  } catch {
    return null;
  }
}

function kernelThreadPids(limit: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const flags = statFlags(Number(entry));
    if (flags !== null && (flags & PF_KTHREAD) !== 0) pids.push(Number(entry));
    if (pids.length >= limit) break;
  }
  return pids;
}

const linux = process.platform === 'linux' ? false : 'Linux /proc only';

t.test('kernel threads have no user-space call: no blockedIn, but wchan and abi "kernel"', { skip: linux }, async (t) => {
  const pids = kernelThreadPids(12);
  if (pids.length === 0) return t.skip('no kernel threads visible here (a container with its own pid namespace)');
  let asleep = 0;
  let withWchan = 0;
  for (const pid of pids) {
    let sample;
    try {
      sample = await sampleThreads(pid);
    } catch (error) {
      if ((error as { code?: string }).code === 'ESRCH') continue; // a kworker that retired meanwhile
      throw error;
    }
    // Their syscall file reads "0 0x0 0x0 …": zeroed user registers, which is not read(0).
    t.equal(sample.abi, 'kernel', `${pid} (${sample.name}): abi kernel`);
    for (const thread of sample.threads) t.equal(thread.blockedIn, null, `${pid} (${sample.name}): no blockedIn`);
    const sleeping = sample.threads.filter((th) => th.state === 'sleeping' || th.state === 'uninterruptible');
    // A kernel thread that wakes between its stat and its wchan read reads wchan 0 (not sleeping
    // any more): most, not every one, keep theirs.
    for (const thread of sleeping) {
      asleep++;
      if (typeof thread.wchan === 'string') withWchan++;
    }
  }
  if (process.getuid?.() === 0 && asleep > 0) t.ok(withWchan * 2 > asleep, `wchan kept: ${withWchan} of ${asleep} sleeping kernel threads`);
  const kthreadd = await sampleThreads(2).catch(() => null);
  if (kthreadd !== null && kthreadd.abi === 'kernel' && process.getuid?.() === 0) {
    t.ok(kthreadd.threads[0]!.kernelStack?.some((frame) => /kthreadd/.test(frame)), 'as root, the kernel stack of kthreadd');
  }
  // The reusable sampler says the same.
  const sampler = await createThreadSampler(pids[0]!);
  t.teardown(() => sampler.close());
  const again = await sampler.sample().catch(() => null);
  if (again !== null) for (const thread of again.threads) t.equal(thread.blockedIn, null, 'sampler: no blockedIn for a kernel thread');
});

t.test('a user process says which table named its calls', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const sample = await waitFor(async () => {
    const s = await sampleThreads(target.pid);
    return s.threads[0]?.blockedIn?.call === 'clock_nanosleep' && s;
  }, 'the sleeper in clock_nanosleep');
  t.equal(sample.abi, process.arch === 'arm64' ? 'arm64' : 'x86_64');
  t.equal((await sampleThreads(target.pid, { detail: 'basic' })).abi, undefined, "a basic sample does not read the executable's header");
});

t.test("a worker's fd is named after the main thread called pthread_exit", { skip: linux }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-fifo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const writer = fs.openSync(fifo, fs.constants.O_RDWR); // makes this process the writer, without blocking
  t.teardown(() => fs.closeSync(writer));
  const target = await start(t, 'orphan-fifo-reader', [fifo]);
  const worker = Number(target.info.tid);
  const sample = await waitFor(async () => {
    const s = await sampleThreads(target.pid);
    const leader = s.threads.find((th) => th.tid === target.pid);
    const reader = s.threads.find((th) => th.tid === worker);
    return leader?.state === 'zombie' && reader?.blockedIn?.call === 'read' && s;
  }, 'the leader a zombie and the worker in read');
  // /proc/<pid>/fd is empty now: the fd table is reached through the worker's own task directory.
  t.same(fs.readdirSync(`/proc/${target.pid}/fd`), [], '/proc/<pid>/fd is empty once the main thread exited');
  const reader = sample.threads.find((th) => th.tid === worker)!;
  t.equal(reader.blockedIn!.fd, Number(target.info.fd));
  t.equal(reader.blockedIn!.target, fifo, 'the fifo, read through /proc/<pid>/task/<tid>/fd');
  t.equal(sample.abi, process.arch === 'arm64' ? 'arm64' : 'x86_64', "the ABI from the worker's exe link when the leader's is gone");
  const sampler = await createThreadSampler(target.pid);
  t.teardown(() => sampler.close());
  const viaSampler = (await sampler.sample()).threads.find((th) => th.tid === worker)!;
  t.equal(viaSampler.blockedIn!.target, fifo, 'the reusable sampler too');
});

/** Why a 32-bit target cannot be built or run here, or false. */
async function no32Bit(): Promise<string | false> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'a 32-bit (i386) target is built on x86_64 Linux only';
  let binary: string;
  try {
    binary = await targetBinary('m32');
  } catch (error) {
    return `cc -m32 cannot build here (install gcc-multilib): ${(error as Error).message.split('\n')[0]}`;
  }
  try {
    execFileSync(binary, [], { stdio: 'pipe' });
  } catch (error) {
    // Without a mode the target prints its usage and exits 2. A kernel without IA32
    // emulation refuses the binary (ENOEXEC), and execvp then hands it to /bin/sh.
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '');
    if (/usage: target/.test(stderr)) return false;
    return `this kernel does not run 32-bit programs (IA32 emulation off): ${stderr.trim().split('\n')[0] ?? (error as Error).message}`;
  }
  return false;
}

t.test('a 32-bit process is named from the i386 table', async (t) => {
  const why = await no32Bit();
  if (why) return t.skip(why);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-fifo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const writer = fs.openSync(fifo, fs.constants.O_RDWR);
  t.teardown(() => fs.closeSync(writer));
  const target = await start(t, 'fifo-reader', [fifo], 'm32');
  const sample = await waitFor(async () => {
    const s = await sampleThreads(target.pid);
    return s.threads[0]?.state === 'sleeping' && s.threads[0].blockedIn !== null && s;
  }, 'the 32-bit fifo reader asleep in a call');
  const main = sample.threads[0]!;
  t.equal(sample.abi, 'i386');
  // i386 read is 3, which x86_64 calls close.
  t.equal(main.blockedIn!.number, 3);
  t.equal(main.blockedIn!.call, 'read');
  t.equal(main.blockedIn!.fd, Number(target.info.fd));
  t.equal(main.blockedIn!.target, fifo);

  const sleeper = await start(t, 'join-sleeper', [], 'm32');
  const joined = await waitFor(async () => {
    const s = await sampleThreads(sleeper.pid);
    const worker = s.threads.find((th) => th.tid === Number(sleeper.info.tid));
    return /clock_nanosleep/.test(worker?.blockedIn?.call ?? '') && s.threads[0]?.blockedIn?.joining !== undefined && s;
  }, 'the 32-bit joiner and its sleeping worker');
  t.match(joined.threads[0]!.blockedIn!.call, /^futex/, 'the 32-bit join waits in futex (futex_time64 with a 64-bit time_t glibc)');
  t.equal(joined.threads[0]!.blockedIn!.joining, Number(sleeper.info.tid));
});

t.test('a main thread in pthread_join names the thread it joins', { skip: linux }, async (t) => {
  const target = await start(t, 'join-sleeper');
  const worker = Number(target.info.tid);
  const sample = await waitFor(async () => {
    const s = await sampleThreads(target.pid);
    return s.threads[0]?.blockedIn?.call === 'futex' && s;
  }, 'the main thread in futex');
  t.equal(sample.threads[0]!.blockedIn!.joining, worker, 'joining the worker: its tid is the value the futex wait expects');
  const other = sample.threads.find((th) => th.tid === worker)!;
  t.equal(other.blockedIn!.joining, undefined, 'a sleep joins nothing');
  const deadlock = await start(t, 'deadlock');
  const locked = await waitFor(async () => {
    const s = await sampleThreads(deadlock.pid);
    return s.threads.filter((th) => th.blockedIn?.call === 'futex').length === 3 && s;
  }, 'main joining a, a and b deadlocked');
  t.equal(locked.threads[0]!.blockedIn!.joining, Number(deadlock.info.a), 'main joins thread a');
  for (const th of locked.threads.slice(1)) t.equal(th.blockedIn!.joining, undefined, 'a mutex wait joins nothing');
});

t.test('thread names that are not UTF-8 stay distinct and recoverable', { skip: linux }, async (t) => {
  const target = await start(t, 'latin1-names');
  const sample = await waitFor(async () => {
    const s = await sampleThreads(target.pid);
    return s.threads.length === 4 && s;
  }, 'the three named threads');
  const names = sample.threads.slice(1).map((th) => th.name).sort();
  t.same(names, ['a\\\\b', 'caf\\xe8', 'caf\\xe9'], 'invalid bytes as \\xHH, a backslash doubled');
  t.equal(new Set(names).size, 3, 'no two print alike');
  // Recoverable: undo the escapes and the bytes are the kernel's.
  const bytes = (name: string) => Buffer.from(name.replace(/\\x([0-9a-f]{2})|\\\\/g, (m, hex: string | undefined) => (hex ? String.fromCharCode(parseInt(hex, 16)) : '\\')), 'latin1');
  const tid = sample.threads.find((th) => th.name === 'caf\\xe9')!.tid;
  t.same(bytes('caf\\xe9'), fs.readFileSync(`/proc/${target.pid}/task/${tid}/comm`).subarray(0, -1));
});
