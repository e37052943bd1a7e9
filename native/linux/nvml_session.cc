#include "nvml_session.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <system_error>
#include <utility>

namespace iokitsnap {

// Everything the helper thread may touch. Owned jointly by the session and the
// thread, so an abandoned thread never reaches freed memory.
struct NvmlSession::Worker {
  std::mutex mutex;
  std::condition_variable wake;      // a task was posted, or stop was asked
  std::condition_variable finished;  // a task completed
  std::function<void(Worker&)> task;
  uint64_t posted = 0;
  uint64_t completed = 0;
  bool stop = false;
  // Touched only by the helper thread (inside tasks, or after the loop).
  std::unique_ptr<nvml::Library> library;
  bool initialized = false;

  static void Loop(std::shared_ptr<Worker> self) {
    std::unique_lock<std::mutex> lock(self->mutex);
    for (;;) {
      self->wake.wait(lock, [&] { return self->task || self->stop; });
      if (!self->task) break;
      std::function<void(Worker&)> task = std::move(self->task);
      self->task = nullptr;
      lock.unlock();
      try {
        task(*self);
      } catch (...) {
        // A task that cannot allocate its answer leaves it empty; the caller reports EIO.
      }
      lock.lock();
      ++self->completed;
      self->finished.notify_all();
    }
    lock.unlock();
    // Reached with NVML still initialized only after an abandoned call finally returned.
    if (self->initialized) self->library->api().shutdown();
  }
};

namespace {

template <typename T>
struct Answer {
  nvml::Return code = nvml::kErrorUnknown;
  T value{};
  std::string message;  // nvmlErrorString, when code is not success
};

std::string ErrorText(const nvml::Api& api, nvml::Return code) {
  const char* text = api.errorString(code);
  return text != nullptr ? text : "";
}

std::string Describe(const char* call, nvml::Return code, const std::string& message) {
  return std::string(call) + " returned " + nvml::ReturnName(code) + (message.empty() ? "" : " (" + message + ")");
}

}  // namespace

template <typename T, typename Work>
std::optional<T> NvmlSession::Run(const std::string& subject, const char* field, const char* call, Work work) {
  if (abandoned_ || !worker_) return std::nullopt;
  // The answer lives in a box both sides own: after a timeout this frame is gone
  // and the helper may still write into it.
  auto box = std::make_shared<std::optional<T>>();
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(worker_->mutex);
    worker_->task = [box, work = std::move(work)](Worker& worker) { box->emplace(work(worker)); };
    ticket = ++worker_->posted;
  }
  worker_->wake.notify_one();
  std::unique_lock<std::mutex> lock(worker_->mutex);
  const bool done = worker_->finished.wait_for(lock, callTimeout_, [&] { return worker_->completed >= ticket; });
  if (!done) {
    abandoned_ = true;
    limits_.push_back(LimitRecord{
        subject, field, "ETIMEDOUT",
        std::string("probe timed out: ") + call + " did not return within " + std::to_string(callTimeout_.count()) +
            " ms; NVML was abandoned for the rest of this sample",
        "the NVIDIA driver or GPU may be hung: check `dmesg` for NVRM Xid errors (nvidia-smi will likely hang too)"});
    return std::nullopt;
  }
  if (!*box) {
    limits_.push_back(LimitRecord{subject, field, "EIO", std::string(call) + " could not be run (out of memory)", ""});
    return std::nullopt;
  }
  return std::move(*box);
}

NvmlSession::NvmlSession(const std::string& library, std::chrono::milliseconds callTimeout,
                         std::vector<LimitRecord>& limits)
    : callTimeout_(callTimeout), limits_(limits) {
  worker_ = std::make_shared<Worker>();
  try {
    thread_ = std::thread(&Worker::Loop, worker_);
  } catch (const std::system_error& e) {
    worker_.reset();
    limits_.push_back(LimitRecord{"nvml", "nvml", "EAGAIN",
                                  std::string("could not start the NVML helper thread: ") + e.what(),
                                  "raise the process's thread limit (ulimit -u)"});
    return;
  }

  auto opened = Run<std::string>("nvml", "nvml", "dlopen", [library](Worker& worker) {
    std::string reason;
    worker.library = nvml::Library::Open(library, &reason);
    return reason;
  });
  if (!opened) return;
  if (!opened->empty()) {
    limits_.push_back(LimitRecord{
        "nvml", "utilization", "ENOENT",
        "NVML not available: utilization and health unknown (" + *opened + ")",
        "install the NVIDIA driver's libnvidia-ml.so.1 (the nvidia-utils or libnvidia-compute package)"});
    return;
  }

  auto init = Run<Answer<int>>("nvml", "nvml", "nvmlInit_v2", [](Worker& worker) {
    Answer<int> answer;
    answer.code = worker.library->api().init();
    if (answer.code == nvml::kSuccess) worker.initialized = true;
    else answer.message = ErrorText(worker.library->api(), answer.code);
    return answer;
  });
  if (!init) return;
  if (init->code != nvml::kSuccess) {
    const char* hint = init->code == nvml::kErrorDriverNotLoaded
                           ? "load the nvidia kernel module (modprobe nvidia), or check dmesg for why it failed"
                       : init->code == nvml::kErrorNoPermission
                           ? "run with permission to open /dev/nvidiactl (the video group, or root)"
                       : init->code == nvml::kErrorLibRmVersionMismatch
                           ? "the user-space driver and the kernel module differ: reboot or reload the module"
                           : "";
    limits_.push_back(LimitRecord{"nvml", "utilization", nvml::LimitCode(init->code),
                                  "NVML could not start: " + Describe("nvmlInit_v2", init->code, init->message) +
                                      "; utilization and health unknown",
                                  hint});
    return;
  }
  initialized_ = true;

  auto count = Run<Answer<unsigned int>>("nvml", "nvml", "nvmlDeviceGetCount_v2", [](Worker& worker) {
    Answer<unsigned int> answer;
    answer.code = worker.library->api().deviceGetCount(&answer.value);
    if (answer.code != nvml::kSuccess) answer.message = ErrorText(worker.library->api(), answer.code);
    return answer;
  });
  if (count && count->code == nvml::kSuccess) deviceCount_ = count->value;
}

NvmlSession::~NvmlSession() { Close(); }

template <typename T, typename Call>
bool NvmlSession::Ask(const std::string& address, const char* field, const char* callName, NvmlDeviceFacts& facts,
                      std::optional<T>& into, Call call) {
  const std::string subject = "accelerator " + address;
  auto answer = Run<Answer<T>>(subject, field, callName, [call](Worker& worker) {
    Answer<T> result;
    const nvml::Api& api = worker.library->api();
    result.code = call(api, result.value);
    if (result.code != nvml::kSuccess) result.message = ErrorText(api, result.code);
    return result;
  });
  if (!answer) {
    facts.status = abandoned_ ? "timedOut" : "error";
    return false;
  }
  if (answer->code == nvml::kSuccess) {
    into = std::move(answer->value);
    return true;
  }
  if (answer->code == nvml::kErrorGpuIsLost || answer->code == nvml::kErrorResetRequired) {
    const bool lost = answer->code == nvml::kErrorGpuIsLost;
    // What NVML said last is the fact; the other state is no longer known.
    facts.gpuLost = lost ? std::optional<bool>(true) : std::nullopt;
    facts.resetRequired = lost ? std::nullopt : std::optional<bool>(true);
    facts.status = "error";
    limits_.push_back(LimitRecord{
        subject, "nvml", "EIO",
        std::string(lost ? "NVML reports the GPU is lost: " : "NVML reports the GPU needs a reset: ") +
            Describe(callName, answer->code, answer->message) + "; its remaining NVML facts were not read",
        lost ? "the GPU fell off the bus or stopped responding: check `dmesg` for NVRM Xid errors; it needs a reboot "
               "(or a PCI remove/rescan)"
             : "reset the GPU (nvidia-smi --gpu-reset -i <index>, with nothing using it) or reboot"});
    return false;
  }
  limits_.push_back(LimitRecord{subject, field, nvml::LimitCode(answer->code),
                                Describe(callName, answer->code, answer->message), ""});
  return true;  // this value is unknown; the others may still be read
}

NvmlDeviceFacts NvmlSession::QueryDevice(const std::string& pciAddress) {
  NvmlDeviceFacts facts;
  if (!usable()) {
    facts.status = unusableStatus();
    return facts;
  }
  std::optional<nvml::Device> device;
  const std::string busId = pciAddress;  // sysfs "0000:01:00.0" is NVML's domain:bus:device.function
  if (!Ask(pciAddress, "nvml", "nvmlDeviceGetHandleByPciBusId_v2", facts, device,
           [busId](const nvml::Api& api, nvml::Device& out) { return api.deviceGetHandleByPciBusId(busId.c_str(), &out); })) {
    return facts;
  }
  if (!device) {
    facts.status = "error";
    if (deviceCount_) {
      // Ask() recorded NVML's answer; add what NVML does see, which usually explains it.
      limits_.back().hint = "NVML sees " + std::to_string(*deviceCount_) +
                            " GPU(s) but not this one; in a container, only the GPUs passed in are visible to NVML";
    }
    return facts;
  }
  facts.gpuLost = false;  // NVML answers GPU_IS_LOST to the handle lookup of a lost GPU
  facts.resetRequired = false;
  const nvml::Device handle = *device;

  std::optional<std::string> name;
  if (!Ask(pciAddress, "model", "nvmlDeviceGetName", facts, name, [handle](const nvml::Api& api, std::string& out) {
        char buffer[nvml::kDeviceNameBufferSize] = {};
        nvml::Return code = api.deviceGetName(handle, buffer, sizeof(buffer));
        buffer[sizeof(buffer) - 1] = '\0';
        if (code == nvml::kSuccess) out = buffer;
        return code;
      }))
    return facts;
  facts.name = std::move(name);

  if (!Ask(pciAddress, "utilization", "nvmlDeviceGetUtilizationRates", facts, facts.utilization,
           [handle](const nvml::Api& api, nvml::Utilization& out) { return api.deviceGetUtilizationRates(handle, &out); }))
    return facts;

  std::optional<int> pstate;
  if (!Ask(pciAddress, "power.performanceState", "nvmlDeviceGetPerformanceState", facts, pstate,
           [handle](const nvml::Api& api, int& out) { return api.deviceGetPerformanceState(handle, &out); }))
    return facts;
  if (pstate && *pstate >= 0 && *pstate <= 15) {
    facts.performanceState = pstate;
  } else if (pstate) {
    limits_.push_back(LimitRecord{"accelerator " + pciAddress, "power.performanceState", "ENOTSUP",
                                  "NVML does not know the performance state (P" + std::to_string(*pstate) + ")", ""});
  }

  if (!Ask(pciAddress, "power.drawMilliwatts", "nvmlDeviceGetPowerUsage", facts, facts.powerMilliwatts,
           [handle](const nvml::Api& api, unsigned int& out) { return api.deviceGetPowerUsage(handle, &out); }))
    return facts;

  if (!Ask(pciAddress, "memory", "nvmlDeviceGetMemoryInfo", facts, facts.memory,
           [handle](const nvml::Api& api, nvml::Memory& out) { return api.deviceGetMemoryInfo(handle, &out); }))
    return facts;

  Ask(pciAddress, "deviceNodes", "nvmlDeviceGetMinorNumber", facts, facts.minorNumber,
      [handle](const nvml::Api& api, unsigned int& out) { return api.deviceGetMinorNumber(handle, &out); });
  return facts;
}

void NvmlSession::Close() {
  if (!thread_.joinable()) return;
  if (initialized_ && !abandoned_) {
    auto shutdown = Run<int>("nvml", "nvml", "nvmlShutdown", [](Worker& worker) {
      worker.initialized = false;
      return worker.library->api().shutdown();
    });
    if (shutdown && *shutdown != nvml::kSuccess) {
      limits_.push_back(LimitRecord{"nvml", "nvml", nvml::LimitCode(*shutdown),
                                    "nvmlShutdown returned " + nvml::ReturnName(*shutdown), ""});
    }
  }
  {
    std::lock_guard<std::mutex> lock(worker_->mutex);
    worker_->stop = true;
  }
  worker_->wake.notify_one();
  if (abandoned_) {
    thread_.detach();  // stuck in NVML; it cleans up after itself if it ever returns
  } else {
    thread_.join();
  }
}

}  // namespace iokitsnap
