#!/usr/bin/env node
/*
 * Serve soak: `iokit-snap serve` on 10 real targets (idle thread pools, an epoll server, a
 * poll loop, a mutex deadlock, a fifo reader, a spinner, a stopped process, a sleeper) at the default 1 s interval, scraped every second for --minutes (default
 * 10), as a Prometheus server would, /healthz too. Once a minute it prints serve's RSS, its
 * open fds, its CPU share over that minute, and the scrapes' latency (median, max) and
 * failures. Its peer, in the same run: the same 10 targets' threads read by `ps -L` once a
 * second (what a shell script watching them would do), CPU share per minute.
 *
 * Budget (exit 1 when missed): no failed scrape; fds and RSS of the last minute no more than
 * 10 % over the second minute's (bounded: nothing grows with time); the deadlock's verdict
 * series says 2 (hung) and the idle pool's 0 at the end.
 *
 * Run: npm run build && node bench/serve-soak.js [--minutes 10]. Linux (it reads /proc).
 */
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { option, compileC, startTarget, sleep, median } = require('./lib');

const ROOT = path.join(__dirname, '..');
const MINUTES = option('minutes', 10);

function get(url) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => resolve({ ok: res.statusCode === 200, ms: Number(process.hrtime.bigint() - start) / 1e6, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ ok: false, ms: Number(process.hrtime.bigint() - start) / 1e6, body: '' }));
  });
}

/** utime + stime of a process, in ms. */
function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
}
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

async function main() {
  const target = compileC(path.join(ROOT, 'test', 'targets', 'target.c'), 'target');
  const dir = fs.mkdtempSync('/tmp/iokit-snap-serve-soak-');
  const fifo = path.join(dir, 'reader.fifo');
  execFileSync('mkfifo', [fifo]);
  const writer = fs.openSync(fifo, fs.constants.O_RDWR);
  const targets = [];
  const add = async (role, binary, args) => targets.push({ role, ...(await startTarget(binary, args)) });
  try {
    await add('idle pool', target, ['threads', '100']);
    await add('idle pool 2', target, ['threads', '50']);
    await add('epoll server', target, ['epoll-idle']);
    await add('poll loop', target, ['poll-idle']);
    await add('deadlock', target, ['deadlock']);
    await add('fifo reader', target, ['fifo-reader', fifo]);
    await add('spinner', target, ['spin']);
    await add('stopped', target, ['sleep']);
    await add('sleeper', target, ['sleep']);
    await add('idle pool 3', target, ['threads', '20']);
    process.kill(targets.find((t) => t.role === 'stopped').pid, 'SIGSTOP');
    const pids = targets.map((t) => t.pid);
    const serve = spawn(process.execPath, [path.join(ROOT, 'bin', 'iokit-snap.js'), 'serve', '--listen', '127.0.0.1:0', '--json', ...pids.flatMap((p) => ['--pid', String(p)])], { stdio: ['ignore', 'pipe', 'inherit'] });
    const address = await new Promise((resolve, reject) => {
      let out = '';
      serve.stdout.setEncoding('utf8').on('data', (c) => {
        out += c;
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line).metrics);
      });
      serve.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
    });
    console.log(`serve-soak: ${targets.length} targets (${pids.length} pids, ${targets.map((t) => t.role).join(', ')}), ${MINUTES} min, scraping ${address} every second`);
    console.log('minute  serve RSS MB  fds  serve CPU %  peer (ps -L) CPU %  scrape median ms  max ms  failed');
    const minutes = [];
    let last = { serve: cpuMs(serve.pid), peer: 0, at: Date.now() };
    let body = '';
    for (let m = 1; m <= MINUTES; m++) {
      const latencies = [];
      let failed = 0;
      for (let s = 0; s < 60; s++) {
        const tick = Date.now();
        const [metrics, health] = await Promise.all([get(address), get(address.replace(/\/metrics$/, '/healthz'))]);
        latencies.push(metrics.ms);
        if (!metrics.ok || !health.ok) failed++;
        if (metrics.ok) body = metrics.body;
        // The peer: every target's threads, once a second, with ps.
        const ps = spawn('ps', ['-L', '-o', 'pid,tid,stat,time,wchan', '-p', pids.join(',')], { stdio: 'ignore' });
        await new Promise((resolve) => ps.once('exit', resolve));
        await sleep(Math.max(0, 1000 - (Date.now() - tick)));
      }
      // The peer's CPU: what its children used (ps), from this process's children's rusage.
      const children = childrenCpuMs();
      const now = { serve: cpuMs(serve.pid), peer: children, at: Date.now() };
      const wall = now.at - last.at;
      const row = {
        minute: m,
        rss: rssMb(serve.pid),
        fds: fds(serve.pid),
        cpu: (100 * (now.serve - last.serve)) / wall,
        peer: (100 * (now.peer - last.peer)) / wall,
        median: median(latencies),
        max: Math.max(...latencies),
        failed,
      };
      last = now;
      minutes.push(row);
      console.log(
        `${String(m).padStart(6)}  ${row.rss.toFixed(1).padStart(12)}  ${String(row.fds).padStart(3)}  ${row.cpu.toFixed(2).padStart(11)}  ${row.peer.toFixed(2).padStart(18)}  ${row.median.toFixed(1).padStart(16)}  ${row.max.toFixed(1).padStart(6)}  ${String(failed).padStart(6)}`,
      );
    }
    serve.kill('SIGTERM');
    const code = await new Promise((resolve) => serve.once('exit', resolve));
    const verdict = (role) => {
      const pid = targets.find((t) => t.role === role).pid;
      const m = new RegExp(`^iokit_snap_process_verdict\\{[^}]*pid="${pid}"[^}]*\\} (\\d+)`, 'm').exec(body);
      return m === null ? null : Number(m[1]);
    };
    const second = minutes[Math.min(1, minutes.length - 1)];
    const final = minutes[minutes.length - 1];
    const failures = minutes.reduce((n, r) => n + r.failed, 0);
    const checks = [
      [`failed scrapes ${failures}`, failures === 0],
      [`fds ${second.fds} → ${final.fds}`, final.fds <= second.fds * 1.1 + 2],
      [`RSS ${second.rss.toFixed(1)} → ${final.rss.toFixed(1)} MB`, final.rss <= second.rss * 1.1],
      [`deadlock verdict ${verdict('deadlock')} (2 = hung)`, verdict('deadlock') === 2],
      [`idle pool verdict ${verdict('idle pool') ?? 'absent'} (healthy processes: 0 or absent)`, (verdict('idle pool') ?? 0) === 0],
      [`serve exit status on SIGTERM ${code}`, code === 0],
    ];
    for (const [what, ok] of checks) console.log(`  ${ok ? 'ok  ' : 'MISS'} ${what}`);
    // What serve said about each process that is not healthy, from the last scrape.
    for (const t of targets) {
      const lines = body.split('\n').filter((l) => l.includes(`pid="${t.pid}"`) && /^iokit_snap_process_(verdict|findings)\{/.test(l));
      if (lines.some((l) => / [12]$/.test(l) && l.startsWith('iokit_snap_process_verdict'))) console.log(`  ${t.role} (pid ${t.pid}):\n    ${lines.join('\n    ')}`);
    }
    process.exitCode = checks.every(([, ok]) => ok) ? 0 : 1;
  } finally {
    for (const t of targets) {
      try {
        process.kill(t.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    fs.closeSync(writer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU ms of this process's waited-for children (the ps runs). */
function childrenCpuMs() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
