#!/usr/bin/env node
/*
 * The goroutines of a Go program with many of them, read from its memory, against what the
 * program pays to print its own (runtime.Stack through pprof debug=2, on SIGUSR1), in one run:
 *   (a) sampleGoroutines(pid), the first read (the binary analysed: symbols, DWARF, pclntab)
 *   (b) sampleGoroutines(pid) again (binary cached): the cost of each later read
 *   (c) the program's own dump, timed from the signal to the file written (the peer: it stops
 *       the world while it walks every goroutine)
 *   (d) sampleThreads(pid), for scale
 * on test/targets/go/main.go `many N` (N goroutines blocked on one channel), built plain and
 * stripped. Each read must find the N goroutines in "chan receive", or the run fails.
 *
 * Build first:  npm run build:native && npm run build
 * Run:          node bench/goroutines.js [--goroutines N] [--rounds N]
 * Needs go (apt-get install golang-go); skipped with a line without it. Linux only.
 */
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { sampleGoroutines, sampleThreads } = require('../lib');
const { lastReadStats } = require('../lib/runtimes/go');
const { forgetGoBinaries } = require('../lib/runtimes/go-binary');
const { option, median, msSince } = require('./lib');

const N = option('goroutines', 10000);
const ROUNDS = option('rounds', 9);
const SOURCE = path.join(__dirname, '..', 'test', 'targets', 'go');

function build(flags) {
  const version = execFileSync('go', ['version'], { encoding: 'utf8' });
  const hash = crypto.createHash('sha256').update(fs.readFileSync(path.join(SOURCE, 'main.go'))).update(version).update(flags.join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'iokit-snap-bench-go', hash);
  const binary = path.join(dir, 'goroutines');
  if (!fs.existsSync(binary)) {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('go', ['build', ...flags, '-o', `${binary}.tmp`, '.'], { cwd: SOURCE, env: { ...process.env, CGO_ENABLED: '0', GOCACHE: process.env.GOCACHE ?? path.join(os.tmpdir(), 'iokit-snap-go', 'cache') } });
    fs.renameSync(`${binary}.tmp`, binary);
  }
  return binary;
}

async function start(binary, dump) {
  const child = spawn(binary, ['many', String(N)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, GOROUTINE_DUMP: dump } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  await new Promise((resolve, reject) => {
    const check = () => out.includes('ready') && resolve();
    child.stdout.on('data', check);
    child.once('exit', (code) => reject(new Error(`the Go target exited (${code})`)));
  });
  return { child, dumps: () => (out.match(/^dumped$/gm) ?? []).length };
}

function check(result) {
  const blocked = (result.goroutines ?? []).filter((g) => g.waitReason === 'chan receive' && g.start === 'main.many.func1').length;
  if (blocked !== N) throw new Error(`read ${blocked} of ${N} goroutines in chan receive; limits: ${JSON.stringify(result.limits)}`);
}

async function selfDumpMs(target, dump) {
  const before = target.dumps();
  const started = process.hrtime.bigint();
  target.child.kill('SIGUSR1');
  while (target.dumps() === before) await new Promise((resolve) => setImmediate(resolve));
  const took = msSince(started);
  const size = fs.statSync(dump).size;
  return { took, size };
}

async function main() {
  if (process.platform !== 'linux') return console.log('goroutines: Linux only; skipped');
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    return console.log('goroutines: go is not installed (apt-get install golang-go); skipped');
  }
  for (const [kind, flags] of [['plain', []], ['stripped', ['-ldflags=-s -w']]]) {
    const dump = path.join(os.tmpdir(), `iokit-snap-bench-dump-${process.pid}.txt`);
    const target = await start(build(flags), dump);
    const pid = target.child.pid;
    try {
      forgetGoBinaries();
      let started = process.hrtime.bigint();
      const first = await sampleGoroutines(pid, { timeoutMs: 60000 });
      const cold = msSince(started);
      check(first);
      const warm = [];
      const own = [];
      const threads = [];
      let stats;
      let dumpBytes = 0;
      for (let i = 0; i < ROUNDS; i++) {
        started = process.hrtime.bigint();
        const again = await sampleGoroutines(pid, { timeoutMs: 60000 });
        warm.push(msSince(started));
        check(again);
        stats = { ...lastReadStats };
        const self = await selfDumpMs(target, dump);
        own.push(self.took);
        dumpBytes = self.size;
        started = process.hrtime.bigint();
        await sampleThreads(pid);
        threads.push(msSince(started));
      }
      const w = median(warm);
      console.log(`${kind} build, ${N} goroutines (${stats.goroutines} records incl. runtime's), ${ROUNDS} rounds, medians:`);
      console.log(`  sampleGoroutines, first (binary analysed)  ${cold.toFixed(1)} ms`);
      console.log(`  sampleGoroutines, later                    ${w.toFixed(1)} ms  (${((w * 1e3) / N).toFixed(2)} µs per goroutine)`);
      console.log(`    memory read per sample                   ${stats.bytes} bytes in ${stats.calls} readMemory calls (${(stats.bytes / stats.goroutines).toFixed(0)} bytes per goroutine)`);
      console.log(`  the program's own dump (stops the world)   ${median(own).toFixed(1)} ms  (${dumpBytes} bytes of text)`);
      console.log(`  sampleThreads, for scale                   ${median(threads).toFixed(1)} ms`);
      console.log(`  ratio later read / own dump                ${(w / median(own)).toFixed(2)}`);
    } finally {
      target.child.kill('SIGKILL');
      fs.rmSync(dump, { force: true });
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
