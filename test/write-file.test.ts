/**
 * write-file.ts on its own: content in pieces, a write that fails half way leaves nothing
 * behind, prepared files that are placed or discarded, and each failure's code and words.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { IokitSnapError } from '../src/errors';
import { outputError, prepareFile, writeFileSafely } from '../src/write-file';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-write-file-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const leftovers = (): string[] => fs.readdirSync(tmp).filter((name) => name.endsWith('.tmp'));

t.test('content in pieces, sync or async, is written in order, mode 0600', async (t) => {
  await writeFileSafely(path.join(tmp, 'sync.txt'), ['a', 'b', 'c']);
  async function* pieces(): AsyncGenerator<string> {
    yield '1';
    yield '2';
  }
  await writeFileSafely(path.join(tmp, 'async.txt'), pieces());
  t.equal(fs.readFileSync(path.join(tmp, 'sync.txt'), 'utf8'), 'abc');
  t.equal(fs.readFileSync(path.join(tmp, 'async.txt'), 'utf8'), '12');
  t.equal(fs.statSync(path.join(tmp, 'async.txt')).mode & 0o777, 0o600);
});

t.test('a write that fails part way leaves no file and no temporary file', async (t) => {
  async function* failing(): AsyncGenerator<string> {
    yield 'part';
    throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
  }
  await t.rejects(writeFileSafely(path.join(tmp, 'failed.txt'), failing()), { code: 'ENOSPC' });
  t.notOk(fs.existsSync(path.join(tmp, 'failed.txt')));
  t.same(leftovers(), []);
});

t.test('a prepared file takes its name only when placed; discard removes it, and is safe twice', async (t) => {
  const target = path.join(tmp, 'prepared.txt');
  const kept = await prepareFile(target, 'kept');
  t.notOk(fs.existsSync(target), 'not placed yet');
  t.equal(leftovers().length, 1);
  await kept.place();
  await kept.discard();
  t.equal(fs.readFileSync(target, 'utf8'), 'kept');
  const dropped = await prepareFile(target, 'dropped');
  await dropped.discard();
  await dropped.discard();
  t.same(leftovers(), []);
  await writeFileSafely(path.join(tmp, 'new.txt'), 'new', { replace: false });
  t.equal(fs.readFileSync(path.join(tmp, 'new.txt'), 'utf8'), 'new', 'placed where nothing was');
  const refused = await prepareFile(target, 'refused');
  await t.rejects(refused.place({ replace: false }), { code: 'EEXIST' });
  t.equal(fs.readFileSync(target, 'utf8'), 'kept');
  t.same(leftovers(), [], 'the temporary file of a refused placing is gone');
});

t.test('outputError: each failure a user can act on has its own code, about the path given', async (t) => {
  const target = '/some/dir/x.json';
  const cases: [string, string, RegExp][] = [
    ['ENOENT', 'ENOENT', /no such directory \/some\/dir: create it first/],
    ['ENOTDIR', 'ENOENT', /a part of \/some\/dir is not a directory.*\(ENOTDIR\)$/],
    ['EACCES', 'EPERM', /permission denied in \/some\/dir.*\(EACCES\)$/],
    ['EPERM', 'EPERM', /operation not permitted in \/some\/dir/],
    ['ENOSPC', 'ENOSPC', /no space left on the file system that holds \/some\/dir: free some, or write elsewhere$/],
    ['EDQUOT', 'ENOSPC', /disk quota .* is used up.*\(EDQUOT\)$/],
    ['EROFS', 'EROFS', /\/some\/dir is on a read-only file system: write elsewhere$/],
    ['EEXIST', 'EEXIST', /\/some\/dir\/x\.json already exists$/],
    ['EISDIR', 'EINVAL', /\/some\/dir\/x\.json is a directory: name a file in it \(EISDIR\)$/],
    ['ENAMETOOLONG', 'EINVAL', /the name is too long/],
    ['ELOOP', 'EINVAL', /too many symbolic links/],
    ['EBADF', 'EIO', /^cannot write snapshot \/some\/dir\/x\.json: odd \(EBADF\)$/],
  ];
  for (const [raw, code, message] of cases) {
    const error = outputError(Object.assign(new Error('odd'), { code: raw, syscall: 'open' }), 'snapshot', target);
    t.equal(error.code, code, raw);
    t.match(error.message, message, raw);
    t.match(error.message, /^cannot write snapshot \/some\/dir\/x\.json: /);
    t.equal(error.syscall, 'open');
  }
  const ours = new IokitSnapError('EINVAL', 'already said');
  t.equal(outputError(ours, 'snapshot', target), ours, 'an IokitSnapError passes through');
  t.equal(outputError(new Error('no code'), 'snapshot', target).message, 'cannot write snapshot /some/dir/x.json: no code');
});
