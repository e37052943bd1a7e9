/**
 * HangAnnouncer, the hang/recover state that watch() and serve's collector share
 * (test/analyze-watch.test.ts and test/metrics-collector.test.ts drive it through both on
 * real targets). Here: each transition on its own, at chosen monotonic times.
 */
import t from 'tap';
import { HangAnnouncer } from '../src/analyze/hang-announcer';
import type { Report, Verdict } from '../src/analyze/types';

const STALL_MS = 500;
const MS = 1e6;

function report(verdict: Verdict): Report {
  return { verdict, findings: [], processes: [], accelerators: { before: 0, after: 0 }, windowMs: null, notes: [] };
}

t.test('a hang is announced once, its recovery once, with how long it lasted', async (t) => {
  const announcer = new HangAnnouncer(STALL_MS);
  t.equal(announcer.step(report('healthy'), 100 * MS, 'a', false), undefined, 'healthy from the start: nothing');
  t.equal(announcer.step(report('suspect'), 200 * MS, 'b', false), undefined, 'suspect is not a hang');
  const hung = report('hung');
  t.same(announcer.step(hung, 300 * MS, 'c', false), { type: 'hang', at: 'c', monotonicNs: 300 * MS, report: hung });
  t.equal(announcer.step(report('hung'), 400 * MS, 'd', false), undefined, 'still hung: not again');
  t.same(announcer.step(report('suspect'), 1300 * MS, 'e', false), { type: 'recover', at: 'e', monotonicNs: 1300 * MS, hungForMs: 1000 });
  t.equal(announcer.step(report('healthy'), 1400 * MS, 'f', false), undefined, 'recovered once');
  t.match(announcer.step(report('hung'), 2000 * MS, 'g', false), { type: 'hang', monotonicNs: 2000 * MS }, 'a second hang');
  t.match(announcer.step(report('healthy'), 2250 * MS, 'h', false), { type: 'recover', hungForMs: 250 }, 'timed from the second hang');
});

t.test('a discarded window holds both announcements for stallMs', async (t) => {
  const announcer = new HangAnnouncer(STALL_MS);
  t.ok(announcer.step(report('hung'), 100 * MS, 'a', false), 'hung');
  t.equal(announcer.step(report('healthy'), 1000 * MS, 'b', true), undefined, 'the discarded window is no recovery');
  t.equal(announcer.step(report('healthy'), 1499 * MS, 'c', false), undefined, 'nor are the windows refilling after it');
  t.equal(announcer.step(report('hung'), 1500 * MS, 'd', false), undefined, 'stallMs later the hang still stands: not announced again');
  t.match(announcer.step(report('healthy'), 1600 * MS, 'e', false), { type: 'recover', hungForMs: 1500 }, 'then a real recovery, timed from the first hang');

  const fresh = new HangAnnouncer(STALL_MS);
  t.equal(fresh.step(report('hung'), 100 * MS, 'a', true), undefined, 'a hung verdict in a discarded window is not announced');
  t.equal(fresh.step(report('hung'), 599 * MS, 'b', false), undefined, 'nor before the windows refill');
  t.match(fresh.step(report('hung'), 600 * MS, 'c', false), { type: 'hang', monotonicNs: 600 * MS }, 'but once they have');
});
