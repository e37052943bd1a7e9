// Linux accelerators: the PCI display / 3D / processing-accelerator devices in
// sysfs, their DRM and accel nodes, and what the driver adds (amdgpu sysfs
// attributes, NVML for the nvidia driver). PCI is the source of truth: NVIDIA
// compute boxes often have no DRM node at all.
//
// AcceleratorRecord: id = PCI address, name = first DRM card ("card0") or the PCI
// address, className = bound driver ("" when none), classChain = ["pci", class],
// location = the device's sysfs path.
//
// properties: flat, stable keys (src/map/linux.ts reads them). A key is present
// only when its source answered; nothing is filled in.
//   pci.address            string   "0000:01:00.0"
//   pci.class              string   "0x030200" (the `class` attribute)
//   pci.vendorId           string   "0x10de"
//   pci.deviceId           string   "0x2330"
//   pci.subsystemVendorId  string
//   pci.subsystemDeviceId  string
//   pci.revision           string   "0xa1"
//   pci.driver             string   basename of the `driver` link; "" when unbound
//   pci.powerState         string   `power_state`: D0, D1, D2, D3hot, D3cold, unknown, error
//   pci.d3coldAllowed      boolean  `d3cold_allowed`
//   pci.numaNode           number   `numa_node`; -1 when the device has no NUMA affinity
//   pci.link.currentSpeed  string   "16.0 GT/s PCIe"   } read only while the device is awake
//   pci.link.currentWidth  number   16                 } (runtime active, D0): the link is
//   pci.link.maxSpeed      string                      } down in D3, and config space is
//   pci.link.maxWidth      number                      } not worth poking then
//   runtimePm.status       string   `power/runtime_status`: active, suspended, suspending,
//                                   resuming, error, unsupported
//   runtimePm.control      string   `power/control`: auto (runtime PM allowed) or on
//   runtimePm.activeTimeMs     number  `power/runtime_active_time`
//   runtimePm.suspendedTimeMs  number  `power/runtime_suspended_time`
//   drm.cards              string[] ["card0"]          (<device>/drm/card*)
//   drm.renderNodes        string[] ["renderD128"]     (<device>/drm/renderD*)
//   accel.nodes            string[] ["accel0"]         (<device>/accel/accel*)
//   deviceNodes            string[] /dev paths that reach the device: /dev/dri/card0,
//                                   /dev/dri/renderD128, /dev/accel/accel0; for a device bound
//                                   to the nvidia driver, /dev/nvidia<minor> (from NVML) and the
//                                   driver's shared control nodes /dev/nvidiactl and
//                                   /dev/nvidia-uvm (every NVIDIA GPU lists them: a thread
//                                   blocked on one is blocked in the NVIDIA driver)
//   amdgpu.productName     string   `product_name`, when non-empty
//   amdgpu.gpuBusyPercent  number   `gpu_busy_percent`     } only while awake: reading
//   amdgpu.memBusyPercent  number   `mem_busy_percent`     } them resumes a suspended GPU,
//   amdgpu.vramUsedBytes   number   `mem_info_vram_used`   } so a sleeping one gets a limit
//   amdgpu.vramTotalBytes  number   `mem_info_vram_total`  } instead
//   nvml.status            string   ok | error | timedOut | unavailable | disabled | notManaged
//                                   (NVIDIA vendor id only; notManaged: bound to another driver;
//                                   timedOut: a call missed its deadline, an earlier call is still
//                                   stuck, or the sample's NVML budget was spent; see nvml_context.h)
//   nvml.name              string   nvmlDeviceGetName
//   nvml.gpuUtilPercent    number   nvmlDeviceGetUtilizationRates .gpu
//   nvml.memoryUtilPercent number   nvmlDeviceGetUtilizationRates .memory
//   nvml.performanceState  number   0 … 15 (P0 … P15)
//   nvml.powerDrawMilliwatts   number  nvmlDeviceGetPowerUsage
//   nvml.memoryTotalBytes  number   nvmlDeviceGetMemoryInfo
//   nvml.memoryUsedBytes   number
//   nvml.memoryFreeBytes   number
//   nvml.minorNumber       number   N of /dev/nvidiaN
//   nvml.gpuLost           boolean  true when NVML answered NVML_ERROR_GPU_IS_LOST
//   nvml.resetRequired     boolean  true when NVML answered NVML_ERROR_RESET_REQUIRED
//                                   (both false once NVML found the device healthy)
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../backend.h"
#include "nvml_context.h"
#include "pci_amdgpu.h"
#include "pci_sysfs.h"

namespace iokitsnap {

namespace {

constexpr const char kNvidiaVendorId[] = "0x10de";

// NVIDIA's shared control nodes: every process using the driver opens nvidiactl, and
// CUDA's unified memory goes through nvidia-uvm (names fixed by the driver).
constexpr const char* kNvidiaSharedNodes[] = {"/dev/nvidiactl", "/dev/nvidia-uvm"};

// What one sample shares across devices: the options, the limits, the environment's
// NVML state, and this sample's turn at it (taken at the first NVIDIA device, given
// back when the sample ends).
struct SampleContext {
  const AcceleratorOptions& options;
  std::vector<LimitRecord>& limits;
  NvmlContext& nvmlContext;
  SteadyTime start;
  std::optional<NvmlSample> nvml;
};

struct DeviceContext {
  const pci::PciDeviceDir& dir;
  const pci::PciFacts& facts;
  AcceleratorRecord& record;
  std::vector<std::string>& deviceNodes;
};

std::string Subject(const DeviceContext& device) { return "accelerator " + device.dir.address; }

void SetIf(PropertyValue& dict, const char* key, const std::optional<std::string>& value) {
  if (value) dict.Set(key, PropertyValue::String(*value));
}

void SetIf(PropertyValue& dict, const char* key, const std::optional<int64_t>& value) {
  if (value) dict.Set(key, PropertyValue::Signed(*value));
}

PropertyValue Strings(const std::vector<std::string>& items) {
  PropertyValue array = PropertyValue::Array();
  for (const auto& item : items) array.items.push_back(PropertyValue::String(item));
  return array;
}

// ---------------------------------------------------------------- vendor readers
// One entry per source of driver-specific facts, in the manner of nvtop's
// per-vendor table: `handles` looks at the generic PCI facts, `read` adds
// properties, device nodes and limits.

struct VendorReader {
  const char* name;
  bool (*handles)(const pci::PciFacts& facts);
  void (*read)(DeviceContext& device, SampleContext& sample);
};

bool IsAmdgpu(const pci::PciFacts& facts) { return facts.driver == "amdgpu"; }

void ReadAmdgpu(DeviceContext& device, SampleContext& sample) {
  const bool awake = !pci::ReadingMayWake(device.facts);
  pci::AmdgpuFacts amd = pci::ReadAmdgpuFacts(device.dir.dir.get(), awake);
  PropertyValue& properties = device.record.properties;
  SetIf(properties, "amdgpu.productName", amd.productName);
  SetIf(properties, "amdgpu.gpuBusyPercent", amd.gpuBusyPercent);
  SetIf(properties, "amdgpu.memBusyPercent", amd.memBusyPercent);
  SetIf(properties, "amdgpu.vramUsedBytes", amd.vramUsedBytes);
  SetIf(properties, "amdgpu.vramTotalBytes", amd.vramTotalBytes);
  if (!awake) {
    const std::string state = "runtime_status " + device.facts.runtimeStatus.value_or("absent") + ", power_state " +
                              device.facts.powerState.value_or("absent");
    sample.limits.push_back(LimitRecord{
        Subject(device), "utilization", "EAGAIN",
        "the GPU is asleep (" + state + "): " + pci::kAmdgpuWakingAttributes +
            " were not read, because reading them would wake it",
        "utilization and VRAM use are read while the GPU is active; write 'on' to its power/control to keep it awake"});
  }
}

bool IsNvidia(const pci::PciFacts& facts) { return facts.vendorId && *facts.vendorId == kNvidiaVendorId; }

void SetNvmlFacts(PropertyValue& properties, const NvmlDeviceFacts& nvml) {
  properties.Set("nvml.status", PropertyValue::String(nvml.status));
  SetIf(properties, "nvml.name", nvml.name);
  if (nvml.utilization) {
    properties.Set("nvml.gpuUtilPercent", PropertyValue::Unsigned(nvml.utilization->gpu));
    properties.Set("nvml.memoryUtilPercent", PropertyValue::Unsigned(nvml.utilization->memory));
  }
  if (nvml.performanceState) properties.Set("nvml.performanceState", PropertyValue::Signed(*nvml.performanceState));
  if (nvml.powerMilliwatts) properties.Set("nvml.powerDrawMilliwatts", PropertyValue::Unsigned(*nvml.powerMilliwatts));
  if (nvml.memory) {
    properties.Set("nvml.memoryTotalBytes", PropertyValue::Unsigned(nvml.memory->total));
    properties.Set("nvml.memoryUsedBytes", PropertyValue::Unsigned(nvml.memory->used));
    properties.Set("nvml.memoryFreeBytes", PropertyValue::Unsigned(nvml.memory->free));
  }
  if (nvml.minorNumber) properties.Set("nvml.minorNumber", PropertyValue::Unsigned(*nvml.minorNumber));
  if (nvml.gpuLost) properties.Set("nvml.gpuLost", PropertyValue::Bool(*nvml.gpuLost));
  if (nvml.resetRequired) properties.Set("nvml.resetRequired", PropertyValue::Bool(*nvml.resetRequired));
}

void ReadNvml(DeviceContext& device, SampleContext& sample) {
  PropertyValue& properties = device.record.properties;
  if (!sample.options.nvml) {
    properties.Set("nvml.status", PropertyValue::String("disabled"));
    return;
  }
  if (device.facts.driver != "nvidia") {
    properties.Set("nvml.status", PropertyValue::String("notManaged"));
    sample.limits.push_back(LimitRecord{
        Subject(device), "utilization", "ENOTSUP",
        device.facts.driver.empty() ? "no driver is bound to this NVIDIA device, so NVML cannot see it"
                                    : "this NVIDIA device is bound to " + device.facts.driver +
                                          ", not nvidia, so NVML cannot see it",
        ""});
    return;
  }
  if (!sample.nvml) {
    const std::chrono::milliseconds callTimeout(std::max<uint32_t>(1, sample.options.callTimeoutMs));
    const std::chrono::milliseconds budget(std::max<uint32_t>(1, sample.options.callBudgetMs));
    sample.nvml.emplace(sample.nvmlContext, sample.options.nvmlLibrary, callTimeout, sample.start + budget, budget,
                        sample.limits);
  }
  NvmlDeviceFacts nvml = sample.nvml->QueryDevice(device.dir.address);
  SetNvmlFacts(properties, nvml);
  if (nvml.minorNumber) device.deviceNodes.push_back("/dev/nvidia" + std::to_string(*nvml.minorNumber));
}

bool IsNvidiaDriver(const pci::PciFacts& facts) { return facts.driver == "nvidia"; }

void AddNvidiaSharedNodes(DeviceContext& device, SampleContext& /*sample*/) {
  for (const char* node : kNvidiaSharedNodes) device.deviceNodes.push_back(node);
}

constexpr VendorReader kVendorReaders[] = {
    {"amdgpu", IsAmdgpu, ReadAmdgpu},
    {"nvml", IsNvidia, ReadNvml},
    {"nvidia nodes", IsNvidiaDriver, AddNvidiaSharedNodes},
};

// ---------------------------------------------------------------- generic PCI

void SetPciProperties(PropertyValue& properties, const pci::PciDeviceDir& dir, const pci::PciFacts& facts) {
  properties.Set("pci.address", PropertyValue::String(dir.address));
  properties.Set("pci.class", PropertyValue::String(dir.classText));
  SetIf(properties, "pci.vendorId", facts.vendorId);
  SetIf(properties, "pci.deviceId", facts.deviceId);
  SetIf(properties, "pci.subsystemVendorId", facts.subsystemVendorId);
  SetIf(properties, "pci.subsystemDeviceId", facts.subsystemDeviceId);
  SetIf(properties, "pci.revision", facts.revision);
  properties.Set("pci.driver", PropertyValue::String(facts.driver));
  SetIf(properties, "pci.powerState", facts.powerState);
  if (facts.d3coldAllowed) properties.Set("pci.d3coldAllowed", PropertyValue::Bool(*facts.d3coldAllowed));
  SetIf(properties, "pci.numaNode", facts.numaNode);
  SetIf(properties, "pci.link.currentSpeed", facts.currentLinkSpeed);
  SetIf(properties, "pci.link.currentWidth", facts.currentLinkWidth);
  SetIf(properties, "pci.link.maxSpeed", facts.maxLinkSpeed);
  SetIf(properties, "pci.link.maxWidth", facts.maxLinkWidth);
  SetIf(properties, "runtimePm.status", facts.runtimeStatus);
  SetIf(properties, "runtimePm.control", facts.runtimeControl);
  SetIf(properties, "runtimePm.activeTimeMs", facts.runtimeActiveMs);
  SetIf(properties, "runtimePm.suspendedTimeMs", facts.runtimeSuspendedMs);
  properties.Set("drm.cards", Strings(facts.drmCards));
  properties.Set("drm.renderNodes", Strings(facts.drmRenderNodes));
  properties.Set("accel.nodes", Strings(facts.accelNodes));
}

AcceleratorRecord ReadDevice(const pci::PciDeviceDir& dir, SampleContext& sample) {
  const pci::PciFacts facts = pci::ReadPciFacts(dir);
  AcceleratorRecord record;
  record.id = dir.address;
  record.name = facts.drmCards.empty() ? dir.address : facts.drmCards.front();
  record.className = facts.driver;
  record.classChain = {"pci", dir.classText};
  record.location = dir.location;
  SetPciProperties(record.properties, dir, facts);

  // The kernel names these nodes itself: drm "dri/card%d", "dri/renderD%d"; accel "accel/accel%d".
  std::vector<std::string> deviceNodes;
  for (const auto& card : facts.drmCards) deviceNodes.push_back("/dev/dri/" + card);
  for (const auto& render : facts.drmRenderNodes) deviceNodes.push_back("/dev/dri/" + render);
  for (const auto& accel : facts.accelNodes) deviceNodes.push_back("/dev/accel/" + accel);
  DeviceContext device{dir, facts, record, deviceNodes};
  for (const VendorReader& reader : kVendorReaders) {
    if (reader.handles(facts)) reader.read(device, sample);
  }
  record.properties.Set("deviceNodes", Strings(deviceNodes));
  return record;
}

}  // namespace

// Per environment: the NVML session and whether a call of it is stuck (nvml_context.h).
struct AcceleratorContext {
  NvmlContext nvml;
};
std::shared_ptr<AcceleratorContext> NewAcceleratorContext() { return std::make_shared<AcceleratorContext>(); }

AcceleratorSampleRecord SampleAccelerators(const AcceleratorOptions& options,
                                           const std::shared_ptr<AcceleratorContext>& context) {
  const SteadyTime start = std::chrono::steady_clock::now();  // the NVML budget counts from here
  // Without a context (no caller does that), the sample keeps its NVML state to itself.
  const std::shared_ptr<AcceleratorContext> shared = context ? context : NewAcceleratorContext();
  AcceleratorSampleRecord sample;
  pci::PciScan scan = pci::ScanAcceleratorDevices(options.sysRoot);
  sample.limits = std::move(scan.limits);
  SampleContext sampling{options, sample.limits, shared->nvml, start, std::nullopt};
  for (const pci::PciDeviceDir& dir : scan.devices) sample.accelerators.push_back(ReadDevice(dir, sampling));
  sampling.nvml.reset();  // the next sample's turn
  return sample;
}

}  // namespace iokitsnap
