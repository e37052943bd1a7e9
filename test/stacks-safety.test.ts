/**
 * Linux user stacks where the sampler or the target is hostile or odd (issue 17 items 2, 3
 * and 8, issue 20 item 6):
 *  - the sampling process stopped (SIGSTOP, or SIGTSTP to its group as Ctrl-Z sends it) in
 *    the middle of a capture must not leave a target thread held;
 *  - a zombie has no stacks, and says so; a process whose main thread exited has stacks;
 *  - the files a stack walk reads are the objects the target maps, never a path it controls:
 *    a chrooted process's binary is found (its maps path is seen from our root, and was
 *    prefixed with its root a second time), a link placed where that doubled path leads is
 *    never followed (to a fifo: never opened; to a root-only ELF: never parsed), and a debug
 *    file the target's own user cannot read is not read for it.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sampleThreads } from '../src/sample';
import type { ThreadSample, ThreadSampleResult } from '../src/types';
import { stacksBinary, tracedOrStopped } from './helpers/stack-targets';
import { buildC, start, waitFor } from './helpers/targets';

const ROOT = path.join(__dirname, '..');
const NODE_GYP_BUILD = require.resolve('node-gyp-build');
const STACKS_SOURCE = path.join(__dirname, 'targets', 'stacks.c');
/** Without scripts/asan.sh's preloaded libasan: targets and tools run as they would. */
const PLAIN_ENV = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'LD_PRELOAD'));
const IS_ROOT = process.getuid?.() === 0;
/** For a Node child run as another user: without the test runner's hooks (they write under .tap/). */
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_OPTIONS' && !key.startsWith('_TAPJS') && !key.startsWith('TAP')));

function mayTraceNonDescendants(): boolean {
  if (IS_ROOT) return true;
  try {
    return fs.readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim() === '0';
  } catch {
    return true;
  }
}
const YAMA_SKIP = mayTraceNonDescendants() ? false : 'kernel.yama.ptrace_scope is not 0: a process the test starts may not trace the target';

function hasPerl(): boolean {
  try {
    execFileSync('perl', ['-e', '1'], { stdio: 'ignore', env: PLAIN_ENV });
    return true;
  } catch {
    return false;
  }
}

const symbols = (thread: ThreadSample | undefined): string[] => (thread?.stack ?? []).map((f) => f.symbol ?? `?${f.module}`);

/** Whether any thread of `pid` has a tracer now. */
function anyHeld(pid: number): boolean {
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      if (!/TracerPid:\s*0\n/.test(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))) return true;
    } catch {
      /* gone */
    }
  }
  return false;
}

function tempDir(t: Test, prefix: string, mode = 0o700): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, mode);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Jailed {
  pid: number;
  sleeper: number;
  child: ChildProcess;
}

/**
 * test/targets/stacks.c started under `sh` (a grandchild: every thread may be held), by
 * `command` (e.g. chroot JAIL /prog /fifo), run as `uid`.
 */
async function startStacks(t: Test, command: string[], uid?: number): Promise<Jailed> {
  const child = spawn('sh', ['-c', '"$@" & wait', 'sh', ...command], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: PLAIN_ENV,
    ...(uid === undefined ? {} : { uid, gid: uid, cwd: '/' }),
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  let pid = 0;
  t.teardown(async () => {
    for (const p of [pid, child.pid!]) {
      try {
        if (p > 0) process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
  });
  const ready = await waitFor(() => /ready pid=(\d+) spinner=(\d+) sleeper=(\d+)/.exec(out), `${command.join(' ')} to be ready`);
  pid = Number(ready[1]);
  return { pid, sleeper: Number(ready[3]), child };
}

/** A stacks sample in which the main thread is in its read and the sleeper asleep. */
function sampleInPlace(target: Jailed): Promise<ThreadSampleResult> {
  return waitFor(async () => {
    const sample = await sampleThreads(target.pid, { stacks: true, kernelStacks: false });
    const main = sample.threads.find((x) => x.tid === target.pid);
    const sleeper = sample.threads.find((x) => x.tid === target.sleeper);
    return main?.blockedIn?.call === 'read' && sleeper?.blockedIn !== null && (sleeper?.stack?.length ?? 0) > 0 && sample;
  }, 'the main thread in read and the sleeper asleep, with stacks');
}

/** The static stacks binary in a fresh jail (JAIL/prog, JAIL/fifo), owned by `uid`. */
async function jail(t: Test, uid = 0): Promise<string> {
  const binary = await buildC(STACKS_SOURCE, 'stacks-static', ['-O1', '-fno-omit-frame-pointer', '-static']);
  const dir = tempDir(t, 'iokit-snap-jail-', 0o755);
  fs.copyFileSync(binary, path.join(dir, 'prog'));
  fs.chmodSync(path.join(dir, 'prog'), 0o755);
  execFileSync('mkfifo', ['-m', '666', path.join(dir, 'fifo')]);
  if (uid !== 0) execFileSync('chown', ['-R', `${uid}:${uid}`, dir]);
  return dir;
}

function hasStaticLibc(): boolean {
  try {
    execFileSync(process.env.CC ?? 'cc', ['-print-file-name=libc.a'], { encoding: 'utf8', env: PLAIN_ENV });
    return fs.existsSync(execFileSync(process.env.CC ?? 'cc', ['-print-file-name=libc.a'], { encoding: 'utf8', env: PLAIN_ENV }).trim());
  } catch {
    return false;
  }
}
const CHROOT_SKIP = !IS_ROOT ? 'needs root, to chroot a target and to sample as root' : !hasStaticLibc() ? 'no static libc (libc.a) to build a target for a jail' : false;

function canUnshareAsNobody(): boolean {
  if (!IS_ROOT) return false;
  try {
    execFileSync('unshare', ['-r', 'true'], { uid: 65534, gid: 65534, stdio: 'ignore', env: PLAIN_ENV, cwd: '/' });
    return true;
  } catch {
    return false;
  }
}

function linuxTests(): void {
  t.test('the sampling process stopped mid-capture (SIGSTOP, or Ctrl-Z’s SIGTSTP to its group) leaves no target thread held', { skip: YAMA_SKIP || (hasPerl() ? false : 'perl is not installed (it puts the walker in a process group of its own)') }, async (t) => {
    // Many threads, so that the captures take a while and the stop lands inside them.
    const target = await start(t, 'threads', ['200']);
    const script = `
      process.stdout.write('pid=' + process.pid + '\\n');
      const native = require(${JSON.stringify(NODE_GYP_BUILD)})(${JSON.stringify(ROOT)});
      (async () => { for (;;) { await native.sampleThreads(${target.pid}, { stacks: true, kernelStacks: false, stackBudgetMs: 30000 }); process.stdout.write('.'); } })();
    `;
    for (const [round, signal] of (['SIGSTOP', 'SIGTSTP', 'SIGSTOP', 'SIGTSTP'] as const).entries()) {
      // As a shell runs a job: in a process group of its own, in our session (so not an
      // orphaned group, which the kernel spares SIGTSTP). Ctrl-Z signals that group.
      const shell = spawn('perl', ['-e', 'setpgrp(0, 0); exec @ARGV or die "exec: $!"', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      shell.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      const walker = Number((await waitFor(() => /pid=(\d+)/.exec(out), 'the walker to start'))[1]);
      const kill = (signal: NodeJS.Signals) => {
        try {
          process.kill(walker, signal);
        } catch {
          /* gone */
        }
      };
      t.teardown(() => kill('SIGKILL'));
      const dots = () => out.length - out.indexOf('\n') - 1;
      await waitFor(() => dots() > 0, 'the walker to finish a walk', 60000);
      // The moment one of the target's threads is held, the walker is stopped.
      await waitFor(() => anyHeld(target.pid), 'the walker to hold a thread of the target', 60000, 0);
      process.kill(signal === 'SIGSTOP' ? walker : -walker, signal);
      await waitFor(() => /State:\s*T/.test(fs.readFileSync(`/proc/${walker}/status`, 'utf8')), 'the walker to be stopped', 10000, 5);
      await waitFor(() => tracedOrStopped(target.pid).length === 0, 'every target thread to be let go', 5000).catch(() => undefined);
      t.same(tracedOrStopped(target.pid), [], `round ${round + 1} (${signal}): while the walker is stopped, no target thread is held`);
      // Continued, it walks on.
      kill('SIGCONT');
      const before = dots();
      await waitFor(() => dots() > before, 'the walker to walk again after SIGCONT', 60000);
      kill('SIGKILL');
      await new Promise((resolve) => shell.once('exit', resolve));
    }
    await waitFor(() => tracedOrStopped(target.pid).length === 0, 'nothing left held', 5000).catch(() => undefined);
    t.same(tracedOrStopped(target.pid), [], 'nothing is left held');
  });

  t.test('a zombie has no stacks, and the limit says it is a zombie (not EIO)', async (t) => {
    const parent = await start(t, 'zombie');
    const zombie = Number(parent.info.zombie);
    const sample = await waitFor(async () => {
      const s = await sampleThreads(zombie, { stacks: true });
      return s.threads.every((x) => x.state === 'zombie') && s;
    }, 'the child to be a zombie');
    const stack = sample.limits.filter((l) => l.field === 'stack');
    t.equal(stack.length, 1, JSON.stringify(sample.limits));
    t.equal(stack[0]!.code, 'ESRCH');
    t.match(stack[0]!.reason, /zombie/);
    t.match(stack[0]!.reason, `parent (pid ${parent.pid})`);
    t.notMatch(stack[0]!.reason, /maps/);
  });

  t.test('a process whose main thread exited: the other threads have stacks', async (t) => {
    const dir = tempDir(t, 'iokit-snap-orphan-');
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const writer = fs.openSync(fifo, fs.constants.O_RDWR);
    t.teardown(() => fs.closeSync(writer));
    const target = await start(t, 'orphan-fifo-reader', [fifo]);
    const worker = Number(target.info.tid);
    const sample = await waitFor(async () => {
      const s = await sampleThreads(target.pid, { stacks: true });
      return s.threads.find((x) => x.tid === target.pid)?.state === 'zombie' && s.threads.find((x) => x.tid === worker)?.blockedIn?.call === 'read' && s;
    }, 'the leader a zombie and the worker in read');
    t.same(
      sample.limits.filter((l) => l.field === 'stack'),
      [],
      'no limit: the maps come from the live thread',
    );
    t.match(symbols(sample.threads.find((x) => x.tid === worker)).join(' '), /read_fifo_worker/, 'the worker’s frames');
  });

  t.test('a chrooted process: its frames are named from its own binary (the maps path is not prefixed with its root twice)', { skip: CHROOT_SKIP }, async (t) => {
    const dir = await jail(t);
    const target = await startStacks(t, ['chroot', dir, '/prog', '/fifo']);
    const sample = await sampleInPlace(target);
    const main = sample.threads.find((x) => x.tid === target.pid);
    t.match(symbols(main).join(' '), /stacks_wait_in_read stacks_outer_caller .*main/, `main: ${symbols(main).join(' < ')}`);
    t.equal(main!.stack!.find((f) => f.symbol === 'stacks_wait_in_read')!.module, path.join(dir, 'prog'), 'the module as maps names it');
    t.match(symbols(sample.threads.find((x) => x.tid === target.sleeper)).join(' '), /stacks_sleep_in_nanosleep/);
    t.same(
      sample.limits.filter((l) => l.field === 'stack'),
      [],
      'nothing unreadable',
    );
  });

  t.test('a link placed where the doubled path leads is never followed: not to a fifo, not to a root-only ELF', { skip: CHROOT_SKIP }, async (t) => {
    const dir = await jail(t);
    const target = await startStacks(t, ['chroot', dir, '/prog', '/fifo']);
    // Under the target's root, the path maps shows (from our root) leads here: the target's to make.
    const planted = path.join(dir, dir, 'prog');
    fs.mkdirSync(path.dirname(planted), { recursive: true });
    const outside = tempDir(t, 'iokit-snap-outside-');

    // A fifo outside the jail, with a writer that says when anyone opens it for reading.
    const fifo = path.join(outside, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const opener = spawn('sh', ['-c', 'exec 3>"$0"; echo opened', fifo], { stdio: ['ignore', 'pipe', 'ignore'], env: PLAIN_ENV });
    let opened = '';
    opener.stdout!.setEncoding('utf8').on('data', (chunk: string) => (opened += chunk));
    t.teardown(() => {
      opener.kill('SIGKILL');
    });
    fs.symlinkSync(fifo, planted);
    for (let i = 0; i < 3; i++) await sampleInPlace(target);
    t.equal(opened, '', 'the fifo was never opened');
    t.equal(opener.exitCode, null, 'its writer still waits for a reader');

    // A root-only ELF: the same program with every symbol renamed, in a 0700 directory.
    const secret = path.join(outside, 'secret');
    execFileSync('objcopy', ['--prefix-symbols=secret_', path.join(dir, 'prog'), secret], { env: PLAIN_ENV });
    fs.chmodSync(secret, 0o700);
    fs.rmSync(planted);
    fs.symlinkSync(secret, planted);
    const sample = await sampleInPlace(target);
    const names = sample.threads.flatMap((x) => symbols(x));
    t.ok(names.includes('stacks_wait_in_read'), 'the frames are named from the mapped program');
    t.same(
      names.filter((name) => name.startsWith('secret_')),
      [],
      'nothing was named from the root-only file',
    );
  });

  t.test('without map_files (not root): the path is taken only when it is the mapped file', { skip: CHROOT_SKIP || (canUnshareAsNobody() ? false : 'unshare -r does not work as nobody here') }, async (t) => {
    // nobody's own jail and target, sampled by nobody: /proc/PID/map_files is root's only.
    const dir = await jail(t, 65534);
    const target = await startStacks(t, ['unshare', '-r', 'chroot', dir, '/prog', '/fifo'], 65534);
    const planted = path.join(dir, dir, 'prog');
    const outside = tempDir(t, 'iokit-snap-outside-', 0o755);
    const fifo = path.join(outside, 'fifo');
    execFileSync('mkfifo', ['-m', '666', fifo]);
    const opener = spawn('sh', ['-c', 'exec 3>"$0"; echo opened', fifo], { stdio: ['ignore', 'pipe', 'ignore'], env: PLAIN_ENV });
    let opened = '';
    opener.stdout!.setEncoding('utf8').on('data', (chunk: string) => (opened += chunk));
    t.teardown(() => {
      opener.kill('SIGKILL');
    });
    fs.mkdirSync(path.dirname(planted), { recursive: true });
    fs.symlinkSync(fifo, planted);
    execFileSync('chown', ['-R', '-h', '65534:65534', path.join(dir, dir.split(path.sep)[1]!)]);
    const script = `
      const native = require(${JSON.stringify(NODE_GYP_BUILD)})(${JSON.stringify(ROOT)});
      native.sampleThreads(${target.pid}, { stacks: true, kernelStacks: false }).then((s) => process.stdout.write(JSON.stringify(s)), (e) => process.stdout.write(JSON.stringify({ error: e.code, message: e.message })));
    `;
    const sample = await waitFor(() => {
      const s = JSON.parse(execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/', env: CHILD_ENV })) as ThreadSampleResult;
      return symbols(s.threads.find((x) => x.tid === target.sleeper)).includes('stacks_sleep_in_nanosleep') && s;
    }, 'a sample as nobody with the sleeper named');
    t.match(symbols(sample.threads.find((x) => x.tid === target.sleeper)).join(' '), /stacks_sleep_in_nanosleep/, 'named through the path from our root');
    t.equal(opened, '', 'the planted fifo was never opened');
  });

  t.test('a debug file the target’s own user cannot read is not read for it', { skip: IS_ROOT ? false : 'needs root, to sample another user’s process' }, async (t) => {
    const built = await stacksBinary('debuglink');
    const dir = tempDir(t, 'iokit-snap-debuglink-', 0o755);
    const prog = path.join(dir, 'prog');
    fs.copyFileSync(built, prog);
    fs.chmodSync(prog, 0o755);
    // The binary's .gnu_debuglink names "stacks.debug", looked for beside it.
    const debug = path.join(dir, 'stacks.debug');
    fs.copyFileSync(`${built}.debug`, debug);
    fs.chmodSync(debug, 0o600); // root's only
    execFileSync('mkfifo', ['-m', '666', path.join(dir, 'fifo')]);
    const target = await startStacks(t, [prog, path.join(dir, 'fifo')], 65534);
    const unreadable = await sampleInPlace(target);
    t.notOk(symbols(unreadable.threads.find((x) => x.tid === target.sleeper)).includes('stacks_sleep_in_nanosleep'), 'not named from a file nobody could read');
    fs.chmodSync(debug, 0o644);
    const readable = await sampleInPlace(target);
    t.ok(symbols(readable.threads.find((x) => x.tid === target.sleeper)).includes('stacks_sleep_in_nanosleep'), 'named once its user may read it');
  });
}

if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) linuxTests();
else t.pass('user stacks on Linux: not this platform');
