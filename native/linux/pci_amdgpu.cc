#include "pci_amdgpu.h"

#include "pci_sysfs.h"

namespace iokitsnap::pci {

const char kAmdgpuWakingAttributes[] = "gpu_busy_percent, mem_busy_percent, mem_info_vram_used, mem_info_vram_total";

namespace {

std::optional<int64_t> ReadInteger(int deviceFd, const char* name) {
  auto text = ReadAttribute(deviceFd, name);
  return text ? ParseInteger(*text) : std::nullopt;
}

}  // namespace

AmdgpuFacts ReadAmdgpuFacts(int deviceFd, bool awake) {
  AmdgpuFacts facts;
  // product_name prints a string cached at probe time; it does not touch the GPU.
  if (auto name = ReadAttribute(deviceFd, "product_name"); name && !name->empty()) facts.productName = *name;
  if (!awake) return facts;
  facts.gpuBusyPercent = ReadInteger(deviceFd, "gpu_busy_percent");
  facts.memBusyPercent = ReadInteger(deviceFd, "mem_busy_percent");
  facts.vramUsedBytes = ReadInteger(deviceFd, "mem_info_vram_used");
  facts.vramTotalBytes = ReadInteger(deviceFd, "mem_info_vram_total");
  return facts;
}

}  // namespace iokitsnap::pci
