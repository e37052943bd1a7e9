// SampleThreads / OpenThreadSampler for macOS.
//
// With the target's task port (our own task, or task_for_pid when the system
// grants it): task_threads, then per thread THREAD_BASIC_INFO (run state, CPU
// time, suspend count), THREAD_IDENTIFIER_INFO (the 64-bit thread_id that sample
// and spindump print: ThreadRecord.tid), THREAD_EXTENDED_INFO (name), and for a
// waiting thread its registers → the trap it is blocked in. All of that is read
// before our own stack walk suspends anything. The run state alone does not show a
// stopped process: TH_STATE_STOPPED is only the moment thread_stop holds a thread,
// and a SIGSTOPped, task_suspend'ed or debugger-held task's threads read WAITING
// with their own suspend count 0. pbsi_status SSTOP and the task's suspend count
// (MACH_TASK_BASIC_INFO) say it: such a task's threads are reported `stopped`.
// Stacks (opt-in) come last, one suspended thread at a time (stacks.h).
//
// Without it (task_for_pid denied: another user's process, a hardened target,
// no entitlement): libproc. PROC_PIDLISTTHREADIDS lists the same 64-bit thread ids
// and PROC_PIDTHREADID64INFO reads a proc_threadinfo by id (run state and flags as
// THREAD_BASIC_INFO has them, CPU time already in ns, name), so tids agree between
// the two paths. Registers, suspend counts and stacks need the task port; one
// limits entry says so and how to get it.
#include <errno.h>
#include <libproc.h>
#include <mach/mach.h>
#include <signal.h>
#include <sys/proc.h>
#include <sys/proc_info.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../backend.h"
#include "../blocking.h"
#include "../darwin_decode.h"
#include "proc_info_private.h"
#include "registers.h"
#include "scoped.h"
#include "stacks.h"

namespace iokitsnap {
namespace {

using darwin::ImageMap;
using darwin::ReadTaskMemory;
using darwin::ReadThreadRegisters;
using darwin::ScopedMachSendRight;
using darwin::ScopedThreadList;
using darwin::StackWalk;
using darwin::ThreadRegisters;

constexpr uint32_t kMaxStackDepth = 1024;           // whatever maxStackDepth asks for
// All the time one sample may keep its target (or, in our own process, its threads)
// suspended: a production process is frozen while held. Far below the JS deadline
// (timeoutMs, 10 s by default), so the walk ends, and resumes, before the probe is abandoned.
constexpr uint64_t kSuspensionBudgetNs = 100 * 1000000;
constexpr int kThreadListAttempts = 4;              // threads appear while we list them

// One stack walk of our own process at a time, process-wide: each walk skips only
// its own thread, so two concurrent walks (snapshot() and sampleThreads() of
// process.pid, two worker_threads) could each suspend the other's walker, and both
// park for good.
std::mutex& SelfWalkLock() {
  static std::mutex lock;
  return lock;
}

const char kTaskPortHint[] =
    "run iokit-snap as root (sudo), or run it from a node binary signed with the "
    "com.apple.security.cs.debugger entitlement against a target that allows debugging "
    "(signed with get-task-allow, or not hardened). System Integrity Protection keeps "
    "Apple's own processes closed even to root.";

std::string Hex(kern_return_t kr) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%x", static_cast<unsigned>(kr));
  return buffer;
}

std::string Subject(int32_t pid) { return "pid " + std::to_string(pid); }

// ---------------------------------------------------------------- the process

struct ProcessIdentity {
  std::string name;
  bool zombie = false;
  bool stopped = false;  // SSTOP: SIGSTOPped or stopped by a tracer; every thread is held
  bool exiting = false;  // PROC_FLAG_INEXIT: working its way through exit()
};

// PROC_PIDT_SHORTBSDINFO is answered for any process, whoever owns it, so it
// separates "no such process" (ESRCH) from "not allowed" cleanly. Its argument 1
// asks the kernel to look among zombies too (bsd/kern/proc_info.c: findzomb is set
// only when arg is 1 for this flavor); with 0 a zombie reads as ESRCH.
ProcessIdentity ReadIdentity(int32_t pid) {
  proc_bsdshortinfo info;
  std::memset(&info, 0, sizeof info);
  errno = 0;
  const int size = proc_pidinfo(pid, PROC_PIDT_SHORTBSDINFO, 1, &info, sizeof info);
  if (size == static_cast<int>(sizeof info)) {
    ProcessIdentity identity;
    identity.name = std::string(info.pbsi_comm, strnlen(info.pbsi_comm, sizeof info.pbsi_comm));
    identity.zombie = info.pbsi_status == SZOMB;
    identity.stopped = info.pbsi_status == SSTOP;
    identity.exiting = (info.pbsi_flags & PROC_FLAG_INEXIT) != 0;
    return identity;
  }
  const int error = errno;
  if (error == ESRCH || (kill(pid, 0) != 0 && errno == ESRCH)) {
    throw SnapError("ESRCH", "no process with pid " + std::to_string(pid) + " (it may have exited)", "proc_pidinfo",
                    ESRCH);
  }
  if (error == EPERM || error == EACCES) {
    throw SnapError("EPERM", "macOS does not let this process read pid " + std::to_string(pid) +
                                 " (a sandbox may deny proc_pidinfo); run iokit-snap outside the sandbox or as root",
                    "proc_pidinfo", error);
  }
  throw SnapError("EIO", "proc_pidinfo(PROC_PIDT_SHORTBSDINFO) failed for pid " + std::to_string(pid) + ": " +
                             std::strerror(error),
                  "proc_pidinfo", error);
}

// The target's task port: ours without asking, another's through task_for_pid.
class TaskPort {
 public:
  static TaskPort Self() { return TaskPort(mach_task_self(), ScopedMachSendRight()); }
  static std::optional<TaskPort> ForPid(int32_t pid, kern_return_t* error) {
    ScopedMachSendRight port;
    kern_return_t kr = task_for_pid(mach_task_self(), pid, port.receive());
    if (kr != KERN_SUCCESS || !port) {
      *error = kr;
      return std::nullopt;
    }
    task_t task = port.get();
    return TaskPort(task, std::move(port));
  }
  task_t get() const { return task_; }
  bool isSelf() const { return task_ == mach_task_self(); }

 private:
  TaskPort(task_t task, ScopedMachSendRight owned) : task_(task), owned_(std::move(owned)) {}
  task_t task_;
  ScopedMachSendRight owned_;  // empty for our own task (mach_task_self is not ours to release)
};

ProcessRecord EmptyRecord(int32_t pid, const ProcessIdentity& identity) {
  ProcessRecord record;
  record.pid = pid;
  record.name = identity.name;
  record.sampledAtNs = MonotonicNs();
  return record;
}

void AddZombieLimit(ProcessRecord& record) {
  record.limits.push_back(LimitRecord{Subject(record.pid), "threads", "ESRCH",
                                      "the process has exited and waits for its parent to reap it (a zombie); "
                                      "it has no threads left",
                                      ""});
}

// ---------------------------------------------------------------- with the task port

// The call a waiting thread is blocked in, from its registers: the number register
// decoded as xnu decodes it, trusted only when the saved pc follows a system-call
// instruction (a thread waiting in a page fault has a meaningless x16/rax).
std::optional<BlockedRecord> BlockedIn(task_t task, int32_t pid, const ThreadRegisters& registers) {
  const ArchKind arch = HostArch();
  std::optional<int64_t> number = DarwinCallNumberFromRegister(arch, registers.callNumber);
  if (!number) return std::nullopt;
  const size_t length = SyscallInstructionLength(arch);
  uint8_t instruction[4] = {};
  if (registers.pc < length || !ReadTaskMemory(task, registers.pc - length, instruction, length) ||
      !IsSyscallInstruction(arch, instruction, length)) {
    return std::nullopt;
  }
  uint64_t fdArgument = registers.argument0;
  if (*number == 0) {  // syscall(2): the real number is the first argument (xnu takes its low bits)
    *number = static_cast<int64_t>(arch == ArchKind::Arm64 ? (registers.argument0 & 0xffff)
                                                            : (registers.argument0 & 0xffffffff));
    fdArgument = registers.argument1;
  }
  BlockedRecord blocked;
  blocked.number = *number;
  blocked.call = CallNameOrNumber(OsKind::Darwin, arch, *number);
  if (FirstArgIsFd(OsKind::Darwin, blocked.call)) {
    const int32_t fd = static_cast<int32_t>(static_cast<uint32_t>(fdArgument));
    if (fd >= 0) {
      blocked.fd = fd;
      vnode_fdinfowithpath vnode;
      // Only files and devices have a path (/dev/…); sockets, pipes and kqueues do not.
      if (proc_pidfdinfo(pid, fd, PROC_PIDFDVNODEPATHINFO, &vnode, sizeof vnode) == static_cast<int>(sizeof vnode)) {
        const char* path = vnode.pvip.vip_path;
        const size_t size = strnlen(path, sizeof vnode.pvip.vip_path);
        if (size > 0) blocked.target = std::string(path, size);
      }
    }
  }
  return blocked;
}

// MACH_TASK_BASIC_INFO's suspend_count is the task's user_stop_count: the
// task_suspend holds (lldb, another sampler), which no thread's own count shows.
std::optional<int32_t> TaskSuspendCount(task_t task) {
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(task, MACH_TASK_BASIC_INFO, reinterpret_cast<task_info_t>(&info), &count) != KERN_SUCCESS) {
    return std::nullopt;
  }
  return std::max(info.suspend_count, 0);
}

// task_threads fails with KERN_FAILURE once the task is inactive (it is exiting:
// osfmk/kern/task.c task_threads_internal), and with a dead or invalid port after.
[[noreturn]] void ThrowThreadListError(int32_t pid, kern_return_t kr) {
  bool gone = kr == MACH_SEND_INVALID_DEST || kr == KERN_INVALID_ARGUMENT || kr == KERN_TERMINATED;
  if (kr == KERN_FAILURE) {
    try {
      const ProcessIdentity now = ReadIdentity(pid);
      gone = now.zombie || now.exiting;
    } catch (const SnapError& e) {
      gone = e.code() == "ESRCH";
    }
  }
  if (gone) throw SnapError("ESRCH", "pid " + std::to_string(pid) + " has exited", "task_threads", kr);
  throw SnapError("EIO", "task_threads failed for pid " + std::to_string(pid) + " (" + Hex(kr) + ")", "task_threads",
                  kr);
}

ProcessRecord SampleWithTask(const TaskPort& task, int32_t pid, const ProcessIdentity& identity,
                             const ThreadOptions& options) {
  ProcessRecord record = EmptyRecord(pid, identity);
  if (identity.zombie) {
    AddZombieLimit(record);
    return record;
  }
  // A task held by task_suspend (lldb, another sampler) shows its waiting threads as
  // TH_STATE_WAITING with their own suspend count 0: only the task's count tells.
  const std::optional<int32_t> taskSuspendCount = TaskSuspendCount(task.get());
  if (!taskSuspendCount) {
    record.limits.push_back(LimitRecord{Subject(pid), "suspendCount", "EIO",
                                        "task_info(MACH_TASK_BASIC_INFO) failed, so a suspension of the whole task "
                                        "is not counted: a suspended task may read as waiting",
                                        ""});
  }
  const bool held = identity.stopped || taskSuspendCount.value_or(0) > 0;
  ScopedThreadList threads;
  kern_return_t kr = threads.Load(task.get());
  if (kr != KERN_SUCCESS) ThrowThreadListError(pid, kr);
  const bool full = options.detail == ThreadDetail::Full;
  std::vector<thread_act_t> ports;  // of record.threads[i], for the stack walks
  ports.reserve(threads.size());
  record.threads.reserve(threads.size());
  size_t registerFailures = 0;
  kern_return_t lastRegisterError = KERN_SUCCESS;

  for (size_t i = 0; i < threads.size(); ++i) {
    thread_act_t thread = threads[i];
    // A thread that ends between task_threads and here fails these calls: skip it.
    thread_basic_info_data_t basic;
    mach_msg_type_number_t count = THREAD_BASIC_INFO_COUNT;
    if (thread_info(thread, THREAD_BASIC_INFO, reinterpret_cast<thread_info_t>(&basic), &count) != KERN_SUCCESS) continue;
    thread_identifier_info_data_t identifier;
    count = THREAD_IDENTIFIER_INFO_COUNT;
    if (thread_info(thread, THREAD_IDENTIFIER_INFO, reinterpret_cast<thread_info_t>(&identifier), &count) != KERN_SUCCESS) {
      continue;
    }
    ThreadRecord thread_record;
    thread_record.tid = identifier.thread_id;
    const ThreadState runState = ThreadStateFromMach(basic.run_state, basic.flags);
    // TH_STATE_STOPPED is only the moment thread_stop holds it; a SIGSTOPped or
    // suspended task's threads say WAITING. The process status and the task's count do not.
    thread_record.state = held ? ThreadState::Stopped : runState;
    thread_record.userNs = TimeValueToNs(basic.user_time.seconds, basic.user_time.microseconds);
    thread_record.systemNs = TimeValueToNs(basic.system_time.seconds, basic.system_time.microseconds);
    // The holds that keep this thread from running: its own and its task's.
    thread_record.suspendCount = basic.suspend_count + taskSuspendCount.value_or(0);
    if (full) {
      thread_extended_info_data_t extended;
      count = THREAD_EXTENDED_INFO_COUNT;
      if (thread_info(thread, THREAD_EXTENDED_INFO, reinterpret_cast<thread_info_t>(&extended), &count) == KERN_SUCCESS) {
        const size_t length = strnlen(extended.pth_name, sizeof extended.pth_name);
        if (length > 0) thread_record.name = std::string(extended.pth_name, length);
      }
      // A stopped task's thread keeps the call it was waiting in when it was stopped.
      if (runState == ThreadState::Waiting || runState == ThreadState::Uninterruptible) {
        kern_return_t error = KERN_SUCCESS;
        if (std::optional<ThreadRegisters> registers = ReadThreadRegisters(thread, &error)) {
          thread_record.blockedIn = BlockedIn(task.get(), pid, *registers);
        } else {
          ++registerFailures;
          lastRegisterError = error;
        }
      }
    }
    record.threads.push_back(std::move(thread_record));
    ports.push_back(thread);
  }

  if (registerFailures > 0) {
    record.limits.push_back(LimitRecord{Subject(pid), "blockedIn", "EIO",
                                        "thread_get_state failed for " + std::to_string(registerFailures) +
                                            " waiting thread(s) (last " + Hex(lastRegisterError) +
                                            "); their blockedIn is null",
                                        ""});
  }

  const uint32_t depth = std::min(options.maxStackDepth, kMaxStackDepth);
  if (full && options.stacks && depth > 0) {
    std::string problem;
    ImageMap images = ImageMap::Read(task.get(), &problem);
    if (!problem.empty()) {
      record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO",
                                          problem + "; stack frames carry no module", ""});
    }
    // The probe thread sampling its own process cannot suspend itself; its stack is
    // left out (it is this sampler, not the program being diagnosed).
    ScopedMachSendRight self(task.isSelf() ? mach_thread_self() : MACH_PORT_NULL);
    std::vector<StackWalk> walks(ports.size());
    size_t notWalked = 0;
    kern_return_t holdError = KERN_SUCCESS;
    {
      // Our own process: one thread at a time (the task cannot stop itself), and one
      // walk at a time in the whole process, or two walkers could suspend each other.
      // Another process: the whole task at once, through a token that ends the hold
      // even if we die (ScopedTaskSuspension), for kSuspensionBudgetNs at most.
      std::unique_lock<std::mutex> selfWalk(SelfWalkLock(), std::defer_lock);
      std::optional<darwin::ScopedTaskSuspension> hold;
      if (task.isSelf()) {
        selfWalk.lock();
      } else {
        hold.emplace(task.get());
        holdError = hold->result();
      }
      const uint64_t deadline = MonotonicNs() + kSuspensionBudgetNs;
      for (size_t i = 0; i < ports.size() && holdError == KERN_SUCCESS; ++i) {
        if (self && ports[i] == self.get()) continue;
        if (MonotonicNs() >= deadline) {
          ++notWalked;
          continue;
        }
        walks[i] = darwin::WalkStack(task.get(), ports[i], depth, deadline, task.isSelf());
      }
    }  // resumed here; what follows allocates freely
    if (holdError != KERN_SUCCESS) {
      record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO",
                                          "task_suspend2 failed (" + Hex(holdError) +
                                              "), so no stack was read (the process may have exited)",
                                          ""});
      return record;
    }
    size_t suspendFailures = 0;
    size_t outOfTime = 0;
    kern_return_t lastSuspendError = KERN_SUCCESS;
    for (size_t i = 0; i < ports.size(); ++i) {
      const StackWalk& walk = walks[i];
      if (!walk.ok) {
        if (walk.error == KERN_SUCCESS) continue;  // not attempted: the walker itself, or out of time
        ++suspendFailures;
        lastSuspendError = walk.error;
        continue;
      }
      ThreadRecord& thread_record = record.threads[i];
      thread_record.pc = walk.pcs.front();
      std::vector<FrameRecord> frames(walk.pcs.size());
      for (size_t f = 0; f < walk.pcs.size(); ++f) {
        frames[f].pc = walk.pcs[f];
        images.Resolve(frames[f]);
      }
      thread_record.stack = std::move(frames);
      if (walk.outOfTime) ++outOfTime;
    }
    if (suspendFailures > 0) {
      record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO",
                                          "the stacks of " + std::to_string(suspendFailures) +
                                              " thread(s) could not be read (thread_suspend/thread_get_state, last " +
                                              Hex(lastSuspendError) + "; a thread may have exited)",
                                          ""});
    }
    if (outOfTime + notWalked > 0) {
      record.limits.push_back(LimitRecord{
          Subject(pid), "stack", "ETIMEDOUT",
          "the " + std::to_string(kSuspensionBudgetNs / 1000000) +
              " ms a sample may keep the target suspended ran out: " + std::to_string(outOfTime) +
              " stack(s) are partial and " + std::to_string(notWalked) + " thread(s) were not walked (stack null)",
          "sample again: each sample walks from the first thread"});
    }
  }
  return record;
}

// ---------------------------------------------------------------- without it: libproc

[[noreturn]] void ThrowProcInfoError(int32_t pid, int error, const char* what) {
  if (error == ESRCH) {
    throw SnapError("ESRCH", "pid " + std::to_string(pid) + " has exited", "proc_pidinfo", error);
  }
  if (error == EPERM || error == EACCES) {
    throw SnapError("EPERM",
                    "pid " + std::to_string(pid) +
                        " belongs to another user: macOS shows its threads only to root. Run iokit-snap with sudo",
                    "proc_pidinfo", error);
  }
  throw SnapError("EIO", std::string("proc_pidinfo(") + what + ") failed for pid " + std::to_string(pid) + ": " +
                             std::strerror(error),
                  "proc_pidinfo", error);
}

std::vector<uint64_t> ListThreadIds(int32_t pid) {
  proc_taskinfo task;
  errno = 0;
  if (proc_pidinfo(pid, PROC_PIDTASKINFO, 0, &task, sizeof task) != static_cast<int>(sizeof task)) {
    ThrowProcInfoError(pid, errno, "PROC_PIDTASKINFO");
  }
  size_t capacity = static_cast<size_t>(std::max(task.pti_threadnum, 0)) + 16;
  std::vector<uint64_t> ids;
  for (int attempt = 0; attempt < kThreadListAttempts; ++attempt, capacity *= 2) {
    ids.assign(capacity, 0);
    errno = 0;
    const int bytes = proc_pidinfo(pid, darwin::kProcPidListThreadIds, 0, ids.data(),
                                   static_cast<int>(ids.size() * sizeof(uint64_t)));
    if (bytes <= 0) ThrowProcInfoError(pid, errno, "PROC_PIDLISTTHREADIDS");
    const size_t listed = static_cast<size_t>(bytes) / sizeof(uint64_t);
    if (listed < capacity) {  // a full buffer may have been cut short: ask again with more room
      ids.resize(listed);
      return ids;
    }
  }
  return ids;
}

ProcessRecord SampleWithProcInfo(int32_t pid, const ProcessIdentity& identity, const ThreadOptions& options,
                                 kern_return_t taskPortError) {
  ProcessRecord record = EmptyRecord(pid, identity);
  if (identity.zombie) {
    AddZombieLimit(record);
    return record;
  }
  for (uint64_t id : ListThreadIds(pid)) {
    proc_threadinfo info;
    if (proc_pidinfo(pid, PROC_PIDTHREADID64INFO, id, &info, sizeof info) != static_cast<int>(sizeof info)) {
      continue;  // the thread ended after the list was taken
    }
    ThreadRecord thread;
    thread.tid = id;
    thread.state = identity.stopped ? ThreadState::Stopped : ThreadStateFromMach(info.pth_run_state, info.pth_flags);
    thread.userNs = info.pth_user_time;  // already ns (xnu fill_taskthreadinfo)
    thread.systemNs = info.pth_system_time;
    const size_t length = strnlen(info.pth_name, sizeof info.pth_name);
    if (length > 0) thread.name = std::string(info.pth_name, length);
    record.threads.push_back(std::move(thread));
  }
  const bool full = options.detail == ThreadDetail::Full;
  std::string missing = full ? "blockedIn and suspendCount" : "suspendCount";
  if (full && options.stacks) missing = "blockedIn, suspendCount and stacks";
  record.limits.push_back(LimitRecord{
      Subject(pid), full ? "blockedIn" : "suspendCount", "EPERM",
      "task_for_pid was denied (" + Hex(taskPortError) +
          "), so the threads come from proc_pidinfo: state, CPU time and name only; " + missing +
          " need the task port and are null",
      kTaskPortHint});
  return record;
}

// ---------------------------------------------------------------- entry points

std::optional<TaskPort> OpenTask(int32_t pid, kern_return_t* error) {
  if (pid == getpid()) return TaskPort::Self();
  return TaskPort::ForPid(pid, error);
}

class DarwinThreadSampler : public ThreadSampler {
 public:
  DarwinThreadSampler(int32_t pid, const ThreadOptions& options) : pid_(pid), options_(options) {
    ReadIdentity(pid_);  // ESRCH now rather than at the first sample
    task_ = OpenTask(pid_, &taskPortError_);
  }

  ProcessRecord Sample() override {
    if (closed_) throw SnapError("EINVAL", "this thread sampler is closed; create a new one");
    const ProcessIdentity identity = ReadIdentity(pid_);
    return task_ ? SampleWithTask(*task_, pid_, identity, options_)
                 : SampleWithProcInfo(pid_, identity, options_, taskPortError_);
  }

  void Close() override {
    closed_ = true;
    task_.reset();  // gives the task port back now, not at GC
  }

 private:
  int32_t pid_;
  ThreadOptions options_;
  std::optional<TaskPort> task_;  // kept between samples; threads are listed anew each time
  kern_return_t taskPortError_ = KERN_SUCCESS;
  bool closed_ = false;
};

}  // namespace

ProcessRecord SampleThreads(int32_t pid, const ThreadOptions& options) {
  const ProcessIdentity identity = ReadIdentity(pid);
  kern_return_t taskPortError = KERN_SUCCESS;
  std::optional<TaskPort> task = OpenTask(pid, &taskPortError);
  return task ? SampleWithTask(*task, pid, identity, options)
              : SampleWithProcInfo(pid, identity, options, taskPortError);
}

std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t pid, const ThreadOptions& options) {
  return std::make_unique<DarwinThreadSampler>(pid, options);
}

}  // namespace iokitsnap
