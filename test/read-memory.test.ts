/**
 * readMemory(pid, ranges): process_vm_readv of a live child, ranges read whole or not at
 * all, the bounds checked before any read, and the refusals (gone, another user's
 * process, a read that does not return) as IokitSnapError with what to do.
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_READ_BYTES, MAX_READ_RANGES, readMemory } from '../src/runtimes/memory';

const ROOT = path.join(__dirname, '..');
const linux = process.platform === 'linux';

/** A sleeping child and the start of its first mapping (its ELF header), and an unmapped address below it. */
async function child(t: { teardown(fn: () => unknown): void }): Promise<{ pid: number; base: number; writable: { start: number; end: number } }> {
  const proc = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => proc.kill('SIGKILL'));
  const pid = proc.pid!;
  let maps = '';
  for (let i = 0; i < 200 && !maps.includes('sleep'); i++) {
    maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    if (!maps.includes('sleep')) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const lines = maps.split('\n').filter((l) => l !== '');
  const first = lines.find((l) => l.includes('sleep'))!;
  const rw = lines.find((l) => l.split(/\s+/)[1].startsWith('rw'))!;
  const [start, end] = rw.split(/\s+/)[0].split('-').map((x) => parseInt(x, 16));
  return { pid, base: parseInt(first.split('-')[0], 16), writable: { start, end } };
}

t.test('reads ranges of a live process, each whole or null', { skip: linux ? false : 'Linux only' }, async (t) => {
  const { pid, base, writable } = await child(t);
  const [elf, bigint, empty, unmapped, tail] = await readMemory(pid, [
    { address: base, length: 4 },
    { address: BigInt(base) + 1n, length: 3 },
    { address: base, length: 0 },
    { address: 4096, length: 16 }, // the first page is never mapped
    { address: base + 4, length: 1 },
  ]);
  t.same([...elf!], [0x7f, 0x45, 0x4c, 0x46], 'the ELF magic of its executable');
  t.same(bigint!.toString('latin1'), 'ELF', 'a bigint address');
  t.equal(empty!.length, 0);
  t.equal(unmapped, null, 'an unmapped range is null');
  t.equal(tail!.length, 1, 'ranges after an unmapped one are still read');
  // A range that starts mapped and runs past the mapping's end: not whole, so null.
  const [across] = await readMemory(pid, [{ address: writable.end - 8, length: 4096 * 64 }]);
  t.equal(across, null, 'a range read only in part is null');
  t.same(await readMemory(pid, []), []);
});

t.test('more ranges than one system call takes (IOV_MAX), failures among them', { skip: linux ? false : 'Linux only' }, async (t) => {
  const { pid, base } = await child(t);
  const ranges = Array.from({ length: 3000 }, (_, i) => (i % 997 === 500 ? { address: 8192, length: 8 } : { address: base + (i % 64), length: 1 }));
  const got = await readMemory(pid, ranges);
  t.equal(got.length, 3000);
  t.equal(got.filter((b) => b === null).length, 3, 'only the three unmapped ones are null');
  const reference = (await readMemory(pid, [{ address: base, length: 64 }]))[0]!;
  t.ok(got.every((b, i) => b === null || b[0] === reference[i % 64]), 'each range has its own bytes');
});

t.test('the bounds and the arguments are checked before any read', async (t) => {
  const bad: [unknown, RegExp][] = [
    ['x', /ranges must be an array/],
    [[null], /ranges\[0\] must be \{ address, length \}/],
    [[{ address: -1, length: 1 }], /address must be a non-negative integer/],
    [[{ address: 1.5, length: 1 }], /address must be/],
    [[{ address: 2n ** 64n, length: 1 }], /address must be/],
    [[{ address: 1, length: -1 }], /length must be an integer from 0/],
    [[{ address: 1, length: MAX_READ_BYTES + 1 }], /length must be an integer from 0/],
    [[{ address: 2n ** 64n - 1n, length: 2 }], /runs past the end of the address space/],
    [[{ address: 1, length: MAX_READ_BYTES }, { address: 1, length: 1 }], /at most 4194304 bytes per call/],
    [Array.from({ length: MAX_READ_RANGES + 1 }, () => ({ address: 1, length: 0 })), /at most 16384 ranges per call/],
  ];
  for (const [ranges, message] of bad) {
    await t.rejects(readMemory(process.pid, ranges as never), { code: 'EINVAL', message }, String(message));
  }
  await t.rejects(readMemory(0, []), { code: 'EINVAL', message: /pid must be a positive integer/ });
  await t.rejects(readMemory(process.pid, [], { timeoutMs: -1 }), { code: 'EINVAL', message: /timeoutMs/ });
});

t.test('the native glue checks what it is given too', { skip: linux ? false : 'Linux only' }, async (t) => {
  const native = require('node-gyp-build')(ROOT) as { readMemory: (...args: unknown[]) => Promise<unknown> };
  const pairs = (...values: bigint[]): BigUint64Array => BigUint64Array.from(values);
  const calls: [unknown[], RegExp][] = [
    [[process.pid, 'x'], /ranges must be a BigUint64Array/],
    [[process.pid, [{ address: 1, length: 1 }]], /ranges must be a BigUint64Array/],
    [[process.pid, new Float64Array(2)], /ranges must be a BigUint64Array/],
    [[process.pid, pairs(1n)], /\(address, length\) pairs/],
    [[process.pid, pairs(1n, 2n ** 40n)], /at most 4194304 bytes/],
    [[process.pid, pairs(2n ** 64n - 1n, 2n)], /wraps around/],
    [[process.pid, new BigUint64Array(2 * 16385)], /at most 16384 ranges/],
  ];
  for (const [args, message] of calls) {
    let error: unknown;
    try {
      await native.readMemory(...args);
    } catch (e) {
      error = e;
    }
    t.match(error, { code: 'EINVAL', message }, String(message));
  }
});

t.test('a process that is gone: ESRCH', { skip: linux ? false : 'Linux only' }, async (t) => {
  const proc = spawn('true');
  await new Promise((resolve) => proc.once('exit', resolve));
  await t.rejects(readMemory(proc.pid!, [{ address: 4096, length: 1 }]), { code: 'ESRCH', message: /does not exist/ });
});

t.test('another user’s process: EPERM and what to do', { skip: linux && process.getuid?.() === 0 ? false : 'needs root on Linux, to read as another user' }, async (t) => {
  const { pid, base } = await child(t);
  const code = `
    const native = require(${JSON.stringify(require.resolve('node-gyp-build'))})(${JSON.stringify(ROOT)});
    native.readMemory(${pid}, BigUint64Array.from([${base}n, 4n])).then(() => process.stdout.write('{}'), (e) => process.stdout.write(JSON.stringify({ code: e.code, message: e.message })));
  `;
  const result = JSON.parse(execFileSync(process.execPath, ['-e', code], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: os.tmpdir() })) as { code: string; message: string };
  t.equal(result.code, 'EPERM');
  t.match(result.message, /refused.*(root|CAP_SYS_PTRACE|ptrace_scope)/);
});

t.test('a read that does not return, and other platforms', async (t) => {
  const hung = t.mockRequire<typeof import('../src/runtimes/memory')>('../src/runtimes/memory', {
    '../src/native': {
      ...require('../src/native'),
      binding: () => ({ platform: 'linux', readMemory: () => Object.assign(new Promise(() => undefined), { abandon() {} }) }),
    },
  });
  await t.rejects(hung.readMemory(process.pid, [{ address: 4096, length: 1 }], { timeoutMs: 50 }), { code: 'ETIMEDOUT', message: /Reading the memory of pid \d+ did not return within 50 ms/ });
  const darwin = t.mockRequire<typeof import('../src/runtimes/memory')>('../src/runtimes/memory', {
    '../src/native': { ...require('../src/native'), binding: () => ({ platform: 'darwin' }) },
  });
  await t.rejects(darwin.readMemory(process.pid, [{ address: 4096, length: 1 }]), { code: 'ENOTSUP', message: /Linux only/ });
});
