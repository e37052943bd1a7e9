/**
 * `iokit-snap watch --all` and `serve --all` on real processes: a planted deadlock among idle
 * ones is reported with its labels and call, the idle ones never; the exporter counts
 * processes by verdict, lists only the ones in trouble, and says what the scan costs.
 */
import t from 'tap';
import { EventEmitter } from 'node:events';
import { startMetricsServer } from '../src/metrics/server';
import { binding } from '../src/native';
import { runCli, type CliStreams } from './helpers/cli';
import { scrape } from './helpers/prometheus';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the host scan reads /proc (Linux)';
const ONLY_TARGETS = ['--include', 'name=^target$', '--interval', '100ms', '--stall', '1s'];

t.test('watch --all --json: the deadlock among idle processes, with its labels and call; no idle one', { skip: linux }, async (t) => {
  const deadlock = await start(t, 'deadlock');
  const idle = [await start(t, 'sleep'), await start(t, 'epoll-idle'), await start(t, 'threads', ['10'])];
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const run = runCli(['watch', '--all', '--json', ...ONLY_TARGETS, '--exclude', 'uid=65534'], {}, false, signals, (s) => (streams = s));
  const lines = (): Array<Record<string, any>> => streams!.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  await waitFor(() => lines().some((l) => l.type === 'hang' && l.pid === deadlock.pid), 'a hang line for the deadlock', 20000);
  // Long enough for every idle one to be judged over its stall window.
  // Every process watched in full is one in trouble: the idle ones are judged and settled.
  await waitFor(() => lines().some((l) => l.type === 'pass' && l.verdicts.hung >= 1 && l.watched <= l.verdicts.hung + l.verdicts.suspect), 'the idle ones settled', 20000);
  signals.emit('SIGINT');
  const result = await run;
  t.equal(result.code, 2, 'exit status 2: a process hung at the end');
  const hang = lines().find((l) => l.type === 'hang' && l.pid === deadlock.pid)!;
  t.match(hang.labels, { pid: deadlock.pid, name: 'target', uid: 0 });
  t.ok(typeof hang.labels.cgroup === 'string', 'its cgroup');
  t.ok(hang.report.findings.some((f: { message: string }) => /futex/.test(f.message)), 'the call it is stuck in');
  const idlePids = new Set(idle.map((x) => x.pid));
  t.same(lines().filter((l) => idlePids.has(l.pid) && (l.type === 'hang' || (l.type === 'sample' && l.verdict !== 'healthy'))), [], 'nothing about the idle ones');
  t.ok(lines().some((l) => l.type === 'pass' && l.verdicts.hung >= 1));
});

t.test('watch --all as text: HUNG with who it is, SUSPECT, RECOVERED, an exit, and the summary', { skip: linux }, async (t) => {
  const stopped = await start(t, 'sleep');
  const deadlock = await start(t, 'deadlock');
  process.kill(stopped.pid, 'SIGSTOP');
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const run = runCli(['watch', '--all', ...ONLY_TARGETS, '--pass', '200ms'], {}, false, signals, (s) => (streams = s));
  await waitFor(() => new RegExp(`HUNG pid ${stopped.pid} \\(target, .*uid 0`).test(streams!.stdout()), 'HUNG for the stopped one', 20000);
  await waitFor(() => new RegExp(`HUNG pid ${deadlock.pid} `).test(streams!.stdout()), 'HUNG for the deadlock', 20000);
  process.kill(stopped.pid, 'SIGCONT');
  await waitFor(() => new RegExp(`RECOVERED pid ${stopped.pid} .* after`).test(streams!.stdout()), 'RECOVERED', 20000);
  await deadlock.stop();
  await waitFor(() => new RegExp(`pid ${deadlock.pid} .*exited`).test(streams!.stdout()), 'the exit of the hung one', 20000);
  signals.emit('SIGTERM');
  const result = await run;
  t.ok(result.code === 0 || result.code === 2, 'exit status 2 only while a process (another test target) is hung at the end');
  t.match(result.stdout, /processes?, \d+ threads?: \d+ hung, \d+ suspect, \d+ watched in full/);
  t.match(result.stdout, /watched this host for .*: \d+ passes, \d+ hangs, \d+ hung and \d+ suspect of \d+ process/);
  t.match(result.stdout, /SUSPECT pid \d+|HUNG pid/);
});

t.test('watch --all --exit-on-hang, --for, and usage errors', { skip: linux }, async (t) => {
  const deadlock = await start(t, 'deadlock');
  const first = await runCli(['watch', '--all', ...ONLY_TARGETS, '--exit-on-hang', '--for', '30s']);
  t.equal(first.code, 2);
  // The first hang ends it: the deadlock's, or another test's target's that hangs on this machine meanwhile.
  t.match(first.stdout, /HUNG pid \d+ \(target, /);
  t.ok(deadlock.pid > 0);
  const none = await runCli(['watch', '--all', '--include', 'name=^no such name$', '--for', '300ms']);
  t.equal(none.code, 0);
  t.match(none.stdout, /0 hangs, 0 hung and 0 suspect of 0 processes at the end/);
  const usage: Array<[string[], RegExp]> = [
    [['watch', '--all', '--pid', '1'], /give --all or --pid, not both/],
    [['watch', '--all', '--baseline', 'x.json'], /--baseline is a snapshot of named processes/],
    [['watch', '--pid', '1', '--include', 'x'], /--include selects among every process: it goes with --all/],
    [['watch'], /--pid N, or --all for every process/],
    [['watch', '--all', '--include', 'uid=x'], /a uid is a number/],
    [['serve', '--exclude', 'x'], /--exclude selects among every process: it goes with --all/],
  ];
  for (const [argv, message] of usage) {
    const r = await runCli(argv);
    t.equal(r.code, 64, argv.join(' '));
    t.match(r.stderr, message);
  }
  const err = await runCli(['watch', '--all', '--stall', '1s', '--include', '(x']);
  t.equal(err.code, 64);
  const help = await runCli(['watch', '--help']);
  t.match(help.stdout, /--all {16}every process of this host/);
});

t.test('serve --all: processes by verdict, a verdict series only for the hung, the cost of the scan', { skip: linux }, async (t) => {
  const deadlock = await start(t, 'deadlock');
  const idle = await start(t, 'sleep');
  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    accelerators: false,
    intervalMs: 100,
    stallMs: 1000,
    all: { include: [{ name: '^target$' }] },
  });
  t.teardown(() => server.close());
  const metrics = `${server.url}/metrics`;
  const s = await waitFor(async () => {
    const got = await scrape(metrics);
    return got.value('iokit_snap_host_process_verdict', { pid: String(deadlock.pid) }) === 2 && (got.value('iokit_snap_host_processes', { verdict: 'hung' }) ?? 0) >= 1 && got;
  }, 'the deadlock hung in the metrics', 20000);
  t.equal(s.value('iokit_snap_host_process_verdict', { pid: String(idle.pid) }), undefined, 'no series for a healthy process');
  t.ok(s.value('iokit_snap_host_processes', { verdict: 'hung' })! >= 1);
  t.ok(s.value('iokit_snap_host_processes', { verdict: 'healthy' })! >= 1);
  t.ok(s.value('iokit_snap_host_scanned_threads_total')! > 0);
  t.ok(s.value('iokit_snap_host_scanned_processes_total')! > 0);
  t.ok(s.value('iokit_snap_host_passes_total')! > 0);
  t.ok(s.series('iokit_snap_host_pass_duration_seconds').length > 0);
  t.match(s.series('iokit_snap_host_process_verdict', { pid: String(deadlock.pid) })[0].labels, { name: 'target', uid: '0', unit: String, container: '' });
  const health = await (await fetch(`${server.url}/healthz`)).text();
  t.match(health, /host scan: \d+ processes watched in full/);
  // The deadlock ends: its series goes.
  await deadlock.stop();
  await waitFor(async () => (await scrape(metrics)).value('iokit_snap_host_process_verdict', { pid: String(deadlock.pid) }) === undefined, 'its series gone', 20000);
  await server.close();
});

t.test('serve --all from the command line', { skip: linux }, async (t) => {
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  await t.rejects(startMetricsServer({ port: 0, accelerators: false, all: { include: 'x' as never } }), { code: 'EINVAL', message: /include must be an array/ }, 'bad host options: nothing left running');
  const run = runCli(['serve', '--all', '--basic', '--listen', '127.0.0.1:0', '--json', '--no-accelerators', '--include', 'name=^target$', '--exclude', 'uid=65534', '--pass', '200ms'], {}, false, signals, (s) => (streams = s));
  const line = await waitFor(() => streams!.stdout().split('\n').find((l) => l.startsWith('{')), 'the JSON listening line');
  const { metrics } = JSON.parse(line) as { metrics: string };
  await waitFor(async () => ((await scrape(metrics)).value('iokit_snap_host_passes_total') ?? 0) >= 1, 'a pass');
  signals.emit('SIGTERM');
  const result = await run;
  t.equal(result.code, 0);
  t.match(result.stderr, /scanning every process of this host \(--all\)/);
});

t.test('watch --all when the scan fails: the error in JSON and as text, exit status 1', { skip: linux }, async (t) => {
  const native = binding();
  const open = native.openHostScanner!;
  native.openHostScanner = () => ({
    scan: () => Promise.reject(Object.assign(new Error('procfs went away'), { code: 'EIO' })),
    settle: () => undefined,
    reading: () => null,
    close: () => undefined,
  });
  t.teardown(() => {
    native.openHostScanner = open;
  });
  const json = await runCli(['watch', '--all', '--json']);
  t.equal(json.code, 1);
  t.match(JSON.parse(json.stdout.split('\n')[0]), { type: 'error', error: { code: 'EIO', message: /procfs went away/ } });
  const text = await runCli(['watch', '--all']);
  t.equal(text.code, 1);
  t.match(text.stderr, /iokit-snap watch --all: EIO: procfs went away/);
  // Errors after passes that worked: the summary says so.
  let calls = 0;
  native.openHostScanner = (options) => {
    const real = open(options);
    return { ...real, scan: (pids, detail) => (++calls === 2 ? Promise.reject(Object.assign(new Error('one pass failed'), { code: 'EIO' })) : real.scan(pids, detail)), settle: (r) => real.settle(r), reading: () => real.reading(), close: () => real.close() };
  };
  const later = await runCli(['watch', '--all', '--include', 'name=^no such name$', '--pass', '50ms', '--for', '400ms']);
  t.equal(later.code, 1);
  t.match(later.stdout, /\(errors: see stderr\)/);
});

t.test('watch --all --basic: a process that exits while watched, never reported, is no news', { skip: linux }, async (t) => {
  // `sleep 2.5` is a candidate from its second pass (~0.1 s) and exits inside its first full watch (6 s stall).
  const { spawn } = await import('node:child_process');
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const run = runCli(['watch', '--all', '--basic', '--json', '--include', 'name=^sleep$', '--interval', '100ms', '--stall', '6s', '--pass', '50ms'], {}, false, signals, (s) => (streams = s));
  await waitFor(() => streams?.stdout().includes('"type":"pass"'), 'a first pass');
  const child = spawn('sleep', ['2.5'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await exited;
  const before = (streams!.stdout().match(/"type":"pass"/g) ?? []).length;
  await waitFor(() => (streams!.stdout().match(/"type":"pass"/g) ?? []).length >= before + 20, 'passes after it exited', 20000);
  signals.emit('SIGINT');
  const result = await run;
  t.notMatch(result.stdout, new RegExp(`"pid":${child.pid},`), 'nothing about it');
});

t.test('the host metrics from events: healthy processes are never listed; a discarded window changes nothing', async (t) => {
  const { Registry } = await import('prom-client');
  const { observeHost } = await import('../src/metrics/host');
  const { parseText } = await import('./helpers/prometheus');
  const registry = new Registry();
  const watcher = Object.assign(new EventEmitter(), { watchedPids: [7] as number[] });
  observeHost(registry, watcher as never);
  const labels = { pid: 7, name: 'x', uid: null, kernel: false, cgroup: null, unit: null, container: null, pod: null, devices: [] };
  const sample = (verdict: string, extra: object = {}) => watcher.emit('sample', { type: 'sample', pid: 7, labels, verdict, findings: [], threads: 1, at: '', monotonicNs: 0, cpu: [], ...extra });
  sample('suspect');
  let m = parseText(await registry.metrics());
  t.same(m.series('iokit_snap_host_process_verdict')[0].labels, { pid: '7', name: 'x', unit: '', container: '', uid: '' });
  t.equal(m.value('iokit_snap_host_process_verdict'), 1);
  sample('healthy', { discarded: { reason: 'late', lateMs: 1 } });
  m = parseText(await registry.metrics());
  t.equal(m.value('iokit_snap_host_process_verdict'), 1, 'a discarded window changes nothing');
  sample('healthy');
  m = parseText(await registry.metrics());
  t.equal(m.value('iokit_snap_host_process_verdict'), undefined, 'healthy: not listed');
  sample('hung');
  watcher.emit('exit', { type: 'exit', pid: 7, labels, at: '', monotonicNs: 0 });
  m = parseText(await registry.metrics());
  t.equal(m.value('iokit_snap_host_process_verdict'), undefined, 'gone with its process');
  watcher.emit('exit', { type: 'exit', pid: 8, labels, at: '', monotonicNs: 0 });
  sample('hung');
  watcher.watchedPids = [];
  watcher.emit('pass', { type: 'pass', processes: 1, threads: 1, durationMs: 1, watched: 0, verdicts: { healthy: 1, suspect: 0, hung: 0 }, keyReads: 0, labelReads: 0, limits: [], at: '', monotonicNs: 0 });
  m = parseText(await registry.metrics());
  t.equal(m.value('iokit_snap_host_process_verdict'), undefined, 'a watch that ended takes its series with it');
  t.equal(m.value('iokit_snap_host_processes', { verdict: 'healthy' }), 1);
});
