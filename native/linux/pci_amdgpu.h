// amdgpu's own sysfs attributes in the PCI device directory (the kernel's
// Documentation/gpu/amdgpu/driver-misc.rst and thermal.rst: gpu_busy_percent,
// mem_busy_percent, mem_info_vram_*, product_name).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace iokitsnap::pci {

struct AmdgpuFacts {
  std::optional<std::string> productName;  // from the board FRU EEPROM; empty on many consumer cards
  std::optional<int64_t> gpuBusyPercent, memBusyPercent, vramUsedBytes, vramTotalBytes;
};

// `awake`: the busy and memory attributes are read only then, because reading
// them takes a runtime-PM reference and would resume a suspended GPU (the
// observer would change what it observes, and spin up a laptop dGPU).
AmdgpuFacts ReadAmdgpuFacts(int deviceFd, bool awake);

// The attributes ReadAmdgpuFacts skips while the GPU sleeps, for the limit's text.
extern const char kAmdgpuWakingAttributes[];

}  // namespace iokitsnap::pci
