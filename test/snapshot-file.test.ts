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
  await bad(JSON.stringify({ ...snap, processes: [{ pid: 'a' }] }), /processes\[0\]\.pid must be an integer, got "a"/);
  await bad(JSON.stringify({ ...snap, processes: [{ pid: 1, name: 'x', threads: [] }] }), /processes\[0\]\.sampledAtNs must be a finite number, got nothing/);
  await bad(JSON.stringify({ ...snap, processes: [{ pid: 1, name: 'x', sampledAtNs: 0, threads: [{}] }] }), /processes\[0\]\.threads\[0\]\.tid/);
  await bad(JSON.stringify({ ...snap, limits: null }), /limits must be an array/);
  t.throws(() => parseSnapshot('[]'), /not a JSON object/);
  t.throws(() => validateSnapshot(null), /not a JSON object/);
  const missing = await readSnapshot('/nonexistent/dir/snap.json').catch((e) => e);
  t.equal(missing.code, 'ENOENT', 'a missing file is ENOENT, as Node says');
  t.match(missing.message, /cannot read snapshot \/nonexistent\/dir\/snap\.json: no such file/);
  const empty = await readSnapshot('').catch((e) => e);
  t.equal(empty.code, 'EINVAL');
});

t.test('writing to an impossible place fails clearly and leaves nothing', async (t) => {
  const error = await writeSnapshot('/nonexistent/dir/s.json', snap).catch((e) => e);
  t.type(error, IokitSnapError);
  t.equal(error.code, 'ENOENT', 'the directory is missing: ENOENT, about the path given');
  t.equal(error.message, 'cannot write snapshot /nonexistent/dir/s.json: no such directory /nonexistent/dir: create it first, or check the path');
  const invalid = await writeSnapshot('/tmp/x.json', { ...snap, format: 'x' } as unknown as Snapshot).catch((e) => e);
  t.equal(invalid.code, 'EINVAL');
});

t.test('permission problems: EACCES reading (as Node says), EPERM writing', async (t) => {
  // Tests run as root, which no file mode stops: the denial comes from a mocked fs.
  const denied = () => Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', syscall: 'open' }));
  const file = t.mockRequire('../src/snapshot-file', {
    'node:fs/promises': { ...require('node:fs/promises'), open: denied, writeFile: denied },
    '../src/write-file': { ...require('../src/write-file'), writeFileSafely: denied },
  }) as typeof import('../src/snapshot-file');
  const read = await file.readSnapshot('/root/snap.json').catch((e) => e);
  t.equal(read.code, 'EACCES');
  t.equal(read.syscall, 'open');
  t.match(read.message, /cannot read snapshot \/root\/snap\.json: permission denied/);
  const written = await file.writeSnapshot('/root/snap.json', snap).catch((e) => e);
  t.equal(written.code, 'EPERM');
});

t.test('the whole document is checked, not only its top level: EINVAL at the first bad field', async (t) => {
  const thread = snap.processes[0].threads[0];
  const accelerator = {
    id: '0000:01:00.0',
    name: 'GH100',
    className: 'nvidia',
    classChain: ['pci', '0x030200'],
    vendor: 'NVIDIA',
    model: null,
    busy: null,
    serviceState: null,
    power: { state: 'D0', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'active' },
    probeScore: null,
    utilization: null,
    memory: null,
    recovery: null,
    queues: [{ id: 1, submitted: 2, finished: 2, state: '' }],
    properties: { nested: { list: [1, 'two', null, true, { $data: 'AA==' }] } },
  };
  t.ok(validateSnapshot({ ...snap, accelerators: [accelerator] }), 'a full accelerator passes');
  const cases: [unknown, RegExp][] = [
    [{ ...snap, accelerators: [{ id: 'a', name: 'b' }] }, /accelerators\[0\]\.className must be a string, got nothing/],
    [{ ...snap, limits: [null] }, /limits\[0\] must be an object, got null/],
    [{ ...snap, limits: [{ subject: 's', field: 'f', code: 'E', reason: 'r', hint: 3 }] }, /limits\[0\]\.hint must be a string, got 3/],
    [{ ...snap, processes: [{ ...snap.processes[0], threads: [{ ...thread, blockedIn: undefined }] }] }, /threads\[0\]\.blockedIn must be an object or null, got nothing/],
    [{ ...snap, processes: [{ ...snap.processes[0], threads: [{ ...thread, blockedIn: { call: 'futex' } }] }] }, /blockedIn\.number must be a finite number/],
    [{ ...snap, processes: [{ ...snap.processes[0], threads: [{ ...thread, stack: [{ pc: 1, module: 2, offset: 0 }] }] }] }, /threads\[0\]\.stack\[0\]\.module must be a string or null, got 2/],
    [{ ...snap, processes: [{ ...snap.processes[0], threads: [{ ...thread, tid: 1.5 }] }] }, /threads\[0\]\.tid must be an integer, got 1\.5/],
    [{ ...snap, accelerators: [{ ...accelerator, power: { ...accelerator.power, state: true } }] }, /accelerators\[0\]\.power\.state must be a number or a string, got boolean/],
    [{ ...snap, accelerators: [{ ...accelerator, queues: [null] }] }, /accelerators\[0\]\.queues\[0\] must be an object, got null/],
    [{ ...snap, accelerators: [{ ...accelerator, properties: { a: [undefined] } }] }, /accelerators\[0\]\.properties\.a\[0\] must be a property value/],
    [{ ...snap, accelerators: [{ ...accelerator, properties: [] }] }, /accelerators\[0\]\.properties must be an object, got an array/],
    [{ ...snap, accelerators: [{ ...accelerator, busy: 'x' }] }, /accelerators\[0\]\.busy must be an object or null, got "x"/],
    [{ ...snap, monotonicNs: Infinity }, /monotonicNs must be a finite number, got Infinity/],
  ];
  for (const [value, pattern] of cases) t.throws(() => validateSnapshot(value), { code: 'EINVAL', message: pattern }, String(pattern));
  // Threads take a hand-written fast path first: every field it reads must still be refused when wrong.
  const badThreads: [Record<string, unknown>, string][] = [
    [{ name: 5 }, 'name'],
    [{ state: null }, 'state'],
    [{ userNs: '1' }, 'userNs'],
    [{ systemNs: Number.NaN }, 'systemNs'],
    [{ contextSwitches: { voluntary: 'x', involuntary: 1 } }, 'contextSwitches.voluntary'],
    [{ contextSwitches: [] }, 'contextSwitches'],
    [{ suspendCount: 'x' }, 'suspendCount'],
    [{ blockedIn: { call: 'read', number: 0, fd: 'x' } }, 'blockedIn.fd'],
    [{ blockedIn: { call: 'read', number: 0, target: 5 } }, 'blockedIn.target'],
    [{ blockedIn: { call: 5, number: 0 } }, 'blockedIn.call'],
    [{ cpuNs: 'x' }, 'cpuNs'],
    [{ wchan: 5 }, 'wchan'],
    [{ pc: 'x' }, 'pc'],
    [{ kernelStack: [5] }, 'kernelStack[0]'],
    [{ tid: 2 ** 53 }, 'tid'],
  ];
  for (const [over, field] of badThreads) {
    const bad = { ...snap, processes: [{ ...snap.processes[0], threads: [thread, { ...thread, ...over }] }] };
    t.throws(() => validateSnapshot(bad), { code: 'EINVAL', message: new RegExp(`processes\\[0\\]\\.threads\\[1\\]\\.${field.replace(/[[\]]/g, '\\$&')} must be`) }, field);
  }
  const full = { ...thread, cpuNs: 5, wchan: 'futex_wait', pc: 4096, stack: [{ pc: 4096, module: null, offset: 0 }], kernelStack: ['schedule'], blockedIn: { call: 'read', number: 0, fd: 3, target: 'pipe:[1]' } };
  t.ok(validateSnapshot({ ...snap, processes: [{ ...snap.processes[0], threads: [full] }] }), 'every optional thread field, well formed, passes');
  await t.rejects(readSnapshot(JSON.stringify(snap).replace('"monotonicNs":123', '"monotonicNs":1e400')), { code: 'EINVAL', message: /monotonicNs must be a finite number, got Infinity/ });
  let deep: unknown = 1;
  for (let i = 0; i < 5000; i++) deep = [deep];
  t.throws(() => validateSnapshot({ ...snap, accelerators: [{ ...accelerator, properties: { deep } }] }), { code: 'EINVAL', message: /nested no deeper than 4096 levels/ });
});
