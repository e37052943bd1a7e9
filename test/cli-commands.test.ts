/**
 * Every command behaves like a Unix command: an argument it does not take is a usage error
 * (64); a failure has the same exit status with --json and without; a process that cannot be
 * watched is an error before any status line, never "healthy"; watch's status line fits the
 * terminal and a summary follows it when it stops; threads --interval --json carries the %CPU
 * it measured; a thread that joins another names it. Real processes, in-process CLI runs.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { fitted } from '../src/cli/commands/watch';
import { COMMANDS } from '../src/cli/main';
import { runCli, type CliStreams } from './helpers/cli';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the test targets (test/targets/target.c) are Linux programs';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-commands-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const GONE = String(0x7ffffffe);
const OTHER = path.join(tmp, 'other.txt');
fs.writeFileSync(OTHER, 'no document of any kind\n');

t.test('an argument a command does not take is a usage error, for every command', async (t) => {
  const extra: Record<string, string[]> = {
    accelerators: ['accelerators', 'extra'],
    threads: ['threads', '1', '2'],
    snapshot: ['snapshot', 'extra'],
    diff: ['diff', OTHER, OTHER, OTHER],
    watch: ['watch', '--pid', '1', 'extra'],
    exec: ['exec', '--kill'],
    import: ['import', OTHER, OTHER],
    explain: ['explain', OTHER, OTHER],
    serve: ['serve', 'extra'],
  };
  const defaultCommand = await runCli(['--json', 'extra']);
  t.equal(defaultCommand.code, 64, 'the default command too');
  for (const command of COMMANDS) {
    const argv = extra[command.name];
    t.ok(argv, `a case for ${command.name}`);
    if (argv === undefined) continue;
    const run = await runCli(argv);
    t.equal(run.code, 64, `${argv.join(' ')}: ${run.stderr}`);
    t.match(run.stderr, new RegExp(`^iokit-snap ${command.name}: `));
    t.match(run.stderr, /\n\(iokit-snap .*--help for the options\)\n$/);
  }
});

t.test('the same failure has the same exit status with --json and without, for every command', async (t) => {
  // A port in use, for serve's failure to start.
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const port = (busy.address() as net.AddressInfo).port;
  const failing: Record<string, [string[], number]> = {
    accelerators: [['accelerators', '--sys-root', path.join(tmp, 'nonexistent')], 1],
    threads: [['threads', GONE], 1],
    snapshot: [['snapshot', '--no-accelerators', '--pid', GONE], 1],
    diff: [['diff', OTHER, OTHER], 1],
    watch: [['watch', '--pid', GONE, '--no-accelerators'], 1],
    exec: [['exec', '--', path.join(tmp, 'no-such-program')], 127],
    import: [['import', OTHER], 1],
    explain: [['explain', OTHER], 1],
    serve: [['serve', '--listen', `127.0.0.1:${port}`, '--no-accelerators'], 1],
  };
  for (const command of COMMANDS) {
    const [argv, status] = failing[command.name] ?? [[], -1];
    t.ok(argv.length > 0, `a case for ${command.name}`);
    if (argv.length === 0) continue;
    const [plain, json] = await Promise.all([runCli(argv), runCli([...argv, '--json'])]);
    t.equal(plain.code, status, `${argv.join(' ')}: ${plain.stderr}`);
    t.equal(json.code, status, `${argv.join(' ')} --json: ${json.stderr}`);
    t.match(json.stderr, new RegExp(`^iokit-snap ${command.name}: [A-Z]+: `, 'm'), 'said on stderr in the CMD: CODE: message form');
  }
  const pciIds = [['accelerators', '--pci-ids', path.join(tmp, 'no-pci.ids')], ['accelerators', '--json', '--pci-ids', path.join(tmp, 'no-pci.ids')]];
  const [table, json] = await Promise.all(pciIds.map((argv) => runCli(argv)));
  t.same([table.code, json.code], [64, 64], 'a bad --pci-ids is the same usage error with --json');
});

t.test('watch: a process that cannot be sampled at the start is an error before any status line, never "healthy"', { skip: linux }, async (t) => {
  const live = await start(t, 'sleep');
  const [text, json, tty, one] = await Promise.all([
    runCli(['watch', '--pid', GONE, '--no-accelerators']),
    runCli(['watch', '--pid', GONE, '--no-accelerators', '--json']),
    runCli(['watch', '--pid', GONE, '--no-accelerators'], {}, true),
    runCli(['watch', '--pid', String(live.pid), '--pid', GONE, '--no-accelerators', '--for', '5s']),
  ]);
  for (const run of [text, tty, one]) {
    t.equal(run.code, 1);
    t.equal(run.stdout, '', 'no status line, no summary');
    // eslint-disable-next-line no-control-regex -- a terminal's stderr is painted
    t.equal(run.stderr.replace(/\u001b\[[0-9;]*m/g, ''), `iokit-snap watch: ESRCH: no process with pid ${GONE}; it may have exited\n`);
  }
  t.equal(json.code, 1);
  const events = json.stdout.trim().split('\n').map((line) => JSON.parse(line));
  t.same(
    events.map((e) => e.type),
    ['error'],
    'the error event, and no sample saying healthy',
  );
});

t.test('watch on a terminal: the status line fits its width; a summary when it stops (--for, Ctrl-C)', { skip: linux }, async (t) => {
  const target = await start(t, 'threads', ['4', 'spin']);
  const columns = 60;
  const timed = await runCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--for', '800ms', '--no-accelerators'], {}, true, undefined, undefined, columns);
  t.equal(timed.code, 0, timed.stderr);
  const drawn = timed.stdout.split('\r\u001b[K').filter((piece) => piece !== '');
  t.ok(drawn.length >= 2, `status lines and the summary: ${JSON.stringify(timed.stdout)}`);
  for (const line of drawn.slice(0, -1)) t.ok(line.length < columns, `fits ${columns} columns: ${JSON.stringify(line)}`);
  t.match(drawn[drawn.length - 1], new RegExp(`^\\S+ watched pid ${target.pid} for [0-9.]+ m?s: \\d+ samples, 0 hangs, healthy at the end\\n$`), 'the summary, after the line is erased');

  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const running = runCli(['watch', '--pid', String(target.pid), '--interval', '100ms', '--no-accelerators'], {}, true, signals, (s) => (streams = s), columns);
  await waitFor(() => (streams?.stdout() ?? '').includes('watching pid'), 'a status line');
  signals.emit('SIGINT');
  const stopped = await running;
  t.equal(stopped.code, 0);
  t.match(stopped.stdout, new RegExp(`\\r\\u001b\\[K\\S+ watched pid ${target.pid} for [0-9.]+ m?s: \\d+ samples?, 0 hangs, healthy at the end\\n$`), 'Ctrl-C: the summary too');

  t.equal(fitted('abcdef', 10), 'abcdef');
  t.equal(fitted('abcdefghij', 10), 'abcdefgh…', 'the last column left free');
  t.equal(fitted('abcdefghij', undefined), 'abcdefghij', 'no width known: as is');
  t.equal(fitted('abcdefghij', 1), 'abcdefghij', 'a width that holds nothing: as is');
  t.equal(fitted('ab\u{1F600}\u{1F600}cdef', 5), 'ab\u{1F600}…', 'never cut inside a character');
});

t.test('threads --interval --json has the %CPU it measured; a thread that joins another names it', { skip: linux }, async (t) => {
  const spin = await start(t, 'threads', ['2', 'spin']);
  const run = await runCli(['threads', String(spin.pid), '--interval', '300ms', '--json', '--no-kernel-stacks']);
  t.equal(run.code, 0, run.stderr);
  const sample = JSON.parse(run.stdout);
  t.equal(sample.intervalMs, 300);
  t.equal(sample.cpu.length, 3, 'every thread');
  t.match(sample.cpu[0], { pid: spin.pid, tid: spin.pid, name: 'target' }, 'the spinner first');
  t.ok(sample.cpu[0].percent > 0, `it used CPU: ${sample.cpu[0].percent}`);
  // The sleepers next, with next to nothing (one may still be on its way into its sleep at the first sample).
  for (const sleeper of sample.cpu.slice(1)) t.ok(sleeper.percent < 1, `a sleeper: ${sleeper.percent}`);
  const once = JSON.parse((await runCli(['threads', String(spin.pid), '--json', '--no-kernel-stacks'])).stdout);
  t.notOk('cpu' in once, 'one sample: no rate');

  const joiner = await start(t, 'join-sleeper');
  const table = await waitFor(async () => {
    const r = await runCli(['threads', String(joiner.pid), '--no-kernel-stacks']);
    return new RegExp(`\\n${joiner.pid} +target +sleeping .* futex +joins thread \\d+\\n`).test(r.stdout) && r;
  }, 'the main thread joining');
  const worker = /joins thread (\d+)/.exec(table.stdout)![1];
  t.match(table.stdout, new RegExp(`\\n${worker} +target `), 'the thread it joins is in the table');
});

t.test('watch: a process that stops being readable after its first sample (a setuid exec) is an error line, and exit 1', async (t) => {
  const sample = await import('../src/sample');
  const { IokitSnapError } = await import('../src/errors');
  // Its first sample as any process gives one; then what reading a setuid program's /proc files gives.
  const fake = (pid: number) => {
    let taken = 0;
    return {
      pid,
      sample: async () => {
        if (taken++ > 0) throw new IokitSnapError('EPERM', `cannot read the threads of pid ${pid}: operation not permitted`);
        return { pid, name: 'became-setuid', sampledAtNs: sample.monotonicNs(), threads: [], limits: [] };
      },
      close() {},
    };
  };
  const analyzeWatch = t.mockRequire<typeof import('../src/analyze/watch')>('../src/analyze/watch', { '../src/sample': { ...sample, createThreadSampler: fake } });
  const { watchCommand } = t.mockRequire<typeof import('../src/cli/commands/watch')>('../src/cli/commands/watch', { '../src/analyze/watch': analyzeWatch });
  const { PassThrough } = await import('node:stream');
  const runWatch = async (argv: string[]) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const code = await watchCommand.run(['--pid', '4242', '--interval', '100ms', '--no-accelerators', ...argv], { stdout, stderr, stdin: new PassThrough(), env: {}, signals: new EventEmitter() });
    return { code, out, err };
  };
  const text = await runWatch([]);
  t.equal(text.code, 1, 'a process could not be watched');
  t.match(text.err, /iokit-snap watch: EPERM: cannot read the threads of pid 4242: operation not permitted/);
  t.match(text.out, /watched pid 4242 for .*: \d+ samples?, 0 hangs, healthy at the end, and a process could not be watched \(see stderr\)\n$/);

  const json = await runWatch(['--json']);
  t.equal(json.code, 1);
  const lines = json.out.trim().split('\n').map((l) => JSON.parse(l));
  t.match(lines, [{ type: 'sample' }, { type: 'error', error: { code: 'EPERM', message: /operation not permitted/ } }]);
  t.same(Object.keys(lines[1].error).sort(), ['code', 'message'], 'the error as code and message only');
});
