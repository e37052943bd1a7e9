import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { parseDuration, parsePid, UsageError } from '../src/cli/args';
import { acceleratorTable } from '../src/cli/accelerator-table';
import { colorEnabled, cpuPercent, formatBytes, formatNs, stackLines, threadTable, topFrames } from '../src/cli/format';
import { limitLines } from '../src/cli/notes';
import { processIO, write } from '../src/cli/io';
import { validateSnapshot } from '../src/snapshot-file';
import type { Accelerator, ThreadSample } from '../src/types';
import { runCli, spawnCli } from './helpers/cli';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));

t.test('--version and --help', async (t) => {
  const v = await runCli(['--version']);
  t.equal(v.code, 0);
  t.equal(v.stdout, `${pkg.version}\n`);
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Commands:\n {2}accelerators/);
  t.match(help.stdout, /Exit codes: 0 ok, 1 error, 2 hung or suspect/);
  const commandHelp = await runCli(['help', 'threads']);
  t.match(commandHelp.stdout, /^Usage: iokit-snap threads <pid>/);
  const flagHelp = await runCli(['snapshot', '--help']);
  t.match(flagHelp.stdout, /^Usage: iokit-snap snapshot/);
  // After `--` a -h is the command's own (exec -- psql -h HOST): it runs, and its exit status is passed on.
  const passed = await runCli(['exec', '--no-save', '--no-accelerators', '--timeout', '30s', '--', 'sh', '-c', 'exit 3', 'sh', '-h']);
  t.equal(passed.code, 3, passed.stderr);
  t.notMatch(passed.stdout, /^Usage:/);
});

t.test('usage errors exit 64 and say what was wrong', async (t) => {
  const unknown = await runCli(['frobnicate']);
  t.equal(unknown.code, 64);
  t.match(unknown.stderr, /unknown command "frobnicate"/);
  const badOption = await runCli(['--bogus']);
  t.equal(badOption.code, 64);
  t.match(badOption.stderr, /^iokit-snap accelerators: unknown option --bogus\nUsage: iokit-snap \[accelerators\]/);
  const badPid = await runCli(['threads', '0']);
  t.equal(badPid.code, 64);
  t.match(badPid.stderr, /pid must be a process id/);
  const noPid = await runCli(['threads']);
  t.equal(noPid.code, 64);
  const badDuration = await runCli(['--timeout', 'soon']);
  t.equal(badDuration.code, 64);
  t.match(badDuration.stderr, /--timeout takes a duration/);
});

// CI and development machines here have no GPU; a Mac always has an IOAccelerator.
const linux = process.platform === 'linux' ? false : 'sysfs is the Linux backend';

t.test('the default command on this machine (no GPU): says so, exits 0', { skip: linux }, async (t) => {
  const run = await runCli([]);
  t.equal(run.code, 0);
  t.equal(run.stdout, 'No accelerators found on this machine.\n');
});

t.test('--json prints a valid iokit-snap/1 snapshot', async (t) => {
  const run = await runCli(['--json']);
  t.equal(run.code, 0);
  const snap = validateSnapshot(JSON.parse(run.stdout));
  t.equal(snap.format, 'iokit-snap/1');
  t.equal(snap.host.platform, process.platform);
  if (process.platform === 'linux') t.same(snap.accelerators, []);
  t.ok(Date.parse(snap.takenAt) > 0);
});

t.test('snapshot -o writes a file; a dead pid is a limit in it, and exit 1 as for threads', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'snap.json');
  // pid_max is at most 2^22 on Linux: this pid cannot exist. The real binary, and `threads` on the same pid.
  const [run, threads] = await Promise.all([
    spawnCli(['snapshot', '-o', file, '--pid', '2147483646', '--no-accelerators']),
    spawnCli(['threads', '2147483646']),
  ]);
  t.equal(run.code, 1);
  t.equal(threads.code, 1, 'same input, same outcome');
  const said = /^iokit-snap threads: (E[A-Z]+): (.*)$/m.exec(threads.stderr);
  t.ok(said, threads.stderr);
  t.match(run.stderr, `iokit-snap snapshot: ${said?.[1]}: ${said?.[2]}`);
  t.match(run.stderr, /wrote .*snap\.json/);
  const snap = validateSnapshot(JSON.parse(fs.readFileSync(file, 'utf8')));
  t.same(snap.processes, []);
  t.equal(snap.limits.length, 1);
  t.equal(snap.limits[0].subject, 'pid 2147483646');
  t.match(run.stderr, /pid 2147483646: threads unavailable/);
  // --json is taken by every command, snapshot included: with -o, the snapshot is printed too.
  const json = await runCli(['snapshot', '--json', '-o', path.join(dir, 'both.json'), '--no-accelerators']);
  t.equal(json.code, 0, json.stderr);
  t.same(validateSnapshot(JSON.parse(json.stdout)), validateSnapshot(JSON.parse(fs.readFileSync(path.join(dir, 'both.json'), 'utf8'))));
});

t.test('runtime errors exit 1 with the error code', async (t) => {
  const run = await runCli(['threads', '2147483646']);
  t.equal(run.code, 1);
  t.match(run.stderr, /^iokit-snap threads: E[A-Z]+: /);
});

t.test('the real binary runs, and NO_COLOR / FORCE_COLOR decide colour', async (t) => {
  const run = await spawnCli(['--json']);
  t.equal(run.code, 0);
  validateSnapshot(JSON.parse(run.stdout));
  t.equal(colorEnabled({ isTTY: true }, {}), true);
  t.equal(colorEnabled({ isTTY: true }, { NO_COLOR: '1' }), false);
  t.equal(colorEnabled({ isTTY: false }, { FORCE_COLOR: '1' }), true);
  t.equal(colorEnabled({ isTTY: true }, { TERM: 'dumb' }), false);
  t.equal(colorEnabled({ isTTY: false }, {}), false);
});

t.test('durations and pids', async (t) => {
  t.equal(parseDuration('500ms', '--x'), 500);
  t.equal(parseDuration('5s', '--x'), 5000);
  t.equal(parseDuration('2m', '--x'), 120000);
  t.equal(parseDuration('1.5h', '--x'), 5400000);
  t.throws(() => parseDuration('250', '--x'), /--x 250 has no unit: write 250s for seconds/);
  t.equal(parseDuration('2147483647ms', '--x'), 2 ** 31 - 1);
  t.throws(() => parseDuration('2147483648ms', '--x'), /too long: at most 24\.8 days/);
  t.throws(() => parseDuration('0s', '--x'), UsageError);
  t.throws(() => parseDuration('-1s', '--x'), /--x takes a duration/);
  t.equal(parsePid('42'), 42);
  t.throws(() => parsePid('4.2'), UsageError);
});

t.test('tables show what the model holds, honestly labelled', async (t) => {
  const m4: Accelerator = {
    id: '0x100000478',
    name: 'AGXAcceleratorG16G',
    className: 'AGXAcceleratorG16G',
    classChain: ['AGXAcceleratorG16G'],
    vendor: 'Apple',
    model: 'Apple M4',
    busy: { count: 0, timeNs: 752e6 },
    serviceState: { registered: true, matched: true, active: true },
    power: { state: 1, maxState: 1, desiredState: null, capabilityFlags: 2, runtimeStatus: null },
    probeScore: 10000,
    utilization: { devicePercent: 17, rendererPercent: 15, tilerPercent: 15 },
    memory: { inUseBytes: 430571520, allocatedBytes: 4597121024 },
    recovery: { count: 0, lastTime: 0 },
    queues: [
      { id: 25, submitted: 619246, finished: 619245, state: 'Idle' },
      { id: 26, submitted: 554668, finished: 554667, state: 'Idle' },
    ],
  };
  const nvidia: Accelerator = {
    ...m4,
    id: '0000:01:00.0',
    name: '0000:01:00.0',
    className: 'nvidia',
    vendor: 'NVIDIA',
    model: null,
    busy: null,
    power: { state: 'D0', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'active', performanceState: 0 },
    utilization: { devicePercent: 99, rendererPercent: null, tilerPercent: null },
    recovery: null,
    queues: null,
  };
  const text = acceleratorTable([m4, nvidia, { ...nvidia, utilization: null, power: null }], { color: false });
  const lines = text.split('\n');
  t.match(lines[0], /^ID +NAME \(CLASS\) +MODEL +SVC-BUSY +POWER +UTIL +RECOVERIES +QUEUES$/);
  t.match(lines[1], /0x100000478 +AGX.*G16G +Appl.* +0 \(752 ms\) +1\/1 +17\/15\/15% +0 +2: 2 pending/);
  t.match(lines[2], /0000:01:00\.0 .* +D0 active P0 +99% +- +-/);
  t.match(lines[3], /NVI.* +- +- +- +- +-$/);
  t.ok(Math.max(...lines.map((l) => l.length)) <= 100, "at most 100 columns");
  const threads: ThreadSample[] = [
    { tid: 7, name: 'main', state: 'sleeping', userNs: 1e6, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: { call: 'read', number: 0, fd: 3, target: '/tmp/fifo' } },
    { tid: 8, name: null, state: 'running', userNs: 0, systemNs: 0, cpuNs: 2.5e9, contextSwitches: null, suspendCount: null, blockedIn: null },
    { tid: 9, name: 'w', state: 'uninterruptible', userNs: 0, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: null, wchan: 'do_wait' },
  ];
  const threadText = threadTable(threads, { color: true });
  t.match(threadText, /TID +NAME +STATE +CPU TOTAL +BLOCKED IN +TARGET/, 'the CPU time is labelled cumulative');
  t.match(threadText, /7 +main +sleeping +1\.0 ms +read +\/tmp\/fifo/);
  t.match(threadText, /8 +- +\u001b\[32mrunning\u001b\[0m +2\.50 s +- +-/);
  t.match(threadText, /\(do_wait\)/);
  const rates = cpuPercent({ sampledAtNs: 0, threads: threads.slice(0, 2) }, { sampledAtNs: 1e9, threads: threads.map((th) => ({ ...th, cpuNs: (th.cpuNs ?? 1e6) + 5e8 })) });
  t.same([...rates], [[7, 50], [8, 50]], 'a thread only in the second sample has no rate');
  const rated = threadTable(threads, { color: false }, rates);
  t.match(rated, /TID +NAME +STATE +%CPU +CPU TOTAL/);
  t.match(rated, /\n9 +w +uninterruptible +- +0 ms/);
  t.same([...cpuPercent({ sampledAtNs: 5, threads }, { sampledAtNs: 5, threads })], [], 'no interval, no rate');
  // Stacks: a named frame, one with a module but no symbol, one outside any file, an imported one with neither pc nor offset.
  const stacked: ThreadSample[] = [
    {
      ...threads[0]!,
      stack: [
        { pc: 0x7f0000001000, module: '/usr/lib/libc.so.6', offset: 0xf82ec, symbol: 'read', symbolOffset: 76 },
        { pc: 0x5600000012e6, module: '/opt/app/bin/app', offset: 0x12e6 },
        { pc: 0x7f00deadbeef, module: null, offset: null },
        { pc: null, module: 'Metal', offset: null, symbol: '-[MTLCommandBuffer waitUntilCompleted]' },
      ],
    },
    { ...threads[1]!, stack: [] },
    threads[2]!,
  ];
  const stackText = stackLines(stacked, { color: false });
  t.equal(
    stackText,
    '\nthread 7 (main) sleeping, in read:\n' +
      '  #0  read + 76                               libc.so.6 +0xf82ec\n' +
      '  #1  0x5600000012e6                          app +0x12e6\n' +
      '  #2  0x7f00deadbeef\n' +
      '  #3  -[MTLCommandBuffer waitUntilCompleted]  Metal\n',
  );
  t.equal(stackLines([{ ...threads[1]!, stack: [{ pc: null, module: null, offset: null }] }], { color: false }), '\nthread 8 (-) running:\n  #0  ?\n');
  t.equal(formatNs(null), '-');
  t.equal(formatNs(0), '0 ms');
  t.equal(formatNs(19.2e9), '19.2 s');
  t.equal(formatNs(185e9), '3 m 05 s');
  t.equal(formatBytes(null), '-');
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(430571520), '410.6 MiB');
  t.equal(
    limitLines([{ subject: 'accelerators', field: 'busy.timeNs', code: 'ENOTSUP', reason: 'whole ms', hint: 'use ioreg -a' }], { color: false }),
    'note: accelerators: busy.timeNs unavailable (ENOTSUP): whole ms — use ioreg -a\n',
  );
});

t.test('the accelerator table and snapshot over a fixture sysfs (Intel laptop)', { skip: linux }, async (t) => {
  const sysRoot = path.join(__dirname, 'fixtures', 'sys', 'intel-laptop');
  const run = await runCli(['--sys-root', sysRoot]);
  t.equal(run.code, 0);
  t.match(run.stdout, /^PCI +NODE +DRIVER +MODEL/);
  t.match(run.stdout, /0000:00:02\.0 +card0 +i915 +Intel/);
  const json = await runCli(['accelerators', '--json', '--properties', '--sys-root', sysRoot, '--timeout', '5s']);
  t.equal(json.code, 0);
  const snap = validateSnapshot(JSON.parse(json.stdout));
  t.ok(snap.accelerators.length >= 1);
  t.type(snap.accelerators[0].properties, 'object', '--properties attaches the raw tree');
  const missing = await runCli(['--sys-root', '/nonexistent-sys-root']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^iokit-snap accelerators: EINVAL: /);
});

t.test('table cells for transitions, partial utilization and unnamed drivers', async (t) => {
  const base: Accelerator = {
    id: 'x', name: 'n', className: '', classChain: [], vendor: null, model: null, busy: { count: 1, timeNs: null },
    serviceState: null, power: { state: 1, maxState: 2, desiredState: 2, capabilityFlags: null, runtimeStatus: null },
    probeScore: null, utilization: { devicePercent: null, rendererPercent: 40, tilerPercent: null }, memory: null,
    recovery: { count: 3, lastTime: null }, queues: [{ id: 1, submitted: 5, finished: 9, state: '' }],
  };
  const row = acceleratorTable([base, { ...base, utilization: { devicePercent: null, rendererPercent: null, tilerPercent: null } }], { color: false }).split('\n');
  t.match(row[1], /^x +n +- +1 +1\/2 →2 +-\/40\/-% +3 +1: 0 pending$/);
  t.match(row[2], /1\/2 →2 +- +3/);
});

t.test('threads: a table and JSON for a real sleeping process; snapshot to stdout', { skip: linux }, async (t) => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const pid = String(child.pid);
  // Poll until the child is asleep in clock_nanosleep (it may still be exec-ing, or just entering
  // the call: its syscall file names the call a moment before its state reads S).
  const asleep = new RegExp(`${pid} +sleep +sleeping +[0-9.]+ m?s +clock_nanosleep`);
  let table = await runCli(['threads', pid]);
  for (let i = 0; i < 200 && !asleep.test(table.stdout); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    table = await runCli(['threads', pid]);
  }
  t.equal(table.code, 0);
  t.match(table.stdout, new RegExp(`^pid ${pid} \\(sleep\\): 1 thread\n`));
  t.match(table.stdout, asleep);
  const json = await runCli(['threads', pid, '--json', '--basic', '--no-kernel-stacks', '--timeout', '10s']);
  t.equal(json.code, 0);
  const sample = JSON.parse(json.stdout);
  t.equal(sample.pid, child.pid);
  t.equal(sample.threads[0].state, 'sleeping');
  const snap = await runCli(['snapshot', '-p', pid, '--no-accelerators', '--stacks']);
  t.equal(snap.code, 0);
  t.equal(validateSnapshot(JSON.parse(snap.stdout)).processes[0].pid, child.pid);
  const bare = await runCli(['snapshot', '--no-accelerators', '--timeout', '10s']);
  t.same(validateSnapshot(JSON.parse(bare.stdout)).processes, [], 'no --pid: no processes');
  const own = await runCli(['threads', String(process.pid)]);
  t.match(own.stdout, /^pid \d+ \(node\): \d+ threads\n/, 'plural for a process with many threads');
});

t.test('output waits for a slow reader (back-pressure), so nothing is cut short', async (t) => {
  const slow = Object.assign(new PassThrough({ highWaterMark: 16 }), { isTTY: false });
  let received = '';
  const done = write(slow, 'x'.repeat(1000));
  setImmediate(() => slow.on('data', (chunk) => (received += chunk)));
  await done;
  t.equal(received.length, 1000);
});

t.test('the top frames under a finding: none when no stack was taken, and how many more there are', async (t) => {
  const plain = { color: false };
  const bare: ThreadSample = { tid: 7, name: 'w', state: 'sleeping', userNs: 0, systemNs: 0, contextSwitches: null, suspendCount: null, blockedIn: null };
  t.same(topFrames(bare, true, plain, '  '), { text: '', more: 0 }, 'neither a user nor a kernel stack: no lines');
  const deep = { ...bare, stack: [0, 1, 2, 3, 4, 5].map((i) => ({ pc: 0x1000 + i, module: '/usr/lib/libapp.so', offset: i, symbol: `f${i}` })) };
  const top = topFrames(deep, false, plain, '  ');
  t.equal(top.more, 2, 'six frames, four shown');
  t.match(top.text, /#0 +f0/);
  t.notMatch(top.text, /f4/);
});

t.test("this process's streams: stdin only when asked for, and then process.stdin", async (t) => {
  const io = processIO();
  t.equal(io.stdout, process.stdout);
  t.equal(io.stderr, process.stderr);
  t.equal(io.env, process.env);
  t.equal(io.stdin, process.stdin);
});
