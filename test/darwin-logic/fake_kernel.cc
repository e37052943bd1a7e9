// The fake kernel's bookkeeping and its Mach, libproc and libdyld calls.
#include "fake_kernel.h"

#include <dirent.h>
#include <errno.h>
#include <libproc.h>
#include <mach/mach.h>
#include <sys/proc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>

#include "../../native/backend.h"
#include "../../native/darwin/dyld_images.h"
#include "../../native/darwin/proc_info_private.h"

namespace fake {

const char* FaultName(Fault fault) {
  switch (fault) {
    case Fault::None: return "none";
    case Fault::KernFailure: return "KERN_FAILURE";
    case Fault::InvalidArgument: return "KERN_INVALID_ARGUMENT";
    case Fault::InvalidDest: return "MACH_SEND_INVALID_DEST";
    case Fault::ThreadVanished: return "thread vanished";
    case Fault::TaskDied: return "task died";
    case Fault::Blocks: return "blocks past the deadline";
  }
  return "?";
}

int SelfPid() { return static_cast<int>(::getpid()); }

int LiveThreads() {
#if defined(__linux__)
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count;
#else
  return -1;
#endif
}

Kernel& Kernel::Get() {
  static Kernel kernel;
  return kernel;
}

namespace {
thread_local int boundPid = 0;
thread_local uint64_t boundTid = 0;
}  // namespace

void Kernel::Reset() {
  std::lock_guard<std::mutex> lock(mutex);
  tasks.clear();
  services_.clear();
  ports.clear();
  threadArrays.clear();
  problems.clear();
  callLog.clear();
  nextName = 0x1003;
  calls_ = 0;
  faultAt_ = 0;
  fault_ = Fault::None;
  faultFired_ = false;
  raceSuspends_ = false;
  crossHolds_ = false;
  crossArrivals = 0;
  crossLanded = 0;
  deadlockBroken = false;
  selfTranslated_ = false;
  blockedThisRun_ = false;
  nextSerial = 1;
  registryChanges_ = 0;
  suspendArrivals = 0;
  suspendsHeld = 0;
  releaseBlocked = false;
  targetPid = 0;
  boundPid = 0;
  boundTid = 0;
}

Task& Kernel::AddTask(int pid, const std::string& comm) {
  tasks.reserve(16);  // Task references handed out stay valid while a scenario scripts
  tasks.push_back(Task{});
  tasks.back().pid = pid;
  tasks.back().serial = nextSerial++;
  tasks.back().uniqueId = 0x10000 + static_cast<uint64_t>(pid);
  tasks.back().comm = comm;
  if (pid != SelfPid()) targetPid = pid;
  return tasks.back();
}

Task* Kernel::FindTask(int pid) {
  for (Task& task : tasks) {
    if (task.pid == pid && !task.replaced) return &task;
  }
  return nullptr;
}

Task* Kernel::FindTaskBySerial(uint64_t serial) {
  for (Task& task : tasks) {
    if (task.serial == serial) return &task;
  }
  return nullptr;
}

// kern_exec.c: the process gets a new task (proc_exec_switch_task), the old one is
// terminated (task_terminate_internal → ipc_task_disable: its ports convert to no task);
// p_uniqueid stays, p_idversion is renewed (exec_handle_sugid). The new task starts as a
// copy of the old (threads, memory) for the scenario to change.
Task& Kernel::Exec(int pid, const std::string& comm) {
  std::lock_guard<std::mutex> lock(mutex);
  return ExecLocked(pid, comm);
}

Task& Kernel::ExecLocked(int pid, const std::string& comm) {
  Task* old = FindTask(pid);
  Task fresh = *old;
  old->replaced = true;
  old->alive = false;
  for (Thread& thread : old->threads) thread.vanished = true;
  fresh.serial = nextSerial++;
  fresh.idVersion = old->idVersion + 1;
  fresh.comm = comm;
  fresh.heldByUs = 0;
  for (Thread& thread : fresh.threads) thread.tid += 0x100000;  // new threads, new ids
  tasks.push_back(std::move(fresh));
  return tasks.back();
}

Thread& Kernel::AddThread(Task& task, uint64_t tid, const std::string& name, int runState) {
  task.threads.reserve(64);
  task.threads.push_back(Thread{});
  Thread& thread = task.threads.back();
  thread.tid = tid;
  thread.name = name;
  thread.runState = runState;
  return thread;
}

void Kernel::Write(Task& task, uint64_t address, const void* bytes, size_t size) {
  // Memory is mapped a page at a time, as in a real task: a write maps its pages.
  const auto* from = static_cast<const uint8_t*>(bytes);
  for (size_t done = 0; done < size;) {
    const uint64_t at = address + done;
    std::vector<uint8_t>& page = task.memory[at & ~uint64_t{4095}];
    page.resize(4096);
    const size_t n = std::min<size_t>(size - done, 4096 - (at & 4095));
    std::memcpy(page.data() + (at & 4095), from + done, n);
    done += n;
  }
}

void Kernel::BindCurrentThread(int pid, uint64_t tid) {
  std::lock_guard<std::mutex> lock(mutex);
  boundPid = pid;
  boundTid = tid;
  Task* task = FindTask(pid);
  for (Thread& thread : task->threads) {
    if (thread.tid == tid) {
      thread.bound = true;
      thread.boundTo = std::this_thread::get_id();
    }
  }
}

void Kernel::ArmFault(uint64_t callIndex, Fault fault) {
  faultAt_ = callIndex;
  fault_ = fault;
  faultFired_ = false;
}

void Kernel::ReleaseBlockedCalls() {
  std::unique_lock<std::mutex> lock(mutex);
  releaseBlocked = true;
  changed.notify_all();
  changed.wait(lock, [this] { return blockedCalls == 0; });
}

void Kernel::LetBlockedCallsReturn() {
  std::lock_guard<std::mutex> lock(mutex);
  releaseBlocked = true;
  changed.notify_all();
}

int Kernel::BlockedCalls() {
  std::lock_guard<std::mutex> lock(mutex);
  return blockedCalls;
}

// A call that waits on something wedged (a work loop, taskgated): it returns only when
// the harness lets it, at the end of the run.
void Kernel::BlockUntilReleased(std::unique_lock<std::mutex>& lock) {
  ++blockedCalls;
  blockedThisRun_ = true;
  clockNs_ += kBlockNs;
  changed.wait(lock, [this] { return releaseBlocked; });
  --blockedCalls;
  changed.notify_all();
}

void Kernel::Call::BlockIfArmed() {
  if (fault != Fault::Blocks) return;
  kernel.BlockUntilReleased(lock);
  fault = Fault::None;  // it returns normally once let go
}

std::vector<std::string> Kernel::Problems() {
  std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::string> found = problems;
  for (const auto& [name, port] : ports) {
    const char* kinds[] = {"task port", "thread port", "suspension token", "IOKit object", "IOKit iterator"};
    found.push_back(std::string("leak: ") + kinds[static_cast<int>(port.kind)] + " right 0x" + std::to_string(name) +
                    " (" + std::to_string(port.refs) + " reference(s)) never deallocated");
  }
  for (const auto& [address, bytes] : threadArrays) {
    found.push_back("leak: a task_threads array of " + std::to_string(bytes) + " bytes never vm_deallocate'd");
  }
  for (const Task& task : tasks) {
    if (task.heldByUs > 0 && task.alive) found.push_back("pid " + std::to_string(task.pid) + " left suspended");
    for (const Thread& thread : task.threads) {
      if (thread.heldByUs > 0 && !thread.vanished && task.alive) {
        found.push_back("thread " + std::to_string(thread.tid) + " left suspended");
      }
    }
  }
  return found;
}

// ------------------------------------------------------------------ calls

Kernel::Call::Call(Kernel& k, const char* name, bool injectable) : kernel(k), lock(k.mutex) {
  ++kernel.calls_;
  kernel.clockNs_ += 1000;  // every call takes a microsecond of fake time
  kernel.callLog.push_back(name);
  if (injectable && kernel.fault_ != Fault::None && kernel.calls_ == kernel.faultAt_) {
    fault = kernel.fault_;
    kernel.faultFired_ = true;
    ++kernel.totals.faults;
  }
}

Kernel::Call::~Call() { kernel.ParkIfHeld(lock); }

// A real harness thread that a walker has suspended, or whose fake process another
// walker holds, stops at its next return to user space, as xnu parks a held thread at
// AST_APC (thread_apc_ast), until it is resumed. Two walkers that suspend or hold each
// other both park: a deadlock, reported, then broken (nothing parks for the rest of
// the run, so the walkers finish and give back what they hold).
void Kernel::ParkIfHeld(std::unique_lock<std::mutex>& lock) {
  Thread* self = BoundThread();
  if (self == nullptr) return;
  const int pid = boundPid;
  const auto heldNow = [this, self, pid] {
    if (deadlockBroken) return false;
    Task* task = FindTask(pid);
    return self->heldByUs > 0 || (task != nullptr && task->heldByUs > 0);
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (heldNow()) {
    if (changed.wait_until(lock, deadline) == std::cv_status::timeout && heldNow()) {
      problems.push_back("deadlock: thread " + std::to_string(self->tid) + " of pid " + std::to_string(pid) +
                         " stayed suspended (a walker holding it was itself held)");
      deadlockBroken = true;
      changed.notify_all();
    }
  }
}

int Kernel::CallerPid() { return boundPid != 0 ? boundPid : SelfPid(); }

Thread* Kernel::BoundThread() {
  if (boundPid == 0) return nullptr;
  Task* task = FindTask(boundPid);
  if (task == nullptr) return nullptr;
  for (Thread& thread : task->threads) {
    if (thread.tid == boundTid) return &thread;
  }
  return nullptr;
}

int Kernel::Call::Inject(Task* task, Thread* thread) {
  switch (fault) {
    case Fault::None: return 0;
    case Fault::KernFailure: return KERN_FAILURE;
    case Fault::InvalidArgument: return KERN_INVALID_ARGUMENT;
    case Fault::InvalidDest: return MACH_SEND_INVALID_DEST;
    case Fault::ThreadVanished:
      if (thread != nullptr && !thread->bound) {
        thread->vanished = true;
        return MACH_SEND_INVALID_DEST;
      }
      if (Task* target = kernel.FindTask(kernel.targetPid)) {
        for (auto it = target->threads.rbegin(); it != target->threads.rend(); ++it) {
          if (!it->vanished && !it->bound) {
            it->vanished = true;
            break;
          }
        }
      }
      return 0;
    case Fault::TaskDied: {
      Task* victim = task != nullptr && task->pid != kernel.CallerPid() ? task : kernel.FindTask(kernel.targetPid);
      if (victim != nullptr && victim->pid != kernel.CallerPid()) kernel.Die(*victim);
      return task != nullptr && !task->alive ? MACH_SEND_INVALID_DEST : 0;
    }
    case Fault::Blocks: kernel.clockNs_ += kBlockNs; return 0;
  }
  return 0;
}

void Kernel::Die(Task& task) {
  task.alive = false;
  // Its holds die with it; the token we hold is still ours to give back (and counts).
  for (Thread& thread : task.threads) {
    thread.vanished = true;
  }
}

uint32_t Kernel::NewPort(Port port) {
  // One name per port in a space: another send right to the same task or thread
  // adds a reference to the name we already hold (mach_thread_self() == the name
  // task_threads gave for this thread, which is how a walker knows itself).
  if (port.kind == Port::Kind::Task || port.kind == Port::Kind::Thread) {
    for (auto& [name, held] : ports) {
      if (held.kind == port.kind && held.taskSerial == port.taskSerial && held.tid == port.tid) {
        ++held.refs;
        return name;
      }
    }
  }
  const uint32_t name = nextName;
  nextName += 4;
  ports.emplace(name, std::move(port));
  return name;
}

Port* Kernel::Resolve(uint32_t name) {
  auto it = ports.find(name);
  return it == ports.end() ? nullptr : &it->second;
}

Task* Kernel::TaskOf(uint32_t name) {
  if (name == kSelfTaskName) return FindTask(CallerPid());
  Port* port = Resolve(name);
  if (port == nullptr) {
    problems.push_back("a task call on port 0x" + std::to_string(name) + ", which this task holds no right to");
    return nullptr;
  }
  if (port->kind != Port::Kind::Task) return nullptr;
  return FindTaskBySerial(port->taskSerial);
}

Thread* Kernel::ThreadOf(uint32_t name, Task** owner) {
  Port* port = Resolve(name);
  if (port == nullptr) {
    problems.push_back("a thread call on port 0x" + std::to_string(name) + ", which this task holds no right to");
    return nullptr;
  }
  if (port->kind != Port::Kind::Thread) return nullptr;
  Task* task = FindTaskBySerial(port->taskSerial);
  if (owner != nullptr) *owner = task;
  if (task == nullptr) return nullptr;
  for (Thread& thread : task->threads) {
    if (thread.tid == port->tid) return &thread;
  }
  return nullptr;
}

void Kernel::DropHold(Task& task) {
  if (task.heldByUs == 0) return;
  --task.heldByUs;
  ++totals.resumes;
  task.longestHoldNs = std::max(task.longestHoldNs, clockNs_ - task.heldSinceNs);
  task.totalHoldNs += clockNs_ - task.heldSinceNs;
  changed.notify_all();  // its parked threads run again
}

}  // namespace fake

using fake::Kernel;
using fake::Port;
using fake::Task;
using fake::Thread;

namespace {
Kernel& K() { return Kernel::Get(); }
int ErrnoFor(int kr) { return kr == MACH_SEND_INVALID_DEST ? ESRCH : kr == KERN_INVALID_ARGUMENT ? EINVAL : EIO; }
}  // namespace

extern "C" {

uint64_t clock_gettime_nsec_np(clockid_t) { return K().clockNs_; }

int iokitsnap_fake_kill(pid_t pid, int) {
  Kernel::Call call(K(), "kill");
  if (int kr = call.Inject(nullptr, nullptr)) return errno = ErrnoFor(kr), -1;
  Task* task = K().FindTask(pid);
  if (task == nullptr || !task->alive) return errno = ESRCH, -1;
  return 0;
}

mach_port_t mach_task_self(void) { return fake::kSelfTaskName; }

mach_port_t mach_thread_self(void) {
  Kernel::Call call(K(), "mach_thread_self", false);
  Thread* self = K().BoundThread();
  if (self == nullptr) return MACH_PORT_NULL;
  Port port{Port::Kind::Thread};
  port.pid = K().CallerPid();
  port.taskSerial = K().FindTask(port.pid)->serial;
  port.tid = self->tid;
  return K().NewPort(port);
}

namespace {
// A send right to `task`'s port, as task_for_pid and task_read_for_pid hand one out.
mach_port_t TaskPortFor(const Task& task) {
  Port port{Port::Kind::Task};
  port.pid = task.pid;
  port.taskSerial = task.serial;
  return K().NewPort(port);
}
}  // namespace

// kern_proc.c task_for_pid: pid 0 is refused to everyone; KERN_FAILURE when refused or
// gone; a non-root caller may wait on taskgated (the real-time "blocks" fault).
kern_return_t task_for_pid(mach_port_t, int pid, mach_port_t* out) {
  Kernel::Call call(K(), "task_for_pid");
  *out = MACH_PORT_NULL;
  call.BlockIfArmed();
  Task* task = K().FindTask(pid);
  if (task != nullptr && task->taskPortBlocks) K().BlockUntilReleased(call.lock);  // taskgated does not answer
  if (int kr = call.Inject(task, nullptr)) return kr;
  if (pid == 0) {
    K().problems.push_back("task_for_pid(0): refused to everyone, it should not be asked");
    return KERN_FAILURE;
  }
  if (task == nullptr || !task->alive) return KERN_FAILURE;
  if (!task->taskPortAllowed || !task->controlPortAllowed) return 5;  // KERN_FAILURE, as AMFI's denial reads
  if (task->noTask) return KERN_SUCCESS;  // proc_task(p) == TASK_NULL: success, and MACH_PORT_NULL
  *out = TaskPortFor(*task);
  return KERN_SUCCESS;
}

// kern_proc.c task_read_for_pid: a BSD call, -1 with errno when refused (EPERM) or gone (ESRCH).
int task_read_for_pid(mach_port_name_t, int pid, mach_port_name_t* out) {
  Kernel::Call call(K(), "task_read_for_pid");
  *out = MACH_PORT_NULL;
  call.BlockIfArmed();
  Task* task = K().FindTask(pid);
  if (task != nullptr && task->taskPortBlocks) K().BlockUntilReleased(call.lock);  // taskgated does not answer
  if (int kr = call.Inject(task, nullptr)) return errno = ErrnoFor(kr), -1;
  if (pid == 0) {
    K().problems.push_back("task_read_for_pid(0): refused to everyone, it should not be asked");
    return errno = EPERM, -1;
  }
  if (task == nullptr || !task->alive) return errno = ESRCH, -1;
  if (!task->taskPortAllowed) return errno = EPERM, -1;
  if (task->noTask) return 0;  // proc_task(p) == TASK_NULL: success, and MACH_PORT_NULL
  *out = TaskPortFor(*task);
  return 0;
}

int sysctlbyname(const char* name, void* out, size_t* size, void*, size_t) {
  Kernel::Call call(K(), "sysctlbyname");
  if (int kr = call.Inject(nullptr, nullptr)) return errno = ErrnoFor(kr), -1;
  if (std::strcmp(name, "sysctl.proc_translated") != 0 || *size < sizeof(int)) return errno = ENOENT, -1;
  const int translated = K().selfTranslated_ ? 1 : 0;
  std::memcpy(out, &translated, sizeof translated);
  *size = sizeof translated;
  return 0;
}

kern_return_t task_threads(task_t taskName, thread_act_array_t* list, mach_msg_type_number_t* count) {
  Kernel::Call call(K(), "task_threads");
  Task* task = K().TaskOf(taskName);
  if (int kr = call.Inject(task, nullptr)) return kr;
  if (task != nullptr && task->execAtTaskThreads) {  // the process execs just now, after it was identified
    task->execAtTaskThreads = false;
    K().ExecLocked(task->pid, task->comm + "-new");
    task = K().TaskOf(taskName);
  }
  if (task != nullptr && task->replaced) return KERN_INVALID_ARGUMENT;  // exec'd: the port converts to TASK_NULL
  if (task == nullptr || !task->alive) return MACH_SEND_INVALID_DEST;
  if (task->inactive) return KERN_FAILURE;
  std::vector<uint64_t> live;
  for (const Thread& thread : task->threads) {
    if (!thread.vanished) live.push_back(thread.tid);
  }
  auto* array = new thread_act_t[live.size() + 1];
  for (size_t i = 0; i < live.size(); ++i) {
    Port port{Port::Kind::Thread};
    port.pid = task->pid;
    port.taskSerial = task->serial;
    port.tid = live[i];
    array[i] = K().NewPort(port);
  }
  K().threadArrays[reinterpret_cast<uintptr_t>(array)] = live.size() * sizeof(thread_act_t);
  *list = array;
  *count = static_cast<mach_msg_type_number_t>(live.size());
  return KERN_SUCCESS;
}

kern_return_t vm_deallocate(mach_port_t target, vm_address_t address, vm_size_t size) {
  Kernel::Call call(K(), "vm_deallocate", false);
  auto it = K().threadArrays.find(address);
  if (target != fake::kSelfTaskName || it == K().threadArrays.end()) {
    K().problems.push_back("vm_deallocate of memory this task was never given");
    return KERN_INVALID_ARGUMENT;
  }
  if (it->second != size) K().problems.push_back("vm_deallocate of a thread array with the wrong size");
  delete[] reinterpret_cast<thread_act_t*>(address);
  K().threadArrays.erase(it);
  return KERN_SUCCESS;
}

kern_return_t mach_port_deallocate(ipc_space_t space, mach_port_t name) {
  Kernel::Call call(K(), "mach_port_deallocate", false);
  if (space != fake::kSelfTaskName || name == fake::kSelfTaskName) {
    K().problems.push_back("mach_port_deallocate of mach_task_self() or in another space");
    return KERN_INVALID_RIGHT;
  }
  Port* port = K().Resolve(name);
  if (port == nullptr) {
    K().problems.push_back("mach_port_deallocate of 0x" + std::to_string(name) + ": no such right (a double release?)");
    return KERN_INVALID_NAME;
  }
  if (--port->refs == 0) {
    if (port->kind == Port::Kind::Token && port->tokenHeld) {
      // The token (a send-once right) died: ipc_notify_send_once_and_unlock →
      // task_suspension_send_once releases its hold, synchronously.
      if (Task* task = K().FindTaskBySerial(port->taskSerial)) K().DropHold(*task);
    }
    K().ports.erase(name);
  }
  return KERN_SUCCESS;
}

kern_return_t task_info(task_t taskName, task_flavor_t flavor, task_info_t out, mach_msg_type_number_t* count) {
  Kernel::Call call(K(), "task_info");
  Task* task = K().TaskOf(taskName);
  if (int kr = call.Inject(task, nullptr)) return kr;
  if (task == nullptr || !task->alive) return MACH_SEND_INVALID_DEST;
  if (flavor == MACH_TASK_BASIC_INFO) {
    if (*count < MACH_TASK_BASIC_INFO_COUNT) return KERN_INVALID_ARGUMENT;
    mach_task_basic_info_data_t info{};
    info.suspend_count = task->userStop + task->heldByUs;
    std::memcpy(out, &info, sizeof info);
    *count = MACH_TASK_BASIC_INFO_COUNT;
    return KERN_SUCCESS;
  }
  if (flavor == TASK_DYLD_INFO) {
    if (*count < TASK_DYLD_INFO_COUNT) return KERN_INVALID_ARGUMENT;
    task_dyld_info_data_t info{};
    info.all_image_info_addr = task->dyldInfoAddress;
    info.all_image_info_size = task->dyldInfoSize;
    info.all_image_info_format = TASK_DYLD_ALL_IMAGE_INFO_64;
    std::memcpy(out, &info, sizeof info);
    *count = TASK_DYLD_INFO_COUNT;
    return KERN_SUCCESS;
  }
  return KERN_INVALID_ARGUMENT;
}

kern_return_t thread_info(thread_act_t act, thread_flavor_t flavor, thread_info_t out, mach_msg_type_number_t* count) {
  Kernel::Call call(K(), "thread_info");
  Task* task = nullptr;
  Thread* thread = K().ThreadOf(act, &task);
  if (int kr = call.Inject(task, thread)) return kr;
  if (thread == nullptr || thread->vanished) return MACH_SEND_INVALID_DEST;
  if (flavor == THREAD_BASIC_INFO) {
    thread_basic_info_data_t info{};
    info.user_time = {static_cast<int>(thread->userUs / 1000000), static_cast<int>(thread->userUs % 1000000)};
    info.system_time = {static_cast<int>(thread->systemUs / 1000000), static_cast<int>(thread->systemUs % 1000000)};
    info.run_state = thread->runState;
    info.suspend_count = thread->ownSuspendCount + thread->heldByUs;
    std::memcpy(out, &info, sizeof info);
    *count = THREAD_BASIC_INFO_COUNT;
    return KERN_SUCCESS;
  }
  if (flavor == THREAD_IDENTIFIER_INFO) {
    thread_identifier_info_data_t info{};
    info.thread_id = thread->tid;
    std::memcpy(out, &info, sizeof info);
    *count = THREAD_IDENTIFIER_INFO_COUNT;
    return KERN_SUCCESS;
  }
  if (flavor == THREAD_EXTENDED_INFO) {
    thread_extended_info_data_t info{};
    std::strncpy(info.pth_name, thread->name.c_str(), sizeof info.pth_name - 1);
    std::memcpy(out, &info, sizeof info);
    *count = THREAD_EXTENDED_INFO_COUNT;
    return KERN_SUCCESS;
  }
  return KERN_INVALID_ARGUMENT;
}

kern_return_t thread_get_state(thread_act_t act, thread_state_flavor_t flavor, thread_state_t out,
                               mach_msg_type_number_t* count) {
  Kernel::Call call(K(), "thread_get_state");
  Task* task = nullptr;
  Thread* thread = K().ThreadOf(act, &task);
  if (int kr = call.Inject(task, thread)) return kr;
  if (thread == nullptr || thread->vanished) return MACH_SEND_INVALID_DEST;
  if (flavor == ARM_THREAD_STATE64) {
    if (*count < ARM_THREAD_STATE64_COUNT) return KERN_INVALID_ARGUMENT;
    arm_thread_state64_t state{};
    state.__x[0] = thread->argument0;
    state.__x[1] = thread->argument1;
    state.__x[16] = thread->callNumber;
    state.__pc = thread->pc;
    state.__fp = thread->fp;
    state.__sp = thread->sp;
    state.__lr = thread->lr;
    std::memcpy(out, &state, sizeof state);
    *count = ARM_THREAD_STATE64_COUNT;
    return KERN_SUCCESS;
  }
  if (flavor == x86_THREAD_STATE64) {
    if (*count < x86_THREAD_STATE64_COUNT) return KERN_INVALID_ARGUMENT;
    x86_thread_state64_t state{};
    state.__rax = thread->callNumber;
    state.__rdi = thread->argument0;
    state.__rsi = thread->argument1;
    state.__rip = thread->pc;
    state.__rbp = thread->fp;
    state.__rsp = thread->sp;
    std::memcpy(out, &state, sizeof state);
    *count = x86_THREAD_STATE64_COUNT;
    return KERN_SUCCESS;
  }
  return KERN_INVALID_ARGUMENT;
}

kern_return_t thread_suspend(thread_act_t act) {
  Kernel::Call call(K(), "thread_suspend");
  Task* task = nullptr;
  Thread* thread = K().ThreadOf(act, &task);
  if (int kr = call.Inject(task, thread)) return kr;
  if (thread == nullptr || thread->vanished) return MACH_SEND_INVALID_DEST;
  if (task->pid != K().CallerPid()) {
    K().problems.push_back("thread_suspend of a thread of pid " + std::to_string(task->pid) +
                           ": that hold outlives us if we die mid-walk (task_suspend2's token does not)");
  }
  if (thread->endsBeforeSuspend) {  // thread_act.c thread_suspend: an inactive thread is KERN_TERMINATED
    thread->vanished = true;
    return KERN_TERMINATED;
  }
  if (K().raceSuspends_ && thread->bound) {
    // Two walkers of one process that each reach thread_suspend of the other before
    // either hold lands (xnu parks a held thread only on its return to user space):
    // wait here, before the hold, for the other walker to get this far too.
    ++K().suspendArrivals;
    K().changed.notify_all();
    K().changed.wait_for(call.lock, std::chrono::seconds(2), [] { return K().suspendArrivals >= 2; });
    if (thread->vanished) return MACH_SEND_INVALID_DEST;
    if (K().suspendArrivals >= 2) {
      // Both are in: each holds the other, then (thread_wait) returns once the other
      // is off its CPU, which it is, waiting here too. Both then park on return.
      if (thread->heldByUs++ == 0) task->threadHoldSinceNs = K().clockNs_;
      ++K().totals.suspensions;
      ++K().suspendsHeld;
      K().changed.notify_all();
      K().changed.wait_for(call.lock, std::chrono::seconds(2), [] { return K().suspendsHeld >= 2; });
      return KERN_SUCCESS;
    }
  }
  if (thread->heldByUs++ == 0) task->threadHoldSinceNs = K().clockNs_;
  ++K().totals.suspensions;
  return KERN_SUCCESS;
}

kern_return_t thread_resume(thread_act_t act) {
  // A resume of a live, held thread cannot fail in xnu, and no caller could recover
  // if it did: no fault is injected here except that the thread or task is gone.
  Kernel::Call call(K(), "thread_resume", false);
  Task* task = nullptr;
  Thread* thread = K().ThreadOf(act, &task);
  if (thread == nullptr) return MACH_SEND_INVALID_DEST;
  if (thread->heldByUs == 0) {
    K().problems.push_back("thread_resume of thread " + std::to_string(thread->tid) + ", which we did not suspend");
    return KERN_FAILURE;
  }
  --thread->heldByUs;
  ++K().totals.resumes;
  task->longestHoldNs = std::max(task->longestHoldNs, K().clockNs_ - task->threadHoldSinceNs);
  task->totalHoldNs += K().clockNs_ - task->threadHoldSinceNs;
  K().changed.notify_all();
  return thread->vanished ? MACH_SEND_INVALID_DEST : KERN_SUCCESS;
}

kern_return_t task_suspend2(task_t taskName, task_suspension_token_t* token) {
  Kernel::Call call(K(), "task_suspend2");
  *token = MACH_PORT_NULL;
  Task* task = K().TaskOf(taskName);
  if (int kr = call.Inject(task, nullptr)) return kr;
  if (task == nullptr || !task->alive) return MACH_SEND_INVALID_DEST;
  if (task->pid == K().CallerPid()) K().problems.push_back("task_suspend2 of our own task (it would stop the walker)");
  // task.c place_task_hold, then convert_task_suspension_token_to_port: a task that went
  // inactive in between gives success and no token (IP_NULL); nothing is held for us.
  if (task->tokenNull) return KERN_SUCCESS;
  const bool cross = K().crossHolds_ && K().BoundThread() != nullptr;
  if (cross) {
    // Two samplers, each about to hold the other: both calls in flight at once (each
    // waits here for the other to arrive) ...
    ++K().crossArrivals;
    K().changed.notify_all();
    K().changed.wait_for(call.lock, std::chrono::milliseconds(500), [] { return K().crossArrivals >= 2; });
  }
  if (task->heldByUs++ == 0) task->heldSinceNs = K().clockNs_;
  ++K().totals.suspensions;
  if (cross && K().crossArrivals >= 2) {
    // ... and in xnu neither returns before its hold has stopped the other's threads
    // (place_task_hold waits for them), the other walker included, which is in the
    // kernel: so both holds land, and each walker parks on its way back to user space
    // (~Call → ParkIfHeld), held by the other.
    ++K().crossLanded;
    K().changed.notify_all();
    K().changed.wait_for(call.lock, std::chrono::milliseconds(500), [] { return K().crossLanded >= 2; });
  }
  Port port{Port::Kind::Token};
  port.pid = task->pid;
  port.taskSerial = task->serial;
  port.tokenHeld = true;
  *token = K().NewPort(port);
  return KERN_SUCCESS;
}

// The message moves the send-once token: once it is sent, the right is gone from our
// space whatever the server answers (ipc_kobject_server releases the request's
// destination right). Only a send that fails (MACH_SEND_INVALID_DEST: the name is dead)
// leaves it with the caller.
kern_return_t task_resume2(task_suspension_token_t name) {
  Kernel::Call call(K(), "task_resume2");
  Port* port = K().Resolve(name);
  if (port == nullptr || port->kind != Port::Kind::Token) {
    K().problems.push_back("task_resume2 with 0x" + std::to_string(name) + ", not a suspension token we hold");
    return MACH_SEND_INVALID_DEST;
  }
  Task* task = K().FindTaskBySerial(port->taskSerial);
  const int kr = call.Inject(task, nullptr);
  if (kr == MACH_SEND_INVALID_DEST) return kr;
  if (port->tokenHeld && task != nullptr) K().DropHold(*task);
  K().ports.erase(name);
  if (kr != 0) return kr;  // the server's answer: the token is consumed all the same
  return task == nullptr || !task->alive ? KERN_INVALID_ARGUMENT : KERN_SUCCESS;
}

kern_return_t mach_vm_read_overwrite(mach_port_t taskName, mach_vm_address_t address, mach_vm_size_t size,
                                     mach_vm_address_t data, mach_vm_size_t* outsize) {
  Kernel::Call call(K(), "mach_vm_read_overwrite");
  Task* task = K().TaskOf(taskName);
  if (int kr = call.Inject(task, nullptr)) return kr;
  if (task == nullptr || !task->alive) return MACH_SEND_INVALID_DEST;
  K().clockNs_ += task->readCostNs;
  auto* to = reinterpret_cast<uint8_t*>(data);
  for (size_t done = 0; done < size;) {
    const uint64_t at = address + done;
    auto page = task->memory.find(at & ~uint64_t{4095});
    if (page == task->memory.end()) return KERN_INVALID_ADDRESS;
    const size_t n = std::min<size_t>(size - done, 4096 - (at & 4095));
    std::memcpy(to + done, page->second.data() + (at & 4095), n);
    done += n;
  }
  *outsize = size;
  return KERN_SUCCESS;
}

int proc_pidinfo(int pid, int flavor, uint64_t arg, void* buffer, int size) {
  Kernel::Call call(K(), "proc_pidinfo");
  Task* task = K().FindTask(pid);
  if (int kr = call.Inject(task, nullptr)) return errno = ErrnoFor(kr), 0;
  // bsd/kern/proc_info.c: PROC_PIDT_SHORTBSDINFO and PROC_PIDUNIQIDENTIFIERINFO (and the
  // BSDINFO flavors) look among zombies when arg is non-zero.
  const bool zombie = task != nullptr && task->status == SZOMB;
  const bool findZombie = (flavor == PROC_PIDT_SHORTBSDINFO || flavor == iokitsnap::darwin::kProcPidUniqIdentifierInfo) && arg != 0;
  if (task == nullptr || (!task->alive && !zombie) || (zombie && !findZombie)) {
    return errno = ESRCH, 0;
  }
  if (flavor == iokitsnap::darwin::kProcPidUniqIdentifierInfo) {
    if (size < static_cast<int>(sizeof(iokitsnap::darwin::ProcUniqIdentifierInfo))) return errno = ENOMEM, 0;
    iokitsnap::darwin::ProcUniqIdentifierInfo info{};
    info.p_uniqueid = task->uniqueId;
    info.p_idversion = task->idVersion;
    std::memcpy(buffer, &info, sizeof info);
    return sizeof info;
  }
  if (flavor == iokitsnap::darwin::kProcPidArchInfo) {
    iokitsnap::darwin::ProcArchInfo info{};
    info.p_cputype = task->cpuType;
    std::memcpy(buffer, &info, sizeof info);
    return sizeof info;
  }
  if (flavor == PROC_PIDT_SHORTBSDINFO) {
    if (size < static_cast<int>(sizeof(proc_bsdshortinfo))) return errno = ENOMEM, 0;
    proc_bsdshortinfo info{};
    info.pbsi_pid = static_cast<uint32_t>(pid);
    info.pbsi_status = static_cast<uint32_t>(task->status);
    info.pbsi_flags = task->flags;
    std::strncpy(info.pbsi_comm, task->comm.c_str(), sizeof info.pbsi_comm - 1);
    std::memcpy(buffer, &info, sizeof info);
    return sizeof info;
  }
  if (flavor == PROC_PIDTASKINFO) {
    proc_taskinfo info{};
    for (const Thread& thread : task->threads) info.pti_threadnum += thread.vanished ? 0 : 1;
    std::memcpy(buffer, &info, sizeof info);
    return sizeof info;
  }
  if (flavor == 28) {  // PROC_PIDLISTTHREADIDS
    int written = 0;
    auto* ids = static_cast<uint64_t*>(buffer);
    for (const Thread& thread : task->threads) {
      if (thread.vanished) continue;
      if ((written + 1) * static_cast<int>(sizeof(uint64_t)) > size) break;
      ids[written++] = thread.tid;
    }
    return written * static_cast<int>(sizeof(uint64_t));
  }
  if (flavor == PROC_PIDTHREADID64INFO) {
    for (const Thread& thread : task->threads) {
      if (thread.tid != arg || thread.vanished) continue;
      proc_threadinfo info{};
      info.pth_run_state = thread.runState;
      info.pth_user_time = thread.userUs * 1000;
      info.pth_system_time = thread.systemUs * 1000;
      std::strncpy(info.pth_name, thread.name.c_str(), sizeof info.pth_name - 1);
      std::memcpy(buffer, &info, sizeof info);
      return sizeof info;
    }
    return errno = ESRCH, 0;
  }
  return errno = EINVAL, 0;
}

int proc_pidfdinfo(int pid, int fd, int flavor, void* buffer, int size) {
  Kernel::Call call(K(), "proc_pidfdinfo");
  Task* task = K().FindTask(pid);
  if (int kr = call.Inject(task, nullptr)) return errno = ErrnoFor(kr), 0;
  if (task == nullptr || !task->alive) return errno = ESRCH, 0;
  auto it = task->fdPaths.find(fd);
  if (flavor != PROC_PIDFDVNODEPATHINFO || it == task->fdPaths.end()) return errno = EBADF, 0;
  if (size < static_cast<int>(sizeof(vnode_fdinfowithpath))) return errno = ENOMEM, 0;
  vnode_fdinfowithpath info{};
  std::strncpy(info.pvip.vip_path, it->second.c_str(), sizeof info.pvip.vip_path - 1);
  std::memcpy(buffer, &info, sizeof info);
  return sizeof info;
}

}  // extern "C"

namespace iokitsnap {

uint64_t MonotonicNs() { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }

namespace darwin {

// libdyld's SPI, as the fake kernel serves it: the images the scenario listed.
bool ForEachDyldImage(task_t taskName, const std::function<void(uint64_t, const char*)>& visit, kern_return_t* error) {
  std::vector<std::pair<uint64_t, std::string>> images;
  {
    Kernel::Call call(K(), "_dyld_process_info_create");
    Task* task = K().TaskOf(taskName);
    if (int kr = call.Inject(task, nullptr)) return *error = kr, false;
    if (task == nullptr || !task->alive) return *error = MACH_SEND_INVALID_DEST, false;
    images = task->libdyldImages;
  }
  for (const auto& [address, path] : images) visit(address, path.c_str());
  *error = KERN_SUCCESS;
  return true;
}

}  // namespace darwin
}  // namespace iokitsnap
