/**
 * Goroutines of real Go programs (test/targets/go/main.go), read from their memory, against
 * what each program says of itself: its own goroutine dump (pprof debug=2, the
 * runtime.Stack format), written on SIGUSR1. Built plain, as a PIE, and stripped.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sampleGoroutines } from '../src/runtimes/go';
import { forgetGoBinaries } from '../src/runtimes/go-binary';
import { ElfFile, ReadBudget } from '../src/runtimes/elf-file';
import { snapshot } from '../src/sample';
import { parseSnapshot } from '../src/snapshot-file';
import type { GoroutineSample, GoroutineSampleResult } from '../src/types';
import { goSkip, parseDump, startGo, type GoBuild, type DumpedGoroutine } from './helpers/go-targets';
import { waitFor } from './helpers/targets';
import { runCli } from './helpers/cli';

const ROOT = path.join(__dirname, '..');
const linuxSkip = process.platform !== 'linux' ? 'goroutines are read on Linux only' : false;
const skip = linuxSkip || goSkip;

const names = (g: GoroutineSample): string[] => g.frames.map((f) => f.symbol ?? '?');

/** The two goroutines blocked on the other's mutex (sync.Mutex: "semacquire" before Go 1.20's own reason). */
function lockedOnMutex(result: GoroutineSampleResult): GoroutineSample[] {
  return (result.goroutines ?? []).filter(
    (g) => g.status === 'waiting' && /^(semacquire|sync\.Mutex\.Lock)$/.test(g.waitReason ?? '') && names(g).includes('sync.(*Mutex).Lock'),
  );
}

/** `needle` appears in `hay` in order (not necessarily next to each other). */
function isSubsequence(needle: string[], hay: string[]): boolean {
  let i = 0;
  for (const item of hay) if (i < needle.length && item === needle[i]) i++;
  return i === needle.length;
}

/** Every goroutine the program dumped that sat parked is read alike: same goid, same reason, its frames among ours in order. */
function compareWithDump(t: Test, ours: GoroutineSample[], dumped: DumpedGoroutine[], least: number): void {
  let compared = 0;
  for (const truth of dumped) {
    if (truth.state === 'running' || truth.state === 'runnable' || truth.state === 'syscall') continue;
    const mine = ours.find((g) => g.goid === truth.goid);
    if (mine === undefined) continue; // created after our read (the dump's own helpers)
    if (mine.status !== 'waiting') continue; // moved between the read and the dump
    t.equal(mine.waitReason, truth.state, `goroutine ${truth.goid}: the reason the runtime prints`);
    t.ok(isSubsequence(truth.frames, names(mine)), `goroutine ${truth.goid}: its frames ${truth.frames.join(' < ')} are among ${names(mine).join(' < ')}`);
    if (truth.createdBy !== null) t.equal(mine.createdBy?.symbol, truth.createdBy, `goroutine ${truth.goid}: created by`);
    compared++;
  }
  t.ok(compared >= least, `${compared} parked goroutines compared with the program's own dump`);
}

t.test('a deadlock on two sync.Mutex with a ticker alive', { skip }, async (t) => {
  for (const kind of ['plain', 'pie', 'stripped'] as GoBuild[]) {
    await t.test(`${kind} build`, async (t) => {
      const target = await startGo(t, kind, 'deadlock');
      const first = await waitFor(async () => {
        const r = await sampleGoroutines(target.pid);
        return lockedOnMutex(r).length === 2 && r;
      }, 'both goroutines waiting on the other mutex');
      t.same(first.limits, [], 'nothing left out');
      t.match(first.goVersion, /^go1\.\d+/);
      const locked = lockedOnMutex(first);
      for (const g of locked) {
        t.ok(isSubsequence(['runtime.gopark', 'sync.(*Mutex).lockSlow', 'sync.(*Mutex).Lock', 'main.take'], names(g)), names(g).join(' < '));
        t.equal(g.frames.find((f) => f.symbol === 'sync.(*Mutex).Lock')?.inlined, true, 'Lock is inlined into its caller, a frame of its own');
        t.equal(g.system, false);
        t.equal(g.createdBy?.symbol, 'main.deadlock');
        t.ok(g.frames.every((f) => f.module === fs.readlinkSync(`/proc/${target.pid}/exe`) && typeof f.pc === 'number' && typeof f.offset === 'number'));
      }
      const ticker = first.goroutines!.find((g) => names(g).includes('main.tick'));
      t.ok(ticker, 'the ticker goroutine is there');
      t.ok(first.goroutines!.some((g) => g.system && g.start?.startsWith('runtime.')), 'runtime goroutines are marked system');
      const main = first.goroutines!.find((g) => g.goid === 1)!;
      t.equal(main.createdBy, null, 'the main goroutine has no creator');
      t.ok(names(main).includes('sync.(*WaitGroup).Wait'));

      // A second read: the same two goroutines, in the same wait, at the same frames.
      const second = await sampleGoroutines(target.pid);
      const again = lockedOnMutex(second);
      t.same(
        again.map((g) => [g.goid, g.waitReason, names(g)]),
        locked.map((g) => [g.goid, g.waitReason, names(g)]),
        'their wait is unchanged across two reads',
      );
      compareWithDump(t, second.goroutines!, parseDump(await target.dump()), 4);

      // The load bias (from auxv for the PIE): each pc lies in the executable's code mapping,
      // and pc − offset is where the kernel put the file's addresses (maps: start − file offset
      // of the mapping, less the link address of that file offset).
      const exe = fs.readlinkSync(`/proc/${target.pid}/exe`);
      const code = fs
        .readFileSync(`/proc/${target.pid}/maps`, 'utf8')
        .split('\n')
        .filter((l) => l.endsWith(exe) && l.split(/\s+/)[1].includes('x'))
        .map((l) => {
          const [range, , offset] = l.split(/\s+/);
          const [start, end] = range.split('-').map((x) => parseInt(x, 16));
          return { start, end, offset: parseInt(offset, 16) };
        });
      const text = (await ElfFile.open(exe, new ReadBudget(performance.now() + 10000, 1 << 20))).section('.text')!;
      for (const frame of locked[0].frames) {
        const mapping = code.find((m) => frame.pc! >= m.start && frame.pc! < m.end);
        t.ok(mapping, `pc 0x${frame.pc!.toString(16)} is in the program's code`);
        t.equal(frame.pc! - frame.offset!, mapping!.start - mapping!.offset - (text.addr - text.offset), `${frame.symbol}: pc − offset is the load bias`);
      }
      t.equal(locked[0].frames[0].pc! - locked[0].frames[0].offset! !== 0, kind === 'pie', 'only the PIE moved');
    });
  }
});

t.test('an idle net/http server: goroutines in the netpoller, none on a lock', { skip }, async (t) => {
  const target = await startGo(t, 'plain', 'idle-http');
  const result = await waitFor(async () => {
    const r = await sampleGoroutines(target.pid);
    return r.goroutines?.some((g) => g.waitReason === 'IO wait') && r;
  }, 'the accept loop in IO wait');
  const accept = result.goroutines!.find((g) => g.waitReason === 'IO wait')!;
  t.ok(isSubsequence(['runtime.gopark', 'runtime.netpollblock', 'internal/poll.runtime_pollWait', 'net/http.(*Server).Serve'], names(accept)), names(accept).join(' < '));
  t.notOk(result.goroutines!.some((g) => names(g).includes('sync.(*Mutex).Lock')), 'no goroutine waits on a mutex');
  t.ok(result.goroutines!.filter((g) => !g.system).every((g) => g.status !== 'waiting' || ['IO wait', 'chan receive', 'select'].includes(g.waitReason ?? '')));
  compareWithDump(t, result.goroutines!, parseDump(await target.dump()), 1);
});

t.test('a thread runs the goroutine in a system call', { skip }, async (t) => {
  const target = await startGo(t, 'plain', 'deadlock');
  const result = await waitFor(async () => {
    const r = await sampleGoroutines(target.pid);
    return r.goroutines?.some((g) => g.status === 'syscall') && r;
  }, 'the signal goroutine in its system call');
  const inCall = result.goroutines!.find((g) => g.status === 'syscall')!;
  const tids = fs.readdirSync(`/proc/${target.pid}/task`).map(Number);
  t.ok(inCall.tid !== undefined && tids.includes(inCall.tid), `tid ${inCall.tid} is a thread of the process`);
  t.equal(inCall.frames.length, 1, 'only its call is in the g; the rest is on its thread');
  t.equal(inCall.waitReason, null);
});

t.test('bounds: maxGoroutines and maxFrames say what they cut', { skip }, async (t) => {
  const target = await startGo(t, 'plain', 'many', ['50']);
  const cut = await sampleGoroutines(target.pid, { maxGoroutines: 10, maxFrames: 2 });
  t.ok(cut.goroutines!.length <= 10);
  t.match(cut.limits, [
    { field: 'goroutines', code: 'E2BIG', reason: /the first 10 .*maxGoroutines/ },
    { field: 'goroutines', code: 'E2BIG', reason: /more than 2 frames.*maxFrames/ },
  ]);
  t.ok(cut.goroutines!.every((g) => g.frames.filter((f) => !f.inlined).length <= 2));
  const all = await sampleGoroutines(target.pid);
  t.ok(all.goroutines!.filter((g) => g.start === 'main.many.func1').length === 50, 'all 50 blocked goroutines');
  await t.rejects(sampleGoroutines(target.pid, { maxFrames: 0 }), { code: 'EINVAL' });
  await t.rejects(sampleGoroutines(target.pid, { maxGoroutines: 1.5 }), { code: 'EINVAL' });
  await t.rejects(sampleGoroutines(target.pid, { procRoot: 7 as unknown as string }), { code: 'EINVAL' });
  await t.rejects(sampleGoroutines(0), { code: 'EINVAL' });
});

t.test('snapshot({ goroutines: true }) carries them, and the file reads back', { skip }, async (t) => {
  const target = await startGo(t, 'stripped', 'deadlock');
  const snap = await snapshot({ pids: [target.pid, process.pid], goroutines: true, accelerators: false });
  const go = snap.processes.find((p) => p.pid === target.pid)!;
  t.match(go.goVersion, /^go1\./);
  t.ok(go.goroutines!.length >= 5);
  const node = snap.processes.find((p) => p.pid === process.pid)!;
  t.equal(node.goroutines, undefined, 'not a Go program: no goroutines');
  t.equal(node.goVersion, undefined);
  t.notOk(snap.limits.some((l) => l.field === 'goroutines'), 'and no limit for it');
  const back = parseSnapshot(JSON.stringify(snap));
  t.same(back.processes.find((p) => p.pid === target.pid)!.goroutines, go.goroutines);
  const plain = await snapshot({ pids: [target.pid], accelerators: false });
  t.equal(plain.processes[0].goroutines, undefined, 'only when asked for');
  const cli = await runCli(['snapshot', '--goroutines', '--no-accelerators', '--pid', String(target.pid)]);
  t.equal(cli.code, 0, cli.stderr);
  const fromCli = JSON.parse(cli.stdout) as { processes: { goroutines?: GoroutineSample[] }[] };
  t.equal(lockedOnMutex({ pid: target.pid, goVersion: null, goroutines: fromCli.processes[0].goroutines ?? null, limits: [] }).length, 2, 'iokit-snap snapshot --goroutines');
  await t.rejects(snapshot({ pids: [target.pid], goroutines: 'yes' as unknown as boolean }), { code: 'EINVAL' });
});

t.test('not a Go program, a process that is gone', { skip: linuxSkip }, async (t) => {
  const self = await sampleGoroutines(process.pid);
  t.same(self, { pid: process.pid, goVersion: null, goroutines: null, limits: [] });
  const child = spawn('true');
  await new Promise((resolve) => child.once('exit', resolve));
  const gone = await sampleGoroutines(child.pid!);
  t.equal(gone.goroutines, null);
  t.match(gone.limits, [{ field: 'goroutines', code: 'ESRCH' }]);
  // A procRoot whose exe is not a program file at all.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-go-root-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, '4242'));
  fs.writeFileSync(path.join(root, '4242', 'exe'), 'not an ELF file');
  const odd = await sampleGoroutines(4242, { procRoot: root });
  t.match(odd.limits, [{ field: 'goroutines', code: 'ENOTSUP', reason: /not an ELF file/ }]);
});

t.test('another user’s Go program: EPERM and what to do', { skip: skip || (process.getuid?.() === 0 ? false : 'needs root, to read as another user') }, async (t) => {
  const built = path.join(ROOT, 'lib', 'runtimes', 'go.js');
  if (!fs.existsSync(built)) {
    t.pass('lib/ is not built (npm run build): not checked');
    return;
  }
  const target = await startGo(t, 'plain', 'deadlock');
  const code = `require(${JSON.stringify(built)}).sampleGoroutines(${target.pid}).then((r) => process.stdout.write(JSON.stringify(r)));`;
  const result = JSON.parse(execFileSync(process.execPath, ['-e', code], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: os.tmpdir() })) as GoroutineSampleResult;
  t.equal(result.goroutines, null);
  t.match(result.limits, [{ field: 'goroutines', code: 'EPERM', hint: /root|CAP_SYS_PTRACE/ }]);
});

t.test('the binary cache: more programs than it keeps, each read again', { skip }, async (t) => {
  forgetGoBinaries();
  const targets = [];
  for (const kind of ['plain', 'pie', 'stripped'] as GoBuild[]) targets.push(await startGo(t, kind, 'many', ['3']));
  for (let round = 0; round < 2; round++) {
    for (const target of targets) {
      const r = await sampleGoroutines(target.pid);
      t.equal(r.goroutines!.filter((g) => g.start === 'main.many.func1').length, 3);
    }
  }
  // Another program (the cache keeps 4): the first is analysed again when it comes back.
  const other = await startGo(t, 'plain', 'idle-http');
  const fifth = spawn('sleep', ['30']);
  t.teardown(() => fifth.kill());
  await sampleGoroutines(other.pid);
  await sampleGoroutines(fifth.pid!);
  t.equal((await sampleGoroutines(targets[0].pid)).goroutines!.filter((g) => g.start === 'main.many.func1').length, 3);
});
