// Portable pieces of the macOS thread sampler, kept free of Mach headers so they
// are unit-tested on Linux: register → trap number, pointer-auth stripping,
// Mach run state → ThreadState, time_value → ns, the syscall instruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "blocking.h"
#include "model.h"

namespace iokitsnap {

// The syscall-number register (arm64 x16, x86_64 rax) → signed call number, decoded
// the way xnu decodes it: BSD syscalls positive, Mach traps negative, 0 the indirect
// syscall(2) (its number is in the first argument register). nullopt when the
// register names no call xnu would dispatch: the arm64 platform call (0x80000000),
// a Mach trap past the table, x86_64 classes other than Mach and Unix.
std::optional<int64_t> DarwinCallNumberFromRegister(ArchKind arch, uint64_t reg);

// Strip arm64e pointer-authentication bits from a return address or frame pointer.
uint64_t StripPointerAuth(uint64_t pointer);

// THREAD_BASIC_INFO run_state (TH_STATE_*) + flags (TH_FLAGS_*) → ThreadState.
// proc_threadinfo pth_run_state / pth_flags carry the same values.
ThreadState ThreadStateFromMach(int32_t runState, int32_t flags);

// time_value_t { seconds, microseconds } → nanoseconds (negative parts clamp to 0).
uint64_t TimeValueToNs(int64_t seconds, int64_t microseconds);

// How many bytes before a thread's saved pc its system-call instruction sits
// (arm64 `svc #0x80`: 4; x86_64 `syscall`: 2).
size_t SyscallInstructionLength(ArchKind arch);

// Whether `bytes` (SyscallInstructionLength(arch) of them, read just below the saved
// pc) are that instruction. A waiting thread whose pc does not follow one is not in a
// system call (a page fault, a kernel-initiated wait), so its number register is noise.
bool IsSyscallInstruction(ArchKind arch, const uint8_t* bytes, size_t size);

// x86_64: the call a libsystem_kernel stub makes, from its code rather than from rax,
// which the kernel overwrites with the result when the call returns (bsd/dev/i386/
// systemcalls.c unix_syscall64, mach_call_munger64). `bytes` are the kX86StubBytes bytes
// that end at the saved pc. xnu's stubs are `movl $n, %eax; movq %rcx, %r10; syscall`
// for BSD calls (libsyscall/custom/SYS.h UNIX_SYSCALL) and `movq %rcx, %r10; movl $n,
// %eax; syscall` for Mach traps (osfmk/mach/i386/syscall_sw.h kernel_trap); anything else
// (the indirect __syscall, inline assembly) gives nullopt. The immediate is decoded as
// DarwinCallNumberFromRegister decodes rax.
constexpr size_t kX86StubBytes = 10;
std::optional<int64_t> DarwinX86StubCallNumber(const uint8_t* bytes, size_t size);

}  // namespace iokitsnap
