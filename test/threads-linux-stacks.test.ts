/**
 * Linux user stacks (sampleThreads(pid, { stacks: true })) against test/targets/stacks.c,
 * whose threads wait in known functions. After every walk the target must have no
 * thread traced or stopped by us, and must answer on its fifo: it runs on.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createThreadSampler, sampleThreads } from '../src/sample';
import type { Frame, ThreadSample, ThreadSampleResult } from '../src/types';
import { runCli } from './helpers/cli';
import { startStacksTarget, tracedOrStopped, type StacksTarget } from './helpers/stack-targets';
import { start, waitFor } from './helpers/targets';

const ROOT = path.join(__dirname, '..');
const NODE_GYP_BUILD = require.resolve('node-gyp-build');

function threadOf(sample: ThreadSampleResult, tid: number): ThreadSample {
  const thread = sample.threads.find((x) => x.tid === tid);
  if (thread === undefined) throw new Error(`thread ${tid} not in the sample`);
  return thread;
}

const names = (stack: Frame[] | undefined): string[] => (stack ?? []).map((f) => f.symbol ?? `?${f.module ?? ''}`);

/** A sample in which the main thread sits in its read, and the stacks were taken. */
async function sampleInPlace(target: StacksTarget, extra: Record<string, unknown> = {}): Promise<ThreadSampleResult> {
  return waitFor(async () => {
    const sample = await sampleThreads(target.pid, { stacks: true, ...extra });
    const main = threadOf(sample, target.pid);
    return main.blockedIn?.call === 'read' && threadOf(sample, target.sleeper).blockedIn !== null && sample;
  }, 'the main thread in read and the sleeper in its sleep');
}

/** Nothing left traced or stopped, and the target answers on its fifo. */
async function runsOn(t: Test, target: StacksTarget): Promise<void> {
  await waitFor(() => tracedOrStopped(target.pid).length === 0, 'no thread of the target traced or stopped', 5000).catch(() => undefined);
  t.same(tracedOrStopped(target.pid), [], 'no thread is left traced or stopped');
  await target.echo('still there');
  t.notMatch(target.output(), /eintr/, 'its read was restarted, never failed with EINTR');
}

/**
 * Whether a process may trace one it is not an ancestor of: kernel.yama.ptrace_scope 0 (or
 * no Yama), or root. Ubuntu (and GitHub's runners) ship scope 1, where gdb, or a sampling
 * process the test starts, cannot attach to a target the test process started.
 */
function mayTraceNonDescendants(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    return fs.readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim() === '0';
  } catch {
    return true;
  }
}
const YAMA_SKIP = mayTraceNonDescendants() ? false : 'kernel.yama.ptrace_scope is not 0: a process the test starts may not trace the target';

/** The environment for gdb: without scripts/asan.sh's preloaded libasan, under which gdb deadlocks in setlocale. */
const GDB_ENV = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'LD_PRELOAD'));

function hasGdb(): boolean {
  try {
    execFileSync('gdb', ['--version'], { stdio: 'ignore', env: GDB_ENV, timeout: 30000 });
    return true;
  } catch {
    return false;
  }
}
const GDB_SKIP = !hasGdb() ? 'gdb is not installed' : YAMA_SKIP;

/** `gdb -p PID -batch -ex 'thread apply all bt'`: per tid, "0x<pc> <function>" of each caller frame. */
function gdbStacks(pid: number): Map<number, string[]> {
  const out = execFileSync('gdb', ['-p', String(pid), '-batch', '-nx', '-ex', 'set backtrace past-main on', '-ex', 'thread apply all bt'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    env: GDB_ENV,
    timeout: 60000,
  });
  const stacks = new Map<number, string[]>();
  let current: string[] | undefined;
  for (const line of out.split('\n')) {
    const thread = /^Thread \d+ .*\(LWP (\d+)\)/.exec(line);
    if (thread) stacks.set(Number(thread[1]), (current = []));
    // Frame #0 is where the thread is now (a spinning one moves); the others are return addresses.
    const frame = /^#([1-9]\d*)\s+(0x[0-9a-f]+) in (\S+) \(/.exec(line);
    if (frame && current) current.push(`0x${BigInt(frame[2]!).toString(16)} ${frame[3]}`);
  }
  return stacks;
}

function linuxTests(): void {
  t.test('frame pointers: each thread names the function it waits in, and the target runs on', async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    const sample = await sampleInPlace(target);
    const main = threadOf(sample, target.pid);
    const frames = names(main.stack);
    t.match(frames.join(' '), /stacks_wait_in_read stacks_outer_caller .*main/, `main thread: ${frames.join(' < ')}`);
    t.equal(main.stack![0]!.module, main.stack![0]!.module);
    t.match(main.stack![0]!.module, /libc/, 'the innermost frame is the read in libc');
    const inRead = main.stack!.find((f) => f.symbol === 'stacks_wait_in_read')!;
    t.match(inRead.module, /stacks$/);
    t.type(inRead.offset, 'number');
    t.ok(inRead.symbolOffset! > 0, 'a return address lies inside its function');
    t.equal(main.pc, main.stack![0]!.pc, 'pc is the innermost frame');
    t.match(names(threadOf(sample, target.sleeper).stack).join(' '), /stacks_sleep_in_nanosleep/);
    t.match(names(threadOf(sample, target.spinner).stack)[0], 'stacks_spin', 'a thread on a CPU is stopped and named in its loop');
    t.same(
      sample.limits.filter((l) => l.field === 'stack'),
      [],
      'a complete walk has no limit',
    );
    await runsOn(t, target);
  });

  t.test('gdb, the tool it replaces, finds the same frames at the same return addresses', { skip: GDB_SKIP }, async (t) => {
    for (const build of ['fp', 'cfi'] as const) {
      const target = await startStacksTarget(t, build, 'grandchild');
      const sample = await sampleInPlace(target);
      const gdb = gdbStacks(target.pid);
      for (const tid of [target.pid, target.spinner, target.sleeper]) {
        // Frames in the target's own binary: gdb names them from the same symbol table.
        const ours = threadOf(sample, tid)
          .stack!.slice(1)
          .filter((f) => /\/stacks$/.test(f.module ?? ''))
          .map((f) => `0x${f.pc!.toString(16)} ${f.symbol}`);
        const theirs = (gdb.get(tid) ?? []).filter((f) => /^0x\S+ (stacks_|main$|sleeper$|spinner$)/.test(f));
        t.ok(theirs.length >= 1, `${build}: gdb walked thread ${tid}`);
        t.same(ours.slice(0, theirs.length), theirs, `${build}: thread ${tid}`);
      }
      await runsOn(t, target);
    }
  });

  t.test('iokit-snap threads --stacks prints each thread’s stack under the table', async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    await sampleInPlace(target);
    const run = await waitFor(async () => {
      const r = await runCli(['threads', String(target.pid), '--stacks']);
      return /BLOCKED IN[\s\S]*\bread\b/.test(r.stdout) && r;
    }, 'a table with the main thread in read');
    t.equal(run.code, 0, run.stderr);
    // The kernel stack first where it was read (as root), then the user stack, innermost first.
    t.match(run.stdout, new RegExp(`\\nthread ${target.pid} \\(stacks\\) sleeping, in read:\\n(?:  kernel  \\S+\\n)*  #0 +read \\+ \\d+ +libc\\.so\\.6 \\+0x[0-9a-f]+\\n  #1 +stacks_wait_in_read \\+ \\d+ +stacks \\+0x[0-9a-f]+\\n  #2 +stacks_outer_caller`));
    t.match(run.stdout, new RegExp(`\\nthread ${target.spinner} \\(stacks\\) (running|runnable):\\n(?:  kernel  \\S+\\n)*  #0 +stacks_spin \\+ \\d+`));
    await runsOn(t, target);
  });

  t.test('without frame pointers the unwind tables lead out', async (t) => {
    const target = await startStacksTarget(t, 'cfi', 'grandchild');
    const sample = await sampleInPlace(target);
    t.match(names(threadOf(sample, target.pid).stack).join(' '), /stacks_wait_in_read .*main/);
    t.match(names(threadOf(sample, target.sleeper).stack).join(' '), /stacks_sleep_in_nanosleep/);
    await runsOn(t, target);
  });

  t.test('with neither, the walk says where it stopped and why', async (t) => {
    const target = await startStacksTarget(t, 'bare', 'grandchild');
    const sample = await sampleInPlace(target);
    const frames = names(threadOf(sample, target.pid).stack);
    t.match(frames.join(' '), /stacks_wait_in_read/, 'libc’s own tables still lead into the target');
    t.notMatch(frames.join(' '), /\bmain\b/, 'but not out of it');
    const limit = sample.limits.find((l) => l.field === 'stack' && /stacks\b/.test(l.reason));
    t.ok(limit, 'a limit names the binary the walk stopped in');
    t.equal(limit?.code, 'ENOTSUP');
    t.match(limit?.reason, /no call-frame information this walker can use covers that address/);
    t.match(limit?.hint, /-fno-omit-frame-pointer/);
    await runsOn(t, target);
  });

  t.test('a stripped binary is named from its .gnu_debuglink file', async (t) => {
    const target = await startStacksTarget(t, 'debuglink', 'grandchild');
    const sample = await sampleInPlace(target);
    t.match(names(threadOf(sample, target.pid).stack).join(' '), /stacks_wait_in_read stacks_outer_caller/);
    await runsOn(t, target);
  });

  t.test('the main thread of our own child is read without stopping it', async (t) => {
    const target = await startStacksTarget(t, 'fp', 'child');
    let exited = false;
    target.child.once('exit', () => (exited = true));
    for (let i = 0; i < 5; i++) await sampleInPlace(target);
    const sample = await sampleInPlace(target);
    const frames = names(threadOf(sample, target.pid).stack);
    t.match(frames.join(' '), /stacks_wait_in_read/, `named from its syscall-entry registers: ${frames.join(' < ')}`);
    const limit = sample.limits.find((l) => l.field === 'stack' && /frame pointer/.test(l.reason));
    t.ok(limit, 'the walk says it stopped for want of the frame pointer');
    t.match(names(threadOf(sample, target.spinner).stack)[0], 'stacks_spin', 'its other threads are stopped as usual');
    await runsOn(t, target);
    t.equal(exited, false, 'Node never took a stop of its child for an exit');
  });

  t.test('a stopped process stays stopped, untraced, and runs on when continued', async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    await sampleInPlace(target);
    process.kill(target.pid, 'SIGSTOP');
    await waitFor(async () => (await sampleThreads(target.pid)).threads.every((x) => x.state === 'stopped'), 'the target stopped');
    const sample = await sampleThreads(target.pid, { stacks: true });
    t.match(names(threadOf(sample, target.pid).stack).join(' '), /stacks_wait_in_read/);
    const after = await sampleThreads(target.pid);
    t.ok(after.threads.every((x) => x.state === 'stopped'), 'still stopped: we did not continue it');
    process.kill(target.pid, 'SIGCONT');
    await runsOn(t, target);
  });

  t.test('a thread in uninterruptible sleep is read without stopping it', async (t) => {
    const target = await start(t, 'vfork-parent');
    const sample = await waitFor(async () => {
      const s = await sampleThreads(target.pid, { stacks: true });
      return s.threads[0]?.state === 'uninterruptible' && s.threads[0].stack !== undefined && s;
    }, 'the vfork parent in D with a stack');
    const frames = sample.threads[0]!.stack!;
    t.match(frames[0]!.module, /libc/, 'it waits in libc’s vfork');
    t.match(frames[0]!.symbol, /vfork/);
    // glibc's vfork pops its return address into a register before the call: no walk gets past it.
    const limit = sample.limits.find((l) => l.field === 'stack')!;
    t.match(limit.reason, /keeps the return address in a register/);
    t.match(limit.hint, /-fno-omit-frame-pointer/);
    t.same(tracedOrStopped(target.pid).filter((p) => /traced/.test(p)), [], 'it was never traced');
  });

  t.test('a sampler keeps taking stacks', async (t) => {
    const target = await startStacksTarget(t, 'cfi', 'grandchild');
    await sampleInPlace(target);
    const sampler = createThreadSampler(target.pid, { stacks: true });
    t.teardown(() => sampler.close());
    for (let i = 0; i < 3; i++) {
      const sample = await waitFor(async () => {
        const s = await sampler.sample();
        return threadOf(s, target.pid).blockedIn?.call === 'read' && s;
      }, 'the main thread in read');
      t.match(names(threadOf(sample, target.pid).stack).join(' '), /stacks_wait_in_read/, `sample ${i + 1}`);
    }
    await runsOn(t, target);
  });

  t.test('samples taken at the same time: each thread has one tracer, the other sample says so', async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    await sampleInPlace(target);
    for (let i = 0; i < 5; i++) {
      const samples = await Promise.all([0, 1, 2].map(() => sampleThreads(target.pid, { stacks: true })));
      for (const sample of samples) {
        t.equal(sample.threads.length, 4);
        for (const limit of sample.limits.filter((l) => l.code === 'EBUSY')) t.match(limit.reason, /another sample of the same process/);
      }
    }
    await runsOn(t, target);
  });

  t.test('this process: threads in a call are read, the one running is said to be', async (t) => {
    const sample = await sampleThreads(process.pid, { stacks: true });
    const walked = sample.threads.filter((x) => (x.stack?.length ?? 0) > 1);
    t.ok(walked.length > 0, 'idle threads of this process have stacks');
    t.ok(
      walked.some((x) => x.stack!.some((f) => f.symbol !== undefined)),
      'and named frames',
    );
    const self = sample.limits.find((l) => l.field === 'stack' && /the thread taking this sample/.test(l.reason));
    t.match(self, { code: 'ENOTSUP', reason: /^thread \d+: / }, 'the sampling thread itself is named, not walked');
    t.notOk(sample.threads.find((x) => x.tid === Number(/^thread (\d+)/.exec(self!.reason)![1]))!.stack, 'and has no stack');
    const symbols = walked.flatMap((x) => x.stack!.map((f) => f.symbol ?? ''));
    t.ok(symbols.includes('uv_run'), 'libuv’s loop is named');
    t.same(symbols.filter((name) => name.startsWith('_Z')), [], 'C++ names are demangled');
  });

  t.test('dying mid-walk leaves no thread traced or stopped', { skip: YAMA_SKIP }, async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    await sampleInPlace(target);
    const script = `
      const native = require(${JSON.stringify(NODE_GYP_BUILD)})(${JSON.stringify(ROOT)});
      (async () => { for (;;) { await native.sampleThreads(${target.pid}, { stacks: true, stackBudgetMs: 5000 }); process.stdout.write('.'); } })();
    `;
    for (let round = 0; round < 4; round++) {
      const walker = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let dots = 0;
      walker.stdout!.on('data', (chunk: Buffer) => (dots += chunk.length));
      // Killed after a varying number of walks, so at varying points inside one.
      await waitFor(() => dots > round, `the walker to finish ${round + 1} walks`);
      walker.kill('SIGKILL');
      await new Promise((resolve) => walker.once('exit', resolve));
      await waitFor(() => tracedOrStopped(target.pid).length === 0, 'the kernel to let every thread go', 5000).catch(() => undefined);
      t.same(tracedOrStopped(target.pid), [], `round ${round + 1}: nothing left traced or stopped`);
    }
    await runsOn(t, target);
  });

  t.test('a process a debugger holds: EBUSY, naming the debugger; nothing else lost', { skip: GDB_SKIP }, async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    await sampleInPlace(target);
    // gdb attaches, stops every thread, and holds them while its `shell` command runs.
    const gdb = spawn('gdb', ['-p', String(target.pid), '-batch', '-nx', '-ex', 'shell sleep 60'], { stdio: 'ignore', env: GDB_ENV });
    t.teardown(() => gdb.kill('SIGKILL'));
    const tracer = await waitFor(() => {
      const line = /TracerPid:\s*(\d+)/.exec(fs.readFileSync(`/proc/${target.pid}/task/${target.sleeper}/status`, 'utf8'));
      return line !== null && line[1] !== '0' && Number(line[1]);
    }, 'gdb to attach', 30000);
    const sample = await sampleThreads(target.pid, { stacks: true });
    t.equal(sample.threads.length, 4, 'every thread is still listed');
    const limit = sample.limits.find((l) => l.field === 'stack');
    t.equal(limit?.code, 'EBUSY');
    t.match(limit?.reason, `already traced by pid ${tracer}`);
    t.match(limit?.hint, /thread apply all bt/);
    gdb.kill('SIGKILL');
    await new Promise((resolve) => gdb.once('exit', resolve));
    // A debugger killed while attached can leave the process in a group stop of its own making.
    process.kill(target.pid, 'SIGCONT');
    await runsOn(t, target);
  });

  t.test('another user’s process: EPERM and what to do, nothing else lost', { skip: process.getuid?.() === 0 ? false : 'needs root, to sample as another user' }, async (t) => {
    const target = await startStacksTarget(t, 'fp', 'grandchild');
    await sampleInPlace(target);
    const script = `
      const native = require(${JSON.stringify(NODE_GYP_BUILD)})(${JSON.stringify(ROOT)});
      native.sampleThreads(${target.pid}, { stacks: true }).then((s) => process.stdout.write(JSON.stringify(s)), (e) => process.stdout.write(JSON.stringify({ error: e.code })));
    `;
    const sample = JSON.parse(execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: os.tmpdir() })) as ThreadSampleResult;
    t.equal(sample.threads.length, 4, 'every thread is still listed');
    t.ok(sample.threads.every((x) => x.stack === undefined));
    const limit = sample.limits.find((l) => l.field === 'stack');
    t.equal(limit?.code, 'EPERM');
    t.match(limit?.hint, /root|CAP_SYS_PTRACE/);
    await runsOn(t, target);
  });
}

if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) linuxTests();
else t.pass('user stacks on Linux: not this platform');
