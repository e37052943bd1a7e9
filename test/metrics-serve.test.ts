/**
 * `iokit-snap serve`: a real deadlocked child and a real idle child, scraped over HTTP and
 * parsed by a parser that is not prom-client; a scrape while an accelerator probe is stuck
 * on a fifo-backed sysfs file; selection that follows restarts; clean shutdown.
 */
import t from 'tap';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startMetricsServer } from '../src/metrics/server';
import { spawn } from 'node:child_process';
import { BIN, runCli, type CliStreams } from './helpers/cli';
import { get, scrape } from './helpers/prometheus';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the real-process checks run on Linux';
const DEADLINE_MS = 60000;

t.test('serve: the deadlocked child goes to verdict 2 within stall + 2 samples, the idle child stays 0', { skip: linux }, async (t) => {
  const deadlock = await start(t, 'deadlock');
  const idle = await start(t, 'epoll-idle');
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const intervalMs = 200;
  const stallMs = 1000;
  const run = runCli(
    ['serve', '--listen', '127.0.0.1:0', '--pid', String(deadlock.pid), '--pid', String(idle.pid), '--interval', `${intervalMs}ms`, '--stall', `${stallMs}ms`, '--no-accelerators'],
    {},
    false,
    signals,
    (s) => (streams = s),
  );
  t.teardown(() => signals.emit('SIGTERM'));
  const base = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(streams!.stdout())?.[1], 'the listening line');
  const d = { pid: String(deadlock.pid) };
  const i = { pid: String(idle.pid) };
  let scrapes = 0;
  const hung = await waitFor(
    async () => {
      const s = await scrape(`${base}/metrics`);
      scrapes++;
      t.equal(s.status, 200);
      const idleVerdict = s.value('iokit_snap_process_verdict', i);
      if (idleVerdict !== undefined && idleVerdict !== 0) throw new Error(`the idle child's verdict became ${idleVerdict}:\n${s.text}`);
      return s.value('iokit_snap_process_verdict', d) === 2 && s;
    },
    'the deadlocked verdict to become 2',
    DEADLINE_MS,
    intervalMs / 4,
  );
  t.ok(scrapes > 1, 'it was 0 (or absent) before it was 2');
  t.match(hung.contentType, /^text\/plain; version=0\.0\.4/);
  // Counted in samples, not seconds: the deadlock exists before the first sample, so it shows
  // stallMs later: 1 + stall/interval samples, one more for the scrape that saw it, and a full
  // window more for each window discarded because our own timer fired late on a busy machine.
  const samples = hung.value('iokit_snap_samples_total')!;
  const discarded = hung.value('iokit_snap_samples_discarded_total')!;
  const perWindow = Math.ceil(stallMs / intervalMs);
  t.ok(samples <= 2 + perWindow + 1 + discarded * (perWindow + 1), `hung after ${samples} samples (${discarded} discarded), stall = ${perWindow} intervals`);
  t.equal(hung.value('iokit_snap_process_verdict', i), 0, 'the idle child is healthy');
  t.equal(hung.series('iokit_snap_process_verdict', d)[0].labels?.name, 'target');
  // Threads a and b hold one mutex each and want the other's (critical); main waits to join them (info: it waits for a thread).
  t.equal(hung.value('iokit_snap_process_findings', { ...d, kind: 'stalled', severity: 'critical' }), 2, 'two threads stalled on locks, one series');
  t.equal(hung.value('iokit_snap_process_findings', { ...d, kind: 'waiting', severity: 'info' }), 1, 'the joining main thread: it waits for a stalled thread');
  t.equal(hung.series('iokit_snap_process_findings', d).length, 2);
  t.equal(hung.value('iokit_snap_process_threads_blocked', { ...d, call_class: 'lock' }), 3, 'all in futex: the lock class');
  t.equal(hung.value('iokit_snap_process_threads', { ...d, state: 'sleeping' }), 3);
  t.ok(hung.value('iokit_snap_process_threads_blocked', { ...i, call_class: 'event_wait' })! >= 1, 'the idle child waits for events');
  t.equal(hung.series('iokit_snap_process_findings', i).length, 0, 'no findings about the idle child');
  t.ok(hung.value('iokit_snap_process_cpu_seconds_total', d)! >= 0);
  t.equal(hung.value('iokit_snap_watched_processes'), 2);
  t.ok(hung.value('iokit_snap_sample_age_seconds')! >= 0, 'the age of the sample is exported');
  t.ok(hung.families.has('process_resident_memory_bytes'), "prom-client's default metrics: the exporter's own RSS");
  t.ok(hung.families.has('process_cpu_seconds_total'), "…and its CPU");
  for (const family of hung.families.values()) {
    for (const series of family.metrics) t.notOk(series.labels && 'tid' in series.labels, `${family.name}: no tid label`);
  }

  const health = await get(`${base}/healthz`);
  t.equal(health.status, 200);
  t.match(health.body, /^ok: latest sample .* s ago, 2 processes watched/);
  t.equal((await get(`${base}/nope`)).status, 404);

  // The deadlocked child is killed: its series go at the next sample.
  await deadlock.stop();
  await waitFor(async () => (await scrape(`${base}/metrics`)).series('iokit_snap_process_verdict', d).length === 0, 'the exited process dropped', DEADLINE_MS);

  signals.emit('SIGTERM');
  const result = await run;
  t.equal(result.code, 0, 'SIGTERM closes it cleanly');
  t.equal(result.stderr, '');
  await t.rejects(get(`${base}/metrics`), { code: 'ECONNREFUSED' }, 'nothing listens any more');
});

t.test('a scrape while the accelerator probe is stuck on a fifo-backed sysfs file returns; the probe shows as timed out', { skip: linux }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-serve-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  // The H100 fixture tree (test/fixtures/sys/README.md), with its power_state a fifo nobody
  // writes: reading it blocks the way a read from a wedged device's sysfs attribute does.
  const sysRoot = path.join(work, 'sys');
  execFileSync('cp', ['-a', path.join(__dirname, 'fixtures', 'sys', 'nvidia-h100'), sysRoot]);
  const powerState = path.join(sysRoot, 'devices/pci0000:00/0000:00:01.0/0000:01:00.0/power_state');
  const wedge = () => {
    fs.rmSync(powerState);
    execFileSync('mkfifo', [powerState]);
  };
  /** Let the stuck read return, and every later read too: a regular file replaces the fifo. */
  const unwedge = (writer: number) => {
    fs.writeFileSync(`${powerState}.new`, 'D0\n');
    fs.renameSync(`${powerState}.new`, powerState);
    fs.writeSync(writer, 'D0\n');
    fs.closeSync(writer);
  };
  wedge();
  const idle = await start(t, 'epoll-idle');
  const serve = (timeoutMs: number) =>
    startMetricsServer({ host: '127.0.0.1', port: 0, pids: [idle.pid], sysRoot, nvmlLibrary: path.join(work, 'no-libnvidia-ml.so'), intervalMs: 100, timeoutMs });
  /** Resolves with a write end once a probe has the fifo open for reading (a writer can then open it without blocking). */
  const probeStuck = () =>
    waitFor(() => {
      try {
        return fs.openSync(powerState, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      } catch {
        return null;
      }
    }, 'the accelerator probe to open the fifo');

  // A deadline far away: the first sample cannot complete while the probe is stuck.
  const patient = await serve(120000);
  t.teardown(() => patient.close());
  let writer = await probeStuck();
  // From here the probe's read cannot return until this test writes or closes `writer`.
  const during = await scrape(`${patient.url}/metrics`);
  t.equal(during.status, 200, 'the scrape returned while the probe was stuck');
  t.equal(during.value('iokit_snap_samples_total'), 0, 'no sample has completed: the scrape did not wait for one');
  t.equal(during.value('iokit_snap_probe_timeouts_total', { probe: 'accelerators' }), undefined, 'and the probe has not timed out');
  t.equal((await get(`${patient.url}/healthz`)).status, 200, '/healthz answers too');
  unwedge(writer);
  await waitFor(async () => ((await scrape(`${patient.url}/metrics`)).value('iokit_snap_samples_total') ?? 0) >= 1, 'a sample once the probe returned');
  await patient.close();

  // A short deadline: the stuck probe is counted as timed out, and processes are still judged.
  wedge();
  const hasty = await serve(500);
  t.teardown(() => hasty.close());
  writer = await probeStuck();
  const timedOut = await waitFor(
    async () => {
      const s = await scrape(`${hasty.url}/metrics`);
      return (s.value('iokit_snap_probe_timeouts_total', { probe: 'accelerators' }) ?? 0) >= 1 && s;
    },
    'the stuck probe counted as timed out',
    DEADLINE_MS,
  );
  t.equal(timedOut.value('iokit_snap_process_verdict', { pid: String(idle.pid) }), 0, 'processes are still sampled and judged');
  t.equal((await get(`${hasty.url}/healthz`)).status, 200, 'and the exporter says it is healthy');
  unwedge(writer);
  await hasty.close();
  await hasty.close();
});

t.test('serve picks up a restarted process by command line and drops the old one; cmdline is read once per process', { skip: linux }, async (t) => {
  const marker = `iokit-snap-serve-marker-${process.pid}-${Date.now()}`;
  const first = await start(t, 'sleep', [marker]);
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0, match: [marker], intervalMs: 100, accelerators: false });
  t.teardown(() => server.close());
  const url = `${server.url}/metrics`;
  await waitFor(async () => (await scrape(url)).value('iokit_snap_process_verdict', { pid: String(first.pid) }) === 0, 'the first process selected');
  t.same(server.collector.pids, [first.pid], 'only the matching process (not this test, not iokit-snap itself)');
  await first.stop();
  const second = await start(t, 'sleep', [marker]);
  await waitFor(async () => {
    const s = await scrape(url);
    return s.value('iokit_snap_process_verdict', { pid: String(second.pid) }) === 0 && s.series('iokit_snap_process_verdict', { pid: String(first.pid) }).length === 0;
  }, 'the restarted process picked up and the old one dropped', DEADLINE_MS);
});

t.test('the real command: SIGTERM ends it with status 0, nothing left holding it open', { skip: linux }, async (t) => {
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--interval', '100ms', '--no-accelerators', '--pid', String(process.pid)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(out)?.[1], 'the listening line');
  await waitFor(async () => ((await scrape(`${base}/metrics`)).value('iokit_snap_samples_total') ?? 0) >= 2, 'samples');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit status 0 after SIGTERM');
});

t.test('serve: usage errors, a port in use, and the exporter with no processes', async (t) => {
  const bad = await runCli(['serve', '--listen', 'nowhere']);
  t.equal(bad.code, 64);
  t.match(bad.stderr, /--listen takes host:port/);
  const badRe = await runCli(['serve', '--match', '(']);
  t.equal(badRe.code, 64);
  t.match(badRe.stderr, /--match "\(" is not a regular expression/);
  const positional = await runCli(['serve', '123']);
  t.equal(positional.code, 64);
  const help = await runCli(['serve', '--help']);
  t.match(help.stdout, /Usage: iokit-snap serve/);

  const taken = await startMetricsServer({ host: '127.0.0.1', port: 0, accelerators: false, intervalMs: 100 });
  t.teardown(() => taken.close());
  const inUse = await runCli(['serve', '--listen', `127.0.0.1:${taken.port}`]);
  t.equal(inUse.code, 1);
  t.match(inUse.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*pick another with --listen/);

  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  // Every interface, briefly: the one case that warns.
  const run = runCli(['serve', '--listen', '0.0.0.0:0', '--json', '--interval', '100ms', '--no-accelerators', '--basic'], {}, false, signals, (s) => (streams = s));
  const line = await waitFor(() => streams!.stdout().split('\n').find((l) => l.startsWith('{')), 'the JSON listening line');
  const { metrics } = JSON.parse(line) as { metrics: string };
  await waitFor(async () => ((await scrape(metrics)).value('iokit_snap_samples_total') ?? 0) >= 1, 'a sample');
  signals.emit('SIGINT');
  const result = await run;
  t.equal(result.code, 0);
  t.match(result.stderr, /no processes selected/);
  t.match(result.stderr, /listening on 0\.0\.0\.0, reachable from other machines/);
});
