import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { IokitSnapError } from '../src/errors';
import { parseSnapshot, readSnapshot, validateSnapshot, writeSnapshot } from '../src/snapshot-file';
import type { Snapshot } from '../src/types';

const snap: Snapshot = {
  format: 'iokit-snap/1',
  takenAt: '2026-11-25T10:00:00.000Z',
  monotonicNs: 123,
  host: { platform: 'linux', arch: 'x64', osRelease: '6.1.0' },
  accelerators: [],
  processes: [
    {
      pid: 5,
      name: 'x',
      sampledAtNs: 120,
      threads: [{ tid: 5, name: 'x', state: 'sleeping', userNs: 0, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: null }],
    },
  ],
  limits: [],
};

t.test('write then read round-trips', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-file-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 's.json');
  await writeSnapshot(file, snap);
  t.same(await readSnapshot(file), snap);
  t.same(await readSnapshot(JSON.stringify(snap)), snap);
  t.same(fs.readdirSync(dir), ['s.json'], 'no temporary file left behind');
});

t.test('bad input gets EINVAL naming what is wrong', async (t) => {
  const bad = async (text: string, pattern: RegExp) => {
    const error = await readSnapshot(text).catch((e) => e);
    t.type(error, IokitSnapError);
    t.equal(error.code, 'EINVAL');
    t.match(error.message, pattern);
  };
  await bad('{ nope', /not valid JSON/);
  await bad('{"format":"iokit-snap/2"}', /format is "iokit-snap\/2", not "iokit-snap\/1"/);
  await bad(JSON.stringify({ ...snap, takenAt: 5 }), /takenAt/);
  await bad(JSON.stringify({ ...snap, monotonicNs: '5' }), /monotonicNs/);
  await bad(JSON.stringify({ ...snap, host: {} }), /host\.platform/);
  await bad(JSON.stringify({ ...snap, accelerators: {} }), /accelerators must be an array/);
  await bad(JSON.stringify({ ...snap, accelerators: [{ id: 1 }] }), /accelerators\[0\]/);
  await bad(JSON.stringify({ ...snap, processes: 1 }), /processes must be an array/);
  await bad(JSON.stringify({ ...snap, processes: [{ pid: 'a' }] }), /processes\[0\] needs/);
  await bad(JSON.stringify({ ...snap, processes: [{ pid: 1, threads: [] }] }), /sampledAtNs/);
  await bad(JSON.stringify({ ...snap, processes: [{ pid: 1, sampledAtNs: 0, threads: [{}] }] }), /threads\[0\]/);
  await bad(JSON.stringify({ ...snap, limits: null }), /limits must be an array/);
  t.throws(() => parseSnapshot('[]'), /not a JSON object/);
  t.throws(() => validateSnapshot(null), /not a JSON object/);
  const missing = await readSnapshot('/nonexistent/dir/snap.json').catch((e) => e);
  t.equal(missing.code, 'EINVAL');
  t.match(missing.message, /cannot read snapshot \/nonexistent\/dir\/snap\.json/);
  const empty = await readSnapshot('').catch((e) => e);
  t.equal(empty.code, 'EINVAL');
});

t.test('writing to an impossible place fails clearly and leaves nothing', async (t) => {
  const error = await writeSnapshot('/nonexistent/dir/s.json', snap).catch((e) => e);
  t.type(error, IokitSnapError);
  t.equal(error.code, 'EINVAL');
  t.match(error.message, /cannot write snapshot/);
  const invalid = await writeSnapshot('/tmp/x.json', { ...snap, format: 'x' } as unknown as Snapshot).catch((e) => e);
  t.equal(invalid.code, 'EINVAL');
});

t.test('permission problems say EPERM', async (t) => {
  const denied = () => Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }));
  const file = t.mockRequire('../src/snapshot-file', {
    'node:fs/promises': { ...require('node:fs/promises'), readFile: denied, writeFile: denied },
    '../src/write-file': { writeFileSafely: denied },
  }) as typeof import('../src/snapshot-file');
  const read = await file.readSnapshot('/root/snap.json').catch((e) => e);
  t.equal(read.code, 'EPERM');
  t.match(read.message, /cannot read snapshot \/root\/snap\.json: EACCES/);
  const written = await file.writeSnapshot('/root/snap.json', snap).catch((e) => e);
  t.equal(written.code, 'EPERM');
});
