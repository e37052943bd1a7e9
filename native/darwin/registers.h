// The few registers of a thread that the sampler reads: the syscall number and
// first argument (what a waiting thread is blocked in), and pc/fp/lr/sp (where its
// stack starts). Pointer-auth bits are already stripped.
#pragma once

#include <mach/mach.h>

#include <cstddef>
#include <cstdint>
#include <optional>

namespace iokitsnap {
namespace darwin {

struct ThreadRegisters {
  uint64_t callNumber = 0;   // arm64 x16, x86_64 rax
  uint64_t argument0 = 0;    // arm64 x0, x86_64 rdi
  uint64_t argument1 = 0;    // arm64 x1, x86_64 rsi (the fd of an indirect syscall)
  uint64_t pc = 0;
  uint64_t fp = 0;           // arm64 x29, x86_64 rbp
  uint64_t sp = 0;
  std::optional<uint64_t> lr;  // arm64 only: x30
};

// thread_get_state with this build's native flavor (ARM_THREAD_STATE64 or
// x86_THREAD_STATE64); nullopt with `*error` set when the kernel refuses.
std::optional<ThreadRegisters> ReadThreadRegisters(thread_act_t thread, kern_return_t* error);

// Copies `size` bytes at `address` in `task` into `out`; false when any of them is
// unmapped or unreadable. Allocates nothing in this process, so it is safe while
// a thread of this process is suspended.
bool ReadTaskMemory(task_t task, uint64_t address, void* out, size_t size);

}  // namespace darwin
}  // namespace iokitsnap
