/*
 * Real programs in real states, for bench/verdicts.js (the verdict matrix) and the
 * test/verdicts-*.test.ts tests: Debian's redis, PostgreSQL, nginx, OpenJDK, Go, CPython and
 * Node, a libfuse3 daemon, coreutils, and small programs of our own in those runtimes
 * (bench/verdicts/{c,go,java,python,node}/, and test/targets/target.c), each started and put in
 * its state, the state awaited by polling with a deadline, never by sleeping a fixed time.
 *
 *   const scope = new Scope('redis idle');
 *   try {
 *     const redis = await startRedis(scope);          // { pid, pids, socket, cli() }
 *     ...
 *   } finally {
 *     await scope.close();                            // every process and temp dir it made
 *   }
 *
 * Everything a starter makes belongs to a Scope: processes (each in a process group of its
 * own, so what they start goes with them), temp directories, FUSE mounts. scope.close() ends
 * them in reverse order (a gentle signal first where the program needs one to clean up, then
 * SIGKILL to the whole group) and removes the directories; closeAllScopesSync() does the same
 * synchronously, for an 'exit' handler; installCleanupHandlers() runs it on SIGINT/SIGTERM.
 *
 * Programs we compile (C, Go, Java), and an initdb'd cluster, are made once into a cache under
 * os.tmpdir() (iokit-snap-real-programs-<uid>/<what>-<hash of source, flags, arch>), shared by
 * test processes and runs; an edited source builds anew. Plain CommonJS, so that the benchmark
 * runs it without a build; the tests see its types through real-programs.d.ts.
 */
'use strict';
const { execFile, spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');

const ROOT = path.join(__dirname, '..', '..');
const SOURCES = path.join(ROOT, 'bench', 'verdicts');
const CLI = path.join(ROOT, 'bin', 'iokit-snap.js');
// One per user: root's builds and cluster are not another user's to write in.
const CACHE = path.join(os.tmpdir(), `iokit-snap-real-programs-${typeof process.getuid === 'function' ? process.getuid() : 'user'}`);
const run = promisify(execFile);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or undefined after `ms` (the timer cleared either way, so it keeps nothing alive). */
function within(promise, ms) {
  let timer;
  return Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

// ------------------------------------------------------------------------------------------
// Waiting

/**
 * Poll `probe` every `intervalMs` until it returns something truthy, and return that. A probe
 * that throws is retried; after `timeoutMs` this fails naming `what` and the last value or error.
 */
async function waitFor(probe, what, timeoutMs = 20000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError !== undefined ? `; last error: ${lastError?.message ?? String(lastError)}` : `; last value: ${String(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

// ------------------------------------------------------------------------------------------
// /proc, read directly: the states are checked without the tool under test.

function readProc(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Each thread of `pid`: { tid, state (one letter), wchan, syscall (number, or -1 running, null) }. */
function threadsOf(pid) {
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const threads = [];
  for (const tid of tids) {
    const stat = readProc(`/proc/${pid}/task/${tid}/stat`);
    if (stat === null) continue;
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    const wchan = (readProc(`/proc/${pid}/task/${tid}/wchan`) ?? '').trim();
    const call = (readProc(`/proc/${pid}/task/${tid}/syscall`) ?? '').trim().split(' ')[0];
    threads.push({ tid: Number(tid), state, wchan, syscall: call === 'running' ? -1 : call === '' ? null : Number(call) });
  }
  return threads;
}

/** The children of `pid` (every thread's children file). */
function childrenOf(pid) {
  const out = [];
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    for (const child of (readProc(`/proc/${pid}/task/${tid}/children`) ?? '').trim().split(/\s+/)) if (child) out.push(Number(child));
  }
  return out;
}

function alive(pid) {
  const stat = readProc(`/proc/${pid}/stat`);
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Syscall numbers for the calls the starters wait for (x86-64 and arm64 only). */
const SYSCALLS = {
  x64: { read: 0, poll: 7, nanosleep: 35, futex: 202, clock_nanosleep: 230, epoll_wait: 232, ppoll: 271, epoll_pwait: 281, wait4: 61, recvfrom: 45, write: 1 },
  arm64: { read: 63, poll: -2, nanosleep: 101, futex: 98, clock_nanosleep: 115, epoll_wait: -2, ppoll: 73, epoll_pwait: 22, wait4: 260, recvfrom: 207, write: 64 },
};

/** Whether `thread` (from threadsOf) sleeps in one of the named calls. */
function inCall(thread, ...names) {
  const table = SYSCALLS[process.arch];
  if (table === undefined || thread.state !== 'S') return false;
  return names.some((name) => table[name] !== undefined && table[name] === thread.syscall);
}

// ------------------------------------------------------------------------------------------
// Scopes: what was started, and how to end it

/**
 * The environment for a program under judgement: ours, less what a test runner adds to
 * instrument Node processes (NODE_OPTIONS, NODE_V8_COVERAGE, tap's own), plus `extra`.
 */
function programEnv(extra = {}) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key === 'NODE_OPTIONS' || key === 'NODE_V8_COVERAGE' || key.startsWith('_TAPJS_') || key.startsWith('TAP_') || key === 'TAP') delete env[key];
  }
  return { ...env, ...extra };
}

const scopes = new Set();
let exitHook = false;

class Scope {
  constructor(label) {
    this.label = label;
    this.cleanups = [];
    this.closed = false;
    scopes.add(this);
    // Whatever a process leaves open when it exits (a test that failed before its teardown) is ended then.
    if (!exitHook) {
      exitHook = true;
      process.on('exit', closeAllScopesSync);
    }
  }

  /** Run `async` at close (and `sync`, if given, from closeAllScopesSync); last registered runs first. */
  defer(async, sync) {
    this.cleanups.push({ async, sync: sync ?? null });
  }

  /** A new directory under os.tmpdir(), removed at close. `mode`: chmod it (postgres, nginx workers). */
  tmpdir(prefix, { mode, owner } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `iokit-snap-verdicts-${prefix}-`));
    if (mode !== undefined) fs.chmodSync(dir, mode);
    if (owner !== undefined) fs.chownSync(dir, owner.uid, owner.gid);
    const remove = () => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    this.defer(async () => remove(), remove);
    return dir;
  }

  /**
   * Spawn `command` in a process group of its own. Options: uid/gid/cwd/env; `stdin`: 'pipe' to
   * keep a pipe open to it (else /dev/null); `stop`: a signal to send it first at close, then up
   * to `graceMs` for it to exit before the group gets SIGKILL. Returns a Proc.
   */
  spawn(command, args, options = {}) {
    if (this.closed) throw new Error(`${this.label}: scope already closed`);
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? programEnv(),
      uid: options.uid,
      gid: options.gid,
      detached: true,
      stdio: [options.stdin === 'pipe' ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const proc = new Proc(child, `${path.basename(command)} ${args.join(' ')}`.slice(0, 120));
    const stop = async () => {
      if (options.stop !== undefined && !proc.exited) {
        signalGroup(proc.pid, 'SIGCONT');
        try {
          process.kill(proc.pid, options.stop);
        } catch {
          /* gone */
        }
        await within(proc.exit, options.graceMs ?? 3000);
      }
      signalGroup(proc.pid, 'SIGKILL');
      signalGroup(proc.pid, 'SIGCONT');
      if (!proc.exited) await within(proc.exit, 5000);
      child.stdin?.destroy();
    };
    this.defer(stop, () => {
      signalGroup(proc.pid, 'SIGKILL');
      signalGroup(proc.pid, 'SIGCONT');
    });
    return proc;
  }

  /** End everything this scope made, in reverse order. Safe to call twice. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    const errors = [];
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup.async();
      } catch (error) {
        errors.push(error);
      }
    }
    this.cleanups = [];
    scopes.delete(this);
    if (errors.length > 0) throw new Error(`${this.label}: cleanup failed: ${errors.map((e) => e.message).join('; ')}`);
  }

  closeSync() {
    this.closed = true;
    for (const cleanup of this.cleanups.reverse()) {
      try {
        cleanup.sync?.();
      } catch {
        /* best effort on the way out */
      }
    }
    this.cleanups = [];
    scopes.delete(this);
  }
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* the group is gone */
  }
}

/** Every open scope, ended now (for process.on('exit')). */
function closeAllScopesSync() {
  for (const scope of [...scopes]) scope.closeSync();
}

/** Every open scope, ended (for SIGINT/SIGTERM). */
async function closeAllScopes() {
  await Promise.allSettled([...scopes].map((scope) => scope.close()));
}

/**
 * For a program (the benchmark): on SIGINT/SIGTERM, close every scope, then exit 130/143. (On
 * exit, whatever is left is killed synchronously in any case: see Scope.)
 */
function installCleanupHandlers(log = (line) => process.stderr.write(`${line}\n`)) {
  let closing = false;
  const onSignal = (signal) => {
    if (closing) return;
    closing = true;
    log(`${signal}: stopping every program started and removing their directories…`);
    const hard = setTimeout(() => process.exit(signal === 'SIGINT' ? 130 : 143), 15000);
    closeAllScopes().finally(() => {
      clearTimeout(hard);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** A spawned process: its output, its ready line, its exit. */
class Proc {
  constructor(child, what) {
    this.child = child;
    this.pid = child.pid;
    this.what = what;
    this.stdout = '';
    this.stderr = '';
    this.exited = false;
    this.status = null;
    this.listeners = new Set();
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      this.stdout += chunk;
      for (const listener of this.listeners) listener();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      this.stderr += chunk;
      if (this.stderr.length > 1 << 20) this.stderr = this.stderr.slice(-(1 << 19));
    });
    this.exit = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exited = true;
        this.status = { code, signal };
        for (const listener of this.listeners) listener();
        resolve(this.status);
      });
      child.once('error', (error) => {
        this.exited = true;
        this.status = { code: null, signal: null, error };
        for (const listener of this.listeners) listener();
        resolve(this.status);
      });
    });
  }

  /** Resolve with the first stdout line matching `pattern` (its match); reject if it exits first or after timeoutMs. */
  line(pattern, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (const line of this.stdout.split('\n')) {
          const match = pattern.exec(line);
          if (match !== null) return done(null, match);
        }
        if (this.exited) return done(new Error(`${this.what} exited (${JSON.stringify(this.status)}) before printing ${pattern}; stderr: ${this.stderr.slice(-600)}`));
        return undefined;
      };
      const timer = setTimeout(() => done(new Error(`${this.what} printed no line matching ${pattern} within ${timeoutMs} ms; stdout: ${this.stdout.slice(-300)}; stderr: ${this.stderr.slice(-600)}`)), timeoutMs);
      const done = (error, match) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (error) reject(error);
        else resolve(match);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** The `ready pid=N key=value…` line as { pid, key: value… }. */
  async ready(timeoutMs = 30000) {
    const match = await this.line(/^ready pid=\d+.*$/, timeoutMs);
    const info = {};
    for (const pair of match[0].trim().split(/\s+/).slice(1)) {
      const at = pair.indexOf('=');
      if (at > 0) info[pair.slice(0, at)] = pair.slice(at + 1);
    }
    info.pid = Number(info.pid);
    return info;
  }
}

// ------------------------------------------------------------------------------------------
// Runtimes: found, installed (apt, as root) or reported missing

function which(command) {
  if (command.includes('/')) return fs.existsSync(command) ? command : null;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const full = path.join(dir, command);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      return full;
    } catch {
      /* next */
    }
  }
  return null;
}

function postgresBin() {
  let versions = [];
  try {
    versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v));
  } catch {
    return null;
  }
  versions.sort((a, b) => (a === '15' ? -1 : b === '15' ? 1 : Number(b) - Number(a)));
  for (const v of versions) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (fs.existsSync(path.join(dir, 'postgres')) && fs.existsSync(path.join(dir, 'initdb'))) return dir;
  }
  return null;
}

/** Debian's CPython, not a shim in front of it (pyenv and the like are shell scripts). */
function python3() {
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : which('python3');
}

function postgresUser() {
  if (!isRoot) return { uid: process.getuid(), gid: process.getgid(), name: os.userInfo().username };
  const line = (readProc('/etc/passwd') ?? '').split('\n').find((l) => l.startsWith('postgres:'));
  if (line === undefined) return null;
  const [name, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), name };
}

/**
 * What each runtime needs: `check()` says what is missing (null: nothing), `packages` what apt
 * installs for it.
 */
const RUNTIMES = {
  c: { packages: ['gcc', 'libc6-dev'], check: () => (which(process.env.CC ?? 'cc') ? null : 'no C compiler (cc)') },
  fuse: {
    packages: ['fuse3', 'libfuse3-dev', 'pkg-config'],
    check: () =>
      !fs.existsSync('/dev/fuse') ? 'no /dev/fuse'
      : !which('fusermount3') ? 'no fusermount3 (fuse3)'
      : !which('pkg-config') || spawnSync('pkg-config', ['--exists', 'fuse3']).status !== 0 ? 'no libfuse3 headers (libfuse3-dev)'
      : !isRoot ? 'not root: mounting needs it here'
      : null,
  },
  redis: {
    packages: ['redis-server', 'redis-tools'],
    check: () => (!which('redis-server') ? 'no redis-server' : !which('redis-cli') || !which('redis-benchmark') ? 'no redis-cli/redis-benchmark (redis-tools)' : null),
  },
  postgres: {
    packages: ['postgresql-15'],
    check: () =>
      !postgresBin() ? 'no PostgreSQL server (/usr/lib/postgresql/N/bin/postgres)'
      : !which('psql') || !which('pgbench') ? 'no psql/pgbench'
      : !postgresUser() ? 'root, and no postgres user to run the server as (postgres refuses root)'
      : null,
  },
  nginx: { packages: ['nginx'], check: () => (which('nginx') || fs.existsSync('/usr/sbin/nginx') ? null : 'no nginx') },
  wrk: { packages: ['wrk'], check: () => (which('wrk') ? null : 'no wrk') },
  java: { packages: ['openjdk-17-jdk-headless'], check: () => (which('java') && which('javac') ? null : 'no java/javac (a JDK)') },
  go: { packages: ['golang-go'], check: () => (which('go') ? null : 'no go') },
  python: { packages: ['python3'], check: () => (python3() ? null : 'no python3') },
  node: { packages: [], check: () => null },
  coreutils: { packages: ['coreutils', 'gzip'], check: () => (['sh', 'gzip', 'wc', 'sleep', 'tail', 'sha256sum', 'seq', 'cat'].every((c) => which(c)) ? null : 'no coreutils/gzip') },
};

const availability = new Map();
let aptUpdated = false;

function apt(args) {
  return spawnSync('flock', ['/tmp/apt.lock', 'apt-get', ...args], {
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 600000,
  });
}

/**
 * Whether `name` (a key of RUNTIMES) can be used: null if so, else why not. With `install`
 * (and as root), a missing runtime is installed with apt first (`log` says so).
 */
function missing(name, { install = false, log = () => {} } = {}) {
  if (availability.has(name)) return availability.get(name);
  const runtime = RUNTIMES[name];
  let why = runtime.check();
  if (why !== null && install && isRoot && runtime.packages.length > 0 && which('apt-get')) {
    log(`installing ${runtime.packages.join(' ')} (${why})…`);
    let result = apt(['install', '-y', '--no-install-recommends', ...runtime.packages]);
    if (result.status !== 0 && !aptUpdated) {
      aptUpdated = true;
      apt(['update']);
      result = apt(['install', '-y', '--no-install-recommends', ...runtime.packages]);
    }
    why = runtime.check();
    if (why !== null) why += result.status !== 0 ? `; apt-get install ${runtime.packages.join(' ')} failed: ${(result.stderr ?? '').trim().split('\n').pop()}` : '';
  }
  availability.set(name, why);
  return why;
}

// ------------------------------------------------------------------------------------------
// Builds, cached by content

const builds = new Map();

/** Build into CACHE/<key>/ with `make(dir)`, once: in this process (memoized) and across them (rename). */
function cached(key, parts, make) {
  const hash = crypto.createHash('sha256');
  for (const part of parts) hash.update(part);
  hash.update(process.arch);
  const dir = path.join(CACHE, `${key}-${hash.digest('hex').slice(0, 16)}`);
  if (!builds.has(dir)) {
    builds.set(
      dir,
      (async () => {
        if (fs.existsSync(dir)) return dir;
        fs.mkdirSync(CACHE, { recursive: true });
        const partial = `${dir}.${process.pid}.tmp`;
        fs.rmSync(partial, { recursive: true, force: true });
        fs.mkdirSync(partial);
        try {
          await make(partial);
          fs.renameSync(partial, dir);
        } catch (error) {
          fs.rmSync(partial, { recursive: true, force: true });
          // Another process built it first.
          if (fs.existsSync(dir)) return dir;
          throw error;
        }
        return dir;
      })(),
    );
  }
  return builds.get(dir);
}

async function buildC(source, name, flags = [], libs = []) {
  const text = fs.readFileSync(source);
  const dir = await cached(`c-${name}`, [text, flags.join(' '), libs.join(' ')], async (out) => {
    const cc = process.env.CC ?? 'cc';
    await run(cc, ['-O1', '-pthread', ...flags, '-o', path.join(out, name), source, ...libs]);
  });
  return path.join(dir, name);
}

/** test/targets/target.c (deadlock, vfork-parent, fifo-reader…), the tests' own target. */
function targetBinary() {
  return buildC(path.join(ROOT, 'test', 'targets', 'target.c'), 'target');
}

function poolBinary() {
  return buildC(path.join(SOURCES, 'c', 'pool.c'), 'pool');
}

async function fuseBinary() {
  const flags = (await run('pkg-config', ['--cflags', 'fuse3'])).stdout.trim().split(/\s+/).filter(Boolean);
  const libs = (await run('pkg-config', ['--libs', 'fuse3'])).stdout.trim().split(/\s+/).filter(Boolean);
  return buildC(path.join(SOURCES, 'c', 'fuse.c'), 'fuse', flags, libs);
}

async function goBinary() {
  const source = path.join(SOURCES, 'go', 'main.go');
  const version = (await run('go', ['version'])).stdout;
  const dir = await cached('go', [fs.readFileSync(source), version, 'default env'], async (out) => {
    await run('go', ['build', '-o', path.join(out, 'verdicts-go'), source], {
      // The toolchain's defaults (cgo where a C compiler is), as a Go program is usually built.
      env: { ...process.env, GO111MODULE: 'off', ...(process.env.HOME ? {} : { GOCACHE: path.join(CACHE, 'go-cache') }) },
      timeout: 300000,
    });
  });
  return path.join(dir, 'verdicts-go');
}

async function javaClasses() {
  const source = path.join(SOURCES, 'java', 'Verdicts.java');
  const version = (await run('javac', ['-version'])).stdout + (await run('javac', ['-version'])).stderr;
  return cached('java', [fs.readFileSync(source), version], async (out) => {
    await run('javac', ['-d', out, source], { timeout: 300000 });
  });
}

/** `java … Verdicts MODE ARGS…` as an argv (for exec). Small heap; otherwise the JVM's defaults. */
async function javaCommand(...args) {
  return ['java', '-Xmx128m', '-cp', await javaClasses(), 'Verdicts', ...args.map(String)];
}

async function goCommand(...args) {
  return [await goBinary(), ...args.map(String)];
}

function pythonCommand(...args) {
  return [python3(), path.join(SOURCES, 'python', 'programs.py'), ...args.map(String)];
}

function nodeCommand(...args) {
  return [process.execPath, path.join(SOURCES, 'node', 'server.js'), ...args.map(String)];
}

// ------------------------------------------------------------------------------------------
// Network helpers

function httpGet(port, urlPath = '/', timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${urlPath} on port ${port}: no answer in ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** Send GET `urlPath` and never wait for the answer (the request stays open until close). */
function httpFire(scope, port, urlPath) {
  const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
  socket.on('error', () => {});
  scope.defer(
    async () => socket.destroy(),
    () => socket.destroy(),
  );
  return socket;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ------------------------------------------------------------------------------------------
// Starters. Each returns { pid, pids, … } once the program is in its state; `pids` is what to
// watch (a server's master and workers).

/** A program of ours that prints `ready pid=N …`: { pid, pids, info, proc }. */
async function startReady(scope, argv, { stop, graceMs, env, cwd, timeoutMs = 60000 } = {}) {
  const proc = scope.spawn(argv[0], argv.slice(1), { stop, graceMs, env, cwd });
  const info = await proc.ready(timeoutMs);
  return { pid: info.pid, pids: [info.pid], info, proc };
}

/** test/targets/target.c in MODE: deadlock (three threads in futex), vfork-parent (D), … */
async function startTarget(scope, mode, ...args) {
  const target = await startReady(scope, [await targetBinary(), mode, ...args]);
  if (mode === 'deadlock') {
    await waitFor(() => threadsOf(target.pid).filter((t) => inCall(t, 'futex')).length >= 3, 'the deadlocked threads in futex');
  }
  if (mode === 'vfork-parent') {
    await waitFor(() => threadsOf(target.pid).some((t) => t.state === 'D'), 'the vfork parent in state D');
  }
  return target;
}

/** bench/verdicts/c/pool.c: four workers waiting on a condition variable, main joining them. */
async function startCPool(scope) {
  const pool = await startReady(scope, [await poolBinary()]);
  await waitFor(() => threadsOf(pool.pid).filter((t) => inCall(t, 'futex')).length === 5, 'the main thread and 4 workers in futex');
  return pool;
}

/** `sleep infinity` (coreutils: pause(2) where it has one, else a long nanosleep). */
async function startSleep(scope) {
  const proc = scope.spawn('sleep', ['infinity']);
  await waitFor(() => threadsOf(proc.pid).some((t) => t.state === 'S' && t.syscall !== null && t.syscall >= 0), 'sleep asleep');
  return { pid: proc.pid, pids: [proc.pid], proc };
}

/** `tail -f FILE` (coreutils), following a file nobody writes: it waits on inotify. */
async function startTailFollow(scope) {
  const dir = scope.tmpdir('tail');
  const file = path.join(dir, 'log');
  fs.writeFileSync(file, 'one line\n');
  const proc = scope.spawn('tail', ['-f', file]);
  await proc.line(/one line/);
  await waitFor(() => threadsOf(proc.pid).some((t) => t.state === 'S'), 'tail -f waiting');
  return { pid: proc.pid, pids: [proc.pid], proc };
}

/**
 * A file for `gzip -9` that takes it about `seconds` of CPU time, measured here on a sample by
 * CPU time (not wall time, which the machine's load would stretch): { file, bytes, expectedSeconds }.
 */
async function gzipInput(scope, seconds = 8) {
  const dir = scope.tmpdir('gzip');
  const file = path.join(dir, 'big');
  const sample = 8 << 20;
  await run('sh', ['-c', `seq 1 100000000 | head -c ${sample} > "$0"`, file]);
  // `times`, second line: the user and system time of the shell's children (gzip).
  const { stdout } = await run('sh', ['-c', 'gzip -9 < "$0" > /dev/null; times', file]);
  const children = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s\s*$/.exec(stdout.trim());
  if (children === null) throw new Error(`cannot read gzip's CPU time from \`times\`: ${JSON.stringify(stdout)}`);
  const sampleSeconds = Math.max(0.05, Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4]));
  const bytes = Math.min(Math.round((sample * seconds) / sampleSeconds), 600 << 20);
  await run('sh', ['-c', `seq 1 1000000000 | head -c ${bytes} > "$0"`, file], { maxBuffer: 1 << 20 });
  return { file, bytes, expectedSeconds: (bytes / sample) * sampleSeconds };
}

// --- redis

/**
 * redis-server on a unix socket in a temp dir (no TCP port), no persistence, DEBUG allowed.
 * Returns { pid, pids, socket, cli(...args) → stdout }.
 */
async function startRedis(scope) {
  const dir = scope.tmpdir('redis');
  const socket = path.join(dir, 'redis.sock');
  const proc = scope.spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--enable-debug-command', 'yes', '--logfile', path.join(dir, 'log')],
    { stop: 'SIGTERM', graceMs: 2000 },
  );
  const cli = async (...args) => (await run('redis-cli', ['-s', socket, ...args.map(String)], { timeout: 10000 })).stdout.trim();
  await waitFor(async () => !proc.exited && (await cli('ping')) === 'PONG', 'redis to answer PING', 20000, 100);
  if (proc.exited) throw new Error(`redis-server exited: ${proc.stderr}`);
  return { pid: proc.pid, pids: [proc.pid], socket, cli, proc };
}

/** redis-server whose main thread has left its event loop to run DEBUG SLEEP 40 (the trigger). */
async function freezeRedis(scope, redis, seconds = 40) {
  scope.spawn('redis-cli', ['-s', redis.socket, 'DEBUG', 'SLEEP', String(seconds)]);
  await waitFor(() => threadsOf(redis.pid).some((t) => t.tid === redis.pid && inCall(t, 'clock_nanosleep', 'nanosleep')), 'redis main thread sleeping in DEBUG SLEEP');
}

/** A queue consumer: `redis-cli BLPOP queue 0`, blocked until an item comes (none will). */
async function startRedisConsumer(scope) {
  const redis = await startRedis(scope);
  const proc = scope.spawn('redis-cli', ['-s', redis.socket, 'BLPOP', 'verdicts:jobs', '0']);
  await waitFor(async () => /blocked_clients:1/.test(await redis.cli('info', 'clients')), 'the consumer blocked in BLPOP');
  await waitFor(() => threadsOf(proc.pid).every((t) => t.state === 'S'), 'redis-cli waiting');
  return { pid: proc.pid, pids: [proc.pid], redis, proc };
}

/** redis-server under redis-benchmark in a loop (4 clients). */
async function startRedisBusy(scope) {
  const redis = await startRedis(scope);
  const bench = scope.spawn('redis-benchmark', ['-s', redis.socket, '-q', '-l', '-c', '4', '-t', 'set,get,incr,lpush,lpop', '-d', '64']);
  const commands = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.cli('info', 'stats'))?.[1] ?? 0);
  await waitFor(async () => (await commands()) > 5000 && !bench.exited, 'redis-benchmark under way');
  return { ...redis, load: bench };
}

// --- postgres

let pgTemplate = null;

/** One initdb'd cluster per PostgreSQL version, in the build cache; each server copies it. */
function postgresTemplate() {
  pgTemplate ??= (async () => {
    const bin = postgresBin();
    const user = postgresUser();
    const version = (await run(path.join(bin, 'postgres'), ['--version'])).stdout.trim();
    return cached('pg-template', [version, String(user.uid)], async (out) => {
      fs.chmodSync(out, 0o755);
      const data = path.join(out, 'data');
      fs.mkdirSync(data, { mode: 0o700 });
      fs.chownSync(data, user.uid, user.gid);
      await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { uid: user.uid, gid: user.gid, cwd: '/', timeout: 120000 });
    });
  })();
  return pgTemplate;
}

/**
 * A PostgreSQL server of its own (a copy of the cached cluster, a unix socket in its temp
 * dir, no TCP), run as the postgres user. Returns { pid, pids (the postmaster and its
 * processes), dir (the socket directory), psql(sql) → stdout, psqlArgs(...) → argv }.
 */
async function startPostgres(scope) {
  const bin = postgresBin();
  const user = postgresUser();
  const template = await postgresTemplate();
  const dir = scope.tmpdir('postgres', { mode: 0o755, owner: user });
  const data = path.join(dir, 'data');
  await run('cp', ['-a', path.join(template, 'data'), data]);
  fs.chownSync(data, user.uid, user.gid);
  const proc = scope.spawn(
    path.join(bin, 'postgres'),
    ['-D', data, '-k', dir, '-c', 'listen_addresses=', '-c', 'shared_buffers=16MB', '-c', 'max_connections=20', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    { uid: user.uid, gid: user.gid, cwd: dir, stop: 'SIGINT', graceMs: 5000 },
  );
  // Long options only: `iokit-snap exec -- psql -h DIR` would be read as exec's own -h.
  const psqlArgs = (...args) => ['psql', `--host=${dir}`, '--username=postgres', '--dbname=postgres', '--no-psqlrc', '--no-align', '--tuples-only', '--quiet', ...args];
  const psql = async (sql) => {
    const argv = psqlArgs(`--command=${sql}`);
    return (await run(argv[0], argv.slice(1), { timeout: 20000 })).stdout.trim();
  };
  await waitFor(async () => !proc.exited && (await psql('select 1')) === '1', 'postgres to answer', 30000, 100);
  // The checkpointer, background writer, WAL writer, autovacuum and logical replication launchers.
  const background = () => serverPids({ psql }, "backend_type <> 'client backend'");
  await waitFor(async () => (await background()).length >= 5, 'the postmaster and its background processes', 20000);
  return { pid: proc.pid, pids: [proc.pid, ...(await background())], dir, psql, psqlArgs, proc };
}

/** The server processes pg_stat_activity lists WHERE `where` (not the backend of the query asking). */
async function serverPids(pg, where) {
  const out = await pg.psql(`select pid from pg_stat_activity where (${where}) and pid <> pg_backend_pid() order by pid`);
  return out.split('\n').filter(Boolean).map(Number);
}

/** The backend serving a client whose application_name is `name`, once its wait matches `waiting`. */
async function backendOf(pg, name, waiting = '') {
  const pid = await waitFor(
    async () => Number(await pg.psql(`select pid from pg_stat_activity where application_name = '${name}'${waiting}`)) || null,
    `the backend of ${name}${waiting ? ' waiting' : ''}`,
  );
  return pid;
}

/**
 * A row lock held: session A updated row 1 in a transaction left open. Returns the server, and
 * `contender`: the argv of a psql that updates the same row (it waits for A forever).
 */
async function startPostgresLockHolder(scope) {
  const pg = await startPostgres(scope);
  await pg.psql('create table verdicts (id int primary key, v int); insert into verdicts values (1, 0);');
  const argv = pg.psqlArgs();
  const holder = scope.spawn(argv[0], argv.slice(1), { stdin: 'pipe', env: programEnv({ PGAPPNAME: 'holder' }) });
  holder.child.stdin.write('begin; update verdicts set v = v + 1 where id = 1;\n');
  await waitFor(async () => (await pg.psql("select state from pg_stat_activity where application_name = 'holder'")) === 'idle in transaction', 'session A idle in its transaction');
  const contender = pg.psqlArgs('--command=update verdicts set v = v + 2 where id = 1');
  return { ...pg, holder, contender, contenderEnv: programEnv({ PGAPPNAME: 'contender' }) };
}

/**
 * A row-lock wait: session B's update waits for A's. Returns { backend (B's server process,
 * in ProcSleep), client (B's psql, waiting on its socket), pg }.
 */
async function startPostgresLockWait(scope) {
  const pg = await startPostgresLockHolder(scope);
  const client = scope.spawn(pg.contender[0], pg.contender.slice(1), { env: pg.contenderEnv });
  const backend = await backendOf(pg, 'contender', " and wait_event_type = 'Lock'");
  await waitFor(() => threadsOf(client.pid).every((t) => t.state === 'S'), 'the psql client waiting');
  return { pg, backend, client: client.pid, clientProc: client };
}

/** PostgreSQL under pgbench (2 clients, until stopped). pids: the server's processes, backends included. */
async function startPostgresBusy(scope) {
  const pg = await startPostgres(scope);
  await run('pgbench', [`--host=${pg.dir}`, '--username=postgres', '-i', '-s', '1', '-q', 'postgres'], { timeout: 120000 });
  const load = scope.spawn('pgbench', [`--host=${pg.dir}`, '--username=postgres', '-c', '2', '-j', '1', '-T', '3600', '-n', 'postgres'], { env: programEnv({ PGAPPNAME: 'pgbench' }) });
  const committed = async () => Number(await pg.psql("select xact_commit from pg_stat_database where datname = 'postgres'"));
  const first = await waitFor(async () => (await pg.psql("select count(*) from pg_stat_activity where application_name = 'pgbench'")) === '2' && committed(), 'pgbench connected');
  await waitFor(async () => (await committed()) > first + 200, 'pgbench transactions committing');
  return { ...pg, pids: [pg.pid, ...(await serverPids(pg, "backend_type <> 'client backend' or application_name = 'pgbench'"))], load };
}

// --- nginx

/** nginx with its own config (a master and 2 workers on a loopback port, stub_status at /status). */
async function startNginx(scope) {
  const dir = scope.tmpdir('nginx', { mode: 0o755 });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `worker_processes 2;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location = /status { stub_status; }
    location / { return 200 "ok\\n"; }
  }
}
`,
  );
  const nginx = which('nginx') ?? '/usr/sbin/nginx';
  const proc = scope.spawn(nginx, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stop: 'SIGTERM', graceMs: 3000 });
  await waitFor(async () => !proc.exited && (await httpGet(port, '/')).status === 200, 'nginx to answer', 20000, 100);
  await waitFor(() => childrenOf(proc.pid).length >= 2, 'two nginx workers');
  const requests = async () => Number(/\s(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec((await httpGet(port, '/status')).body)?.[3] ?? 0);
  return { pid: proc.pid, pids: [proc.pid, ...childrenOf(proc.pid)], port, requests, proc };
}

/** nginx under load: wrk where installed, else a Node keep-alive loop (bench/verdicts/node/server.js load). */
async function startNginxBusy(scope) {
  const nginx = await startNginx(scope);
  const url = `http://127.0.0.1:${nginx.port}/`;
  const load = which('wrk') ? scope.spawn('wrk', ['-t', '1', '-c', '8', '-d', '3600s', url]) : scope.spawn(...splitArgv(nodeCommand('load', url, 8)));
  const before = await nginx.requests();
  await waitFor(async () => (await nginx.requests()) > before + 2000, 'requests flowing');
  return { ...nginx, load, loadTool: which('wrk') ? 'wrk' : 'a Node keep-alive loop' };
}

function splitArgv(argv) {
  return [argv[0], argv.slice(1)];
}

// --- JVM, Go, CPython, Node

/** The JVM HTTP server with idle pools (bench/verdicts/java/Verdicts.java idle-http). */
async function startJavaIdle(scope) {
  const started = await startReady(scope, await javaCommand('idle-http'), { stop: 'SIGTERM', graceMs: 3000 });
  await waitFor(async () => (await httpGet(Number(started.info.port))).status === 200, 'the JVM to answer');
  return { ...started, port: Number(started.info.port) };
}

/** Two JVM threads in a monitor deadlock (found by ThreadMXBean before it says ready). */
async function startJavaDeadlock(scope) {
  return startReady(scope, await javaCommand('deadlock'), { stop: 'SIGTERM', graceMs: 3000 });
}

/** A JVM computing on two threads for `seconds` (a batch job kept busy under watch). */
async function startJavaBatch(scope, seconds = 3600) {
  return startReady(scope, await javaCommand('batch', seconds, 0), { stop: 'SIGTERM', graceMs: 3000 });
}

async function startGoIdle(scope) {
  const started = await startReady(scope, await goCommand('idle-http'));
  const port = Number(started.info.port);
  await waitFor(async () => (await httpGet(port)).status === 200, 'the Go server to answer');
  // The scheduler parks its Ms a moment after the request: wait until every thread sleeps.
  await waitFor(() => threadsOf(started.pid).every((t) => t.state === 'S'), 'every Go thread parked');
  return { ...started, port };
}

async function startGoBusy(scope) {
  return startReady(scope, await goCommand('busy', 2));
}

async function startGoDeadlock(scope) {
  const started = await startReady(scope, await goCommand('deadlock'));
  return started;
}

/** `python3 -m http.server` (CPython's own), idle. */
async function startPythonHttpServer(scope) {
  const dir = scope.tmpdir('http-server');
  const port = await freePort();
  const proc = scope.spawn(python3(), ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { env: programEnv({ PYTHONUNBUFFERED: '1' }) });
  await waitFor(async () => !proc.exited && (await httpGet(port)).status === 200, 'python3 -m http.server to answer', 20000, 100);
  return { pid: proc.pid, pids: [proc.pid], port, proc };
}

/** bench/verdicts/python/programs.py MODE. */
async function startPython(scope, mode, ...args) {
  return startReady(scope, pythonCommand(mode, ...args), { env: programEnv({ PYTHONUNBUFFERED: '1' }) });
}

/** A CPython thread pool whose workers wait for tasks; main waits for a stop event. */
async function startPythonPool(scope) {
  const pool = await startPython(scope, 'pool-idle');
  await waitFor(() => threadsOf(pool.pid).filter((t) => inCall(t, 'futex')).length === 5, 'main and 4 workers in futex');
  return pool;
}

/** A queue consumer in CPython, blocked in recv on a broker that accepts and never sends. */
async function startPythonConsumer(scope) {
  const broker = await startPython(scope, 'silent-broker');
  const consumer = await startPython(scope, 'consumer', broker.info.port);
  await waitFor(() => threadsOf(consumer.pid).some((t) => inCall(t, 'read', 'recvfrom')), 'the consumer blocked in recv');
  return { ...consumer, broker };
}

/** A single-threaded CPython http.server whose handler for /sleep sleeps 40 s. Trigger: freezePython. */
async function startPythonFrozenServer(scope) {
  const started = await startPython(scope, 'frozen-http');
  const port = Number(started.info.port);
  await waitFor(async () => (await httpGet(port)).status === 200, 'the server to answer');
  return { ...started, port };
}

async function freezeHttpServer(scope, server, call = ['clock_nanosleep', 'nanosleep', 'futex']) {
  httpFire(scope, server.port, '/sleep');
  await waitFor(() => threadsOf(server.pid).some((t) => t.tid === server.pid && inCall(t, ...call)), 'the handler sleeping');
}

/** A Node http server: idle, or with a handler for /sleep that blocks its one thread for 40 s. */
async function startNodeServer(scope, mode = 'idle') {
  const started = await startReady(scope, nodeCommand(mode));
  const port = Number(started.info.port);
  await waitFor(async () => (await httpGet(port)).status === 200, 'the Node server to answer');
  return { ...started, port };
}

// --- FUSE

/**
 * bench/verdicts/c/fuse.c mounted on a temp dir: `idle` answers, `silent` never answers a read.
 * Returns { pid, pids, mountpoint, file }. Unmounted (lazily) at close, after the daemon is killed.
 */
async function startFuse(scope, mode = 'idle') {
  const binary = await fuseBinary();
  const dir = scope.tmpdir('fuse');
  const mountpoint = path.join(dir, 'mnt');
  fs.mkdirSync(mountpoint);
  const unmount = () => {
    spawnSync('fusermount3', ['-u', '-z', mountpoint], { stdio: 'ignore' });
  };
  scope.defer(async () => unmount(), unmount);
  const proc = scope.spawn(binary, [mountpoint, mode]);
  const file = path.join(mountpoint, 'data');
  await waitFor(() => !proc.exited && fs.existsSync(file), 'the FUSE mount', 20000, 100);
  if (mode === 'idle') {
    if (fs.readFileSync(file, 'utf8') !== 'iokit-snap verdicts\n') throw new Error('the FUSE file reads wrong');
    await waitFor(() => threadsOf(proc.pid).every((t) => t.state === 'S'), 'the FUSE daemon idle');
  }
  return { pid: proc.pid, pids: [proc.pid], mountpoint, file, proc };
}

/** A reader of a file on a FUSE mount whose daemon never answers: `cat` waits in state D. */
async function startFuseStuckReader(scope) {
  const fuse = await startFuse(scope, 'silent');
  const reader = scope.spawn('cat', [fuse.file]);
  await waitFor(() => threadsOf(reader.pid).some((t) => t.state === 'D' || t.wchan === 'request_wait_answer'), 'the reader waiting for the FUSE daemon');
  return { pid: reader.pid, pids: [reader.pid], fuse, proc: reader };
}

// --- others

/**
 * The classic pipe deadlock (bench/verdicts/python/programs.py pipe-deadlock): the parent waits
 * for its child without reading the child's stdout pipe; the child blocks writing to it, full.
 */
async function startPipeDeadlock(scope) {
  const parent = await startPython(scope, 'pipe-deadlock');
  const child = Number(parent.info.child);
  await waitFor(() => threadsOf(child).some((t) => inCall(t, 'write')), 'the child blocked writing to the full pipe');
  await waitFor(() => threadsOf(parent.pid).some((t) => inCall(t, 'wait4')), 'the parent waiting for the child');
  return { ...parent, child, pids: [parent.pid, child] };
}

/**
 * A fifo nobody opens for writing, for `cat FIFO` to block opening it (wait_for_partner):
 * no process holds the other end, so nothing can ever come until one opens it. (A fifo held
 * open by a writer that is alive but silent is a wait on that writer, judged by what it does;
 * the harness itself would be that writer, a busy process, so it is not the case here.)
 */
function fifoNobodyWrites(scope) {
  const dir = scope.tmpdir('fifo');
  const fifo = path.join(dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  return fifo;
}

/** SIGSTOP `pid`, and wait until every thread reads stopped. */
async function stopProcess(pid) {
  process.kill(pid, 'SIGSTOP');
  await waitFor(() => threadsOf(pid).every((t) => t.state === 'T'), 'stopped');
}

// ------------------------------------------------------------------------------------------
// The CLI under test

/**
 * Run `node bin/iokit-snap.js ARGS…` (needs `npm run build`) in `scope`, detached (so a command
 * that exec runs and leaves behind is in its process group, ended with the scope). Resolves
 * with { code, signal, stdout, stderr, timedOut } once it exits, or after `timeoutMs` (then
 * killed, timedOut true). `onStdout(text)` sees stdout as it comes.
 */
function iokitSnap(scope, args, { timeoutMs = 60000, onStdout, env } = {}) {
  // The CLI keeps our environment (a test runner's coverage included); what it runs for exec gets `env`.
  const proc = scope.spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...(env ?? {}) } });
  if (onStdout !== undefined) proc.listeners.add(() => onStdout(proc.stdout));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(proc.pid, 'SIGKILL');
  }, timeoutMs);
  return proc.exit.then((status) => {
    clearTimeout(timer);
    return { code: status.code, signal: status.signal, stdout: proc.stdout, stderr: proc.stderr, timedOut, pid: proc.pid };
  });
}

const pidArgs = (pids) => pids.flatMap((pid) => ['--pid', String(pid)]);

/**
 * `iokit-snap watch --pid … --json --no-accelerators` for `forMs`; `trigger` (if given) is
 * called once `triggerAfterSamples` samples are out (a state that comes after a healthy start).
 * Resolves with { result, events, triggerError }.
 */
async function watchRun(scope, pids, { interval = '500ms', stall = '5s', forMs = 12000, trigger, triggerAfterSamples = 2, extra = [] } = {}) {
  let triggered = null;
  const onStdout = (text) => {
    if (triggered !== null || trigger === undefined) return;
    const samples = text.split('\n').filter((line) => line.startsWith('{"type":"sample"') && !line.includes('"discarded"')).length;
    if (samples >= triggerAfterSamples) triggered = trigger().then(() => null, (error) => error);
  };
  const args = ['watch', ...pidArgs(pids), '--json', '--no-accelerators', '--interval', interval, '--stall', stall, '--for', `${forMs / 1000}s`, ...extra];
  const result = await iokitSnap(scope, args, { timeoutMs: forMs + 30000, onStdout });
  let triggerError = null;
  if (trigger !== undefined) triggerError = triggered === null ? new Error('the watch printed no samples to trigger on') : await triggered;
  return { result, events: jsonLines(result.stdout), triggerError };
}

/**
 * Two snapshots of `pids` (the first at `readyAt + firstAtMs`, then `trigger`, the second at
 * `readyAt + secondAtMs`; `stacks`: which of them take --stacks), then `iokit-snap diff --json`.
 * Resolves with { result (the diff's), report (parsed, or null), files, at (when each snapshot was
 * taken, ms after readyAt) }; a snapshot that fails throws.
 */
async function diffRun(scope, pids, { readyAt = Date.now(), firstAtMs = 600, secondAtMs = 6000, stall = '1s', trigger, stacks = 'second' } = {}) {
  const dir = scope.tmpdir('diff');
  const snap = async (file, withStacks) => {
    const result = await iokitSnap(scope, ['snapshot', ...pidArgs(pids), '--no-accelerators', ...(withStacks ? ['--stacks'] : []), '-o', path.join(dir, file)], { timeoutMs: 30000 });
    if (result.code !== 0) throw new Error(`snapshot exited ${result.code}: ${result.stderr.trim().slice(0, 300)}`);
  };
  await sleep(Math.max(0, readyAt + firstAtMs - Date.now()));
  await snap('healthy.json', stacks === 'both');
  if (trigger !== undefined) await trigger();
  await sleep(Math.max(0, readyAt + secondAtMs - Date.now()));
  await snap('hung.json', stacks !== 'none');
  const result = await iokitSnap(scope, ['diff', path.join(dir, 'healthy.json'), path.join(dir, 'hung.json'), '--json', '--stall', stall], { timeoutMs: 30000 });
  let report = null;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    /* no report: the caller says so */
  }
  const files = [path.join(dir, 'healthy.json'), path.join(dir, 'hung.json')];
  // When each snapshot was taken, ms after readyAt (a loaded machine starts the CLI late).
  const at = files.map((file) => Date.parse(JSON.parse(fs.readFileSync(file, 'utf8')).takenAt) - readyAt);
  return { result, report, files, at };
}

/**
 * `iokit-snap exec --json --no-accelerators --timeout T --stall S [--kill] --save DIR -- ARGV`;
 * killed (timedOut) if still running after `timeoutMs`. Resolves with { result, lines (the
 * JSON report lines), ms }.
 */
async function execRun(scope, argv, { timeout = '5s', stall = '1s', kill = true, env, timeoutMs = 60000 } = {}) {
  const dir = scope.tmpdir('exec');
  const args = ['exec', '--json', '--no-accelerators', '--timeout', timeout, '--stall', stall, ...(kill ? ['--kill'] : []), '--save', dir, '--', ...argv];
  const started = Date.now();
  const result = await iokitSnap(scope, args, { timeoutMs, env });
  return { result, lines: jsonLines(result.stderr).filter((l) => l.report !== undefined), ms: Date.now() - started };
}

const RANK = { healthy: 0, suspect: 1, hung: 2 };

/** The worse of verdicts (healthy < suspect < hung); 'healthy' for none. */
function worstVerdict(verdicts) {
  return verdicts.reduce((a, b) => (RANK[b] > RANK[a] ? b : a), 'healthy');
}

/**
 * What a watch said: { worst (over every kept sample and hang event), last (the last kept
 * sample's), hangs, loud (every warning or critical finding seen), samples, exits, errors,
 * discarded }.
 */
function summarizeWatch(events) {
  const samples = events.filter((e) => e.type === 'sample' && e.discarded === undefined);
  const hangs = events.filter((e) => e.type === 'hang');
  return {
    samples,
    hangs,
    exits: events.filter((e) => e.type === 'exit'),
    errors: events.filter((e) => e.type === 'error'),
    discarded: events.filter((e) => e.type === 'sample' && e.discarded !== undefined).length,
    worst: worstVerdict([...samples.map((e) => e.verdict), ...(hangs.length > 0 ? ['hung'] : [])]),
    last: samples.length > 0 ? samples[samples.length - 1].verdict : null,
    loud: [...samples.flatMap((e) => e.findings), ...hangs.flatMap((h) => h.report.findings)].filter((f) => f.severity !== 'info'),
  };
}

/** The NDJSON lines of `text` that parse as objects (others skipped: a command's own output). */
function jsonLines(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* not ours */
    }
  }
  return out;
}

module.exports = {
  Scope,
  closeAllScopes,
  closeAllScopesSync,
  installCleanupHandlers,
  waitFor,
  sleep,
  threadsOf,
  childrenOf,
  alive,
  inCall,
  isRoot,
  missing,
  RUNTIMES,
  targetBinary,
  poolBinary,
  fuseBinary,
  goBinary,
  javaClasses,
  javaCommand,
  goCommand,
  pythonCommand,
  nodeCommand,
  python3,
  httpGet,
  httpFire,
  gzipInput,
  startReady,
  startTarget,
  startCPool,
  startSleep,
  startTailFollow,
  startRedis,
  freezeRedis,
  startRedisConsumer,
  startRedisBusy,
  startPostgres,
  startPostgresLockHolder,
  startPostgresLockWait,
  startPostgresBusy,
  backendOf,
  startNginx,
  startNginxBusy,
  startJavaIdle,
  startJavaDeadlock,
  startJavaBatch,
  startGoIdle,
  startGoBusy,
  startGoDeadlock,
  startPythonHttpServer,
  startPython,
  startPythonPool,
  startPythonConsumer,
  startPythonFrozenServer,
  freezeHttpServer,
  startNodeServer,
  startFuse,
  startFuseStuckReader,
  fifoNobodyWrites,
  startPipeDeadlock,
  stopProcess,
  iokitSnap,
  programEnv,
  jsonLines,
  watchRun,
  diffRun,
  execRun,
  worstVerdict,
  summarizeWatch,
  CLI,
};
