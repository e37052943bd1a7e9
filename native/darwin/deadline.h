// Run one call that can block on a wedged system (the IOKit power-management
// work loop) on a thread of its own, and stop waiting for it after a deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "../backend.h"

namespace iokitsnap {
namespace darwin {

// Runs `work()` and returns its result, or nullopt when it did not return within
// `timeoutMs` (0: wait as long as it takes). A call that times out is left
// running, detached: `work` must own (by value or shared_ptr) everything it
// touches, because the caller's frame is gone by the time it returns, and its
// result is then dropped with the shared state. Exceptions from `work` propagate.
// Throws SnapError EAGAIN when no thread can be started.
template <typename Work>
auto RunWithDeadline(uint32_t timeoutMs, Work work) -> std::optional<decltype(work())> {
  using Result = decltype(work());
  if (timeoutMs == 0) return work();

  struct Shared {
    std::mutex mutex;
    std::condition_variable finished;
    bool done = false;
    std::optional<Result> result;
    std::exception_ptr error;
  };
  auto shared = std::make_shared<Shared>();
  std::thread worker;
  try {
    worker = std::thread([shared, work = std::move(work)]() mutable {
      std::optional<Result> result;
      std::exception_ptr error;
      try {
        result.emplace(work());
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(shared->mutex);
      shared->result = std::move(result);
      shared->error = error;
      shared->done = true;
      shared->finished.notify_all();
    });
  } catch (const std::system_error& e) {
    throw SnapError("EAGAIN", std::string("could not start a thread for a call with a deadline: ") + e.what());
  }

  std::unique_lock<std::mutex> lock(shared->mutex);
  if (!shared->finished.wait_for(lock, std::chrono::milliseconds(timeoutMs), [&] { return shared->done; })) {
    lock.unlock();
    worker.detach();  // it holds only `shared` and what `work` owns
    return std::nullopt;
  }
  lock.unlock();
  worker.join();
  if (shared->error) std::rethrow_exception(shared->error);
  return std::move(shared->result);
}

}  // namespace darwin
}  // namespace iokitsnap
