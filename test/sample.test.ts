import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { IokitSnapError } from '../src/errors';
import { createThreadSampler, monotonicNs, readHost, sampleAccelerators, sampleThreads, snapshot } from '../src/sample';
import { validateSnapshot } from '../src/snapshot-file';
import { waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the /proc sampler is the Linux backend';

t.test('bad arguments are EINVAL before anything is read', async (t) => {
  const einval = async (promise: Promise<unknown> | (() => unknown), pattern: RegExp) => {
    const error = (await (typeof promise === 'function' ? Promise.resolve().then(promise) : promise).catch((e: unknown) => e)) as IokitSnapError;
    t.type(error, IokitSnapError);
    t.equal(error.code, 'EINVAL');
    t.match(error.message, pattern);
  };
  await einval(sampleThreads(0), /pid must be a positive integer process id, got 0/);
  await einval(sampleThreads('12' as unknown as number), /got "12"/);
  await einval(sampleThreads(process.pid, { timeoutMs: 0 }), /timeoutMs must be a positive number/);
  await einval(sampleThreads(process.pid, null as unknown as object), /options must be an object/);
  await einval(sampleAccelerators(5 as unknown as object), /options must be an object/);
  await einval(sampleAccelerators({ callTimeoutMs: -1 }), /callTimeoutMs must be a positive number/);
  await einval(sampleAccelerators({ timeoutMs: Number.NaN }), /timeoutMs/);
  await einval(snapshot(null as unknown as object), /options must be an object/);
  await einval(snapshot({ pids: 5 as unknown as number[] }), /pids must be an array/);
  await einval(snapshot({ pids: [1, -1] }), /got -1/);
  await einval(() => createThreadSampler(process.pid, { timeoutMs: -5 }), /timeoutMs/);
});

t.test('a snapshot of this process', { skip: linux }, async (t) => {
  const snap = validateSnapshot(await snapshot({ pids: [process.pid], accelerators: false, timeoutMs: 20000 }));
  t.equal(snap.processes.length, 1);
  const [own] = snap.processes;
  t.equal(own.pid, process.pid);
  t.ok(own.threads.some((thread) => thread.tid === process.pid), 'the main thread is there');
  t.ok(snap.monotonicNs <= own.sampledAtNs, 'sampled after the snapshot clock was read');
  t.ok(monotonicNs() >= own.sampledAtNs);
});

t.test('a reusable sampler: samples, closes, refuses after close', { skip: linux }, async (t) => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const sampler = createThreadSampler(child.pid!, { timeoutMs: 20000 });
  t.equal(sampler.pid, child.pid);
  const first = await sampler.sample();
  const second = await sampler.sample();
  t.equal(first.pid, child.pid);
  t.ok(second.sampledAtNs > first.sampledAtNs);
  sampler.close();
  sampler.close(); // twice is fine
  const after = await sampler.sample().catch((e) => e);
  t.equal(after.code, 'EINVAL');
  t.match(after.message, /closed/);
});

t.test('a sampler closed while it is still opening never samples', { skip: linux }, async (t) => {
  const sampler = createThreadSampler(process.pid);
  const pending = sampler.sample();
  sampler.close();
  const error = await pending.catch((e) => e);
  t.equal(error.code, 'EINVAL');
  t.match(error.message, /closed/);
  // Closed once its sample waits for the open (a native probe: never done within a microtask).
  const late = createThreadSampler(process.pid);
  const waiting = late.sample();
  await Promise.resolve();
  late.close();
  const lateError = await waiting.catch((e) => e);
  t.equal(lateError.code, 'EINVAL');
});

t.test('a sampler of a process that does not exist rejects ESRCH, and close() after that is quiet', { skip: linux }, async (t) => {
  const sampler = createThreadSampler(2147483646);
  const error = await sampler.sample().catch((e) => e);
  t.equal(error.code, 'ESRCH');
  sampler.close();
});

t.test('parts that time out become limits with the hang hint; the snapshot is still taken', async (t) => {
  const never = () => Object.assign(new Promise<never>(() => undefined), { abandon() {} });
  const sample = t.mockRequire('../src/sample', {
    '../src/native': {
      ...require('../src/native'),
      binding: () => ({
        platform: 'linux',
        sampleAccelerators: never,
        sampleThreads: never,
        readHost: never,
        monotonicNs: () => 42,
      }),
    },
  }) as typeof import('../src/sample');
  const snap = await sample.snapshot({ pids: [123], timeoutMs: 50 });
  t.equal(snap.monotonicNs, 42);
  t.same(snap.accelerators, []);
  t.same(snap.processes, []);
  t.same(snap.limits.map((l) => `${l.subject} ${l.field} ${l.code}`).sort(), [
    'accelerators accelerators ETIMEDOUT',
    'pid 123 threads ETIMEDOUT',
  ]);
  for (const limit of snap.limits) t.match(limit.hint, /probe timed out/);
  t.equal(snap.host.platform, process.platform, 'host facts fall back to what Node knows');
  t.equal(snap.host.osRelease, require('node:os').release());
});

t.test('on macOS the native header and property tree go through the registry mapping', async (t) => {
  // The shape the darwin backend returns (native/darwin/accelerators.cc), values of the M4 capture.
  const raw = {
    id: '0x100000478', name: 'AGXAcceleratorG16G', className: 'AGXAcceleratorG16G',
    classChain: ['AGXAcceleratorG16G', 'AGXAccelerator', 'IOGPU', 'IOAccelerator', 'IOService', 'IORegistryEntry', 'OSObject'],
    location: '', busyCount: 0, busyTimeNs: 752e6, serviceState: { registered: true, matched: true, active: true }, retainCount: 101,
    properties: { IOProbeScore: 10000, IOPowerManagement: { CurrentPowerState: 1, MaxPowerState: 1, CapabilityFlags: 2 } },
  };
  const sample = t.mockRequire('../src/sample', {
    '../src/native': {
      ...require('../src/native'),
      binding: () => ({ platform: 'darwin', sampleAccelerators: async () => ({ accelerators: [raw, { ...raw, busyCount: null }], limits: [] }) }),
    },
  }) as typeof import('../src/sample');
  const { accelerators } = await sample.sampleAccelerators({ includeProperties: true });
  t.equal(accelerators[0].id, '0x100000478');
  t.same(accelerators[0].busy, { count: 0, timeNs: 752e6 });
  t.equal(accelerators[0].location, null, 'an empty location is no location');
  t.equal(accelerators[0].probeScore, 10000);
  t.equal(accelerators[0].power?.state, 1);
  t.same(accelerators[0].properties, raw.properties);
  t.equal(accelerators[1].busy, null, 'no busy facts: null, not zero');
});

t.test('a probe that really hangs (a fifo nobody writes, as a wedged /proc would) times out; the process can still exit', { skip: linux }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-hang-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, '4242', 'task', '4242'), { recursive: true });
  for (const file of ['4242/stat', '4242/comm', '4242/task/4242/stat']) execFileSync('mkfifo', [path.join(root, file)]);
  const snap = await snapshot({ pids: [4242], accelerators: false, timeoutMs: 300, threads: { procRoot: root } });
  t.same(snap.processes, []);
  t.equal(snap.limits.length, 1);
  t.equal(snap.limits[0].code, 'ETIMEDOUT');
  t.match(snap.limits[0].reason, /did not return within 300 ms/);
  t.match(snap.limits[0].hint, /probe timed out/);
  // The stuck probe thread must not keep a process alive: a child doing the same exits by itself.
  const script = `require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'sample.js'))})
    .sampleThreads(4242, { procRoot: ${JSON.stringify(root)}, timeoutMs: 200 }).catch((e) => console.log(e.code));`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
  t.equal(out.trim(), 'ETIMEDOUT');
});

/**
 * A procRoot with process 4242 and its threads 4242 and 4243, whose stat is a fifo: a sample
 * blocks in opening it until unblock() gives it a writer (and puts a regular file in its
 * place, so that later samples read at once), as a wedged /proc read would block. Its
 * samplers keep no fds (maxOpenFiles 3: its directories only): a fifo cannot be re-read by pread.
 */
function wedgedThread(t: Test): { root: string; unblock(): Promise<void> } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-wedged-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const stat = (tid: number) => `${tid} (wedged) S 1 4242 4242 0 -1 4194304 0 0 0 0 1 2 0 0 20 0 2 0 1000 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n`;
  for (const tid of [4242, 4243]) fs.mkdirSync(path.join(root, '4242', 'task', String(tid)), { recursive: true });
  fs.writeFileSync(path.join(root, '4242', 'stat'), stat(4242));
  fs.writeFileSync(path.join(root, '4242', 'status'), 'Name:\twedged\nTgid:\t4242\n');
  fs.writeFileSync(path.join(root, '4242', 'task', '4242', 'stat'), stat(4242));
  const fifo = path.join(root, '4242', 'task', '4243', 'stat');
  execFileSync('mkfifo', [fifo]);
  return {
    root,
    async unblock() {
      // A writer opens at once only while a reader waits in its open: the blocked sample.
      const writer = await waitFor(() => {
        try {
          return fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
        } catch {
          return undefined;
        }
      }, 'the sample to wait in its open of the fifo');
      fs.writeFileSync(`${fifo}.new`, stat(4243));
      fs.renameSync(`${fifo}.new`, fifo);
      fs.writeSync(writer, stat(4243));
      fs.closeSync(writer);
    },
  };
}

t.test('two samples at once on one sampler: the second waits its turn, with a deadline of its own (not ETIMEDOUT)', { skip: linux }, async (t) => {
  const wedged = wedgedThread(t);
  const sampler = createThreadSampler(4242, { procRoot: wedged.root, detail: 'basic', timeoutMs: 20000, maxOpenFiles: 3 });
  t.teardown(() => sampler.close());
  const first = sampler.sample();
  const second = sampler.sample();
  await wedged.unblock();
  const [a, b] = await Promise.all([first, second]);
  t.same(
    a.threads.map((thread) => thread.tid).sort(),
    [4242, 4243],
  );
  t.same(
    b.threads.map((thread) => thread.tid).sort(),
    [4242, 4243],
    'the second sample, taken after the first',
  );
  t.ok(b.sampledAtNs > a.sampledAtNs);
});

t.test('a sample whose predecessor passed its deadline waits for it, within its own deadline, and says so', { skip: linux }, async (t) => {
  const wedged = wedgedThread(t);
  const sampler = createThreadSampler(4242, { procRoot: wedged.root, detail: 'basic', timeoutMs: 400, maxOpenFiles: 3 });
  t.teardown(() => sampler.close());
  const stuck = await sampler.sample().catch((e) => e);
  t.equal(stuck.code, 'ETIMEDOUT');
  t.match(stuck.message, /Sampling the threads of pid 4242 did not return within 400 ms/);
  const waited = await sampler.sample().catch((e) => e);
  t.equal(waited.code, 'ETIMEDOUT');
  t.match(waited.message, /the previous sample of pid 4242, abandoned at its deadline, has still not returned/);
  const third = sampler.sample();
  await wedged.unblock();
  t.same(
    (await third).threads.map((thread) => thread.tid).sort(),
    [4242, 4243],
    'once it returns, the next sample is taken',
  );
  sampler.close();
  const closed = await sampler.sample().catch((e) => e);
  t.equal(closed.code, 'EINVAL');
});

t.test('a sampler left idle gives back its fds, and samples on', { skip: linux }, async (t) => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const kept = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`/proc/${child.pid}/`);
    } catch {
      return false;
    }
  }).length;
  const sampler = createThreadSampler(child.pid!);
  t.teardown(() => sampler.close());
  await sampler.sample();
  t.ok(kept() > 0, 'it keeps fds between samples');
  await waitFor(() => kept() === 0, 'the idle sampler to let its fds go', 10000);
  t.equal((await sampler.sample()).threads.length, 1, 'and samples again');
  t.ok(kept() > 0);
});

t.test('host facts', async (t) => {
  const host = await readHost();
  t.equal(host.platform, process.platform);
  t.equal(host.arch, process.arch);
});

t.test('peers: true with more holders than it samples, and a holder that exited before it could be sampled', { skip: linux }, async (t) => {
  // Seventeen holders (one more than the 16 it samples), none of them alive: processes that ran and were reaped.
  const gone: number[] = [];
  for (let i = 0; i < 17; i++) {
    const child = spawn('true', { stdio: 'ignore' });
    gone.push(child.pid!);
    await new Promise((resolve) => child.once('exit', resolve));
  }
  const real = await import('../src/peer');
  let calls = 0;
  const { snapshot: mockedSnapshot } = t.mockRequire<typeof import('../src/sample')>('../src/sample', {
    '../src/peer': {
      ...real,
      // The first search names the holders (as it would for 17 threads blocked on 17 pipes); the second is the real one.
      findPeers: (processes: Parameters<typeof real.findPeers>[0], options: Parameters<typeof real.findPeers>[1]) => {
        if (calls++ === 0) {
          processes[0].threads[0].blockedIn = {
            call: 'read',
            number: 0,
            fd: 0,
            target: 'pipe:[1]',
            peer: { kind: 'pipe', pids: gone.map((pid) => ({ pid, name: 'true' })), sampled: false },
          };
          return { found: 1, limits: [], cost: { processes: 0, fds: 0, ms: 0, wholeSystem: false } };
        }
        return real.findPeers(processes, options);
      },
    },
  });
  const snap = await mockedSnapshot({ pids: [process.pid], accelerators: false, peers: true });
  t.equal(calls, 2, 'searched again once the holders were sampled');
  t.same(snap.processes.map((p) => p.pid), [process.pid], 'no holder could be sampled');
  t.match(
    snap.limits.find((l) => l.field === 'peers'),
    { subject: 'snapshot', code: 'E2BIG', reason: '17 processes hold the other ends; the first 16 were sampled' },
  );
  const holderLimits = snap.limits.filter((l) => l.field === 'threads');
  t.same(holderLimits.map((l) => l.subject), gone.slice(0, 16).map((pid) => `pid ${pid}`), 'each of the first 16 is a limit');
  t.match(holderLimits[0], { code: 'ESRCH' });
});
