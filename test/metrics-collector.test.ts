/**
 * The sampling loop and the HTTP server under the exporter, at their edges: a thread probe
 * that hangs (a /proc tree of fifos, as a wedged /proc would be) is a timed-out probe and a
 * hung verdict, then backs off; a window in which this process was starved is discarded,
 * not reported; and what the server says to other methods, paths and addresses.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as client from 'prom-client';
import type { CollectorEvent } from '../src/metrics/collector';
import { Collector, createMetrics, startMetricsServer } from '../src/metrics';
import { DEFAULT_PORT, isLoopback, parseListen } from '../src/metrics/server';
import { get, parseText, scrape } from './helpers/prometheus';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'fifo /proc trees and real targets are Linux';

t.test('bad collector options are clear errors', async (t) => {
  t.throws(() => new Collector(null as never), { code: 'EINVAL', message: /options must be an object/ });
  t.throws(() => new Collector({ intervalMs: 0 }), { code: 'EINVAL', message: /intervalMs must be a positive number of ms, got 0/ });
  t.throws(() => new Collector({ stallMs: Number.NaN }), { code: 'EINVAL', message: /stallMs/ });
  const defaults = new Collector({ accelerators: false });
  t.equal(defaults.intervalMs, 1000);
  t.equal(defaults.stallMs, 10000);
  t.equal(defaults.timeoutMs, 4000);
  await defaults.close();
  await defaults.close();
  // Closed from a sample listener: it stops there, without sleeping out its (long) interval.
  const once = new Collector({ accelerators: false, intervalMs: 3_600_000 });
  let samples = 0;
  once.on('sample', () => {
    samples++;
    void once.close();
  });
  await once.done;
  t.equal(samples, 1);
});

t.test('a thread probe that hangs: a timed-out probe, verdict 2 for that pid, then a back-off instead of a new stuck thread each interval', { skip: linux }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-collector-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  // /proc/4242 (proc(5) layout) with fifos where stat, comm and the task's stat are.
  fs.mkdirSync(path.join(root, '4242', 'task', '4242'), { recursive: true });
  for (const file of ['4242/stat', '4242/comm', '4242/task/4242/stat']) execFileSync('mkfifo', [path.join(root, file)]);
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const collector = metrics.watch({ pids: [4242], procRoot: root, accelerators: false, intervalMs: 100, timeoutMs: 300 });
  t.teardown(() => collector.close());
  const events: CollectorEvent[] = [];
  collector.on('sample', (e: CollectorEvent) => events.push(e));
  const backedOff = await waitFor(
    () => events.find((e) => e.type === 'sample' && e.limits.some((l) => /an earlier sample of pid 4242 did not return; the next is tried in \d+ s/.test(l.reason))),
    'a sample skipped while the probe backs off',
  );
  t.ok(backedOff);
  const timedOut = events.filter((e) => e.type === 'sample' && e.probes.some((p) => p.probe === 'threads' && p.timedOut));
  t.equal(timedOut.length, 1, 'one probe timed out; later samples did not start another');
  const s = parseText(await registry.metrics());
  t.equal(s.value('iokit_snap_probe_timeouts_total', { probe: 'threads' }), 1);
  t.equal(s.value('iokit_snap_process_verdict', { pid: '4242', name: 'unknown' }), 2, 'never sampled: no name, and hung');
  t.equal(s.value('iokit_snap_process_findings', { pid: '4242', kind: 'probe-timed-out', severity: 'critical' }), 1);
  t.same(collector.pids, [4242]);
});

t.test('a window in which this process was starved is discarded and counted, not reported', { skip: linux }, async (t) => {
  const target = await start(t, 'sleep');
  const registry = new client.Registry();
  const collector = createMetrics({ registry }).watch({ pids: [target.pid], accelerators: false, intervalMs: 100, stallMs: 500 });
  t.teardown(() => collector.close());
  await waitFor(async () => (parseText(await registry.metrics()).value('iokit_snap_samples_total') ?? 0) >= 2, 'two samples');
  // Hold the event loop longer than the allowance (max(interval, 1 s)): the next timer fires late.
  const until = Date.now() + 1500;
  while (Date.now() < until);
  const s = await waitFor(async () => {
    const m = parseText(await registry.metrics());
    return (m.value('iokit_snap_samples_discarded_total') ?? 0) >= 1 && m;
  }, 'a discarded window');
  t.equal(s.value('iokit_snap_process_verdict', { pid: String(target.pid) }), 0);
});

t.test('--listen forms, loopback, and what the server answers besides /metrics', async (t) => {
  t.same(parseListen('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  t.same(parseListen('[::1]:0'), { host: '::1', port: 0 });
  t.same(parseListen(':9100'), { host: '127.0.0.1', port: 9100 }, 'no host: loopback');
  t.same(parseListen('9100'), { host: '127.0.0.1', port: 9100 });
  t.same(parseListen('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  t.throws(() => parseListen('host:99999'), { code: 'EINVAL' });
  t.ok(isLoopback('127.0.0.2') && isLoopback('::1') && isLoopback('localhost'));
  t.notOk(isLoopback('0.0.0.0') || isLoopback('::') || isLoopback('10.0.0.1'));
  await t.rejects(startMetricsServer({ port: 70000 }), { code: 'EINVAL', message: /port must be 0\.\.65535/ });
  await t.rejects(startMetricsServer({ host: '192.0.2.1', port: 0, accelerators: false }), { code: 'EINVAL', message: /cannot listen on 192\.0\.2\.1:0: .*EADDRNOTAVAIL/ });

  const v6 = await startMetricsServer({ host: '::1', port: 0, accelerators: false, intervalMs: 100 });
  t.teardown(() => v6.close());
  t.match(v6.url, /^http:\/\/\[::1\]:\d+$/);
  t.equal((await scrape(`${v6.url}/metrics`)).status, 200);
  t.match((await get(`${v6.url}/`)).body, /href="\/metrics"/);
  const head = await new Promise<http.IncomingMessage>((resolve, reject) => http.request(`${v6.url}/metrics`, { method: 'HEAD', agent: false }, resolve).on('error', reject).end());
  t.equal(head.statusCode, 200);
  t.match(String(head.headers['content-type']), /^text\/plain/);
  const post = await new Promise<http.IncomingMessage>((resolve, reject) => http.request(`${v6.url}/metrics`, { method: 'POST', agent: false }, resolve).on('error', reject).end());
  t.equal(post.statusCode, 405);
  t.equal(post.headers.allow, 'GET, HEAD');
  t.equal(v6.registry.getSingleMetric('iokit_snap_samples_total')?.name, 'iokit_snap_samples_total');

  // No address given: 127.0.0.1:9464, unless something already listens there.
  try {
    const fallback = await startMetricsServer({ accelerators: false });
    t.equal(fallback.url, `http://127.0.0.1:${DEFAULT_PORT}`);
    await fallback.close();
  } catch (error) {
    t.match((error as Error).message, /cannot listen on 127\.0\.0\.1:9464/);
  }
});

t.test('a process that leaves the selection while alive is dropped (its sampler closed)', { skip: linux }, async (t) => {
  // A cgroup directory as cgroupfs lays it out (cgroup.procs: one pid a line), in a temp dir.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-collector-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'svc'));
  const target = await start(t, 'sleep');
  fs.writeFileSync(path.join(root, 'svc', 'cgroup.procs'), `${target.pid}\n`);
  const collector = new Collector({ cgroups: ['svc'], cgroupRoot: root, accelerators: false, intervalMs: 100 });
  t.teardown(() => collector.close());
  await waitFor(() => collector.pids.includes(target.pid), 'the member selected');
  fs.writeFileSync(path.join(root, 'svc', 'cgroup.procs'), '');
  await waitFor(() => collector.pids.length === 0, 'the process dropped while it still runs');
  t.ok(fs.existsSync(`/proc/${target.pid}`), 'it was dropped for leaving the cgroup, not for exiting');
});

t.test("what a thread sample could not read is in the sample event's limits", { skip: linux }, async (t) => {
  // /proc/4300 as Linux before 6.15 without CONFIG_SCHED_DEBUG shows it: the captured files of a
  // sleeping thread (test/fixtures/procfs/clock-nanosleep) without task/<tid>/sched.
  const capture = path.join(__dirname, 'fixtures', 'procfs', 'clock-nanosleep');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-collector-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const task = path.join(root, '4300', 'task', '4300');
  fs.mkdirSync(task, { recursive: true });
  for (const file of fs.readdirSync(capture)) if (file !== 'sched') fs.copyFileSync(path.join(capture, file), path.join(task, file));
  for (const file of ['stat', 'status']) fs.copyFileSync(path.join(capture, file), path.join(root, '4300', file));
  const collector = createMetrics({ registry: new client.Registry() }).watch({ pids: [4300], procRoot: root, accelerators: false, intervalMs: 100 });
  t.teardown(() => collector.close());
  const events: CollectorEvent[] = [];
  collector.on('sample', (e: CollectorEvent) => events.push(e));
  const sampled = await waitFor(() => events.find((e) => e.type === 'sample' && e.processes.length === 1), 'a sample of pid 4300');
  t.match(sampled.type === 'sample' && sampled.limits, [{ subject: 'pid 4300', field: 'offCpuNs', code: 'ENOTSUP', reason: /task\/\*\/sched does not exist on this kernel/ }]);
});
