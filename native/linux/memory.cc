// process_vm_readv over many ranges (see memory.h). One call of the system call
// takes up to IOV_MAX remote ranges and stops at the first one it cannot read whole;
// the loop below marks that one unread and goes on from the next, so one unmapped
// range costs one more call, never the others' bytes.
#include "memory.h"

#include <errno.h>
#include <limits.h>
#include <sys/uio.h>

#include <algorithm>

#include "../backend.h"
#include "procfs_thread.h"

namespace iokitsnap {
namespace memory {
namespace {

constexpr size_t kRangesPerCall = IOV_MAX;

// The same advice the user stacks give for the same refusal (the ptrace access check).
std::string DeniedMessage(int32_t pid, const std::string& procRoot) {
  const std::string scope = procfs::YamaScope(procRoot);
  std::string hint;
  if (scope == "1")
    hint = "kernel.yama.ptrace_scope is 1: only an ancestor of the process may trace it. Run iokit-snap as root "
           "(sudo), or set it to 0 (sysctl kernel.yama.ptrace_scope=0).";
  else if (scope == "2")
    hint = "kernel.yama.ptrace_scope is 2: only root may trace. Run iokit-snap as root (sudo).";
  else if (scope == "3")
    hint = "kernel.yama.ptrace_scope is 3: ptrace is disabled until the next boot.";
  else
    hint = "Run iokit-snap as the user that owns the process, or as root / with CAP_SYS_PTRACE (sudo).";
  return "reading the memory of pid " + std::to_string(pid) + " was refused (process_vm_readv: " +
         procfs::ErrorText(EPERM) + "). " + hint;
}

}  // namespace

ReadRecord ReadMemory(int32_t pid, const std::vector<Range>& ranges, const std::string& procRoot) {
  if (ranges.size() > kMaxRanges)
    throw SnapError("EINVAL", "readMemory: at most " + std::to_string(kMaxRanges) + " ranges per call, got " +
                                  std::to_string(ranges.size()) + "; split the read into several calls");
  uint64_t total = 0;
  for (const Range& range : ranges) {
    if (range.address + range.length < range.address)
      throw SnapError("EINVAL", "readMemory: a range wraps around the end of the address space");
    total += range.length;
    if (total > kMaxReadBytes)
      throw SnapError("EINVAL", "readMemory: at most " + std::to_string(kMaxReadBytes) +
                                    " bytes per call; split the read into several calls");
  }
  ReadRecord record;
  record.bytes.assign(total, 0);
  record.read.assign(ranges.size(), false);

  std::vector<struct iovec> remote;
  remote.reserve(std::min(ranges.size(), kRangesPerCall));
  size_t next = 0;        // the first range not yet asked for
  uint64_t offset = 0;    // where its bytes go in record.bytes
  while (next < ranges.size()) {
    // One batch: up to kRangesPerCall ranges from `next`, their bytes end to end.
    remote.clear();
    uint64_t batchBytes = 0;
    for (size_t i = next; i < ranges.size() && remote.size() < kRangesPerCall; ++i) {
      remote.push_back({reinterpret_cast<void*>(static_cast<uintptr_t>(ranges[i].address)),
                        static_cast<size_t>(ranges[i].length)});
      batchBytes += ranges[i].length;
    }
    struct iovec local = {record.bytes.data() + offset, static_cast<size_t>(batchBytes)};
    ssize_t got;
    do {
      got = process_vm_readv(pid, &local, 1, remote.data(), remote.size(), 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      const int error = errno;
      if (error == ESRCH) throw SnapError("ESRCH", "pid " + std::to_string(pid) + " does not exist (it exited)", "process_vm_readv", error);
      if (error == EPERM || error == EACCES) throw SnapError("EPERM", DeniedMessage(pid, procRoot), "process_vm_readv", error);
      if (error != EFAULT)
        throw SnapError("EIO", "reading the memory of pid " + std::to_string(pid) + " failed (process_vm_readv: " +
                                   procfs::ErrorText(error) + ")", "process_vm_readv", error);
      got = 0;  // EFAULT with nothing read: the first range of the batch is the one that failed
    }
    // Ranges that ended within `got` are whole; the first one that did not is where the
    // kernel stopped (unread, or read in part): unread, and the next batch starts after it.
    uint64_t end = 0;
    size_t i = next;
    for (; i < next + remote.size(); ++i) {
      end += ranges[i].length;
      if (end > static_cast<uint64_t>(got)) break;
      record.read[i] = true;
    }
    if (i == next + remote.size()) {
      offset += batchBytes;
      next = i;
      continue;
    }
    // Range i failed: zero whatever part of it the kernel did copy, and go on after it.
    const uint64_t failedStart = end - ranges[i].length;
    std::fill(record.bytes.begin() + static_cast<ptrdiff_t>(offset + failedStart),
              record.bytes.begin() + static_cast<ptrdiff_t>(offset + end), 0);
    offset += end;
    next = i + 1;
  }
  return record;
}

}  // namespace memory
}  // namespace iokitsnap
