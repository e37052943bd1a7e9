#include "blocking.h"

#include <algorithm>
#include <iterator>

namespace iokitsnap {
namespace {

struct CallEntry {
  int64_t number;
  const char* name;
};

// Tables are sorted by number (checked by test/blocking.test.ts through every number).
constexpr CallEntry kLinuxX86_64[] = {
#include "syscalls_linux_x86_64.inc"
};
constexpr CallEntry kLinuxArm64[] = {
#include "syscalls_linux_arm64.inc"
};
constexpr CallEntry kLinuxI386[] = {
#include "syscalls_linux_i386.inc"
};
constexpr CallEntry kLinuxArm32[] = {
#include "syscalls_linux_arm32.inc"
};
// x32: the x86_64 table, except the calls it numbers 512–547 (syscall_64.tbl's "x32" rows).
constexpr CallEntry kLinuxX32Only[] = {
#include "syscalls_linux_x32.inc"
};
constexpr int64_t kX32SyscallBit = 0x40000000;
// Darwin BSD syscall numbers are the same on arm64 and x86_64 (bsd/kern/syscalls.master).
constexpr CallEntry kDarwinBsd[] = {
#include "syscalls_darwin_bsd.inc"
};
// Mach traps, negative as in x16 (osfmk/kern/syscall_sw.c), the same on both archs.
constexpr CallEntry kDarwinMach[] = {
#include "mach_traps_darwin.inc"
};

template <size_t N>
const char* Find(const CallEntry (&table)[N], int64_t number) {
  auto it = std::lower_bound(std::begin(table), std::end(table), number,
                             [](const CallEntry& entry, int64_t n) { return entry.number < n; });
  return (it != std::end(table) && it->number == number) ? it->name : nullptr;
}

}  // namespace

const char* LinuxCallName(LinuxAbi abi, int64_t number) {
  switch (abi) {
    case LinuxAbi::X86_64: return Find(kLinuxX86_64, number);
    case LinuxAbi::Arm64: return Find(kLinuxArm64, number);
    case LinuxAbi::I386: return Find(kLinuxI386, number);
    case LinuxAbi::Arm32: return Find(kLinuxArm32, number);
    case LinuxAbi::X32: {
      if ((number & kX32SyscallBit) == 0) return nullptr;  // not an x32 call
      const int64_t bare = number & ~kX32SyscallBit;
      if (const char* own = Find(kLinuxX32Only, bare)) return own;
      return bare >= 512 ? nullptr : Find(kLinuxX86_64, bare);
    }
  }
  return nullptr;
}

std::string LinuxCallNameOrNumber(LinuxAbi abi, int64_t number) {
  if (const char* name = LinuxCallName(abi, number)) return name;
  return "syscall_" + std::to_string(number);
}

const char* LinuxAbiName(LinuxAbi abi) {
  switch (abi) {
    case LinuxAbi::X86_64: return "x86_64";
    case LinuxAbi::I386: return "i386";
    case LinuxAbi::X32: return "x32";
    case LinuxAbi::Arm64: return "arm64";
    case LinuxAbi::Arm32: return "arm32";
  }
  return "x86_64";
}

LinuxAbi HostLinuxAbi() { return HostArch() == ArchKind::Arm64 ? LinuxAbi::Arm64 : LinuxAbi::X86_64; }

const char* CallName(OsKind os, ArchKind arch, int64_t number) {
  if (os == OsKind::Linux) return LinuxCallName(arch == ArchKind::X86_64 ? LinuxAbi::X86_64 : LinuxAbi::Arm64, number);
  return number < 0 ? Find(kDarwinMach, number) : Find(kDarwinBsd, number);
}

std::string CallNameOrNumber(OsKind os, ArchKind arch, int64_t number) {
  if (const char* name = CallName(os, arch, number)) return name;
  if (os == OsKind::Darwin && number < 0) return "mach_trap_" + std::to_string(-number);
  return "syscall_" + std::to_string(number);
}

bool FirstArgIsFd(OsKind os, std::string_view call) {
  // Linux: calls whose first argument is an fd (a dirfd for the *at calls that
  // take AT_EMPTY_PATH, as glibc's fstat does). Blocking ones first.
  static constexpr std::string_view kLinux[] = {
      "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
      "ioctl", "fsync", "fdatasync", "syncfs", "sync_file_range", "flock", "fcntl", "recvfrom", "recvmsg",
      "recvmmsg", "sendto", "sendmsg", "sendmmsg", "accept", "accept4", "connect", "shutdown", "epoll_wait",
      "epoll_pwait", "epoll_pwait2", "epoll_ctl", "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
      "getdents", "getdents64", "lseek", "ftruncate", "fallocate", "fadvise64", "readahead", "io_uring_enter",
      "io_uring_register", "fstat", "newfstatat", "statx", "fstatfs", "fchmod", "fchown", "fchdir", "fgetxattr",
      "fsetxattr", "flistxattr", "fremovexattr", "bind", "listen", "getsockopt", "setsockopt", "getsockname",
      "getpeername", "inotify_add_watch", "fanotify_mark",
      // 32-bit ABIs (i386, arm32): the same calls under their 32-bit names.
      "fcntl64", "_llseek", "llseek", "fstat64", "fstatat64", "ftruncate64", "fstatfs64", "sendfile64", "recv", "send",
      "arm_fadvise64_64", "fadvise64_64", "sync_file_range2", "arm_sync_file_range"};
  // Names as in syscalls_darwin_bsd.inc: the calls that can block on the descriptor in
  // their first argument (a kqueue for kevent*), nocancel twins included.
  static constexpr std::string_view kDarwin[] = {
      "read", "write", "pread", "pwrite", "readv", "writev", "preadv", "pwritev", "ioctl", "fsync",
      "fdatasync", "fcntl", "flock", "recvfrom", "recvmsg", "recvmsg_x", "sendto", "sendmsg", "sendmsg_x",
      "accept", "connect", "connectx", "sendfile", "kevent", "kevent64", "kevent_qos", "lseek", "ftruncate",
      "fstat", "fstat64", "getdirentries64", "guarded_write_np", "guarded_pwrite_np", "guarded_writev_np",
      "read_nocancel", "write_nocancel", "pread_nocancel", "pwrite_nocancel", "readv_nocancel",
      "writev_nocancel", "preadv_nocancel", "pwritev_nocancel", "fsync_nocancel", "fcntl_nocancel",
      "recvfrom_nocancel", "recvmsg_nocancel", "sendto_nocancel", "sendmsg_nocancel", "accept_nocancel",
      "connect_nocancel"};
  const auto matches = [call](std::string_view name) { return name == call; };
  return os == OsKind::Linux ? std::any_of(std::begin(kLinux), std::end(kLinux), matches)
                             : std::any_of(std::begin(kDarwin), std::end(kDarwin), matches);
}

OsKind HostOs() {
#if defined(__APPLE__)
  return OsKind::Darwin;
#else
  return OsKind::Linux;
#endif
}

ArchKind HostArch() {
#if defined(__aarch64__) || defined(__arm64__)
  return ArchKind::Arm64;
#else
  return ArchKind::X86_64;
#endif
}

}  // namespace iokitsnap
