/**
 * The goroutine lock rule (src/analyze/goroutine-rule.ts) on goroutines as src/runtimes/go.ts
 * reads them, for the shapes a live program does not show on demand: a Go 1.24+ wait reason
 * with no lock frame, a running goroutine on a lock frame, frames without symbols, a wait with
 * no known start, one, two and three waiters. test/goroutines.test.ts has the real deadlock.
 */
import t from 'tap';
import { goroutineFindings, goroutineWaitKey, lockFrame, lockWaits } from '../src/analyze/goroutine-rule';
import { compare } from '../src/analyze';
import { topFrames } from '../src/analyze/signatures';
import type { Frame, GoroutineSample, ProcessSample } from '../src/types';
import { findingsOf, frames, proc, snap, thread } from './helpers/analyze';

const frame = (symbol: string | null, pc = 0x401000): Frame => ({ pc, module: '/srv/app', offset: pc - 0x400000, symbol });

function g(goid: number, over: Partial<GoroutineSample> = {}): GoroutineSample {
  return {
    goid,
    status: 'waiting',
    waitReason: 'semacquire',
    waitSinceNs: null,
    system: false,
    start: 'main.worker',
    createdBy: frame('main.main'),
    frames: [frame('runtime.gopark'), frame('sync.runtime_SemacquireMutex'), frame('sync.(*Mutex).lockSlow'), frame('sync.(*Mutex).Lock'), frame('main.worker')],
    ...over,
  } as GoroutineSample;
}

const process = (goroutines: GoroutineSample[] | undefined, sampledAtMs = 10_000): ProcessSample => ({ pid: 42, name: 'app', threads: [], sampledAtNs: sampledAtMs * 1e6, ...(goroutines !== undefined ? { goroutines } : {}) });

t.test('lockFrame: a lock frame among the innermost ten, else Go 1.24’s own reason, never a running goroutine', async (t) => {
  t.equal(lockFrame(g(1)), 1, 'sync.runtime_SemacquireMutex, under gopark');
  t.equal(lockFrame(g(1, { status: 'running' })), -1, 'running: not acquiring anything now');
  t.equal(lockFrame(g(1, { waitReason: 'sync.Mutex.Lock', frames: [frame(null), frame('runtime.gopark')] })), 0, 'no lock frame, but the runtime names the wait');
  t.equal(lockFrame(g(1, { waitReason: 'chan receive', frames: [frame('runtime.gopark'), frame('runtime.chanrecv')] })), -1);
  t.equal(lockFrame(g(1, { waitReason: null, frames: [] })), -1, 'no reason, no frames');
});

t.test('goroutineWaitKey: the reason and the innermost frames, a frame without a symbol by its pc', async (t) => {
  const named = goroutineWaitKey(g(1, { frames: [frame('runtime.gopark'), frame(null, 0x4a0b0c)] }));
  t.equal(named, 'semacquire\u0000runtime.gopark\u00004852492');
  t.not(goroutineWaitKey(g(1, { frames: [frame(null, 0x4a0b0d)] })), goroutineWaitKey(g(1, { frames: [frame(null, 0x4a0b0c)] })), 'another pc, another wait');
});

t.test('lockWaits: since the first sight or the GC’s waitSinceNs, whichever is older; a wait with neither is not judged', async (t) => {
  t.same(lockWaits(process(undefined), () => 0, 1000), [], 'no goroutines read: nothing');
  const seen = g(1);
  const byGc = g(2, { waitSinceNs: 2_000 * 1e6 });
  const unknown = g(3); // acquiring a lock, but never seen before and no waitsince: no start to measure from
  const fresh = g(4, { waitSinceNs: 9_500 * 1e6 }); // 500 ms: under the stall window
  const running = g(5, { status: 'runnable', waitReason: null });
  const p = process([seen, byGc, unknown, fresh, running]);
  const since = (x: GoroutineSample): number | undefined => (x.goid === 1 ? 4_000 * 1e6 : x.goid === 2 ? 8_000 * 1e6 : undefined);
  t.same(
    lockWaits(p, since, 1000).map((w) => [w.g.goid, w.sinceNs / 1e6, w.frame]),
    [
      [1, 4000, 1],
      [2, 2000, 1],
    ],
  );
});

t.test('goroutineFindings: one waiter a warning, two or more critical, in the words for each count', async (t) => {
  const p = process([]);
  const one = g(7, { start: null, waitSinceNs: null });
  const [alone] = goroutineFindings(p, [{ g: one, sinceNs: 7_000 * 1e6, frame: 1 }]);
  t.match(alone, {
    kind: 'stalled',
    severity: 'warning',
    subject: 'pid 42 (app) goroutine 7',
    message: /^goroutine 7 blocked acquiring a lock \(sync\.runtime_SemacquireMutex ← sync\.\(\*Mutex\)\.lockSlow ← sync\.\(\*Mutex\)\.Lock\) for at least 3\.0 s: another goroutine holds the lock/,
    durationMs: 3000,
  });
  t.same(alone.evidence.map((e) => e.field), ['goroutines.waitReason', 'goroutines.goid'], 'no waitSinceNs: not evidence');

  const two = goroutineFindings(p, [
    { g: g(8, { waitSinceNs: 5_000 * 1e6 }), sinceNs: 5_000 * 1e6, frame: 1 },
    { g: g(9), sinceNs: 6_000 * 1e6, frame: 1 },
  ]);
  t.same(two.map((f) => f.severity), ['critical', 'critical']);
  t.equal(two[0].subject, 'pid 42 (app) goroutine 8 (main.worker)');
  t.match(two[0].message, /: 1 other goroutine of the program waits on locks the same way: a deadlock/);
  t.match(two[0].evidence, [{}, {}, { field: 'goroutines.waitSinceNs', before: null, after: 5_000 * 1e6 }]);

  const three = goroutineFindings(p, [8, 9, 10].map((goid) => ({ g: g(goid), sinceNs: 5_000 * 1e6, frame: 1 })));
  t.match(three[0].message, /: 2 other goroutines of the program wait on locks the same way/);
});

t.test('topFrames: a frame without a symbol by its module and offset, an unknown offset as 0', async (t) => {
  const stack: Frame[] = [
    { pc: 0x7f00, module: '/usr/lib/libfoo.so.1', offset: 0x1c, symbol: null },
    { pc: 0x7f10, module: '/usr/lib/libbar.so', offset: null },
    { pc: 0x7f20, module: null, offset: null },
    { pc: 0x7f30, module: '/srv/app', offset: 3, symbol: 'main.main' },
  ];
  t.equal(topFrames(stack), 'libfoo.so.1+0x1c ← libbar.so+0x0 ← main.main', 'a frame with neither a symbol nor a module is left out');
});

t.test('a Go program’s main thread parked by the scheduler: idle, or info when the command should have finished', async (t) => {
  // The main thread (an M) with nothing to run, as an idle Go program shows it; FUTEX_WAIT on a word of 0.
  const m0 = thread(100, {
    blockedIn: { call: 'futex', number: 202, futex: { address: 0x5000, op: 'wait', value: 0 } },
    stack: frames('runtime.futex@app', 'runtime.futexsleep@app', 'runtime.notesleep@app', 'runtime.stopm@app', 'runtime.findRunnable@app', 'runtime.schedule@app'),
  });
  const pair = (expectExit: boolean) => compare(snap(0, [proc(100, [m0])]), snap(2000, [proc(100, [m0])]), { stallMs: 1000, expectExit });
  t.same(findingsOf(pair(false), 100), [], 'a server’s idle M');
  t.match(findingsOf(pair(true), 100), [{ kind: 'waiting', severity: 'info', message: /^parked \(Go scheduler park: runtime\.notesleep ← runtime\.stopm.*\) in futex.* for at least 2\.0 s: its runtime waits for work$/ }]);
});
