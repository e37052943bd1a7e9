// Linux user stacks (sampleThreads(pid, { stacks: true })): each thread is held with
// PTRACE_SEIZE + PTRACE_INTERRUPT just long enough to copy its registers and the top
// of its stack, let go, and walked from the copy (stack_walk.h). See user_stacks.cc
// for what the target sees and the cases taken without stopping the thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "../backend.h"
#include "stack_walk.h"

namespace iokitsnap {
namespace stacks {

// What a sampler keeps between samples: the ELF files already read.
struct StackState {
  std::unique_ptr<ModuleCache> modules;
  std::string modulesDir;  // the /proc directory `modules` opens files through
};

// Fills `stack` for the threads of `record` (a sample of `pid` just taken, read from
// options.procRoot) and appends what could not be walked to `record.limits`, one
// entry per cause. Every thread it stops is let go before it returns, or when the
// thread that stopped it ends (the kernel detaches a tracer's tracees when it exits).
void AddUserStacks(int32_t pid, const ThreadOptions& options, StackState& state, ProcessRecord& record);

}  // namespace stacks
}  // namespace iokitsnap
