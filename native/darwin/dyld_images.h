// libdyld's view of another task's loaded images, for when the legacy
// dyld_all_image_infos array is empty. Kept apart from stacks.cc because libdyld's
// SPI takes a block, which only Apple's clang compiles: stacks.cc stays plain C++
// and builds under the Linux test harness (test/darwin-logic/) too.
#pragma once

#include <mach/mach.h>

#include <cstdint>
#include <functional>

namespace iokitsnap {
namespace darwin {

// Calls `visit(machHeaderAddress, path)` for every image libdyld reports in `task`
// (path may be null). False, with `*error` set, when libdyld cannot read the list.
bool ForEachDyldImage(task_t task, const std::function<void(uint64_t, const char*)>& visit, kern_return_t* error);

}  // namespace darwin
}  // namespace iokitsnap
