// SampleThreads / OpenThreadSampler for macOS.
//
// With the target's task port (our own task; another's through task_read_for_pid, or
// task_for_pid where the read port is not to be had): task_threads, then per thread
// THREAD_BASIC_INFO (run state, CPU time, suspend count), THREAD_IDENTIFIER_INFO (the
// 64-bit thread_id that sample and spindump print: ThreadRecord.tid),
// THREAD_EXTENDED_INFO (name), and for a waiting thread its registers → the trap it is
// blocked in. All of that is read before our own stack walk suspends anything. The run
// state alone does not show a stopped process: TH_STATE_STOPPED is only the moment
// thread_stop holds a thread, and a SIGSTOPped, task_suspend'ed or debugger-held task's
// threads read WAITING with their own suspend count 0. pbsi_status SSTOP and the task's
// suspend count (MACH_TASK_BASIC_INFO) say it: such a task's threads are reported
// `stopped`. Stacks (opt-in) come last (stacks.h).
//
// Without it (both refused: another user's process, a hardened target, no entitlement;
// or pid 0, the kernel): libproc. PROC_PIDLISTTHREADIDS lists the same 64-bit thread
// ids and PROC_PIDTHREADID64INFO reads a proc_threadinfo by id (run state and flags as
// THREAD_BASIC_INFO has them, CPU time already in ns, name), so tids agree between the
// two paths. Registers, suspend counts and stacks need the task port; one limits entry
// says so and how to get it.
//
// A process is pinned by p_uniqueid (PROC_PIDUNIQIDENTIFIERINFO): a pid that comes to
// name another process reads as the first one having exited, on both paths. An exec
// keeps p_uniqueid but gives the process a new task (bsd/kern/kern_exec.c:
// proc_exec_switch_task, then task_terminate_internal of the old one) and a new
// p_idversion: a held port then names a dead task, and the sampler opens the new one.
#include <errno.h>
#include <fcntl.h>
#include <libproc.h>
#include <mach/mach.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/proc.h>
#include <sys/proc_info.h>
#include <sys/stat.h>
#include <sys/sysctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../backend.h"
#include "../blocking.h"
#include "../darwin_decode.h"
#include "deadline.h"
#include "proc_info_private.h"
#include "registers.h"
#include "scoped.h"
#include "stacks.h"

// Every iokit-snap process takes this lock (flock, exclusive) for as long as it holds
// another process suspended: see CrossProcessHoldLock. /tmp is shared by every user;
// the harness builds with its own path.
#ifndef IOKITSNAP_HOLD_LOCK_PATH
#define IOKITSNAP_HOLD_LOCK_PATH "/tmp/.iokit-snap-hold.lock"
#endif

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
// How long a sampler waits for another iokit-snap process to end its hold (each holds
// for kSuspensionBudgetNs at most) before it gives up on stacks for this sample.
constexpr auto kHoldLockWait = std::chrono::milliseconds(1000);

// One stack walk of our own process at a time, process-wide: each walk skips only
// its own thread, so two concurrent walks (snapshot() and sampleThreads() of
// process.pid, two worker_threads) could each suspend the other's walker, and both
// park for good.
std::mutex& SelfWalkLock() {
  static std::mutex lock;
  return lock;
}

const char kTaskPortHint[] =
    "run iokit-snap as root (sudo), or from a node binary signed with the com.apple.security.cs.debugger "
    "entitlement. Either way the target must allow it: a program signed with the hardened runtime and without "
    "the get-task-allow entitlement (official Node.js builds, most notarized apps) is closed even to root, and "
    "System Integrity Protection keeps Apple's own processes closed too.";

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
  bool stopped = false;   // SSTOP: SIGSTOPped or stopped by a tracer; every thread is held
  bool exiting = false;   // PROC_FLAG_INEXIT: working its way through exit()
  uint64_t uniqueId = 0;  // p_uniqueid: this process, for its whole life (kept by exec)
  int32_t idVersion = 0;  // p_idversion: renewed by every exec
};

[[noreturn]] void ThrowIdentityError(int32_t pid, int error, const char* flavor) {
  if (error == ESRCH || (kill(pid, 0) != 0 && errno == ESRCH)) {
    throw SnapError("ESRCH", "no process with pid " + std::to_string(pid) + " (it may have exited)", "proc_pidinfo",
                    ESRCH);
  }
  if (error == EPERM || error == EACCES) {
    throw SnapError("EPERM", "macOS does not let this process read pid " + std::to_string(pid) +
                                 " (a sandbox may deny proc_pidinfo); run iokit-snap outside the sandbox or as root",
                    "proc_pidinfo", error);
  }
  throw SnapError("EIO", std::string("proc_pidinfo(") + flavor + ") failed for pid " + std::to_string(pid) + ": " +
                             std::strerror(error),
                  "proc_pidinfo", error);
}

// p_uniqueid and p_idversion (see proc_info_private.h).
void ReadUniqueIdentity(int32_t pid, ProcessIdentity& identity) {
  darwin::ProcUniqIdentifierInfo info;
  std::memset(&info, 0, sizeof info);
  errno = 0;
  if (proc_pidinfo(pid, darwin::kProcPidUniqIdentifierInfo, 1, &info, sizeof info) != static_cast<int>(sizeof info)) {
    ThrowIdentityError(pid, errno, "PROC_PIDUNIQIDENTIFIERINFO");
  }
  identity.uniqueId = info.p_uniqueid;
  identity.idVersion = info.p_idversion;
}

// PROC_PIDT_SHORTBSDINFO and PROC_PIDUNIQIDENTIFIERINFO are answered for any process,
// whoever owns it (bsd/kern/proc_info.c: NO_CHECK_SAME_USER), so they separate "no such
// process" (ESRCH) from "not allowed" cleanly. For both, any non-zero argument makes
// the kernel look among zombies too (proc_info.c: `if (arg) findzomb = 1;`); with 0 a
// zombie reads as ESRCH.
ProcessIdentity ReadIdentity(int32_t pid) {
  proc_bsdshortinfo info;
  std::memset(&info, 0, sizeof info);
  errno = 0;
  const int size = proc_pidinfo(pid, PROC_PIDT_SHORTBSDINFO, 1, &info, sizeof info);
  if (size != static_cast<int>(sizeof info)) ThrowIdentityError(pid, errno, "PROC_PIDT_SHORTBSDINFO");
  ProcessIdentity identity;
  identity.name = std::string(info.pbsi_comm, strnlen(info.pbsi_comm, sizeof info.pbsi_comm));
  identity.zombie = info.pbsi_status == SZOMB;
  identity.stopped = info.pbsi_status == SSTOP;
  identity.exiting = (info.pbsi_flags & PROC_FLAG_INEXIT) != 0;
  ReadUniqueIdentity(pid, identity);
  return identity;
}

[[noreturn]] void ThrowExited(int32_t pid, const char* syscall, int64_t kern) {
  throw SnapError("ESRCH", "pid " + std::to_string(pid) + " has exited", syscall, kern);
}

// The pid still names the process `pinned` was read from; ESRCH when it exited and
// the pid came to name another one.
void ExpectSameProcess(int32_t pid, const ProcessIdentity& pinned, const ProcessIdentity& now) {
  if (now.uniqueId == pinned.uniqueId) return;
  throw SnapError("ESRCH",
                  "pid " + std::to_string(pid) + " has exited: the pid now names another process (" + now.name + ")",
                  "proc_pidinfo", ESRCH);
}

// ---------------------------------------------------------------- the task port

// The target's task port: ours without asking, another's read or control port.
class TaskPort {
 public:
  static TaskPort Self() { return TaskPort(mach_task_self(), ScopedMachSendRight(), "our own task port"); }
  static TaskPort Owned(ScopedMachSendRight port, const char* what) {
    task_t task = port.get();
    return TaskPort(task, std::move(port), what);
  }
  task_t get() const { return task_; }
  bool isSelf() const { return task_ == mach_task_self(); }
  const char* what() const { return what_; }

 private:
  TaskPort(task_t task, ScopedMachSendRight owned, const char* what)
      : task_(task), owned_(std::move(owned)), what_(what) {}
  task_t task_;
  ScopedMachSendRight owned_;  // empty for our own task (mach_task_self is not ours to release)
  const char* what_;
};

// What asking for a task port gave: the port, or why there is none.
struct TaskAccess {
  std::optional<TaskPort> port;
  std::string code;    // without a port: EPERM (refused), ETIMEDOUT (no answer), EAGAIN (no task yet)
  std::string reason;  // without a port: what happened, for the limit
  std::string hint;
  bool askAgain = false;  // a later sample may get a port (no answer, no task yet)
};

// Calls for a task port that did not return by their deadline and have not returned
// since. A non-root caller's task_read_for_pid/task_for_pid waits on an upcall to
// taskgated (kern_proc.c __KERNEL_WAITING_ON_TASKGATED_CHECK_ACCESS_UPCALL__), one
// daemon for the whole system: while one call is stuck there, a new one would wait
// behind it, so none is made (and a stuck taskgated costs one thread, not one per sample).
// Process-wide: taskgated is not per JS environment.
struct StuckTaskPortCalls {
  std::mutex mutex;
  uint32_t count = 0;
  uint64_t sinceNs = 0;
};
StuckTaskPortCalls& StuckCalls() {
  static StuckTaskPortCalls stuck;
  return stuck;
}

// One call's fate, shared by the caller (which may abandon it) and its worker.
struct CallFate {
  std::mutex mutex;
  bool done = false;
  bool abandoned = false;
};

// What the worker brings back. The port is released with it if nobody takes it
// (the call returned after the caller gave up).
struct TaskPortAnswer {
  ScopedMachSendRight port;
  const char* what = "";
  int readError = 0;                  // task_read_for_pid's errno (0: not tried or no error)
  bool readTried = false;
  kern_return_t controlError = KERN_SUCCESS;
  bool controlTried = false;
  bool noTask = false;                // an answer of success with a null port
};

// Everything the sampler does takes a read port (task.defs: task_threads task_inspect_t,
// task_suspend2 task_read_t, task_info task_name_t; thread_act.defs: thread_get_state,
// thread_suspend thread_read_t; mach_vm.defs: mach_vm_read_overwrite vm_map_read_t), so
// the read port is asked for first, and the control port only where that fails.
TaskPortAnswer AskForTaskPort(int32_t pid) {
  TaskPortAnswer answer;
  if (&task_read_for_pid != nullptr) {  // libsystem_kernel has it from macOS 11.3
    answer.readTried = true;
    ScopedMachSendRight port;
    errno = 0;
    const int result = task_read_for_pid(mach_task_self(), pid, port.receive());
    answer.readError = result == 0 ? 0 : (errno != 0 ? errno : EPERM);
    if (result == 0 && port) {
      answer.port = std::move(port);
      answer.what = "a task read port (task_read_for_pid)";
      return answer;
    }
    if (result == 0) answer.noTask = true;
  }
  answer.controlTried = true;
  ScopedMachSendRight port;
  answer.controlError = task_for_pid(mach_task_self(), pid, port.receive());
  if (answer.controlError == KERN_SUCCESS && port) {
    answer.port = std::move(port);
    answer.what = "a task control port (task_for_pid)";
    answer.noTask = false;
    return answer;
  }
  // kern_proc.c task_for_pid: KERN_SUCCESS with MACH_PORT_NULL when the proc has no task.
  if (answer.controlError == KERN_SUCCESS) answer.noTask = true;
  return answer;
}

std::string StuckFor() {
  StuckTaskPortCalls& stuck = StuckCalls();
  std::lock_guard<std::mutex> lock(stuck.mutex);
  if (stuck.count == 0) return "";
  return std::to_string(stuck.count) + " earlier call(s) have been waiting for " +
         std::to_string((MonotonicNs() - stuck.sinceNs) / 1000000) + " ms";
}

const char kTaskgatedHint[] =
    "a non-root caller's request waits on taskgated, which looks hung; this is itself evidence of a wedged "
    "system. Run iokit-snap as root (no taskgated upcall), or sample again later";

// The target's task port, asked for on a thread of its own with `callTimeoutMs`: a
// non-root caller's request may wait on taskgated for as long as that daemon takes.
TaskAccess OpenTask(int32_t pid, const ThreadOptions& options) {
  TaskAccess access;
  if (pid == getpid()) {
    access.port = TaskPort::Self();
    return access;
  }
  if (pid == 0) {  // kern_proc.c: task_for_pid and task_read_for_pid refuse pid 0 to everyone
    access.code = "EPERM";
    access.reason = "pid 0 is the kernel: macOS gives its task port to no process, root included";
    return access;
  }
  const std::string stuck = StuckFor();
  if (!stuck.empty()) {
    access.code = "ETIMEDOUT";
    access.reason = "no task port was asked for: " + stuck + " for task_read_for_pid/task_for_pid to return";
    access.hint = kTaskgatedHint;
    access.askAgain = true;
    return access;
  }
  auto fate = std::make_shared<CallFate>();
  std::optional<TaskPortAnswer> answer =
      darwin::RunWithDeadline(options.callTimeoutMs, [pid, fate]() {
        struct Finish {  // on every path: an abandoned call that returns is no longer stuck
          CallFate& fate;
          ~Finish() {
            std::lock_guard<std::mutex> lock(fate.mutex);
            fate.done = true;
            if (fate.abandoned) {
              std::lock_guard<std::mutex> stuckLock(StuckCalls().mutex);
              --StuckCalls().count;
            }
          }
        } finish{*fate};
        return AskForTaskPort(pid);
      });
  if (!answer) {
    {
      std::lock_guard<std::mutex> lock(fate->mutex);
      if (!fate->done) {
        fate->abandoned = true;
        std::lock_guard<std::mutex> stuckLock(StuckCalls().mutex);
        if (StuckCalls().count++ == 0) StuckCalls().sinceNs = MonotonicNs();
      }
    }
    access.code = "ETIMEDOUT";
    access.reason = "task_read_for_pid/task_for_pid did not return within " + std::to_string(options.callTimeoutMs) +
                    " ms";
    access.hint = kTaskgatedHint;
    access.askAgain = true;
    return access;
  }
  if (answer->port) {
    access.port = TaskPort::Owned(std::move(answer->port), answer->what);
    return access;
  }
  if (answer->noTask) {
    access.code = "EAGAIN";
    access.reason = "pid " + std::to_string(pid) + " has no task right now (it is being created, exec'ing or exiting)";
    access.hint = "sample again";
    access.askAgain = true;
    return access;
  }
  std::string tried;
  if (answer->readTried) tried = "task_read_for_pid (" + std::string(std::strerror(answer->readError)) + ") and ";
  access.code = "EPERM";
  access.reason = tried + "task_for_pid (" + Hex(answer->controlError) + ") were refused";
  access.hint = kTaskPortHint;
  return access;
}

// OpenTask for a process read as `identity`, which is then read again: a port obtained
// while the pid came to name another process (the call may have waited on taskgated)
// is not this process's.
TaskAccess OpenPinnedTask(int32_t pid, ProcessIdentity& identity, const ThreadOptions& options) {
  TaskAccess access = OpenTask(pid, options);
  if (access.port && !access.port->isSelf()) {
    ProcessIdentity now = identity;
    ReadUniqueIdentity(pid, now);
    ExpectSameProcess(pid, identity, now);
  }
  return access;
}

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

// macOS keeps when a thread last ran (thread->last_run_time, osfmk/kern/thread.h) but
// hands it to user space only in a stackshot (kern_stackshot.c, thread_snapshot
// ths_last_run_time: root, an entitlement, a private interface) and to kperf; no
// thread_info flavor or libproc call carries it (THREAD_BASIC_INFO's sleep_time is
// always 0: thread.c retrieve_thread_basic_info). See NOTES.md.
void AddOffCpuLimit(ProcessRecord& record) {
  record.limits.push_back(LimitRecord{
      Subject(record.pid), "offCpuNs", "ENOTSUP",
      "macOS gives user space no thread's last-run time (thread_info and proc_pidinfo do not carry it; only "
      "root-only stackshots do), so how long a thread has been off the CPU is not known from one sample",
      "compare two samples: a thread whose CPU time did not move was off the CPU in between"});
}

// ---------------------------------------------------------------- with the task port

// The hold that keeps a thread from running: the task's (SIGSTOP, task_suspend,
// task_suspend2: all count in user_stop_count) or its own (thread_suspend).
struct HeldRegisters {
  size_t argumentsWithheld = 0;  // arm64: a held thread's fd not taken from x0/x1
  size_t callUnknown = 0;        // x86_64: a held thread whose stub names no call
};

// The call a waiting thread is blocked in, from its registers: the number register
// decoded as xnu decodes it, trusted only when the saved pc follows a system-call
// instruction (a thread waiting in a page fault has a meaningless x16/rax).
//
// A held thread (`held`) may no longer be in its call: when the call returns, the kernel
// writes the result into the saved registers (arm64: x0 and x1, bsd/dev/arm/
// systemcalls.c arm_prepare_u64_syscall_return, and x0 for a Mach trap; x86_64: rax and
// rdx, bsd/dev/i386/systemcalls.c unix_syscall64) and the thread then parks in
// thread_apc_ast on its way back to user space (osfmk/kern/thread_act.c), reading
// WAITING with pc and the number register unchanged. So for a held thread: on arm64 the
// call (x16) stands but x0/x1 may be a byte count or an error, not the fd (nor the real
// number of an indirect syscall); on x86_64 rdi/rsi stand but rax may be the result, so
// the call is read from the libsystem_kernel stub's own code instead.
std::optional<BlockedRecord> BlockedIn(task_t task, int32_t pid, const ThreadRegisters& registers, bool held,
                                       HeldRegisters& counts) {
  const ArchKind arch = HostArch();
  const bool numberFromStub = held && arch == ArchKind::X86_64;
  std::optional<int64_t> number;
  if (!numberFromStub) {
    number = DarwinCallNumberFromRegister(arch, registers.callNumber);
    if (!number) return std::nullopt;
  }
  const size_t length = SyscallInstructionLength(arch);
  uint8_t instruction[4] = {};
  if (registers.pc < length || !ReadTaskMemory(task, registers.pc - length, instruction, length) ||
      !IsSyscallInstruction(arch, instruction, length)) {
    return std::nullopt;
  }
  if (numberFromStub) {
    uint8_t stub[kX86StubBytes] = {};
    if (registers.pc >= kX86StubBytes && ReadTaskMemory(task, registers.pc - kX86StubBytes, stub, sizeof stub)) {
      number = DarwinX86StubCallNumber(stub, sizeof stub);
    }
    if (!number) {
      ++counts.callUnknown;
      return std::nullopt;
    }
  }
  const bool argumentsStand = !(held && arch == ArchKind::Arm64);
  uint64_t fdArgument = registers.argument0;
  if (*number == 0 && argumentsStand) {
    // syscall(2): the real number is the first argument (xnu takes its low bits)
    *number = static_cast<int64_t>(arch == ArchKind::Arm64 ? (registers.argument0 & 0xffff)
                                                            : (registers.argument0 & 0xffffffff));
    fdArgument = registers.argument1;
  }
  BlockedRecord blocked;
  blocked.number = *number;
  blocked.call = CallNameOrNumber(OsKind::Darwin, arch, *number);
  if (!argumentsStand) {
    if (*number == 0 || FirstArgIsFd(OsKind::Darwin, blocked.call)) ++counts.argumentsWithheld;
    return blocked;
  }
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
// task_suspend and task_suspend2 holds (lldb, another sampler) and SIGSTOP's
// (bsd/kern/kern_sig.c → task_suspend_internal), which no thread's own count shows.
std::optional<int32_t> TaskSuspendCount(task_t task) {
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(task, MACH_TASK_BASIC_INFO, reinterpret_cast<task_info_t>(&info), &count) != KERN_SUCCESS) {
    return std::nullopt;
  }
  return std::max(info.suspend_count, 0);
}

// Whether this process runs translated by Rosetta (sysctl.proc_translated: 1 when
// translated, absent on Intel Macs). Only the x86_64 build can be.
bool SelfTranslated() {
#if defined(__arm64__) || defined(__aarch64__)
  return false;
#else
  int translated = 0;
  size_t size = sizeof translated;
  return sysctlbyname("sysctl.proc_translated", &translated, &size, nullptr, 0) == 0 && translated == 1;
#endif
}

// Another process's CPU type (PROC_PIDARCHINFO): whether an arm64 build sees native code.
// nullopt (with `error`) when it cannot be read.
std::optional<bool> TargetTranslated(int32_t pid, int* error) {
  darwin::ProcArchInfo info;
  std::memset(&info, 0, sizeof info);
  errno = 0;
  if (proc_pidinfo(pid, darwin::kProcPidArchInfo, 0, &info, sizeof info) != static_cast<int>(sizeof info)) {
    *error = errno;
    return std::nullopt;
  }
  return info.p_cputype == darwin::kCpuTypeX86_64;
}

// The lock every iokit-snap process takes (flock on IOKITSNAP_HOLD_LOCK_PATH) for as
// long as it holds another process with task_suspend2. Two samplers that each hold
// the other freeze for good: a held task's threads park on their next return to user
// space (thread_apc_ast), the walker included, so neither walker ever runs again to
// drop its token, and no check the walker makes can prevent it (a held walker never
// runs to make it; two task_suspend2 calls in flight at once both land). With the lock,
// at most one iokit-snap holds any process at a time: the other waits (in flock's
// retry loop, holding nothing) or gives up on stacks. The kernel drops a flock when its
// holder dies, so a killed sampler leaves nothing behind.
class CrossProcessHoldLock {
 public:
  CrossProcessHoldLock() {
    // Created readable by every user (root's umask must not close it to others);
    // O_NONBLOCK: a FIFO planted at the path must not block the open.
    constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    fd_ = open(IOKITSNAP_HOLD_LOCK_PATH, kFlags | O_CREAT | O_EXCL, 0644);
    if (fd_ >= 0) {
      fchmod(fd_, 0644);
    } else if (errno == EEXIST) {
      fd_ = open(IOKITSNAP_HOLD_LOCK_PATH, kFlags);
    }
    if (fd_ < 0) {
      error_ = errno;
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + kHoldLockWait;
    for (;;) {
      if (flock(fd_, LOCK_EX | LOCK_NB) == 0) {
        locked_ = true;
        return;
      }
      if (errno != EWOULDBLOCK && errno != EINTR) {
        error_ = errno;
        return;
      }
      if (std::chrono::steady_clock::now() >= deadline) return;  // busy
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  CrossProcessHoldLock(const CrossProcessHoldLock&) = delete;
  CrossProcessHoldLock& operator=(const CrossProcessHoldLock&) = delete;
  ~CrossProcessHoldLock() {
    if (fd_ >= 0) close(fd_);  // drops the flock
  }
  bool locked() const { return locked_; }
  int error() const { return error_; }  // 0 with !locked(): another process held it throughout

 private:
  int fd_ = -1;
  int error_ = 0;
  bool locked_ = false;
};

// The codes with which task_threads says that the port no longer names a live task
// (osfmk/kern/task.c task_threads_internal: KERN_FAILURE once the task is inactive,
// KERN_INVALID_ARGUMENT once its port converts to TASK_NULL; MACH_SEND_INVALID_DEST for
// a dead port). The process may have exited, or exec'd into a new task.
bool TaskGone(kern_return_t kr) {
  return kr == KERN_FAILURE || kr == KERN_INVALID_ARGUMENT || kr == MACH_SEND_INVALID_DEST || kr == KERN_TERMINATED;
}

// A thread_suspend/thread_get_state error that means the thread has ended (thread_act.c
// thread_suspend: KERN_TERMINATED once inactive; its port then converts to no thread,
// or dies).
bool ThreadGone(kern_return_t kr) {
  return kr == KERN_TERMINATED || kr == KERN_INVALID_ARGUMENT || kr == MACH_SEND_INVALID_DEST;
}

void TakeStacks(const TaskPort& task, int32_t pid, uint32_t depth,
                const std::vector<thread_act_t>& ports, ProcessRecord& record) {
  const ArchKind arch = HostArch();
  // An x86_64 process translated by Rosetta runs translated code, which lies in no image
  // and keeps no native frame chain (its x86 frame pointer is not x29): its pc is given,
  // with no module, and nothing is walked.
  bool pcOnly = false;
  if (arch == ArchKind::Arm64 && !task.isSelf()) {
    int error = 0;
    const std::optional<bool> translated = TargetTranslated(pid, &error);
    if (!translated) {
      if (error == ESRCH) ThrowExited(pid, "proc_pidinfo", error);
      record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO",
                                          std::string("proc_pidinfo(PROC_PIDARCHINFO) failed (") +
                                              std::strerror(error) +
                                              "), so native code could not be told from Rosetta-translated code; "
                                              "no stack was read",
                                          ""});
      return;
    }
    if (*translated) {
      pcOnly = true;
      record.limits.push_back(LimitRecord{
          Subject(pid), "stack", "ENOTSUP",
          "the process is x86_64 code translated by Rosetta: its threads run translated code, which belongs to no "
          "module and keeps no native frame chain, so each stack is its pc alone, with no module",
          ""});
    }
  }
  std::string problem;
  ImageMap images = ImageMap::Read(task.get(), &problem);
  if (!problem.empty()) {
    record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO", problem + "; stack frames carry no module", ""});
  }
  // The probe thread sampling its own process cannot suspend itself; its stack is
  // left out (it is this sampler, not the program being diagnosed).
  ScopedMachSendRight self(task.isSelf() ? mach_thread_self() : MACH_PORT_NULL);
  std::vector<StackWalk> walks(ports.size());
  size_t notWalked = 0;
  kern_return_t holdError = KERN_SUCCESS;
  bool noToken = false;
  std::optional<int> lockProblem;  // the cross-process lock: its errno, or 0 when busy
  {
    // Our own process: one thread at a time (the task cannot stop itself), and one
    // walk at a time in the whole process, or two walkers could suspend each other.
    // Another process: the whole task at once, through a token that ends the hold
    // even if we die (ScopedTaskSuspension), for kSuspensionBudgetNs at most, and only
    // under the cross-process lock, so that two samplers never hold each other.
    std::unique_lock<std::mutex> selfWalk(SelfWalkLock(), std::defer_lock);
    std::optional<CrossProcessHoldLock> crossProcess;
    std::optional<darwin::ScopedTaskSuspension> hold;  // released before the lock
    bool ready = true;
    if (task.isSelf()) {
      selfWalk.lock();
    } else {
      crossProcess.emplace();
      if (!crossProcess->locked()) {
        lockProblem = crossProcess->error();
        ready = false;
      } else {
        hold.emplace(task.get());
        holdError = hold->result();
        noToken = holdError == KERN_SUCCESS && !hold->held();
        ready = hold->held();
      }
    }
    const uint64_t deadline = MonotonicNs() + kSuspensionBudgetNs;
    for (size_t i = 0; i < ports.size() && ready; ++i) {
      if (self && ports[i] == self.get()) continue;
      if (MonotonicNs() >= deadline) {
        ++notWalked;
        continue;
      }
      walks[i] = darwin::WalkStack(task.get(), ports[i], pcOnly ? 1 : depth, deadline, task.isSelf());
    }
  }  // resumed here; what follows allocates freely
  if (lockProblem) {
    record.limits.push_back(
        *lockProblem == 0
            ? LimitRecord{Subject(pid), "stack", "ETIMEDOUT",
                          "another iokit-snap process held a process suspended for over " +
                              std::to_string(kHoldLockWait.count()) +
                              " ms, so no stack was read (two samplers must never hold each other: they would "
                              "both freeze for good)",
                          "sample again"}
            : LimitRecord{Subject(pid), "stack", "EACCES",
                          std::string("the lock that keeps two samplers from holding each other (") +
                              IOKITSNAP_HOLD_LOCK_PATH + ") could not be taken (" + std::strerror(*lockProblem) +
                              "), so no process was held and no stack was read",
                          std::string("make ") + IOKITSNAP_HOLD_LOCK_PATH +
                              " a plain file every user can read, or remove it"});
    return;
  }
  if (noToken) {
    record.limits.push_back(LimitRecord{Subject(pid), "stack", "ESRCH",
                                        "the process is exiting (task_suspend2 gave no suspension token), so no "
                                        "stack was read",
                                        ""});
    return;
  }
  if (holdError != KERN_SUCCESS) {
    record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO",
                                        "task_suspend2 failed (" + Hex(holdError) +
                                            "), so no stack was read (the process may have exited)",
                                        ""});
    return;
  }
  size_t suspendFailures = 0;
  size_t exited = 0;
  size_t outOfTime = 0;
  kern_return_t lastSuspendError = KERN_SUCCESS;
  for (size_t i = 0; i < ports.size(); ++i) {
    const StackWalk& walk = walks[i];
    if (!walk.ok) {
      if (walk.error == KERN_SUCCESS) continue;  // not attempted: the walker itself, or out of time
      if (ThreadGone(walk.error)) {
        ++exited;
      } else {
        ++suspendFailures;
        lastSuspendError = walk.error;
      }
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
  if (exited > 0) {
    record.limits.push_back(LimitRecord{Subject(pid), "stack", "ESRCH",
                                        std::to_string(exited) +
                                            " thread(s) ended between the listing and their stack walk (stack null)",
                                        ""});
  }
  if (suspendFailures > 0) {
    record.limits.push_back(LimitRecord{Subject(pid), "stack", "EIO",
                                        "the stacks of " + std::to_string(suspendFailures) +
                                            " thread(s) could not be read (thread_suspend/thread_get_state, last " +
                                            Hex(lastSuspendError) + ")",
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

// nullopt when the port no longer names a live task (TaskGone): the caller tells an
// exit from an exec.
std::optional<ProcessRecord> SampleWithTask(const TaskPort& task, int32_t pid, const ProcessIdentity& identity,
                                            const ThreadOptions& options) {
  ProcessRecord record = EmptyRecord(pid, identity);
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
  if (kr != KERN_SUCCESS) {
    if (TaskGone(kr)) return std::nullopt;
    throw SnapError("EIO", "task_threads failed for pid " + std::to_string(pid) + " (" + Hex(kr) + ")", "task_threads",
                    kr);
  }
  const bool full = options.detail == ThreadDetail::Full;
  // The x86_64 build running under Rosetta reads no other thread's registers as native.
  const bool registersReadable = !(full && SelfTranslated());
  std::vector<thread_act_t> ports;  // of record.threads[i], for the stack walks
  ports.reserve(threads.size());
  record.threads.reserve(threads.size());
  size_t registerFailures = 0;
  kern_return_t lastRegisterError = KERN_SUCCESS;
  HeldRegisters heldRegisters;

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
      if (registersReadable && (runState == ThreadState::Waiting || runState == ThreadState::Uninterruptible)) {
        kern_return_t error = KERN_SUCCESS;
        if (std::optional<ThreadRegisters> registers = ReadThreadRegisters(thread, &error)) {
          thread_record.blockedIn =
              BlockedIn(task.get(), pid, *registers, held || basic.suspend_count > 0, heldRegisters);
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
  if (heldRegisters.argumentsWithheld > 0) {
    record.limits.push_back(LimitRecord{
        Subject(pid), "blockedIn", "ENOTSUP",
        std::to_string(heldRegisters.argumentsWithheld) +
            " held thread(s) (stopped or suspended) may already have returned from their call, and the kernel then "
            "writes the result over x0/x1, so their blockedIn names the call without fd or target",
        "sample again once the process runs"});
  }
  if (heldRegisters.callUnknown > 0) {
    record.limits.push_back(LimitRecord{
        Subject(pid), "blockedIn", "ENOTSUP",
        std::to_string(heldRegisters.callUnknown) +
            " held thread(s) (stopped or suspended) sit after a system call that no libsystem_kernel stub names, and "
            "rax may already hold the call's result, so their blockedIn is null",
        "sample again once the process runs"});
  }
  if (full && !registersReadable) {
    record.limits.push_back(LimitRecord{
        Subject(pid), "blockedIn", "ENOTSUP",
        "this is the x86_64 build of iokit-snap running under Rosetta: it does not read other threads' registers "
        "as native ones, so blockedIn, pc and stacks are null",
        "install Node.js for arm64 (and iokit-snap with it)"});
  }

  const uint32_t depth = std::min(options.maxStackDepth, kMaxStackDepth);
  if (full && options.stacks && depth > 0 && registersReadable) TakeStacks(task, pid, depth, ports, record);
  AddOffCpuLimit(record);
  return record;
}

// ---------------------------------------------------------------- without it: libproc

[[noreturn]] void ThrowProcInfoError(int32_t pid, int error, const char* what) {
  if (error == ESRCH) ThrowExited(pid, "proc_pidinfo", error);
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
                                 const TaskAccess& access) {
  ProcessRecord record = EmptyRecord(pid, identity);
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
  // Every call above named the process by pid: if the pid came to name another
  // process meanwhile, these are its threads, not the ones asked for.
  ProcessIdentity now = identity;
  ReadUniqueIdentity(pid, now);
  ExpectSameProcess(pid, identity, now);
  const bool full = options.detail == ThreadDetail::Full;
  std::string missing = full ? "blockedIn and suspendCount" : "suspendCount";
  if (full && options.stacks) missing = "blockedIn, suspendCount and stacks";
  record.limits.push_back(LimitRecord{Subject(pid), full ? "blockedIn" : "suspendCount", access.code,
                                      access.reason + ", so the threads come from proc_pidinfo: state, CPU time "
                                                      "and name only; " +
                                          missing + " need the task port and are null",
                                      access.hint});
  AddOffCpuLimit(record);
  return record;
}

// ---------------------------------------------------------------- entry points

// One sample of a process read as `identity`, through `access`. A port that stopped
// naming a live task is an exit (ESRCH) or an exec: then the same process (same
// p_uniqueid) has a new task, which is opened, and the sample taken through it.
ProcessRecord SampleProcess(int32_t pid, ProcessIdentity& identity, TaskAccess& access, const ThreadOptions& options) {
  for (int attempt = 0;; ++attempt) {
    if (identity.zombie) {
      ProcessRecord record = EmptyRecord(pid, identity);
      AddZombieLimit(record);
      return record;
    }
    if (!access.port) return SampleWithProcInfo(pid, identity, options, access);
    std::optional<ProcessRecord> record = SampleWithTask(*access.port, pid, identity, options);
    if (record) return std::move(*record);
    ProcessIdentity now;
    try {
      now = ReadIdentity(pid);
    } catch (const SnapError& e) {
      if (e.code() == "ESRCH") ThrowExited(pid, "task_threads", KERN_FAILURE);
      throw;
    }
    ExpectSameProcess(pid, identity, now);
    if (now.zombie || now.exiting) ThrowExited(pid, "task_threads", KERN_FAILURE);
    if (attempt > 0) {
      throw SnapError("EIO",
                      "pid " + std::to_string(pid) +
                          " changed its task twice while it was sampled (it keeps exec'ing); sample again",
                      "task_threads", KERN_FAILURE);
    }
    identity = now;  // the same process, after an exec: a new task
    access = OpenPinnedTask(pid, identity, options);
  }
}

class DarwinThreadSampler : public ThreadSampler {
 public:
  DarwinThreadSampler(int32_t pid, const ThreadOptions& options)
      : pid_(pid), options_(options), identity_(ReadIdentity(pid)) {  // ESRCH now rather than at the first sample
    if (!identity_.zombie) access_ = OpenPinnedTask(pid_, identity_, options_);
  }

  ProcessRecord Sample() override {
    if (closed_) throw SnapError("EINVAL", "this thread sampler is closed; create a new one");
    ProcessIdentity now = ReadIdentity(pid_);
    ExpectSameProcess(pid_, identity_, now);
    // Without a port: a request that got no answer, or found no task yet, is made again,
    // and so is a refused one once the process has exec'd (the new image may allow it:
    // AMFI judges the target's code signature). With a port, an exec shows when the port
    // fails, and SampleProcess opens the new task.
    const bool reopen =
        !now.zombie && !access_.port && (access_.askAgain || now.idVersion != identity_.idVersion);
    identity_ = now;
    if (reopen) {
      access_ = TaskAccess{};  // gives the old port back first
      access_ = OpenPinnedTask(pid_, identity_, options_);
    }
    return SampleProcess(pid_, identity_, access_, options_);
  }

  void Close() override {
    closed_ = true;
    access_ = TaskAccess{};  // gives the task port back now, not at GC
  }

 private:
  int32_t pid_;
  ThreadOptions options_;
  ProcessIdentity identity_;  // what the pid named when the sampler was opened (name: at the last sample)
  TaskAccess access_;         // kept between samples; threads are listed anew each time
  bool closed_ = false;
};

}  // namespace

ProcessRecord SampleThreads(int32_t pid, const ThreadOptions& options) {
  ProcessIdentity identity = ReadIdentity(pid);
  TaskAccess access;
  if (!identity.zombie) access = OpenPinnedTask(pid, identity, options);
  return SampleProcess(pid, identity, access, options);
}

std::unique_ptr<ThreadSampler> OpenThreadSampler(int32_t pid, const ThreadOptions& options) {
  return std::make_unique<DarwinThreadSampler>(pid, options);
}

}  // namespace iokitsnap
