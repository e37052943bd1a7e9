#!/usr/bin/env node
/*
 * Cross-check: every thread of every process on this machine, as sampleThreads() gives it,
 * against /proc read independently here (plain fs calls, nothing from the addon), field by
 * field. Prints the mismatches per field and exits 1 when there is a real one.
 *
 * A live machine moves while it is read, so each process is read independently twice, once
 * before and once after the sample; a field counts as a mismatch only when both independent
 * reads agree with each other and the sample disagrees with them (a field that changed
 * meanwhile, or any field of a thread that ran or switched meanwhile, proves nothing either
 * way and is counted as "moving").
 *
 *   node bench/crosscheck-threads.js [--verbose]      (build first: npm run build)
 */
'use strict';
const fs = require('node:fs');
const { sampleThreads } = require('../lib');

const VERBOSE = process.argv.includes('--verbose');
const STATES = { R: 'running', S: 'sleeping', I: 'sleeping', P: 'sleeping', D: 'uninterruptible', K: 'uninterruptible', T: 'stopped', t: 'stopped', Z: 'zombie', X: 'zombie', x: 'zombie', W: 'runnable' };
const TICK_NS = 1e7;
const PF_KTHREAD = 0x00200000;

const read = (path) => {
  try {
    return fs.readFileSync(path);
  } catch {
    return null;
  }
};
const link = (path) => {
  try {
    return fs.readlinkSync(path);
  } catch {
    return undefined;
  }
};

/** The escaped form sampleThreads gives a comm: \xHH for bytes that are not UTF-8, a backslash doubled. */
function escapeName(bytes) {
  let out = '';
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  // Re-encode per code point and compare with the bytes, to find what did not decode.
  let at = 0;
  for (const ch of text) {
    const encoded = Buffer.from(ch, 'utf8');
    if (ch === '\uFFFD' && !(bytes[at] === 0xef && bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd)) {
      out += `\\x${bytes[at].toString(16).padStart(2, '0')}`;
      at += 1;
      continue;
    }
    out += ch === '\\' ? '\\\\' : ch;
    at += encoded.length;
  }
  return out;
}

/** One thread, as this script reads it: the fields sampleThreads also gives. */
function independent(pid, tid) {
  const dir = `/proc/${pid}/task/${tid}`;
  const stat = read(`${dir}/stat`);
  if (stat === null) return null;
  const close = stat.lastIndexOf(0x29); // ')'
  const name = escapeName(stat.subarray(stat.indexOf(0x28) + 1, close));
  const rest = stat.subarray(close + 2).toString('latin1').split(' ');
  const flags = Number(rest[6]);
  const out = { tid, name, state: STATES[rest[0]] ?? 'unknown', userNs: Number(rest[11]) * TICK_NS, systemNs: Number(rest[12]) * TICK_NS };
  const status = read(`${dir}/status`)?.toString('latin1') ?? '';
  const vol = /\nvoluntary_ctxt_switches:\s*(\d+)/.exec(status);
  const invol = /\nnonvoluntary_ctxt_switches:\s*(\d+)/.exec(status);
  out.contextSwitches = vol && invol ? `${vol[1]}/${invol[1]}` : null;
  const sched = read(`${dir}/schedstat`)?.toString().split(' ');
  out.cpuNs = sched ? Number(sched[0]) : undefined;
  const wchan = read(`${dir}/wchan`)?.toString().trim();
  out.wchan = wchan && wchan !== '0' ? wchan : undefined;
  const syscall = (flags & PF_KTHREAD) !== 0 ? null : read(`${dir}/syscall`)?.toString().trim().split(' ');
  if (syscall && /^\d+$/.test(syscall[0])) {
    out.callNumber = Number(syscall[0]);
    const fd = Number(BigInt.asIntN(32, BigInt(syscall[1])));
    out.fdTarget = fd >= 0 ? link(`${dir}/fd/${fd}`) : undefined;
  } else {
    out.callNumber = null;
  }
  return out;
}

function ours(thread) {
  return {
    tid: thread.tid,
    name: thread.name,
    state: thread.state,
    userNs: thread.userNs,
    systemNs: thread.systemNs,
    contextSwitches: thread.contextSwitches ? `${thread.contextSwitches.voluntary}/${thread.contextSwitches.involuntary}` : null,
    cpuNs: thread.cpuNs,
    wchan: thread.wchan,
    callNumber: thread.blockedIn ? thread.blockedIn.number : null,
    fdTarget: thread.blockedIn ? thread.blockedIn.target : undefined,
  };
}

async function main() {
  if (process.platform !== 'linux') return console.log('crosscheck-threads: Linux only');
  const fields = ['tid', 'name', 'state', 'userNs', 'systemNs', 'contextSwitches', 'cpuNs', 'wchan', 'callNumber', 'fdTarget'];
  const tally = Object.fromEntries(fields.map((f) => [f, { same: 0, moving: 0, mismatch: 0 }]));
  let processes = 0;
  let threads = 0;
  const examples = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const pid = Number(entry);
    const tids = () => {
      try {
        return fs.readdirSync(`/proc/${pid}/task`).map(Number);
      } catch {
        return [];
      }
    };
    const before = new Map(tids().map((tid) => [tid, independent(pid, tid)]));
    let sample;
    try {
      sample = await sampleThreads(pid);
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    const after = new Map(tids().map((tid) => [tid, independent(pid, tid)]));
    processes++;
    // The thread set: a tid both independent reads list must be in the sample.
    for (const tid of before.keys()) {
      if (!after.has(tid)) continue;
      const found = sample.threads.find((th) => th.tid === tid);
      const b = before.get(tid);
      const a = after.get(tid);
      if (!b || !a) continue;
      threads++;
      const o = found ? ours(found) : {};
      // Only calls whose first argument is an fd have a target (the sample's call table says which).
      if (found?.blockedIn?.fd === undefined) b.fdTarget = a.fdTarget = undefined;
      // A thread that ran or switched between the two reads may have been anywhere while sampled.
      const ran = b.cpuNs !== a.cpuNs || b.contextSwitches !== a.contextSwitches;
      for (const field of fields) {
        const stable = JSON.stringify(b[field]) === JSON.stringify(a[field]) && (!ran || field === 'tid' || field === 'name');
        if (!stable) tally[field].moving++;
        else if (JSON.stringify(o[field]) === JSON.stringify(b[field])) tally[field].same++;
        else {
          tally[field].mismatch++;
          if (examples.length < 20) examples.push(`pid ${pid} tid ${tid} ${field}: sample ${JSON.stringify(o[field])}, /proc ${JSON.stringify(b[field])}`);
        }
      }
    }
  }
  console.log(`crosscheck: ${threads} threads of ${processes} processes, sampleThreads vs an independent read of /proc (before and after)`);
  console.log(`${'field'.padEnd(16)}${'same'.padStart(8)}${'moving'.padStart(8)}${'mismatch'.padStart(10)}`);
  for (const field of fields) {
    const t = tally[field];
    console.log(`${field.padEnd(16)}${String(t.same).padStart(8)}${String(t.moving).padStart(8)}${String(t.mismatch).padStart(10)}`);
  }
  if (examples.length > 0) console.log((VERBOSE ? examples : examples.slice(0, 5)).join('\n'));
  if (Object.values(tally).some((t) => t.mismatch > 0)) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 2;
});
