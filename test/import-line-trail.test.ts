// LineTrail, what every report parser keeps of where it got to (test/import-reports.test.ts
// drives it through each parser on real captures); here each rule on a few lines.
import t from 'tap';
import { LineTrail } from '../src/import/reports/line-trail';
import { newReport } from '../src/import/reports/parsed';

t.test('the last line that is not blank decides whether the report is cut', async (t) => {
  const lines = ['Thread 0:', '0 libsystem_kernel.dylib 0x1 mach_msg_trap +', '  ', ''];
  const trail = new LineTrail(lines);
  t.equal(trail.lastLine, 2, 'trailing blank lines are not the last line');
  t.ok(trail.lastComplete, 'nothing marked cut');
  trail.cutShort(1);
  t.notOk(trail.lastComplete, 'the last line was cut short');
  const report = newReport('crash', 'darwin', lines.length);
  trail.reportCut(report, 'a frame cut short');
  t.match(report.limits, [{ subject: 'report', code: 'ENODATA', reason: /cut at line 2 \(a frame cut short: "0 libsystem_kernel\.dylib 0x1 mach_msg_trap \+"\)/ }]);

  const later = new LineTrail(['a (', 'b']);
  later.cutShort(0);
  t.ok(later.lastComplete, 'a line cut short and then one that is whole: not cut');
  const none = newReport('crash', 'darwin', 2);
  later.reportCut(none, 'x');
  t.same(none.limits, []);
});

t.test('an empty or all-blank report has no last line', async (t) => {
  for (const lines of [[], ['', '   ']]) {
    const trail = new LineTrail(lines);
    t.equal(trail.lastLine, 0);
    t.equal(trail.lastText, '');
    t.ok(trail.lastComplete);
  }
});

t.test('the parser says what a line holds: a kernel log line of only a timestamp is blank', async (t) => {
  const message = (line: string): string => line.replace(/^\[[ \d.]+\]/, '').trim();
  const trail = new LineTrail(['[ 1.0] task:nvc state:D', '[ 1.1]  schedule', '[ 1.2] '], message);
  t.equal(trail.lastLine, 2);
  t.equal(trail.lastText, 'schedule', 'as the parser reads it');
});

t.test('frames before any header: the first and last lines, kept or skipped', async (t) => {
  const trail = new LineTrail(['0 a', '1 b', 'Thread 0:']);
  const report = newReport('crash', 'darwin', 3);
  trail.reportHeadless(report);
  t.same(report.limits, [], 'none, nothing said');
  trail.headlessFrame(0);
  trail.headlessFrame(1);
  t.same([trail.headlessFrom, trail.headlessTo], [1, 2]);
  trail.reportHeadless(report);
  trail.reportHeadless(report, false);
  t.match(report.limits, [
    { field: 'threads', reason: /lines 1-2 .* kept as thread -1/ },
    { field: 'threads', reason: /lines 1-2 .* they were skipped/ },
  ]);
});
