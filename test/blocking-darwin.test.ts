// The Darwin call tables (native/syscalls_darwin_bsd.inc, native/mach_traps_darwin.inc)
// and the Darwin "first argument is a descriptor" list, through the built addon. They
// are portable, so they are checked here on Linux as they will run on a Mac.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binding } from '../src/native';

const internals = binding().internals;
const nativeDir = path.join(__dirname, '..', 'native');

/** The entries of an .inc table, in file order, parsed from its text. */
function readTable(file: string): Array<{ number: number; name: string }> {
  const text = fs.readFileSync(path.join(nativeDir, file), 'utf8');
  const entries = [...text.matchAll(/\{(-?\d+), "([A-Za-z0-9_]+)"\}/g)].map((m) => ({ number: Number(m[1]), name: m[2] }));
  const braces = (text.replace(/^\/\/.*$/gm, '').match(/\{/g) ?? []).length;
  if (braces !== entries.length) throw new Error(`${file}: ${braces - entries.length} entries not of the form {n, "name"}`);
  return entries;
}

const bsd = readTable('syscalls_darwin_bsd.inc');
const mach = readTable('mach_traps_darwin.inc');

t.test('the tables are sorted by number with no duplicates, as the binary search needs', async (t) => {
  for (const [file, table] of [['syscalls_darwin_bsd.inc', bsd], ['mach_traps_darwin.inc', mach]] as const) {
    const out = table.filter((entry, i) => i > 0 && entry.number <= table[i - 1].number);
    t.same(out, [], `${file} is strictly increasing`);
  }
  t.ok(bsd.every((e) => e.number >= 0), 'BSD numbers are non-negative');
  t.ok(mach.every((e) => e.number < 0 && e.number > -128), 'Mach traps are -1…-127 (MACH_TRAP_TABLE_COUNT 128)');
  t.ok(bsd.length > 450, `the whole of syscalls.master, not a sample (${bsd.length} entries)`);
  t.ok(mach.length > 55, `the whole trap table (${mach.length} entries)`);
});

t.test('every table entry is found through the addon, on both architectures', async (t) => {
  const missed: string[] = [];
  for (const arch of ['arm64', 'x64'] as const) {
    for (const { number, name } of [...bsd, ...mach]) {
      if (internals.callName('darwin', arch, number) !== name) missed.push(`${arch} ${number} ${name}`);
    }
  }
  t.same(missed, []);
});

t.test('the calls a hang is usually parked in have their XNU numbers', async (t) => {
  const expected: Array<[number, string]> = [
    // Mach traps (osfmk/kern/syscall_sw.c), negative as x16 holds them
    [-26, 'mach_reply_port'],
    [-31, 'mach_msg_trap'],
    [-32, 'mach_msg_overwrite_trap'],
    [-36, 'semaphore_wait_trap'],
    [-38, 'semaphore_timedwait_trap'],
    [-47, 'mach_msg2_trap'],
    [-59, 'swtch_pri'],
    [-61, 'thread_switch'],
    [-62, 'clock_sleep_trap'],
    [-90, 'mach_wait_until_trap'],
    [-93, 'mk_timer_arm_trap'],
    [-100, 'iokit_user_client_trap'],
    // BSD syscalls (bsd/kern/syscalls.master)
    [0, 'syscall'],
    [3, 'read'],
    [4, 'write'],
    [6, 'close'],
    [54, 'ioctl'],
    [93, 'select'],
    [301, 'psynch_mutexwait'],
    [305, 'psynch_cvwait'],
    [328, '__pthread_kill'],
    [334, '__semwait_signal'],
    [363, 'kevent'],
    [368, 'workq_kernreturn'],
    [369, 'kevent64'],
    [374, 'kevent_qos'],
    [396, 'read_nocancel'],
    [423, '__semwait_signal_nocancel'],
    [438, 'shared_region_map_and_slide_np'], // retired after macOS 11, kept for old systems
    [522, 'necp_session_open'],
  ];
  for (const arch of ['arm64', 'x64'] as const) {
    for (const [number, name] of expected) t.equal(internals.callName('darwin', arch, number), name, `${arch} ${number}`);
  }
});

t.test('numbers without a name read as such, never as a neighbour', async (t) => {
  t.equal(internals.callName('darwin', 'arm64', 8), null, 'old creat slot (enosys)');
  t.equal(internals.callName('darwin', 'arm64', -30), null, 'kern_invalid slot');
  t.equal(internals.callName('darwin', 'arm64', 100000), null);
  t.equal(internals.callNameOrNumber('darwin', 'arm64', 8), 'syscall_8');
  t.equal(internals.callNameOrNumber('darwin', 'x64', -30), 'mach_trap_30');
  t.equal(internals.callNameOrNumber('darwin', 'arm64', -47), 'mach_msg2_trap');
  t.equal(internals.callNameOrNumber('darwin', 'x64', 305), 'psynch_cvwait');
});

t.test('the Darwin descriptor list: calls whose first argument is an fd', async (t) => {
  // The list itself, from blocking.cc, so that a typo there (a name that is no call)
  // fails here instead of silently never matching.
  const source = fs.readFileSync(path.join(nativeDir, 'blocking.cc'), 'utf8');
  const block = /kDarwin\[\] = \{([^}]*)\}/.exec(source);
  t.ok(block, 'blocking.cc has a kDarwin list');
  const names = [...(block?.[1] ?? '').matchAll(/"([a-z0-9_]+)"/g)].map((m) => m[1]);
  const known = new Set(bsd.map((e) => e.name));
  t.same(names.filter((name) => !known.has(name)), [], 'every listed name is a Darwin syscall');
  t.same(names.filter((name) => !internals.firstArgIsFd('darwin', name)), [], 'and firstArgIsFd says so');
  t.equal(new Set(names).size, names.length, 'no name twice');

  for (const name of ['read', 'write', 'ioctl', 'kevent', 'kevent_qos', 'recvmsg', 'read_nocancel', 'fcntl', 'pread']) {
    t.ok(internals.firstArgIsFd('darwin', name), `${name} blocks on its first argument`);
  }
  for (const name of ['psynch_cvwait', 'mach_msg2_trap', 'select', 'workq_kernreturn', '__semwait_signal', 'pread64']) {
    t.notOk(internals.firstArgIsFd('darwin', name), `${name} does not`);
  }
});
