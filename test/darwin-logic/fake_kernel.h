// The scripted kernel behind the test-only macOS headers (include/): tasks with
// threads (run states, register files, stacks in fake memory, names), a registry
// of services, CF objects, and a count of everything the code under test takes
// and must give back: suspensions, port rights, thread arrays, IOKit and CF
// references. Every OS call is numbered, so a run can fail call k on purpose.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "json.h"

namespace fake {

enum class Fault { None, KernFailure, InvalidArgument, InvalidDest, ThreadVanished, TaskDied, Blocks };
constexpr Fault kAllFaults[] = {Fault::KernFailure,    Fault::InvalidArgument, Fault::InvalidDest,
                                Fault::ThreadVanished, Fault::TaskDied,        Fault::Blocks};
const char* FaultName(Fault fault);

constexpr uint64_t kBlockNs = 10ull * 1000 * 1000 * 1000;  // what a "blocked" call costs the fake clock
// A "blocked" call that blocks in real time (until the run ends, ReleaseBlockedCalls) where
// xnu's can: the IOKit reads (a wedged work loop) and task_for_pid/task_read_for_pid (a
// non-root caller's upcall to taskgated). The other calls' "block" only moves the clock.

struct Thread {
  uint64_t tid = 0;
  std::string name;
  int runState = 3;  // TH_STATE_WAITING
  int ownSuspendCount = 0;
  uint64_t userUs = 0, systemUs = 0;
  // The register file, architecture-neutral: x16/rax, x0/rdi, x1/rsi, pc, x29/rbp, sp, x30.
  uint64_t callNumber = 0, argument0 = 0, argument1 = 0, pc = 0, fp = 0, sp = 0, lr = 0;
  bool vanished = false;
  bool endsBeforeSuspend = false;  // exits between the listing and thread_suspend (KERN_TERMINATED)
  int heldByUs = 0;           // thread_suspend holds outstanding
  bool bound = false;         // stands for a real thread of the harness (self-walk scenarios)
  std::thread::id boundTo;
};

struct Task {
  int pid = 0;
  uint64_t serial = 0;     // this task object (an exec makes a new one for the same pid)
  uint64_t uniqueId = 0;   // p_uniqueid: kept across exec
  int32_t idVersion = 1;   // p_idversion: renewed by exec
  int32_t cpuType = 0x0100000c;  // PROC_PIDARCHINFO p_cputype (CPU_TYPE_ARM64; x86_64 for a Rosetta process)
  bool replaced = false;   // an exec gave the pid a new task: this one's ports convert to nothing
  bool tokenNull = false;  // task_suspend2 succeeds with a null token (it went inactive meanwhile)
  bool execAtTaskThreads = false;  // execs when task_threads is next asked (after the sampler identified it)
  bool taskPortBlocks = false;     // task_read_for_pid/task_for_pid wait on a hung taskgated (real time)
  std::string comm;
  int status = 2;        // SRUN
  uint32_t flags = 0;    // PROC_FLAG_*
  int userStop = 0;      // task_suspend holds by someone else (lldb)
  int heldByUs = 0;      // task_suspend2 holds outstanding
  bool alive = true;
  bool inactive = false; // exiting: task_threads says KERN_FAILURE
  bool taskPortAllowed = true;     // task_read_for_pid and task_for_pid grant a port
  bool controlPortAllowed = true;  // task_for_pid too (AMFI may grant the read flavor only)
  bool noTask = false;             // the proc has no task: both answer success with a null port
  std::vector<Thread> threads;
  std::map<uint64_t, std::vector<uint8_t>> memory;  // page address → its 4096 bytes (mapped pages only)
  uint64_t dyldInfoAddress = 0, dyldInfoSize = 0;
  std::vector<std::pair<uint64_t, std::string>> libdyldImages;  // what _dyld_process_info reports
  std::map<int, std::string> fdPaths;
  uint64_t readCostNs = 0;     // the fake clock's cost of one mach_vm_read_overwrite
  uint64_t heldSinceNs = 0;    // when our current hold began
  uint64_t longestHoldNs = 0;  // of every hold we took (task or thread), on the fake clock
  uint64_t threadHoldSinceNs = 0;
  uint64_t totalHoldNs = 0;    // of every hold in this run, summed: how long the target was frozen
};

struct Service {
  uint64_t id = 0;
  std::string name, location;
  std::vector<std::string> classChain;  // most derived first … OSObject
  uint64_t state = 0x6;
  uint32_t busyCount = 0;
  uint64_t busyTimeNs = 0;
  uint32_t retainCount = 0;
  Json properties;                      // an object
  bool blocksPowerRead = false;         // IOPowerManagement waits on a wedged work loop
};

struct Port {
  enum class Kind { Task, Thread, Token, Service, Iterator } kind;
  explicit Port(Kind k) : kind(k) {}
  int pid = 0;
  uint64_t taskSerial = 0;  // the task object a task, thread or token port names
  uint64_t tid = 0;
  size_t service = 0;
  std::vector<size_t> iteratorItems;
  size_t iteratorNext = 0;
  int refs = 1;
  bool tokenHeld = false;
};

struct Totals {
  uint64_t suspensions = 0, resumes = 0, faults = 0;
};

class Kernel {
 public:
  static Kernel& Get();

  // ---- scripting (the harness, between runs)
  void Reset();  // an empty world; the totals are kept
  Task& AddTask(int pid, const std::string& comm);
  Task* FindTask(int pid);                   // the pid's current task (not one an exec replaced)
  Task* FindTaskBySerial(uint64_t serial);
  Task& Exec(int pid, const std::string& comm);  // the pid's process execs: a new task, same p_uniqueid
  Task& ExecLocked(int pid, const std::string& comm);
  Thread& AddThread(Task& task, uint64_t tid, const std::string& name, int runState);
  void Write(Task& task, uint64_t address, const void* bytes, size_t size);
  void Write64(Task& task, uint64_t address, uint64_t value) { Write(task, address, &value, sizeof value); }
  void BindCurrentThread(int pid, uint64_t tid);  // this real thread is that fake thread
  void AddService(Service service) { services_.push_back(std::move(service)); }
  void SetRaceSuspends(bool race) { raceSuspends_ = race; }
  void SetCrossHolds(bool cross) { crossHolds_ = cross; }
  void SetSelfTranslated(bool translated) { selfTranslated_ = translated; }
  void SetRegistryChanges(int times) { registryChanges_ = times; }
  void ArmFault(uint64_t callIndex, Fault fault);
  void ReleaseBlockedCalls();  // lets real-time blocked calls (IOKit, taskgated) return, then waits for them
  void LetBlockedCallsReturn();  // the same, without waiting (the watchdog: the run may go on to block again)
  int BlockedCalls();

  // ---- what a run left behind
  uint64_t Calls() const { return calls_; }
  bool FaultFired() const { return faultFired_; }
  bool BlockedThisRun() const { return blockedThisRun_; }
  std::vector<std::string> Problems();  // leaks, holds left, double releases, deadlocks
  Totals totals;
  uint64_t NowNs() const { return clockNs_; }
  std::vector<std::string> callLog;     // names of the calls of this run, in order

  // ---- serving the fake OS calls (fake_*.cc)
  struct Call {
    Kernel& kernel;
    std::unique_lock<std::mutex> lock;
    Fault fault = Fault::None;
    Call(Kernel& k, const char* name, bool injectable = true);
    ~Call();
    // The armed fault for a Mach call about `task`/`thread`: the code to return, or 0 to go on.
    int Inject(Task* task, Thread* thread);
    // For a call that can block in real time: with the Blocks fault armed, wait until the run ends.
    void BlockIfArmed();
  };
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Task> tasks;
  std::vector<Service> services_;
  std::map<uint32_t, Port> ports;
  std::map<uintptr_t, size_t> threadArrays;  // address → bytes
  std::vector<std::string> problems;
  uint64_t clockNs_ = 1000000000000ull;
  uint32_t nextName = 0x1003;
  int blockedCalls = 0;
  bool releaseBlocked = false;
  bool raceSuspends_ = false;
  bool crossHolds_ = false;     // two samplers: task_suspend2 calls of bound threads wait for each other
  int crossArrivals = 0;
  int crossLanded = 0;
  bool deadlockBroken = false;  // a deadlock was reported: nothing parks for the rest of the run
  bool selfTranslated_ = false; // sysctl.proc_translated of the harness "process"
  bool blockedThisRun_ = false;
  uint64_t nextSerial = 1;
  int suspendsHeld = 0;
  int suspendArrivals = 0;  // walkers that reached thread_suspend of another walker
  int registryChanges_ = 0;
  uint64_t calls_ = 0;
  uint64_t faultAt_ = 0;
  Fault fault_ = Fault::None;
  bool faultFired_ = false;
  int targetPid = 0;  // whom a fault with no task of its own (ThreadVanished, TaskDied) hits

  uint32_t NewPort(Port port);
  Port* Resolve(uint32_t name);
  Task* TaskOf(uint32_t name);                 // task port or mach_task_self
  Thread* ThreadOf(uint32_t name, Task** task);
  Thread* BoundThread();                        // of the calling real thread, if any
  int CallerPid();                              // the fake process of the calling thread (bound, else ours)
  void BlockUntilReleased(std::unique_lock<std::mutex>& lock);
  void Die(Task& task);
  void DropHold(Task& task);
  void ParkIfHeld(std::unique_lock<std::mutex>& lock);
};

constexpr uint32_t kSelfTaskName = 0x203;  // mach_task_self(): not ours to release

// The harness process's own pid is the self task's.
int SelfPid();

// The harness's threads (Linux: /proc/self/task), to wait until the threads of calls a
// run abandoned have ended; -1 where it cannot be counted.
int LiveThreads();

}  // namespace fake
