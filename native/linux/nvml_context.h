// What one JS environment keeps of NVML between accelerator samples (NvmlContext),
// and one sample's use of it (NvmlSample): what NVML's answers mean, as facts and limits.
//
// - One session (dlopen + nvmlInit_v2) serves every sample; it is re-opened when the
//   library path changes, re-initialized after NVML answered GPU_IS_LOST,
//   RESET_REQUIRED or UNINITIALIZED, and shut down when the context goes (environment
//   teardown), waiting at most the last call timeout.
// - A stuck call is remembered: until it returns, samples skip NVML and carry one
//   ETIMEDOUT limit saying since when, so a wedged driver holds one thread of this
//   process, not one per sample. A call that returns late retires its session (its
//   thread shuts NVML down), and the next sample starts a new one.
// - Deadlines: each handoff (open, one per device) waits at most callTimeoutMs, and all
//   of one sample's NVML time, the wait for a concurrent sample included, fits in the
//   sample's budget (callBudgetMs from its start). A handoff cut short by the budget is
//   a timeout like any other; a device reached after the budget is spent is not asked.
// - Concurrent samples of one environment take turns (one NVML thread serves them anyway).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../model.h"
#include "nvml_session.h"

namespace iokitsnap {

struct NvmlDeviceFacts {
  // "ok": every call answered (some values may still be unsupported, see limits);
  // "error": NVML refused the device (not found, lost, reset required, …);
  // "timedOut": a call missed its deadline, an earlier call is still stuck, or the
  //             sample's NVML budget was spent first;
  // "unavailable": NVML could not be loaded or started.
  std::string status = "ok";
  std::optional<std::string> name;
  std::optional<nvml::Utilization> utilization;
  std::optional<int> performanceState;  // 0 … 15
  std::optional<unsigned int> powerMilliwatts;
  std::optional<nvml::Memory> memory;
  std::optional<unsigned int> minorNumber;
  std::optional<bool> gpuLost;  // set once NVML answered for the device
  std::optional<bool> resetRequired;
};

class NvmlContext {
 public:
  NvmlContext() = default;
  ~NvmlContext();
  NvmlContext(const NvmlContext&) = delete;
  NvmlContext& operator=(const NvmlContext&) = delete;

 private:
  friend class NvmlSample;
  std::timed_mutex mutex_;                // held by the sample using NVML
  std::unique_ptr<NvmlSession> session_;  // the session samples use
  std::unique_ptr<NvmlSession> stuck_;    // abandoned, its call not returned yet
  bool ready_ = false;                    // session_ has NVML initialized
  bool reinit_ = false;                   // an answer said NVML must start over
  std::chrono::milliseconds closeTimeout_{2000};
};

class NvmlSample {
 public:
  // Takes the context (waiting at most until the budget ends) and makes NVML ready;
  // what fails becomes a limit in `limits`, which must outlive the sample.
  NvmlSample(NvmlContext& context, const std::string& library, std::chrono::milliseconds callTimeout,
             SteadyTime budgetEnd, std::chrono::milliseconds budget, std::vector<LimitRecord>& limits);
  ~NvmlSample();
  NvmlSample(const NvmlSample&) = delete;
  NvmlSample& operator=(const NvmlSample&) = delete;

  NvmlDeviceFacts QueryDevice(const std::string& pciAddress);

 private:
  struct Handoff {
    SteadyTime deadline;
    std::chrono::milliseconds wait;
    bool cutByBudget;
  };
  std::optional<Handoff> NextHandoff() const;
  void Abandon(const Handoff& handoff, const std::string& subject, const std::string& field, const std::string& what);
  void Open(const std::string& library);

  NvmlContext& context_;
  std::chrono::milliseconds callTimeout_;
  SteadyTime budgetEnd_;
  std::chrono::milliseconds budget_;
  std::vector<LimitRecord>& limits_;
  bool locked_ = false;
  std::string status_ = "ok";  // for every device of this sample, unless "ok"
};

}  // namespace iokitsnap
