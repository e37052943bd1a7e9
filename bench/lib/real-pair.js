/*
 * Healthy/hung pairs built from real snapshots, for bench/compare.js and bench/check.js.
 *
 * takeRealPair() starts real processes in known states (test/targets/target.c), takes
 * snapshot({ pids }) of them, waits a little longer than compare()'s default stall time, and
 * takes a second one: two real iokit-snap/1 documents with every field a Linux snapshot of
 * those processes has (cpuNs, runDelayNs, wchan, blockedIn with fd and target, and, as
 * root, each thread's kernel stack; with `stacks`, each thread's user stack, named from the
 * ELF symbol tables). The accelerators are what sampleAccelerators() reads from the
 * fixture sysfs trees of an NVIDIA H100 and an AMD workstation (copies of real machines'
 * /sys, test/fixtures/sys/README.md), since a bench machine may have no GPU.
 *
 * widen() makes a pair of `processes` x `threadsPer` threads and `accelerators` devices
 * from those records: each widened thread is a copy of one real thread (healthy and hung
 * records of the same thread), with its tid rewritten, chosen by a role:
 *   main          the epoll server's main thread (idle in epoll_wait in both)
 *   idle          rotating over the idle real threads (clock_nanosleep, poll, epoll_wait)
 *   progressing   an idle sleeper whose hung copy has more CPU time and context switches
 *                 (the one change made by hand: no real target wakes up on cue)
 *   spinning      the spinning target's thread (its real CPU growth over the window)
 *   stalled-futex the deadlocked threads (futex, no progress in the window)
 *   stalled-pipe  the fifo reader (read on a fifo)
 *   fifo-open     the fifo opener (openat in wait_for_partner)
 *   uninterruptible the vfork parent (D state)
 *   stopped       a sleeper stopped with SIGSTOP before the hung snapshot
 * Accelerators: each a copy of a fixture device under a new PCI address; in the hung copy a
 * tenth show new utilization and memory figures, one dropped to D3hot, one came back under a
 * new address, one reports the GPU lost. Every string is then made the object the native
 * builder would have made for its text (likeTheBuilder), so comparisons cost what they cost
 * on real samples.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { compileC, sleep, startTarget } = require('./index');

const ROOT = path.join(__dirname, '..', '..');

/** Every thread of the real targets, keyed by role, as [healthy, hung] record pairs. */
async function takeRealPair({ stacks = false, windowMs = 1300 } = {}) {
  const lib = require(path.join(ROOT, 'lib'));
  const target = compileC(path.join(ROOT, 'test', 'targets', 'target.c'), 'target');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-real-pair-'));
  const children = [];
  let writer = -1;
  const start = async (role, args) => {
    const started = await startTarget(target, args);
    children.push({ role, ...started });
    return started;
  };
  try {
    const readFifo = path.join(dir, 'reader.fifo');
    const openFifo = path.join(dir, 'opener.fifo');
    execFileSync('mkfifo', [readFifo, openFifo]);
    writer = fs.openSync(readFifo, fs.constants.O_RDWR); // the reader's open returns at once, its read blocks
    await start('idle', ['threads', '15']);
    await start('main', ['epoll-idle']);
    await start('idle', ['poll-idle']);
    await start('stalled-futex', ['deadlock']);
    await start('stalled-pipe', ['fifo-reader', readFifo]);
    await start('fifo-open', ['fifo-opener', openFifo]);
    await start('spinning', ['spin']);
    await start('uninterruptible', ['vfork-parent']);
    const stopped = await start('stopped', ['sleep']);
    const pids = children.map((c) => c.pid);
    const options = { pids, sysRoot: path.join(ROOT, 'test', 'fixtures', 'sys', 'nvidia-h100'), nvml: false, threads: { stacks } };
    // Let every target reach its wait (the opener's openat, the reader's read) first.
    await sleep(200);
    const healthy = await lib.snapshot(options);
    await sleep(windowMs);
    process.kill(stopped.pid, 'SIGSTOP');
    await sleep(50);
    const hung = await lib.snapshot(options);
    const amd = await lib.sampleAccelerators({ sysRoot: path.join(ROOT, 'test', 'fixtures', 'sys', 'amd-workstation'), nvml: false });
    const nvidia = healthy.accelerators;
    const templates = [...nvidia, ...amd.accelerators];
    if (templates.length === 0) throw new Error('the fixture sysfs trees gave no accelerators');
    const roleOf = new Map(children.map((c) => [c.pid, c.role]));
    const byRole = {};
    for (const p of healthy.processes) {
      const later = hung.processes.find((q) => q.pid === p.pid);
      if (later === undefined) continue;
      for (const t of p.threads) {
        const u = later.threads.find((x) => x.tid === t.tid);
        if (u === undefined || t.blockedIn?.joining !== undefined) continue; // a join names a tid widening cannot keep
        let role = roleOf.get(p.pid);
        if (role === 'main' && t.tid !== p.pid) role = 'idle';
        if (role === 'uninterruptible' && t.state !== 'uninterruptible') continue;
        (byRole[role] ??= []).push([t, u]);
      }
    }
    for (const role of ['main', 'idle', 'stalled-futex', 'stalled-pipe', 'fifo-open', 'spinning', 'uninterruptible', 'stopped']) {
      if (!byRole[role]) throw new Error(`no real thread for the role ${role} (sampled: ${Object.keys(byRole).join(', ')})`);
    }
    const kernelStacks = healthy.processes.some((p) => p.threads.some((t) => t.kernelStack !== undefined));
    const userStacks = healthy.processes.some((p) => p.threads.some((t) => t.stack !== undefined));
    return { healthy, hung, byRole, templates, kernelStacks, userStacks, threads: healthy.processes.reduce((n, p) => n + p.threads.length, 0) };
  } finally {
    for (const c of children) {
      try {
        process.kill(c.pid, 'SIGCONT');
      } catch {}
      c.child.kill('SIGKILL');
    }
    if (writer >= 0) fs.closeSync(writer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** What each thread of the widened pair is, by its index over the whole pair (as bench/compare.js's synthetic roles). */
function roles(processes, threadsPer) {
  const total = processes * threadsPer;
  const special = [
    'uninterruptible',
    'stopped',
    'fifo-open',
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

const copy = (value) => structuredClone(value);

/**
 * The strings of `value` as the native builder makes them (native/node/to_js.cc): each distinct text
 * one internalized string, the same object in every sample. A copy (structuredClone) makes a
 * new string for every field of every thread, and comparing those costs what comparing
 * strings of a real sample does not.
 */
const interned = new Map();
function likeTheBuilder(value) {
  if (typeof value === 'string') {
    let string = interned.get(value);
    if (string === undefined) {
      string = Object.keys({ [value]: 0 })[0];
      interned.set(string, string);
    }
    return string;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = likeTheBuilder(value[i]);
  } else if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) value[key] = likeTheBuilder(value[key]);
  }
  return value;
}

/** The healthy and hung copies of one real thread under `tid`. */
function threadPair(real, role, index, tid) {
  const pool = real.byRole[role === 'progressing' ? 'idle' : role];
  const [a, b] = pool[index % pool.length];
  const before = copy(a);
  const after = copy(b);
  before.tid = tid;
  after.tid = tid;
  if (role === 'progressing') {
    // More CPU time and context switches in the window: it woke up and worked.
    const grewNs = 5e6 + (index % 97) * 1e6;
    after.cpuNs = (before.cpuNs ?? 0) + grewNs;
    after.userNs = before.userNs + Math.floor(grewNs / 1e7) * 1e7;
    if (after.contextSwitches !== null) after.contextSwitches = { voluntary: before.contextSwitches.voluntary + 3 + (index % 40), involuntary: before.contextSwitches.involuntary + (index % 3) };
  }
  return [before, after];
}

/** The hung image of accelerator `i` (a copy of `before`). */
function advanceAccelerator(before, i) {
  const after = copy(before);
  if (i % 10 === 1) {
    if (after.utilization !== null) after.utilization.devicePercent = 40 + (i % 50);
    if (after.memory !== null && after.memory.inUseBytes !== null) after.memory.inUseBytes += 1 << 28;
  }
  if (i === 23 && after.power !== null) {
    after.power.state = 'D3hot';
    after.power.runtimeStatus = 'suspended';
  }
  if (i === 42) after.health = { gpuLost: true, resetRequired: true };
  if (i === 61) after.id = `${before.id.slice(0, -1)}1`;
  return after;
}

/** A pair of `processes` x `threadsPer` threads and `accelerators` devices, every record a copy of a real one. */
function widen(real, { processes = 10, threadsPer = 1000, accelerators = 100 } = {}) {
  const role = roles(processes, threadsPer);
  const shift = real.hung.monotonicNs - real.healthy.monotonicNs;
  const healthy = { ...copy({ ...real.healthy, processes: [], accelerators: [] }) };
  const hung = { ...copy({ ...real.hung, processes: [], accelerators: [] }) };
  const model = real.healthy.processes[0];
  for (let p = 0; p < processes; p++) {
    const pid = 20000 + p * (threadsPer + 100);
    const name = processes === 1 ? 'trainer' : `trainer-rank${p}`;
    const before = [];
    const after = [];
    for (let i = 0; i < threadsPer; i++) {
      const g = p * threadsPer + i;
      const [b, a] = threadPair(real, role[g], g, pid + i);
      if (i === 0) {
        b.name = name;
        a.name = name;
      }
      before.push(b);
      after.push(a);
    }
    const sampledAtNs = real.healthy.monotonicNs + 1e6 + p * 2e5;
    healthy.processes.push({ pid, name, sampledAtNs, abi: model.abi, threads: before });
    hung.processes.push({ pid, name, sampledAtNs: sampledAtNs + shift, abi: model.abi, threads: after });
  }
  for (let i = 0; i < accelerators; i++) {
    const a = copy(real.templates[i % real.templates.length]);
    const address = `0000:${(0x10 + i).toString(16).padStart(2, '0')}:00.0`;
    a.id = address;
    a.name = a.name.startsWith('0000:') ? address : `card${i}`;
    a.location = `/sys/devices/pci0000:00/${address}`;
    healthy.accelerators.push(a);
    hung.accelerators.push(advanceAccelerator(a, i));
  }
  return { healthy: likeTheBuilder(healthy), hung: likeTheBuilder(hung), role };
}

/**
 * The next watch sample of a widened pair, `stepNs` on: every thread a new object, and so its
 * blockedIn, contextSwitches, stacks and frames (as the sampler returns them; the strings are
 * the same objects, as the builder's are), progressing and spinning threads with more CPU time.
 */
function nextRealSample(sample, role, stepNs, tick) {
  let g = 0;
  const processes = sample.processes.map((p) => ({
    ...p,
    sampledAtNs: p.sampledAtNs + stepNs,
    threads: p.threads.map((t) => {
      const r = role[g++];
      const next = { ...t };
      if (t.contextSwitches !== null) next.contextSwitches = { ...t.contextSwitches };
      if (t.blockedIn !== null) next.blockedIn = { ...t.blockedIn };
      if (t.kernelStack !== undefined) next.kernelStack = [...t.kernelStack];
      if (t.stack !== undefined) next.stack = t.stack.map((frame) => ({ ...frame }));
      if (r === 'spinning') next.cpuNs = (t.cpuNs ?? 0) + stepNs * 0.98;
      else if (r === 'progressing' && (tick + g) % 3 === 0) {
        next.cpuNs = (t.cpuNs ?? 0) + 1e6;
        if (t.contextSwitches !== null) next.contextSwitches = { voluntary: t.contextSwitches.voluntary + 1, involuntary: t.contextSwitches.involuntary };
      }
      return next;
    }),
  }));
  return { ...sample, monotonicNs: sample.monotonicNs + stepNs, processes };
}

module.exports = { takeRealPair, widen, nextRealSample };
