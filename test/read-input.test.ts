// Reading a file the user named (readSnapshot, `iokit-snap import`, `diff`): only a
// regular file, refused before a byte is read otherwise (/dev/zero, a fifo with no
// writer, a directory), capped in size, with Node's code for a missing file.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { MAX_INPUT_BYTES } from '../src/input-limits';
import { readInputFile, readInputStream } from '../src/read-input';
import { readSnapshot } from '../src/snapshot-file';
import { runCli } from './helpers/cli';

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-read-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('not a regular file: EINVAL naming what it is, before any read (a fifo without a writer does not block)', async (t) => {
  const dir = scratch(t);
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  for (const [file, kind] of [
    ['/dev/zero', 'a character device'],
    [fifo, 'a fifo \\(named pipe\\)'],
    [dir, 'a directory'],
    ...(fs.existsSync('/dev/loop0') ? ([['/dev/loop0', 'a block device']] as const) : []),
  ] as const) {
    await t.rejects(readSnapshot(file), { code: 'EINVAL', message: new RegExp(`snapshot ${file} is ${kind}, not a regular file`) }, file);
    await t.rejects(readInputFile(file, 'ioreg output'), { code: 'EINVAL', message: /or - to read stdin/ }, file);
  }
});

t.test('missing: ENOENT with the path, as Node reports it', async (t) => {
  await t.rejects(readSnapshot('nosuch.json'), { name: 'IokitSnapError', code: 'ENOENT', message: /cannot read snapshot nosuch\.json: no such file; check the path$/ });
  await t.rejects(readInputFile('/etc/hostname/x', 'ioreg output'), { code: 'ENOENT', message: /a part of the path is not a directory.*\(ENOTDIR\)/ });
  const cli = await runCli(['import', 'nosuch.txt']);
  t.equal(cli.code, 1);
  t.match(cli.stderr, /iokit-snap import: ENOENT: cannot read ioreg output nosuch\.txt: no such file/);
  const diff = await runCli(['diff', 'nosuch.json', 'nosuch.json']);
  t.match(diff.stderr, /iokit-snap diff: ENOENT: cannot read snapshot or report nosuch\.json/);
});

t.test(`size: more than ${MAX_INPUT_BYTES / 1024 / 1024} MB is refused from the size, before reading it`, async (t) => {
  const dir = scratch(t);
  const sparse = path.join(dir, 'huge.json');
  fs.writeFileSync(sparse, '{');
  fs.truncateSync(sparse, MAX_INPUT_BYTES + 1); // sparse: no disk used, nothing read
  await t.rejects(readSnapshot(sparse), { code: 'EINVAL', message: /is larger than 256 MB/ });
  const big = 'x'.repeat(2.5 * 1024 * 1024);
  fs.writeFileSync(path.join(dir, 'big.txt'), big);
  t.equal(await readInputFile(path.join(dir, 'big.txt'), 'ioreg output'), big, 'read whole across chunks');
  fs.writeFileSync(path.join(dir, 'small.txt'), 'héllo');
  t.equal(await readInputFile(path.join(dir, 'small.txt'), 'ioreg output'), 'héllo');
});

t.test('a file whose size says 0 (/proc) and stdin are capped while reading', async (t) => {
  const small = t.mockRequire<typeof import('../src/read-input')>('../src/read-input', {
    '../src/input-limits': { ...require('../src/input-limits'), MAX_INPUT_BYTES: 16 },
  });
  t.equal(fs.statSync('/proc/self/status').size, 0, '/proc files report size 0');
  await t.rejects(small.readInputFile('/proc/self/status', 'snapshot'), { code: 'EINVAL', message: /snapshot \/proc\/self\/status is larger than/ });
  await t.rejects(small.readInputStream(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), 'ioreg output'), {
    code: 'EINVAL',
    message: /ioreg output from stdin is larger than/,
  });
  t.equal(await small.readInputStream(Readable.from(['abc', Buffer.from('def')]), 'ioreg output'), 'abcdef');
  t.equal(await readInputStream(Readable.from([]), 'ioreg output'), '');
});

t.test('an error while reading (not opening) keeps its code and the path', async (t) => {
  const failingRead = t.mockRequire<typeof import('../src/read-input')>('../src/read-input', {
    'node:fs/promises': {
      ...require('node:fs/promises'),
      open: async (file: string, flags: number) => {
        const handle = await fs.promises.open(file, flags);
        return Object.assign(Object.create(handle), {
          stat: () => handle.stat(),
          close: () => handle.close(),
          read: () => Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', syscall: 'read' })),
        });
      },
    },
  });
  await t.rejects(failingRead.readInputFile('/etc/hostname', 'snapshot'), { code: 'EIO', syscall: 'read', message: /cannot read snapshot \/etc\/hostname: EIO: i\/o error, read; the disk or file system failed$/ });
});

t.test('other open errors are EINVAL with Node\'s words and code', async (t) => {
  const dir = scratch(t);
  const loop = path.join(dir, 'loop');
  fs.symlinkSync(loop, loop);
  await t.rejects(readInputFile(loop, 'snapshot'), { code: 'EINVAL', message: /cannot read snapshot .*loop: ELOOP.*\(ELOOP\)$/ });
  const denied = t.mockRequire<typeof import('../src/read-input')>('../src/read-input', {
    'node:fs/promises': { ...require('node:fs/promises'), open: () => Promise.reject(Object.assign(new Error('EPERM: operation not permitted'), { code: 'EPERM' })) },
  });
  await t.rejects(denied.readInputFile('/x', 'snapshot'), { code: 'EPERM', message: /cannot read snapshot \/x: operation not permitted$/ });
});
