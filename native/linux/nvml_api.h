// The few NVML types and entry points iokit-snap uses, declared from the public
// NVML API reference (docs.nvidia.com/deploy/nvml-api) instead of nvml.h, so the
// addon builds without the CUDA toolkit and runs without the NVIDIA driver.
// The library is loaded at run time with dlopen.
#pragma once

#include <memory>
#include <string>

namespace iokitsnap::nvml {

// nvmlReturn_t: a C enum, passed as int.
using Return = int;
constexpr Return kSuccess = 0;
constexpr Return kErrorUninitialized = 1;
constexpr Return kErrorInvalidArgument = 2;
constexpr Return kErrorNotSupported = 3;
constexpr Return kErrorNoPermission = 4;
constexpr Return kErrorNotFound = 6;
constexpr Return kErrorInsufficientSize = 7;
constexpr Return kErrorDriverNotLoaded = 9;
constexpr Return kErrorTimeout = 10;
constexpr Return kErrorLibraryNotFound = 12;
constexpr Return kErrorFunctionNotFound = 13;
constexpr Return kErrorGpuIsLost = 15;
constexpr Return kErrorResetRequired = 16;
constexpr Return kErrorLibRmVersionMismatch = 18;
constexpr Return kErrorNoData = 21;
constexpr Return kErrorUnknown = 999;

// nvmlPstates_t: 0 (P0, maximum performance) … 15 (P15, minimum); 32: unknown.
constexpr int kPstateUnknown = 32;

// NVML_DEVICE_NAME_V2_BUFFER_SIZE: enough for every product name.
constexpr unsigned int kDeviceNameBufferSize = 96;

struct DeviceOpaque;                 // struct nvmlDevice_st, never dereferenced
using Device = DeviceOpaque*;        // nvmlDevice_t

struct Utilization {                 // nvmlUtilization_t
  unsigned int gpu;                  // % of the sample period a kernel was running
  unsigned int memory;               // % of the sample period device memory was read or written
};

struct Memory {                      // nvmlMemory_t (v1)
  unsigned long long total;          // bytes
  unsigned long long free;
  unsigned long long used;           // allocated by processes and the driver
};

// Entry points, resolved with dlsym. All are required: a library without one of
// them is not an NVML this code understands.
struct Api {
  Return (*init)() = nullptr;                                            // nvmlInit_v2
  Return (*shutdown)() = nullptr;                                        // nvmlShutdown
  Return (*deviceGetCount)(unsigned int*) = nullptr;                     // nvmlDeviceGetCount_v2
  Return (*deviceGetHandleByPciBusId)(const char*, Device*) = nullptr;  // nvmlDeviceGetHandleByPciBusId_v2
  Return (*deviceGetName)(Device, char*, unsigned int) = nullptr;        // nvmlDeviceGetName
  Return (*deviceGetUtilizationRates)(Device, Utilization*) = nullptr;   // nvmlDeviceGetUtilizationRates
  Return (*deviceGetPerformanceState)(Device, int*) = nullptr;           // nvmlDeviceGetPerformanceState
  Return (*deviceGetPowerUsage)(Device, unsigned int*) = nullptr;        // nvmlDeviceGetPowerUsage (mW)
  Return (*deviceGetMemoryInfo)(Device, Memory*) = nullptr;              // nvmlDeviceGetMemoryInfo
  Return (*deviceGetMinorNumber)(Device, unsigned int*) = nullptr;       // nvmlDeviceGetMinorNumber
  const char* (*errorString)(Return) = nullptr;                          // nvmlErrorString
};

// The dlopen handle and the resolved entry points; dlclose on destruction.
class Library {
 public:
  // nullptr and a reason (dlerror, or the missing symbol) when it cannot be used.
  static std::unique_ptr<Library> Open(const std::string& path, std::string* reason);
  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  const Api& api() const { return api_; }

 private:
  explicit Library(void* handle) : handle_(handle) {}
  void* handle_;
  Api api_;
};

// "NVML_ERROR_GPU_IS_LOST" for 15, "NVML_ERROR_15" for codes this file does not name.
std::string ReturnName(Return code);
// The iokit-snap limit code for an NVML failure: EPERM, ENOTSUP, ENOENT, ETIMEDOUT or EIO.
const char* LimitCode(Return code);

}  // namespace iokitsnap::nvml
