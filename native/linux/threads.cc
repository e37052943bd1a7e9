// Linux thread sampling from /proc/<pid>/task/<tid>/: the one-shot SampleThreads
// and the reusable ThreadSampler (kept fds, pread, re-reads only of threads that ran).
//
// Never read here: cmdline, environ, maps. They take the target's mmap lock, and
// a target hung with that lock held would hang the tool that came to diagnose it.
#include <errno.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "../backend.h"
#include "procfs_thread.h"

namespace iokitsnap {
namespace {

using procfs::kTaskFileCount;
using procfs::ProcessDirs;
using procfs::ReadBuffer;
using procfs::ReadOutcome;
using procfs::ReadResult;
using procfs::SampleProblems;
using procfs::SchedStat;
using procfs::ScopedFd;
using procfs::TaskFile;
using procfs::ThreadReadStatus;

[[noreturn]] void ThrowStatDenied(int32_t pid, const ThreadOptions& options, int error) {
  throw SnapError("EPERM",
                  "cannot read the threads of pid " + std::to_string(pid) + " under " + options.procRoot + ": " +
                      std::string(error == EPERM ? "operation not permitted" : "permission denied") +
                      ". Run iokit-snap as the user that owns the process, or as root.",
                  "read", error);
}

void FinishRecord(int32_t pid, const ProcessDirs& dirs, const ThreadOptions& options,
                  const SampleProblems& problems, ProcessRecord& record) {
  record.name = procfs::ProcessName(pid, dirs, options.procRoot, record.threads);
  procfs::CompleteProcess(dirs, record);
  procfs::AppendLimits(pid, options, problems, record.limits);
}

// ---------------------------------------------------------------- reusable sampler

// Fds a sampler keeps when the caller does not say: half the soft RLIMIT_NOFILE,
// leaving the other half to the program that embeds us.
size_t DefaultFdBudget() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 256;
  const rlim_t soft = limit.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : limit.rlim_cur;
  return static_cast<size_t>(soft / 2);
}

// The sampler keeps these open for the process itself: <pid> (for fd/N links),
// <pid>/task, and the leader's task/<pid>/stat (the group's thread count).
constexpr size_t kDirectoryFds = 3;

// Between samples it keeps, per thread, one fd per file it reads and re-reads
// them with pread. What a thread that has not run since the last sample shows
// cannot have changed, so:
//   - when the CPU clock of the whole process did not move (a hung or idle
//     process), no thread ran, and every previous record is reused as it is;
//   - otherwise each thread's schedstat is re-read first, and only a thread
//     whose CPU time or timeslice count moved has its other files re-read.
// Two things change without the thread running and are seen once it runs: a
// wake-up that has not reached a CPU (S → R), and a rename by another thread.
// The process clock may also lag a thread that started running less than a
// scheduler tick ago. Threads that were running are always re-read.
class ProcfsThreadSampler final : public ThreadSampler {
 public:
  ProcfsThreadSampler(int32_t pid, const ThreadOptions& options)
      : pid_(pid), options_(options), dirs_(procfs::OpenProcessDirs(pid, options.procRoot)) {
    dirs_.root.reset();  // not needed after opening; one fd fewer held
    // The leader's own stat carries the group's num_threads without summing the
    // CPU times of every thread, as <pid>/stat would.
    int error = 0;
    processStat_.reset(procfs::OpenTaskFile(dirs_.task.get(), static_cast<uint64_t>(pid), TaskFile::Stat, &error));
    Relist();
    // The process CPU clock (sum_exec_runtime of every thread) of any process is
    // readable by anyone; it only means something for the real /proc.
    if (options.procRoot == "/proc" && clock_getcpuclockid(pid, &processClock_) == 0) hasProcessClock_ = true;
    const size_t budget = options.maxOpenFiles != 0 ? options.maxOpenFiles : DefaultFdBudget();
    keptFdBudget_ = budget > kDirectoryFds ? budget - kDirectoryFds : 0;
  }

  ProcessRecord Sample() override {
    if (closed_) throw SnapError("EINVAL", "this thread sampler is closed; create a new one");
    // The task directory is listed again only when the set of threads may have
    // changed: the group's thread count moved, or a thread was found gone (an
    // exit plus a creation keeps the count but shows up as a gone thread).
    const size_t count = ThreadCount();
    const std::optional<uint64_t> processCpu = ProcessCpuNs();
    const bool idle = count == tids_.size() && settled_ && processCpu && lastProcessCpuNs_ == processCpu;
    if (count != tids_.size()) Relist();
    ++generation_;
    ProcessRecord record;
    record.pid = pid_;
    record.sampledAtNs = MonotonicNs();
    record.threads.reserve(tids_.size());
    SampleProblems problems;
    settled_ = true;
    bool anyGone = SampleListed(problems, record, idle);
    if (anyGone) {
      // Pick up what replaced them in this same sample (they come last).
      Relist();
      SampleListed(problems, record, false);
      settled_ = false;
    }
    lastProcessCpuNs_ = processCpu;
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->second->seen != generation_) {
        Forget(*it->second);
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    if (record.threads.empty()) Relist();  // ESRCH when the whole process went away
    FinishRecord(pid_, dirs_, options_, problems, record);
    return record;
  }

  void Close() override {
    closed_ = true;
    for (auto& entry : threads_) Forget(*entry.second);
    threads_.clear();
    processStat_.reset();
    dirs_ = ProcessDirs();
  }

  ~ProcfsThreadSampler() override { Close(); }

 private:
  struct Tracked {
    ScopedFd files[kTaskFileCount];
    ThreadRecord last;       // the record of the last full read
    SampleProblems problems;  // what that read could not get, reported again when reused
    SchedStat sched{};        // schedstat as of `last`
    bool hasLast = false;
    bool hasSched = false;
    uint64_t seen = 0;  // the last generation that sampled it
    uint64_t gone = 0;  // the last generation that found it gone
  };

  // Reads through the thread's kept fds, keeping new ones while the budget lasts.
  class KeptReader final : public procfs::TaskFileReader {
   public:
    KeptReader(ProcfsThreadSampler& sampler, Tracked& tracked, uint64_t tid)
        : sampler_(sampler), tracked_(tracked), tid_(tid) {}

    ReadResult Read(TaskFile file, ReadBuffer& buffer) override {
      ScopedFd& kept = tracked_.files[static_cast<size_t>(file)];
      if (!kept && sampler_.keptFds_ < sampler_.keptFdBudget_) {
        int error = 0;
        kept.reset(procfs::OpenTaskFile(sampler_.dirs_.task.get(), tid_, file, &error));
        if (!kept) {
          ReadResult result;
          result.error = error;
          result.outcome = procfs::OutcomeOf(error);
          // Out of fds after all: read this one once, and keep no more.
          if (error != EMFILE && error != ENFILE) return result;
          sampler_.keptFdBudget_ = sampler_.keptFds_;
        } else {
          ++sampler_.keptFds_;
        }
      }
      if (kept) return procfs::ReadKept(kept.get(), buffer);
      return procfs::ReadTaskFileOnce(sampler_.dirs_.task.get(), tid_, file, buffer);
    }

    bool ThreadExists() override {
      return procfs::OneShotReader(sampler_.dirs_.task.get(), tid_).ThreadExists();
    }

   private:
    ProcfsThreadSampler& sampler_;
    Tracked& tracked_;
    uint64_t tid_;
  };

  void Forget(Tracked& tracked) {
    for (ScopedFd& fd : tracked.files) {
      if (fd) {
        fd.reset();
        --keptFds_;
      }
    }
    tracked.hasLast = false;
    tracked.hasSched = false;
  }

  static bool MayHaveChangedWithoutRunning(const ThreadRecord& last) {
    return last.state == ThreadState::Running || last.state == ThreadState::Runnable ||
           last.state == ThreadState::Unknown;
  }

  // num_threads of the group, from the leader's stat re-read through a kept fd.
  size_t ThreadCount() {
    if (!processStat_) return SIZE_MAX;
    const ReadResult result = procfs::ReadKept(processStat_.get(), buffer_);
    if (result.outcome != ReadOutcome::Ok) return SIZE_MAX;  // relisting tells a gone process (ESRCH)
    const auto stat = procfs::ParseTaskStat(buffer_.text);
    return stat && stat->numThreads != 0 ? static_cast<size_t>(stat->numThreads) : SIZE_MAX;
  }

  // Lists the task directory, and lines up a slot for every listed thread.
  void Relist() {
    procfs::ListThreads(pid_, dirs_, options_.procRoot, direntScratch_, tids_);
    listed_.clear();
    listed_.reserve(tids_.size());
    for (const uint64_t tid : tids_) {
      std::unique_ptr<Tracked>& slot = threads_[tid];
      if (!slot) slot = std::make_unique<Tracked>();
      listed_.push_back(slot.get());
    }
  }

  std::optional<uint64_t> ProcessCpuNs() const {
    struct timespec now {};
    if (!hasProcessClock_ || clock_gettime(processClock_, &now) != 0) return std::nullopt;
    return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
  }

  // Samples the listed threads not sampled yet in this generation; true when one was gone.
  // `idle`: nothing in the process ran since the last sample.
  bool SampleListed(SampleProblems& problems, ProcessRecord& record, bool idle) {
    bool anyGone = false;
    for (size_t i = 0; i < tids_.size(); ++i) {
      Tracked& slot = *listed_[i];
      if (slot.seen == generation_ || slot.gone == generation_) continue;
      ThreadRecord thread;
      if (SampleThread(tids_[i], slot, problems, thread, idle)) {
        slot.seen = generation_;
        settled_ = settled_ && !MayHaveChangedWithoutRunning(slot.last);
        record.threads.push_back(std::move(thread));
      } else {
        slot.gone = generation_;
        anyGone = true;
      }
    }
    return anyGone;
  }

  // One thread; false when it is gone. A kept fd that reports the thread gone
  // while its tid is listed means the tid was reused: start over once, fresh.
  bool SampleThread(uint64_t tid, Tracked& tracked, SampleProblems& problems, ThreadRecord& out, bool idle) {
    if (idle && tracked.hasLast && !MayHaveChangedWithoutRunning(tracked.last)) {
      out = tracked.last;
      procfs::MergeProblems(tracked.problems, problems);
      return true;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      KeptReader reader(*this, tracked, tid);
      const bool hadKept = std::any_of(std::begin(tracked.files), std::end(tracked.files),
                                       [](const ScopedFd& fd) { return bool(fd); });
      std::optional<SchedStat> sched;
      if (options_.detail == ThreadDetail::Full && !problems.skips(TaskFile::Schedstat)) {
        const ReadResult result = reader.Read(TaskFile::Schedstat, buffer_);
        if (result.outcome == ReadOutcome::Gone && result.error != ENOENT) {
          if (hadKept) {
            Forget(tracked);
            continue;
          }
          return false;
        }
        if (result.outcome == ReadOutcome::Ok) {
          sched = procfs::ParseSchedStat(buffer_.text);
          if (!sched) problems.malformed[static_cast<size_t>(TaskFile::Schedstat)] = true;
        }
        // Otherwise ReadThread tries again and records why it failed.
      }
      if (sched && tracked.hasLast && tracked.hasSched && sched->cpuNs != 0 &&
          sched->cpuNs == tracked.sched.cpuNs && sched->timeslices == tracked.sched.timeslices &&
          !MayHaveChangedWithoutRunning(tracked.last)) {
        out = tracked.last;
        procfs::MergeProblems(tracked.problems, problems);
        return true;
      }
      out = ThreadRecord();
      out.tid = tid;
      SampleProblems seen = problems;
      const ThreadReadStatus status = procfs::ReadThread(reader, dirs_, options_,
                                                         sched ? &*sched : nullptr, buffer_, seen, out);
      problems = seen;
      if (status == ThreadReadStatus::Denied) ThrowStatDenied(pid_, options_, seen.deniedError[static_cast<size_t>(TaskFile::Stat)]);
      if (status == ThreadReadStatus::Gone) {
        if (hadKept && attempt == 0) {
          Forget(tracked);
          continue;
        }
        return false;
      }
      tracked.last = out;
      tracked.problems = seen;
      tracked.hasLast = true;
      tracked.hasSched = sched.has_value();
      if (sched) tracked.sched = *sched;
      return true;
    }
    return false;
  }

  int32_t pid_;
  ThreadOptions options_;
  ProcessDirs dirs_;
  ScopedFd processStat_;  // the leader's task/<pid>/stat
  clockid_t processClock_ = 0;
  bool hasProcessClock_ = false;
  std::optional<uint64_t> lastProcessCpuNs_;  // the process CPU clock when the last sample began
  bool settled_ = false;  // every record of the last sample is reusable while nothing runs
  bool closed_ = false;
  size_t keptFdBudget_ = 0;
  size_t keptFds_ = 0;
  uint64_t generation_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Tracked>> threads_;
  std::vector<char> direntScratch_;
  std::vector<uint64_t> tids_;  // the last listing, in kernel order
  std::vector<Tracked*> listed_;  // the slot of each of tids_
  ReadBuffer buffer_;
};

}  // namespace

ProcessRecord SampleThreads(int32_t pid, const ThreadOptions& options) {
  const ProcessDirs dirs = procfs::OpenProcessDirs(pid, options.procRoot);
  std::vector<char> scratch;
  std::vector<uint64_t> tids;
  procfs::ListThreads(pid, dirs, options.procRoot, scratch, tids);
  ProcessRecord record;
  record.pid = pid;
  record.sampledAtNs = MonotonicNs();
  record.threads.reserve(tids.size());
  ReadBuffer buffer;
  SampleProblems problems;
  for (const uint64_t tid : tids) {
    procfs::OneShotReader reader(dirs.task.get(), tid);
    ThreadRecord thread;
    thread.tid = tid;
    switch (procfs::ReadThread(reader, dirs, options, nullptr, buffer, problems, thread)) {
      case ThreadReadStatus::Ok: record.threads.push_back(std::move(thread)); break;
      case ThreadReadStatus::Gone: break;
      case ThreadReadStatus::Denied: ThrowStatDenied(pid, options, problems.deniedError[static_cast<size_t>(TaskFile::Stat)]);
    }
  }
  // Every thread vanished: the process exited mid-sample (ListThreads says ESRCH).
  if (record.threads.empty()) procfs::ListThreads(pid, dirs, options.procRoot, scratch, tids);
  FinishRecord(pid, dirs, options, problems, record);
  return record;
}

std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t pid, const ThreadOptions& options) {
  return std::make_unique<ProcfsThreadSampler>(pid, options);
}

}  // namespace iokitsnap
