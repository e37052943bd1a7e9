// One NVML session: the dlopen handle and nvmlInit_v2, owned by one helper thread
// that makes every NVML call, so the thread that samples can stop waiting at a deadline.
//
// NVML calls can block for a long time, or forever, on a GPU that fell off the bus
// or a wedged driver: exactly the machines this tool is pointed at. A session lives
// across samples (nvmlInit costs tens to hundreds of ms on real hosts) and answers in
// few handoffs: Open (dlopen + nvmlInit_v2, or nvmlShutdown + nvmlInit_v2 to re-init)
// and QueryDevice (every call about one device) are one handoff each, with one
// deadline for the whole batch.
//
// A handoff that misses its deadline abandons the session: the helper is told to stop,
// and it owns (through a shared_ptr) everything it can still touch, the dlopen handle
// included. If the stuck call ever returns, the helper asks nothing more, shuts NVML
// down and exits on its own; Finished() says when it has.
//
// This layer only records what NVML answered; nvml_context.cc decides what it means.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "nvml_api.h"

namespace iokitsnap {

using SteadyTime = std::chrono::steady_clock::time_point;

struct NvmlCallAnswer {
  nvml::Return code = nvml::kErrorUnknown;
  std::string message;  // nvmlErrorString, when code is not success
};

struct NvmlOpenAnswers {
  std::string dlopenError;                 // non-empty: the library was not usable
  std::optional<NvmlCallAnswer> shutdown;  // a re-init shut the old NVML down first
  std::optional<NvmlCallAnswer> init;
};

// What NVML answered about one device, call by call; a call that was not made
// (an earlier answer ended the batch, or the batch was abandoned) stays empty.
struct NvmlDeviceAnswers {
  std::optional<NvmlCallAnswer> handle;  // nvmlDeviceGetHandleByPciBusId_v2
  std::optional<NvmlCallAnswer> count;   // nvmlDeviceGetCount_v2, only after the handle lookup failed
  unsigned int countValue = 0;
  std::optional<NvmlCallAnswer> name;
  std::string nameValue;
  std::optional<NvmlCallAnswer> utilization;
  nvml::Utilization utilizationValue{};
  std::optional<NvmlCallAnswer> performanceState;
  int performanceStateValue = nvml::kPstateUnknown;
  std::optional<NvmlCallAnswer> power;
  unsigned int powerValue = 0;
  std::optional<NvmlCallAnswer> memory;
  nvml::Memory memoryValue{};
  std::optional<NvmlCallAnswer> minorNumber;
  unsigned int minorNumberValue = 0;
};

// The NVML call the helper thread is inside, and since when.
struct NvmlCallInFlight {
  std::string call;
  SteadyTime since;
};

// An answer that ends the questions about a device (and, for the session, asks for a
// re-init on the next sample): the GPU is lost, needs a reset, or NVML lost its state.
bool EndsDeviceQuery(nvml::Return code);

class NvmlSession {
 public:
  struct Worker;  // what the helper thread shares (nvml_session.cc)

  // Starts the helper thread (std::system_error when the process cannot have one);
  // nothing is loaded until Open.
  explicit NvmlSession(std::string library);
  // Asks the helper to stop; joins it when it already has, else detaches it (it
  // shuts NVML down and exits by itself). Call Close first to wait a bounded time.
  ~NvmlSession();
  NvmlSession(const NvmlSession&) = delete;
  NvmlSession& operator=(const NvmlSession&) = delete;

  const std::string& library() const { return library_; }
  bool abandoned() const { return abandoned_; }

  // One handoff each; false when `deadline` came first (the session is then abandoned
  // and the answers hold what NVML said before). `reinit`: nvmlShutdown the current
  // NVML before nvmlInit_v2.
  bool Open(bool reinit, SteadyTime deadline, NvmlOpenAnswers& answers);
  bool QueryDevice(const std::string& busId, SteadyTime deadline, NvmlDeviceAnswers& answers);

  // Asks the helper to shut NVML down and exit, and waits until `deadline`; true when it
  // finished (and was joined). False: it is stuck in a call, and the session is abandoned.
  bool Close(SteadyTime deadline);
  // Whether the helper thread has exited (it is joined then). For an abandoned session:
  // the stuck call returned, and NVML was shut down.
  bool Finished();
  // The call the helper thread is inside now, if any.
  std::optional<NvmlCallInFlight> InFlight() const;

 private:
  template <typename Answers, typename Task>
  bool Run(SteadyTime deadline, Answers& answers, Task task);

  std::string library_;
  std::shared_ptr<Worker> worker_;
  std::thread thread_;
  bool abandoned_ = false;
};

}  // namespace iokitsnap
