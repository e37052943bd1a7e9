// `iokit-snap import <file|->` on the real captures: the real binary (needs `npm run build`),
// and in-process runs with their own stdin for the paths a child process would hide.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { acceleratorTable } from '../src/cli/accelerator-table';
import { importIoreg } from '../src/import';
import { validateSnapshot } from '../src/snapshot-file';
import { runCliWithStdin, spawnCli } from './helpers/cli';

const FIXTURES = path.join(__dirname, 'fixtures', 'ioreg');
const M4_FILE = path.join(FIXTURES, 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
const GOTCHA_FILE = path.join(FIXTURES, 'intel-hackintosh-MacBookPro15,2-ioreg-tree-IOAccelerator-named-IOServiceCompatibility-gotcha.txt');
const M4 = fs.readFileSync(M4_FILE, 'utf8');

t.test('the real binary prints the same table a live run prints for these accelerators', async (t) => {
  const result = await spawnCli(['import', path.relative(process.cwd(), M4_FILE)]);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout, acceleratorTable(importIoreg(M4).accelerators, { color: false }));
  t.match(result.stdout, /^ID +NAME \(CLASS\) +MODEL +SVC-BUSY +POWER +UTIL +RECOVERIES +QUEUES\n0x100000478 +AGXAcce…torG16G +Apple M4 +0 \(752 ms\) +1\/1 +17\/15\/15% +0 +2: 2 pending, Idle\n$/);
  t.match(result.stderr, /busy\.timeNs unavailable/);
  t.notMatch(result.stderr, /monotonicNs|processes|osRelease/, 'notes about the document, not the table, stay in the JSON');
});

t.test('stdin (-), --json, and a dump without accelerators', async (t) => {
  const json = await runCliWithStdin(['import', '-', '--json', '--properties'], M4);
  t.equal(json.code, 0);
  const snap = validateSnapshot(JSON.parse(json.stdout));
  t.equal(snap.accelerators[0].id, '0x100000478');
  t.equal(snap.accelerators[0].properties?.IOProbeScore, 10000);
  t.equal(json.stderr, '');

  const none = await runCliWithStdin(['import', GOTCHA_FILE]);
  t.equal(none.code, 0);
  t.equal(none.stdout, 'No accelerators in this ioreg output.\n');
  t.match(none.stderr, /accelerators: accelerators unavailable \(ENOENT\).*NAMED IOAccelerator/);
});

t.test('-o writes a snapshot that readSnapshot accepts', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-import-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm4.json');
  const written = await runCliWithStdin(['import', M4_FILE, '-o', file]);
  t.equal(written.code, 0);
  t.equal(written.stdout, '');
  t.match(written.stderr, /^wrote .*m4\.json: 1 accelerator\(s\)\n/);
  t.match(written.stderr, /snapshot: monotonicNs unavailable/);
  const snap = validateSnapshot(JSON.parse(fs.readFileSync(file, 'utf8')));
  t.equal(snap.accelerators[0].model, 'Apple M4');
  t.notOk('properties' in snap.accelerators[0]);

  const both = await runCliWithStdin(['import', M4_FILE, '-o', file, '--json']);
  t.equal(validateSnapshot(JSON.parse(both.stdout)).accelerators.length, 1, '-o and --json: both');
});

t.test('errors: usage 64, unreadable or malformed input 1 with what to do', async (t) => {
  const noFile = await runCliWithStdin(['import']);
  t.equal(noFile.code, 64);
  t.match(noFile.stderr, /import takes one file of ioreg output \(or - to read stdin\)/);
  const missing = await runCliWithStdin(['import', path.join(FIXTURES, 'no-such-file.txt')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^iokit-snap import: ENOENT: cannot read ioreg output .*no-such-file\.txt: no such file/);
  const directory = await runCliWithStdin(['import', FIXTURES]);
  t.match(directory.stderr, /EINVAL: ioreg output .* is a directory, not a regular file; pass a file, or - to read stdin/);
  const malformed = await runCliWithStdin(['import', '-'], `${M4}garbage\n`);
  t.equal(malformed.code, 1);
  t.match(malformed.stderr, /EINVAL: ioreg input, line 40: expected a node line/);
  const help = await runCliWithStdin(['help', 'import']);
  t.match(help.stdout, /^Usage: iokit-snap import <file\|->/);
});

t.test('an unreadable file is EACCES', { skip: process.getuid?.() === 0 ? 'root reads every file' : false }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-import-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'secret.txt');
  fs.writeFileSync(file, M4, { mode: 0o000 });
  const result = await runCliWithStdin(['import', file]);
  t.equal(result.code, 1);
  t.match(result.stderr, /EACCES: cannot read ioreg output .*: permission denied/);
});

t.test('a file the user may not read is EACCES, as Node says (simulated so it runs as root too)', async (t) => {
  const { importCommand } = t.mockRequire('../src/cli/commands/import', {
    'node:fs/promises': {
      open: async () => {
        throw Object.assign(new Error("EACCES: permission denied, open 'secret.txt'"), { code: 'EACCES' });
      },
    },
  }) as typeof import('../src/cli/commands/import');
  await t.rejects(importCommand.run(['secret.txt'], { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough(), env: {} }), {
    code: 'EACCES',
    message: /cannot read ioreg output secret\.txt: permission denied/,
  });
});
