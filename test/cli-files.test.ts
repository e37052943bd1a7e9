/**
 * The files the command writes, through the real binary (bin/iokit-snap.js, built by `npm run
 * build`): private to the user whatever the umask; `-o -` is stdout; a failure names the path
 * the user gave, with its own code (ENOENT, ENOSPC, EROFS), never a temporary file; and exec's
 * three files are saved together or not at all, never through a link at --save DIR, never
 * beside an older run's. The full and read-only disks are small tmpfs mounts made in a mount
 * namespace of their own (unshare -m), so nothing outlives the test.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { killQuietly } from '../src/proctree';
import { BIN, runCli, spawnCli, type CliRun } from './helpers/cli';
import { targetBinary } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test target (test/targets/target.c) and tmpfs mounts are Linux';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-files-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const M4 = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');

/** Run a shell script with the real command as "$@" (argv after the script's own $1). */
function sh(script: string, args: string[], cwd = tmp): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'test', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The pid of the command exec ran, from its report; killed at teardown in case it was left running. */
function commandPid(t: { teardown(fn: () => unknown): void }, stderr: string): number {
  const pid = Number(/\(pid (\d+)\)/.exec(stderr)?.[1]);
  if (pid > 0) t.teardown(() => killQuietly(pid));
  return pid;
}

t.test('output files are 0600 whatever the umask: snapshot -o, import -o, exec --save', { skip: linux }, async (t) => {
  const dir = path.join(tmp, 'modes');
  fs.mkdirSync(dir);
  const run = await sh(
    `umask 022; set -e; node "${BIN}" snapshot --no-accelerators -o snap.json; node "${BIN}" import "${M4}" -o import.json
     node "${BIN}" exec --kill --timeout 1s --no-accelerators --save saved -- "$1" deadlock || echo "exec: $?"`,
    [await targetBinary()],
    dir,
  );
  commandPid(t, run.stderr);
  t.match(run.stdout, /exec: 2/, run.stderr);
  for (const file of ['snap.json', 'import.json', 'saved/baseline.json', 'saved/hung.json', 'saved/report.json']) {
    t.equal(fs.statSync(path.join(dir, file)).mode & 0o777, 0o600, `${file}: readable by its owner only`);
  }
});

t.test('-o - writes to stdout, as - reads stdin: no file named "-"', async (t) => {
  const dir = path.join(tmp, 'dash');
  fs.mkdirSync(dir);
  const [snap, snapJson, imported] = await Promise.all([
    spawnCli(['snapshot', '--no-accelerators', '-o', '-'], { cwd: dir }),
    spawnCli(['snapshot', '--no-accelerators', '-o', '-', '--json'], { cwd: dir }),
    spawnCli(['import', M4, '-o', '-'], { cwd: dir }),
  ]);
  for (const run of [snap, snapJson, imported]) {
    t.equal(run.code, 0, run.stderr);
    t.equal(JSON.parse(run.stdout).format, 'iokit-snap/1', 'one snapshot on stdout');
    t.notMatch(run.stderr, /wrote/);
  }
  t.equal(JSON.parse(imported.stdout).accelerators.length, 1);
  t.same(fs.readdirSync(dir), [], 'nothing written in the working directory');
});

t.test('a missing directory is ENOENT about the path given, never a temporary file', async (t) => {
  const runs = await Promise.all([
    runCli(['snapshot', '--no-accelerators', '-o', '/nonexistent/dir/x.json']),
    runCli(['import', M4, '-o', '/nonexistent/dir/x.json']),
  ]);
  for (const [i, command] of ['snapshot', 'import'].entries()) {
    t.equal(runs[i].code, 1);
    t.equal(
      runs[i].stderr,
      `iokit-snap ${command}: ENOENT: cannot write snapshot /nonexistent/dir/x.json: no such directory /nonexistent/dir: create it first, or check the path\n`,
    );
  }
});

const mountable =
  process.platform !== 'linux'
    ? 'tmpfs mounts are Linux'
    : process.getuid?.() !== 0
      ? 'needs root, to mount a small tmpfs in a mount namespace'
      : spawnSync('unshare', ['-m', 'mount', '-t', 'tmpfs', 'tmpfs', tmp]).status !== 0
        ? 'unshare -m or mount is not allowed here'
        : false;

/**
 * In a mount namespace of its own: a tmpfs of 64 KiB at $D with `free` pages of 4 KiB left
 * (or read-only), then the script; its stdout ends with the files left in $D.
 */
function onSmallDisk(mount: { free: number } | 'read-only', script: string, args: string[]): Promise<CliRun> {
  const dir = fs.mkdtempSync(path.join(tmp, 'disk-'));
  const setup =
    mount === 'read-only'
      ? `mount -t tmpfs -o size=64k,ro tmpfs "$D"`
      : `mount -t tmpfs -o size=64k tmpfs "$D" && dd if=/dev/zero of="$D/fill" bs=4096 count=${16 - mount.free} 2>/dev/null`;
  return sh(
    `export D="$1"; shift; unshare -m bash -c '${setup} || exit 99; ${script.replace(/'/g, `'\\''`)}; echo "status $?"; echo "files:"; cd "$D" && find . -mindepth 1 ! -name fill | sort' test "$@"`,
    [dir, ...args],
  );
}

t.test('a full disk is ENOSPC and a read-only one EROFS, for -o and for exec --save', { skip: mountable }, async (t) => {
  const target = await targetBinary();
  const exec = `node "${BIN}" exec --kill --timeout 1s --no-accelerators --save "$D/evidence" -- "$1" deadlock`;
  const [full, readOnly, execFull, execReadOnly] = await Promise.all([
    onSmallDisk({ free: 0 }, `node "${BIN}" snapshot --no-accelerators -o "$D/x.json"`, []),
    onSmallDisk('read-only', `node "${BIN}" import "${M4}" -o "$D/x.json"`, []),
    // One page free: baseline.json (about 3 KB) fits, hung.json does not.
    onSmallDisk({ free: 1 }, exec, [target]),
    onSmallDisk('read-only', exec, [target]),
  ]);
  t.match(full.stderr, /^iokit-snap snapshot: ENOSPC: cannot write snapshot \S+\/x\.json: no space left on the file system that holds \S+: free some, or write elsewhere\n/);
  t.match(full.stdout, /status 1\nfiles:\n$/, 'exit status 1, and no temporary file left behind');
  t.match(readOnly.stderr, /^iokit-snap import: EROFS: cannot write snapshot \S+\/x\.json: \S+ is on a read-only file system: write elsewhere\n/);
  t.match(readOnly.stdout, /status 1\n/);

  commandPid(t, execFull.stderr);
  t.match(execFull.stderr, /HUNG/, 'the report still prints');
  t.match(execFull.stderr, /warning: not saved: ENOSPC: cannot write file \S+\/evidence\/hung\.json: no space left/);
  t.match(execFull.stdout, /status 2\nfiles:\n\.\/evidence\n$/, 'still hung (2); "not saved" is true: not even baseline.json is there');
  commandPid(t, execReadOnly.stderr);
  t.match(execReadOnly.stderr, /warning: not saved: EROFS: /);
  t.match(execReadOnly.stdout, /status 2\n/);
});

t.test('exec --save never follows a symbolic link at DIR, and never writes beside an earlier run\'s files', { skip: linux }, async (t) => {
  const victim = path.join(tmp, 'victim-dir');
  fs.mkdirSync(victim);
  const link = path.join(tmp, 'evidence-link');
  fs.symlinkSync(victim, link);
  const earlier = path.join(tmp, 'earlier');
  fs.mkdirSync(earlier);
  fs.writeFileSync(path.join(earlier, 'hung.json'), 'an earlier run\n');
  const target = await targetBinary();
  const [linked, beside] = await Promise.all(
    [link, earlier].map((dir) => spawnCli(['exec', '--kill', '--timeout', '1s', '--no-accelerators', '--save', dir, '--', target, 'deadlock'])),
  );
  for (const run of [linked, beside]) {
    commandPid(t, run.stderr);
    t.equal(run.code, 2, run.stderr);
  }
  t.match(linked.stderr, `warning: not saved: ELOOP: ${link} is a symbolic link (to ${victim}), and --save does not follow one: give the directory itself`);
  t.same(fs.readdirSync(victim), [], 'nothing written where the link points');
  t.match(beside.stderr, `warning: not saved: EEXIST: ${path.join(earlier, 'hung.json')} already exists, from another run: pass --force to replace it, or another --save DIR`);
  t.same(fs.readdirSync(earlier), ['hung.json'], 'no new baseline.json beside the old hung.json');
  t.equal(fs.readFileSync(path.join(earlier, 'hung.json'), 'utf8'), 'an earlier run\n');
});
