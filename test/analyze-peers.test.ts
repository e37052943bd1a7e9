/**
 * The peer rule (src/analyze/peer-rule.ts) on snapshots whose blockedIn.peer says who holds
 * the other end, in the shapes src/peer.ts gives (and a snapshot file may carry): several
 * holders, none, a holder sampled and idle, no holder known. test/peer.test.ts and
 * test/verdicts-*.test.ts have the real pipelines and sockets.
 */
import t from 'tap';
import { compare } from '../src/analyze';
import type { Peer, ThreadSample } from '../src/types';
import { blocked, findingsOf, proc, snap, thread } from './helpers/analyze';

/** pid 100's main thread reading pipe:[9] (wchan pipe_read), with `peer`; in the baseline it was in `before` (default: the same read). */
function reader(peer: Peer | undefined): ThreadSample {
  return thread(100, { blockedIn: { ...blocked('read', 0, 3, 'pipe:[9]'), ...(peer !== undefined ? { peer } : {}) }, wchan: 'pipe_read' });
}
const sleeper = thread(200, { name: 'writer', blockedIn: blocked('clock_nanosleep', 230), wchan: 'hrtimer_nanosleep' });

function judge(now: ThreadSample, options: { expectExit?: boolean; before?: ThreadSample; withWriter?: boolean } = {}) {
  const others = options.withWriter === true ? [proc(200, [sleeper], 'writer')] : [];
  return compare(snap(0, [proc(100, [options.before ?? now]), ...others]), snap(2000, [proc(100, [now]), ...others]), { stallMs: 1000, expectExit: options.expectExit ?? false });
}

t.test('a pipe nobody holds the other end of: nothing will ever come', async (t) => {
  const [finding] = findingsOf(judge(reader({ kind: 'pipe', pids: [] })), 100);
  t.match(finding, { kind: 'stalled', severity: 'critical', message: /no process holds the other end of the pipe: nothing will ever come/ });
});

t.test('several holders not sampled, named together, when the command should have finished', async (t) => {
  const peer: Peer = { kind: 'pipe', pids: [{ pid: 300, name: 'tee' }, { pid: 301, name: 'gzip' }], sampled: false };
  const [finding] = findingsOf(judge(reader(peer), { expectExit: true }), 100);
  t.match(finding, { severity: 'warning', message: /on pids 300, 301 \(tee, gzip\) \(not sampled\): the command should have finished/ });
  t.match(finding.evidence, [{}, {}, { field: 'blockedIn.peer.pids', after: '300,301' }]);
});

t.test('a holder that is sampled and idle itself: nothing is coming; a warning when the command should have finished, else idle', async (t) => {
  const peer: Peer = { kind: 'pipe', pids: [{ pid: 200, name: 'writer' }], sampled: true };
  const [finding] = findingsOf(judge(reader(peer), { expectExit: true, withWriter: true }), 100);
  t.match(finding, { severity: 'warning', message: /on pid 200 \(writer\), which is idle itself \(nothing of it progressed for 1\.0 s\): nothing is coming, but the command should have finished/ });
  const daemon = judge(reader(peer), { withWriter: true });
  t.same(findingsOf(daemon, 100), [], 'a daemon waiting on an idle writer is idle');
});

t.test('no holder known: idle where it waited in the baseline, a warning when the command should have finished', async (t) => {
  t.same(findingsOf(judge(reader(undefined)), 100), [], 'the same read as in the baseline');
  t.match(findingsOf(judge(reader(undefined), { expectExit: true }), 100), [{ severity: 'warning', message: /the other end was not found, and the command should have finished/ }]);
});
