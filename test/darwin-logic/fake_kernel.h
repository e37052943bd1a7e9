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

struct Thread {
  uint64_t tid = 0;
  std::string name;
  int runState = 3;  // TH_STATE_WAITING
  int ownSuspendCount = 0;
  uint64_t userUs = 0, systemUs = 0;
  // The register file, architecture-neutral: x16/rax, x0/rdi, x1/rsi, pc, x29/rbp, sp, x30.
  uint64_t callNumber = 0, argument0 = 0, argument1 = 0, pc = 0, fp = 0, sp = 0, lr = 0;
  bool vanished = false;
  int heldByUs = 0;           // thread_suspend holds outstanding
  bool bound = false;         // stands for a real thread of the harness (self-walk scenarios)
  std::thread::id boundTo;
};

struct Task {
  int pid = 0;
  std::string comm;
  int status = 2;        // SRUN
  uint32_t flags = 0;    // PROC_FLAG_*
  int userStop = 0;      // task_suspend holds by someone else (lldb)
  int heldByUs = 0;      // task_suspend2 holds outstanding
  bool alive = true;
  bool inactive = false; // exiting: task_threads says KERN_FAILURE
  bool taskPortAllowed = true;
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
  Task* FindTask(int pid);
  Thread& AddThread(Task& task, uint64_t tid, const std::string& name, int runState);
  void Write(Task& task, uint64_t address, const void* bytes, size_t size);
  void Write64(Task& task, uint64_t address, uint64_t value) { Write(task, address, &value, sizeof value); }
  void BindCurrentThread(int pid, uint64_t tid);  // this real thread is that fake thread
  void AddService(Service service) { services_.push_back(std::move(service)); }
  void SetRaceSuspends(bool race) { raceSuspends_ = race; }
  void SetRegistryChanges(int times) { registryChanges_ = times; }
  void ArmFault(uint64_t callIndex, Fault fault);
  void ReleaseBlockedCalls();  // lets real-time blocked calls (IOKit) return, then waits for them

  // ---- what a run left behind
  uint64_t Calls() const { return calls_; }
  bool FaultFired() const { return faultFired_; }
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
  void Die(Task& task);
  void DropHold(Task& task);
  void ParkIfHeld(std::unique_lock<std::mutex>& lock);
};

constexpr uint32_t kSelfTaskName = 0x203;  // mach_task_self(): not ours to release

// The harness process's own pid is the self task's.
int SelfPid();

}  // namespace fake
