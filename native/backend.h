// The one interface every OS backend implements (native/linux/, native/darwin/).
// Backends return plain records from model.h and report failure by throwing
// SnapError; they never see a Napi:: type.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fd_budget.h"
#include "model.h"

namespace iokitsnap {

// A failure with a machine-readable code (ESRCH, EPERM, ENOTSUP, EINVAL,
// ETIMEDOUT, EIO) and a message that tells the user what to do.
class SnapError : public std::runtime_error {
 public:
  SnapError(std::string code, const std::string& message, std::string syscall = "", int64_t kern = 0)
      : std::runtime_error(message), code_(std::move(code)), syscall_(std::move(syscall)), kern_(kern) {}
  const std::string& code() const { return code_; }
  const std::string& syscall() const { return syscall_; }
  int64_t kern() const { return kern_; }  // kern_return_t on macOS, errno on Linux, 0 when none

 private:
  std::string code_;
  std::string syscall_;
  int64_t kern_;
};

struct AcceleratorOptions {
  std::string sysRoot = "/sys";   // Linux: a fixture tree can stand in for /sys
  bool nvml = true;               // Linux: query NVML (dlopen) for NVIDIA devices
  std::string nvmlLibrary = "libnvidia-ml.so.1";  // Linux: what to dlopen (tests load a fake)
  uint32_t callTimeoutMs = 2000;  // deadline for each call that can block (NVML, IOPowerManagement)
  uint32_t callBudgetMs = 4000;   // Linux: all NVML time of one sample, from its start (the JS layer
                                  // passes 80 % of timeoutMs, so a stuck call never outlasts the probe)
};

enum class ThreadDetail { Basic, Full };

struct ThreadOptions {
  ThreadDetail detail = ThreadDetail::Full;
  bool stacks = false;         // user stacks (macOS: suspends one thread at a time, briefly)
  bool kernelStacks = true;    // Linux /proc/<pid>/task/<tid>/stack, when readable
  std::string procRoot = "/proc";
  uint32_t maxStackDepth = 128;
  uint32_t maxOpenFiles = 0;   // sampler: fds it may keep open, at most (0: only the shared budget limits it)
  uint32_t stackBudgetMs = 6000;  // Linux: all user-stack work of one sample (the JS layer passes 60 % of timeoutMs)
  // macOS: deadline for asking for the target's task port (task_read_for_pid/task_for_pid,
  // which for a non-root caller wait on taskgated); 0 waits as long as it takes. The JS
  // layer passes a share of timeoutMs, so a hung taskgated yields a limit, not a lost sample.
  uint32_t callTimeoutMs = 2000;
  // Samplers: the fds they may keep between samples, shared by every sampler of one JS
  // environment (the addon's instance data); null: a budget of this sampler's own.
  std::shared_ptr<FdBudget> fdBudget;
  // Linux: sample only these threads of the process, in this order, once each; a tid that
  // is not one of its threads is left out. Unset: every thread. (macOS: filtered in JS.)
  std::optional<std::vector<uint64_t>> tids;
};

// What a backend keeps between the accelerator samples of one JS environment (Linux:
// the NVML session, and whether an earlier NVML call is still stuck, so a wedged driver
// costs one abandoned thread, not one per sample). Each backend defines the struct; it
// must be safe for concurrent samples. Held by the addon's per-environment data and by
// in-flight probes (shared_ptr: a stuck probe may outlive its environment).
struct AcceleratorContext;
std::shared_ptr<AcceleratorContext> NewAcceleratorContext();

AcceleratorSampleRecord SampleAccelerators(const AcceleratorOptions& options,
                                           const std::shared_ptr<AcceleratorContext>& context);
ProcessRecord SampleThreads(int32_t pid, const ThreadOptions& options);
HostRecord ReadHost();
uint64_t MonotonicNs();

// Repeated sampling of one process: keeps per-thread handles between samples.
// Sample(), Close() and ReleaseHeld() are never called concurrently on one sampler (the glue serialises them).
class ThreadSampler {
 public:
  virtual ~ThreadSampler() = default;
  virtual ProcessRecord Sample() = 0;
  virtual void Close() = 0;
  // Gives back what it keeps between samples (fds), staying usable: the next Sample()
  // opens again what it needs. For a sampler left idle, so that one its owner forgot to
  // close holds nothing until a garbage collection finds it.
  virtual void ReleaseHeld() {}
};
std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t pid, const ThreadOptions& options);

}  // namespace iokitsnap
