#include "nvml_session.h"

#include <condition_variable>
#include <functional>
#include <utility>

namespace iokitsnap {

bool EndsDeviceQuery(nvml::Return code) {
  return code == nvml::kErrorGpuIsLost || code == nvml::kErrorResetRequired || code == nvml::kErrorUninitialized;
}

// Everything the helper thread may touch. Owned jointly by the session and the
// thread, so an abandoned thread never reaches freed memory. Answers a task gives
// back are written under `mutex`, call by call, so a caller that stopped waiting
// can still copy what was answered before the call that hung.
struct NvmlSession::Worker {
  mutable std::mutex mutex;
  std::condition_variable wake;      // a task was posted, or stop was asked
  std::condition_variable finished;  // a task completed, or the thread exited
  std::function<void(Worker&)> task;
  uint64_t posted = 0;
  uint64_t completed = 0;
  bool stop = false;
  bool exited = false;
  const char* inFlight = nullptr;  // the call being made (a string literal)
  SteadyTime inFlightSince;
  // Touched only by the helper thread.
  std::unique_ptr<nvml::Library> library;
  bool initialized = false;

  // Makes one call, naming it in inFlight meanwhile. Nothing is asked once the session
  // was abandoned, except the final nvmlShutdown (`evenWhenStopping`).
  template <typename Call>
  std::optional<NvmlCallAnswer> Ask(const char* name, Call call, bool evenWhenStopping = false) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (stop && !evenWhenStopping) return std::nullopt;
      inFlight = name;
      inFlightSince = std::chrono::steady_clock::now();
    }
    NvmlCallAnswer answer;
    answer.code = call(library->api());
    if (answer.code != nvml::kSuccess) {
      const char* text = library->api().errorString(answer.code);
      answer.message = text != nullptr ? text : "";
    }
    std::lock_guard<std::mutex> lock(mutex);
    inFlight = nullptr;
    return answer;
  }

  template <typename Write>
  void Store(Write write) {
    std::lock_guard<std::mutex> lock(mutex);
    write();
  }

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
        // A task that cannot allocate leaves its answers empty; the caller reports them missing.
      }
      lock.lock();
      ++self->completed;
      self->finished.notify_all();
    }
    lock.unlock();
    if (self->initialized) {
      self->Ask("nvmlShutdown", [](const nvml::Api& api) { return api.shutdown(); }, true);
      self->initialized = false;
    }
    self->library.reset();  // dlclose: no NVML code runs on this thread any more
    lock.lock();
    self->exited = true;
    self->finished.notify_all();
  }
};

NvmlSession::NvmlSession(std::string library) : library_(std::move(library)), worker_(std::make_shared<Worker>()) {
  thread_ = std::thread(&Worker::Loop, worker_);
}

NvmlSession::~NvmlSession() {
  {
    std::lock_guard<std::mutex> lock(worker_->mutex);
    worker_->stop = true;
  }
  worker_->wake.notify_one();
  if (!thread_.joinable()) return;
  if (Finished()) return;
  thread_.detach();  // still in a call (or in its final nvmlShutdown): it cleans up after itself
}

template <typename Answers, typename Task>
bool NvmlSession::Run(SteadyTime deadline, Answers& answers, Task task) {
  if (abandoned_) return false;
  // Both sides own the answers: after a timeout this frame is gone and the helper may still write.
  auto box = std::make_shared<Answers>();
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(worker_->mutex);
    worker_->task = [box, task = std::move(task)](Worker& worker) { task(worker, *box); };
    ticket = ++worker_->posted;
  }
  worker_->wake.notify_one();
  std::unique_lock<std::mutex> lock(worker_->mutex);
  const bool done = worker_->finished.wait_until(lock, deadline, [&] { return worker_->completed >= ticket; });
  answers = *box;
  if (!done) {
    abandoned_ = true;
    worker_->stop = true;  // asks nothing more, and shuts down once the stuck call returns
  }
  return done;
}

bool NvmlSession::Open(bool reinit, SteadyTime deadline, NvmlOpenAnswers& answers) {
  const std::string path = library_;
  return Run(deadline, answers, [path, reinit](Worker& worker, NvmlOpenAnswers& out) {
    if (!worker.library) {
      {
        std::lock_guard<std::mutex> lock(worker.mutex);
        worker.inFlight = "dlopen";
        worker.inFlightSince = std::chrono::steady_clock::now();
      }
      std::string reason;
      std::unique_ptr<nvml::Library> library = nvml::Library::Open(path, &reason);
      worker.Store([&] {
        worker.inFlight = nullptr;
        out.dlopenError = library ? "" : reason.empty() ? "dlopen failed" : reason;
      });
      if (!library) return;
      worker.library = std::move(library);
    }
    if (reinit && worker.initialized) {
      auto shutdown = worker.Ask("nvmlShutdown", [](const nvml::Api& api) { return api.shutdown(); });
      if (!shutdown) return;
      worker.initialized = false;
      worker.Store([&] { out.shutdown = shutdown; });
    }
    if (worker.initialized) return;
    auto init = worker.Ask("nvmlInit_v2", [](const nvml::Api& api) { return api.init(); });
    if (!init) return;
    if (init->code == nvml::kSuccess) worker.initialized = true;
    worker.Store([&] { out.init = init; });
  });
}

bool NvmlSession::QueryDevice(const std::string& busId, SteadyTime deadline, NvmlDeviceAnswers& answers) {
  return Run(deadline, answers, [busId](Worker& worker, NvmlDeviceAnswers& out) {
    // Asks one value; false when the device's questions end here.
    auto step = [&worker, &out](const char* name, std::optional<NvmlCallAnswer> NvmlDeviceAnswers::*slot,
                                auto call) -> bool {
      auto answer = worker.Ask(name, call);
      if (!answer) return false;
      worker.Store([&] { out.*slot = answer; });
      return !EndsDeviceQuery(answer->code);
    };
    nvml::Device device = nullptr;
    auto handle = worker.Ask("nvmlDeviceGetHandleByPciBusId_v2", [&](const nvml::Api& api) {
      return api.deviceGetHandleByPciBusId(busId.c_str(), &device);
    });
    if (!handle) return;
    worker.Store([&] { out.handle = handle; });
    if (handle->code != nvml::kSuccess) {
      if (handle->code != nvml::kErrorNotFound) return;
      // What NVML does see usually explains why it does not see this one.
      unsigned int count = 0;
      auto answer = worker.Ask("nvmlDeviceGetCount_v2", [&](const nvml::Api& api) { return api.deviceGetCount(&count); });
      if (answer) worker.Store([&] { out.count = answer, out.countValue = count; });
      return;
    }
    // Each value is written to a local first, and stored with its answer under the lock.
    char name[nvml::kDeviceNameBufferSize] = {};
    if (!step("nvmlDeviceGetName", &NvmlDeviceAnswers::name, [&](const nvml::Api& api) {
          nvml::Return code = api.deviceGetName(device, name, sizeof(name));
          name[sizeof(name) - 1] = '\0';
          return code;
        }))
      return;
    worker.Store([&] { out.nameValue = name; });
    nvml::Utilization utilization{};
    if (!step("nvmlDeviceGetUtilizationRates", &NvmlDeviceAnswers::utilization,
              [&](const nvml::Api& api) { return api.deviceGetUtilizationRates(device, &utilization); }))
      return;
    worker.Store([&] { out.utilizationValue = utilization; });
    int pstate = nvml::kPstateUnknown;
    if (!step("nvmlDeviceGetPerformanceState", &NvmlDeviceAnswers::performanceState,
              [&](const nvml::Api& api) { return api.deviceGetPerformanceState(device, &pstate); }))
      return;
    worker.Store([&] { out.performanceStateValue = pstate; });
    unsigned int power = 0;
    if (!step("nvmlDeviceGetPowerUsage", &NvmlDeviceAnswers::power,
              [&](const nvml::Api& api) { return api.deviceGetPowerUsage(device, &power); }))
      return;
    worker.Store([&] { out.powerValue = power; });
    nvml::Memory memory{};
    if (!step("nvmlDeviceGetMemoryInfo", &NvmlDeviceAnswers::memory,
              [&](const nvml::Api& api) { return api.deviceGetMemoryInfo(device, &memory); }))
      return;
    worker.Store([&] { out.memoryValue = memory; });
    unsigned int minor = 0;
    if (!step("nvmlDeviceGetMinorNumber", &NvmlDeviceAnswers::minorNumber,
              [&](const nvml::Api& api) { return api.deviceGetMinorNumber(device, &minor); }))
      return;
    worker.Store([&] { out.minorNumberValue = minor; });
  });
}

bool NvmlSession::Close(SteadyTime deadline) {
  std::unique_lock<std::mutex> lock(worker_->mutex);
  worker_->stop = true;
  worker_->wake.notify_one();
  const bool exited = worker_->finished.wait_until(lock, deadline, [&] { return worker_->exited; });
  lock.unlock();
  if (!exited) {
    abandoned_ = true;
    return false;
  }
  if (thread_.joinable()) thread_.join();
  return true;
}

bool NvmlSession::Finished() {
  {
    std::lock_guard<std::mutex> lock(worker_->mutex);
    if (!worker_->exited) return false;
  }
  if (thread_.joinable()) thread_.join();  // it has nothing left to do but return
  return true;
}

std::optional<NvmlCallInFlight> NvmlSession::InFlight() const {
  std::lock_guard<std::mutex> lock(worker_->mutex);
  if (worker_->inFlight == nullptr) return std::nullopt;
  return NvmlCallInFlight{worker_->inFlight, worker_->inFlightSince};
}

}  // namespace iokitsnap
