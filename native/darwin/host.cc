// Placeholder until the macOS backend lands (issue 3).
#include <time.h>

#include "../backend.h"

namespace iokitsnap {
HostRecord ReadHost() { return HostRecord{"darwin", "", "", std::nullopt}; }
uint64_t MonotonicNs() { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }
struct AcceleratorContext {};
std::shared_ptr<AcceleratorContext> NewAcceleratorContext() { return std::make_shared<AcceleratorContext>(); }
AcceleratorSampleRecord SampleAccelerators(const AcceleratorOptions&, const std::shared_ptr<AcceleratorContext>&) {
  throw SnapError("ENOTSUP", "the macOS backend is not built yet");
}
ProcessRecord SampleThreads(int32_t, const ThreadOptions&) {
  throw SnapError("ENOTSUP", "the macOS backend is not built yet");
}
std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t, const ThreadOptions&) {
  throw SnapError("ENOTSUP", "the macOS backend is not built yet");
}
}  // namespace iokitsnap
