#!/usr/bin/env node
// Live check of what a stack walk does to the process it holds, on a real Mac, as root
// (the CI's macOS runners): the test suite cannot hold another process there, and the
// other live checks sample only processes that give no task port (the shell, a hardened
// node, launchd under SIP).
//
//   sudo node .github/scripts/darwin-hold.js
//
// 1. Builds a small target (not hardened: root gets its task port) whose main thread
//    bumps a counter in a file, with a thread blocked in read(2) on a pipe and one in
//    nanosleep, so each walk holds a process that is running, blocked and sleeping.
// 2. Samples it with stacks several times: the task-port path, every thread walked, the
//    reader blocked in `read` on the pipe.
// 3. Runs a sampler child that walks the target in a loop and SIGKILLs it at random
//    moments, many times, so that some kills land in the middle of a walk, while the
//    target is held. After each, the target must go on (the counter advances) and a
//    fresh sample must show every thread with a suspend count of 0: the hold ends with
//    the sampler (the task_suspend2 token dies with it), and no thread_suspend is left.
// 4. A thread sampler opened on the target keeps sampling it across an exec (the
//    process gets a new task; the sampler must not report it as exited).
//
// On Linux it runs too (ptrace stacks, no suspend counts), which checks the script itself.
'use strict';
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const { sampleThreads, createThreadSampler } = require(root);
const notice = (message) => console.log(`::notice::${message}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const TARGET = String.raw`
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];

static void* reader(void* arg) {  // blocked in read(2) for good
  char c;
  (void)arg;
  for (;;) read(pipefd[0], &c, 1);
  return NULL;
}

static void* sleeper(void* arg) {
  (void)arg;
  for (;;) {
    struct timespec t = {0, 20 * 1000 * 1000};
    nanosleep(&t, NULL);
  }
  return NULL;
}

// target <counter file> [exec-after-ms]: bumps a counter in the file; with a delay, execs
// itself (without the delay) once that time has passed.
int main(int argc, char** argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
  if (fd < 0 || pipe(pipefd) != 0) return 1;
  pthread_t a, b;
  pthread_create(&a, NULL, reader, NULL);
  pthread_create(&b, NULL, sleeper, NULL);
  long execAfterMs = argc > 2 ? atol(argv[2]) : -1;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (uint64_t n = 1;; ++n) {
    pwrite(fd, &n, sizeof n, 0);
    struct timespec t = {0, 1000 * 1000};
    nanosleep(&t, NULL);
    if (execAfterMs >= 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >= execAfterMs) {
        char* args[] = {argv[0], argv[1], NULL};
        execv(argv[0], args);
        return 3;
      }
    }
  }
}
`;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-hold-'));
const children = [];
function cleanup() {
  for (const child of children) child.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
}

function build() {
  fs.writeFileSync(path.join(work, 'target.c'), TARGET);
  const binary = path.join(work, 'target');
  const cc = spawnSync('cc', ['-O1', '-o', binary, path.join(work, 'target.c'), '-lpthread'], { encoding: 'utf8' });
  assert.equal(cc.status, 0, `cc failed: ${cc.stderr}`);
  return binary;
}

function start(binary, counterFile, ...extra) {
  const child = spawn(binary, [counterFile, ...extra], { stdio: 'ignore' });
  children.push(child);
  return child;
}

function counter(file) {
  const buffer = Buffer.alloc(8);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buffer, 0, 8, 0);
  } finally {
    fs.closeSync(fd);
  }
  return buffer.readBigUInt64LE(0);
}

async function advances(file, what) {
  const before = counter(file);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    await sleep(50);
    if (counter(file) > before) return;
  }
  assert.fail(`${what}: the target's counter stayed at ${before} for 5 s: the target is frozen`);
}

// A full sample: the task-port path (no EPERM limit), and on macOS every thread free.
async function freshSample(pid, what) {
  const sample = await sampleThreads(pid, { stacks: true, maxStackDepth: 64 });
  assert.ok(sample.threads.length >= 3, `${what}: the target's three threads (${sample.threads.length})`);
  const denied = sample.limits.filter((l) => l.code === 'EPERM');
  assert.deepEqual(denied, [], `${what}: sampled through the task port (run this as root)`);
  if (process.platform === 'darwin') {
    const held = sample.threads.filter((t) => t.suspendCount !== 0);
    assert.deepEqual(held.map((t) => [t.tid, t.suspendCount]), [], `${what}: no thread is left suspended`);
  }
  return sample;
}

async function main() {
  if (process.platform === 'darwin' && process.getuid() !== 0) {
    console.error('darwin-hold.js: run as root (sudo): only root gets the task port of another process here');
    process.exit(64);
  }
  const binary = build();
  const counterFile = path.join(work, 'counter');
  const target = start(binary, counterFile);
  await sleep(300);
  await advances(counterFile, 'at start');

  // 2. Samples with stacks: every thread walked, the reader blocked in read.
  for (let i = 0; i < 5; i++) {
    const sample = await freshSample(target.pid, `sample ${i}`);
    // (Linux never stops the main thread of its own child, which runs here: two of three.)
    const walked = sample.threads.filter((t) => t.stack && t.stack.length >= 2);
    const expected = process.platform === 'darwin' ? 3 : 2;
    assert.ok(walked.length >= expected, `sample ${i}: every thread has a stack (${JSON.stringify(sample.limits)})`);
    assert.ok(
      sample.threads.some((t) => t.blockedIn && t.blockedIn.call === 'read'),
      `sample ${i}: the reader waits in read: ${JSON.stringify(sample.threads.map((t) => t.blockedIn))}`,
    );
    await advances(counterFile, `after sample ${i}`);
  }

  // 3. A sampler killed at random moments, some of them in the middle of a walk.
  const loop = `const { sampleThreads } = require(${JSON.stringify(root)});
    (async () => { for (;;) await sampleThreads(${target.pid}, { stacks: true, maxStackDepth: 1024 }); })();`;
  const kills = 20;
  for (let i = 0; i < kills; i++) {
    const sampler = spawn(process.execPath, ['-e', loop], { stdio: 'ignore' });
    children.push(sampler);
    await sleep(150 + Math.floor(Math.random() * 250));
    sampler.kill('SIGKILL');
    await new Promise((resolve) => sampler.once('exit', resolve));
    await advances(counterFile, `after killing sampler ${i}`);
    await freshSample(target.pid, `after killing sampler ${i}`);
  }
  notice(`hold: ${kills} samplers killed mid-loop; the target kept running and no thread stayed suspended`);

  // 4. A sampler across an exec: the process keeps its pid and gets a new task.
  const execCounter = path.join(work, 'exec-counter');
  const execing = start(binary, execCounter, '700');
  await sleep(200);
  const sampler = createThreadSampler(execing.pid, { stacks: true });
  try {
    const before = await sampler.sample();
    await sleep(1200);
    await advances(execCounter, 'after the exec');
    const after = await sampler.sample();
    assert.ok(after.threads.length >= 3, `after the exec: the new image's threads (${after.threads.length})`);
    assert.deepEqual(after.limits.filter((l) => l.code === 'EPERM'), [], 'after the exec: still the task-port path');
    const tidsBefore = new Set(before.threads.map((t) => t.tid));
    notice(`exec: the sampler followed pid ${execing.pid} into its new image (${after.threads.filter((t) => !tidsBefore.has(t.tid)).length} new thread ids)`);
  } finally {
    sampler.close();
  }
}

main().then(
  () => cleanup(),
  (error) => {
    console.error(error);
    cleanup();
    process.exit(1);
  },
);
