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

// Whether the call's first argument is a file descriptor worth resolving
// (read, write, ioctl, epoll_wait, recvmsg, …).
bool FirstArgIsFd(OsKind os, std::string_view call);

// The build's own platform, for backends.
OsKind HostOs();
ArchKind HostArch();

}  // namespace iokitsnap
