/**
 * The reusable sampler (and watch(), which uses it) on a process whose threads
 * come and go all the time (test/targets/churn.c: 16 threads created, renamed,
 * slept < 200 µs and joined, in a loop). Threads vanish between the listing and
 * the read, between two samples, and new ones take the place of old ones: the
 * sampler must never hold per-thread state by position across samples (it once
 * read a freed slot: a crash, or heap corruption, within 4,000 samples). Every
 * record of every sample is checked for sense. scripts/asan.sh runs this file
 * under AddressSanitizer, which turns any use of freed memory into a failure.
 */
import t from 'tap';
import { watch } from '../src/analyze';
import { createThreadSampler, sampleThreads } from '../src/sample';
import type { ThreadSampleResult } from '../src/types';
import { startChurn } from './helpers/churn';

const SAMPLES = Number(process.env.IOKIT_SNAP_CHURN_SAMPLES ?? 4000);
const STATES = new Set(['running', 'runnable', 'sleeping', 'waiting', 'uninterruptible', 'stopped', 'halted', 'zombie', 'unknown']);
// The main thread keeps its comm; a worker is "churn" until it renames itself.
// The kernel writes a thread's name with no lock its readers take (__set_task_comm), so a read
// during a rename can see it half written ("churn-478-"): digits and dashes after churn.
const NAME = /^churn(-[\d-]*)?$/;

/** Why `sample` of the churn process `pid` is not sane, or null. */
function insane(sample: ThreadSampleResult, pid: number): string | null {
  if (sample.pid !== pid) return `pid ${sample.pid}`;
  if (sample.name !== 'churn') return `process name ${JSON.stringify(sample.name)}`;
  // A sample is not an instant: threads listed, then found gone, are replaced by
  // those of a second listing (the main thread and at most 16 workers in each).
  if (sample.threads.length < 1 || sample.threads.length > 1 + 2 * 16) return `${sample.threads.length} threads`;
  const tids = new Set<number>();
  for (const thread of sample.threads) {
    if (!Number.isInteger(thread.tid) || thread.tid < 1) return `tid ${thread.tid}`; // tids wrap: not always > pid
    if (tids.has(thread.tid)) return `tid ${thread.tid} twice`;
    tids.add(thread.tid);
    if (typeof thread.name !== 'string' || !NAME.test(thread.name)) return `thread ${thread.tid} named ${JSON.stringify(thread.name)}`;
    if (!STATES.has(thread.state)) return `thread ${thread.tid} in state ${String(thread.state)}`;
    for (const value of [thread.userNs, thread.systemNs, thread.cpuNs])
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) return `thread ${thread.tid} times ${value}`;
    if (thread.blockedIn !== null && (typeof thread.blockedIn.call !== 'string' || !Number.isInteger(thread.blockedIn.number)))
      return `thread ${thread.tid} blockedIn ${JSON.stringify(thread.blockedIn)}`;
  }
  if (!tids.has(pid)) return 'no main thread';
  if (sample.threads.find((thread) => thread.tid === pid)!.name !== 'churn') return 'the main thread renamed';
  return null;
}

if (process.platform === 'linux') linuxTests();
else t.plan(0, 'Linux procfs thread sampling only');

function linuxTests(): void {
  for (const detail of ['full', 'basic'] as const) {
    t.test(`createThreadSampler (${detail}): ${SAMPLES} samples of a churning process, every record sane`, async (t) => {
      const churn = await startChurn();
      t.teardown(() => churn.stop());
      const sampler = createThreadSampler(churn.pid, { detail });
      t.teardown(() => sampler.close());
      let bad: string | null = null;
      let workers = 0;
      for (let i = 0; i < SAMPLES && bad === null; i++) {
        const sample = await sampler.sample();
        bad = insane(sample, churn.pid);
        if (bad !== null) bad = `sample ${i}: ${bad}`;
        workers += sample.threads.length - 1;
      }
      t.equal(bad, null, 'every sample sane');
      t.ok(workers > 0, `worker threads were seen (${workers} in all)`);
    });
  }

  t.test('sampleThreads (one-shot) on a churning process: sane every time', async (t) => {
    const churn = await startChurn();
    t.teardown(() => churn.stop());
    let bad: string | null = null;
    for (let i = 0; i < SAMPLES / 10 && bad === null; i++) bad = insane(await sampleThreads(churn.pid), churn.pid);
    t.equal(bad, null);
  });

  t.test('watch() on a churning process: sample events with sane counts, no error', async (t) => {
    const churn = await startChurn();
    t.teardown(() => churn.stop());
    const watcher = watch({ pid: churn.pid, intervalMs: 1, stallMs: 60000 });
    t.teardown(() => watcher.close());
    let samples = 0;
    const wanted = Math.max(50, SAMPLES / 4);
    for await (const event of watcher) {
      if (event.type === 'error' || event.type === 'exit') {
        t.fail(`unexpected ${event.type} event: ${JSON.stringify(event)}`);
        break;
      }
      if (event.type !== 'sample') continue;
      if (!(event.threads >= 1 && event.threads <= 1 + 2 * 16)) {
        t.fail(`a sample event counted ${event.threads} threads`);
        break;
      }
      if (++samples >= wanted) break;
    }
    t.equal(samples, wanted, `${wanted} sample events`);
  });
}
