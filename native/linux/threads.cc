// Linux thread sampling from /proc/<pid>/task/<tid>/: the one-shot SampleThreads
// and the reusable ThreadSampler (kept fds, pread; see ProcfsThreadSampler).
//
// Never read here: cmdline, environ, maps. They take the target's mmap lock, and
// a target hung with that lock held would hang the tool that came to diagnose it.
// Only user stacks (options.stacks, user_stacks.cc) read maps, on a thread of their
// own with a deadline.
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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

// Threads listed but left out of a sample, and threads read without kept fds: never
// dropped or degraded in silence.
struct ReadShortfall {
  std::vector<uint64_t> unread;  // their stat could not be read (not gone: EMFILE, EIO, …)
  int unreadError = 0;           // the first errno of those
  std::vector<uint64_t> oneShot; // read by open/read/close: the shared fd budget was spent
  size_t budget = 0;             // that budget's capacity
};

// "1, 2, 3, …": the first few.
std::string Tids(const std::vector<uint64_t>& tids) {
  std::string text;
  for (size_t i = 0; i < tids.size() && i < 8; ++i) text += (i == 0 ? "" : ", ") + std::to_string(tids[i]);
  if (tids.size() > 8) text += ", …";
  return text;
}

void AppendShortfall(int32_t pid, const ReadShortfall& shortfall, size_t sampled, std::vector<LimitRecord>& limits) {
  const std::string subject = "pid " + std::to_string(pid);
  const std::string soft = std::to_string(FdBudget::SoftLimit());
  if (!shortfall.unread.empty()) {
    const bool fds = procfs::IsOutOfFds(shortfall.unreadError);
    limits.push_back({subject, "threads", fds ? (shortfall.unreadError == ENFILE ? "ENFILE" : "EMFILE") : "EIO",
                      (shortfall.unread.size() == 1 ? "thread " + Tids(shortfall.unread)
                                                     : std::to_string(shortfall.unread.size()) + " threads (" +
                                                           Tids(shortfall.unread) + ")") +
                          " of this process could not be read (stat: " +
                          procfs::ErrorText(shortfall.unreadError) +
                          "); they exist, and are missing from this sample",
                      fds ? "This process has all the file descriptors its RLIMIT_NOFILE (" + soft +
                                ") allows in use: close files or samplers, or raise the limit (ulimit -n)."
                          : ""});
  }
  if (!shortfall.oneShot.empty()) {
    limits.push_back({subject, "threads", "EMFILE",
                      std::to_string(shortfall.oneShot.size()) + " of " + std::to_string(sampled) + " threads (" +
                          Tids(shortfall.oneShot) +
                          ") were read without kept fds, by opening their files anew: complete, but slower. The fds "
                          "that samplers may keep (" +
                          std::to_string(shortfall.budget) + ", half of RLIMIT_NOFILE " + soft +
                          ", shared by every sampler of this program) are in use, or this process has none left",
                      "Raise the limit (ulimit -n), or sample fewer large processes at once."});
  }
}

void FinishRecord(int32_t pid, const ProcessDirs& dirs, const ThreadOptions& options, SampleProblems& problems,
                  const ReadShortfall& shortfall, ProcessRecord& record) {
  // Said once, per thread, by the shortfall.
  if (!shortfall.unread.empty()) problems.failedError[static_cast<size_t>(TaskFile::Stat)] = 0;
  record.name = procfs::ProcessName(pid, dirs, options.procRoot, record.threads);
  procfs::CompleteProcess(dirs, record);
  procfs::AppendLimits(pid, options, problems, record.limits);
  AppendShortfall(pid, shortfall, record.threads.size() + shortfall.unread.size(), record.limits);
}

// ---------------------------------------------------------------- reusable sampler

// The sampler keeps these open for the process itself: <pid> (for fd/N links),
// <pid>/task, and the leader's task/<pid>/stat (the group's thread count).
constexpr size_t kDirectoryFds = 3;

// Its fds come from a budget shared by every sampler of the JS environment
// (options.fdBudget, see fd_budget.h), and, when the caller gives one, from
// maxOpenFiles. Past what the budget allows, a thread's files are read by
// open/read/close, one transient fd at a time, and the sample says which threads were
// read that way; a thread whose stat cannot be read at all (no fd left in the whole
// process) is named in a limit, never dropped in silence. While more than half the
// budget is in use, new threads keep fds only for the two files every sample reads
// (schedstat and stat), so the budget covers as many threads as it can.
// ReleaseHeld() gives every fd back, the directories too; the next sample opens them
// again and checks, by the leader's start time, that the pid is still the process it
// was opened on.
//
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
      : pid_(pid),
        options_(options),
        budget_(options.fdBudget ? options.fdBudget : std::make_shared<FdBudget>()) {
    options_.fdBudget.reset();  // held once, in budget_
    OpenDirs();
    try {
      if (processStat_ && procfs::ReadKept(processStat_.get(), buffer_).outcome == ReadOutcome::Ok)
        if (const auto stat = procfs::ParseTaskStat(buffer_.text)) leaderStartTicks_ = stat->startTicks;
      Relist();
    } catch (...) {
      ReleaseHeld();  // no destructor runs for a constructor that throws
      throw;
    }
    // maxOpenFiles: the caller's own cap on this sampler, within the shared budget.
    if (options.maxOpenFiles != 0) keptFdCap_ = options.maxOpenFiles > kDirectoryFds ? options.maxOpenFiles - kDirectoryFds : 0;
  }

  ProcessRecord Sample() override {
    if (closed_) throw SnapError("EINVAL", "this thread sampler is closed; create a new one");
    if (!dirs_.task) Reopen();
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
    shortfall_ = ReadShortfall();
    shortfall_.budget = budget_->Capacity();
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
    FinishRecord(pid_, dirs_, options_, problems, shortfall_, record);
    if (options_.stacks) {
      stacks::AddUserStacks(pid_, options_, stackState_, record);
      KeepModulesWithinBudget();
    }
    return record;
  }

  void Close() override {
    closed_ = true;
    ReleaseHeld();
    threads_.clear();
    tids_.clear();
  }

  void ReleaseHeld() override {
    for (auto& entry : threads_) Forget(entry.second);
    stackState_.modules.reset();
    budget_->Release(moduleFds_);
    moduleFds_ = 0;
    budget_->Release(directoryFds_);
    directoryFds_ = 0;
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
      bool shortOfFds = false;
      if (!kept && sampler_.MayKeep(file, &shortOfFds)) {
        int error = 0;
        kept.reset(procfs::OpenTaskFile(sampler_.dirs_.task.get(), tid_, file, &error));
        if (!kept) {
          sampler_.budget_->Release(1);
          ReadResult result;
          result.error = error;
          result.outcome = procfs::OutcomeOf(error);
          // Out of fds after all: read this one once (an fd may free up), and keep no more this sample.
          if (!procfs::IsOutOfFds(error)) return result;
          sampler_.outOfFds_ = sampler_.generation_;
          shortOfFds = true;
        } else {
          ++sampler_.keptFds_;
        }
      }
      if (kept) return procfs::ReadKept(kept.get(), buffer);
      if (file == TaskFile::Stat && shortOfFds) oneShotStat = true;
      return procfs::ReadTaskFileOnce(sampler_.dirs_.task.get(), tid_, file, buffer);
    }

    bool oneShotStat = false;  // its stat was read without a kept fd, for want of one

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
        budget_->Release(1);
      }
    }
    tracked.hasLast = false;
    tracked.hasSched = false;
    tracked.execStart.reset();
  }

  // Whether to keep an fd for `file` of a thread (taking it from the budget when so).
  // `*shortOfFds`: refused because the shared budget is spent, or the process has no fd
  // left (not because of the caller's maxOpenFiles).
  // Once refused, or past half, in a sample, the budget is not asked again in that sample:
  // what other samplers give back meanwhile is taken at the next.
  bool MayKeep(TaskFile file, bool* shortOfFds) {
    if (outOfFds_ == generation_ || budgetSpent_ == generation_) {
      *shortOfFds = true;
      return false;
    }
    if (keptFds_ >= keptFdCap_) return false;
    const bool everySample = file == TaskFile::Schedstat || file == TaskFile::Stat;
    if (!everySample) {
      if (pastHalf_ == generation_) return false;
      if (budget_->Held() * 2 >= budget_->Capacity()) {
        pastHalf_ = generation_;
        return false;
      }
    }
    if (budget_->TryAcquire(1)) return true;
    budgetSpent_ = generation_;
    *shortOfFds = true;
    return false;
  }

  // <pid>, <pid>/task and the leader's stat, counted in the budget whatever it says:
  // without them there is no sample.
  void OpenDirs() {
    dirs_ = procfs::OpenProcessDirs(pid_, options_.procRoot);
    dirs_.root.reset();  // not needed after opening; one fd fewer held
    // The leader's own stat carries the group's num_threads without summing the
    // CPU times of every thread, as <pid>/stat would.
    int error = 0;
    processStat_.reset(procfs::OpenTaskFile(dirs_.task.get(), static_cast<uint64_t>(pid_), TaskFile::Stat, &error));
    directoryFds_ = processStat_ ? 3 : 2;
    budget_->Charge(directoryFds_);
  }

  // After ReleaseHeld: the same process again, or ESRCH when its pid is another's now.
  void Reopen() {
    OpenDirs();
    std::optional<uint64_t> start;
    if (processStat_ && procfs::ReadKept(processStat_.get(), buffer_).outcome == ReadOutcome::Ok)
      if (const auto stat = procfs::ParseTaskStat(buffer_.text)) start = stat->startTicks;
    if (leaderStartTicks_ && start && *start != *leaderStartTicks_) {
      ReleaseHeld();
      procfs::ThrowNoProcess(pid_, options_.procRoot);
    }
    if (!leaderStartTicks_) leaderStartTicks_ = start;
    Relist();
  }

  // The ELF files user stacks keep open between samples count too; past the budget
  // they are let go (read again by the next sample that needs them).
  void KeepModulesWithinBudget() {
    const size_t now = stackState_.modules ? stackState_.modules->HeldFds() : 0;
    if (now > moduleFds_ && !budget_->TryAcquire(now - moduleFds_)) {
      stackState_.modules.reset();
      budget_->Release(moduleFds_);
      moduleFds_ = 0;
      return;
    }
    if (now < moduleFds_) budget_->Release(moduleFds_ - now);
    moduleFds_ = now;
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
      bool oneShot = false;
      switch (SampleThread(tid, tracked, problems, thread, oneShot)) {
        case Try::Ok:
          tracked.seen = generation_;
          if (oneShot) shortfall_.oneShot.push_back(tid);
          record.threads.push_back(std::move(thread));
          break;
        case Try::Unread:
          tracked.seen = generation_;  // there, not read: kept listed
          if (shortfall_.unread.empty()) shortfall_.unreadError = problems.failedError[static_cast<size_t>(TaskFile::Stat)];
          shortfall_.unread.push_back(tid);
          break;
        case Try::Gone:
        case Try::OtherThread:
          tracked.gone = generation_;
          anyGone = true;
          break;
      }
    }
    return anyGone;
  }

  static bool HasKeptFd(const Tracked& tracked) {
    return std::any_of(std::begin(tracked.files), std::end(tracked.files), [](const ScopedFd& fd) { return bool(fd); });
  }

  // One thread: read, gone, or there but not read. A kept fd stays bound to the thread it
  // was opened for, so one that reports the thread gone while its tid is listed means
  // the tid was reused: start over once, fresh.
  enum class Try { Ok, Gone, OtherThread, Unread };

  Try SampleThread(uint64_t tid, Tracked& tracked, SampleProblems& problems, ThreadRecord& out, bool& oneShot) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool hadKept = HasKeptFd(tracked);
      KeptReader reader(*this, tracked, tid);
      const Try result = TrySample(reader, tid, tracked, problems, out);
      oneShot = reader.oneShotStat;
      if (result == Try::Ok || result == Try::Unread) return result;
      if (result == Try::Gone && !hadKept) return Try::Gone;
      Forget(tracked);
    }
    return Try::Gone;
  }

  Try TrySample(KeptReader& reader, uint64_t tid, Tracked& tracked, SampleProblems& problems, ThreadRecord& out) {
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
    if (status == ThreadReadStatus::Unread) return Try::Unread;
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
  std::shared_ptr<FdBudget> budget_;
  ProcessDirs dirs_;
  ScopedFd processStat_;  // the leader's task/<pid>/stat
  std::optional<uint64_t> leaderStartTicks_;  // which process pid_ is (stat field 22 of its leader)
  bool closed_ = false;
  size_t keptFdCap_ = SIZE_MAX;  // maxOpenFiles less the directories, when given
  size_t keptFds_ = 0;           // per-thread fds held (each also counted in budget_)
  size_t directoryFds_ = 0;      // counted in budget_
  size_t moduleFds_ = 0;         // the stack walk's ELF files, counted in budget_
  uint64_t outOfFds_ = 0;        // the generation in which an open failed with EMFILE/ENFILE
  uint64_t budgetSpent_ = 0;     // the generation in which the budget refused an fd
  uint64_t pastHalf_ = 0;        // the generation in which the budget was found over half used
  ReadShortfall shortfall_;      // of the sample being taken
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
  ReadShortfall shortfall;
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
      case ThreadReadStatus::Unread:
        if (shortfall.unread.empty()) shortfall.unreadError = problems.failedError[static_cast<size_t>(TaskFile::Stat)];
        shortfall.unread.push_back(tid);
        break;
      case ThreadReadStatus::Denied: ThrowStatDenied(pid, options, problems.deniedError[static_cast<size_t>(TaskFile::Stat)]);
    }
  }
  // Every thread vanished: the process exited mid-sample (ChooseThreads says ESRCH).
  if (record.threads.empty()) procfs::ChooseThreads(pid, dirs, options, scratch, tids);
  FinishRecord(pid, dirs, options, problems, shortfall, record);
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
