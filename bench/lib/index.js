/*
 * What the benchmarks share: command-line options, medians and timers, C programs compiled
 * once into a cache, and target processes started and awaited. A folder of its own because
 * bench/run.js runs every *.js directly in bench/ as a benchmark.
 */
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** `--name N` from the command line as a number, or `fallback`. */
function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** The median: the middle value, or the mean of the two middle ones. */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Milliseconds since `start`, a process.hrtime.bigint(). */
function msSince(start) {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Before each timed section, the same short idle pause for every contender, so none pays for
 * the exit of the process the previous one spawned.
 */
const settle = () => sleep(25);

/**
 * `source` compiled with $CC (or cc) and `flags` into a cache under the temporary directory,
 * keyed by the source and the flags: compiled once, reused by later runs. Returns the binary.
 */
function compileC(source, name, flags = ['-O2', '-pthread']) {
  const hash = crypto.createHash('sha256').update(fs.readFileSync(source)).update(JSON.stringify(flags)).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'iokit-snap-bench', hash);
  const binary = path.join(dir, name);
  if (!fs.existsSync(binary)) {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync(process.env.CC || 'cc', [...flags, '-o', `${binary}.tmp`, source]);
    fs.renameSync(`${binary}.tmp`, binary);
  }
  return binary;
}

/** Spawn `command` and resolve with { child, line } once it has written its first line; reject if it exits first. */
function startReady(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve({ child, line: out.split('\n')[0] });
    });
    child.once('exit', (code) => reject(new Error(`${path.basename(command)} ${args.join(' ')} exited (${code}) before it was ready`)));
  });
}

/**
 * A test target (test/targets/target.c, compiled with compileC) running `args`, once it says
 * `ready pid=N`: { child, pid }. With `grandchild`, `sh` starts it and waits on it, so it is not
 * this process's child (as a debugger meets a process it did not start); `child` is then the sh,
 * and killing it leaves the target: kill `pid` too.
 */
async function startTarget(binary, args, { grandchild = false } = {}) {
  const { child, line } = grandchild ? await startReady('sh', ['-c', '"$0" "$@" & wait', binary, ...args]) : await startReady(binary, args);
  const ready = /^ready pid=(\d+)/.exec(line);
  if (ready === null) {
    child.kill('SIGKILL');
    throw new Error(`${path.basename(binary)} ${args.join(' ')} said ${JSON.stringify(line)}, not "ready pid=N"`);
  }
  return { child, pid: Number(ready[1]) };
}

module.exports = { option, median, msSince, sleep, settle, compileC, startReady, startTarget };
