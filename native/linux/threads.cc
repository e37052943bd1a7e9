// Linux thread sampling from /proc/<pid>/task/<tid>/: the one-shot SampleThreads
// and the reusable ThreadSampler (kept fds, pread; see ProcfsThreadSampler).
//
// Never read here: cmdline, environ, maps. They take the target's mmap lock, and
// a target hung with that lock held would hang the tool that came to diagnose it.
// Only user stacks (options.stacks, user_stacks.cc) read maps, on a thread of their
// own with a deadline.
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
#include "user_stacks.h"

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
using procfs::TaskStat;
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

// Between samples it keeps, per thread, one fd per file it reads, and re-reads
// them with pread. Every sample reads every thread's `stat` (state, name, CPU
// times) and, at full detail, its `schedstat`: what a sample reports as a
// thread's state was read in that sample, never carried over. Only the other
// files (status, syscall, wchan, stack) are reused from the last full read, and
// only when all of this holds:
//   - schedstat shows neither more CPU time nor another timeslice: the thread
//     has not been given a CPU since that read (pcount counts every arrival on
//     a CPU, and sum_exec_runtime grows when it leaves one). Those files were
//     read after that schedstat, so they describe the same stretch of sleep.
//   - the state letter read now is the one of the last full read, and is not R.
//     A sleeper that was woken but has not reached a CPU reads R (its wchan and
//     syscall files change then: "0" and "running"), and a thread stopped or
//     continued changes its letter, so either makes this a full read.
// syscall, wchan and the kernel stack are the thread's own saved kernel state:
// they change only when it runs, or on the wake-up the letter shows. The
// context-switch counts in status can lag by the one switch-out that was in
// progress (after the runtime was charged, before the count) during the last
// full read, and are corrected by the next full read.
//
// offCpuNs costs one more file, `sched`, for which no fd is kept: it is read only for
// a thread that has not run since the previous sample (schedstat's CPU time and
// timeslice count unchanged) and is not R, once, when it is first seen so (or first
// seen at all); its se.exec_start is then kept and measured against each sample's
// clock until the thread runs again. A thread that ran since the previous sample has
// no offCpuNs in that sample: it was on a CPU within the interval.
//
// Threads are known by tid and, against tid reuse, by start time (stat field
// 22). Their state lives in a map keyed by tid and is looked up there each time;
// nothing holds on to a thread across samples by position, and a thread not
// seen in a sample is forgotten at its end (fds closed, entry erased), and its
// tid dropped from the listing.
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
    const size_t budget = options.maxOpenFiles != 0 ? options.maxOpenFiles : DefaultFdBudget();
    keptFdBudget_ = budget > kDirectoryFds ? budget - kDirectoryFds : 0;
  }

  ProcessRecord Sample() override {
    if (closed_) throw SnapError("EINVAL", "this thread sampler is closed; create a new one");
    // The task directory is listed again only when the set of threads may have
    // changed: the group's thread count moved, or a thread was found gone (an
    // exit plus a creation keeps the count but shows up as a gone thread).
    // With chosen tids, the choice is taken again each sample: O(its length), no listing.
    if (options_.tids || ThreadCount() != tids_.size()) Relist();
    ++generation_;
    ProcessRecord record;
    record.pid = pid_;
    record.sampledAtNs = MonotonicNs();
    record.threads.reserve(tids_.size());
    SampleProblems problems;
    schedNow_ = options_.detail == ThreadDetail::Full ? procfs::ReadSchedNow(options_.procRoot, buffer_, problems)
                                                      : std::nullopt;
    if (SampleListed(problems, record)) {
      // Pick up what replaced them in this same sample (they come last).
      Relist();
      SampleListed(problems, record);
    }
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->second.seen != generation_) {
        Forget(it->second);
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    // A tid whose thread was not seen is dropped, so the next count check
    // relists unless the threads seen are exactly the process's threads.
    tids_.erase(std::remove_if(tids_.begin(), tids_.end(), [this](uint64_t tid) { return threads_.count(tid) == 0; }),
                tids_.end());
    if (record.threads.empty()) Relist();  // ESRCH when the whole process went away
    FinishRecord(pid_, dirs_, options_, problems, record);
    if (options_.stacks) stacks::AddUserStacks(pid_, options_, stackState_, record);
    return record;
  }

  void Close() override {
    closed_ = true;
    for (auto& entry : threads_) Forget(entry.second);
    threads_.clear();
    tids_.clear();
    processStat_.reset();
    dirs_ = ProcessDirs();
  }

  ~ProcfsThreadSampler() override { Close(); }

 private:
  struct Tracked {
    ScopedFd files[kTaskFileCount];
    ThreadRecord last;        // the record of the last full read
    SampleProblems problems;  // what that read could not get, reported again when reused
    SchedStat sched{};        // schedstat as of `last`
    uint64_t startTicks = 0;  // stat field 22: with the tid, which thread this is
    std::optional<uint64_t> execStart;  // se.exec_start, read since the thread last ran (see the class comment)
    std::optional<uint32_t> execStartCpu;  // the CPU whose clock it is in (stat field 39 when read)
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
    tracked.execStart.reset();
  }

  // R: on a CPU or woken and waiting for one; Unknown: a letter we cannot judge.
  static bool MayChangeWithoutRunning(ThreadState state) {
    return state == ThreadState::Running || state == ThreadState::Runnable || state == ThreadState::Unknown;
  }

  // num_threads of the group, from the leader's stat re-read through a kept fd.
  size_t ThreadCount() {
    if (!processStat_) return SIZE_MAX;
    const ReadResult result = procfs::ReadKept(processStat_.get(), buffer_);
    if (result.outcome != ReadOutcome::Ok) return SIZE_MAX;  // relisting tells a gone process (ESRCH)
    const auto stat = procfs::ParseTaskStat(buffer_.text);
    return stat && stat->numThreads != 0 ? static_cast<size_t>(stat->numThreads) : SIZE_MAX;
  }

  void Relist() { procfs::ChooseThreads(pid_, dirs_, options_, direntScratch_, tids_); }

  // Samples the listed threads not sampled yet in this generation; true when one was gone.
  bool SampleListed(SampleProblems& problems, ProcessRecord& record) {
    bool anyGone = false;
    for (const uint64_t tid : tids_) {
      Tracked& tracked = threads_[tid];  // a new entry for a thread seen the first time
      if (tracked.seen == generation_ || tracked.gone == generation_) continue;
      ThreadRecord thread;
      if (SampleThread(tid, tracked, problems, thread)) {
        tracked.seen = generation_;
        record.threads.push_back(std::move(thread));
      } else {
        tracked.gone = generation_;
        anyGone = true;
      }
    }
    return anyGone;
  }

  static bool HasKeptFd(const Tracked& tracked) {
    return std::any_of(std::begin(tracked.files), std::end(tracked.files), [](const ScopedFd& fd) { return bool(fd); });
  }

  // One thread; false when it is gone. A kept fd stays bound to the thread it was
  // opened for, so one that reports the thread gone while its tid is listed means
  // the tid was reused: start over once, fresh.
  bool SampleThread(uint64_t tid, Tracked& tracked, SampleProblems& problems, ThreadRecord& out) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool hadKept = HasKeptFd(tracked);
      const Try result = TrySample(tid, tracked, problems, out);
      if (result == Try::Ok) return true;
      if (result == Try::Gone && !hadKept) return false;
      Forget(tracked);
    }
    return false;
  }

  enum class Try { Ok, Gone, OtherThread };

  Try TrySample(uint64_t tid, Tracked& tracked, SampleProblems& problems, ThreadRecord& out) {
    KeptReader reader(*this, tracked, tid);
    if (options_.detail == ThreadDetail::Basic) return ReadFull(reader, tracked, nullptr, std::nullopt, problems, tid, out);
    const ReadResult statRead = reader.Read(TaskFile::Stat, buffer_);
    if (statRead.outcome == ReadOutcome::Gone) return Try::Gone;
    std::optional<TaskStat> stat;
    if (statRead.outcome == ReadOutcome::Ok) {
      statText_.assign(buffer_.text);  // the next read reuses buffer_
      stat = procfs::ParseTaskStat(statText_);
    }
    // Another thread under the same tid (through a fresh open): nothing of the old one applies.
    if (stat && tracked.hasLast && stat->startTicks != tracked.startTicks) return Try::OtherThread;
    std::optional<SchedStat> sched;
    if (!problems.skips(TaskFile::Schedstat)) {
      const ReadResult result = reader.Read(TaskFile::Schedstat, buffer_);
      if (result.outcome == ReadOutcome::Gone && result.error != ENOENT) return Try::Gone;
      if (result.outcome == ReadOutcome::Ok) {
        sched = procfs::ParseSchedStat(buffer_.text);
        if (!sched) problems.malformed[static_cast<size_t>(TaskFile::Schedstat)] = true;
      }
      // Otherwise ReadThread tries again and records why it failed.
    }
    // Whether it ran since the previous sample; unknown for a thread seen the first time, or
    // without a schedstat then or now.
    const Since since = !sched || !tracked.hasLast || !tracked.hasSched ? Since::Unknown
                        : sched->cpuNs == tracked.sched.cpuNs && sched->timeslices == tracked.sched.timeslices
                            ? Since::Still
                            : Since::Ran;
    if (stat && sched && tracked.hasLast && tracked.hasSched && sched->cpuNs != 0 &&
        sched->cpuNs == tracked.sched.cpuNs && sched->timeslices == tracked.sched.timeslices &&
        procfs::StateFromLetter(stat->stateLetter) == tracked.last.state &&
        !MayChangeWithoutRunning(tracked.last.state)) {
      out = tracked.last;
      procfs::ApplyStat(*stat, out);  // state, name and times as read now
      tracked.last.name = out.name;    // a rename by another thread, say
      procfs::MergeProblems(tracked.problems, problems);
      AddOffCpu(tid, tracked, since, problems, out);
      return Try::Ok;
    }
    const Try result = ReadFull(reader, tracked, sched ? &*sched : nullptr,
                                stat ? std::optional<uint64_t>(stat->startTicks) : std::nullopt, problems, tid, out);
    if (result == Try::Ok) AddOffCpu(tid, tracked, since, problems, out);
    return result;
  }

  enum class Since { Ran, Still, Unknown };

  // offCpuNs of a thread sampled at full detail (see the class comment): none when it ran
  // since the previous sample, 0 when R, else now - its kept (or, once, read) exec_start.
  // A kept exec_start is used only while the thread is known not to have run since it was read.
  void AddOffCpu(uint64_t tid, Tracked& tracked, Since since, SampleProblems& problems, ThreadRecord& out) {
    out.offCpuNs.reset();
    if (since != Since::Still) tracked.execStart.reset();
    if (since == Since::Ran) return;
    if (procfs::OnCpuOrQueued(out.state)) {
      out.offCpuNs = 0;
      return;
    }
    if (!schedNow_) return;
    if (!tracked.execStart) {
      procfs::OneShotReader reader(dirs_.task.get(), tid);
      const std::optional<uint64_t> execStart = procfs::ReadExecStart(reader, buffer_, problems);
      if (!execStart) return;
      out.offCpuNs = procfs::OffCpuOn(*schedNow_, out.lastCpu, *execStart, problems);
      if (*execStart == 0) return;  // queued to run: read again when still
      tracked.execStart = execStart;
      tracked.execStartCpu = out.lastCpu;
      return;
    }
    out.offCpuNs = procfs::OffCpuOn(*schedNow_, tracked.execStartCpu, *tracked.execStart, problems);
  }

  // Every file the options ask for, through `reader`; at full detail the result
  // becomes the thread's last full read. Throws when even stat is denied.
  Try ReadFull(KeptReader& reader, Tracked& tracked, const SchedStat* sched, std::optional<uint64_t> startTicks,
               SampleProblems& problems, uint64_t tid, ThreadRecord& out) {
    out = ThreadRecord();
    out.tid = tid;
    SampleProblems seen = problems;
    const ThreadReadStatus status = procfs::ReadThread(reader, dirs_, options_, sched, buffer_, seen, out);
    problems = seen;
    if (status == ThreadReadStatus::Denied)
      ThrowStatDenied(pid_, options_, seen.deniedError[static_cast<size_t>(TaskFile::Stat)]);
    if (status == ThreadReadStatus::Gone) return Try::Gone;
    if (options_.detail == ThreadDetail::Full && startTicks) {
      tracked.last = out;
      tracked.problems = seen;
      tracked.startTicks = *startTicks;
      tracked.hasLast = true;
      tracked.hasSched = sched != nullptr;
      if (sched) tracked.sched = *sched;
    }
    return Try::Ok;
  }

  int32_t pid_;
  ThreadOptions options_;
  ProcessDirs dirs_;
  ScopedFd processStat_;  // the leader's task/<pid>/stat
  bool closed_ = false;
  size_t keptFdBudget_ = 0;
  size_t keptFds_ = 0;
  uint64_t generation_ = 0;
  std::unordered_map<uint64_t, Tracked> threads_;  // by tid; see the class comment
  std::vector<char> direntScratch_;
  std::vector<uint64_t> tids_;  // the last listing, in kernel order, less the tids found gone
  ReadBuffer buffer_;
  std::string statText_;  // this thread's stat text, kept while the other files are read
  std::optional<procfs::SchedClocks> schedNow_;  // this sample's scheduler clocks (procfs::ReadSchedNow)
  stacks::StackState stackState_;  // the ELF files user stacks have read, kept between samples
};

}  // namespace

ProcessRecord SampleThreads(int32_t pid, const ThreadOptions& options) {
  const ProcessDirs dirs = procfs::OpenProcessDirs(pid, options.procRoot);
  std::vector<char> scratch;
  std::vector<uint64_t> tids;
  procfs::ChooseThreads(pid, dirs, options, scratch, tids);
  ProcessRecord record;
  record.pid = pid;
  record.sampledAtNs = MonotonicNs();
  record.threads.reserve(tids.size());
  ReadBuffer buffer;
  SampleProblems problems;
  // Read before the threads: one read after `now` can only come out shorter (0 at worst).
  const std::optional<procfs::SchedClocks> schedNow =
      options.detail == ThreadDetail::Full ? procfs::ReadSchedNow(options.procRoot, buffer, problems) : std::nullopt;
  for (const uint64_t tid : tids) {
    procfs::OneShotReader reader(dirs.task.get(), tid);
    ThreadRecord thread;
    thread.tid = tid;
    switch (procfs::ReadThread(reader, dirs, options, nullptr, buffer, problems, thread)) {
      case ThreadReadStatus::Ok:
        if (options.detail == ThreadDetail::Full) procfs::AddOffCpu(reader, schedNow, buffer, problems, thread);
        record.threads.push_back(std::move(thread));
        break;
      case ThreadReadStatus::Gone: break;
      case ThreadReadStatus::Denied: ThrowStatDenied(pid, options, problems.deniedError[static_cast<size_t>(TaskFile::Stat)]);
    }
  }
  // Every thread vanished: the process exited mid-sample (ChooseThreads says ESRCH).
  if (record.threads.empty()) procfs::ChooseThreads(pid, dirs, options, scratch, tids);
  FinishRecord(pid, dirs, options, problems, record);
  if (options.stacks) {
    stacks::StackState stackState;
    stacks::AddUserStacks(pid, options, stackState, record);
  }
  return record;
}

std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t pid, const ThreadOptions& options) {
  return std::make_unique<ProcfsThreadSampler>(pid, options);
}

}  // namespace iokitsnap
