#!/usr/bin/env node
// Live checks of the macOS backend on a real Mac (the CI runners), where nothing in
// the test suite can reach IOKit or Mach. Each check compares against the system's
// own view or against facts the test arranges; it exits non-zero with the reason.
//
//   darwin-smoke.js accelerators <snapshot.json> <ioreg.plist>
//       the `iokit-snap --json` snapshot against `ioreg -a -r -d 1 -c IOAccelerator`
//   darwin-smoke.js threads <sample.json> <pid>
//       `iokit-snap threads <pid> --json` of the shell that ran it
//   darwin-smoke.js self
//       this process sampled through the API with stacks (the task-port path), and a
//       child node sampled without a task port (the libproc path, unless root)
//   darwin-smoke.js package <dir>
//       the installed tarball in <dir> loads its prebuilt binary and samples
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const notice = (message) => console.log(`::notice::${message}`);

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function accelerators(snapshotFile, ioregFile) {
  const plist = require(require.resolve('plist', { paths: [root] }));
  const snapshot = readJson(snapshotFile);
  const text = fs.readFileSync(ioregFile, 'utf8').trim();
  const entries = text === '' ? [] : plist.parse(text);
  assert.ok(Array.isArray(entries), 'ioreg -a -r gives an array of services');
  const expected = entries.map((e) => ({ id: `0x${BigInt(e.IORegistryEntryID).toString(16)}`, className: e.IOObjectClass }));
  const got = snapshot.accelerators.map((a) => ({ id: a.id, className: a.className }));
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  console.log('ioreg:', JSON.stringify(expected), '\niokit-snap:', JSON.stringify(got));
  assert.deepEqual(got.sort(byId), expected.sort(byId), 'the same IOAccelerator services as ioreg, by id and class');
  if (expected.length === 0) {
    // Hosted runner VMs may expose no accelerator at all; then both must say so.
    console.log('::warning::this runner exposes no IOAccelerator service; only the empty list was compared');
    return;
  }
  assert.ok(got.length >= 1, 'at least one accelerator');
  for (const a of snapshot.accelerators) {
    assert.equal(a.classChain[0], a.className, `${a.id}: the chain starts at the class`);
    assert.equal(a.classChain.at(-1), 'OSObject', `${a.id}: the chain ends at OSObject`);
    assert.ok(a.classChain.includes('IOAccelerator'), `${a.id}: conforms to IOAccelerator`);
    assert.ok(a.busy === null || Number.isInteger(a.busy.count), `${a.id}: busy count`);
  }
  notice(`accelerators: ${got.map((a) => `${a.className} ${a.id}`).join(', ')}`);
}

function threads(sampleFile, pidText) {
  const sample = readJson(sampleFile);
  const pid = Number(pidText);
  assert.equal(sample.pid, pid);
  assert.equal(sample.name, 'bash', 'the shell is bash');
  assert.ok(sample.threads.length >= 1, "the shell's thread is listed");
  for (const thread of sample.threads) {
    assert.ok(Number.isInteger(thread.tid) && thread.tid > 0, `tid ${thread.tid}`);
    assert.ok(thread.userNs >= 0 && thread.systemNs >= 0);
  }
  // bash waits in wait4 for npx while it samples; the state must say it waits.
  assert.ok(sample.threads.some((t) => t.state === 'waiting'), `a waiting thread: ${JSON.stringify(sample.threads)}`);
  notice(`threads of bash ${pid}: ${JSON.stringify(sample.threads)} limits: ${JSON.stringify(sample.limits)}`);
}

async function self() {
  const { sampleThreads, createThreadSampler } = require(root);
  // Give the libuv pool work so its threads exist and then wait on a condition variable.
  await Promise.all([1, 2, 3, 4].map(() => fs.promises.stat(__filename)));
  const sample = await sampleThreads(process.pid, { stacks: true, maxStackDepth: 64 });
  assert.equal(sample.pid, process.pid);
  assert.ok(sample.threads.length >= 5, `node runs several threads (${sample.threads.length})`);
  assert.equal(new Set(sample.threads.map((t) => t.tid)).size, sample.threads.length, 'tids are unique');
  const parked = sample.threads.filter((t) => t.blockedIn && t.blockedIn.call === 'psynch_cvwait');
  assert.ok(parked.length >= 1, `idle pool threads wait in psynch_cvwait: ${JSON.stringify(sample.threads.map((t) => [t.state, t.blockedIn]))}`);
  for (const thread of parked) {
    assert.equal(thread.blockedIn.number, 305);
    assert.ok(thread.stack && thread.stack.length >= 3, `a stack for ${thread.tid}`);
    assert.match(thread.stack[0].module || '', /libsystem_kernel\.dylib$/, 'the trap stub is in libsystem_kernel');
    assert.match(thread.stack[1].module || '', /libsystem_pthread\.dylib$/, 'its caller is pthread_cond_wait');
    assert.equal(thread.pc, thread.stack[0].pc);
  }
  assert.deepEqual(sample.limits.filter((l) => l.field === 'stack'), [], 'every stack was read');
  assert.deepEqual(
    sample.limits.filter((l) => l.field !== 'offCpuNs'),
    [],
    'no limit but offCpuNs when sampling ourselves',
  );

  const sampler = createThreadSampler(process.pid);
  const first = await sampler.sample();
  const second = await sampler.sample();
  sampler.close();
  // Suspend counts are read before any stack walk; these samples come after one.
  assert.ok(first.threads.every((t) => t.suspendCount === 0), 'every thread was resumed after its stack walk');
  const tids = (s) => new Set(s.threads.map((t) => t.tid));
  assert.ok([...tids(first)].filter((tid) => tids(second).has(tid)).length >= 4, 'the sampler sees the same threads again');

  // Another process of the same user: task_read_for_pid and task_for_pid are refused
  // unless root (a hardened node), and the libproc path must still list its threads, with
  // a limit saying why and what would help.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const other = await sampleThreads(child.pid);
    assert.ok(other.threads.length >= 2, `the child's threads (${other.threads.length})`);
    const denied = other.limits.find((l) => l.code === 'EPERM');
    if (denied) {
      assert.match(denied.reason, /task_read_for_pid \(.*\) and task_for_pid \(0x[0-9a-f]+\) were refused/);
      assert.match(denied.hint, /com\.apple\.security\.cs\.debugger/);
      assert.match(denied.hint, /hardened runtime/);
      assert.ok(other.threads.every((t) => t.blockedIn === null && t.suspendCount === null));
    }
    // macOS gives no last-run time: every sample says so, once.
    assert.equal(other.limits.filter((l) => l.field === 'offCpuNs' && l.code === 'ENOTSUP').length, 1, 'one offCpuNs limit');
    notice(`child node ${child.pid}: ${denied ? 'libproc path (both task ports refused)' : 'task-port path'}, ${other.threads.length} threads`);
  } finally {
    child.kill();
  }
  notice(`self: ${sample.threads.length} threads, ${parked.length} in psynch_cvwait, stack of one: ${JSON.stringify(parked[0].stack.slice(0, 4))}`);
}

async function installedPackage(dir) {
  const resolved = require.resolve('iokit-snap', { paths: [dir] });
  const { sampleThreads, readHost } = require(resolved);
  const pkgDir = path.dirname(require.resolve('iokit-snap/package.json', { paths: [dir] }));
  assert.ok(!fs.existsSync(path.join(pkgDir, 'build')), 'installed without compiling: the prebuilt binary was used');
  const host = await readHost();
  assert.equal(host.platform, process.platform);
  assert.equal(host.arch, process.arch);
  const sample = await sampleThreads(process.pid, { detail: 'basic' });
  assert.ok(sample.threads.length >= 1);
  notice(`installed package on ${host.platform}-${host.arch} ${host.osRelease}: ${sample.threads.length} threads`);
}

const [command, ...args] = process.argv.slice(2);
const commands = { accelerators, threads, self, package: installedPackage };
if (!commands[command]) {
  console.error(`usage: darwin-smoke.js ${Object.keys(commands).join('|')} …`);
  process.exit(64);
}
Promise.resolve(commands[command](...args)).catch((error) => {
  console.error(error);
  process.exit(1);
});
