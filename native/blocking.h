// Portable: (os, arch, syscall or trap number) → call name. No OS headers, so the
// Darwin tables are tested on Linux and the Linux tables on macOS.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace iokitsnap {

enum class OsKind { Linux, Darwin };
enum class ArchKind { X86_64, Arm64 };

// The name of `number` on that platform, or nullptr when the table does not know it.
// Darwin numbering follows XNU: BSD syscalls positive (psynch_cvwait = 305),
// Mach traps negative (mach_msg2_trap = -47), as the arm64 x16 register holds them.
const char* CallName(OsKind os, ArchKind arch, int64_t number);

// The name, or "syscall_<n>" (Linux, Darwin BSD) / "mach_trap_<n>" (Darwin, n > 0) when unknown.
std::string CallNameOrNumber(OsKind os, ArchKind arch, int64_t number);

// The system-call table a Linux process uses. A 64-bit kernel also runs 32-bit
// processes, which number their calls differently (i386 `read` is 3, x86_64 `close`).
enum class LinuxAbi : uint8_t { X86_64, I386, X32, Arm64, Arm32 };

// The name of `number` in that ABI's table, or nullptr. x32 numbers carry
// __X32_SYSCALL_BIT (0x40000000), as /proc/<pid>/task/<tid>/syscall prints them.
const char* LinuxCallName(LinuxAbi abi, int64_t number);
// The name, or "syscall_<n>".
std::string LinuxCallNameOrNumber(LinuxAbi abi, int64_t number);
// "x86_64", "i386", "x32", "arm64", "arm32": the names the model uses.
const char* LinuxAbiName(LinuxAbi abi);
// The ABI of this build's own processes.
LinuxAbi HostLinuxAbi();

// Whether the call's first argument is a file descriptor worth resolving
// (read, write, ioctl, epoll_wait, recvmsg, …).
bool FirstArgIsFd(OsKind os, std::string_view call);

// The build's own platform, for backends.
OsKind HostOs();
ArchKind HostArch();

}  // namespace iokitsnap
