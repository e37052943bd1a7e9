#!/usr/bin/env node
/*
 * The analysis over large healthy/hung pairs, against a peer, in one run (docs/ARCHITECTURE.md,
 * performance budgets):
 *   (a) compare(healthy, hung), 10,000 threads and 100 accelerators, on four pairs:
 *         real, kernel stacks  built from real snapshot({ pids }) of live processes in known
 *                              states (as root each thread carries its kernel stack), widened
 *                              to 10 processes x 1,000 threads (bench/lib/real-pair.js)
 *         real, user stacks    the same with snapshot({ threads: { stacks: true } })
 *         synthetic            10 x 1,000 and 1 x 10,000 threads shaped like a hang (below)
 *                                                                    budget: median <= 1 ms
 *       (p95 is printed too; it holds the garbage collections the peer's allocations cause)
 *   (b) the same pair through microdiff, a generic JSON differ       budget: compare() >= 15x faster
 *   (c) one ProgressTracker.step() (the watch core) over 10 x 1,000 threads, on a warmed
 *       tracker, fed samples 100 ms apart, synthetic and real-shaped  budget: median <= 1 ms
 *       Samples are checked once before they are fed, outside the timed part, as watch()'s
 *       own are (the library made them); a row beside it shows a step on a hand-built sample
 *       that the step itself must check first (no budget: the check is paid once per object).
 *   (d) a simulated hour at 10 Hz (36,000 steps) on a 100-thread process: threads
 *       exit and appear, one gets stuck and recovers; heap after gc() every 3,600
 *       steps                                                         budget: growth < 1 MiB
 *
 * A pair is checked once, by the first compare() (an untimed warm-up call); the cost of that
 * check (validateSnapshot on a fresh copy of each side) is printed per pair.
 *
 * The synthetic snapshots are shaped like a hang: most threads idle in the same
 * wait in both (futex, epoll_wait, poll, clock_nanosleep) with no CPU, a tenth making
 * progress, a few stalled in futex or a pipe read, a few spinning, one in ioctl on
 * /dev/nvidia0, one uninterruptible, one stopped; most accelerators unchanged, a few
 * with a recovery, a dropped power state, a pending power transition, a stalled
 * queue, or a new id for the same device. The real pairs need Linux (they are skipped,
 * with a line saying so, elsewhere).
 *
 * Build first:  npm run build
 * Run:          node bench/compare.js [--rounds N] [--peer-rounds N]
 *
 * Needs --expose-gc for (d); re-runs itself with it when it is missing.
 * Exit code 1 when a budget is missed (or the analysis is not built).
 */
'use strict';
const { spawnSync } = require('node:child_process');

if (require.main === module && typeof global.gc !== 'function') {
  const result = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

const os = require('node:os');
const microdiffModule = require('microdiff');

const microdiff = microdiffModule.default ?? microdiffModule;

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}
const ROUNDS = option('rounds', 300); // timed compare() / step() calls per row
const PEER_ROUNDS = option('peer-rounds', 15); // timed microdiff calls per row, one per round
const THREADS = 10000;
const ACCELERATORS = 100;
const WINDOW_NS = 5e9; // hung is taken 5 s after healthy
const STEP_NS = 1e8; // the watch samples at 10 Hz
const HOUR_STEPS = 36000;
const HOUR_THREADS = 100;
const HEAP_EVERY = 3600;
const COMPARE_BUDGET_MS = 1;
const STEP_BUDGET_MS = 1;
const PEER_BUDGET = 15;
const HEAP_BUDGET_BYTES = 1024 * 1024;

/* ------------------------------------------------------------------ loading */

function loadCompare() {
  let why;
  try {
    const { compare } = require('../lib');
    if (typeof compare === 'function') return { compare };
    why = 'not exported from lib/index.js';
  } catch (error) {
    why = `require('../lib') failed: ${error.message.split('\n')[0]}`;
  }
  try {
    const { compare } = require('../lib/analyze/compare.js');
    if (typeof compare === 'function') return { compare, note: `compare() from lib/analyze/compare.js (${why})` };
    return { missing: `${why}; lib/analyze/compare.js does not export compare()` };
  } catch (error) {
    return { missing: `compare() is not built (${why}; lib/analyze/compare.js: ${error.code || error.message})` };
  }
}

function loadProgressTracker() {
  try {
    const { ProgressTracker } = require('../lib/analyze/progress.js');
    if (typeof ProgressTracker === 'function') return { ProgressTracker };
    return { missing: 'lib/analyze/progress.js does not export ProgressTracker' };
  } catch (error) {
    return { missing: `ProgressTracker is not built (lib/analyze/progress.js: ${error.code || error.message})` };
  }
}

/* ---------------------------------------------------------------- statistics */

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const median = (values) => quantile(values, 0.5);
const p95 = (values) => quantile(values, 0.95);
const msSince = (start) => Number(process.hrtime.bigint() - start) / 1e6;

/** Whatever a call returned feeds this, and it is printed, so no call can be optimized away. */
let sink = 0;
function consume(report) {
  sink = (sink + report.findings.length + (report.verdict === 'hung' ? 1 : 0)) | 0;
}

/* ----------------------------------------------------------------- generator */

/** mulberry32: the same pair on every run. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TICK_NS = 1e7; // userNs/systemNs come in clock ticks on Linux
const ticks = (ns) => Math.floor(ns / TICK_NS) * TICK_NS;

// x86_64 syscall numbers
const IDLE_WAITS = [
  { call: 'futex', number: 202 },
  { call: 'futex', number: 202 },
  { call: 'futex', number: 202 },
  { call: 'epoll_wait', number: 232 },
  { call: 'epoll_wait', number: 232 },
  { call: 'poll', number: 7 },
  { call: 'poll', number: 7 },
  { call: 'clock_nanosleep', number: 230 },
  { call: 'clock_nanosleep', number: 230 },
  { call: 'nanosleep', number: 35 },
];

/**
 * What each thread does between healthy and hung, by its index over the whole
 * snapshot, so both layouts (10 x 1,000 and 1 x 10,000) hold the same mix.
 */
function roles(processes, threadsPer) {
  const total = processes * threadsPer;
  const special = [
    'ioctl',
    'uninterruptible',
    'stopped',
    'spinning',
    'spinning',
    'spinning',
    'spinning',
    'stalled-futex',
    'stalled-futex',
    'stalled-futex',
    'stalled-futex',
    'stalled-pipe',
    'stalled-pipe',
  ];
  const role = new Array(total);
  for (let g = 0; g < total; g++) role[g] = g % threadsPer === 0 ? 'main' : g % 10 === 3 ? 'progressing' : 'idle';
  special.forEach((name, k) => {
    let g = Math.floor(((k + 0.5) * total) / special.length);
    while (role[g] !== 'idle') g++;
    role[g] = name;
  });
  return role;
}

/**
 * A thread record built the way the native sampler's builder builds it (native/node/to_js.cc,
 * kBuildThreadsSource): the same properties in the same order, optional ones appended,
 * so property access here costs what it costs on real samples.
 */
function shaped(tid, name, state, userNs, systemNs, cpuNs, voluntary, involuntary, blockedIn) {
  const thread = { tid, name, state, userNs, systemNs };
  thread.cpuNs = cpuNs;
  thread.contextSwitches = { voluntary, involuntary };
  thread.suspendCount = null;
  if (blockedIn) {
    const blocked = { call: blockedIn.call, number: blockedIn.number };
    if (blockedIn.fd !== undefined) blocked.fd = blockedIn.fd;
    if (blockedIn.target !== undefined) blocked.target = blockedIn.target;
    thread.blockedIn = blocked;
  } else {
    thread.blockedIn = null;
  }
  return thread;
}

function thread(rand, tid, name, state, cpuNs, blockedIn) {
  const user = ticks(cpuNs * 0.8);
  return shaped(tid, name, state, user, ticks(cpuNs) - user, cpuNs, Math.floor(rand() * 50000), Math.floor(rand() * 2000), blockedIn);
}

/** The same thread `windowNs` later, as its role says. */
function advanceThread(rand, before, role, windowNs) {
  let { state, blockedIn, cpuNs, userNs, systemNs } = before;
  let { voluntary, involuntary } = before.contextSwitches;
  let grew = 0;
  if (role === 'progressing') {
    grew = Math.floor(windowNs * (0.02 + rand() * 0.4));
    voluntary += 1 + Math.floor(rand() * 400);
    involuntary += Math.floor(rand() * 20);
    state = rand() < 0.2 ? 'running' : 'sleeping';
    blockedIn = state === 'running' ? null : { call: 'futex', number: 202 };
  } else if (role === 'spinning') {
    grew = Math.floor(windowNs * (0.97 + rand() * 0.03));
    involuntary += 1 + Math.floor(rand() * 60);
  } else if (role === 'main' && rand() < 0.5) {
    grew = Math.floor(rand() * 2e6); // an event loop that woke up a few times
    voluntary += 1 + Math.floor(rand() * 10);
  }
  if (grew) {
    cpuNs = before.cpuNs + grew;
    const total = ticks(cpuNs);
    userNs = ticks(total * 0.8);
    systemNs = total - userNs;
  }
  return shaped(before.tid, before.name, state, userNs, systemNs, cpuNs, voluntary, involuntary, blockedIn);
}

function healthyThread(rand, pid, tid, role, processName) {
  const cpu = () => Math.floor(rand() * 3e10);
  switch (role) {
    case 'main':
      return thread(rand, tid, processName, 'sleeping', cpu(), { call: 'epoll_wait', number: 232 });
    case 'progressing':
      return thread(rand, tid, `worker-${tid - pid}`, 'sleeping', cpu(), { call: 'futex', number: 202 });
    case 'spinning':
      return thread(rand, tid, `spin-${tid - pid}`, 'running', cpu(), null);
    case 'stalled-futex':
      return thread(rand, tid, `lock-${tid - pid}`, 'sleeping', cpu(), { call: 'futex', number: 202 });
    case 'stalled-pipe':
      return thread(rand, tid, `reader-${tid - pid}`, 'sleeping', cpu(), { call: 'read', number: 0, fd: 9, target: `pipe:[${40000 + tid}]` });
    case 'ioctl':
      return thread(rand, tid, 'cuda-submit', 'sleeping', cpu(), { call: 'ioctl', number: 16, fd: 5, target: '/dev/nvidia0' });
    case 'uninterruptible':
      return thread(rand, tid, 'io-flush', 'uninterruptible', cpu(), { call: 'read', number: 0, fd: 12, target: '/mnt/nfs/checkpoint.bin' });
    case 'stopped':
      return thread(rand, tid, 'traced', 'stopped', cpu(), null);
    default: {
      // idle: the same wait in both snapshots, no CPU
      const wait = IDLE_WAITS[tid % IDLE_WAITS.length];
      return thread(rand, tid, `pool-${tid - pid}`, 'sleeping', cpu(), { ...wait });
    }
  }
}

const pciAddress = (i) => `0000:${(0x10 + i).toString(16).padStart(2, '0')}:00.0`;

function accelerator(rand, i) {
  const queues = [];
  for (let q = 0; q < 4; q++) {
    const finished = Math.floor(rand() * 1e6);
    queues.push({ id: q, submitted: finished, finished, state: 'idle' });
  }
  return {
    id: pciAddress(i),
    name: 'NVIDIA H100 80GB HBM3',
    className: 'nvidia',
    classChain: ['pci', '0x030200'],
    vendor: 'NVIDIA Corporation',
    model: 'GH100 [H100 SXM5 80GB]',
    busy: { count: 0, timeNs: null },
    serviceState: { registered: true, matched: true, active: true },
    power: { state: 'D0', maxState: null, desiredState: null, capabilityFlags: null, runtimeStatus: 'active' },
    probeScore: null,
    utilization: { devicePercent: Math.floor(rand() * 30), rendererPercent: null, tilerPercent: null },
    memory: { inUseBytes: Math.floor(rand() * 8e10), allocatedBytes: 85520809984 },
    recovery: { count: 0, lastTime: null },
    queues,
    location: pciAddress(i),
    deviceNodes: [`/dev/nvidia${i}`],
  };
}

function clone(value) {
  return structuredClone(value);
}

/** The hung image of accelerator `i`: most unchanged, a few with something to say. */
function advanceAccelerator(rand, before, i) {
  const after = clone(before);
  if (i % 10 === 1) {
    // working normally: queues move, both counters
    for (const queue of after.queues) {
      const done = 1 + Math.floor(rand() * 5000);
      queue.submitted += done;
      queue.finished += done;
    }
    after.utilization.devicePercent = 40 + Math.floor(rand() * 50);
  }
  switch (i) {
    case 0: // the device the ioctl thread waits on: its queue takes work and finishes none
      after.queues[0].submitted += 17;
      after.queues[0].state = 'active';
      after.utilization.devicePercent = 100;
      break;
    case 7: // a GPU recovery between the two snapshots
      after.recovery = { count: before.recovery.count + 1, lastTime: 4.2e12 };
      break;
    case 23: // dropped out of D0
      after.power.state = 'D3hot';
      after.power.runtimeStatus = 'suspended';
      break;
    case 42: // a power transition that never finished: desiredState set in both
      break;
    case 61: // the same device under a new id (unbound and bound again)
      after.id = `${before.id}-1`;
      break;
    default:
  }
  return after;
}

function makePair(processes, threadsPer, seed = 1) {
  const rand = random(seed);
  const role = roles(processes, threadsPer);
  const host = { platform: 'linux', arch: 'x64', osRelease: '6.8.0-49-generic' };
  const t0 = 7.2e12; // two hours after boot
  const healthy = {
    format: 'iokit-snap/1',
    takenAt: '2026-11-02T10:00:00.000Z',
    monotonicNs: t0,
    host,
    accelerators: [],
    processes: [],
    limits: [{ subject: 'nvml', field: 'utilization', code: 'ENOTSUP', reason: 'NVML does not report encoder use on this device' }],
  };
  const hung = {
    ...healthy,
    takenAt: '2026-11-02T10:00:05.000Z',
    monotonicNs: t0 + WINDOW_NS,
    host: { ...host },
    accelerators: [],
    processes: [],
    limits: [...healthy.limits],
  };
  for (let p = 0; p < processes; p++) {
    const pid = 20000 + p * (threadsPer + 100);
    const name = processes === 1 ? 'trainer' : `trainer-rank${p}`;
    const before = [];
    const after = [];
    for (let i = 0; i < threadsPer; i++) {
      const r = role[p * threadsPer + i];
      const t = healthyThread(rand, pid, pid + i, r, name);
      before.push(t);
      after.push(advanceThread(rand, t, r, WINDOW_NS));
    }
    const sampledAtNs = t0 + 1e6 + p * 2e5; // each process a little after the snapshot started
    healthy.processes.push({ pid, name, sampledAtNs, threads: before });
    hung.processes.push({ pid, name, sampledAtNs: sampledAtNs + WINDOW_NS, threads: after });
  }
  for (let i = 0; i < ACCELERATORS; i++) {
    const a = accelerator(rand, i);
    if (i === 42) a.power = { state: 'D0', maxState: 3, desiredState: 3, capabilityFlags: 2, runtimeStatus: 'active' };
    healthy.accelerators.push(a);
    hung.accelerators.push(advanceAccelerator(rand, a, i));
  }
  return { healthy, hung, role };
}

/* -------------------------------------------------- (a) + (b) compare vs peer */

/** "critical 9, warning 6, info 2990: blocked-in-driver 1, …" */
function findingKinds(report) {
  const severities = { critical: 0, warning: 0, info: 0 };
  const counts = new Map();
  for (const finding of report.findings) {
    severities[finding.severity]++;
    counts.set(finding.kind, (counts.get(finding.kind) ?? 0) + 1);
  }
  const bySeverity = Object.entries(severities).map(([severity, count]) => `${severity} ${count}`).join(', ');
  return `${bySeverity}: ${[...counts].map(([kind, count]) => `${kind} ${count}`).join(', ')}`;
}

/* -------------------------------------------------------- (c) one watch step */

/**
 * The next watch sample: every clock 100 ms on, the progressing and spinning threads' CPU
 * bumped. Every thread is a new object, as the sampler returns them, so a tracker cannot
 * take a shortcut on object identity that a real sample would not allow.
 */
function nextSample(rand, sample, role, stepNs) {
  let g = 0;
  const processes = sample.processes.map((process) => ({
    ...process,
    sampledAtNs: process.sampledAtNs + stepNs,
    threads: process.threads.map((t) => advanceThread(rand, t, role[g++], stepNs)),
  }));
  return { ...sample, monotonicNs: sample.monotonicNs + stepNs, processes };
}

/* ------------------------------------------------------ (d) an hour at 10 Hz */

/**
 * One watched process of 100 threads for an hour of 10 Hz samples. A tenth of the threads
 * make progress; every 5 s a worker exits and a new tid takes its place; every minute a
 * thread gets stuck for 10 s and then carries on (odd minutes the main thread in futex,
 * which makes the verdict 'hung', even minutes a worker in a pipe read); one thread spins
 * for 20 s of every 2 minutes and sits in poll otherwise.
 */
function hourAt10Hz(ProgressTracker) {
  const rand = random(7);
  const pid = 31337;
  const t0 = 7.2e12;
  let nextTid = pid + HOUR_THREADS;
  const FUTEX = Object.freeze({ call: 'futex', number: 202 });
  const EPOLL = Object.freeze({ call: 'epoll_wait', number: 232 });
  const POLL = Object.freeze({ call: 'poll', number: 7 });
  const PIPE_READ = Object.freeze({ call: 'read', number: 0, fd: 9, target: 'pipe:[424242]' });
  // role per tid: 'main', 'progressing' (a tenth), 'spinning' (one), else idle
  const roleOf = new Map();
  const makeThread = (tid, index) => {
    const r = index === 0 ? 'main' : index % 10 === 3 ? 'progressing' : index === 50 ? 'spinning' : 'idle';
    roleOf.set(tid, r);
    const t = healthyThread(rand, pid, tid, r, 'server');
    if (r === 'spinning') {
      t.state = 'sleeping';
      t.blockedIn = POLL;
    }
    return t;
  };
  const accelerators = [accelerator(rand, 0), accelerator(rand, 1)];
  // Three sample objects reused in turn; each step writes the next one from the
  // current, so the tracker never sees the sample it just got change under it.
  const pool = [0, 1, 2].map(() => ({
    format: 'iokit-snap/1',
    takenAt: '2026-11-02T10:00:00.000Z',
    monotonicNs: t0,
    host: { platform: 'linux', arch: 'x64', osRelease: '6.8.0-49-generic' },
    accelerators,
    processes: [{ pid, name: 'server', sampledAtNs: t0 + 1e5, threads: [] }],
    limits: [],
  }));
  const first = [];
  for (let i = 0; i < HOUR_THREADS; i++) first.push(makeThread(pid + i, i));
  for (const sample of pool) sample.processes[0].threads = first.map((t) => ({ ...t, contextSwitches: { ...t.contextSwitches } }));

  let stuck = -1; // index of the thread that is stuck now
  let stuckIn = null;
  let stuckUntil = 0;
  const write = (from, to, step) => {
    to.monotonicNs = from.monotonicNs + STEP_NS;
    to.processes[0].sampledAtNs = from.processes[0].sampledAtNs + STEP_NS;
    const src = from.processes[0].threads;
    const dst = to.processes[0].threads;
    dst.length = src.length;
    const spinning = step % 1200 < 200;
    for (let i = 0; i < src.length; i++) {
      const s = src[i];
      let d = dst[i];
      if (d === undefined || d.tid !== s.tid) d = dst[i] = { ...s, contextSwitches: { ...s.contextSwitches } };
      d.name = s.name;
      d.state = s.state;
      d.userNs = s.userNs;
      d.systemNs = s.systemNs;
      d.cpuNs = s.cpuNs;
      d.contextSwitches.voluntary = s.contextSwitches.voluntary;
      d.contextSwitches.involuntary = s.contextSwitches.involuntary;
      d.blockedIn = s.blockedIn;
      const r = roleOf.get(s.tid);
      if (i === stuck) {
        d.state = 'sleeping';
        d.blockedIn = stuckIn;
        continue;
      }
      if (r === 'spinning' && !spinning) {
        d.state = 'sleeping';
        d.blockedIn = POLL;
        continue;
      }
      if (r === 'progressing' || r === 'spinning' || (r === 'main' && rand() < 0.3)) {
        const grew = r === 'spinning' ? STEP_NS * 0.99 : 1 + Math.floor(STEP_NS * rand() * 0.3);
        d.cpuNs += grew;
        d.userNs = ticks(d.cpuNs * 0.8);
        d.systemNs = ticks(d.cpuNs) - d.userNs;
        if (r === 'spinning') d.contextSwitches.involuntary += rand() < 0.2 ? 1 : 0;
        else d.contextSwitches.voluntary += 1;
        d.state = r === 'spinning' || rand() < 0.2 ? 'running' : 'sleeping';
        d.blockedIn = d.state === 'running' ? null : r === 'main' ? EPOLL : FUTEX;
      }
    }
    // every 5 s one worker exits and a new one starts (720 new tids an hour)
    if (step % 50 === 25) {
      const victim = 1 + Math.floor(rand() * (dst.length - 1));
      if (victim !== stuck) {
        roleOf.delete(dst[victim].tid);
        dst[victim] = makeThread(nextTid++, victim);
      }
    }
    // every minute a thread gets stuck for 10 s, then carries on
    if (step % 600 === 300) {
      const minute = Math.floor(step / 600);
      stuck = minute % 2 ? 0 : 3 + 10 * Math.floor(rand() * (HOUR_THREADS / 10));
      stuckIn = minute % 2 ? FUTEX : PIPE_READ;
      stuckUntil = step + 100;
    } else if (step === stuckUntil) {
      stuck = -1;
    }
  };

  const tracker = new ProgressTracker({ stallMs: 5000 });
  const heap = [];
  const verdicts = { healthy: 0, suspect: 0, hung: 0 };
  let hangs = 0;
  let recoveries = 0;
  let findings = 0;
  let stepMs = 0;
  let previous = 'healthy';
  const measureHeap = (step) => {
    global.gc();
    global.gc();
    heap.push({ step, bytes: process.memoryUsage().heapUsed });
  };
  measureHeap(0);
  let current = pool[0];
  for (let step = 1; step <= HOUR_STEPS; step++) {
    const next = pool[step % 3];
    write(current, next, step);
    const start = process.hrtime.bigint();
    const report = tracker.step(next);
    stepMs += msSince(start);
    verdicts[report.verdict]++;
    if (report.verdict === 'hung' && previous !== 'hung') hangs++;
    if (report.verdict !== 'hung' && previous === 'hung') recoveries++;
    previous = report.verdict;
    findings += report.findings.length;
    current = next;
    if (step % HEAP_EVERY === 0) measureHeap(step);
  }
  sink = (sink + findings + hangs) | 0;
  return { heap, verdicts, hangs, recoveries, findings, stepMs, newTids: nextTid - pid - HOUR_THREADS, tracked: tracker.trackedThreads };
}

/* ------------------------------------------------------------------ timings */

/**
 * compare() on a pair against microdiff on the same pair. Rounds interleave the peer and ours,
 * after a warm-up round, so a change of load during the run moves both: each round one
 * microdiff call, then a burst of compare(). Each part starts with calls that are not timed, so
 * one contender's garbage is collected on the other's untimed call, not charged to its timed
 * ones. (A forced gc() instead would shrink the young generation and slow the next calls down.)
 * The first untimed compare() checks the hand-built pair (once per object).
 */
function timeCompare(compare, healthy, hung, rounds = ROUNDS, peerRounds = PEER_ROUNDS) {
  const peerTimes = [];
  const times = [];
  const burst = Math.ceil(rounds / peerRounds);
  let report = null;
  for (let round = 0; round <= peerRounds; round++) {
    const record = round > 0;
    for (let i = 0; i < 2; i++) {
      const start = process.hrtime.bigint();
      sink = (sink + microdiff(healthy, hung).length) | 0; // every field of both documents, walked generically
      if (record && i === 1) peerTimes.push(msSince(start));
    }
    if (!compare) continue;
    const untimed = record ? 5 : 30;
    for (let i = 0; i < untimed + burst; i++) {
      const start = process.hrtime.bigint();
      report = compare(healthy, hung);
      if (record && i >= untimed) times.push(msSince(start));
      consume(report);
    }
  }
  return { peer: median(peerTimes), median: compare ? median(times) : null, p95: compare ? p95(times) : null, report };
}

/** validateSnapshot() of a fresh copy of each side: what the first use of a hand-built pair pays, once. */
function timeCheck(validateSnapshot, healthy, hung) {
  const times = [];
  for (let i = 0; i < 3; i++) {
    const a = structuredClone(healthy);
    const b = structuredClone(hung);
    const start = process.hrtime.bigint();
    validateSnapshot(a);
    validateSnapshot(b);
    times.push(msSince(start));
  }
  return median(times);
}

/**
 * One ProgressTracker.step() on a warmed tracker, fed samples `next` makes, 100 ms apart. With
 * `check`, each sample is checked before it is fed (outside the timed part), as the samples
 * watch() feeds were made by the library; without, the step checks it.
 */
function timeStep(ProgressTracker, first, next, check, rounds = ROUNDS) {
  const tracker = new ProgressTracker({});
  let sample = first;
  const WARM = 60; // 6 s of samples: past the stall threshold (1 s by default), so stalls are being reported
  for (let i = 0; i < WARM; i++) {
    if (check) check(sample);
    consume(tracker.step(sample));
    sample = next(sample, i);
  }
  const times = [];
  let last;
  for (let i = 0; i < rounds; i++) {
    if (check) check(sample);
    const start = process.hrtime.bigint();
    last = tracker.step(sample);
    times.push(msSince(start));
    consume(last);
    sample = next(sample, WARM + i); // outside the timed part
  }
  return { median: median(times), p95: p95(times), last, seconds: ((WARM + rounds) * STEP_NS) / 1e9 };
}

/* ---------------------------------------------------------------------- main */

/**
 * Each group runs in a process of its own (`--group NAME`), so that no group's objects, garbage
 * or inline caches are charged to another's timings: a real sample's threads and a synthetic
 * one's have different shapes, and code that has seen both runs slower on each than a process
 * that samples one kind of snapshot ever will.
 */
const GROUPS = ['real, kernel stacks', 'real, user stacks', 'synthetic, 10 processes x 1,000 threads', 'synthetic, 1 process x 10,000 threads', 'an hour at 10 Hz'];

async function makeGroupPair(group) {
  if (group.startsWith('synthetic')) {
    const processes = group.includes('10 processes') ? 10 : 1;
    return { ...makePair(processes, THREADS / processes), label: group };
  }
  const { takeRealPair, widen, nextRealSample } = require('./lib/real-pair');
  const real = await takeRealPair({ stacks: group.includes('user stacks') });
  const label = real.kernelStacks ? group : `${group} (no kernel stacks: not root)`;
  return { ...widen(real, { processes: 10, threadsPer: 1000, accelerators: ACCELERATORS }), label, note: `${real.threads} real threads`, nextRealSample };
}

/** One group, in this process: its table rows and notes. */
async function runGroup(group) {
  const rows = [];
  const notes = [];
  const built = loadCompare();
  const tracking = loadProgressTracker();
  if (built.note) notes.push(built.note);
  if (!built.compare) notes.push(`compare(): MISSING: ${built.missing}. Run \`npm run build\` once src/analyze/compare.ts exists.`);
  if (!tracking.ProgressTracker) notes.push(`ProgressTracker: MISSING: ${tracking.missing}. Run \`npm run build\` once src/analyze/progress.ts exists.`);
  if (group === 'an hour at 10 Hz') {
    if (tracking.ProgressTracker) {
      const start = process.hrtime.bigint();
      const hour = hourAt10Hz(tracking.ProgressTracker);
      const wallS = msSince(start) / 1000;
      const kib = (bytes) => Math.round(bytes / 1024);
      const from = hour.heap.find((point) => point.step === HEAP_EVERY);
      const to = hour.heap[hour.heap.length - 1];
      const growth = to.bytes - from.bytes;
      const pass = growth < HEAP_BUDGET_BYTES;
      notes.push(
        `an hour at 10 Hz, ${HOUR_THREADS} threads: ${HOUR_STEPS.toLocaleString('en')} steps in ${wallS.toFixed(1)} s ` +
          `(${Math.round(HOUR_STEPS / (hour.stepMs / 1000)).toLocaleString('en')} steps/s in step(), ${((hour.stepMs * 1000) / HOUR_STEPS).toFixed(1)} µs each); ` +
          `${hour.newTids} threads replaced (${hour.tracked ?? '?'} tracked at the end); verdicts: ${hour.verdicts.healthy} healthy, ` +
          `${hour.verdicts.suspect} suspect, ${hour.verdicts.hung} hung (${hour.hangs} hangs, ${hour.recoveries} recoveries); ${hour.findings} findings in all`,
        `  heap after gc() every ${HEAP_EVERY.toLocaleString('en')} steps, KiB: ${hour.heap.map((point) => kib(point.bytes)).join(' ')}`,
        `  growth from step ${from.step.toLocaleString('en')} to ${to.step.toLocaleString('en')}: ${growth >= 0 ? '+' : ''}${kib(growth)} KiB ` +
          `(budget < ${kib(HEAP_BUDGET_BYTES)} KiB) ${pass ? 'PASS' : 'MISS'}`,
      );
      rows.push({ pass, hidden: true });
    }
    return { rows, notes, ok: Boolean(tracking.ProgressTracker) };
  }
  const pair = await makeGroupPair(group);
  const { validateSnapshot } = built.compare ? require('../lib') : {};
  const timed = timeCompare(built.compare, pair.healthy, pair.hung);
  if (!built.compare) {
    rows.push({ what: `microdiff, ${pair.label}`, median: null, p95: null, peer: timed.peer, budget: '-', pass: true });
    return { rows, notes, ok: false };
  }
  const m = timed.median;
  rows.push({ what: `compare(), ${pair.label}`, median: m, p95: timed.p95, peer: null, budget: `<= ${COMPARE_BUDGET_MS} ms median`, pass: m <= COMPARE_BUDGET_MS });
  rows.push({
    what: '  vs microdiff(healthy, hung)',
    median: m,
    p95: null,
    peer: timed.peer,
    shown: `${(timed.peer / m).toFixed(1)}x faster`,
    budget: `>= ${PEER_BUDGET}x`,
    pass: timed.peer / m >= PEER_BUDGET,
  });
  rows.push({ what: '  its check, once per object (validateSnapshot x2)', median: timeCheck(validateSnapshot, pair.healthy, pair.hung), p95: null, peer: null, budget: '-', pass: true });
  notes.push(`${pair.label}${pair.note ? ` (from ${pair.note})` : ''}: verdict ${timed.report.verdict}; ${timed.report.findings.length} findings (${findingKinds(timed.report)})`);

  // (c) one watch step over 10 x 1,000 threads, from the real pair with kernel stacks and from the synthetic 10 x 1,000
  const steps = group === 'real, kernel stacks' || group.startsWith('synthetic, 10');
  if (steps && tracking.ProgressTracker) {
    const kind = group.startsWith('real') ? 'real, kernel stacks' : 'synthetic';
    const rand = random(3);
    const next = pair.nextRealSample ? (sample, i) => pair.nextRealSample(sample, pair.role, STEP_NS, i) : (sample) => nextSample(rand, sample, pair.role, STEP_NS);
    global.gc(); // the pair's compare() garbage, before the steps are timed
    const step = timeStep(tracking.ProgressTracker, pair.healthy, next, validateSnapshot);
    rows.push({ what: `ProgressTracker.step(), 10 x 1,000, ${kind}`, median: step.median, p95: step.p95, peer: null, budget: `<= ${STEP_BUDGET_MS} ms median`, pass: step.median <= STEP_BUDGET_MS });
    notes.push(`watch step (${kind}) after ${step.seconds} s of samples: verdict ${step.last.verdict}; ${step.last.findings.length} findings (${findingKinds(step.last)})`);
    if (kind === 'synthetic') {
      const unchecked = timeStep(tracking.ProgressTracker, pair.healthy, next, null, Math.ceil(ROUNDS / 3));
      rows.push({ what: '  a hand-built sample, checked in the step', median: unchecked.median, p95: unchecked.p95, peer: null, budget: '-', pass: true });
    }
  }
  return { rows, notes, ok: Boolean(tracking.ProgressTracker) };
}

async function main() {
  const at = process.argv.indexOf('--group');
  if (at > 0) {
    const result = await runGroup(process.argv[at + 1]);
    process.stdout.write(`RESULT ${JSON.stringify({ ...result, sink })}\n`);
    return;
  }
  const pad = (text, width) => String(text).padEnd(width);
  const num = (value) => (value === null ? '-' : value.toFixed(3)).padStart(10);
  console.log(
    `iokit-snap compare()/watch step: ${THREADS.toLocaleString('en')} threads, ${ACCELERATORS} accelerators; ` +
      `${ROUNDS} timed calls per row (peer ${PEER_ROUNDS}); each group in a process of its own; ${os.cpus().length} CPUs, Node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`,
  );
  const groups = process.platform === 'linux' ? GROUPS : GROUPS.filter((g) => !g.startsWith('real'));
  if (groups.length < GROUPS.length) console.log('the real pairs are taken with Linux targets (test/targets/target.c): skipped here');
  console.log(`${pad('', 52)}${'median ms'.padStart(10)}${'p95 ms'.padStart(10)}${'peer ms'.padStart(10)}   ${pad('ratio', 16)}${pad('budget', 16)}`);
  const notes = [];
  let ok = true;
  let checksum = 0;
  for (const group of groups) {
    const child = spawnSync(process.execPath, [...process.execArgv, __filename, '--group', group, ...process.argv.slice(2)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 24,
    });
    const line = (child.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
    if (child.status !== 0 || line === undefined) {
      console.log(`${group}: the group failed (exit ${child.status})`);
      ok = false;
      continue;
    }
    const result = JSON.parse(line.slice('RESULT '.length));
    for (const row of result.rows) {
      ok &&= row.pass;
      if (row.hidden) continue;
      console.log(
        `${pad(row.what, 52)}${num(row.median)}${num(row.p95)}${num(row.peer)}   ${pad(row.shown ?? '', 16)}${pad(row.budget, 16)}${row.budget === '-' ? '' : row.pass ? 'PASS' : 'MISS'}`,
      );
    }
    notes.push(...result.notes);
    ok &&= result.ok;
    checksum = (checksum + result.sink) | 0;
  }
  for (const note of notes) console.log(note);
  console.log(`(checksum ${checksum})`);
  if (!ok) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 2;
  });
}

module.exports = { makePair, nextSample, random, timeCompare, timeStep, STEP_NS };
