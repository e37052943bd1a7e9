/**
 * `iokit-snap exec` on long healthy commands and wrapper scripts, through the real binary
 * (bin/iokit-snap.js, built by `npm run build`): a still-healthy command is reported once per
 * change of verdict, with one save directory per run; a command that exec()s another program
 * gets a new baseline, not a finding; --json says what became of the command.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { killQuietly } from '../src/proctree';
import { spawnCli } from './helpers/cli';
import { targetBinary } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test target (test/targets/target.c) is a Linux program';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-exec-verdict-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('a long healthy command: one report, nothing saved unless --save; --json says it is waiting', async (t) => {
  const ownTmp = path.join(tmp, 'tmpdir');
  fs.mkdirSync(ownTmp);
  const [text, json] = await Promise.all([
    // Examined every 700 ms for about 3 s: four examinations or more, all healthy.
    spawnCli(['exec', '--timeout', '700ms', '--no-accelerators', '--', 'sh', '-c', 'sleep 3; exit 4'], { env: { TMPDIR: ownTmp } }),
    spawnCli(['exec', '--json', '--timeout', '500ms', '--no-accelerators', '--save', path.join(tmp, 'json'), '--', 'sh', '-c', 'sleep 1.5']),
  ]);
  t.equal(text.code, 4, text.stderr);
  t.equal(text.stderr.match(/HEALTHY/g)?.length, 1, `reported once: ${text.stderr}`);
  t.equal(text.stderr.match(/still running after/g)?.length, 1);
  t.match(text.stderr, /making progress: waiting for it to finish \(examined every 700 ms; reported again only if the verdict changes\)/);
  t.notMatch(text.stderr, /saved/, 'a healthy run without --save keeps nothing, and says nothing of it');
  t.same(fs.readdirSync(ownTmp), [], 'no iokit-snap-exec-* folder left in the temporary directory');

  t.equal(json.code, 0, json.stderr);
  const lines = json.stderr.trim().split('\n').map((line) => JSON.parse(line));
  t.equal(lines.length, 1, 'one JSON line per change of verdict');
  t.equal(lines[0].report.verdict, 'healthy');
  t.equal(lines[0].outcome, 'waiting');
  t.equal(lines[0].saved, path.join(tmp, 'json'), '--save DIR: saved whatever the verdict');
  t.same(fs.readdirSync(path.join(tmp, 'json')).sort(), ['baseline.json', 'hung.json', 'report.json']);
});

t.test('--no-save keeps nothing, even of a hung command; --save with --no-save, or --save -, is a usage error', { skip: linux }, async (t) => {
  const ownTmp = path.join(tmp, 'no-save-tmpdir');
  fs.mkdirSync(ownTmp);
  const run = await spawnCli(['exec', '--json', '--no-save', '--kill', '--timeout', '1s', '--no-accelerators', '--', await targetBinary(), 'deadlock'], {
    env: { TMPDIR: ownTmp },
  });
  t.equal(run.code, 2, run.stderr);
  const last = JSON.parse(run.stderr.trim().split('\n').pop()!);
  t.equal(last.report.verdict, 'hung');
  t.equal(last.saved, null);
  t.notOk('saveError' in last, 'not a failure: nothing was to be saved');
  t.same(fs.readdirSync(ownTmp), []);
  for (const argv of [
    ['exec', '--no-save', '--save', path.join(tmp, 'x'), '--', 'true'],
    ['exec', '--save', '-', '--', 'true'],
  ]) {
    const usage = await spawnCli(argv);
    t.equal(usage.code, 64, usage.stderr);
    t.match(usage.stderr, /^iokit-snap exec: --save /);
  }
});

t.test('a wrapper script that exec()s the real program: a new baseline, not a finding; left running, and --json says so', { skip: linux }, async (t) => {
  const shim = path.join(tmp, 'shim');
  // Like a `python3` shim: a shell that does some setup, then becomes the program (same pid).
  // The setup outlasts the baseline taken one stall before the deadline (at 2.95 s of 5 s), and
  // leaves the program most of that stall to reach its deadlock before the deadline.
  fs.writeFileSync(shim, `#!/bin/sh\nsleep 3.2\nexec ${await targetBinary()} deadlock\n`, { mode: 0o755 });
  const run = await spawnCli(['exec', '--json', '--timeout', '5s', '--stall', '2s', '--no-accelerators', '--save', path.join(tmp, 'shim-save'), '--', shim]);
  const lines = run.stderr.trim().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
  t.ok(lines.length > 0, run.stderr);
  const last = lines[lines.length - 1];
  t.teardown(() => killQuietly(last.pid));
  t.equal(run.code, 2, run.stderr);
  t.same(lines.map((line) => line.report.verdict), ['hung'], 'hung at the first examination: the shell was not the baseline of the program');
  t.equal(last.outcome, 'left-running');
  t.doesNotThrow(() => process.kill(last.pid, 0), 'still running');
  const stalled = last.report.findings.filter((f: { kind: string; subject: string }) => f.kind === 'stalled' && f.subject.includes('(target)'));
  t.equal(stalled.length, 2, 'the two deadlocked threads of the program');
  t.ok(
    last.report.findings.some((f: { kind: string; subject: string; message: string }) => f.kind === 'waiting' && f.subject.includes('(main)') && /^joining thread \d+/.test(f.message)),
    'and its main thread, which joins one of them',
  );
  t.notOk(last.report.findings.some((f: { subject: string }) => f.subject.includes('(shim)') || f.subject.includes('(sh)')), 'nothing about the shell it was');
});
