/**
 * User stacks of real Go programs against eu-stack (elfutils), in the same run: an idle
 * net/http server and a program whose threads are parked in futex and in read(2). Go's
 * system-call leaves (runtime.futex, runtime.epollwait, Syscall6) set up no frame, so a
 * frame-pointer walk from them skips their caller; the walk here unwinds Go code by the
 * pclntab's SP-delta table and must give eu-stack's frames, pc for pc, down to where a
 * Go stack ends (mstart, goexit: TOPFRAME) or switches (mcall, systemstack: SPWRITE),
 * where eu-stack goes on into another stack's frames. Skips, with a line, without go or
 * eu-stack.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { sampleThreads } from '../src/sample';
import type { ThreadSample } from '../src/types';
import { TOOL_ENV } from './helpers/elf';
import { buildGo, noGo } from './helpers/go';

const noEuStack = spawnSync('eu-stack', ['--version'], { env: TOOL_ENV }).status === 0 ? false : 'eu-stack is not installed (apt-get install elfutils)';
// The functions where a Go thread's stack ends or leaves for another stack.
const STACK_END = /^runtime\.(mcall|systemstack|mstart|goexit|asmcgocall|morestack)(\.abi0)?$/;
// Go's frameless system-call leaves, whose callers a frame-pointer walk loses.
const FRAMELESS_LEAF = /^(runtime\.(futex|epollwait|usleep|nanotime1|walltime)|runtime\/internal\/syscall\.Syscall6)(\.abi0)?$/;

/** eu-stack -p PID: the pcs of each thread's frames, innermost first. */
function euStack(pid: number): Map<number, { pcs: number[]; names: string[] }> {
  const out = spawnSync('eu-stack', ['-p', String(pid)], { encoding: 'utf8', env: TOOL_ENV }).stdout;
  const threads = new Map<number, { pcs: number[]; names: string[] }>();
  let current: { pcs: number[]; names: string[] } | undefined;
  for (const line of out.split('\n')) {
    const tid = /^TID (\d+):/.exec(line);
    if (tid) {
      current = { pcs: [], names: [] };
      threads.set(Number(tid[1]), current);
      continue;
    }
    const frame = /^#\d+\s+0x([0-9a-f]+)\s*(\S*)/.exec(line);
    if (frame && current) {
      current.pcs.push(parseInt(frame[1]!, 16));
      current.names.push(frame[2]!);
    }
  }
  return threads;
}

/** Why this thread's stack differs from eu-stack's, or null when it agrees. */
function disagreement(thread: ThreadSample, eu: { pcs: number[]; names: string[] } | undefined): string | null {
  const ours = thread.stack ?? [];
  const pcs = ours.map((frame) => frame.pc);
  const text = `ours ${ours.map((f) => f.symbol).join(' < ')}; eu-stack ${eu?.names.join(' < ')}`;
  if (!eu) return `thread ${thread.tid}: eu-stack did not list it`;
  if (ours.length < 2) return `thread ${thread.tid}: ${ours.length} frames (${text})`;
  if (JSON.stringify(pcs) !== JSON.stringify(eu.pcs.slice(0, pcs.length))) return `thread ${thread.tid}: ${text}`;
  const last = ours.at(-1)!.symbol ?? '';
  if (ours.length < eu.pcs.length && !STACK_END.test(last)) return `thread ${thread.tid}: ends early at ${last} (${text})`;
  return null;
}

async function compare(t: Test, program: string): Promise<void> {
  const binary = await buildGo(program);
  const child = spawn(binary, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const ready = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) resolve(text);
    });
    child.once('exit', (code) => reject(new Error(`${program} exited (${code}) before it was ready`)));
  });
  t.match(ready, /^ready pid=\d+/);
  const pid = child.pid!;
  // Threads move now and then (sysmon between usleep and futex): a thread agrees when
  // one of our two samples around eu-stack's matches it; tried again until all agree.
  const deadline = Date.now() + 30000;
  let problems: string[] = ['not compared yet'];
  let agreed: ThreadSample[] = [];
  let limits: unknown[] = [];
  while (problems.length > 0 && Date.now() < deadline) {
    const before = await sampleThreads(pid, { stacks: true });
    const eu = euStack(pid);
    const after = await sampleThreads(pid, { stacks: true });
    problems = [];
    agreed = [];
    for (const thread of before.threads) {
      const again = after.threads.find((x) => x.tid === thread.tid);
      const why = disagreement(thread, eu.get(thread.tid));
      if (why === null) agreed.push(thread);
      else if (again && disagreement(again, eu.get(thread.tid)) === null) agreed.push(again);
      else problems.push(why);
    }
    limits = before.limits.filter((l) => (l as { field: string }).field === 'stack');
    if (problems.length > 0) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.same(problems, [], `${program}: every thread's frames are eu-stack's, pc for pc`);
  t.same(limits, [], `${program}: every walk reached the end of its stack`);
  t.ok(agreed.length >= 3, `${program}: ${agreed.length} threads compared`);
  const leaves = agreed.filter((thread) => FRAMELESS_LEAF.test(thread.stack![0]!.symbol ?? ''));
  t.ok(leaves.length >= 2, `${program}: ${leaves.length} threads stopped in a frameless leaf, each with its caller`);
  for (const thread of leaves) t.ok(thread.stack!.length >= 3, `thread ${thread.tid}: ${thread.stack!.slice(0, 3).map((f) => f.symbol).join(' < ')}`);
}

if (process.platform !== 'linux') t.plan(0, 'Linux user stacks');
else {
  t.test('an idle Go net/http server: every thread as eu-stack shows it', { skip: noGo || noEuStack }, (t) => compare(t, 'idle-server'));
  t.test('Go threads parked in futex and read(2): every thread as eu-stack shows it', { skip: noGo || noEuStack }, (t) => compare(t, 'parked'));
}
