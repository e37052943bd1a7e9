/**
 * A thread woken but starved of CPU is runnable, and the reusable sampler must
 * say so: it may never report a state it did not read in that sample. The
 * target sleeps in read on a fifo, pinned to one CPU; a SCHED_FIFO hog spins on
 * that CPU; then the fifo gets a byte. The kernel makes the reader runnable (R),
 * but it cannot run, so its CPU time and the process's do not move. A sampler
 * that skipped threads whose CPU clock stood still kept calling it "sleeping in
 * read". Needs two CPUs and the right to use SCHED_FIFO (root, or CAP_SYS_NICE).
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createThreadSampler, sampleThreads } from '../src/sample';
import { start, targetBinary, waitFor } from './helpers/targets';

/** Why this machine cannot run the test, or null. */
function cannotStarve(): string | null {
  if (process.platform !== 'linux') return 'Linux scheduling';
  if (os.availableParallelism() < 2) return 'needs two CPUs: one to starve, one to watch from';
  try {
    execFileSync('chrt', ['-f', '1', 'true'], { stdio: 'ignore' });
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    execFileSync('prlimit', ['--cpu=1', 'true'], { stdio: 'ignore' });
  } catch (error) {
    return `needs chrt, taskset and prlimit, and the right to use SCHED_FIFO (root or CAP_SYS_NICE): ${(error as Error).message.split('\n')[0]}`;
  }
  return null;
}

/** Field `n` (proc(5) numbering, 3 = state) of /proc/<pid>/task/<tid>/stat now. */
function statField(pid: number, tid: number, n: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3];
}
const letter = (pid: number, tid: number): string => statField(pid, tid, 3);
const SCHED_FIFO = '1';

const reason = cannotStarve();
if (reason !== null) {
  t.plan(0, reason);
} else {
  t.test('a woken thread starved by a SCHED_FIFO hog: the reused sampler says running, as /proc does', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-starve-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const writer = fs.openSync(fifo, fs.constants.O_RDWR); // never blocks; makes us its writer
    t.teardown(() => fs.closeSync(writer));
    const target = await start(t, 'fifo-reader', [fifo]);
    const cpu = String(os.availableParallelism() - 1);
    execFileSync('taskset', ['-a', '-p', '-c', cpu, String(target.pid)], { stdio: 'ignore' });

    const sampler = createThreadSampler(target.pid);
    t.teardown(() => sampler.close());
    // Several samples asleep in read, so the sampler has a record it could reuse.
    let asleep = 0;
    await waitFor(async () => {
      const main = (await sampler.sample()).threads.find((th) => th.tid === target.pid);
      asleep = main?.state === 'sleeping' && main.blockedIn?.call === 'read' ? asleep + 1 : 0;
      return asleep >= 3;
    }, 'the reader asleep in read, three samples running');

    // The hog: SCHED_FIFO on the reader's CPU. prlimit bounds its CPU time, so it
    // ends by itself should this test die before its teardown.
    const hog = spawn('prlimit', ['--cpu=8', 'chrt', '-f', '50', 'taskset', '-c', cpu, await targetBinary(), 'spin'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const hogGone = new Promise<void>((resolve) => hog.once('exit', () => resolve()));
    t.teardown(async () => {
      hog.kill('SIGKILL');
      await hogGone;
    });
    await waitFor(
      () => letter(hog.pid!, hog.pid!) === 'R' && statField(hog.pid!, hog.pid!, 41) === SCHED_FIFO,
      'the hog spinning under SCHED_FIFO (stat field 41, policy)',
    );

    fs.writeSync(writer, 'x'); // wakes the reader, which cannot get the CPU
    // /proc read just before and just after the sample says R: the sample must too.
    const seen = await waitFor(async () => {
      const before = letter(target.pid, target.pid);
      const sample = await sampler.sample();
      const after = letter(target.pid, target.pid);
      if (before !== 'R' || after !== 'R') return false;
      const oneShot = await sampleThreads(target.pid);
      return { sampler: sample.threads.find((th) => th.tid === target.pid)!, oneShot: oneShot.threads.find((th) => th.tid === target.pid)! };
    }, 'the reader runnable but starved, before and after a sample', 8000, 5);
    t.equal(seen.sampler.state, 'running', `the reused sampler: ${JSON.stringify(seen.sampler)}`);
    t.equal(seen.sampler.blockedIn, null, 'not shown in read: it has left it');
    t.equal(seen.oneShot.state, 'running', 'sampleThreads agrees');
  });
}
