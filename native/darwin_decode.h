// Portable pieces of the macOS thread sampler, kept free of Mach headers so they
// are unit-tested on Linux: register → trap number, pointer-auth stripping,
// Mach run state → ThreadState, time_value → ns.
#pragma once

#include <cstdint>
#include <optional>

#include "blocking.h"
#include "model.h"

namespace iokitsnap {

// The syscall-number register (arm64 x16, x86_64 rax) → signed call number:
// BSD syscalls positive, Mach traps negative. nullopt when it holds no call
// (x86_64 classes other than Mach/Unix, or a value out of range).
std::optional<int64_t> DarwinCallNumberFromRegister(ArchKind arch, uint64_t reg);

// Strip arm64e pointer-authentication bits from a return address or frame pointer.
uint64_t StripPointerAuth(uint64_t pointer);

// THREAD_BASIC_INFO run_state (TH_STATE_*) + flags (TH_FLAGS_*) → ThreadState.
ThreadState ThreadStateFromMach(int32_t runState, int32_t flags);

// time_value_t { seconds, microseconds } → nanoseconds (negative parts clamp to 0).
uint64_t TimeValueToNs(int64_t seconds, int64_t microseconds);

}  // namespace iokitsnap
