// Linux user stacks. Two ways to get a thread's registers:
//
// - Held (ptrace): PTRACE_SEIZE, PTRACE_INTERRUPT, wait for the stop, PTRACE_GETREGSET,
//   one process_vm_readv of the stack from sp up (at most kStackCopyBytes), then
//   PTRACE_DETACH, re-delivering a signal the stop caught. The thread is held for
//   those few calls only: the walk and the ELF reading come after it is let go.
//   What the target sees: a stop of microseconds. A system call it was blocked in is
//   restarted by the kernel as after any stop (read, futex, nanosleep, poll), except
//   the calls Linux never restarts after a stop, which return EINTR as they would
//   after SIGSTOP/SIGCONT (epoll_wait, semop, sigtimedwait, inotify read; signal(7)).
//   If this process dies mid-walk, the kernel detaches every thread it traced, and a
//   thread stopped by us runs on as after the stop above.
//
// - Not held (the syscall file): /proc/<pid>/task/<tid>/syscall gives sp and pc of a
//   thread blocked in a system call, and its stack cannot change while it stays
//   there. Used where stopping is impossible or harmful:
//     . a thread in uninterruptible sleep (D): ptrace cannot stop it until its call
//       returns, and a stop left pending would catch it later, on its way out;
//     . this process's own threads: a process cannot ptrace itself;
//     . the main thread of a child of this process: its ptrace stop would be seen by
//       the parent's waitpid(pid) (Node's child-process reaping in libuv), which takes
//       a stop for an exit: the child would be reported gone while it runs.
//   The frame pointer is not in that file, so the walk stops at the first frame whose
//   CFI needs it (a function built with frame pointers); its callers are missing.
//
// Every thread a walk stops is let go before it returns: PTRACE_DETACH after the copy;
// a thread that does not reach its stop in time cannot be detached (ptrace refuses a
// running tracee), so all ptrace work happens on a thread of its own, and when that
// thread ends the kernel detaches whatever it still traced and drops the pending stop.
#include "user_stacks.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <system_error>
#include <thread>

#include "procfs_files.h"
#include "procfs_parse.h"
#include "procfs_thread.h"

namespace iokitsnap {
namespace stacks {
namespace {

constexpr uint32_t kMapsTimeoutMs = 1000;       // the maps file takes the target's mmap lock
constexpr size_t kMaxMapsBytes = 64u << 20;
constexpr uint64_t kStackCopyBytes = 1u << 20;  // the stack copied from sp up, at most
constexpr uint64_t kStopWaitNs = 300'000'000;   // how long one thread may take to reach its stop
constexpr uint32_t kCopyTimeoutMs = 500;        // a copy from a thread that is not held

elf::Machine HostMachine() {
#if defined(__aarch64__)
  return elf::Machine::Arm64;
#else
  return elf::Machine::X86_64;
#endif
}

uint64_t NowNs() {
  struct timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

void SleepNs(uint64_t ns) {
  struct timespec pause {
    static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)
  };
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

// Why a thread has no stack, one value per limit the sample may carry.
enum class Miss : uint8_t {
  None,
  Gone,             // exited meanwhile: nothing to say
  Denied,           // PTRACE_SEIZE / the syscall file / process_vm_readv refused
  Traced,           // another tracer (a debugger) holds it
  NoStop,           // did not reach its stop in time
  Running,          // not held and on a CPU: no registers anywhere
  CopyTimedOut,     // the unheld copy did not return in time
  Failed,           // another errno
  OutOfTime,        // the stack budget ran out before its turn
  Self,             // the thread taking the sample: its stack changes as it is read
  Compat,           // a 32-bit process: registers in another layout
};

struct Capture {
  uint64_t tid = 0;
  bool held = false;  // by ptrace; false: from the syscall file
  Miss miss = Miss::None;
  int error = 0;
  const char* call = "";
  uint32_t tracerPid = 0;
  bool tracerIsOurs = false;  // the tracer is a thread of this process: another sample at the same time
  Registers registers;
  StackCopy stack;
};

std::string TaskPath(const std::string& procRoot, int32_t pid, uint64_t tid, const char* file) {
  return procRoot + "/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + file;
}

// A procfs file, read whole; "" (and `*error`) when it cannot be.
std::string ReadSmall(const std::string& path, int* error) {
  procfs::ReadBuffer buffer;
  const procfs::ReadResult result = procfs::ReadFileAt(AT_FDCWD, path.c_str(), buffer);
  if (result.outcome != procfs::ReadOutcome::Ok) {
    *error = result.error;
    return "";
  }
  return std::string(buffer.text);
}

// The TracerPid: line of a thread's status.
uint32_t TracerPid(const std::string& procRoot, int32_t pid, uint64_t tid) {
  int error = 0;
  const std::string status = ReadSmall(TaskPath(procRoot, pid, tid, "status"), &error);
  const size_t at = status.find("\nTracerPid:");
  if (at == std::string::npos) return 0;
  std::string_view rest(status);
  rest.remove_prefix(at + 11);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  uint64_t value = 0;
  procfs::ConsumeUnsigned(rest, value);
  return static_cast<uint32_t>(value);
}

// The parent pid of `pid` (stat field 4), 0 when unreadable.
int32_t ParentPid(const std::string& procRoot, int32_t pid) {
  int error = 0;
  const std::string text = ReadSmall(procRoot + "/" + std::to_string(pid) + "/stat", &error);
  const std::optional<procfs::TaskStat> stat = procfs::ParseTaskStat(text);
  return stat ? static_cast<int32_t>(stat->ppid) : 0;
}

// Copies [sp, sp + n) of the process, through the thread `tid` (its pid has no memory once
// the leader has exited): n from the mapping that holds sp, at most
// kStackCopyBytes; a partial copy (an unmapped page) keeps what came.
void CopyStack(int32_t tid, uint64_t sp, const std::vector<Mapping>& maps, StackCopy& copy, int* error) {
  const Mapping* mapping = FindMapping(maps, sp);
  // A thread created after the maps were read: copy what is there, up to the cap.
  const uint64_t size = mapping != nullptr ? std::min(mapping->end - sp, kStackCopyBytes) : kStackCopyBytes;
  copy.base = sp;
  copy.bytes.resize(static_cast<size_t>(size));
  struct iovec local { copy.bytes.data(), copy.bytes.size() };
  struct iovec remote { reinterpret_cast<void*>(sp), copy.bytes.size() };
  const ssize_t got = process_vm_readv(tid, &local, 1, &remote, 1, 0);
  if (got < 0) {
    *error = errno;
    copy.bytes.clear();
    return;
  }
  copy.bytes.resize(static_cast<size_t>(got));
}

bool ReadRegisters(uint64_t tid, Registers& registers, Capture& capture) {
#if defined(__x86_64__)
  struct user_regs_struct regs {};
#elif defined(__aarch64__)
  struct user_pt_regs regs {};
#else
#error "user stacks: only x86_64 and arm64 are walked"
#endif
  struct iovec io { &regs, sizeof regs };
  if (ptrace(PTRACE_GETREGSET, static_cast<pid_t>(tid), reinterpret_cast<void*>(NT_PRSTATUS), &io) != 0) {
    capture.error = errno;
    capture.call = "PTRACE_GETREGSET";
    capture.miss = capture.error == ESRCH ? Miss::Gone : Miss::Failed;
    return false;
  }
  if (io.iov_len != sizeof regs) {  // a 32-bit tracee's register layout
    capture.miss = Miss::Compat;
    return false;
  }
#if defined(__x86_64__)
  registers.pc = regs.rip;
  registers.sp = regs.rsp;
  registers.fp = regs.rbp;
#else
  registers.pc = regs.pc;
  registers.sp = regs.sp;
  registers.fp = regs.regs[29];
  registers.lr = regs.regs[30];
#endif
  return true;
}

// The held path, on the tracer thread. See the file comment.
void CaptureHeld(int32_t pid, const std::string& procRoot, const std::vector<Mapping>& maps, uint64_t deadlineNs,
                 Capture& capture) {
  const pid_t tid = static_cast<pid_t>(capture.tid);
  capture.held = true;
  // EPERM while another tracer holds the thread. TracerPid is the tracing thread's id,
  // one of ours when another sample of this process holds it; a tracer that has let go by
  // the time it is looked at (TracerPid 0 again) is no obstacle, and the seize is retried.
  for (int attempt = 0;; ++attempt) {
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0) break;
    capture.error = errno;
    capture.call = "PTRACE_SEIZE";
    if (capture.error == EPERM) {
      capture.tracerPid = TracerPid(procRoot, pid, capture.tid);
      capture.tracerIsOurs = capture.tracerPid != 0 &&
                             access(("/proc/self/task/" + std::to_string(capture.tracerPid)).c_str(), F_OK) == 0;
      if (capture.tracerPid != 0 && !capture.tracerIsOurs) capture.tracerPid = TracerPid(procRoot, pid, capture.tid);
      if (capture.tracerPid == 0 && attempt < 3) continue;
    }
    capture.miss = capture.error == ESRCH ? Miss::Gone
                   : capture.error != EPERM ? Miss::Failed
                   : capture.tracerPid != 0 ? Miss::Traced
                                            : Miss::Denied;
    return;
  }
  capture.error = 0;
  capture.call = "";
  const uint64_t stopAsked = NowNs();
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    // Not stopped, so not detachable: the tracer thread's exit lets it go.
    capture.error = errno;
    capture.call = "PTRACE_INTERRUPT";
    capture.miss = capture.error == ESRCH ? Miss::Gone : Miss::Failed;
    return;
  }
  const uint64_t stopBy = std::min(stopAsked + kStopWaitNs, std::max(deadlineNs, stopAsked + 1'000'000));
  int status = 0;
  uint64_t pause = 20'000;
  for (;;) {
    const pid_t got = waitpid(tid, &status, __WALL | WNOHANG);
    if (got == tid) break;
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 || NowNs() >= stopBy) {
      capture.error = got < 0 ? errno : ETIMEDOUT;
      capture.call = "waitpid";
      capture.miss = Miss::NoStop;
      return;  // left to the tracer thread's exit
    }
    SleepNs(pause);
    pause = std::min<uint64_t>(pause * 2, 2'000'000);
  }
  if (!WIFSTOPPED(status)) {  // it exited
    capture.miss = Miss::Gone;
    return;
  }
  // A signal-delivery stop (no event) took a signal on its way in: it is delivered on detach.
  const int event = status >> 16;
  const int deliver = event == 0 ? WSTOPSIG(status) : 0;
  if (ReadRegisters(capture.tid, capture.registers, capture)) {
    int error = 0;
    CopyStack(static_cast<int32_t>(capture.tid), capture.registers.sp, maps, capture.stack, &error);
    if (error != 0) {
      capture.error = error;
      capture.call = "process_vm_readv";
      capture.miss = error == ESRCH ? Miss::Gone : error == EPERM ? Miss::Denied : Miss::Failed;
    }
  }
  if (ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(deliver))) != 0 &&
      capture.miss == Miss::None) {
    capture.error = errno;
    capture.call = "PTRACE_DETACH";
    capture.miss = capture.error == ESRCH ? Miss::Gone : Miss::Failed;
  }
}

// The unheld path: registers from the syscall file, the copy on a thread of its own
// with a deadline (process_vm_readv waits for the target's mmap lock).
void CaptureUnheld(int32_t pid, const std::string& procRoot, const std::vector<Mapping>& maps, Capture& capture) {
  capture.held = false;
  const std::string path = TaskPath(procRoot, pid, capture.tid, "syscall");
  int error = 0;
  const std::string before = ReadSmall(path, &error);
  const std::optional<procfs::SyscallLine> line = procfs::ParseSyscallLine(before);
  if (error != 0 || !line) {
    capture.error = error != 0 ? error : EIO;
    capture.call = "read syscall";
    capture.miss = error == ENOENT || error == ESRCH ? Miss::Gone
                   : error == EACCES || error == EPERM ? Miss::Denied
                                                        : Miss::Failed;
    return;
  }
  if (line->kind == procfs::SyscallLine::Kind::Running || line->sp == 0) {
    capture.miss = Miss::Running;
    return;
  }
  capture.registers.pc = line->pc;
  capture.registers.sp = line->sp;
  std::vector<Mapping> stackMapping;
  if (const Mapping* found = FindMapping(maps, line->sp)) stackMapping.push_back(*found);
  struct Copied {
    int error = 0;
    StackCopy copy;
  };
  std::optional<Copied> copied;
  try {
    copied = procfs::RunWithDeadline<Copied>(
        [tid = static_cast<int32_t>(capture.tid), sp = line->sp, stackMapping] {
          Copied result;
          CopyStack(tid, sp, stackMapping, result.copy, &result.error);
          return result;
        },
        kCopyTimeoutMs);
  } catch (const std::system_error& failure) {
    capture.error = failure.code().value();
    capture.call = "pthread_create";
    capture.miss = Miss::Failed;
    return;
  }
  if (!copied) {
    capture.miss = Miss::CopyTimedOut;
    return;
  }
  if (copied->error != 0) {
    capture.error = copied->error;
    capture.call = "process_vm_readv";
    capture.miss = copied->error == ESRCH ? Miss::Gone : copied->error == EPERM ? Miss::Denied : Miss::Failed;
    return;
  }
  capture.stack = std::move(copied->copy);
  // Still in the same call at the same place: the copy is of that stack.
  const std::string after = ReadSmall(path, &error);
  if (after != before) {
    capture.miss = Miss::Running;
    capture.stack = StackCopy();
  }
}

const char* EndText(WalkEnd end) {
  switch (end) {
    case WalkEnd::Outermost: return "";
    case WalkEnd::DepthLimit: return "maxStackDepth";
    case WalkEnd::BeyondCopy: return "beyond-copy";
    case WalkEnd::NoUnwindInfo: return "no-unwind-info";
    case WalkEnd::NoFramePointer: return "no-frame-pointer";
    case WalkEnd::NotCode: return "not-code";
    case WalkEnd::NotAscending: return "not-ascending";
  }
  return "";
}

// One limit per cause, naming how many threads and which.
class LimitCollector {
 public:
  void Add(const std::string& key, uint64_t tid, LimitRecord limit) {
    auto& entry = byKey_[key];
    if (entry.tids.empty()) entry.limit = std::move(limit), order_.push_back(key);
    entry.tids.push_back(tid);
  }
  void AppendTo(std::vector<LimitRecord>& limits) {
    for (const std::string& key : order_) {
      Entry& entry = byKey_[key];
      LimitRecord limit = entry.limit;
      std::string which = entry.tids.size() == 1 ? "thread " : std::to_string(entry.tids.size()) + " threads (";
      for (size_t i = 0; i < entry.tids.size() && i < 8; ++i) which += (i == 0 ? "" : ", ") + std::to_string(entry.tids[i]);
      if (entry.tids.size() > 8) which += ", …";
      if (entry.tids.size() > 1) which += ")";
      limit.reason = which + ": " + limit.reason;
      limits.push_back(std::move(limit));
    }
  }

 private:
  struct Entry {
    LimitRecord limit;
    std::vector<uint64_t> tids;
  };
  std::map<std::string, Entry> byKey_;
  std::vector<std::string> order_;
};

std::string DeniedHint(const std::string& procRoot) {
  const std::string scope = procfs::YamaScope(procRoot);
  if (scope == "1")
    return "kernel.yama.ptrace_scope is 1: only an ancestor of the process may trace it. Run iokit-snap as root "
           "(sudo), or set it to 0 (sysctl kernel.yama.ptrace_scope=0).";
  if (scope == "2") return "kernel.yama.ptrace_scope is 2: only root may trace. Run iokit-snap as root (sudo).";
  if (scope == "3") return "kernel.yama.ptrace_scope is 3: ptrace is disabled until the next boot.";
  return "Run iokit-snap as the user that owns the process, or as root / with CAP_SYS_PTRACE (sudo).";
}

LimitRecord ZombieLimit(int32_t pid, const std::string& procRoot) {
  const int32_t parent = ParentPid(procRoot, pid);
  const std::string parentText = parent > 0 ? " (pid " + std::to_string(parent) + ")" : "";
  return {"pid " + std::to_string(pid), "stack", "ESRCH",
          "the process is a zombie: it has exited, and waits for its parent" + parentText +
              " to reap it. It has no user space left, so there are no stacks to take",
          "A zombie that stays means its parent does not wait() for it: look at the parent" + parentText + "."};
}

void NoteMiss(const Capture& capture, int32_t pid, const std::string& procRoot, LimitCollector& limits) {
  const std::string subject = "pid " + std::to_string(pid);
  auto add = [&](const std::string& key, const std::string& code, const std::string& reason, const std::string& hint) {
    limits.Add(key, capture.tid, LimitRecord{subject, "stack", code, reason, hint});
  };
  switch (capture.miss) {
    case Miss::None:
    case Miss::Gone: return;
    case Miss::Denied:
      add("denied", "EPERM",
          std::string(capture.held ? "ptrace(PTRACE_SEIZE)" : "reading its registers or stack") + " was refused (" +
              procfs::ErrorText(capture.error != 0 ? capture.error : EPERM) + "); no user stack",
          DeniedHint(procRoot));
      return;
    case Miss::Traced:
      if (capture.tracerIsOurs) {
        add("traced self", "EBUSY",
            "held by another sample of the same process taken at the same time (a thread has one tracer at a "
            "time); no user stack",
            "Take stacks of one process one sample at a time.");
        return;
      }
      add("traced " + std::to_string(capture.tracerPid), "EBUSY",
          "already traced by pid " + std::to_string(capture.tracerPid) +
              " (a debugger or another tool), and a thread has one tracer at a time; no user stack",
          "Take the stack from that debugger (gdb: thread apply all bt), or detach it and sample again.");
      return;
    case Miss::NoStop:
      add("nostop", "ETIMEDOUT",
          "did not stop within " + std::to_string(kStopWaitNs / 1'000'000) +
              " ms of PTRACE_INTERRUPT (it entered an uninterruptible wait, or got no CPU); no user stack. It was let go "
              "without ever stopping",
          "Sample again; a thread stuck in uninterruptible sleep shows its wait in kernelStack (root) and blockedIn.");
      return;
    case Miss::Running:
      add("running", "ENOTSUP",
          "on a CPU or moving, and not stopped (a thread of this process, or the main thread of its child, is never "
          "stopped: see docs/ARCHITECTURE.md); no user stack",
          "Sample again to catch it in a system call.");
      return;
    case Miss::Self:
      add("self", "ENOTSUP", "the thread taking this sample: its stack moves on while it is read; no user stack", "");
      return;
    case Miss::CopyTimedOut:
      add("copytimeout", "ETIMEDOUT",
          "its stack could not be read within " + std::to_string(kCopyTimeoutMs) +
              " ms (the process's memory-map lock is held); no user stack",
          "");
      return;
    case Miss::OutOfTime:
      add("outoftime", "ETIMEDOUT", "the time for user stacks ran out before its turn; no user stack",
          "Raise timeoutMs (--timeout); stacks get 60 % of it.");
      return;
    case Miss::Compat:
      add("compat", "ENOTSUP", "a 32-bit process: its registers and frames are not walked; no user stack", "");
      return;
    case Miss::Failed:
      add(std::string("failed ") + capture.call, "EIO",
          std::string(capture.call) + " failed: " + procfs::ErrorText(capture.error) + "; no user stack", "");
      return;
  }
}

void NoteWalk(const WalkResult& walk, const Capture& capture, int32_t pid, LimitCollector& limits) {
  const std::string subject = "pid " + std::to_string(pid);
  for (const auto& [path, error] : walk.unreadable) {
    const std::string why = error == elf::kNotTheMappedFile
                                ? "the file at that path is not the one mapped: another device or inode (replaced "
                                  "since it was mapped, or a link put in its place)"
                            : error == elf::kNotRegular ? "it is not a regular file, and such a file is never opened"
                                                        : procfs::ErrorText(error);
    limits.Add("unreadable " + path, capture.tid,
               LimitRecord{subject, "stack", "EIO",
                           path + " could not be read (" + why +
                               "): its frames have no symbol, and the walk goes on through them by frame pointer only",
                           ""});
  }
  const std::string where = walk.endModule.empty() ? std::string("an address outside any file") : walk.endModule;
  switch (walk.end) {
    case WalkEnd::Outermost: return;
    case WalkEnd::DepthLimit:
      limits.Add("depth", capture.tid,
                 LimitRecord{subject, "stack", "E2BIG", "the stack is deeper than maxStackDepth; its outer frames are cut",
                             "Raise maxStackDepth."});
      return;
    case WalkEnd::BeyondCopy:
      limits.Add("beyond", capture.tid,
                 LimitRecord{subject, "stack", "E2BIG",
                             "the stack goes on above the " + std::to_string(kStackCopyBytes >> 10) +
                                 " KiB copied from its sp; its outer frames are cut",
                             ""});
      return;
    case WalkEnd::NoFramePointer:
      limits.Add("nofp " + where, capture.tid,
                 LimitRecord{subject, "stack", "ENOTSUP",
                             "its registers came from the syscall file, which has no frame pointer, and " + where +
                                 " needs it to find the next frame; the outer frames are missing",
                             ""});
      return;
    case WalkEnd::NoUnwindInfo:
    case WalkEnd::NotCode:
    case WalkEnd::NotAscending:
      limits.Add(std::string(EndText(walk.end)) + " " + where, capture.tid,
                 LimitRecord{subject, "stack", "ENOTSUP",
                             "the walk stopped in " + where +
                                 (walk.endModuleHasUnwindInfo
                                      ? ": no call-frame information this walker can use covers that address (none was "
                                        "generated for that code, or its rule keeps the return address in a register "
                                        "or computes the frame by a DWARF expression, as vfork, signal trampolines and "
                                        "PLT stubs do)"
                                      : ": it has no call-frame information (.eh_frame) at all") +
                                 ", and no usable frame pointer chain leads on, so the frames further out are missing",
                             "Build it with -fno-omit-frame-pointer (or keep -fasynchronous-unwind-tables), or install "
                             "its debug file (.gnu_debuglink / build id under /usr/lib/debug)."});
      return;
  }
}

}  // namespace

void AddUserStacks(int32_t pid, const ThreadOptions& options, StackState& state, ProcessRecord& record) {
  const uint64_t startNs = NowNs();
  const uint64_t deadlineNs = startNs + static_cast<uint64_t>(options.stackBudgetMs) * 1'000'000u;
  const std::string subject = "pid " + std::to_string(pid);
  const std::string processDir = options.procRoot + "/" + std::to_string(pid);
  // ptrace and process_vm_readv act on the live process with that pid, whatever tree the
  // rest of the sample was read from: a fixture procRoot's pids are not those processes.
  if (options.procRoot != "/proc") {
    record.limits.push_back({subject, "stack", "ENOTSUP",
                             "user stacks are taken from the live process, and this sample reads " + options.procRoot +
                                 " instead of /proc",
                             ""});
    return;
  }
  if (record.abi && *record.abi != LinuxAbiName(HostLinuxAbi())) {
    if (*record.abi != "kernel")
      record.limits.push_back({subject, "stack", "ENOTSUP",
                               "user stacks are walked for " + std::string(LinuxAbiName(HostLinuxAbi())) +
                                   " processes only; this one is " + *record.abi,
                               ""});
    return;
  }

  // The memory map is the leader's in <pid>/: none once the leader has exited (main called
  // pthread_exit, the other threads run on). A live thread's own directory shows it then.
  // No live thread at all: a zombie, with no user space, so no stacks to take.
  const ThreadRecord* live = nullptr;
  for (const ThreadRecord& thread : record.threads) {
    if (thread.kernelThread || thread.state == ThreadState::Zombie) continue;
    if (live == nullptr || thread.tid == static_cast<uint64_t>(pid)) live = &thread;
  }
  if (live == nullptr) {
    if (!record.threads.empty()) record.limits.push_back(ZombieLimit(pid, options.procRoot));
    return;
  }
  const std::string mapsDir =
      live->tid == static_cast<uint64_t>(pid) ? processDir : processDir + "/task/" + std::to_string(live->tid);

  // The memory map, before any thread is held: it takes the target's mmap lock, and a
  // target that holds it forever would hang the read (and us) with a thread stopped.
  procfs::ScopedFd dir(open(mapsDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::string mapsText;
  int mapsError = dir ? procfs::ReadWithDeadline(dir.get(), "maps", kMaxMapsBytes, kMapsTimeoutMs, &mapsText) : errno;
  if (mapsError != 0 || mapsText.empty()) {
    // Empty: that thread (and the process with it) exited since it was sampled.
    if (mapsError == ENOENT || mapsError == ESRCH || mapsError == 0) return;
    const bool denied = mapsError == EACCES || mapsError == EPERM;
    record.limits.push_back(
        {subject, "stack", mapsError == ETIMEDOUT ? "ETIMEDOUT" : denied ? "EPERM" : "EIO",
         mapsError == ETIMEDOUT
             ? mapsDir + "/maps did not come back within " + std::to_string(kMapsTimeoutMs) +
                   " ms: a thread holds the process's memory-map lock. No thread was stopped; no user stacks"
             : mapsDir + "/maps could not be read (" + procfs::ErrorText(mapsError) + "); no user stacks",
         denied                          ? DeniedHint(options.procRoot)
         : mapsError == EMFILE || mapsError == ENFILE ? "This process has all its file descriptors in use: close files or "
                                           "samplers, or raise the limit (ulimit -n)."
                                         : ""});
    return;
  }
  const std::vector<Mapping> maps = ParseMaps(mapsText, nullptr);
  // The mapped files are opened through the same directory (its map_files/, its root/).
  if (state.modules && state.modulesDir != mapsDir) state.modules.reset();
  if (!state.modules) {
    state.modules = std::make_unique<ModuleCache>(mapsDir, HostMachine());
    state.modulesDir = mapsDir;
  }

  // Which threads are held and which are read from the syscall file (see the file comment).
  const bool own = pid == getpid();
  const bool childLeaderRisk = !own && ParentPid(options.procRoot, pid) == getpid();
  std::vector<Capture> captures(record.threads.size());
  std::vector<size_t> held;
  std::vector<size_t> unheld;
  for (size_t i = 0; i < record.threads.size(); ++i) {
    const ThreadRecord& thread = record.threads[i];
    captures[i].tid = thread.tid;
    if (thread.kernelThread || thread.state == ThreadState::Zombie) {
      captures[i].miss = Miss::Gone;
      continue;
    }
    // Its own syscall file shows the read of that very file, and its stack moves on as it
    // is copied.
    if (own && thread.tid == static_cast<uint64_t>(gettid())) {
      captures[i].miss = Miss::Self;
      continue;
    }
    const bool mustNotHold = own || (childLeaderRisk && thread.tid == static_cast<uint64_t>(pid)) ||
                             thread.state == ThreadState::Uninterruptible;
    (mustNotHold ? unheld : held).push_back(i);
  }

  // The unheld first, before any thread is held: a copy that hangs then holds nobody.
  for (const size_t i : unheld) {
    if (NowNs() >= deadlineNs) captures[i].miss = Miss::OutOfTime;
    else CaptureUnheld(pid, options.procRoot, maps, captures[i]);
  }
  if (!held.empty()) {
    try {
      std::thread tracer([&] {
        for (const size_t i : held) {
          if (NowNs() >= deadlineNs) captures[i].miss = Miss::OutOfTime;
          else CaptureHeld(pid, options.procRoot, maps, deadlineNs, captures[i]);
        }
        // A thread that reached its stop after its wait gave up is let go now rather than
        // at this thread's exit; one still running is let go by that exit.
        for (const size_t i : held) {
          if (captures[i].miss != Miss::NoStop) continue;
          int status = 0;
          const pid_t tid = static_cast<pid_t>(captures[i].tid);
          if (waitpid(tid, &status, __WALL | WNOHANG) == tid && WIFSTOPPED(status)) {
            const int event = status >> 16;
            ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(event == 0 ? WSTOPSIG(status) : 0)));
          }
        }
      });
      tracer.join();
    } catch (const std::system_error& failure) {
      for (const size_t i : held) {
        captures[i].miss = Miss::Failed;
        captures[i].error = failure.code().value();
        captures[i].call = "pthread_create";
      }
    }
  }

  // Every thread is let go: now walk the copies and read the ELF files.
  LimitCollector limits;
  WalkOptions walkOptions;
  walkOptions.machine = HostMachine();
  walkOptions.maxDepth = options.maxStackDepth;
  for (size_t i = 0; i < captures.size(); ++i) {
    const Capture& capture = captures[i];
    if (capture.miss != Miss::None) {
      NoteMiss(capture, pid, options.procRoot, limits);
      continue;
    }
    WalkResult walk = Walk(capture.registers, capture.stack, maps, *state.modules, walkOptions);
    NoteWalk(walk, capture, pid, limits);
    record.threads[i].stack = std::move(walk.frames);
    record.threads[i].pc = capture.registers.pc;
  }
  limits.AppendTo(record.limits);
}

}  // namespace stacks
}  // namespace iokitsnap
