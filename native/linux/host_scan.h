// The cheap pass of a whole-host scan (src/host/): one probe reads every thread of every
// process it is given, and says which threads could change a verdict, so that only those
// are sampled in full (by the reused thread samplers, with `tids`).
//
// Per process and pass it reads the leader's task/<pid>/stat (state, thread count) and,
// for every thread, task/<tid>/schedstat: CPU time and how many times it got a CPU. A
// thread whose schedstat did not move since the previous pass has not run: it is *still*.
// One that moved by next to nothing (at most 2 % of the time between the passes, at least
// 2 ms of CPU) has its task/<tid>/syscall read, and when it waits in the same call, on the
// same first argument, at the same pc as at the previous pass, it *re-waited* (a JVM
// monitor waiter re-parks every second, a timed condition wait times out and waits again).
// Any other change is *moved*. Threads still or re-waiting two passes in a row are the
// candidates (a thread idle for a moment between two bursts of work is not), less the
// ones the caller *settled*: threads it read in full and judged idle in their wait (a park,
// a sleep, an event wait), which stay settled while they stay still, or re-wait in the
// wait they were settled in (the same call and first argument). One that moves is no longer
// settled; when it is still again, its syscall file is read once, and back in the wait it
// was settled in it is settled again (a worker back on its queue's condition), anywhere
// else a candidate.
//
// A process whose leader is stopped, traced or in D (its stat, read every pass) has every
// thread as a candidate, settled or not.
//
// A kernel thread (PF_KTHREAD) is judged by the D-state rule alone: its stat's state, no
// schedstat; it is a candidate while in D.
//
// Before any of that, the process's CPU clock (clock_gettime of MAKE_PROCESS_CPUCLOCK(pid,
// CPUCLOCK_SCHED): the runtime of every thread, exited ones too). When it did not move since
// the previous pass no thread ran, so every thread is where that pass left it and nothing else
// is read: an idle process costs one syscall a pass, whatever its thread count.
//
// Never read here: cmdline, environ, maps (they take the target's mmap lock), nor the
// cgroup file (the cgroup mutex): the labels are read by ReadLabels, a probe of its own.
// The syscall file takes the target's exec_update_lock, which an exec holds for a moment;
// `Reading()` says which pid a pass reads now, so that a caller whose pass missed its
// deadline can leave that process out of the next scanner's passes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "../fd_budget.h"
#include "../model.h"
#include "procfs_files.h"
#include "procfs_parse.h"

namespace iokitsnap {
namespace hostscan {

// Where a thread waits, as far as the syscall file says: the call, its first argument
// and the pc. Two reads that give the same key saw the thread in the same wait.
struct WaitKey {
  int64_t number = -1;
  uint64_t arg0 = 0;
  uint64_t pc = 0;
  bool operator==(const WaitKey& other) const { return number == other.number && arg0 == other.arg0 && pc == other.pc; }
};

// A caller's judgement of a thread it read in full: idle in this wait (`number`, and
// `arg0` when it knows it: a futex address, an fd). number -1: any wait (a kernel thread,
// which has no calls); tid 0: every thread of the process is given again as a candidate.
struct SettleRequest {
  int32_t pid = 0;
  uint64_t tid = 0;
  int64_t number = -1;
  bool hasArg0 = false;
  uint64_t arg0 = 0;
};

// What a fresh process is, from its leader's stat and status.
struct Identity {
  std::string name;
  char stateLetter = '?';
  int64_t ppid = -1;
  int64_t uid = -1;  // the real uid (status "Uid:"), -1 when unreadable
  bool kernel = false;
  uint64_t startTicks = 0;
};

struct ProcessPass {
  int32_t pid = 0;
  // ok; gone (exited, or its pid is another process's now: given fresh next time); failed
  // (`code`, `reason`: denied, out of fds).
  enum class Status : uint8_t { Ok, Gone, Failed } status = Status::Ok;
  std::string code;
  std::string reason;
  bool fresh = false;  // first pass to read it (or its pid was reused): `identity` is set
  Identity identity;
  uint32_t threads = 0;          // threads read in this pass
  uint32_t still = 0;            // did not run since the previous pass
  uint32_t rewaited = 0;         // re-waited in the same wait with next to no CPU
  uint32_t moved = 0;            // anything else (new threads not counted)
  uint32_t settled = 0;          // of the still and re-waiting ones, settled: not candidates
  uint32_t settledRewaited = 0;  // of those, the re-waiting ones (they progress, in the tracker's eyes)
  std::vector<uint64_t> candidates;  // still or re-waiting, not settled
  std::vector<uint64_t> newThreads;  // first seen in this pass: no earlier value to compare
  std::vector<uint64_t> tids;        // every thread read, when the process is detailed
};

struct PassRecord {
  uint64_t startedNs = 0;
  uint64_t endedNs = 0;
  uint32_t processCount = 0;  // processes read
  uint32_t threadCount = 0;   // threads covered: read, or of a process none of whose threads ran
  uint32_t threadReads = 0;   // threads whose schedstat was read
  uint32_t unchangedProcesses = 0;  // processes none of whose threads ran (their CPU clock did not move): nothing read
  uint32_t keyReads = 0;      // syscall files read, for threads that moved by next to nothing
  uint32_t oneShotReads = 0;  // schedstat files read by open/read/close: the fd budget was spent
  uint32_t keptFds = 0;       // fds the scanner keeps between passes
  // The processes a caller must hear of: fresh, gone or failed, with candidates or new
  // threads, or asked for in `detail`. The others only count.
  std::vector<ProcessPass> processes;
  std::vector<LimitRecord> limits;
};

struct ScanOptions {
  std::string procRoot = "/proc";
  std::shared_ptr<FdBudget> fdBudget;  // null: a budget of its own
  double rewaitShare = 0.02;           // "next to nothing": this share of the time between passes…
  uint64_t rewaitMinNs = 2000000;      // …or this much CPU, whichever is more
  uint32_t quietPasses = 2;            // a thread is a candidate once still (or re-waiting) this many passes in a row
};

class Scanner {
 public:
  explicit Scanner(ScanOptions options);
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // One pass over `pids` (every other process is forgotten, its fds closed). `detail`:
  // processes to report (counts and every tid) even when nothing about them changed.
  PassRecord Pass(const std::vector<int32_t>& pids, const std::vector<int32_t>& detail);
  // Queued, applied at the start of the next pass; safe from any thread, during a pass too.
  void Settle(std::vector<SettleRequest> requests);
  // The pid a pass reads now (0: none) and its file, for a caller whose pass missed its deadline.
  int32_t ReadingPid() const { return readingPid_.load(std::memory_order_relaxed); }
  const char* ReadingFile() const { return readingFile_.load(std::memory_order_relaxed); }
  // Gives back every fd; a later pass opens what it needs again.
  void Close();

 private:
  struct Thread;
  struct Process;
  void ApplySettles();
  std::optional<WaitKey> ReadKey(Process& process, uint64_t tid, int32_t pid, PassRecord& record);
  bool SettledWait(const Thread& t, const WaitKey& key) const;
  void Forget(Process& process);
  bool OpenProcess(int32_t pid, Process& process, ProcessPass& out);
  void Classify(Process& process, Thread& thread, uint64_t tid, const procfs::SchedStat& now, uint64_t nowNs,
                ProcessPass& out, PassRecord& record);
  void Reading(int32_t pid, const char* file) {
    readingPid_.store(pid, std::memory_order_relaxed);
    readingFile_.store(file, std::memory_order_relaxed);
  }

  ScanOptions options_;
  std::shared_ptr<FdBudget> budget_;
  procfs::ScopedFd root_;
  std::unordered_map<int32_t, std::unique_ptr<Process>> processes_;
  std::mutex settleMutex_;
  std::vector<SettleRequest> settles_;
  std::atomic<int32_t> readingPid_{0};
  std::atomic<const char*> readingFile_{""};
  size_t keptFds_ = 0;
  uint64_t generation_ = 0;
  procfs::ReadBuffer buffer_;
  std::vector<char> scratch_;
  int64_t restartNumber_;  // restart_syscall on this host's table: the same wait, resumed after a stop
};

// The labels of processes a responder needs, read apart from any pass (this file may wait
// for the cgroup mutex): /proc/<pid>/cgroup as it is, and the device nodes (/dev/…) among
// its open fds (at most `maxFds` fds read per process; `devicesTruncated` past that).
struct LabelsRecord {
  int32_t pid = 0;
  bool found = false;  // false: the process is gone
  std::string cgroup;
  std::vector<std::string> devices;
  bool devicesTruncated = false;
};
std::vector<LabelsRecord> ReadLabels(const std::vector<int32_t>& pids, const std::string& procRoot, uint32_t maxFds);

}  // namespace hostscan
}  // namespace iokitsnap
