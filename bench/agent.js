#!/usr/bin/env node
/*
 * The cost of leaving `iokit-snap serve` on everywhere, with its peers in the same run:
 *
 *   (a) overhead: serve watching 10 processes of 100 threads each at 1 Hz, scraped every 15 s
 *       as Prometheus would: its own utime+stime over >= 60 s of wall time, as % of one core,
 *       and its RSS (budget <= 50 MB);
 *   (b) the floor: bench/held-floor.c, a C program that makes exactly the reads serve must
 *       make for the same threads at the same rate (every thread's stat and schedstat each
 *       second, the rest of its files when it ran, on fds held open, with pread); its CPU over
 *       the same window. Budget: serve (threads only, --no-accelerators, the floor's job)
 *       <= 1.5x the floor's CPU. serve as deployed (the accelerators too) is printed beside it;
 *   (c) for reference, what shell-based exporters do for the same job: every interval, spawn
 *       `ps -L` for the 10 processes and read the PCI devices' sysfs attributes, in a node
 *       process of its own; its CPU (with the ps children it reaped);
 *   (d) memory stays flat: createMetrics() + a collector at a 1 ms interval on one
 *       10-thread process, RSS (after a GC) after 10,000 and after 100,000 samples, scraped
 *       every 1,000 (budget: within 5 %); beside it, in its own process, the floor: one
 *       reused createThreadSampler on the same process sampled as many times, so growth
 *       below the metrics layer shows as such.
 *
 * All contenders of (a)-(c) run at the same time, over the same window, so a change of load
 * on a shared machine moves them all.
 *
 * Run: npm run build && node --expose-gc bench/agent.js [--seconds 60] [--samples 100000] [--overhead-only]
 * (--overhead-only: (a)-(c) alone, about 70 s)
 * Exit code 1 when a budget is missed. Linux only (reads /proc for the figures).
 */
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { compileC, option, sleep, startReady, startTarget } = require('./lib');

const ROOT = path.join(__dirname, '..');
const TICK_NS = 1e9 / 100; // USER_HZ: /proc/<pid>/stat counts clock ticks of 10 ms

const SECONDS = Math.max(60, option('seconds', 60));
const PROCESSES = 10;
const THREADS = 100;
const SCRAPE_EVERY_MS = 15000;
const LOW_SAMPLES = option('samples', 100000) / 10;
const HIGH_SAMPLES = option('samples', 100000);

const CPU_BUDGET = 1.5; // serve's CPU / the held-fd C floor's
const RSS_BUDGET_BYTES = 50 * 1048576;

/** utime + stime (+ the reaped children's, for the peer's ps), ns; and RSS, bytes. */
function usage(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)[1]);
  return { cpuNs: ticks * TICK_NS, rssBytes: kb('VmRSS') * 1024, hwmBytes: kb('VmHWM') * 1024 };
}

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const mb = (bytes) => (bytes / 1048576).toFixed(1);

/** The peer: a shell exporter's loop, in its own node process so its CPU is its own. */
const PEER = `
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const pids = process.argv[1].split(',');
function sysfs() {
  const lines = [];
  const root = '/sys/bus/pci/devices';
  for (const dev of fs.readdirSync(root)) {
    const read = (f) => { try { return fs.readFileSync(root + '/' + dev + '/' + f, 'utf8').trim(); } catch { return ''; } };
    const cls = read('class');
    lines.push(dev + ' ' + cls + ' ' + read('power_state') + ' ' + read('power/runtime_status'));
    if (/^0x03|^0x12/.test(cls)) lines.push(read('gpu_busy_percent') + ' ' + read('mem_info_vram_used'));
  }
  return lines;
}
function tick() {
  execFile('ps', ['-L', '-o', 'pid,tid,stat,time,wchan:32', '-p', pids.join(',')], { maxBuffer: 16 << 20 }, (error, stdout) => {
    const states = {};
    for (const line of stdout.split('\\n').slice(1)) {
      const [pid, , stat] = line.trim().split(/\\s+/);
      if (pid) states[pid + ' ' + stat[0]] = (states[pid + ' ' + stat[0]] || 0) + 1;
    }
    const text = Object.entries(states).map(([k, n]) => k + ' ' + n).concat(sysfs()).join('\\n');
    if (text.length === 0) process.exitCode = 1;
  });
}
setInterval(tick, 1000);
process.stdout.write('ready\\n');
`;

async function overhead(pids) {
  const serveArgs = (extra) => [
    path.join(ROOT, 'bin', 'iokit-snap.js'),
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--json',
    '--interval',
    '1s',
    '--stall',
    '10s',
    ...extra,
    ...pids.flatMap((pid) => ['--pid', String(pid)]),
  ];
  const heldFloor = compileC(path.join(__dirname, 'held-floor.c'), 'held-floor', ['-O2']);
  const started = [];
  try {
    const contenders = {
      serve: await startReady(process.execPath, serveArgs(['--no-accelerators'])),
      deployed: await startReady(process.execPath, serveArgs([])),
      floor: await startReady(heldFloor, ['--interval-ms', '1000', ...pids.map(String)]),
      ps: await startReady(process.execPath, ['-e', PEER, pids.join(',')]),
    };
    started.push(...Object.values(contenders));
    const urls = [contenders.serve, contenders.deployed].map((c) => JSON.parse(c.line).metrics);
    // Warm up: all loaded and a few intervals in.
    await sleep(5000);
    const scrape = () => Promise.all(urls.map(get));
    await scrape();
    const before = Object.fromEntries(Object.entries(contenders).map(([name, c]) => [name, usage(c.child.pid)]));
    const startMs = Date.now();
    let scrapes = 0;
    let lastText = '';
    while (Date.now() - startMs < SECONDS * 1000) {
      await sleep(Math.min(SCRAPE_EVERY_MS, SECONDS * 1000 - (Date.now() - startMs)));
      [lastText] = await scrape();
      scrapes++;
    }
    const wallNs = (Date.now() - startMs) * 1e6;
    const after = Object.fromEntries(Object.entries(contenders).map(([name, c]) => [name, usage(c.child.pid)]));
    const figures = (name) => ({ cpu: (after[name].cpuNs - before[name].cpuNs) / wallNs, rss: after[name].rssBytes, hwm: after[name].hwmBytes });
    const samples = Number(/^iokit_snap_samples_total (\d+)/m.exec(lastText)[1]);
    const watched = Number(/^iokit_snap_watched_processes (\d+)/m.exec(lastText)[1]);
    const threads = [...lastText.matchAll(/^iokit_snap_process_threads\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    return {
      wallS: wallNs / 1e9,
      scrapes,
      samples,
      watched,
      threads,
      floorThreads: Number(/threads=(\d+)/.exec(contenders.floor.line)?.[1]),
      serve: figures('serve'),
      deployed: figures('deployed'),
      floor: figures('floor'),
      ps: figures('ps'),
    };
  } finally {
    for (const { child } of started) child.kill('SIGTERM');
  }
}

/** The floor of (d): the bare sampler, as many samples, RSS after a GC at the same counts. */
const FLOOR = `
const lib = require(process.argv[1]);
const [pid, low, high] = process.argv.slice(2).map(Number);
(async () => {
  const sampler = lib.createThreadSampler(pid, { detail: 'full', kernelStacks: false });
  const out = {};
  for (let i = 1; i <= high; i++) {
    await sampler.sample();
    if (i === low || i === high) { global.gc(); out[i] = process.memoryUsage(); }
  }
  sampler.close();
  process.stdout.write(JSON.stringify(out) + '\\n');
})();
`;

function floor(pid) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '-e', FLOOR, path.join(ROOT, 'lib'), String(pid), String(LOW_SAMPLES), String(HIGH_SAMPLES)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the floor exited ${code}`))));
  });
}

/** (d): in this process, with a GC before each RSS reading. */
async function memory(pid) {
  const client = require('prom-client');
  const { createMetrics } = require(path.join(ROOT, 'lib'));
  const registry = new client.Registry();
  const metrics = createMetrics({ registry });
  const collector = metrics.watch({ pids: [pid], intervalMs: 1, stallMs: 1000, accelerators: false });
  let samples = 0;
  const readings = {};
  const startMs = Date.now();
  await new Promise((resolve) => {
    collector.on('sample', () => {
      samples++;
      if (samples % 1000 === 0) void registry.metrics();
      if (samples === LOW_SAMPLES || samples === HIGH_SAMPLES) {
        global.gc?.();
        readings[samples] = process.memoryUsage();
        if (samples === HIGH_SAMPLES) resolve();
      }
    });
  });
  await collector.close();
  return { low: readings[LOW_SAMPLES], high: readings[HIGH_SAMPLES], seconds: (Date.now() - startMs) / 1000 };
}

async function main() {
  if (process.platform !== 'linux') {
    console.log('bench/agent.js reads /proc for its figures: Linux only');
    return;
  }
  if (typeof global.gc !== 'function') console.log('(run with --expose-gc for the memory figures to mean something)');
  const target = compileC(path.join(ROOT, 'test', 'targets', 'target.c'), 'target');
  const children = [];
  try {
    for (let i = 0; i < PROCESSES; i++) children.push(await startTarget(target, ['threads', String(THREADS - 1)]));
    const pids = children.map((c) => c.pid);
    console.log(
      `(a-c) serve, its C floor and a ps-based exporter watching ${PROCESSES} processes x ${THREADS} threads at 1 Hz for ${SECONDS} s, ` +
        `at the same time, on ${os.cpus().length} CPUs (load ${os.loadavg()[0].toFixed(1)})`,
    );
    const o = await overhead(pids);
    const pct = (cpu) => `${(cpu * 100).toFixed(2)} % of one core`;
    const ratio = o.serve.cpu / o.floor.cpu;
    const ok = { cpu: ratio <= CPU_BUDGET, rss: o.serve.rss <= RSS_BUDGET_BYTES && o.deployed.rss <= RSS_BUDGET_BYTES };
    console.log(`  serve --no-accelerators: ${pct(o.serve.cpu)}, RSS ${mb(o.serve.rss)} MB, peak ${mb(o.serve.hwm)} MB`);
    console.log(`  C floor (held fds, pread): ${pct(o.floor.cpu)}, RSS ${mb(o.floor.rss)} MB; ${o.floorThreads} threads`);
    console.log(`  ratio serve / floor CPU: ${ratio.toFixed(2)}x (budget <= ${CPU_BUDGET}x) ${ok.cpu ? 'ok' : 'MISSED'}`);
    console.log(`  serve as deployed (the accelerators too): ${pct(o.deployed.cpu)} (${(o.deployed.cpu / o.floor.cpu).toFixed(2)}x the floor), RSS ${mb(o.deployed.rss)} MB, peak ${mb(o.deployed.hwm)} MB`);
    console.log(`  RSS budget <= ${mb(RSS_BUDGET_BYTES)} MB ${ok.rss ? 'ok' : 'MISSED'}`);
    console.log(`  ${o.samples} samples of ${o.watched} processes, ${o.threads} threads, ${o.scrapes} scrapes in ${o.wallS.toFixed(1)} s`);
    console.log(`  reference, ps -L + sysfs every 1 s: ${pct(o.ps.cpu)}, RSS ${mb(o.ps.rss)} MB (${(o.ps.cpu / o.deployed.cpu).toFixed(1)}x serve as deployed)`);

    if (process.argv.includes('--overhead-only')) {
      process.exitCode = ok.cpu && ok.rss ? 0 : 1;
      return;
    }
    console.log(`\n(d) memory: createMetrics() + a collector at 1 ms on one 10-thread process`);
    const small = await startTarget(target, ['threads', '9']);
    children.push(small);
    const [m, f] = await Promise.all([memory(small.pid), floor(small.pid)]);
    const growth = m.high.rss / m.low.rss - 1;
    const okMemory = Math.abs(growth) <= 0.05;
    const line = (u) => `RSS ${mb(u.rss)} MB, heap ${mb(u.heapUsed)} MB, external ${mb(u.external)} MB`;
    console.log(`  after ${LOW_SAMPLES} samples: ${line(m.low)}`);
    console.log(`  after ${HIGH_SAMPLES} samples: ${line(m.high)}`);
    console.log(`  growth ${(growth * 100).toFixed(1)} % (budget within 5 %) ${okMemory ? 'ok' : 'MISSED'}, ${m.seconds.toFixed(0)} s`);
    const floorGrowth = f[HIGH_SAMPLES].rss / f[LOW_SAMPLES].rss - 1;
    console.log(`  floor (a bare reused createThreadSampler, same counts): ${mb(f[LOW_SAMPLES].rss)} -> ${mb(f[HIGH_SAMPLES].rss)} MB RSS, growth ${(floorGrowth * 100).toFixed(1)} %, heap ${mb(f[LOW_SAMPLES].heapUsed)} -> ${mb(f[HIGH_SAMPLES].heapUsed)} MB`);
    process.exitCode = ok.cpu && ok.rss && okMemory ? 0 : 1;
  } finally {
    for (const { child } of children) child.kill('SIGKILL');
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
