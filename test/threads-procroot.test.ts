/**
 * sampleThreads over fake procRoot trees built from real captured procfs files
 * (test/fixtures/procfs/), for what a live process on this machine cannot show
 * on demand: an ioctl on /dev/nvidia0, a syscall number no table knows, files a
 * kernel lacks or will not show, a thread that vanishes, a malformed file.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createThreadSampler, sampleThreads } from '../src/sample';

const CAPTURE = path.join(__dirname, 'fixtures', 'procfs', 'clock-nanosleep');
const FILES = ['stat', 'schedstat', 'status', 'syscall', 'wchan', 'stack', 'sched'] as const;
type TaskFileName = (typeof FILES)[number];
const NS_PER_TICK = 1e7; // USER_HZ is 100 on every Linux ABI
const NR: Record<string, Record<string, number>> = {
  x64: { ioctl: 16, read: 0, futex: 202 },
  arm64: { ioctl: 29, read: 63, futex: 98 },
};

interface FakeThread {
  tid: number;
  name?: string;
  state?: string;
  utimeTicks?: number;
  /** stat field 9 (task flags: 0x00200000 is PF_KTHREAD). */
  flags?: number;
  /** Replacement text per file; null leaves the file out. */
  files?: Partial<Record<TaskFileName, string | null>>;
}

function captured(file: TaskFileName): string {
  return fs.readFileSync(path.join(CAPTURE, file), 'utf8');
}

/** The captured stat line, as thread `tid` named `name`, in `state`, in a group of `count`. */
function statLine(thread: FakeThread, count: number): string {
  const line = captured('stat');
  const rest = line.slice(line.lastIndexOf(')') + 2).trim().split(' ');
  rest[0] = thread.state ?? 'S';
  if (thread.flags !== undefined) rest[6] = String(thread.flags); // field 9, flags
  rest[11] = String(thread.utimeTicks ?? 0); // field 14, utime
  rest[17] = String(count); // field 20, num_threads
  return `${thread.tid} (${thread.name ?? 'target'}) ${rest.join(' ')}\n`;
}

/** The captured status, as thread `tid` of process `pid`. */
function statusText(tid: number, pid: number): string {
  return captured('status').replace(/^Tgid:.*$/m, `Tgid:\t${pid}`).replace(/^Pid:.*$/m, `Pid:\t${tid}`);
}

/** A procRoot with process `pid` (threads[0] is its leader) and fd symlinks. */
function fakeProc(
  t: { teardown(fn: () => void): void },
  threads: FakeThread[],
  fds: Record<number, string> = {},
  exe?: (file: string) => void,
) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-proc-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.chmodSync(root, 0o755);
  // The reader's own sched file: the scheduler clock "now" for offCpuNs (/proc/thread-self is a link to it in /proc).
  fs.mkdirSync(path.join(root, 'thread-self'));
  fs.copyFileSync(path.join(CAPTURE, '..', 'thread-self-sched'), path.join(root, 'thread-self', 'sched'));
  const pid = threads[0]!.tid;
  const processDir = path.join(root, String(pid));
  fs.mkdirSync(path.join(processDir, 'fd'), { recursive: true });
  for (const [fd, target] of Object.entries(fds)) fs.symlinkSync(target, path.join(processDir, 'fd', fd));
  for (const thread of threads) {
    const dir = path.join(processDir, 'task', String(thread.tid));
    // Each thread's fd directory shows the table its process shares, as in /proc.
    fs.mkdirSync(path.join(dir, 'fd'), { recursive: true });
    for (const [fd, target] of Object.entries(fds)) fs.symlinkSync(target, path.join(dir, 'fd', fd));
    for (const file of FILES) {
      const replacement = thread.files?.[file];
      if (replacement === null) continue;
      const text = replacement ?? (file === 'stat' ? statLine(thread, threads.length) : file === 'status' ? statusText(thread.tid, pid) : captured(file));
      fs.writeFileSync(path.join(dir, file), text);
    }
  }
  fs.copyFileSync(path.join(processDir, 'task', String(pid), 'stat'), path.join(processDir, 'stat'));
  exe?.(path.join(processDir, 'exe'));
  fs.writeFileSync(path.join(processDir, 'status'), statusText(pid, pid));
  return { root, pid, taskDir: (tid: number) => path.join(processDir, 'task', String(tid)) };
}

/** "nr a0 … a5 sp pc" as the kernel prints it. */
function syscallLine(nr: number, arg0: number): string {
  return `${nr} 0x${arg0.toString(16)} 0xc0d04603 0x7ffe37752de0 0x0 0x0 0x0 0x7ffe37752dd8 0x7f8c18260503\n`;
}

const nr = NR[process.arch] ?? NR.x64!;

/** The captured sched file with se.exec_start set to `ns`, printed as the kernel does ("%14Ld.%06ld", ms). */
function schedText(ns: bigint, file = path.join(CAPTURE, 'sched')): string {
  const value = `${ns / 1000000n}.${String(ns % 1000000n).padStart(6, '0')}`;
  return fs.readFileSync(file, 'utf8').replace(/^(se\.exec_start\s+:\s+)[\d.]+$/m, (_, key: string) => key + value.padStart(14 + 7));
}
/** se.exec_start of the captures: the target's (asleep) and the reader's (now), 2785.646119 ms apart. */
const CAPTURED_EXEC_START = 1449398232578n;
const CAPTURED_NOW = 1452183878697n;

/** The second sample of a fresh sampler, its threads in tid order. */
async function sampleAfterTwo(pid: number, procRoot: string) {
  const sampler = createThreadSampler(pid, { procRoot });
  try {
    await sampler.sample();
    const sample = await sampler.sample();
    sample.threads.sort((a, b) => a.tid - b.tid);
    return sample;
  } finally {
    sampler.close();
  }
}

/** A sample with its threads in tid order (a fixture tree lists in any order). */
async function sampleTree(pid: number, options: Parameters<typeof sampleThreads>[1]) {
  const sample = await sampleThreads(pid, options);
  sample.threads.sort((a, b) => a.tid - b.tid);
  return sample;
}

if (process.platform === 'linux') procRootTests();
else t.plan(0, 'the procfs reader is Linux only');

function procRootTests(): void {
  t.test('the captured thread reads as the live one did', async (t) => {
    const proc = fakeProc(t, [{ tid: 4100, utimeTicks: 123 }]);
    const sample = await sampleTree(proc.pid, { procRoot: proc.root });
    t.equal(sample.name, 'target');
    t.same(sample.limits, []);
    const [thread] = sample.threads;
    t.equal(thread!.tid, 4100);
    t.equal(thread!.state, 'sleeping');
    t.equal(thread!.userNs, 123 * NS_PER_TICK, 'clock ticks become ns');
    t.equal(thread!.systemNs, 0);
    t.equal(thread!.cpuNs, 6740884, 'schedstat field 1');
    t.same(thread!.contextSwitches, { voluntary: 1, involuntary: 1 });
    t.equal(thread!.wchan, 'hrtimer_nanosleep');
    t.same(thread!.kernelStack, [
      'hrtimer_nanosleep+0xb5/0x130',
      'common_nsleep_timens+0x3d/0xa0',
      '__x64_sys_clock_nanosleep+0xde/0x150',
      'do_syscall_64+0x71/0x290',
      'entry_SYSCALL_64_after_hwframe+0x76/0x7e',
    ]);
    if (process.arch === 'x64') t.same(thread!.blockedIn, { call: 'clock_nanosleep', number: 230 });
  });

  t.test('an ioctl on a GPU node names the node; other fd calls name theirs', async (t) => {
    const proc = fakeProc(
      t,
      [
        { tid: 4200, files: { syscall: syscallLine(nr.ioctl!, 3) } },
        { tid: 4201, files: { syscall: syscallLine(nr.ioctl!, 5) } },
        { tid: 4202, files: { syscall: syscallLine(nr.read!, 7) } },
        { tid: 4203, files: { syscall: syscallLine(nr.read!, 9) } },
        { tid: 4204, files: { syscall: syscallLine(nr.futex!, 0x55d0c0de) } },
      ],
      { 3: '/dev/nvidia0', 5: '/dev/dri/renderD128', 7: 'pipe:[123456]' },
    );
    const { threads } = await sampleTree(proc.pid, { procRoot: proc.root });
    t.same(threads[0]!.blockedIn, { call: 'ioctl', number: nr.ioctl, fd: 3, target: '/dev/nvidia0' });
    t.same(threads[1]!.blockedIn, { call: 'ioctl', number: nr.ioctl, fd: 5, target: '/dev/dri/renderD128' });
    t.same(threads[2]!.blockedIn, { call: 'read', number: nr.read, fd: 7, target: 'pipe:[123456]' });
    t.same(threads[3]!.blockedIn, { call: 'read', number: nr.read, fd: 9 }, 'an fd closed meanwhile: no target');
    t.same(threads[4]!.blockedIn, { call: 'futex', number: nr.futex }, 'futex takes no fd');
  });

  t.test("the syscall table is the process's own: ELF class and machine of its executable", async (t) => {
    /** The first 20 bytes of an ELF header (e_ident, e_type, e_machine), little endian. */
    const elf = (wide: boolean, machine: number) => {
      const header = Buffer.alloc(64);
      header.set([0x7f, 0x45, 0x4c, 0x46, wide ? 2 : 1, 1, 1]);
      header.writeUInt16LE(2, 16);
      header.writeUInt16LE(machine, 18);
      return header;
    };
    const host = process.arch === 'arm64' ? 'arm64' : 'x86_64';
    const cases: Array<[string, Buffer, number, string, string]> =
      process.arch === 'arm64'
        ? [['arm32', elf(false, 40), 3, 'read', 'arm32'], ['arm64', elf(true, 183), 63, 'read', 'arm64']]
        : [
            ['i386', elf(false, 3), 3, 'read', 'i386'],
            ['x32', elf(false, 62), 0x40000000, 'read', 'x32'],
            ['x86_64', elf(true, 62), 3, 'close', 'x86_64'],
          ];
    for (const [label, header, number, call, abi] of cases) {
      const proc = fakeProc(t, [{ tid: 4250, files: { syscall: syscallLine(number, 7) } }], { 7: 'pipe:[42]' }, (file) => fs.writeFileSync(file, header));
      const sample = await sampleTree(proc.pid, { procRoot: proc.root });
      t.equal(sample.abi, abi, `${label}: abi`);
      t.same(sample.threads[0]!.blockedIn, { call, number, ...(call === 'read' ? { fd: 7, target: 'pipe:[42]' } : {}) }, `${label}: ${call}`);
      t.same(sample.limits, [], `${label}: no limit`);
    }
    // Not an ELF file: the host's table, and a limit that says so.
    const text = fakeProc(t, [{ tid: 4251, files: { syscall: syscallLine(nr.read!, 7) } }], {}, (file) => fs.writeFileSync(file, '#!/bin/sh\nexit 0\n'));
    const plain = await sampleTree(text.pid, { procRoot: text.root });
    t.equal(plain.abi, host);
    t.equal(plain.threads[0]!.blockedIn!.call, 'read');
    t.match(plain.limits, [{ field: 'abi', code: 'EIO', reason: /ELF header.*assume the/ }]);
    // A basic sample reads no call, so no header either; a kernel thread has no executable.
    t.equal((await sampleTree(text.pid, { procRoot: text.root, detail: 'basic' })).abi, undefined);
    const kthread = fakeProc(t, [{ tid: 4252, flags: 0x00208040, files: { syscall: '0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0\n' } }]);
    const kernel = await sampleTree(kthread.pid, { procRoot: kthread.root });
    t.equal(kernel.abi, 'kernel');
    t.equal(kernel.threads[0]!.blockedIn, null, 'zeroed user registers are not read(0)');
    t.equal(kernel.threads[0]!.wchan, 'hrtimer_nanosleep', 'its wchan is kept');
    t.equal((await sampleTree(kthread.pid, { procRoot: kthread.root, detail: 'basic' })).abi, 'kernel', 'known from stat alone');
  });

  t.test('an executable that does not answer costs at most the deadline, and says so', async (t) => {
    // A fifo stands in for an executable on a hung file system: opening it blocks until a writer comes.
    const proc = fakeProc(t, [{ tid: 4260, files: { syscall: syscallLine(nr.read!, 7) } }], {}, (file) => execFileSync('mkfifo', [file]));
    const sample = await sampleTree(proc.pid, { procRoot: proc.root });
    t.equal(sample.threads[0]!.blockedIn!.call, 'read', "named from the host's table");
    t.match(sample.limits, [{ subject: `pid ${proc.pid}`, field: 'abi', code: 'ETIMEDOUT', reason: /did not come back within 500 ms/ }]);
    // Let the abandoned reader finish: a writer that opens and closes.
    const writer = fs.openSync(path.join(proc.root, String(proc.pid), 'exe'), fs.constants.O_RDWR);
    fs.closeSync(writer);
  });

  t.test('a futex wait that expects the tid of a live thread is a join', async (t) => {
    const futex = (op: number, expected: number) =>
      `${nr.futex} 0x7f0000001000 0x${op.toString(16)} 0x${expected.toString(16)} 0x0 0x0 0xffffffff 0x7ffe37752dd8 0x7f8c18260503\n`;
    const proc = fakeProc(t, [
      { tid: 4270, files: { syscall: futex(9, 4271) } }, // FUTEX_WAIT_BITSET, as glibc's pthread_join
      { tid: 4271, files: { syscall: futex(0x80, 4272) } }, // FUTEX_WAIT_PRIVATE
      { tid: 4272, files: { syscall: futex(9, 4299) } }, // no such thread
      { tid: 4273, files: { syscall: futex(1, 4270) } }, // FUTEX_WAKE: no wait
      { tid: 4274, files: { syscall: futex(9, 4274) } }, // its own tid
      { tid: 4275, state: 'Z', files: { syscall: futex(9, 0) } },
      { tid: 4276, files: { syscall: futex(9, 4275) } }, // a zombie: exited already
    ]);
    const { threads } = await sampleTree(proc.pid, { procRoot: proc.root });
    t.equal(threads[0]!.blockedIn!.joining, 4271);
    t.equal(threads[1]!.blockedIn!.joining, 4272);
    for (const i of [2, 3, 4, 5, 6]) t.notOk('joining' in threads[i]!.blockedIn!, `${threads[i]!.tid}: no join`);
  });

  t.test('syscall lines: unknown numbers, user space, running', async (t) => {
    const proc = fakeProc(t, [
      { tid: 4300, files: { syscall: syscallLine(999, 0) } },
      { tid: 4301, files: { syscall: '-1 0x7ffe37752dd8 0x7f8c18260503\n' } },
      { tid: 4302, state: 'R', files: { syscall: 'running\n', wchan: '0' } },
      { tid: 4303, files: { syscall: '-1\n' } },
    ]);
    const { threads, limits } = await sampleTree(proc.pid, { procRoot: proc.root, stacks: true });
    t.same(threads[0]!.blockedIn, { call: 'syscall_999', number: 999 });
    t.equal(threads[1]!.blockedIn, null, 'in user space');
    t.equal(threads[1]!.pc, 0x7f8c18260503, 'the user pc, with stacks asked for');
    t.equal(threads[2]!.blockedIn, null, 'running');
    t.equal(threads[2]!.state, 'running');
    t.notOk('wchan' in threads[2]!, 'wchan 0 means none');
    t.notOk('pc' in threads[2]!, 'a running thread has no readable pc');
    t.equal(threads[3]!.blockedIn, null, 'the old "-1" form');
    t.same(
      limits.map((l) => l.field),
      ['stack'],
      'only the user-stack limit',
    );
    // A fixture tree's pids are not live processes: nothing is traced or copied.
    t.match(limits[0]!.reason, `user stacks are taken from the live process, and this sample reads ${proc.root} instead of /proc`);
    t.notOk(threads.some((th) => 'stack' in th));
  });

  t.test('every state letter maps, names are taken between the first ( and the last )', async (t) => {
    const letters: Record<string, string> = {
      R: 'running', S: 'sleeping', D: 'uninterruptible', T: 'stopped', t: 'stopped', Z: 'zombie',
      X: 'zombie', I: 'sleeping', P: 'sleeping', K: 'uninterruptible', W: 'runnable', Q: 'unknown',
    };
    const names = ['a) x (b', ') S 1 (', '((', 'tab\there', 'new\nline', 'ünï'];
    const threads = Object.keys(letters).map((state, i) => ({ tid: 4400 + i, state, name: names[i % names.length] }));
    const proc = fakeProc(t, threads);
    const sample = await sampleTree(proc.pid, { procRoot: proc.root, detail: 'basic' });
    t.equal(sample.threads.length, threads.length);
    sample.threads.forEach((thread, i) => {
      t.equal(thread.state, letters[threads[i]!.state], `state ${threads[i]!.state}`);
      t.equal(thread.name, threads[i]!.name);
    });
  });

  t.test('files a kernel does not have, malformed files, threads that vanish', async (t) => {
    const proc = fakeProc(t, [
      { tid: 4500, files: { schedstat: null, stack: null } },
      { tid: 4501, files: { schedstat: null, stack: null, status: 'Name:\ttarget\nState:\tS (sleeping)\n' } },
      { tid: 4502, files: { stat: '4502 target S 1 2 3\n' } },
      { tid: 4503, files: { stat: null } },
    ]);
    const sample = await sampleTree(proc.pid, { procRoot: proc.root });
    t.same(
      sample.threads.map((x) => x.tid),
      [4500, 4501],
      'a thread without a parsable stat is skipped, like one that vanished',
    );
    t.notOk('cpuNs' in sample.threads[0]!);
    t.notOk('kernelStack' in sample.threads[0]!);
    t.same(sample.threads[0]!.contextSwitches, { voluntary: 1, involuntary: 1 });
    t.equal(sample.threads[1]!.contextSwitches, null);
    const byField = Object.fromEntries(sample.limits.map((l) => [l.field, l]));
    t.same(Object.keys(byField).sort(), ['contextSwitches', 'cpuNs', 'kernelStack', 'state']);
    t.equal(byField.cpuNs!.code, 'ENOTSUP');
    t.match(byField.cpuNs!.reason, /schedstat does not exist on this kernel/);
    t.equal(byField.kernelStack!.code, 'ENOTSUP');
    t.equal(byField.contextSwitches!.code, 'EIO');
    t.match(byField.contextSwitches!.reason, /status has a format iokit-snap does not know/);
    t.equal(byField.state!.code, 'EIO');
  });

  t.test('the sampler re-reads a thread only when its schedstat moved', async (t) => {
    const proc = fakeProc(t, [{ tid: 4600 }, { tid: 4601, state: 'R', files: { syscall: 'running\n' } }]);
    const sampler = createThreadSampler(proc.pid, { procRoot: proc.root });
    t.teardown(() => sampler.close());
    const first = await sampler.sample();
    first.threads.sort((a, b) => a.tid - b.tid);
    t.equal(first.threads[0]!.wchan, 'hrtimer_nanosleep');
    // Everything but schedstat changes: a thread that did not run cannot have
    // changed, so the sampler keeps what it read.
    const dir = proc.taskDir(4600);
    fs.writeFileSync(path.join(dir, 'wchan'), 'futex_wait_queue');
    fs.writeFileSync(path.join(dir, 'syscall'), syscallLine(nr.futex!, 0x1000));
    fs.writeFileSync(path.join(proc.taskDir(4601), 'wchan'), 'pipe_read');
    const second = await sampler.sample();
    second.threads.sort((a, b) => a.tid - b.tid);
    t.equal(second.threads[0]!.wchan, 'hrtimer_nanosleep', 'unchanged schedstat: the previous record');
    t.equal(second.threads[1]!.wchan, 'pipe_read', 'a thread that was running is always re-read');
    fs.writeFileSync(path.join(dir, 'schedstat'), '6741000 13661911 3\n');
    const third = await sampler.sample();
    third.threads.sort((a, b) => a.tid - b.tid);
    t.equal(third.threads[0]!.wchan, 'futex_wait_queue', 'it ran: read again');
    t.equal(third.threads[0]!.blockedIn!.call, 'futex');
    t.equal(third.threads[0]!.cpuNs, 6741000);
    // A new thread: the group's num_threads (in the leader's stat) moves, so the
    // task directory is listed again.
    fs.cpSync(dir, proc.taskDir(4602), { recursive: true });
    fs.writeFileSync(path.join(dir, 'stat'), statLine({ tid: 4600 }, 3));
    const fourth = await sampler.sample();
    t.same(fourth.threads.map((x) => x.tid).sort(), [4600, 4601, 4602]);
    // One gone.
    fs.rmSync(proc.taskDir(4601), { recursive: true });
    fs.writeFileSync(path.join(dir, 'stat'), statLine({ tid: 4600 }, 2));
    const fifth = await sampler.sample();
    t.same(fifth.threads.map((x) => x.tid).sort(), [4600, 4602]);
  });

  t.test('offCpuNs: the clock now less se.exec_start; 0 for R, for a thread that ran after now, and for exec_start 0', async (t) => {
    const proc = fakeProc(t, [
      { tid: 4800 },
      { tid: 4801, state: 'R', files: { syscall: 'running\n', sched: null } },
      { tid: 4802, files: { sched: schedText(CAPTURED_NOW + 5000n) } },
      { tid: 4803, state: 'D', files: { sched: schedText(0n) } },
      { tid: 4804, state: 'T', files: { sched: schedText(CAPTURED_NOW - 7n) } },
    ]);
    const sample = await sampleTree(proc.pid, { procRoot: proc.root });
    t.same(sample.limits, [], 'R reads no sched file: none is missed');
    t.same(
      sample.threads.map((x) => x.offCpuNs),
      [Number(CAPTURED_NOW - CAPTURED_EXEC_START), 0, 0, 0, 7],
    );
    t.equal(sample.threads[0]!.offCpuNs, 2785646119, 'the captured sleep: 2785.646119 ms');
    const basic = await sampleTree(proc.pid, { procRoot: proc.root, detail: 'basic' });
    t.ok(basic.threads.every((x) => !('offCpuNs' in x)), 'detail basic reads no sched file');
  });

  t.test('offCpuNs limits: one per process, never an invented number', async (t) => {
    const cases: Array<[string, (root: string, taskDir: (tid: number) => string) => void, RegExp, string]> = [
      ['no sched files at all (before 6.15, without CONFIG_SCHED_DEBUG)', (root, dir) => {
        fs.rmSync(path.join(root, 'thread-self'), { recursive: true });
        fs.rmSync(path.join(dir(4900), 'sched'));
        fs.rmSync(path.join(dir(4901), 'sched'));
      }, /task\/\*\/sched does not exist on this kernel/, 'ENOTSUP'],
      ['the threads have none', (_root, dir) => {
        fs.rmSync(path.join(dir(4900), 'sched'));
        fs.rmSync(path.join(dir(4901), 'sched'));
      }, /task\/\*\/sched does not exist on this kernel/, 'ENOTSUP'],
      ['a malformed sched file', (_root, dir) => fs.writeFileSync(path.join(dir(4901), 'sched'), 'se.exec_start : soon\n'), /sched has a format iokit-snap does not know/, 'EIO'],
      ['a malformed clock', (root) => fs.writeFileSync(path.join(root, 'thread-self', 'sched'), 'x (1, #threads: 1)\n'), /thread-self\/sched \(the scheduler clock now.*format iokit-snap does not know/, 'EIO'],
      ['a clock that cannot be read', (root) => {
        fs.rmSync(path.join(root, 'thread-self', 'sched'));
        fs.mkdirSync(path.join(root, 'thread-self', 'sched'));
      }, /reading .*thread-self\/sched \(the scheduler clock now.*failed: Is a directory/, 'EIO'],
    ];
    for (const [label, breakIt, reason, code] of cases) {
      const proc = fakeProc(t, [{ tid: 4900 }, { tid: 4901 }, { tid: 4902, state: 'R', files: { syscall: 'running\n' } }]);
      breakIt(proc.root, proc.taskDir);
      for (const sample of [await sampleTree(proc.pid, { procRoot: proc.root }), await sampleAfterTwo(proc.pid, proc.root)]) {
        t.match(sample.limits, [{ subject: `pid ${proc.pid}`, field: 'offCpuNs', code, reason }], label);
        t.equal(sample.limits.length, 1, `${label}: one limit`);
        t.equal(sample.threads[2]!.offCpuNs, 0, `${label}: R needs no file`);
        if (label !== 'a malformed sched file') t.notOk('offCpuNs' in sample.threads[0]!, `${label}: no number`);
        t.notOk('offCpuNs' in sample.threads[1]!, `${label}: no number`);
      }
    }
  });

  t.test('the sampler keeps se.exec_start while a thread stays still, has none for one that ran, and holds no fd for it', async (t) => {
    const proc = fakeProc(t, [{ tid: 5000 }, { tid: 5001, state: 'R', files: { syscall: 'running\n' } }]);
    const clock = path.join(proc.root, 'thread-self', 'sched');
    const self = path.join(CAPTURE, '..', 'thread-self-sched');
    const sched = path.join(proc.taskDir(5000), 'sched');
    const sampler = createThreadSampler(proc.pid, { procRoot: proc.root });
    t.teardown(() => sampler.close());
    const off = async () => {
      const sample = await sampler.sample();
      sample.threads.sort((a, b) => a.tid - b.tid);
      t.same(sample.limits, []);
      t.equal(sample.threads[1]!.offCpuNs, 0, 'R: 0');
      return sample.threads[0]!.offCpuNs;
    };
    const slept = Number(CAPTURED_NOW - CAPTURED_EXEC_START);
    t.equal(await off(), slept, 'first seen: read');
    // The clock moves on; the thread's file changes too, but its schedstat does not: not read again.
    fs.writeFileSync(clock, schedText(CAPTURED_NOW + 1000000000n, self));
    fs.writeFileSync(sched, schedText(CAPTURED_EXEC_START + 500000000n));
    t.equal(await off(), slept + 1e9, 'still: the kept exec_start against the new clock');
    const held = fs.readdirSync('/proc/self/fd').map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    });
    t.notOk(held.some((target) => target.endsWith('/sched')), 'no fd kept on a sched file');
    t.ok(held.some((target) => target.endsWith(`${proc.taskDir(5000)}/schedstat`)), 'while schedstat is kept');
    fs.writeFileSync(path.join(proc.taskDir(5000), 'schedstat'), '6741000 13661911 3\n');
    t.equal(await off(), undefined, 'it ran since the previous sample: no offCpuNs');
    fs.writeFileSync(clock, schedText(CAPTURED_NOW + 2000000000n, self));
    t.equal(await off(), slept + 1.5e9, 'still again: read once more');
    fs.writeFileSync(sched, 'garbage\n');
    t.equal(await off(), slept + 1.5e9, 'and kept');
  });

  t.test('a sampler without schedstat cannot tell a thread that ran: it reads sched every sample', async (t) => {
    const proc = fakeProc(t, [{ tid: 5200, files: { schedstat: null } }]);
    const sampler = createThreadSampler(proc.pid, { procRoot: proc.root });
    t.teardown(() => sampler.close());
    t.equal((await sampler.sample()).threads[0]!.offCpuNs, Number(CAPTURED_NOW - CAPTURED_EXEC_START));
    fs.writeFileSync(path.join(proc.taskDir(5200), 'sched'), schedText(CAPTURED_NOW - 1000n));
    const second = await sampler.sample();
    t.equal(second.threads[0]!.offCpuNs, 1000, 'read again');
    t.match(second.limits, [{ field: 'cpuNs', code: 'ENOTSUP' }]);
  });

  t.test('tids: the other threads are not read at all', async (t) => {
    const proc = fakeProc(t, [
      { tid: 5100 },
      { tid: 5101, files: { stat: 'garbage\n' } },
      { tid: 5102, state: 'R', files: { syscall: 'running\n' } },
      { tid: 5103, files: { status: 'nonsense\n' } },
    ]);
    const whole = await sampleTree(proc.pid, { procRoot: proc.root });
    t.same(whole.limits.map((l) => l.field).sort(), ['contextSwitches', 'state'], 'every thread read: 5101 and 5103 cost limits');
    const sample = await sampleThreads(proc.pid, { procRoot: proc.root, tids: [5102, 5100, 5999] });
    t.same(sample.threads.map((x) => x.tid), [5102, 5100], 'in the order given; 5999 is no thread here');
    t.same(sample.limits, [], 'nothing of 5101 (bad stat) or 5103 (bad status) was read');
    const good = await sampleThreads(proc.pid, { procRoot: proc.root, tids: [5100] });
    t.equal(good.name, 'target', 'the name from the process stat when its leader is not chosen');
  });

  t.test('without ptrace access: syscall denied, wchan given, one limit with the way to grant it', async (t) => {
    if (process.getuid?.() !== 0) {
      t.plan(0, 'needs root, to run the reader as nobody over files it may not read');
      return;
    }
    // The Yama case: the same user may read stat and wchan but not syscall.
    const proc = fakeProc(t, [{ tid: 4700 }, { tid: 4701 }]);
    for (const tid of [4700, 4701]) {
      fs.chmodSync(path.join(proc.taskDir(tid), 'syscall'), 0o000);
      fs.chmodSync(path.join(proc.taskDir(tid), 'stack'), 0o000);
    }
    const script = `
      const native = require(${JSON.stringify(require.resolve('node-gyp-build'))})(${JSON.stringify(path.join(__dirname, '..'))});
      const keep = setInterval(() => {}, 1000);
      (async () => {
        const oneShot = await native.sampleThreads(${proc.pid}, { procRoot: ${JSON.stringify(proc.root)} });
        const sampler = await native.openThreadSampler(${proc.pid}, { procRoot: ${JSON.stringify(proc.root)} });
        const first = await sampler.sample();
        const second = await sampler.sample();
        sampler.close();
        process.stdout.write(JSON.stringify({ oneShot, first, second }));
      })().catch((e) => process.stdout.write(JSON.stringify({ error: e.code + ': ' + e.message }))).finally(() => clearInterval(keep));
    `;
    const output = execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: os.tmpdir() });
    const result = JSON.parse(output);
    t.equal(result.error, undefined);
    for (const key of ['oneShot', 'first', 'second']) {
      const sample = result[key];
      t.equal(sample.threads.length, 2);
      for (const thread of sample.threads) {
        t.equal(thread.blockedIn, null, `${key}: no blockedIn`);
        t.equal(thread.wchan, 'hrtimer_nanosleep', `${key}: wchan instead`);
        t.notOk('kernelStack' in thread);
      }
      const fields = sample.limits.map((l: { field: string }) => l.field).sort();
      t.same(fields, ['blockedIn', 'kernelStack'], `${key}: one limit per missing field, not per thread`);
      const blocked = sample.limits.find((l: { field: string }) => l.field === 'blockedIn');
      t.equal(blocked.code, 'EPERM');
      t.match(blocked.reason, /wchan .* is given instead/);
      t.match(blocked.hint, /ptrace_scope/);
    }
  });
}
