/**
 * examineStacks() when the process whose stacks were asked for cannot be sampled: a real
 * process that ran and was reaped before its stacks were taken. Each thread asked for is
 * handed back without a stack, with the reason, and nothing is thrown.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { examineStacks } from '../src/analyze/examine';
import type { Examined, ProgressTracker } from '../src/analyze/progress';

t.test('a process gone before its stacks were taken: each thread asked for gets the reason, not a stack', { skip: process.platform === 'linux' ? false : 'stacks are read from Linux /proc' }, async (t) => {
  const child = spawn('true', { stdio: 'ignore' });
  const pid = child.pid!;
  await new Promise((resolve) => child.once('exit', resolve));
  const handedBack: Examined[] = [];
  // The two calls examineStacks makes of the tracker: what to take, and what was taken.
  const tracker = {
    takeExaminations: () => [{ pid, tids: [pid, pid + 1] }],
    examined: (results: Examined[]) => {
      handedBack.push(...results);
      return new Map<number, number>();
    },
  } as unknown as ProgressTracker;
  const peers = await examineStacks(tracker, { timeoutMs: 5000 });
  t.equal(peers.size, 0);
  t.equal(handedBack.length, 2);
  t.match(handedBack, [
    { pid, tid: pid, stack: null, reason: new RegExp(`${pid}`) },
    { pid, tid: pid + 1, stack: null, reason: String },
  ]);
  t.equal(handedBack[0].reason, handedBack[1].reason, 'the process’s reason, for each of its threads');
});
