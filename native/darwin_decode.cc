#include "darwin_decode.h"

namespace iokitsnap {

std::optional<int64_t> DarwinCallNumberFromRegister(ArchKind arch, uint64_t reg) {
  if (arch == ArchKind::Arm64) {
    // svc #0x80 with x16 = the number: BSD positive, Mach traps negative.
    const int64_t number = static_cast<int64_t>(reg);
    if (number > -256 && number < 1024) return number;
    return std::nullopt;  // machine-dependent calls (0x80000000…) and garbage
  }
  // x86_64 syscall with rax = class << 24 | number (osfmk/mach/i386/syscall_sw.h).
  const uint64_t klass = (reg >> 24) & 0xff;
  const int64_t number = static_cast<int64_t>(reg & 0xffffff);
  if ((reg >> 32) != 0) return std::nullopt;
  if (klass == 1) return -number;  // SYSCALL_CLASS_MACH
  if (klass == 2) return number;   // SYSCALL_CLASS_UNIX
  return std::nullopt;
}

uint64_t StripPointerAuth(uint64_t pointer) {
  // macOS arm64 user space has 47-bit virtual addresses; PAC signatures live above.
  return pointer & ((uint64_t{1} << 47) - 1);
}

ThreadState ThreadStateFromMach(int32_t runState, int32_t flags) {
  (void)flags;  // TH_FLAGS_IDLE / TH_FLAGS_SWAPPED do not change the run state
  switch (runState) {
    case 1: return ThreadState::Running;          // TH_STATE_RUNNING
    case 2: return ThreadState::Stopped;          // TH_STATE_STOPPED
    case 3: return ThreadState::Waiting;          // TH_STATE_WAITING
    case 4: return ThreadState::Uninterruptible;  // TH_STATE_UNINTERRUPTIBLE
    case 5: return ThreadState::Halted;           // TH_STATE_HALTED
    default: return ThreadState::Unknown;
  }
}

uint64_t TimeValueToNs(int64_t seconds, int64_t microseconds) {
  if (seconds < 0) seconds = 0;
  if (microseconds < 0) microseconds = 0;
  return static_cast<uint64_t>(seconds) * 1000000000ULL + static_cast<uint64_t>(microseconds) * 1000ULL;
}

}  // namespace iokitsnap
