/**
 * What a client or a process name can do to `iokit-snap serve`: connections that send half a
 * request and go silent, hundreds of idle connections under a small open-file limit, a
 * `--match` pattern that backtracks exponentially on a process that names itself for it, and
 * selectors that select nothing (a typo in a systemd unit). Real sockets, real processes,
 * the real command where the open-file limit or the event loop of the exporter is the point.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { BoundedMatcher } from '../src/metrics/bounded-match';
import { ConnectionCap, defaultMaxConnections, openFileLimit, startMetricsServer } from '../src/metrics/server';
import { BIN, runCli, type CliStreams } from './helpers/cli';
import { get, scrape } from './helpers/prometheus';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'the real-process checks run on Linux';

type Silent = { socket: net.Socket; closed: Promise<string> };

/** A raw connection that sends `text` (a request line, half a header) and then nothing; `closed` has what the server said. */
function silent(port: number, text: string): Promise<Silent> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    const closed = new Promise<string>((done) => socket.once('close', () => done(answer)));
    socket.once('error', () => undefined); // a reset is a close too
    socket.once('connect', () => {
      if (text !== '') socket.write(text);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

/** Started with `args`; its listening URL once it prints it. */
async function serveChild(t: { teardown(fn: () => unknown): void }, args: string[], shell?: string): Promise<{ child: ChildProcess; base: string; stderr: () => string; exited: Promise<number | null> }> {
  const argv = ['serve', '--listen', '127.0.0.1:0', '--interval', '100ms', '--no-accelerators', ...args];
  const child =
    shell === undefined
      ? spawn(process.execPath, [BIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `${shell}; exec "$0" "$@"`, process.execPath, BIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(out)?.[1], `the listening line (stderr: ${err})`);
  return { child, base, stderr: () => err, exited };
}

/** GET with a deadline of its own: a server that does not answer fails the request, not the test run. */
function getWithin(url: string, ms: number): Promise<{ status: number; body: string }> {
  return Promise.race([
    get(url).then((r) => ({ status: r.status, body: r.body })),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${url} did not answer within ${ms} ms`)), ms).unref()),
  ]);
}

t.test('a connection that sends a request line, half its headers or nothing is closed within the header timeout', async (t) => {
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0, accelerators: false, intervalMs: 200, headersTimeoutMs: 500, keepAliveTimeoutMs: 300 });
  t.teardown(() => server.close());
  const opened = Date.now();
  const clients = await Promise.all(['GET /metrics HTTP/1.1\r\n', 'GET /metrics HTTP/1.1\r\nHost: x\r\n', ''].map((text) => silent(server.port, text)));
  const answers = await waitFor(
    async () => {
      const settled = await Promise.all(clients.map((c) => Promise.race([c.closed, new Promise<null>((r) => setTimeout(() => r(null), 10))])));
      return settled.every((a) => a !== null) && (settled as string[]);
    },
    'all three silent connections closed by the server',
    15000,
  );
  t.ok(Date.now() - opened >= 400, 'not before the timeout');
  for (const answer of answers) t.match(answer, /^HTTP\/1\.1 408 Request Timeout/, 'told why: 408');

  // A keep-alive connection after a whole request: answered, then closed when idle.
  const keep = await silent(server.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  const keptAnswer = await keep.closed;
  t.match(keptAnswer, /^HTTP\/1\.1 200 OK[\s\S]*ok: /, 'answered, then closed after the keep-alive timeout');
  t.equal((await get(`${server.url}/healthz`)).status, 200, 'and the server still answers');
});

t.test('idle connections past the cap close the longest idle one: a scrape always gets in', async (t) => {
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0, accelerators: false, intervalMs: 200, maxConnections: 8 });
  t.teardown(() => server.close());
  const idle: Silent[] = [];
  for (let i = 0; i < 40; i++) idle.push(await silent(server.port, 'GET /metrics HTTP/1.1\r\n'));
  const scraped = await scrape(`${server.url}/metrics`);
  t.equal(scraped.status, 200, 'the scrape was answered');
  const closed = await waitFor(
    async () => {
      const settled = await Promise.all(idle.map((c) => Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5))])));
      const n = settled.filter(Boolean).length;
      return n >= 40 - 8 + 1 && n;
    },
    'the idle connections past the cap closed',
  );
  t.ok(closed >= 33, `${closed} of 40 idle connections closed to keep at most 8 open, the scrape's included`);
  t.ok(!(await Promise.race([idle[39].closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5))])), 'the newest idle one is still open');
  for (const c of idle) c.socket.destroy();
  await t.rejects(startMetricsServer({ port: 0, maxConnections: 0 }), { code: 'EINVAL', message: /maxConnections must be a positive number/ });
  await t.rejects(startMetricsServer({ port: 0, headersTimeoutMs: -1 }), { code: 'EINVAL', message: /headersTimeoutMs/ });
});

t.test('ConnectionCap: the longest idle connection makes room; when all are busy the new one is refused', async (t) => {
  const closed: string[] = [];
  const socket = (name: string) => ({ name, destroy: () => closed.push(name) });
  const cap = new ConnectionCap<ReturnType<typeof socket>>(2);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(socket);
  t.ok(cap.admit(a));
  t.ok(cap.admit(b));
  cap.busy(a, true);
  t.ok(cap.admit(c), 'c admitted');
  t.same(closed, ['b'], 'by closing b, idle longest (a is busy)');
  cap.busy(c, true);
  t.notOk(cap.admit(d), 'every open one busy: d refused');
  t.same(closed, ['b', 'd']);
  cap.busy(c, false);
  cap.closed(a);
  t.equal(cap.size, 1);
  cap.busy(a, false); // a late end of a request on a closed connection changes nothing
  t.equal(cap.size, 1);
});

t.test('the connection cap follows the open-file limit', async (t) => {
  t.equal(openFileLimit('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n'), 1024);
  t.equal(openFileLimit('Max open files            unlimited            unlimited            files\n'), null);
  t.equal(openFileLimit('nothing here\n'), null);
  t.equal(defaultMaxConnections(null), 64);
  t.equal(defaultMaxConnections(1_048_576), 64);
  t.equal(defaultMaxConnections(256), 32);
  t.equal(defaultMaxConnections(16), 4);
  if (process.platform === 'linux') t.ok((openFileLimit() ?? 0) > 0, "this process's own limit reads");
});

t.test('the real command under `ulimit -n 128`: 600 idle connections, and scrapes are answered', { skip: linux }, async (t) => {
  const { base } = await serveChild(t, [], 'ulimit -n 128');
  const port = Number(new URL(base).port);
  const idle: (Silent | null)[] = [];
  for (let i = 0; i < 600; i++) idle.push(await silent(port, 'GET /metrics HTTP/1.1\r\n').catch(() => null));
  t.teardown(() => idle.forEach((c) => c?.socket.destroy()));
  for (let i = 0; i < 5; i++) {
    const r = await getWithin(`${base}/metrics`, 10000);
    t.equal(r.status, 200, `scrape ${i + 1} answered with 600 idle connections open against it`);
  }
});

t.test('BoundedMatcher: the patterns each text matches; a text that takes the whole budget is given up', async (t) => {
  const m = new BoundedMatcher([/^python/, /llama/g, /^(a+)+$/], 100);
  const hostile = 'a'.repeat(40) + '!';
  const started = Date.now();
  t.same(m.matchAll(['python3', 'llama-server', 'llama-server', hostile, 'aaaa', 'bash']), [[0], [1], [1], null, [2], []], 'a /g pattern matches every time');
  t.ok(Date.now() - started < 5000, 'the hostile text cost about its budget');
  t.same(m.matchAll([]), []);

  // Texts that each take a tenth of the budget: the budget runs out in one of them, which is
  // then run again with a budget of its own, not given up.
  let n = 10;
  const cost = (k: number): number => {
    const s = Date.now();
    /^(a+)+$/.test('a'.repeat(k) + '!');
    return Date.now() - s;
  };
  while (cost(n) < 8 && n < 40) n++;
  const slow = new BoundedMatcher([/^(a+)+$/], 400);
  const results = slow.matchAll(new Array(60).fill('a'.repeat(n) + '!'));
  t.equal(results.filter((r) => r === null).length, 0, `60 texts of ${cost(n)} ms each: none given up, though together they take longer than one budget`);
});

t.test("serve --match '^(a+)+$' with a process named aaaa…a!: /healthz answers, the process is not selected, SIGTERM ends it", { skip: linux }, async (t) => {
  const hostile = spawn('sleep', ['1000'], { argv0: 'a'.repeat(40) + '!', stdio: 'ignore' });
  t.teardown(() => hostile.kill('SIGKILL'));
  const server = await serveChild(t, ['--match', '^(a+)+$']);
  // Ten health checks, each with a deadline of 2 s (the default stale rule allows far longer).
  for (let i = 0; i < 10; i++) {
    const health = await getWithin(`${server.base}/healthz`, 2000);
    t.equal(health.status, 200);
  }
  const metrics = await waitFor(async () => {
    const m = await scrape(`${server.base}/metrics`);
    return (m.value('iokit_snap_samples_total') ?? 0) >= 2 && m;
  }, 'two samples');
  t.equal(metrics.value('iokit_snap_selector_processes', { kind: 'match', selector: '^(a+)+$' }), 0, 'the hostile process is not selected');
  t.equal(metrics.value('iokit_snap_watched_processes'), 0);
  const stopAt = Date.now();
  server.child.kill('SIGTERM');
  t.equal(await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('still running'), 5000).unref())]), 0, 'exit status 0 after SIGTERM');
  t.ok(Date.now() - stopAt < 5000, `SIGTERM answered in ${Date.now() - stopAt} ms`);
});

t.test('selectors that select nothing: a warning at start, and every selector counted in the metrics', { skip: linux }, async (t) => {
  const live = await start(t, 'sleep');
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const marker = `no-such-process-${process.pid}-${Date.now()}`;
  const run = runCli(
    ['serve', '--listen', '127.0.0.1:0', '--interval', '100ms', '--no-accelerators', '--pid', '999999', '--pid', String(live.pid), '--match', marker, '--cgroup', '/nonexistent.slice'],
    {},
    false,
    signals,
    (s) => (streams = s),
  );
  t.teardown(() => signals.emit('SIGTERM'));
  const base = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(streams!.stdout())?.[1], 'the listening line');
  const warned = await waitFor(() => {
    const err = streams!.stderr();
    return /--cgroup \/nonexistent\.slice/.test(err) && err;
  }, 'the warnings');
  t.match(warned, /warning: --pid 999999 selects no process \(no such process\); it will not be watched/);
  t.match(warned, new RegExp(`warning: --match ${marker} selects no process \\(no process name or command line matches it now\\); it is looked for again every interval`));
  t.match(warned, /warning: --cgroup \/nonexistent\.slice selects no process \(cannot read .*cgroup\.procs.*\); it is looked for again every interval/);
  t.notMatch(warned, new RegExp(`--pid ${live.pid}`), 'a pid that is there is not warned about');
  const s = await waitFor(async () => {
    const m = await scrape(`${base}/metrics`);
    return m.value('iokit_snap_selector_processes', { kind: 'pid', selector: String(live.pid) }) === 1 && m;
  }, 'the live pid counted');
  t.equal(s.value('iokit_snap_selector_processes', { kind: 'pid', selector: '999999' }), 0);
  t.equal(s.value('iokit_snap_selector_processes', { kind: 'match', selector: marker }), 0);
  t.equal(s.value('iokit_snap_selector_processes', { kind: 'cgroup', selector: '/nonexistent.slice' }), 0);
  t.equal(s.value('iokit_snap_watched_processes'), 1);
  signals.emit('SIGTERM');
  t.equal((await run).code, 0);
});

/** A new, empty cgroup in this machine's cgroup2 hierarchy (removed in teardown), or why there is none. */
function emptyCgroup(t: { teardown(fn: () => void): void }): string | null {
  const mount = /^\S+ \S+ \S+ \S+ (\S+) .* - cgroup2 /m.exec(fs.readFileSync('/proc/self/mountinfo', 'utf8'))?.[1];
  if (mount === undefined) return null;
  const dir = path.join(mount, `iokit-snap-empty-${process.pid}`);
  try {
    fs.mkdirSync(dir);
  } catch {
    return null;
  }
  t.teardown(() => fs.rmdirSync(dir));
  return dir;
}

t.test('a cgroup that exists but has no members: a warning that says so at start', { skip: linux }, async (t) => {
  const dir = emptyCgroup(t);
  if (dir === null) return t.plan(0, 'skip: no cgroup2 hierarchy this user may make a cgroup in');
  const live = await start(t, 'sleep');
  const signals = new EventEmitter();
  let streams: CliStreams | undefined;
  const run = runCli(['serve', '--listen', '127.0.0.1:0', '--interval', '100ms', '--no-accelerators', '--pid', String(live.pid), '--cgroup', dir], {}, false, signals, (s) => (streams = s));
  t.teardown(() => signals.emit('SIGTERM'));
  const warned = await waitFor(() => {
    const err = streams?.stderr() ?? '';
    return /--cgroup/.test(err) && err;
  }, 'the warning');
  t.match(warned, `warning: --cgroup ${dir} selects no process (it has no members now); it is looked for again every interval`);
  signals.emit('SIGTERM');
  t.equal((await run).code, 0);
});
