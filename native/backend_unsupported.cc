// Platforms without a backend: every call fails with ENOTSUP, loading still works.
#if !defined(__APPLE__) && !defined(__linux__)
#include <chrono>

#include "backend.h"

namespace iokitsnap {
namespace {
[[noreturn]] void Unsupported() {
  throw SnapError("ENOTSUP", "iokit-snap has no backend for this platform; it supports macOS and Linux");
}
}  // namespace
struct AcceleratorContext {};
std::shared_ptr<AcceleratorContext> NewAcceleratorContext() { return std::make_shared<AcceleratorContext>(); }
AcceleratorSampleRecord SampleAccelerators(const AcceleratorOptions&, const std::shared_ptr<AcceleratorContext>&) {
  Unsupported();
}
ProcessRecord SampleThreads(int32_t, const ThreadOptions&) { Unsupported(); }
std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t, const ThreadOptions&) { Unsupported(); }
HostRecord ReadHost() { return HostRecord{"unknown", "unknown", "", std::nullopt}; }
uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch()).count());
}
}  // namespace iokitsnap
#endif
