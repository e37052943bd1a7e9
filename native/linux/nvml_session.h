// One NVML session for one accelerator sample, with a deadline on every call.
//
// NVML calls can block for a long time, or forever, on a GPU that fell off the
// bus or a wedged driver: exactly the machines this tool is pointed at. So every
// call (dlopen and nvmlInit included) runs on a helper thread, and the sampling
// thread waits for it on a condition variable with a timeout. A call that misses
// its deadline becomes an ETIMEDOUT limit and the session is abandoned: its
// thread is detached, owns (through a shared_ptr) everything it can still touch,
// including the dlopen handle, and nobody waits for it. If it ever returns, it
// shuts NVML down and drops the library on its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../model.h"
#include "nvml_api.h"

namespace iokitsnap {

struct NvmlDeviceFacts {
  // "ok": every call answered (some values may still be unsupported, see limits);
  // "error": NVML refused the device (not found, lost, reset required, …);
  // "timedOut": a call missed its deadline (the session is abandoned).
  std::string status = "ok";
  std::optional<std::string> name;
  std::optional<nvml::Utilization> utilization;
  std::optional<int> performanceState;        // 0 … 15
  std::optional<unsigned int> powerMilliwatts;
  std::optional<nvml::Memory> memory;
  std::optional<unsigned int> minorNumber;
  std::optional<bool> gpuLost;                // set once NVML answered for the device
  std::optional<bool> resetRequired;
};

class NvmlSession {
 public:
  struct Worker;  // the state the helper thread shares (nvml_session.cc)

  // Loads `library` and initializes NVML. What fails becomes a limit in `limits`,
  // which must outlive the session; usable() says whether devices can be queried.
  NvmlSession(const std::string& library, std::chrono::milliseconds callTimeout, std::vector<LimitRecord>& limits);
  ~NvmlSession();
  NvmlSession(const NvmlSession&) = delete;
  NvmlSession& operator=(const NvmlSession&) = delete;

  bool usable() const { return initialized_ && !abandoned_; }
  bool abandoned() const { return abandoned_; }
  // Why usable() is false, for the per-device status ("unavailable" or "timedOut").
  const char* unusableStatus() const { return abandoned_ ? "timedOut" : "unavailable"; }

  NvmlDeviceFacts QueryDevice(const std::string& pciAddress);

  // nvmlShutdown (with a deadline), then joins the helper thread, or detaches it
  // when a call hung. Idempotent; the destructor calls it.
  void Close();

 private:
  template <typename T, typename Work>
  std::optional<T> Run(const std::string& subject, const char* field, const char* call, Work work);
  template <typename T, typename Call>
  bool Ask(const std::string& address, const char* field, const char* callName, NvmlDeviceFacts& facts,
           std::optional<T>& into, Call call);

  std::shared_ptr<Worker> worker_;
  std::thread thread_;
  std::chrono::milliseconds callTimeout_;
  std::vector<LimitRecord>& limits_;
  bool initialized_ = false;
  bool abandoned_ = false;
  std::optional<unsigned int> deviceCount_;
};

}  // namespace iokitsnap
