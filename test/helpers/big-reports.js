/*
 * Big thread reports for the limits tests and bench/import-reports.js: real report shapes
 * (the kernel's hung_task and sysrq-w blocks, a macOS crash report's thread sections, as in
 * test/fixtures/reports) repeated with a new task or thread id each time, to a size a real
 * machine can print: a box with 200,000 blocked tasks, a crash report of a process with
 * tens of thousands of threads.
 *
 * Each generator yields the report in chunks of about 1 MiB, so a 250 MB report can be
 * written to a file without ever being one string; `text()` joins a small one.
 */
'use strict';
const fs = require('node:fs');

/** The frames of one blocked task: a GPU ioctl waiting on a mutex (the returnn nvidia_uvm capture). */
const HUNG_FRAMES = [
  '__schedule+0x23d/0x590',
  'schedule+0x4e/0xb0',
  'schedule_preempt_disabled+0xe/0x10',
  '__mutex_lock.constprop.0+0x263/0x490',
  '__mutex_lock_slowpath+0x13/0x20',
  'mutex_lock+0x34/0x40',
  'uvm_page_tree_get_ptes_async+0x93/0x970 [nvidia_uvm]',
  '? __kmalloc+0x179/0x330',
  'uvm_page_table_range_vec_init+0x191/0x260 [nvidia_uvm]',
  'uvm_page_table_range_vec_create+0x65/0xb0 [nvidia_uvm]',
  'mem_map_gpu+0x68/0x210 [nvidia_uvm]',
  'uvm_mem_map_gpu_kernel+0xcc/0x1a0 [nvidia_uvm]',
  'uvm_api_alloc_semaphore_pool+0x19c/0x2f0 [nvidia_uvm]',
  'uvm_ioctl+0x13e0/0x16f0 [nvidia_uvm]',
  '? __mod_lruvec_page_state+0x6b/0xb0',
  '? unlock_page_memcg+0x46/0x80',
  '? page_remove_rmap+0x45/0xf0',
  '? wp_page_copy+0xcd/0x570',
  '? thread_context_non_interrupt_add+0x147/0x240 [nvidia_uvm]',
  '? uvm_thread_context_add+0x65/0xc0 [nvidia_uvm]',
  'uvm_unlocked_ioctl_entry.part.0+0xaf/0x120 [nvidia_uvm]',
  'uvm_unlocked_ioctl_entry+0x6b/0x90 [nvidia_uvm]',
  '__x64_sys_ioctl+0x92/0xd0',
  'do_syscall_64+0x59/0xc0',
  '? exit_to_user_mode_prepare+0x37/0xb0',
  '? syscall_exit_to_user_mode+0x27/0x50',
  'entry_SYSCALL_64_after_hwframe+0x61/0xcb',
];

const CHUNK = 1 << 20;

function* chunked(blocks) {
  let parts = [];
  let size = 0;
  for (const block of blocks) {
    parts.push(block);
    size += block.length;
    if (size >= CHUNK) {
      yield parts.join('');
      parts = [];
      size = 0;
    }
  }
  if (parts.length > 0) yield parts.join('');
}

/**
 * A hung_task log: `tasks` tasks, each "INFO: task … blocked for more than 120 seconds", its
 * task line and a call trace of `frames` frames (27 at most; 4 gives ~450 bytes a task, 27
 * about 1.3 KB). Every task waits on the same mutex in the same function. `timestamps: false`
 * leaves out dmesg's "[  600.000000] " prefixes (journalctl -o cat prints the lines so).
 */
function* hungTask(tasks, frames = 4, { timestamps = true } = {}) {
  const trace = HUNG_FRAMES.slice(0, frames);
  yield* chunked(
    (function* () {
      for (let i = 0; i < tasks; i++) {
        const pid = 10000 + i;
        const t = timestamps ? `[${(600 + i / 1000).toFixed(6).padStart(12)}] ` : '';
        let block =
          `${t}INFO: task python3:${pid} blocked for more than 120 seconds.\n` +
          `${t}task:python3         state:D stack:    0 pid:${pid} ppid: 4242 flags:0x00000002\n` +
          `${t}Call Trace:\n`;
        if (timestamps) block += `${t} <TASK>\n`;
        for (const frame of trace) block += `${t} ${frame}\n`;
        yield timestamps ? block + `${t} </TASK>\n` : block;
      }
    })(),
  );
}

/** A sysrq-w (Show Blocked State) dump of about `bytes`: task lines of kworkers and python tasks with their traces. */
function* sysrq(bytes, frames = 12) {
  const trace = HUNG_FRAMES.slice(0, frames);
  let size = 0;
  yield* chunked(
    (function* () {
      const head = '[   31.789435] sysrq: Show Blocked State\n';
      size += head.length;
      yield head;
      for (let i = 0; size < bytes; i++) {
        const pid = 100 + i;
        const t = `${(31.79 + i / 1e6).toFixed(6).padStart(12)}`;
        let block = `[${t}] task:kworker/u17:${i % 64}${' '.repeat(3)}state:D stack:0     pid:${pid}    tgid:${pid}    ppid:2      task_flags:0x4208060 flags:0x00000010\n[${t}] Call Trace:\n`;
        for (const frame of trace) block += `[${t}]  ${frame}\n`;
        size += block.length;
        yield block;
      }
    })(),
  );
}

/** The frames of one thread of a crash report (the nv capture's main thread). */
const CRASH_FRAMES = [
  'libsystem_kernel.dylib          0x00007fff90c8267a mach_msg_trap + 10',
  'libsystem_kernel.dylib          0x00007fff90c81d71 mach_msg + 73',
  'com.apple.CoreFoundation        0x00007fff900c66fc __CFRunLoopServiceMachPort + 188',
  'com.apple.CoreFoundation        0x00007fff900cee64 __CFRunLoopRun + 1204',
  'com.apple.CoreFoundation        0x00007fff900ce676 CFRunLoopRunSpecific + 230',
  'com.apple.HIToolbox             0x00007fff8b03731f RunCurrentEventLoopInMode + 277',
  'com.apple.HIToolbox             0x00007fff8b03e5c9 ReceiveNextEventCommon + 355',
  'com.apple.HIToolbox             0x00007fff8b03e456 BlockUntilNextEventMatchingListInMode + 62',
  'com.apple.AppKit                0x000000010056af5d _DPSNextEvent + 659',
  'com.apple.AppKit                0x000000010056a861 -[NSApplication nextEventMatchingMask:untilDate:inMode:dequeue:] + 135',
  'com.apple.AppKit                0x000000010056719d -[NSApplication run] + 470',
  'com.apple.AppKit                0x00000001007e5b88 NSApplicationMain + 867',
  'net.elasticthreads.nv           0x000000010000a350 start + 52',
];

/** A crash report's thread sections, about `bytes`: thread after thread of the nv capture's main-thread stack (its first `frames` frames). */
function* crash(bytes, frames = CRASH_FRAMES.length) {
  let size = 0;
  yield* chunked(
    (function* () {
      for (let i = 0; size < bytes; i++) {
        let block = `Thread ${i}::${i === 0 ? ' Dispatch queue: com.apple.main-thread' : ''}\n`;
        CRASH_FRAMES.slice(0, frames).forEach((frame, n) => (block += `${String(n).padEnd(4)}${frame}\n`));
        block += '\n';
        size += block.length;
        yield block;
      }
    })(),
  );
}

/** All chunks as one string (for sizes a test uses). */
function text(chunks) {
  return [...chunks].join('');
}

/** Write the chunks to a file; resolves with its size in bytes. */
async function writeTo(path, chunks) {
  const out = fs.createWriteStream(path);
  let size = 0;
  for (const chunk of chunks) {
    size += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
  }
  await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())));
  return size;
}

module.exports = { hungTask, sysrq, crash, text, writeTo };
