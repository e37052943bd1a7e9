// Reading another process's memory (readMemory(pid, ranges) in src/runtimes/memory.ts):
// process_vm_readv, never ptrace. The target is not stopped; what is read is a copy of
// its memory as it was during the call, each range read whole or not at all.
//
// process_vm_readv takes the target's mmap lock (to pin its pages), which a hung process
// (a thread stuck in a page fault on a dead NFS mount, mmap in D state) may hold for
// ever. So the read runs on a probe thread of its own (native/node/probe.h) and the caller
// waits for it with a deadline (src/native.ts withDeadline): a read that never returns
// costs that one thread, never the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace iokitsnap {
namespace memory {

// Bounds of one call, checked by the glue before any read: a caller that wants more
// makes more calls, each with its own deadline.
constexpr uint64_t kMaxReadBytes = 4u << 20;  // all ranges of one call together
constexpr size_t kMaxRanges = 16384;

struct Range {
  uint64_t address = 0;
  uint64_t length = 0;
};

struct ReadRecord {
  // Every range's bytes, end to end, in the order asked (a range not read keeps its
  // place, zero-filled, so offsets are the running sum of the lengths).
  std::vector<uint8_t> bytes;
  // Per range: true when it was read whole. A range that crosses or lies in an
  // unmapped or unreadable part of the target (EFAULT) is false; so is one the kernel
  // read only in part.
  std::vector<bool> read;
};

// Reads `ranges` of process `pid`. Throws SnapError: ESRCH (no such process), EPERM
// (the ptrace access check refused; the message says what to change), EINVAL (more
// than the bounds above, or a range that wraps around), EIO (anything else).
ReadRecord ReadMemory(int32_t pid, const std::vector<Range>& ranges, const std::string& procRoot = "/proc");

}  // namespace memory
}  // namespace iokitsnap
