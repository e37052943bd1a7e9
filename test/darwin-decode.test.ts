// The CF-free, Mach-free pieces of the macOS thread sampler (native/darwin_decode.cc),
// run on any platform through the addon's internals: the syscall-number register,
// pointer-authentication stripping, Mach run states and time_value conversion.
import t from 'tap';
import { binding } from '../src/native';

const internals = binding().internals;
const u64 = (n: bigint) => BigInt.asUintN(64, n);

t.test('arm64 x16: decoded as xnu decodes it', async (t) => {
  const decode = (reg: bigint | number) => internals.darwinCallNumberFromRegister('arm64', reg);
  // libsystem_kernel stubs load negative Mach trap numbers with `mov x16, #-n`.
  t.equal(decode(u64(-31n)), -31, 'mach_msg_trap');
  t.equal(decode(u64(-47n)), -47, 'mach_msg2_trap');
  t.equal(decode(u64(-100n)), -100, 'iokit_user_client_trap');
  t.equal(decode(u64(-127n)), -127, 'the last trap slot');
  // Only the low 32 bits count (get_saved_state_svc_number), so `mov w16, #-47` is the same call.
  t.equal(decode(0xffffffd1n), -47, 'a 32-bit write of -47');
  t.equal(decode(0xdead0000_00000131n), 305, 'garbage above bit 31 is ignored');
  t.equal(decode(305), 305, 'psynch_cvwait');
  t.equal(decode(3), 3, 'read');
  t.equal(decode(0), 0, 'the indirect syscall(2)');
  // A BSD number is taken as an unsigned short (arm_get_syscall_number).
  t.equal(decode(0x10003), 3);
  t.equal(decode(0x80000000n), null, 'the platform call (PLATFORM_SYSCALL_TRAP_NO)');
  t.equal(decode(u64(-128n)), null, 'past the 128-entry trap table');
  t.equal(decode(u64(-0x7fffffffn)), null);
  t.equal(internals.callNameOrNumber('darwin', 'arm64', decode(u64(-47n)) as number), 'mach_msg2_trap');
});

t.test('x86_64 rax: class << 24 | number', async (t) => {
  const decode = (reg: bigint | number) => internals.darwinCallNumberFromRegister('x64', reg);
  t.equal(decode(0x2000131), 305, 'SYSCALL_CLASS_UNIX psynch_cvwait');
  t.equal(decode(0x2000003), 3, 'read');
  t.equal(decode(0x2000000), 0, 'the indirect syscall(2)');
  t.equal(decode(0x100001f), -31, 'SYSCALL_CLASS_MACH mach_msg_trap');
  t.equal(decode(0x100002f), -47, 'mach_msg2_trap');
  t.equal(decode(0x1000064), -100, 'iokit_user_client_trap');
  t.equal(decode(0x100007f), -127);
  t.equal(decode(0x1000080), null, 'past the trap table');
  t.equal(decode(0x1000000), null, 'Mach trap 0 does not exist');
  t.equal(decode(0x3000003), null, 'SYSCALL_CLASS_MDEP is no table call');
  t.equal(decode(0x4000001), null, 'SYSCALL_CLASS_DIAG');
  t.equal(decode(0), null, 'SYSCALL_CLASS_NONE');
  t.equal(decode(5), null, 'a small value with no class is not a call');
  t.equal(decode((1n << 40n) | 0x2000036n), 54, 'the upper half of rax plays no part (ioctl)');
  t.equal(internals.callNameOrNumber('darwin', 'x64', decode(0x1000024) as number), 'semaphore_wait_trap');
});

t.test('pointer-authentication bits are stripped down to the 47-bit user address', async (t) => {
  const strip = (p: bigint | number) => internals.stripPointerAuth(p);
  t.equal(strip(0x0000000104a3c1f4n), 0x0000000104a3c1f4n, 'an unsigned pointer is unchanged');
  t.equal(strip(0x2d1b000104a3c1f4n), 0x0000000104a3c1f4n, 'a signed return address loses its signature');
  t.equal(strip(0x80000001a2b3c4d8n), 0x00000001a2b3c4d8n);
  t.equal(strip(0x00007ffffe000000n), 0x00007ffffe000000n, 'MACH_VM_MAX_ADDRESS (arm64) survives');
  t.equal(strip(0x00007fffffffffffn), 0x00007fffffffffffn, 'the top of x86_64 user space survives');
  t.equal(strip(0xffffffffffffffffn), 0x00007fffffffffffn);
  t.equal(strip(0x0000800000000000n), 0n, 'bit 47 is never part of a user address');
  t.equal(strip(0x16fdff2a0), 0x16fdff2a0n, 'plain numbers are accepted too');
});

t.test('Mach run states map onto the model, flags aside', async (t) => {
  const state = (run: number, flags = 0) => internals.threadStateFromMach(run, flags);
  t.equal(state(1), 'running', 'TH_STATE_RUNNING');
  t.equal(state(2), 'stopped', 'TH_STATE_STOPPED');
  t.equal(state(3), 'waiting', 'TH_STATE_WAITING');
  t.equal(state(4), 'uninterruptible', 'TH_STATE_UNINTERRUPTIBLE');
  t.equal(state(5), 'halted', 'TH_STATE_HALTED');
  t.equal(state(0), 'unknown');
  t.equal(state(6), 'unknown');
  t.equal(state(-1), 'unknown');
  t.equal(state(3, 0x1), 'waiting', 'TH_FLAGS_SWAPPED does not change the state');
  t.equal(state(1, 0x2), 'running', 'nor does TH_FLAGS_IDLE');
});

t.test('time_value_t converts to exact nanoseconds', async (t) => {
  const ns = internals.timeValueToNs;
  t.equal(ns(0, 0), 0);
  t.equal(ns(1, 500000), 1_500_000_000);
  t.equal(ns(12, 999999), 12_999_999_000);
  t.equal(ns(0, 1), 1000, 'one microsecond');
  t.equal(ns(4_000_000, 250), 4_000_000_000_250_000, 'a thread with 46 days of CPU stays exact');
  t.equal(ns(-3, 500), 500_000, 'a negative part clamps to 0');
  t.equal(ns(2, -7), 2_000_000_000);
});
