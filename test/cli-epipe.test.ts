/**
 * A closed stdout (the reader of the pipe has gone: `iokit-snap watch --json | head -1`) ends
 * every command quietly with status 0, as `yes | head -1` does. The real binary
 * (bin/iokit-snap.js, built by `npm run build`), with a stdout whose first write fails.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { PassThrough } from 'node:stream';
import { main } from '../src/cli/main';
import { runCli, spawnCliClosedStdout } from './helpers/cli';
import { start } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test target (test/targets/target.c) is a Linux program';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-cli-epipe-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const M4 = path.join(__dirname, 'fixtures', 'ioreg', 'apple-m4-t8132-ioreg-r-d1-c-IOAccelerator-AGXAcceleratorG16G-near-full-no-IOReportLegend.txt');

t.test('a closed stdout (EPIPE) ends every command quietly with status 0', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const pid = String(target.pid);
  const runs: string[][] = [
    ['threads', pid],
    // Runs until stopped: its first line meets the closed pipe, and that stops it.
    ['watch', '--pid', pid, '--interval', '100ms', '--json', '--no-accelerators'],
  ];
  // Together: each is a node start, slow on a loaded machine. The in-process test below covers every path.
  const results = await Promise.all(runs.map((argv) => spawnCliClosedStdout(argv)));
  for (const [i, run] of results.entries()) {
    t.same({ code: run.code, stderr: run.stderr.replace(/^note: .*\n/gm, '') }, { code: 0, stderr: '' }, `iokit-snap ${runs[i].join(' ')}`);
  }
});

/** A stdout whose reader has gone: every write fails with EPIPE, as a pipe's does. */
function closedPipe(): PassThrough & { isTTY: boolean } {
  const stream = Object.assign(new PassThrough(), { isTTY: false });
  stream._write = (_chunk, _encoding, callback) => callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' }));
  return stream;
}

t.test('every output path of every command ends quietly on a closed stdout', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const pid = String(target.pid);
  const [snap, later] = [path.join(tmp, 'snap.json'), path.join(tmp, 'later.json')];
  t.equal((await runCli(['snapshot', '--pid', pid, '--no-accelerators', '-o', snap])).code, 0);
  t.equal((await runCli(['snapshot', '--pid', pid, '--no-accelerators', '-o', later])).code, 0);
  const runs: string[][] = [
    ['--version'],
    ['--help'],
    ['threads', '--help'],
    [],
    ['threads', pid],
    ['threads', pid, '--json'],
    ['snapshot', '--pid', pid, '--no-accelerators'],
    ['diff', snap, later],
    ['diff', snap, later, '--json'],
    ['import', M4],
    ['import', M4, '--json'],
    ['watch', '--pid', pid, '--interval', '100ms', '--json', '--no-accelerators'],
    ['watch', '--pid', pid, '--interval', '100ms', '--no-accelerators'],
  ];
  for (const argv of runs) {
    const stderr = Object.assign(new PassThrough(), { isTTY: false });
    let said = '';
    stderr.on('data', (chunk) => (said += chunk));
    const code = await main(argv, { stdout: closedPipe(), stderr, stdin: new PassThrough(), env: {} });
    t.same({ code, stderr: said.replace(/^note: .*\n/gm, '') }, { code: 0, stderr: '' }, `iokit-snap ${argv.join(' ')}`);
  }
});

t.test('stdout failing otherwise (a full disk) is said on stderr, status 1; a closed stderr is ignored', async (t) => {
  const full = Object.assign(new PassThrough(), { isTTY: false });
  full._write = (_chunk, _encoding, callback) => callback(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  const stderr = Object.assign(new PassThrough(), { isTTY: false });
  let said = '';
  stderr.on('data', (chunk) => (said += chunk));
  t.equal(await main(['--version'], { stdout: full, stderr, stdin: new PassThrough(), env: {} }), 1);
  t.equal(said, 'iokit-snap: cannot write the output: ENOSPC: no space left on device, write\n');
  const out = Object.assign(new PassThrough(), { isTTY: false });
  let printed = '';
  out.on('data', (chunk) => (printed += chunk));
  t.equal(await main(['threads', '--bogus'], { stdout: out, stderr: closedPipe(), stdin: new PassThrough(), env: {} }), 64);
  t.equal(printed, '');
});
