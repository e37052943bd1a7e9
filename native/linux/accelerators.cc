// Placeholder until the sysfs/NVML accelerator reader lands (issue 2).
#include "../backend.h"

namespace iokitsnap {
AcceleratorSampleRecord SampleAccelerators(const AcceleratorOptions&) { return {}; }
}  // namespace iokitsnap
