// User stacks of a task's threads: the loaded-image list (TASK_DYLD_INFO), and a
// frame-pointer walk of one suspended thread.
#pragma once

#include <mach/mach.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../model.h"

namespace iokitsnap {
namespace darwin {

// The images dyld has loaded into a task (dyld itself included), read once per
// sample, then asked which one holds a pc. An image's extent is its __TEXT segment,
// read from its Mach-O header in the task the first time a pc lands near it, so a
// pc in JIT code or an anonymous mapping resolves to no module rather than to the
// nearest image below it.
class ImageMap {
 public:
  // Empty (every lookup fails) when the list cannot be read; `problem` then says why.
  static ImageMap Read(task_t task, std::string* problem);

  // Fills frame.module and frame.offset for frame.pc, or leaves module "" and
  // offset 0 when no image holds it.
  void Resolve(FrameRecord& frame);

  size_t size() const { return images_.size(); }

 private:
  struct Image {
    uint64_t loadAddress = 0;  // its mach_header
    std::string path;
    bool extentKnown = false;
    uint64_t textSize = 0;     // 0: unreadable header, so nothing resolves to it
  };
  void LoadExtent(Image& image);

  task_t task_ = MACH_PORT_NULL;
  std::vector<Image> images_;  // by load address
};

struct StackWalk {
  std::vector<uint64_t> pcs;  // innermost first; pointer-auth bits stripped
  bool ok = false;            // false: thread_suspend or thread_get_state failed (`error`)
  kern_return_t error = KERN_SUCCESS;
  bool outOfTime = false;     // stopped by the deadline, not by the chain's end
};

// Reads `thread`'s registers (of `task`), walks the frame-pointer chain with
// mach_vm_read_overwrite for at most `maxDepth` frames until `deadlineNs`
// (MonotonicNs), and returns. With `suspendThread` (our own process, where the task
// cannot be stopped as a whole) the thread is held by thread_suspend for the walk
// and resumed on every path; otherwise the caller already holds the whole task
// (ScopedTaskSuspension). A thread stopped right after a system-call instruction
// sits in a libsystem_kernel trap stub, a leaf without a frame of its own: its
// caller is taken from lr (arm64) or [sp] (x86_64), or it would be missing.
// Allocates nothing while a thread is suspended (it may hold the malloc lock when
// it is a thread of this process).
StackWalk WalkStack(task_t task, thread_act_t thread, uint32_t maxDepth, uint64_t deadlineNs, bool suspendThread);

}  // namespace darwin
}  // namespace iokitsnap
