// Placeholder until the procfs thread sampler lands (issue 2).
#include "../backend.h"

namespace iokitsnap {
ProcessRecord SampleThreads(int32_t, const ThreadOptions&) {
  throw SnapError("ENOTSUP", "thread sampling on Linux is not built yet");
}
std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t, const ThreadOptions&) {
  throw SnapError("ENOTSUP", "thread sampling on Linux is not built yet");
}
}  // namespace iokitsnap
