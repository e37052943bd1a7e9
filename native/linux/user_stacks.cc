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
//   The tracer is a process of its own (see "the tracer process" below), so that this
//   one being stopped (Ctrl-Z, SIGSTOP) never keeps a thread held; it dies with the
//   thread that started it, so if this process dies mid-walk, the kernel detaches every
//   thread it traced, and a thread stopped by us runs on as after the stop above.
//
// - Not held (the syscall file): /proc/<pid>/task/<tid>/syscall gives sp and pc of a
//   thread blocked in a system call, and its stack cannot change while it stays
//   there. Used where stopping is impossible or harmful:
//     . a thread in uninterruptible sleep (D): ptrace cannot stop it until its call
//       returns, and a stop left pending would catch it later, on its way out;
//     . this process's own threads: a process cannot ptrace itself;
//     . the main thread of a child of this process: its ptrace stop would be seen by
//       the parent's waitpid(pid) (Node's child-process reaping in libuv), which takes
//       a stop for an exit: the child would be reported gone while it runs;
//     . a thread blocked writing or sending (write, sendmsg, splice…): a stop cuts a
//       partial transfer short (see InTransfer).
//   The frame pointer is not in that file, so the walk stops at the first frame whose
//   CFI needs it (a function built with frame pointers); its callers are missing.
//
// Every thread a walk stops is let go before it returns: PTRACE_DETACH after the copy;
// a thread that does not reach its stop in time cannot be detached (ptrace refuses a
// running tracee), so all ptrace work happens in a tracer of its own, and when that
// tracer ends the kernel detaches whatever it still traced and drops the pending stop.
#include "user_stacks.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__aarch64__)
#include <asm/ptrace.h>  // user_pt_regs: glibc's <sys/user.h> does not declare it on arm64
#endif

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
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

// ---------------------------------------------------------------- the tracer process
//
// The held captures run in a process of their own, not in a thread of ours: a thread
// stops with the rest of its process (Ctrl-Z, SIGSTOP, SIGTTOU), and a tracer stopped
// while it holds a thread holds it for as long as its process stays stopped. The
// tracer is a clone() child that shares our memory (CLONE_VM: it writes registers and
// stack copies straight into buffers made ready for it, and allocates nothing) and our
// fd table (CLONE_FILES: nothing is copied), in a process group of its own (the
// terminal stops its foreground group, which the tracer leaves), with every signal
// blocked (SIGTSTP and SIGTTOU stay pending; nothing of ours ever runs in it), and
// PR_SET_PDEATHSIG SIGKILL: when the thread that started it ends, so does it, and the
// kernel lets go of whatever it still traced. Only SIGSTOP sent to its own pid can stop
// it. It runs on the TLS of the thread that started it (which only waits meanwhile), so
// it makes raw system calls only: no errno, no lock, no allocation.
//
// Yama's ptrace_scope 1 lets a process trace its descendants only, and the tracer
// process is not an ancestor of ours: a thread it is refused that way is taken by a
// thread of this process instead (CaptureHeld), as is every thread where the tracer
// process cannot be started (clone refused by a sandbox, or valgrind).

// The helpers the tracer process calls are inlined and, like it, not instrumented by
// AddressSanitizer (GCC 12 also fails to compile an instrumented always_inline function
// with an address-taken local into an uninstrumented one).
#if defined(__x86_64__)
using RawRegisters = struct user_regs_struct;
#else
using RawRegisters = struct user_pt_regs;
#endif

__attribute__((always_inline, no_sanitize_address)) inline long RawSyscall(long number, long a = 0, long b = 0, long c = 0, long d = 0,
                                                      long e = 0) {
#if defined(__x86_64__)
  long result;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return result;
#else
  register long x8 __asm__("x8") = number;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
#endif
}

// Where a held capture stopped (the call that failed), in the tracer process's words.
enum class HeldStage : int32_t { Done, OutOfTime, Seize, Interrupt, Wait, Exited, Registers, Copy, Detach };

// One thread for the tracer process: what to take, and what it took.
struct HeldJob {
  uint64_t tid = 0;
  HeldStage stage = HeldStage::Done;
  int32_t error = 0;  // a positive errno, for the stage that failed
  RawRegisters registers{};
  uint64_t registersSize = 0;
  char* stack = nullptr;  // kStackCopyBytes, in the batch's arena
  int64_t stackGot = -1;
  uint64_t stackBase = 0;
  int32_t detachError = 0;  // PTRACE_DETACH's, when the capture itself went well
};

struct MappingRange {
  uint64_t start;
  uint64_t end;
};

// Everything the tracer process reads and writes, made ready before it starts, and
// freed only once it is reaped (a tracer that outlives its deadline keeps it).
struct HeldBatch {
  uint64_t deadlineNs = 0;
  std::vector<HeldJob> jobs;
  std::vector<MappingRange> ranges;  // the maps, sorted, for the stack copy's size
  // What the tracer process reads of the two above: plain pointers, no library call.
  HeldJob* jobData = nullptr;
  size_t jobCount = 0;
  const MappingRange* rangeData = nullptr;
  size_t rangeCount = 0;
  void* arena = nullptr;             // jobs.size() * kStackCopyBytes for the copies
  size_t arenaSize = 0;
  void* tracerStack = nullptr;
  size_t tracerStackSize = 0;
  int32_t parent = 0;  // our pid, which the tracer checks after PR_SET_PDEATHSIG
  ~HeldBatch() {
    if (arena != nullptr) munmap(arena, arenaSize);
    if (tracerStack != nullptr) munmap(tracerStack, tracerStackSize);
  }
};

constexpr long kWaitAll = 0x40000000;  // __WALL

__attribute__((always_inline, no_sanitize_address)) inline uint64_t RawNowNs() {
  struct timespec now {};
  RawSyscall(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&now));
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

__attribute__((always_inline, no_sanitize_address)) inline void RawSleepNs(uint64_t ns) {
  struct timespec pause {
    static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)
  };
  RawSyscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, reinterpret_cast<long>(&pause), 0);
}

// The held path of CaptureHeld, in the tracer process.
__attribute__((no_sanitize_address)) void TraceOne(const HeldBatch& batch, HeldJob& job) {
  const long tid = static_cast<long>(job.tid);
  if (RawNowNs() >= batch.deadlineNs) {
    job.stage = HeldStage::OutOfTime;
    return;
  }
  long result = RawSyscall(SYS_ptrace, PTRACE_SEIZE, tid, 0, 0);
  if (result < 0) {
    job.stage = HeldStage::Seize;
    job.error = static_cast<int32_t>(-result);
    return;
  }
  const uint64_t stopAsked = RawNowNs();
  result = RawSyscall(SYS_ptrace, PTRACE_INTERRUPT, tid, 0, 0);
  if (result < 0) {  // not stopped, so not detachable: this process's exit lets it go
    job.stage = HeldStage::Interrupt;
    job.error = static_cast<int32_t>(-result);
    return;
  }
  const uint64_t floor = stopAsked + 1'000'000;
  const uint64_t stopBy =
      stopAsked + kStopWaitNs < (batch.deadlineNs > floor ? batch.deadlineNs : floor)
          ? stopAsked + kStopWaitNs
          : (batch.deadlineNs > floor ? batch.deadlineNs : floor);
  int status = 0;
  uint64_t pause = 20'000;
  for (;;) {
    result = RawSyscall(SYS_wait4, tid, reinterpret_cast<long>(&status), kWaitAll | WNOHANG, 0);
    if (result == tid) break;
    if (result == -EINTR) continue;
    if (result < 0 || RawNowNs() >= stopBy) {
      job.stage = HeldStage::Wait;
      job.error = result < 0 ? static_cast<int32_t>(-result) : ETIMEDOUT;
      return;  // let go by the late pass below, or by this process's exit
    }
    RawSleepNs(pause);
    pause = pause * 2 < 2'000'000 ? pause * 2 : 2'000'000;
  }
  if (!WIFSTOPPED(status)) {
    job.stage = HeldStage::Exited;
    return;
  }
  const int event = status >> 16;
  const long deliver = event == 0 ? WSTOPSIG(status) : 0;
  struct iovec io {
    &job.registers, sizeof job.registers
  };
  result = RawSyscall(SYS_ptrace, PTRACE_GETREGSET, tid, NT_PRSTATUS, reinterpret_cast<long>(&io));
  if (result < 0) {
    job.stage = HeldStage::Registers;
    job.error = static_cast<int32_t>(-result);
  } else {
    job.registersSize = io.iov_len;
    if (io.iov_len == sizeof job.registers) {
#if defined(__x86_64__)
      const uint64_t sp = job.registers.rsp;
#else
      const uint64_t sp = job.registers.sp;
#endif
      // The mapping that holds sp bounds the copy; without one (a thread newer than the
      // maps), the cap alone.
      uint64_t size = kStackCopyBytes;
      size_t low = 0, high = batch.rangeCount;
      while (low < high) {
        const size_t middle = low + (high - low) / 2;
        if (batch.rangeData[middle].end <= sp) low = middle + 1;
        else high = middle;
      }
      if (low < batch.rangeCount && batch.rangeData[low].start <= sp && batch.rangeData[low].end - sp < size)
        size = batch.rangeData[low].end - sp;
      struct iovec local {
        job.stack, static_cast<size_t>(size)
      };
      struct iovec remote {
        reinterpret_cast<void*>(sp), static_cast<size_t>(size)
      };
      job.stackBase = sp;
      // By the thread's id: the process's own pid has no memory once its leader has exited.
      result = RawSyscall(SYS_process_vm_readv, tid, reinterpret_cast<long>(&local), 1,
                          reinterpret_cast<long>(&remote), 1);
      if (result < 0) {
        job.stage = HeldStage::Copy;
        job.error = static_cast<int32_t>(-result);
      } else {
        job.stackGot = result;
      }
    }
  }
  result = RawSyscall(SYS_ptrace, PTRACE_DETACH, tid, 0, deliver);
  if (result < 0) job.detachError = static_cast<int32_t>(-result);
}

__attribute__((no_sanitize_address)) int TracerMain(void* argument) {
  HeldBatch& batch = *static_cast<HeldBatch*>(argument);
  RawSyscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  if (RawSyscall(SYS_getppid) != batch.parent) return 1;  // we are already gone
  RawSyscall(SYS_setpgid, 0, 0);
  for (size_t i = 0; i < batch.jobCount; ++i) TraceOne(batch, batch.jobData[i]);
  // A thread that reached its stop after its wait gave up is let go now rather than at
  // this process's exit; one still running is let go by that exit.
  for (size_t i = 0; i < batch.jobCount; ++i) {
    const HeldJob& job = batch.jobData[i];
    if (job.stage != HeldStage::Wait) continue;
    int status = 0;
    const long tid = static_cast<long>(job.tid);
    if (RawSyscall(SYS_wait4, tid, reinterpret_cast<long>(&status), kWaitAll | WNOHANG, 0) == tid && WIFSTOPPED(status))
      RawSyscall(SYS_ptrace, PTRACE_DETACH, tid, 0, (status >> 16) == 0 ? WSTOPSIG(status) : 0);
  }
  return 0;
}

// The tracer processes running now, of every sample in this process: the tracer a
// thread is found held by is one of them when another sample takes it at the same time.
struct LiveTracers {
  std::mutex mutex;
  std::set<pid_t> pids;
};
LiveTracers& Tracers() {
  static auto* tracers = new LiveTracers();  // never destroyed: probe threads may outlive statics
  return *tracers;
}
bool IsOurTracer(uint32_t pid) {
  std::lock_guard<std::mutex> lock(Tracers().mutex);
  return Tracers().pids.count(static_cast<pid_t>(pid)) != 0;
}

// Runs `batch` in a tracer process and waits for it: the batch, done, or nullptr and
// `*error` (ETIMEDOUT: a tracer not done by the batch's deadline and a second more,
// killed, and reaped, its memory freed, by a thread of its own; else none could start).
std::unique_ptr<HeldBatch> RunTracerProcess(std::unique_ptr<HeldBatch> batch, int* error) {
  batch->parent = getpid();
  batch->tracerStackSize = 256 * 1024;
  batch->tracerStack = mmap(nullptr, batch->tracerStackSize, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  batch->arenaSize = batch->jobs.size() * kStackCopyBytes;
  batch->arena = mmap(nullptr, batch->arenaSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
  if (batch->tracerStack == MAP_FAILED || batch->arena == MAP_FAILED) {
    *error = errno;
    if (batch->tracerStack == MAP_FAILED) batch->tracerStack = nullptr;
    if (batch->arena == MAP_FAILED) batch->arena = nullptr;
    return nullptr;
  }
  for (size_t i = 0; i < batch->jobs.size(); ++i) batch->jobs[i].stack = static_cast<char*>(batch->arena) + i * kStackCopyBytes;
  batch->jobData = batch->jobs.data();
  batch->jobCount = batch->jobs.size();
  batch->rangeData = batch->ranges.data();
  batch->rangeCount = batch->ranges.size();
  // Every signal blocked in the child from its first instruction (it inherits this thread's mask).
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  char* top = static_cast<char*>(batch->tracerStack) + batch->tracerStackSize;
  // Exit signal 0: no SIGCHLD for the program's handlers; it is waited for with __WALL.
  const pid_t tracer = clone(TracerMain, top, CLONE_VM | CLONE_FILES, batch.get());
  const int cloneError = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (tracer < 0) {
    *error = cloneError;
    return nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(Tracers().mutex);
    Tracers().pids.insert(tracer);
  }
  struct Forget {
    pid_t pid;
    ~Forget() {
      std::lock_guard<std::mutex> lock(Tracers().mutex);
      Tracers().pids.erase(pid);
    }
  } forget{tracer};
  const uint64_t giveUpNs = std::max(batch->deadlineNs, NowNs()) + 1'000'000'000u;
  uint64_t pause = 20'000;
  for (;;) {
    int status = 0;
    const pid_t got = waitpid(tracer, &status, __WALL | WNOHANG);
    if (got == tracer) break;
    if (got < 0 && errno != EINTR) break;  // reaped already (it cannot run on)
    if (NowNs() >= giveUpNs) {
      kill(tracer, SIGKILL);  // what it holds is let go as it exits
      HeldBatch* orphan = batch.release();
      try {
        std::thread([tracer, orphan] {
          int ignored = 0;
          while (waitpid(tracer, &ignored, __WALL) < 0 && errno == EINTR) {
          }
          delete orphan;
        }).detach();
      } catch (const std::system_error&) {
        // No thread to reap it: its memory stays, as it must while it may run.
      }
      *error = ETIMEDOUT;
      return nullptr;
    }
    SleepNs(pause);
    pause = std::min<uint64_t>(pause * 2, 1'000'000);
  }
  return batch;
}

// The held capture of `capture` as the tracer process left it in `job`, as CaptureHeld would.
void FromJob(const HeldJob& job, Capture& capture) {
  capture.held = true;
  auto failed = [&](const char* call, int error) {
    capture.error = error;
    capture.call = call;
    capture.miss = error == ESRCH ? Miss::Gone : Miss::Failed;
  };
  switch (job.stage) {
    case HeldStage::OutOfTime: capture.miss = Miss::OutOfTime; return;
    case HeldStage::Seize:
      failed("PTRACE_SEIZE", job.error);
      if (job.error == EPERM) capture.miss = Miss::Denied;  // the caller tells a tracer from a refusal
      return;
    case HeldStage::Interrupt: failed("PTRACE_INTERRUPT", job.error); return;
    case HeldStage::Wait:
      capture.error = job.error;
      capture.call = "waitpid";
      capture.miss = Miss::NoStop;
      return;
    case HeldStage::Exited: capture.miss = Miss::Gone; return;
    case HeldStage::Registers: failed("PTRACE_GETREGSET", job.error); return;
    case HeldStage::Copy:
      failed("process_vm_readv", job.error);
      if (job.error == EPERM) capture.miss = Miss::Denied;
      return;
    case HeldStage::Done:
    case HeldStage::Detach: break;
  }
  if (job.registersSize != sizeof job.registers) {
    capture.miss = Miss::Compat;
    return;
  }
#if defined(__x86_64__)
  capture.registers.pc = job.registers.rip;
  capture.registers.sp = job.registers.rsp;
  capture.registers.fp = job.registers.rbp;
#else
  capture.registers.pc = job.registers.pc;
  capture.registers.sp = job.registers.sp;
  capture.registers.fp = job.registers.regs[29];
  capture.registers.lr = job.registers.regs[30];
#endif
  capture.stack.base = job.stackBase;
  capture.stack.bytes.assign(job.stack, static_cast<size_t>(std::max<int64_t>(job.stackGot, 0)));
  if (job.detachError != 0) failed("PTRACE_DETACH", job.detachError);
}

// Whether `pid` descends from this process (by its chain of parents).
bool IsOurDescendant(const std::string& procRoot, int32_t pid) {
  const int32_t self = getpid();
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    pid = ParentPid(procRoot, pid);
    if (pid == self) return true;
  }
  return false;
}

// The held captures: in tracer processes, a batch of threads each; then the refusals
// sorted out (another tracer, one that has let go since, Yama's descendants-only rule).
void CaptureAllHeld(int32_t pid, const std::string& procRoot, const std::vector<Mapping>& maps, uint64_t deadlineNs,
                    const std::vector<size_t>& held, std::vector<Capture>& captures) {
  constexpr size_t kBatch = 16;
  std::vector<MappingRange> ranges;
  ranges.reserve(maps.size());
  for (const Mapping& mapping : maps) ranges.push_back({mapping.start, mapping.end});
  std::vector<size_t> pending = held;
  std::vector<size_t> inProcess;  // for CaptureHeld, on a thread of ours
  bool noTracerProcess = false;
  for (int round = 0; round < 4 && !pending.empty() && !noTracerProcess; ++round) {
    std::vector<size_t> again;
    for (size_t first = 0; first < pending.size() && !noTracerProcess; first += kBatch) {
      const size_t count = std::min(kBatch, pending.size() - first);
      auto batch = std::make_unique<HeldBatch>();
      batch->deadlineNs = deadlineNs;
      batch->ranges = ranges;
      for (size_t k = 0; k < count; ++k) {
        HeldJob job;
        job.tid = captures[pending[first + k]].tid;
        batch->jobs.push_back(job);
      }
      int error = 0;
      std::unique_ptr<HeldBatch> owned = RunTracerProcess(std::move(batch), &error);
      if (!owned) {
        if (error == ETIMEDOUT) {  // it was killed: whatever it held is let go
          for (size_t k = 0; k < count; ++k) {
            Capture& capture = captures[pending[first + k]];
            capture.held = true;
            capture.miss = Miss::NoStop;
            capture.error = ETIMEDOUT;
            capture.call = "waitpid";
          }
        } else {
          for (size_t k = first; k < pending.size(); ++k) inProcess.push_back(pending[k]);
          noTracerProcess = true;
        }
        continue;
      }
      for (size_t k = 0; k < count; ++k) {
        Capture& capture = captures[pending[first + k]];
        capture = Capture{};
        capture.tid = owned->jobs[k].tid;
        FromJob(owned->jobs[k], capture);
        if (std::strcmp(capture.call, "PTRACE_SEIZE") == 0 && capture.error == EPERM) {
          // EPERM while another tracer holds the thread: one of ours (another sample of
          // this process at the same time), or a debugger. One that has let go by the time
          // it is looked at (TracerPid 0 again) is no obstacle: the thread is tried again.
          capture.tracerPid = TracerPid(procRoot, pid, capture.tid);
          capture.tracerIsOurs =
              capture.tracerPid != 0 &&
              (access(("/proc/self/task/" + std::to_string(capture.tracerPid)).c_str(), F_OK) == 0 ||
               IsOurTracer(capture.tracerPid));
          if (capture.tracerPid != 0) capture.miss = Miss::Traced;
          else if (round < 3) again.push_back(pending[first + k]);
        }
      }
    }
    pending = std::move(again);
  }
  // Refused for want of ancestry (Yama ptrace_scope 1): a thread of ours is an ancestor.
  if (procfs::YamaScope(procRoot) == "1" && IsOurDescendant(procRoot, pid)) {
    for (const size_t i : held)
      if (captures[i].miss == Miss::Denied && captures[i].held) inProcess.push_back(i);
  }
  if (inProcess.empty()) return;
  try {
    std::thread tracer([&] {
      for (const size_t i : inProcess) {
        const uint64_t tid = captures[i].tid;
        captures[i] = Capture{};
        captures[i].tid = tid;
        if (NowNs() >= deadlineNs) captures[i].miss = Miss::OutOfTime;
        else CaptureHeld(pid, procRoot, maps, deadlineNs, captures[i]);
      }
      // A thread that reached its stop after its wait gave up is let go now rather than at
      // this thread's exit; one still running is let go by that exit.
      for (const size_t i : inProcess) {
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
    for (const size_t i : inProcess) {
      captures[i].miss = Miss::Failed;
      captures[i].error = failure.code().value();
      captures[i].call = "pthread_create";
    }
  }
}

// The unheld path: registers from the syscall file, the copy on a thread of its own
// with a deadline (process_vm_readv waits for the target's mmap lock).
// A thread blocked writing or sending: a stop there would cut the transfer short. The kernel
// returns what was written so far when a partial pipe or socket write is interrupted (it is
// not restarted), and a program that does not loop on short writes loses the rest: seen with
// a CPython child writing 1 MB to a full pipe, which exited having written 64 KiB.
bool InTransfer(const ThreadRecord& thread) {
  if (!thread.blockedIn) return false;
  static const char* const kTransfers[] = {"write",  "writev",  "pwrite64", "pwritev",    "pwritev2",       "sendto", "sendmsg",
                                           "sendmmsg", "splice", "tee",      "vmsplice",   "sendfile",       "sendfile64",
                                           "copy_file_range"};
  for (const char* call : kTransfers)
    if (thread.blockedIn->call == call) return true;
  return false;
}

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
                             thread.state == ThreadState::Uninterruptible || InTransfer(thread);
    (mustNotHold ? unheld : held).push_back(i);
  }

  // The unheld first, before any thread is held: a copy that hangs then holds nobody.
  for (const size_t i : unheld) {
    if (NowNs() >= deadlineNs) captures[i].miss = Miss::OutOfTime;
    else CaptureUnheld(pid, options.procRoot, maps, captures[i]);
  }
  if (!held.empty()) CaptureAllHeld(pid, options.procRoot, maps, deadlineNs, held, captures);

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
