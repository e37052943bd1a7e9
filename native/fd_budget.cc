#include "fd_budget.h"

#include <sys/resource.h>

#include <atomic>

namespace iokitsnap {
namespace {

// What every environment's samplers hold together: Worker threads each have a
// budget of their own, and must not each take half the process's fds.
std::atomic<size_t>& ProcessHeld() {
  static auto* held = new std::atomic<size_t>(0);  // never destroyed: probe threads may outlive statics
  return *held;
}

}  // namespace

size_t FdBudget::SoftLimit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  return limit.rlim_cur == RLIM_INFINITY ? size_t{1} << 20 : static_cast<size_t>(limit.rlim_cur);
}

size_t FdBudget::DefaultCapacity() {
  const size_t half = SoftLimit() / 2;
  return half < 16 ? 16 : half;
}

FdBudget::~FdBudget() {
  // Whatever a leaked sampler still counts goes back to the process's share.
  ProcessHeld().fetch_sub(held_);
}

size_t FdBudget::Capacity() const { return fixed_ != 0 ? fixed_ : DefaultCapacity(); }

size_t FdBudget::Held() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return held_;
}

bool FdBudget::TryAcquire(size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (held_ + count > Capacity()) return false;
  const size_t processCapacity = DefaultCapacity();
  size_t seen = ProcessHeld().load();
  do {
    if (seen + count > processCapacity) return false;
  } while (!ProcessHeld().compare_exchange_weak(seen, seen + count));
  held_ += count;
  return true;
}

void FdBudget::Charge(size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  held_ += count;
  ProcessHeld().fetch_add(count);
}

void FdBudget::Release(size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (count > held_) count = held_;
  held_ -= count;
  ProcessHeld().fetch_sub(count);
}

}  // namespace iokitsnap
