#include "registers.h"

#include <mach/mach_vm.h>

#include "../darwin_decode.h"

namespace iokitsnap {
namespace darwin {

std::optional<ThreadRegisters> ReadThreadRegisters(thread_act_t thread, kern_return_t* error) {
  ThreadRegisters registers;
#if defined(__arm64__) || defined(__aarch64__)
  arm_thread_state64_t state;
  mach_msg_type_number_t count = ARM_THREAD_STATE64_COUNT;
  kern_return_t kr = thread_get_state(thread, ARM_THREAD_STATE64, reinterpret_cast<thread_state_t>(&state), &count);
  if (kr != KERN_SUCCESS) {
    if (error != nullptr) *error = kr;
    return std::nullopt;
  }
  registers.callNumber = state.__x[16];
  registers.argument0 = state.__x[0];
  registers.argument1 = state.__x[1];
  // The accessors read both layouts: plain fields on arm64, and the opaque,
  // possibly signed ones when this is built for arm64e.
  registers.pc = StripPointerAuth(static_cast<uint64_t>(arm_thread_state64_get_pc(state)));
  registers.fp = StripPointerAuth(static_cast<uint64_t>(arm_thread_state64_get_fp(state)));
  registers.sp = StripPointerAuth(static_cast<uint64_t>(arm_thread_state64_get_sp(state)));
  registers.lr = StripPointerAuth(static_cast<uint64_t>(arm_thread_state64_get_lr(state)));
#else
  x86_thread_state64_t state;
  mach_msg_type_number_t count = x86_THREAD_STATE64_COUNT;
  kern_return_t kr = thread_get_state(thread, x86_THREAD_STATE64, reinterpret_cast<thread_state_t>(&state), &count);
  if (kr != KERN_SUCCESS) {
    if (error != nullptr) *error = kr;
    return std::nullopt;
  }
  registers.callNumber = state.__rax;
  registers.argument0 = state.__rdi;
  registers.argument1 = state.__rsi;
  registers.pc = state.__rip;
  registers.fp = state.__rbp;
  registers.sp = state.__rsp;
#endif
  return registers;
}

bool ReadTaskMemory(task_t task, uint64_t address, void* out, size_t size) {
  if (address == 0 || size == 0) return false;
  mach_vm_size_t copied = 0;
  kern_return_t kr = mach_vm_read_overwrite(task, address, size, reinterpret_cast<mach_vm_address_t>(out), &copied);
  return kr == KERN_SUCCESS && copied == size;
}

}  // namespace darwin
}  // namespace iokitsnap
