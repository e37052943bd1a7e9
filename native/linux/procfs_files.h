// The file-level plumbing of the procfs thread sampler: an owning fd, the
// per-thread files it reads, and reads that say why they failed in the terms the
// sampler acts on (the thread is gone, access is denied, something else).
// Everything is openat()-relative to directory fds, into caller-owned buffers:
// no path strings, no iostreams, no allocation per file.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <string_view>
#include <vector>

namespace iokitsnap {
namespace procfs {

class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~ScopedFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// The per-thread files, in the order a sampler that keeps fds gives them out:
// schedstat first, because it decides whether the others need reading at all.
// `sched` (se.exec_start, for offCpuNs) comes last: a sampler never keeps an fd for it.
enum class TaskFile : uint8_t { Schedstat, Stat, Status, Syscall, Wchan, Stack, Sched };
constexpr size_t kTaskFileCount = 7;
const char* TaskFileName(TaskFile file);

enum class ReadOutcome : uint8_t {
  Ok,
  Gone,    // ENOENT/ESRCH: the thread (or the process) no longer exists
  Denied,  // EACCES/EPERM: ptrace access check, file mode, hidepid
  Failed,  // anything else (errno kept by the caller)
};
ReadOutcome OutcomeOf(int error);

// Where a read lands: a fixed array (every procfs file here fits it), and a heap
// string only for a file that does not. `text` views whichever holds the bytes.
struct ReadBuffer {
  char bytes[8192];
  std::string overflow;
  std::string_view text;
};

struct ReadResult {
  ReadOutcome outcome = ReadOutcome::Failed;
  int error = 0;
};

// Open, read, close `<tid>/<file>` relative to the task directory.
ReadResult ReadTaskFileOnce(int taskDirFd, uint64_t tid, TaskFile file, ReadBuffer& buffer);
// Open `<tid>/<file>` for keeping (read with ReadKept); -1 and `*error` on failure.
int OpenTaskFile(int taskDirFd, uint64_t tid, TaskFile file, int* error);
// Open `name` relative to `dirFd` for keeping; -1 and `*error` on failure.
int OpenFileAt(int dirFd, const char* name, int* error);
// Re-read a kept file from offset 0 (pread at 0 regenerates a seq_file).
ReadResult ReadKept(int fd, ReadBuffer& buffer);
// Open, read, close `name` relative to `dirFd`.
ReadResult ReadFileAt(int dirFd, const char* name, ReadBuffer& buffer);

// Numeric entries of an open /proc directory (tids of a task dir), in kernel
// order, through getdents64 into `scratch`. Rewinds first, so the same fd can be
// listed again. Returns 0 or an errno (ENOENT once the process is gone).
int ListNumericEntries(int dirFd, std::vector<char>& scratch, std::vector<uint64_t>& out);

// readlinkat(taskDirFd, "<tid>/fd/<n>") → "/dev/nvidia0", "pipe:[123]"; false when
// unreadable. Through the thread's own directory: once the main thread has exited
// (pthread_exit), /proc/<pid>/fd is empty while the other threads' fds live on.
bool ReadFdTarget(int taskDirFd, uint64_t tid, int64_t fd, std::string& target);

// Runs `work` on a detached thread and waits at most `timeoutMs` for its result: the
// work may block for ever (a file on a dead NFS mount, a hung target's mmap lock).
// nullopt on timeout, and the thread finishes on its own, so `work` must own (capture
// by value) everything it touches. Throws std::system_error when no thread can start.
template <typename Result, typename Work>
std::optional<Result> RunWithDeadline(Work work, uint32_t timeoutMs) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Result> result;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, work = std::move(work)]() mutable {
    Result result = work();
    std::lock_guard<std::mutex> lock(shared->mutex);
    shared->result = std::move(result);
    shared->done.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(shared->mutex);
  if (!shared->done.wait_for(lock, std::chrono::milliseconds(timeoutMs), [&] { return shared->result.has_value(); }))
    return std::nullopt;
  return std::move(shared->result);
}

// Reads up to `size` bytes from the start of `name` under `dirFd` on a helper thread,
// and waits at most `timeoutMs` for them: the file may sit on a file system that hangs
// (the executable of a hung process on a dead NFS mount). Returns 0 with `*got` set,
// an errno, or ETIMEDOUT, in which case the helper is left to finish on its own with
// its own copy of the fd and buffer.
int ReadHeadWithDeadline(int dirFd, const char* name, unsigned char* out, size_t size, size_t* got,
                         uint32_t timeoutMs);
// The same for up to `maxBytes` of the file, read in order into `*out` (a maps file).
int ReadWithDeadline(int dirFd, const char* name, size_t maxBytes, uint32_t timeoutMs, std::string* out);

// "<n>/<suffix>" or "<n>" into `out` (at least 48 bytes); returns `out`.
char* FormatEntryPath(char* out, uint64_t number, const char* suffix);

}  // namespace procfs
}  // namespace iokitsnap
