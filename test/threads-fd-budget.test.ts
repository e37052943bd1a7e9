/**
 * File descriptors (issue 17 item 1): thread samplers share one fd budget per environment
 * (half of RLIMIT_NOFILE), read past it by open/read/close, and say so; a thread whose
 * stat cannot be read at all is named, never dropped in silence; a live process is never
 * reported gone for want of an fd; a sampler nobody closed gives its fds back when idle.
 *
 * Each case runs in a Node process of its own under `ulimit -n 512` (test/helpers/fd-budget.js,
 * which loads lib/: run `npm run build` first), against two processes of 1,000 threads.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { IokitSnapError } from '../src/errors';
import { sampleThreads } from '../src/sample';
import type { Limitation } from '../src/types';
import { start, waitFor, type Target } from './helpers/targets';

const HELPER = path.join(__dirname, 'helpers', 'fd-budget.js');
const LIMIT = 512;
const THREADS = 1000;

interface Brief {
  pid: number;
  tids: number[];
  limits: Limitation[];
}

/** The helper's report, run under `ulimit -n LIMIT`. */
async function underLimit(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await promisify(execFile)('sh', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, HELPER, ...args], {
    maxBuffer: 64 << 20,
    timeout: 240000,
  });
  const out = JSON.parse(stdout) as Record<string, unknown>;
  if (out.error !== undefined) throw new Error(`the helper failed: ${JSON.stringify(out)}`);
  return out;
}

function tidsOf(target: Target): number[] {
  return fs
    .readdirSync(`/proc/${target.pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

const sorted = (tids: number[]) => [...tids].sort((a, b) => a - b);

/** How many threads a "could not be read" limit names ("thread 5" or "12 threads (…)"). */
function unreadCount(limits: Limitation[]): number {
  const limit = limits.find((l) => l.field === 'threads' && /could not be read/.test(l.reason));
  if (limit === undefined) return 0;
  const many = /^(\d+) threads/.exec(limit.reason);
  return many ? Number(many[1]) : 1;
}

async function bigTarget(t: Parameters<typeof start>[0]): Promise<Target> {
  const target = await start(t, 'threads', [String(THREADS)]);
  await waitFor(() => fs.readdirSync(`/proc/${target.pid}/task`).length === THREADS + 1, `${THREADS + 1} threads`);
  return target;
}

function linuxTests(): void {
  t.test(`two samplers of ${THREADS + 1}-thread processes under ulimit -n ${LIMIT}: every thread in every sample, and the fds stay bounded`, async (t) => {
    const a = await bigTarget(t);
    const b = await bigTarget(t);
    const expected = new Map([
      [a.pid, tidsOf(a)],
      [b.pid, tidsOf(b)],
    ]);
    const out = (await underLimit(['two', String(a.pid), String(b.pid)])) as {
      samples: Brief[][];
      peakFds: number;
      oneShot: Brief;
      snapshot: { processes: Array<{ pid: number; threads: number }>; limits: Limitation[] };
      exhaustedWith: string;
      exhausted: { oneShot: Brief & { code?: string; message?: string }; snapshot: { processes: number; limits: Limitation[] }; sample: Brief };
      after: Brief;
    };
    for (const [round, samples] of out.samples.entries()) {
      for (const sample of samples) t.same(sorted(sample.tids), expected.get(sample.pid), `round ${round + 1}: every thread of pid ${sample.pid}`);
    }
    const degraded = out.samples.flat().flatMap((s) => s.limits.filter((l) => l.field === 'threads' && /read without kept fds/.test(l.reason)));
    t.ok(degraded.length > 0, 'a limit says which threads were read without kept fds');
    t.equal(degraded[0]?.code, 'EMFILE');
    t.match(degraded[0]?.reason, /^\d+ of 1001 threads \(\d+, /);
    t.ok(out.peakFds < LIMIT * 0.75, `the samplers keep at most about half the fds (peak ${out.peakFds} of ${LIMIT})`);

    t.equal(out.oneShot.tids.length, THREADS + 1, 'a one-shot sample beside them sees every thread');
    t.same(
      out.snapshot.processes,
      [
        { pid: a.pid, threads: THREADS + 1 },
        { pid: b.pid, threads: THREADS + 1 },
      ],
      'and a snapshot has both processes',
    );
    t.same(out.snapshot.limits, []);

    // With every fd of the process taken by the program itself.
    t.equal(out.exhaustedWith, 'EMFILE');
    t.equal(out.exhausted.oneShot.code, 'EAGAIN', 'a one-shot sample fails, but not with ESRCH: the process is there');
    t.match(out.exhausted.oneShot.message, /file descriptors in use .*not found gone/);
    t.equal(out.exhausted.snapshot.processes, 0);
    t.same(
      out.exhausted.snapshot.limits.map((l) => l.code),
      ['EAGAIN', 'EAGAIN'],
      'the snapshot says why each process is missing',
    );
    const { sample } = out.exhausted;
    const unread = unreadCount(sample.limits);
    t.ok(unread > 0, 'the sampler names the threads it could not read');
    t.equal(sample.tids.length + unread, THREADS + 1, 'every thread is either in the sample or named as not read');
    t.equal(sample.limits.find((l) => /could not be read/.test(l.reason))?.code, 'EMFILE');
    t.same(sorted(out.after.tids), expected.get(a.pid), 'with fds free again, every thread');
  });

  t.test('samplers never closed give their fds back once idle', async (t) => {
    const a = await bigTarget(t);
    const out = (await underLimit(['abandon', String(a.pid)])) as {
      baselineFds: number;
      peakFds: number;
      idleFds: number;
      idleMs: number;
      resampled: number;
      resampledFds: number;
    };
    t.ok(out.peakFds <= LIMIT * 0.75, `6 samplers together keep at most the budget (peak ${out.peakFds} of ${LIMIT})`);
    t.ok(out.idleFds <= out.baselineFds + 4, `idle, they hold nothing (${out.idleFds} fds, ${out.baselineFds} before; after ${out.idleMs} ms)`);
    t.equal(out.resampled, THREADS + 1, 'and one samples again, whole');
    t.ok(out.resampledFds > out.idleFds, 'keeping fds again');
  });

  t.test('a /proc that cannot be opened for another reason than absence is not a process gone: EIO, not ESRCH', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-loop-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const loop = path.join(dir, 'proc');
    fs.symlinkSync(loop, loop); // ELOOP
    const error = (await sampleThreads(process.pid, { procRoot: loop }).catch((e: unknown) => e)) as IokitSnapError;
    t.equal(error.code, 'EIO');
    t.match(error.message, /cannot open .*not found gone/);
    const missing = (await sampleThreads(process.pid, { procRoot: path.join(dir, 'absent') }).catch((e: unknown) => e)) as IokitSnapError;
    t.equal(missing.code, 'ESRCH', 'an absent tree is still ESRCH');
  });
}

if (process.platform === 'linux') linuxTests();
else t.pass('the fd budget of the procfs sampler: Linux only');
