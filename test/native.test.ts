import t from 'tap';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { IokitSnapError, toIokitSnapError } from '../src/errors';
import { binding, hasBackend, withDeadline } from '../src/native';

t.test('the binding loads and says which platform it serves', async (t) => {
  const native = binding();
  t.equal(native.platform, process.platform === 'darwin' ? 'darwin' : 'linux');
  t.equal(binding(), native, 'loaded once');
  t.ok(hasBackend());
  const host = await withDeadline(() => native.readHost(), 5000, 'host');
  t.equal(host.platform, process.platform);
  t.equal(host.arch, process.arch);
  t.type(host.osRelease, 'string');
  const a = native.monotonicNs();
  const b = Number(process.hrtime.bigint());
  t.ok(Math.abs(b - a) < 5e9, 'native monotonic clock is the clock of process.hrtime');
});

t.test('a loader that finds no binary explains what it tried', async (t) => {
  const native = t.mockRequire('../src/native', {
    'node-gyp-build': () => {
      throw new Error('No native build was found');
    },
  }) as typeof import('../src/native');
  const first = t.throws(() => native.binding()) as unknown as IokitSnapError;
  t.equal(first.code, 'ENOTSUP');
  t.match(first.message, /no native binary loads on/);
  t.match(first.message, /build\/Release\/iokit_snap\.node/);
  t.match(first.message, /npm rebuild iokit-snap/);
  t.match(first.message, /Loader said: No native build was found/);
  t.equal(t.throws(() => native.binding()), first, 'the same error on every call');
  t.equal(native.hasBackend(), false);
});

t.test('withDeadline: a probe that never returns becomes ETIMEDOUT, not a hang', async (t) => {
  const never = new Promise<number>(() => undefined);
  const error = await withDeadline(() => never, 30, 'Reading the wedged thing').catch((e) => e);
  t.type(error, IokitSnapError);
  t.equal(error.code, 'ETIMEDOUT');
  t.match(error.message, /^Reading the wedged thing did not return within 30 ms/);
  t.equal(await withDeadline(async () => 7, 1000, 'x'), 7);
  const sync = await withDeadline(() => {
    throw Object.assign(new Error('bad arg'), { code: 'EINVAL' });
  }, 1000, 'x').catch((e) => e);
  t.equal(sync.code, 'EINVAL');
  t.type(sync, IokitSnapError);
});

t.test('native argument checks reject with EINVAL', async (t) => {
  const native = binding();
  t.throws(() => native.sampleThreads(0, {}), { code: 'EINVAL', message: 'pid must be a positive integer' });
  t.throws(() => native.sampleThreads(1.5, {}), { code: 'EINVAL' });
  t.throws(() => native.sampleThreads(1, { detail: 'some' as 'basic' }), { code: 'EINVAL', message: /detail/ });
  t.throws(() => native.sampleThreads(1, { stacks: 1 as unknown as boolean }), { code: 'EINVAL', message: /stacks/ });
  t.throws(() => native.sampleThreads(1, { maxOpenFiles: -1 }), { code: 'EINVAL', message: /maxOpenFiles/ });
  t.throws(() => native.sampleThreads(1, { procRoot: 5 as unknown as string }), { code: 'EINVAL', message: /procRoot/ });
  t.throws(() => native.sampleThreads(1, 5 as unknown as object), { code: 'EINVAL', message: /options must be an object/ });
  t.throws(() => native.internals.callName('plan9' as 'linux', 'x64', 1), { code: 'EINVAL' });
  t.throws(() => native.internals.callName('linux', 'mips' as 'x64', 1), { code: 'EINVAL' });
});

t.test('errors from anywhere become IokitSnapError with a known code', async (t) => {
  t.equal(toIokitSnapError(Object.assign(new Error('x'), { code: 'EACCES' })).code, 'EPERM');
  t.equal(toIokitSnapError(Object.assign(new Error('x'), { code: 'EWHATEVER' })).code, 'EIO');
  const e = toIokitSnapError(Object.assign(new Error('denied'), { code: 'EPERM', syscall: 'task_for_pid', kern: 5 }));
  t.equal(e.syscall, 'task_for_pid');
  t.equal(e.kern, 5);
  t.equal(toIokitSnapError('plain').message, 'plain');
  const same = new IokitSnapError('ESRCH', 'gone');
  t.equal(toIokitSnapError(same), same);
  t.equal(same.name, 'IokitSnapError');
});

t.test('the addon works in worker_threads, alongside the main thread', async (t) => {
  const script = `
    const { parentPort } = require('node:worker_threads');
    const native = require('node-gyp-build')(${JSON.stringify(path.join(__dirname, '..'))});
    Promise.all([native.readHost(), native.sampleAccelerators({}), native.readHost()])
      .then(([host, accelerators]) => parentPort.postMessage({ host, count: accelerators.accelerators.length }));
  `;
  const runWorker = () =>
    new Promise<{ host: { platform: string }; count: number }>((resolve, reject) => {
      const worker = new Worker(script, { eval: true });
      worker.once('message', (m) => {
        resolve(m);
        void worker.terminate();
      });
      worker.once('error', reject);
    });
  const results = await Promise.all([runWorker(), runWorker(), binding().readHost()]);
  t.equal(results[0].host.platform, process.platform);
  t.equal(results[1].host.platform, process.platform);
  t.equal(results[2].platform, process.platform);
});

t.test('a worker that exits while its probes run does not take the process down', async (t) => {
  const script = `
    const native = require('node-gyp-build')(${JSON.stringify(path.join(__dirname, '..'))});
    for (let i = 0; i < 20; i++) native.readHost();
    process.exit(0);
  `;
  const code = await new Promise<number>((resolve) => new Worker(script, { eval: true }).once('exit', resolve));
  t.equal(code, 0);
  t.equal((await binding().readHost()).platform, process.platform, 'the main environment still works');
});

t.test('withDeadline abandons a native probe it gave up on', async (t) => {
  let abandoned = 0;
  const never = Object.assign(new Promise<number>(() => undefined), { abandon: () => abandoned++ });
  const error = await withDeadline(() => never, 10, 'probe').catch((e) => e);
  t.equal(error.code, 'ETIMEDOUT');
  t.equal(abandoned, 1);
  const real = binding().readHost() as Promise<unknown> & { abandon: () => void };
  t.type(real.abandon, 'function', 'native promises carry abandon()');
  await real;
  real.abandon(); // after settling: a no-op, never a crash
});

t.test('a process that exits with probes in flight, in itself and in Workers, exits cleanly', async (t) => {
  // Regression: probe threads finishing during environment teardown used to touch a freed
  // thread-safe function, and a failing napi_throw in a terminating Worker aborted the process.
  const { spawnSync } = await import('node:child_process');
  const root = JSON.stringify(path.join(__dirname, '..'));
  const script = `
    const load = require(require.resolve('node-gyp-build', { paths: [${root}] }));
    const native = load(${root});
    const { Worker } = require('node:worker_threads');
    for (let i = 0; i < 50; i++) native.sampleThreads(process.pid, {}).catch(() => {});
    for (let k = 0; k < 4; k++) new Worker(\`
      const native = require(require.resolve('node-gyp-build', { paths: [${root.replace(/"/g, '\\"')}] }))(${root.replace(/"/g, '\\"')});
      for (let i = 0; i < 50; i++) native.sampleThreads(process.pid, {}).catch(() => {});
      setTimeout(() => process.exit(0), \${k});\`, { eval: true });
    setTimeout(() => process.exit(0), 3);`;
  for (let run = 0; run < 10; run++) {
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
    t.equal(result.status, 0, `run ${run}: exit 0 ${result.stderr.slice(0, 200)}`);
    if (result.status !== 0) break;
  }
});
