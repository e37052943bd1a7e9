#include "darwin_decode.h"

namespace iokitsnap {
namespace {

// xnu osfmk/kern/syscall_sw.h MACH_TRAP_TABLE_COUNT: Mach traps are 1…127.
constexpr int64_t kMachTrapCount = 128;

}  // namespace

std::optional<int64_t> DarwinCallNumberFromRegister(ArchKind arch, uint64_t reg) {
  if (arch == ArchKind::Arm64) {
    // svc #0x80 with x16 = the number. Only its low 32 bits count
    // (osfmk/mach/arm/thread_status.h get_saved_state_svc_number): negative is a Mach
    // trap (osfmk/arm64/sleh.c handle_svc), 0x80000000 the platform call, and a
    // BSD number is taken as an unsigned short (bsd/dev/arm/systemcalls.c
    // arm_get_syscall_number).
    const int32_t svc = static_cast<int32_t>(static_cast<uint32_t>(reg));
    if (svc == INT32_MIN) return std::nullopt;  // PLATFORM_SYSCALL_TRAP_NO
    if (svc < 0) return svc > -kMachTrapCount ? std::optional<int64_t>(svc) : std::nullopt;
    return static_cast<int64_t>(static_cast<uint16_t>(svc));
  }
  // x86_64 syscall with rax = class << 24 | number (osfmk/mach/i386/syscall_sw.h:
  // SYSCALL_CLASS_SHIFT 24, SYSCALL_CLASS_MASK 0xff << 24, SYSCALL_NUMBER_MASK
  // 0xffffff); the upper 32 bits of rax play no part.
  const uint64_t klass = (reg >> 24) & 0xff;
  const int64_t number = static_cast<int64_t>(reg & 0xffffff);
  if (klass == 1) {  // SYSCALL_CLASS_MACH
    return number > 0 && number < kMachTrapCount ? std::optional<int64_t>(-number) : std::nullopt;
  }
  if (klass == 2) return number;  // SYSCALL_CLASS_UNIX
  return std::nullopt;            // MDEP (3), DIAG (4), IPC (5) or not a call at all
}

uint64_t StripPointerAuth(uint64_t pointer) {
  // macOS user space ends below 2^47: the SDK's mach/arm/vm_param.h sets
  // MACH_VM_MAX_ADDRESS_RAW to 0x00007FFFFE000000 for arm64 (T0SZ 17), and x86_64
  // user space ends at 0x00007FFFFFFFFFFF. arm64e keeps the PAC signature (and the
  // top byte) above bit 46, so these 47 bits are the address on both.
  return pointer & ((uint64_t{1} << 47) - 1);
}

ThreadState ThreadStateFromMach(int32_t runState, int32_t flags) {
  // TH_FLAGS_SWAPPED (kernel stack swapped out) and TH_FLAGS_IDLE (the processor's
  // idle thread) describe the thread, not what it is doing: the run state decides.
  (void)flags;
  switch (runState) {
    case 1: return ThreadState::Running;          // TH_STATE_RUNNING (on a CPU or a run queue)
    case 2: return ThreadState::Stopped;          // TH_STATE_STOPPED (held by thread_stop right now; a
                                                  // suspended task's threads read WAITING: see threads.cc)
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

size_t SyscallInstructionLength(ArchKind arch) { return arch == ArchKind::Arm64 ? 4 : 2; }

bool IsSyscallInstruction(ArchKind arch, const uint8_t* bytes, size_t size) {
  if (bytes == nullptr || size != SyscallInstructionLength(arch)) return false;
  if (arch == ArchKind::Arm64) {
    // svc #0x80 = 0xd4001001, stored little-endian.
    return bytes[0] == 0x01 && bytes[1] == 0x10 && bytes[2] == 0x00 && bytes[3] == 0xd4;
  }
  return bytes[0] == 0x0f && bytes[1] == 0x05;  // syscall
}

std::optional<int64_t> DarwinX86StubCallNumber(const uint8_t* bytes, size_t size) {
  if (bytes == nullptr || size != kX86StubBytes || bytes[8] != 0x0f || bytes[9] != 0x05) return std::nullopt;
  const auto immediate = [bytes](size_t at) {
    return static_cast<uint64_t>(bytes[at]) | static_cast<uint64_t>(bytes[at + 1]) << 8 |
           static_cast<uint64_t>(bytes[at + 2]) << 16 | static_cast<uint64_t>(bytes[at + 3]) << 24;
  };
  const auto movR10Rcx = [bytes](size_t at) { return bytes[at] == 0x49 && bytes[at + 1] == 0x89 && bytes[at + 2] == 0xca; };
  if (bytes[0] == 0xb8 && movR10Rcx(5)) return DarwinCallNumberFromRegister(ArchKind::X86_64, immediate(1));  // BSD
  if (movR10Rcx(0) && bytes[3] == 0xb8) return DarwinCallNumberFromRegister(ArchKind::X86_64, immediate(4));  // Mach
  return std::nullopt;
}

}  // namespace iokitsnap
