// The file descriptors that thread samplers keep open between samples, counted
// against one budget per JS environment (the addon's instance data) and, since fds
// are a per-process resource, against one share of the process's limit as well.
//
// A sampler keeps fds only while the budget lasts; past it, it reads each file by
// open/read/close (one transient fd), so many samplers of large processes degrade
// to slower reads instead of taking every fd of the program that embeds us.
// Plain C++, safe to use from any thread.
#pragma once

#include <cstddef>
#include <mutex>

namespace iokitsnap {

class FdBudget {
 public:
  // `capacity` 0: half of the soft RLIMIT_NOFILE, read again at each acquire (the
  // program may raise it), leaving the other half to the program that embeds us.
  explicit FdBudget(size_t capacity = 0) : fixed_(capacity) {}
  FdBudget(const FdBudget&) = delete;
  FdBudget& operator=(const FdBudget&) = delete;
  ~FdBudget();

  // Takes `count` fds from this budget and the process's share; false (nothing taken)
  // when either would go past its capacity.
  bool TryAcquire(size_t count);
  // Counts `count` fds that must be held whatever the budget says (a sampler's own
  // directory fds), so that what is left for optional ones stays true.
  void Charge(size_t count);
  void Release(size_t count);

  size_t Capacity() const;
  size_t Held() const;

  // Half the soft RLIMIT_NOFILE (at least 16), and the soft limit itself.
  static size_t DefaultCapacity();
  static size_t SoftLimit();

 private:
  mutable std::mutex mutex_;
  size_t fixed_;
  size_t held_ = 0;
};

}  // namespace iokitsnap
