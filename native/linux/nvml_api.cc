#include "nvml_api.h"

#include <dlfcn.h>

namespace iokitsnap::nvml {

namespace {

template <typename Function>
bool Resolve(void* handle, const char* symbol, Function& slot, std::string* reason) {
  // dlsym returns void*; the NVML ABI fixes the real signature.
  slot = reinterpret_cast<Function>(::dlsym(handle, symbol));
  if (slot == nullptr && reason != nullptr && reason->empty()) *reason = std::string("it has no ") + symbol;
  return slot != nullptr;
}

}  // namespace

std::unique_ptr<Library> Library::Open(const std::string& path, std::string* reason) {
  // RTLD_LOCAL: NVML's symbols must not interpose on anything else in the process.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = ::dlerror();
    if (reason != nullptr) *reason = error != nullptr ? error : "dlopen failed";
    return nullptr;
  }
  std::unique_ptr<Library> library(new Library(handle));
  Api& api = library->api_;
  std::string missing;
  bool ok = Resolve(handle, "nvmlInit_v2", api.init, &missing);
  ok &= Resolve(handle, "nvmlShutdown", api.shutdown, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetCount_v2", api.deviceGetCount, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetHandleByPciBusId_v2", api.deviceGetHandleByPciBusId, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetName", api.deviceGetName, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetUtilizationRates", api.deviceGetUtilizationRates, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetPerformanceState", api.deviceGetPerformanceState, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetPowerUsage", api.deviceGetPowerUsage, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetMemoryInfo", api.deviceGetMemoryInfo, &missing);
  ok &= Resolve(handle, "nvmlDeviceGetMinorNumber", api.deviceGetMinorNumber, &missing);
  ok &= Resolve(handle, "nvmlErrorString", api.errorString, &missing);
  if (!ok) {
    if (reason != nullptr) *reason = path + " is not a usable NVML: " + missing;
    return nullptr;  // the destructor closes the handle
  }
  return library;
}

Library::~Library() { ::dlclose(handle_); }

std::string ReturnName(Return code) {
  switch (code) {
    case kSuccess: return "NVML_SUCCESS";
    case kErrorUninitialized: return "NVML_ERROR_UNINITIALIZED";
    case kErrorInvalidArgument: return "NVML_ERROR_INVALID_ARGUMENT";
    case kErrorNotSupported: return "NVML_ERROR_NOT_SUPPORTED";
    case kErrorNoPermission: return "NVML_ERROR_NO_PERMISSION";
    case kErrorNotFound: return "NVML_ERROR_NOT_FOUND";
    case kErrorInsufficientSize: return "NVML_ERROR_INSUFFICIENT_SIZE";
    case kErrorDriverNotLoaded: return "NVML_ERROR_DRIVER_NOT_LOADED";
    case kErrorTimeout: return "NVML_ERROR_TIMEOUT";
    case kErrorLibraryNotFound: return "NVML_ERROR_LIBRARY_NOT_FOUND";
    case kErrorFunctionNotFound: return "NVML_ERROR_FUNCTION_NOT_FOUND";
    case kErrorGpuIsLost: return "NVML_ERROR_GPU_IS_LOST";
    case kErrorResetRequired: return "NVML_ERROR_RESET_REQUIRED";
    case kErrorLibRmVersionMismatch: return "NVML_ERROR_LIB_RM_VERSION_MISMATCH";
    case kErrorNoData: return "NVML_ERROR_NO_DATA";
    case kErrorUnknown: return "NVML_ERROR_UNKNOWN";
    default: return "NVML_ERROR_" + std::to_string(code);
  }
}

const char* LimitCode(Return code) {
  switch (code) {
    case kErrorNoPermission: return "EPERM";
    case kErrorNotSupported: return "ENOTSUP";
    case kErrorNotFound:
    case kErrorDriverNotLoaded:
    case kErrorLibraryNotFound:
    case kErrorFunctionNotFound: return "ENOENT";
    case kErrorTimeout: return "ETIMEDOUT";
    default: return "EIO";
  }
}

}  // namespace iokitsnap::nvml
