// The cheap pass of a whole-host scan: see host_scan.h.
#include "host_scan.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "../backend.h"
#include "../blocking.h"
#include "procfs_thread.h"

namespace iokitsnap {
namespace hostscan {
namespace {

using procfs::ReadOutcome;
using procfs::ReadResult;
using procfs::ScopedFd;
using procfs::TaskFile;

// The real uid: the first number of status's "Uid:" line.
int64_t RealUid(std::string_view status) {
  const size_t at = status.find("\nUid:");
  if (at == std::string_view::npos) return -1;
  std::string_view rest = status.substr(at + 5);
  while (!rest.empty() && (rest.front() == '\t' || rest.front() == ' ')) rest.remove_prefix(1);
  uint64_t uid = 0;
  if (!procfs::ConsumeUnsigned(rest, uid)) return -1;
  return static_cast<int64_t>(uid);
}

std::string ErrnoText(int error) { return std::strerror(error); }

// The CPU time of every thread of a process together, exited ones included, in ns: its
// process CPU clock (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)), one syscall and no procfs
// file. Any thread that runs, however briefly, moves it.
std::optional<uint64_t> GroupCpuNs(int32_t pid) {
  const clockid_t id = static_cast<clockid_t>((~static_cast<uint32_t>(pid) << 3) | 2u);
  timespec ts{};
  if (clock_gettime(id, &ts) != 0) return std::nullopt;
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

int OpenDirectoryAt(int dirFd, const char* name, int flags, int* error) {
  const int fd = openat(dirFd, name, flags | O_DIRECTORY | O_CLOEXEC);
  *error = fd < 0 ? errno : 0;
  return fd;
}

}  // namespace

struct Scanner::Thread {
  ScopedFd schedstat;  // kept between passes while the fd budget allows
  procfs::SchedStat last{};
  uint64_t lastNs = 0;
  WaitKey key;  // its wait as of the end of the previous pass, when keyKnown
  bool keyKnown = false;
  bool settled = false;
  // Settled once, and moved since: the settled wait is kept, and a return to it (read once,
  // when the thread is still again) settles it again without a full read.
  bool wasSettled = false;
  int64_t settleNumber = -1;
  bool settleHasArg0 = false;
  uint64_t settleArg0 = 0;
  uint64_t seen = 0;  // the generation that last read it (0: never)
  uint32_t quiet = 0;  // passes in a row it was still or re-waited
};

struct Scanner::Process {
  ScopedFd task;         // <pid>/task, for openat and listing
  ScopedFd leaderStat;   // task/<pid>/stat: the group's thread count, the leader's start time
  size_t chargedFds = 0; // task and leaderStat, counted in the budget
  bool known = false;
  bool kernel = false;
  uint64_t startTicks = 0;
  bool relist = true;
  std::vector<uint64_t> tids;
  std::unordered_map<uint64_t, Thread> threads;
  uint64_t seen = 0;
  // The group's CPU clock at the previous pass (CPUCLOCK_SCHED: every thread's runtime, exited ones' too, in ns).
  bool groupCpuKnown = false;
  uint64_t groupCpuNs = 0;
  // Its leader was stopped, traced or in D at the last full read: every thread a candidate.
  bool forceAll = false;
};

Scanner::Scanner(ScanOptions options)
    : options_(std::move(options)),
      budget_(options_.fdBudget ? options_.fdBudget : std::make_shared<FdBudget>()),
      restartNumber_(-1) {
  options_.fdBudget.reset();
  for (int64_t number = 0; number < 1024; ++number) {
    const char* name = LinuxCallName(HostLinuxAbi(), number);
    if (name != nullptr && std::strcmp(name, "restart_syscall") == 0) {
      restartNumber_ = number;
      break;
    }
  }
}

Scanner::~Scanner() { Close(); }

void Scanner::Close() {
  for (auto& entry : processes_) Forget(*entry.second);
  processes_.clear();
  root_.reset();
}

void Scanner::Forget(Process& process) {
  for (auto& entry : process.threads) {
    if (entry.second.schedstat) {
      entry.second.schedstat.reset();
      budget_->Release(1);
      --keptFds_;
    }
  }
  process.threads.clear();
  process.task.reset();
  process.leaderStat.reset();
  budget_->Release(process.chargedFds);
  keptFds_ -= process.chargedFds;
  process.chargedFds = 0;
}

void Scanner::Settle(std::vector<SettleRequest> requests) {
  std::lock_guard<std::mutex> lock(settleMutex_);
  settles_.insert(settles_.end(), requests.begin(), requests.end());
}

void Scanner::ApplySettles() {
  std::vector<SettleRequest> requests;
  {
    std::lock_guard<std::mutex> lock(settleMutex_);
    requests.swap(settles_);
  }
  for (const SettleRequest& request : requests) {
    auto process = processes_.find(request.pid);
    if (process == processes_.end()) continue;
    if (request.tid == 0) {
      for (auto& entry : process->second->threads) entry.second.settled = false;
      continue;
    }
    auto thread = process->second->threads.find(request.tid);
    if (thread == process->second->threads.end()) continue;
    Thread& t = thread->second;
    t.settled = true;
    t.settleNumber = request.number;
    t.settleHasArg0 = request.hasArg0;
    t.settleArg0 = request.arg0;
  }
}

bool Scanner::OpenProcess(int32_t pid, Process& process, ProcessPass& out) {
  char name[48];
  int error = 0;
  process.task.reset(OpenDirectoryAt(root_.get(), procfs::FormatEntryPath(name, static_cast<uint64_t>(pid), "task"), O_RDONLY, &error));
  if (!process.task) {
    if (error == ENOENT || error == ESRCH) {
      out.status = ProcessPass::Status::Gone;
    } else {
      out.status = ProcessPass::Status::Failed;
      out.code = error == EACCES || error == EPERM ? "EPERM" : procfs::IsOutOfFds(error) ? (error == ENFILE ? "ENFILE" : "EMFILE") : "EIO";
      out.reason = "cannot open " + options_.procRoot + "/" + std::to_string(pid) + "/task: " + ErrnoText(error);
    }
    return false;
  }
  process.leaderStat.reset(procfs::OpenTaskFile(process.task.get(), static_cast<uint64_t>(pid), TaskFile::Stat, &error));
  process.chargedFds = process.leaderStat ? 2 : 1;
  budget_->Charge(process.chargedFds);
  keptFds_ += process.chargedFds;
  return true;
}

std::optional<WaitKey> Scanner::ReadKey(Process& process, uint64_t tid, int32_t pid, PassRecord& record) {
  // A kernel thread has no calls to read: its one wait is "in the kernel".
  if (process.kernel) return WaitKey{0, 0, 0};
  Reading(pid, "syscall");
  ++record.keyReads;
  std::optional<WaitKey> key;
  if (procfs::ReadTaskFileOnce(process.task.get(), tid, TaskFile::Syscall, buffer_).outcome == ReadOutcome::Ok) {
    const auto line = procfs::ParseSyscallLine(buffer_.text);
    if (line && line->kind == procfs::SyscallLine::Kind::InCall) key = WaitKey{line->number, line->args[0], line->pc};
  }
  Reading(pid, "schedstat");
  return key;
}

bool Scanner::SettledWait(const Thread& t, const WaitKey& key) const {
  // restart_syscall is the wait it resumes after a stop (a stack walk's, a SIGSTOP's): the same wait.
  const bool resumed = key.number == restartNumber_;
  const bool sameCall = t.settleNumber == -1 || resumed || key.number == t.settleNumber;
  // A 32-bit argument (an fd, a futex word of a 32-bit process) may come back sign-extended.
  const bool sameArg = !t.settleHasArg0 || resumed || key.arg0 == t.settleArg0 ||
                       (t.settleArg0 <= 0xffffffffu && (key.arg0 & 0xffffffffu) == t.settleArg0);
  return sameCall && sameArg;
}

void Scanner::Classify(Process& process, Thread& t, uint64_t tid, const procfs::SchedStat& now, uint64_t nowNs,
                       ProcessPass& out, PassRecord& record) {
  const uint64_t cpu = now.cpuNs - t.last.cpuNs;
  const bool ran = cpu != 0 || now.timeslices != t.last.timeslices;
  const uint64_t window = nowNs - t.lastNs;
  t.last = now;
  t.lastNs = nowNs;
  if (!ran) {
    ++out.still;
    ++t.quiet;
    if (!t.settled && t.wasSettled) {
      // Still again after it moved: back in the wait it was settled in is idle again.
      const std::optional<WaitKey> key = ReadKey(process, tid, out.pid, record);
      t.wasSettled = false;
      if (key && SettledWait(t, *key)) t.settled = true;
    }
    if (t.settled) ++out.settled;
    else if (t.quiet >= options_.quietPasses) out.candidates.push_back(tid);
    return;
  }
  const uint64_t little = std::max<uint64_t>(options_.rewaitMinNs, static_cast<uint64_t>(options_.rewaitShare * static_cast<double>(window)));
  if (cpu > little) {
    t.quiet = 0;
    t.wasSettled = t.wasSettled || t.settled;
    t.settled = false;
    t.keyKnown = false;
    ++out.moved;
    return;
  }
  // Next to no CPU: did it wait again where it waited?
  const std::optional<WaitKey> key = ReadKey(process, tid, out.pid, record);
  if ((t.settled || t.wasSettled) && key && SettledWait(t, *key)) {
    t.settled = true;
    t.wasSettled = false;
    ++out.rewaited;
    ++out.settled;
    ++out.settledRewaited;
    t.key = *key;
    t.keyKnown = true;
    return;
  }
  t.settled = false;
  t.wasSettled = false;
  const bool same = key && t.keyKnown && (key->number == restartNumber_ || *key == t.key);
  t.keyKnown = key.has_value();
  if (key) t.key = *key;
  if (same) {
    ++out.rewaited;
    if (++t.quiet >= options_.quietPasses) out.candidates.push_back(tid);
  } else {
    t.quiet = 0;
    ++out.moved;
  }
}

PassRecord Scanner::Pass(const std::vector<int32_t>& pids, const std::vector<int32_t>& detail) {
  ApplySettles();
  PassRecord record;
  record.startedNs = MonotonicNs();
  ++generation_;
  if (!root_) {
    int error = 0;
    root_.reset(OpenDirectoryAt(AT_FDCWD, options_.procRoot.c_str(), O_PATH, &error));
    if (!root_)
      throw SnapError(error == ENOENT ? "ENOENT" : "EIO", "cannot open " + options_.procRoot + ": " + ErrnoText(error) + ". Give the directory procfs is mounted on.", "open", error);
  }
  const std::unordered_set<int32_t> detailed(detail.begin(), detail.end());
  uint32_t denied = 0;
  uint32_t unreadThreads = 0;
  int unreadError = 0;
  for (const int32_t pid : pids) {
    std::unique_ptr<Process>& slot = processes_[pid];
    if (!slot) slot = std::make_unique<Process>();
    Process& p = *slot;
    if (p.seen == generation_) continue;  // given twice
    p.seen = generation_;
    ProcessPass out;
    out.pid = pid;
    // No thread of it ran since the previous pass (its group CPU clock did not move): every thread is where
    // that pass left it, and nothing is read. Only on the host's own /proc (the clock is the kernel's, by pid).
    std::optional<uint64_t> groupCpu;
    if (options_.procRoot == "/proc" && !(p.known && p.kernel)) groupCpu = GroupCpuNs(pid);
    if (groupCpu && p.known && p.groupCpuKnown && *groupCpu == p.groupCpuNs && !p.relist && detailed.count(pid) == 0) {
      ++record.processCount;
      ++record.unchangedProcesses;
      out.threads = static_cast<uint32_t>(p.threads.size());
      record.threadCount += out.threads;
      for (auto& entry : p.threads) {
        Thread& t = entry.second;
        t.seen = generation_;
        ++out.still;
        ++t.quiet;
        if (t.settled && !p.forceAll) ++out.settled;
        else if (p.forceAll || t.quiet >= options_.quietPasses) out.candidates.push_back(entry.first);
      }
      if (!out.candidates.empty()) {
        for (const uint64_t tid : p.tids)
          if (p.threads.count(tid) != 0) out.tids.push_back(tid);
        record.processes.push_back(std::move(out));
      }
      continue;
    }
    p.groupCpuKnown = groupCpu.has_value();
    p.groupCpuNs = groupCpu.value_or(0);
    Reading(pid, "stat");
    if (!p.task && !OpenProcess(pid, p, out)) {
      if (out.status == ProcessPass::Status::Failed && out.code == "EPERM") ++denied;
      Forget(p);
      p.known = false;
      record.processes.push_back(std::move(out));
      continue;
    }
    ReadResult statRead = p.leaderStat ? procfs::ReadKept(p.leaderStat.get(), buffer_)
                                       : procfs::ReadTaskFileOnce(p.task.get(), static_cast<uint64_t>(pid), TaskFile::Stat, buffer_);
    std::optional<procfs::TaskStat> stat;
    std::string statText;
    if (statRead.outcome == ReadOutcome::Ok) {
      statText.assign(buffer_.text);
      stat = procfs::ParseTaskStat(statText);
    }
    if (!stat) {
      // Gone (the kept fd of an exited leader reads ESRCH; a reused pid is a new process, given fresh next time).
      out.status = statRead.outcome == ReadOutcome::Ok || statRead.outcome == ReadOutcome::Gone ? ProcessPass::Status::Gone
                                                                                                  : ProcessPass::Status::Failed;
      if (out.status == ProcessPass::Status::Failed) {
        out.code = statRead.outcome == ReadOutcome::Denied ? "EPERM" : "EIO";
        out.reason = "cannot read " + options_.procRoot + "/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/stat: " + ErrnoText(statRead.error);
        if (statRead.outcome == ReadOutcome::Denied) ++denied;
      }
      Forget(p);
      p.known = false;
      record.processes.push_back(std::move(out));
      continue;
    }
    if (!p.known || stat->startTicks != p.startTicks) {
      if (p.known) {  // another process under the same pid: nothing of the old one applies
        Forget(p);
        p.known = false;
        if (!OpenProcess(pid, p, out)) {
          record.processes.push_back(std::move(out));
          continue;
        }
      }
      p.known = true;
      p.startTicks = stat->startTicks;
      p.kernel = (stat->flags & procfs::kPfKthread) != 0;
      p.relist = true;
      out.fresh = true;
      out.identity.name = std::string(stat->name);
      out.identity.stateLetter = stat->stateLetter;
      out.identity.ppid = static_cast<int64_t>(stat->ppid);
      out.identity.kernel = p.kernel;
      out.identity.startTicks = stat->startTicks;
      char name[48];
      Reading(pid, "status");
      if (procfs::ReadFileAt(root_.get(), procfs::FormatEntryPath(name, static_cast<uint64_t>(pid), "status"), buffer_).outcome == ReadOutcome::Ok)
        out.identity.uid = RealUid(buffer_.text);
    }
    if (p.kernel) {
      // A kernel thread is judged by the D-state rule alone: its state, from the stat just read.
      ++record.processCount;
      ++record.threadCount;
      out.threads = 1;
      if (stat->stateLetter == 'D') {
        ++out.still;
        out.candidates.push_back(static_cast<uint64_t>(pid));
      } else {
        ++out.moved;
      }
      if (!out.candidates.empty() || detailed.count(pid) != 0) out.tids.push_back(static_cast<uint64_t>(pid));
      if (out.fresh || !out.tids.empty()) record.processes.push_back(std::move(out));
      continue;
    }
    if (p.relist || stat->numThreads != p.tids.size()) {
      Reading(pid, "task");
      const int error = procfs::ListNumericEntries(p.task.get(), scratch_, p.tids);
      if (error != 0) {
        out.status = error == ENOENT || error == ESRCH ? ProcessPass::Status::Gone : ProcessPass::Status::Failed;
        out.code = error == EACCES || error == EPERM ? "EPERM" : "EIO";
        out.reason = "cannot list " + options_.procRoot + "/" + std::to_string(pid) + "/task: " + ErrnoText(error);
        Forget(p);
        p.known = false;
        record.processes.push_back(std::move(out));
        continue;
      }
      p.relist = false;
    }
    ++record.processCount;
    const uint64_t nowNs = MonotonicNs();
    Reading(pid, "schedstat");
    for (const uint64_t tid : p.tids) {
      Thread& t = p.threads[tid];
      if (!t.schedstat && budget_->TryAcquire(1)) {
        int error = 0;
        t.schedstat.reset(procfs::OpenTaskFile(p.task.get(), tid, TaskFile::Schedstat, &error));
        if (t.schedstat) ++keptFds_;
        else budget_->Release(1);
      }
      ReadResult read;
      if (t.schedstat) {
        read = procfs::ReadKept(t.schedstat.get(), buffer_);
      } else {
        read = procfs::ReadTaskFileOnce(p.task.get(), tid, TaskFile::Schedstat, buffer_);
        ++record.oneShotReads;
      }
      std::optional<procfs::SchedStat> sched = read.outcome == ReadOutcome::Ok ? procfs::ParseSchedStat(buffer_.text) : std::nullopt;
      if (!sched) {
        if (read.outcome == ReadOutcome::Gone || read.outcome == ReadOutcome::Ok) {
          p.relist = true;  // gone (the rest of the listing is read; the next pass lists again)
        } else {
          if (unreadThreads++ == 0) unreadError = read.error;
          t.seen = generation_;  // there, not read: kept
        }
        continue;
      }
      ++record.threadCount;
      ++out.threads;
      ++record.threadReads;
      const bool fresh = t.seen == 0 || sched->cpuNs < t.last.cpuNs || sched->timeslices < t.last.timeslices;
      t.seen = generation_;
      if (fresh) {
        ScopedFd kept = std::move(t.schedstat);
        t = Thread();
        t.schedstat = std::move(kept);
        t.seen = generation_;
        t.last = *sched;
        t.lastNs = nowNs;
        out.newThreads.push_back(tid);
        continue;
      }
      Classify(p, t, tid, *sched, nowNs, out, record);
    }
    for (auto it = p.threads.begin(); it != p.threads.end();) {
      if (it->second.seen != generation_) {
        if (it->second.schedstat) {
          it->second.schedstat.reset();
          budget_->Release(1);
          --keptFds_;
        }
        it = p.threads.erase(it);
      } else {
        ++it;
      }
    }
    // A stopped or traced process, or one whose leader is in D: every thread is a candidate, settled or not (a
    // SIGSTOP wakes a settled thread for a moment and leaves it where it waited; a stop is a verdict of its own).
    p.forceAll = stat->stateLetter == 'T' || stat->stateLetter == 't' || stat->stateLetter == 'D';
    if (p.forceAll) {
      for (const uint64_t tid : p.tids) {
        if (p.threads.count(tid) != 0 && std::find(out.candidates.begin(), out.candidates.end(), tid) == out.candidates.end())
          out.candidates.push_back(tid);
      }
    }
    const bool detailedNow = detailed.count(pid) != 0;
    if (detailedNow || !out.candidates.empty()) {
      for (const uint64_t tid : p.tids)
        if (p.threads.count(tid) != 0) out.tids.push_back(tid);
    }
    if (out.fresh || detailedNow || !out.candidates.empty() || !out.newThreads.empty()) record.processes.push_back(std::move(out));
  }
  for (auto it = processes_.begin(); it != processes_.end();) {
    if (it->second->seen != generation_) {
      Forget(*it->second);
      it = processes_.erase(it);
    } else {
      ++it;
    }
  }
  Reading(0, "");
  if (denied > 0)
    record.limits.push_back({"host", "threads", "EPERM",
                             std::to_string(denied) + " process" + (denied == 1 ? "" : "es") + " could not be read (permission)",
                             "Run iokit-snap as root to scan every process."});
  if (unreadThreads > 0)
    record.limits.push_back({"host", "threads", procfs::IsOutOfFds(unreadError) ? "EMFILE" : "EIO",
                             std::to_string(unreadThreads) + " thread" + (unreadThreads == 1 ? "" : "s") +
                                 " could not be read in this pass (schedstat: " + ErrnoText(unreadError) + ")",
                             ""});
  if (record.oneShotReads > 0)
    record.limits.push_back({"host", "threads", "EMFILE",
                             std::to_string(record.oneShotReads) + " of " + std::to_string(record.threadCount) +
                                 " threads were read without kept fds (open, read, close): complete, but slower. The fds samplers may keep (" +
                                 std::to_string(budget_->Capacity()) + ", half of RLIMIT_NOFILE) are in use",
                             "Raise the limit (ulimit -n) for a scan of this many threads at its cheapest."});
  record.keptFds = static_cast<uint32_t>(keptFds_);
  record.endedNs = MonotonicNs();
  return record;
}

std::vector<LabelsRecord> ReadLabels(const std::vector<int32_t>& pids, const std::string& procRoot, uint32_t maxFds) {
  std::vector<LabelsRecord> labels;
  labels.reserve(pids.size());
  int error = 0;
  ScopedFd root(OpenDirectoryAt(AT_FDCWD, procRoot.c_str(), O_PATH, &error));
  if (!root) throw SnapError("ENOENT", "cannot open " + procRoot + ": " + ErrnoText(error), "open", error);
  procfs::ReadBuffer buffer;
  std::vector<char> scratch;
  std::vector<uint64_t> fds;
  for (const int32_t pid : pids) {
    LabelsRecord record;
    record.pid = pid;
    char name[48];
    ScopedFd process(OpenDirectoryAt(root.get(), procfs::FormatEntryPath(name, static_cast<uint64_t>(pid), nullptr), O_PATH, &error));
    if (!process) {
      labels.push_back(std::move(record));
      continue;
    }
    if (procfs::ReadFileAt(process.get(), "cgroup", buffer).outcome == ReadOutcome::Ok) {
      record.found = true;
      record.cgroup.assign(buffer.text);
    }
    ScopedFd fdDir(OpenDirectoryAt(process.get(), "fd", O_RDONLY, &error));
    if (fdDir && procfs::ListNumericEntries(fdDir.get(), scratch, fds) == 0) {
      record.found = true;
      std::unordered_set<std::string> seen;
      char target[512];
      for (size_t i = 0; i < fds.size(); ++i) {
        if (i >= maxFds) {
          record.devicesTruncated = true;
          break;
        }
        const ssize_t length = readlinkat(fdDir.get(), procfs::FormatEntryPath(name, fds[i], nullptr), target, sizeof(target) - 1);
        if (length <= 5 || std::strncmp(target, "/dev/", 5) != 0) continue;
        std::string device(target, static_cast<size_t>(length));
        if (seen.insert(device).second) record.devices.push_back(std::move(device));
      }
      std::sort(record.devices.begin(), record.devices.end());
    }
    labels.push_back(std::move(record));
  }
  return labels;
}

}  // namespace hostscan
}  // namespace iokitsnap
