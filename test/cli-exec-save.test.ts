/**
 * `iokit-snap exec` when its evidence cannot be saved, and every output file against planted
 * symbolic links. The real binary (bin/iokit-snap.js, built by `npm run build`) on a real
 * deadlocked process: a save that fails is a warning, the report still prints, --kill still
 * kills, the exit status still says hung — and a link at an output path is never written through.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { writeSnapshot } from '../src/snapshot-file';
import { writeFileSafely } from '../src/write-file';
import type { Snapshot } from '../src/types';
import { BIN, spawnCli } from './helpers/cli';
import { killQuietly } from '../src/proctree';
import { targetBinary } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test target (test/targets/target.c) and /proc, /sys are Linux';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-exec-save-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** exec a deadlock with --kill; what it said, and whether the command is gone. */
async function execDeadlock(t: Test, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string; pid: number }> {
  const run = await spawnCli(['exec', '--timeout', '1s', '--kill', '--no-accelerators', ...extra, '--', await targetBinary(), 'deadlock'], { env });
  const pid = Number(/\(pid (\d+)\)|"pid":(\d+)/.exec(run.stderr)?.slice(1).find(Boolean));
  t.teardown(() => killQuietly(pid));
  t.ok(pid > 0, `the report names the pid: ${run.stderr}`);
  return { code: run.code, stderr: run.stderr, pid };
}

function checkUnsaved(t: Test, run: { code: number; stderr: string; pid: number }, why: RegExp): void {
  t.equal(run.code, 2, 'the exit status still says hung');
  t.match(run.stderr, /HUNG: 2 critical findings/, 'the report still prints');
  t.match(run.stderr, why);
  t.match(run.stderr, new RegExp(`killed pid ${run.pid}`));
  t.notOk(alive(run.pid), '--kill still killed it');
}

t.test('exec: a TMPDIR that does not exist is a warning, not a hang', { skip: linux }, async (t) => {
  const run = await execDeadlock(t, [], { TMPDIR: '/nonexistent-iokit-snap' });
  checkUnsaved(t, run, /warning: not saved: ENOENT: cannot create a directory in \/nonexistent-iokit-snap .*set TMPDIR to a writable directory, or pass --save DIR/);
});

t.test('exec: --save on /proc or /sys is refused at once (Node\'s recursive mkdir would spin there)', { skip: linux }, async (t) => {
  const [proc, sys] = await Promise.all([
    execDeadlock(t, ['--save', '/proc/iokit-snap-test/deeper']),
    execDeadlock(t, ['--save', '/sys/iokit-snap-test']),
  ]);
  checkUnsaved(t, proc, /warning: not saved: EINVAL: \/proc\/iokit-snap-test\/deeper is on \/proc, the kernel's proc file system/);
  checkUnsaved(t, sys, /warning: not saved: EINVAL: \/sys\/iokit-snap-test is on \/sys, the kernel's sysfs file system/);
  t.notOk(fs.existsSync('/sys/iokit-snap-test'));
});

t.test('exec: an unwritable --save is a warning; --json says so and what became of the command', { skip: linux }, async (t) => {
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'not a directory\n');
  const run = await execDeadlock(t, ['--json', '--save', path.join(file, 'sub')]);
  t.equal(run.code, 2);
  // The last line is the hung one (on a loaded machine the deadlock may still be forming at the first look: 'waiting').
  const lines = run.stderr.trim().split('\n').map((l) => JSON.parse(l));
  const line = lines[lines.length - 1];
  t.equal(line.saved, null);
  t.match(line.saveError, /^ENOTDIR: /);
  t.equal(line.outcome, 'killed');
  t.equal(line.report.verdict, 'hung');
  t.notOk(alive(run.pid));
});

t.test('exec: missing parents of --save are made one level at a time, private to the user', { skip: linux }, async (t) => {
  const dir = path.join(tmp, 'new', 'deeper');
  const run = await execDeadlock(t, ['--save', dir]);
  t.equal(run.code, 2);
  t.match(run.stderr, `saved: ${path.join(dir, 'baseline.json')}, hung.json, report.json`);
  t.equal(fs.statSync(path.join(tmp, 'new')).mode & 0o777, 0o700 & ~process.umask());
  t.same(fs.readdirSync(dir).sort(), ['baseline.json', 'hung.json', 'report.json'], 'no temporary files left');
});

t.test('exec --save never writes through a planted link: an existing file is refused unless --force', { skip: linux }, async (t) => {
  const dir = path.join(tmp, 'planted');
  fs.mkdirSync(dir);
  const victim = path.join(tmp, 'victim.txt');
  fs.writeFileSync(victim, 'precious\n');
  fs.symlinkSync(victim, path.join(dir, 'report.json'));
  fs.symlinkSync(path.join(tmp, 'dangling-victim'), path.join(dir, 'baseline.json'));

  const refused = await execDeadlock(t, ['--save', dir]);
  checkUnsaved(t, refused, /warning: not saved: EEXIST: .*baseline\.json already exists \(and report\.json\), from another run: pass --force to replace them, or another --save DIR/);
  t.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
  t.notOk(fs.existsSync(path.join(tmp, 'dangling-victim')), 'a dangling link is not followed either');

  const forced = await execDeadlock(t, ['--save', dir, '--force']);
  t.equal(forced.code, 2);
  t.match(forced.stderr, /saved: /);
  t.equal(fs.readFileSync(victim, 'utf8'), 'precious\n', 'the victim is untouched');
  t.notOk(fs.existsSync(path.join(tmp, 'dangling-victim')));
  for (const name of ['baseline.json', 'report.json']) t.ok(fs.lstatSync(path.join(dir, name)).isFile(), `${name}: the link was replaced by a file`);
  t.equal(JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8')).verdict, 'hung');
});

t.test('snapshot -o and import -o replace a planted link, never the file it points to', async (t) => {
  const victim = path.join(tmp, 'victim-o.txt');
  fs.writeFileSync(victim, 'precious\n');
  const snapshotLink = path.join(tmp, 'snap.json');
  const importLink = path.join(tmp, 'import.json');
  fs.symlinkSync(victim, snapshotLink);
  fs.symlinkSync(victim, importLink);
  const snap = await spawnCli(['snapshot', '--no-accelerators', '-o', snapshotLink]);
  t.equal(snap.code, 0, snap.stderr);
  const m4 = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');
  const imported = await spawnCli(['import', m4, '-o', importLink]);
  t.equal(imported.code, 0, imported.stderr);
  // The temporary name the old writeSnapshot used, `<path>.<pid>.tmp`, planted for the pid the
  // command will have: bash plants it with its own pid, then exec()s node, which keeps that pid.
  const planted = path.join(tmp, 'planted-pid.json');
  const plantedRun = await new Promise<number | null>((resolve) => {
    const child = spawn('bash', ['-c', 'ln -s "$1" "$2.$$.tmp" && exec "$3" "$4" snapshot --no-accelerators -o "$2"', 'plant', victim, planted, process.execPath, BIN], {
      stdio: 'ignore',
    });
    child.on('close', resolve);
  });
  t.equal(plantedRun, 0);
  t.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
  for (const file of [snapshotLink, importLink, planted]) {
    t.ok(fs.lstatSync(file).isFile());
    t.equal(JSON.parse(fs.readFileSync(file, 'utf8')).format, 'iokit-snap/1');
    t.equal(fs.statSync(file).mode & 0o777, 0o600, 'private to the user: a snapshot holds stacks and the address-space layout');
  }
});

t.test('writeSnapshot: the temporary file is not at a name anyone can plant in advance', async (t) => {
  const snapshot: Snapshot = {
    format: 'iokit-snap/1',
    takenAt: new Date().toISOString(),
    monotonicNs: 1,
    host: { platform: 'linux', arch: 'x64', osRelease: '6.1.0' },
    accelerators: [],
    processes: [],
    limits: [],
  } as unknown as Snapshot;
  const target = path.join(tmp, 'api.json');
  const victim = path.join(tmp, 'victim-api.txt');
  fs.writeFileSync(victim, 'precious\n');
  // The name the old writeSnapshot used for its temporary file.
  fs.symlinkSync(victim, `${target}.${process.pid}.tmp`);
  await writeSnapshot(target, snapshot);
  t.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
  t.equal(JSON.parse(fs.readFileSync(target, 'utf8')).monotonicNs, 1);

  await t.rejects(writeSnapshot(target, snapshot, { replace: false }), { code: 'EEXIST', message: `cannot write snapshot ${target}: ${target} already exists` });
  await t.rejects(writeFileSafely(path.join(tmp, 'no-such-dir', 'x.json'), '{}'), { code: 'ENOENT' });
  t.same(fs.readdirSync(tmp).filter((name) => name.startsWith('.api.json.') || name.startsWith('.x.json.')), [], 'nothing left behind');
});

t.test('the save helpers, one by one: a file where a directory is wanted, a directory where a file is, a process that is gone', async (t) => {
  const { makeDirectory, RunSaver } = await import('../src/cli/exec-save');
  const { changedPrograms, identities, processIdentity } = await import('../src/cli/process-identity');
  const file = path.join(tmp, 'plain-file');
  fs.writeFileSync(file, '');
  await t.rejects(makeDirectory(file), { code: 'ENOTDIR', message: /is not a directory/ });
  await makeDirectory(tmp);

  // baseline.json is a directory: with --force the rename fails (EISDIR), and that is what the warning says.
  const dir = path.join(tmp, 'dir-in-the-way');
  fs.mkdirSync(path.join(dir, 'baseline.json'), { recursive: true });
  const snapshot = JSON.parse(fs.readFileSync(path.join(tmp, 'api.json'), 'utf8'));
  const saved = await new RunSaver(dir, true, 1).save(snapshot, snapshot, { verdict: 'healthy', findings: [], processes: [], accelerators: { before: 0, after: 0 }, windowMs: 0, notes: [] });
  t.equal(saved.dir, null);
  t.match(saved.error, /EISDIR/);
  t.same(fs.readdirSync(dir), ['baseline.json'], 'no temporary file left');

  // hung.json is a directory: baseline.json is placed first, and the outcome says that much was saved.
  const partly = path.join(tmp, 'partly');
  fs.mkdirSync(path.join(partly, 'hung.json'), { recursive: true });
  const part = await new RunSaver(partly, true, 1).save(snapshot, snapshot, { verdict: 'hung', findings: [], processes: [], accelerators: { before: 0, after: 0 }, windowMs: 0, notes: [] });
  t.same({ dir: part.dir, files: part.files }, { dir: partly, files: ['baseline.json'] });
  t.match(part.error, /^EINVAL: cannot write file .*hung\.json: .*is a directory/);
  // A run that is looked at again (healthy, then hung) replaces its own files, and nothing else's.
  const again = path.join(tmp, 'again');
  const saver = new RunSaver(again, false, 1);
  const healthyReport = { verdict: 'healthy' as const, findings: [], processes: [], accelerators: { before: 0, after: 0 }, windowMs: 0, notes: [] };
  t.same((await saver.save(snapshot, snapshot, healthyReport)).files, ['baseline.json', 'hung.json', 'report.json']);
  const second = await saver.save(snapshot, snapshot, { ...healthyReport, verdict: 'hung' });
  t.same({ dir: second.dir, error: second.error }, { dir: again, error: null });
  t.equal(JSON.parse(fs.readFileSync(path.join(again, 'report.json'), 'utf8')).verdict, 'hung');
  await saver.close();
  const { savedLine } = await import('../src/cli/commands/exec');
  t.equal(savedLine(part, { color: false }), `  warning: saved only ${path.join(partly, 'baseline.json')}; the rest not: ${part.error}\n`);
  t.equal(savedLine({ dir: null, files: [], error: 'EIO: x' }, { color: false }), '  warning: not saved: EIO: x\n');
  t.equal(savedLine({ dir: '/d', files: ['baseline.json', 'hung.json', 'report.json'], error: null }, { color: false }), '  saved: /d/baseline.json, hung.json, report.json\n');

  // Only report.json is there: writing it, not a snapshot, is what is refused.
  const reportOnly = path.join(tmp, 'report-only');
  fs.mkdirSync(reportOnly);
  fs.writeFileSync(path.join(reportOnly, 'report.json'), '{}\n');
  const refused = await new RunSaver(reportOnly, false, 1).save(snapshot, snapshot, { verdict: 'healthy', findings: [], processes: [], accelerators: { before: 0, after: 0 }, windowMs: 0, notes: [] });
  t.match(refused.error, /^EEXIST: .*report\.json already exists, from another run: pass --force to replace it/);
  t.same(refused.files, []);
  t.same(fs.readdirSync(reportOnly), ['report.json'], 'nothing written beside it');
  t.equal(fs.readFileSync(path.join(reportOnly, 'report.json'), 'utf8'), '{}\n');

  t.equal(await processIdentity(0x7ffffffe), null, 'no such process: nothing to compare');
  if (process.platform === 'linux') t.match(await processIdentity(process.pid), /^node\0\//);
  const before = await identities([process.pid]);
  t.same(changedPrograms(before, before), []);
  t.same(changedPrograms(new Map([[1, 'sh\0/bin/sh']]), new Map([[1, 'python3\0/usr/bin/python3']])), [1]);
  t.same(changedPrograms(new Map([[1, null]]), new Map([[1, 'python3\0/usr/bin/python3']])), [], 'unknown before: no change claimed');
  t.same(changedPrograms(new Map(), new Map([[1, 'sh\0/bin/sh']])), [], 'new: not a change of program');
});
