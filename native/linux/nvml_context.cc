#include "nvml_context.h"

#include <cstdio>
#include <system_error>

namespace iokitsnap {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr const char kHungHint[] =
    "the NVIDIA driver or GPU may be hung: check `dmesg` for NVRM Xid errors (nvidia-smi will likely hang too)";

std::string Describe(const char* call, const NvmlCallAnswer& answer) {
  return std::string(call) + " returned " + nvml::ReturnName(answer.code) +
         (answer.message.empty() ? "" : " (" + answer.message + ")");
}

// The field a limit about a device call is filed under.
std::string FieldOf(const std::string& call) {
  if (call == "nvmlDeviceGetName") return "model";
  if (call == "nvmlDeviceGetUtilizationRates") return "utilization";
  if (call == "nvmlDeviceGetPerformanceState") return "power.performanceState";
  if (call == "nvmlDeviceGetPowerUsage") return "power.drawMilliwatts";
  if (call == "nvmlDeviceGetMemoryInfo") return "memory";
  if (call == "nvmlDeviceGetMinorNumber") return "deviceNodes";
  return "nvml";
}

std::string Seconds(steady_clock::duration elapsed) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f s",
                std::chrono::duration_cast<std::chrono::duration<double>>(elapsed).count());
  return text;
}

}  // namespace

NvmlContext::~NvmlContext() {
  // Environment teardown: shut NVML down, waiting at most one call timeout. A session
  // stuck in a call (here, or in stuck_) is detached by its destructor: its thread shuts
  // NVML down and drops the library if the call ever returns.
  if (session_ && !session_->abandoned()) session_->Close(steady_clock::now() + closeTimeout_);
}

NvmlSample::NvmlSample(NvmlContext& context, const std::string& library, milliseconds callTimeout,
                       SteadyTime budgetEnd, milliseconds budget, std::vector<LimitRecord>& limits)
    : context_(context), callTimeout_(callTimeout), budgetEnd_(budgetEnd), budget_(budget), limits_(limits) {
  if (!context_.mutex_.try_lock_until(budgetEnd_)) {
    status_ = "timedOut";
    limits_.push_back(LimitRecord{
        "nvml", "nvml", "ETIMEDOUT",
        "probe timed out: a concurrent sample used NVML for all of this sample's NVML budget (" +
            std::to_string(budget_.count()) + " ms)",
        kHungHint});
    return;
  }
  locked_ = true;
  context_.closeTimeout_ = callTimeout_;

  if (context_.stuck_) {
    if (!context_.stuck_->Finished()) {
      status_ = "timedOut";
      const std::optional<NvmlCallInFlight> call = context_.stuck_->InFlight();
      limits_.push_back(LimitRecord{
          "nvml", "nvml", "ETIMEDOUT",
          std::string("probe timed out: ") +
              (call ? "an earlier NVML call, " + call->call + ", has not returned since it was made " +
                          Seconds(steady_clock::now() - call->since) + " ago"
                    : std::string("an earlier NVML call has not returned (its thread is finishing)")) +
              "; NVML is not called again until it returns, so one thread, not one per sample, waits on the driver",
          kHungHint});
      return;
    }
    context_.stuck_.reset();  // it returned, shut NVML down and exited
  }

  if (context_.session_ && context_.session_->library() != library) {
    const std::optional<Handoff> handoff = NextHandoff();
    if (!handoff) return;
    if (!context_.session_->Close(handoff->deadline)) {
      Abandon(*handoff, "nvml", "nvml", "nvmlShutdown of " + context_.session_->library());
      return;
    }
    context_.session_.reset();
  }
  if (!context_.session_) {
    context_.ready_ = false;
    context_.reinit_ = false;
    try {
      context_.session_ = std::make_unique<NvmlSession>(library);
    } catch (const std::system_error& e) {
      status_ = "unavailable";
      limits_.push_back(LimitRecord{"nvml", "nvml", "EAGAIN",
                                    std::string("could not start the NVML helper thread: ") + e.what(),
                                    "raise the process's thread limit (ulimit -u)"});
      return;
    }
  }
  if (!context_.ready_ || context_.reinit_) Open(library);
}

NvmlSample::~NvmlSample() {
  if (locked_) context_.mutex_.unlock();
}

std::optional<NvmlSample::Handoff> NvmlSample::NextHandoff() const {
  const SteadyTime now = steady_clock::now();
  if (now >= budgetEnd_) return std::nullopt;
  const SteadyTime byCall = now + callTimeout_;
  const bool cut = budgetEnd_ < byCall;
  const SteadyTime deadline = cut ? budgetEnd_ : byCall;
  // Rounded up, so the limit never claims a shorter wait than the real one.
  const auto wait = std::chrono::ceil<milliseconds>(deadline - now);
  return Handoff{deadline, wait, cut};
}

void NvmlSample::Abandon(const Handoff& handoff, const std::string& subject, const std::string& field,
                         const std::string& what) {
  const std::optional<NvmlCallInFlight> call = context_.session_->InFlight();
  limits_.push_back(LimitRecord{
      subject, field, "ETIMEDOUT",
      "probe timed out: " + (call ? call->call : what) + " did not return within " +
          std::to_string(handoff.wait.count()) + " ms" +
          (handoff.cutByBudget ? " (what was left of this sample's NVML budget of " + std::to_string(budget_.count()) +
                                     " ms)"
                               : "") +
          "; NVML was abandoned: later samples skip it until that call returns",
      kHungHint});
  context_.stuck_ = std::move(context_.session_);
  context_.ready_ = false;
  status_ = "timedOut";
}

void NvmlSample::Open(const std::string& library) {
  const std::optional<Handoff> handoff = NextHandoff();
  if (!handoff) {
    status_ = "timedOut";
    limits_.push_back(LimitRecord{"nvml", "nvml", "ETIMEDOUT",
                                  "probe timed out: this sample's NVML budget (" + std::to_string(budget_.count()) +
                                      " ms) was spent before NVML could be started",
                                  ""});
    return;
  }
  NvmlOpenAnswers answers;
  const bool reinit = context_.reinit_;
  const bool done = context_.session_->Open(reinit, handoff->deadline, answers);
  context_.reinit_ = false;
  if (answers.shutdown && answers.shutdown->code != nvml::kSuccess) {
    limits_.push_back(LimitRecord{"nvml", "nvml", nvml::LimitCode(answers.shutdown->code),
                                  "re-initializing NVML: " + Describe("nvmlShutdown", *answers.shutdown), ""});
  }
  if (!done) {
    Abandon(*handoff, "nvml", "nvml", "loading NVML (" + library + ")");
    return;
  }
  if (!answers.dlopenError.empty()) {
    status_ = "unavailable";
    limits_.push_back(LimitRecord{
        "nvml", "utilization", "ENOENT", "NVML not available: utilization and health unknown (" + answers.dlopenError + ")",
        "install the NVIDIA driver's libnvidia-ml.so.1 (the nvidia-utils or libnvidia-compute package)"});
    return;
  }
  if (!answers.init) {
    status_ = "unavailable";
    limits_.push_back(LimitRecord{"nvml", "nvml", "EIO", "nvmlInit_v2 could not be run (out of memory)", ""});
    return;
  }
  const nvml::Return code = answers.init->code;
  if (code != nvml::kSuccess) {
    status_ = "unavailable";
    const char* hint = code == nvml::kErrorDriverNotLoaded
                           ? "load the nvidia kernel module (modprobe nvidia), or check dmesg for why it failed"
                       : code == nvml::kErrorNoPermission
                           ? "run with permission to open /dev/nvidiactl (the video group, or root)"
                       : code == nvml::kErrorLibRmVersionMismatch
                           ? "the user-space driver and the kernel module differ: reboot or reload the module"
                           : "";
    limits_.push_back(LimitRecord{"nvml", "utilization", nvml::LimitCode(code),
                                  "NVML could not start: " + Describe("nvmlInit_v2", *answers.init) +
                                      "; utilization and health unknown",
                                  hint});
    return;
  }
  context_.ready_ = true;
}

NvmlDeviceFacts NvmlSample::QueryDevice(const std::string& pciAddress) {
  NvmlDeviceFacts facts;
  if (status_ != "ok") {
    facts.status = status_;
    return facts;
  }
  const std::string subject = "accelerator " + pciAddress;
  const std::optional<Handoff> handoff = NextHandoff();
  if (!handoff) {
    facts.status = "timedOut";
    limits_.push_back(LimitRecord{subject, "utilization", "ETIMEDOUT",
                                  "probe timed out: this sample's NVML budget (" + std::to_string(budget_.count()) +
                                      " ms) was spent before this device was asked",
                                  "raise timeoutMs (the NVML budget is 80 % of it), or lower callTimeoutMs"});
    return facts;
  }
  NvmlDeviceAnswers answers;
  // sysfs "0000:01:00.0" is NVML's domain:bus:device.function.
  const bool done = context_.session_->QueryDevice(pciAddress, handoff->deadline, answers);

  // What one answer means. Value: use it. Unknown: a limit, go on. Stop: the device's
  // questions ended here (or were never asked).
  enum class Verdict { Value, Unknown, Stop };
  auto judge = [&](const std::optional<NvmlCallAnswer>& answer, const char* call) -> Verdict {
    if (!answer) return Verdict::Stop;
    if (answer->code == nvml::kSuccess) return Verdict::Value;
    const std::string field = FieldOf(call);
    if (answer->code == nvml::kErrorGpuIsLost || answer->code == nvml::kErrorResetRequired) {
      const bool lost = answer->code == nvml::kErrorGpuIsLost;
      // What NVML said last is the fact; the other state is no longer known.
      facts.gpuLost = lost ? std::optional<bool>(true) : std::nullopt;
      facts.resetRequired = lost ? std::nullopt : std::optional<bool>(true);
      facts.status = "error";
      context_.reinit_ = true;
      limits_.push_back(LimitRecord{
          subject, "nvml", "EIO",
          std::string(lost ? "NVML reports the GPU is lost: " : "NVML reports the GPU needs a reset: ") +
              Describe(call, *answer) + "; its remaining NVML facts were not read",
          lost ? "the GPU fell off the bus or stopped responding: check `dmesg` for NVRM Xid errors; it needs a reboot "
                 "(or a PCI remove/rescan)"
               : "reset the GPU (nvidia-smi --gpu-reset -i <index>, with nothing using it) or reboot"});
      return Verdict::Stop;
    }
    if (answer->code == nvml::kErrorUninitialized) {
      facts.status = "error";
      context_.reinit_ = true;
      limits_.push_back(LimitRecord{subject, field, "EIO",
                                    Describe(call, *answer) +
                                        ": NVML lost its state; it is initialized again on the next sample",
                                    ""});
      return Verdict::Stop;
    }
    limits_.push_back(LimitRecord{subject, field, nvml::LimitCode(answer->code), Describe(call, *answer), ""});
    return Verdict::Unknown;
  };

  [&] {
    const Verdict handle = judge(answers.handle, "nvmlDeviceGetHandleByPciBusId_v2");
    if (handle != Verdict::Value) {
      if (handle == Verdict::Unknown) {
        facts.status = "error";
        if (answers.count && answers.count->code == nvml::kSuccess) {
          limits_.back().hint = "NVML sees " + std::to_string(answers.countValue) +
                                " GPU(s) but not this one; in a container, only the GPUs passed in are visible to NVML";
        }
      }
      return;
    }
    facts.gpuLost = false;  // NVML answers GPU_IS_LOST to the handle lookup of a lost GPU
    facts.resetRequired = false;
    Verdict verdict = judge(answers.name, "nvmlDeviceGetName");
    if (verdict == Verdict::Stop) return;
    if (verdict == Verdict::Value) facts.name = answers.nameValue;
    verdict = judge(answers.utilization, "nvmlDeviceGetUtilizationRates");
    if (verdict == Verdict::Stop) return;
    if (verdict == Verdict::Value) facts.utilization = answers.utilizationValue;
    verdict = judge(answers.performanceState, "nvmlDeviceGetPerformanceState");
    if (verdict == Verdict::Stop) return;
    if (verdict == Verdict::Value) {
      const int pstate = answers.performanceStateValue;
      if (pstate >= 0 && pstate <= 15) {
        facts.performanceState = pstate;
      } else {
        limits_.push_back(LimitRecord{subject, "power.performanceState", "ENOTSUP",
                                      "NVML does not know the performance state (P" + std::to_string(pstate) + ")", ""});
      }
    }
    verdict = judge(answers.power, "nvmlDeviceGetPowerUsage");
    if (verdict == Verdict::Stop) return;
    if (verdict == Verdict::Value) facts.powerMilliwatts = answers.powerValue;
    verdict = judge(answers.memory, "nvmlDeviceGetMemoryInfo");
    if (verdict == Verdict::Stop) return;
    if (verdict == Verdict::Value) facts.memory = answers.memoryValue;
    verdict = judge(answers.minorNumber, "nvmlDeviceGetMinorNumber");
    if (verdict == Verdict::Value) facts.minorNumber = answers.minorNumberValue;
  }();

  if (!done) {
    const std::optional<NvmlCallInFlight> call = context_.session_->InFlight();
    Abandon(*handoff, subject, call ? FieldOf(call->call) : "nvml", "the NVML query of " + subject);
    facts.status = "timedOut";
  } else if (facts.status == "ok" && !answers.handle) {
    // The batch completed without a word: it could not allocate.
    facts.status = "error";
    limits_.push_back(LimitRecord{subject, "nvml", "EIO", "the NVML query could not be run (out of memory)", ""});
  }
  return facts;
}

}  // namespace iokitsnap
