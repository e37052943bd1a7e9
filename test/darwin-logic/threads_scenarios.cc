// Thread scenarios: the reviews' cases (stopped, suspended, zombie, exiting,
// concurrent self-walks, a walk outliving its budget, arm64e return addresses, a
// leaf frame, an svc inside a frame; a process that execs or whose pid is reused, a
// held thread whose call returned, a null suspension token, a thread that ends before
// its walk, two samplers holding each other, Rosetta, a hung taskgated, pid 0) and the
// ordinary paths, fault-injected.
#include <sys/proc.h>
#include <sys/proc_info.h>

#include <mach-o/dyld_images.h>
#include <mach-o/loader.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "harness.h"

namespace harness {
namespace {

using fake::Kernel;
using fake::Task;
using fake::Thread;
using iokitsnap::ProcessRecord;
using iokitsnap::ThreadDetail;
using iokitsnap::ThreadOptions;
using iokitsnap::ThreadState;

#if defined(__arm64__)
constexpr bool kArm64 = true;
#else
constexpr bool kArm64 = false;
#endif

constexpr int kTargetPid = 4242;
constexpr uint64_t kKernelBase = 0x180000000;  // libsystem_kernel.dylib
constexpr uint64_t kAppBase = 0x100000000;     // the program
constexpr uint64_t kDyldBase = 0x190000000;
constexpr uint64_t kStackTop = 0x16f000000;
// arm64e signs return addresses and frame pointers: a PAC above bit 47.
constexpr uint64_t kPac = kArm64 ? 0x002d000000000000ull : 0;

void WriteImage(Kernel& kernel, Task& task, uint64_t base, uint64_t textSize) {
  struct {
    mach_header_64 header;
    segment_command_64 text;
  } image{};
  image.header.magic = MH_MAGIC_64;
  image.header.ncmds = 1;
  image.header.sizeofcmds = sizeof image.text;
  image.text.cmd = LC_SEGMENT_64;
  image.text.cmdsize = sizeof image.text;
  std::strncpy(image.text.segname, "__TEXT", sizeof image.text.segname);
  image.text.vmsize = textSize;
  kernel.Write(task, base, &image, sizeof image);
}

void WriteString(Kernel& kernel, Task& task, uint64_t address, const std::string& text) {
  kernel.Write(task, address, text.c_str(), text.size() + 1);
}

// Three images and dyld's legacy list (or, with `legacyList` false, only libdyld's).
void WriteImages(Kernel& kernel, Task& task, bool legacyList) {
  WriteImage(kernel, task, kAppBase, 0x100000);
  WriteImage(kernel, task, kKernelBase, 0x10000);
  WriteImage(kernel, task, kDyldBase, 0x80000);
  const uint64_t infosAt = 0x300000000, arrayAt = 0x300001000, pathsAt = 0x300002000;
  WriteString(kernel, task, pathsAt, "/Applications/Target.app/Contents/MacOS/Target");
  WriteString(kernel, task, pathsAt + 0x100, "/usr/lib/system/libsystem_kernel.dylib");
  WriteString(kernel, task, pathsAt + 0x200, "/usr/lib/dyld");
  dyld_image_info entries[2] = {};
  entries[0].imageLoadAddress = reinterpret_cast<const mach_header*>(kAppBase);
  entries[0].imageFilePath = reinterpret_cast<const char*>(pathsAt);
  entries[1].imageLoadAddress = reinterpret_cast<const mach_header*>(kKernelBase);
  entries[1].imageFilePath = reinterpret_cast<const char*>(pathsAt + 0x100);
  kernel.Write(task, arrayAt, entries, sizeof entries);
  dyld_all_image_infos infos{};
  infos.version = 17;
  infos.infoArrayCount = legacyList ? 2 : 0;
  infos.infoArray = legacyList ? reinterpret_cast<const dyld_image_info*>(arrayAt) : nullptr;
  infos.dyldImageLoadAddress = reinterpret_cast<const mach_header*>(kDyldBase);
  infos.dyldPath = reinterpret_cast<const char*>(pathsAt + 0x200);
  kernel.Write(task, infosAt, &infos, sizeof infos);
  task.dyldInfoAddress = infosAt;
  task.dyldInfoSize = sizeof infos;
  task.libdyldImages = {{kAppBase, "/Applications/Target.app/Contents/MacOS/Target"},
                        {kKernelBase, "/usr/lib/system/libsystem_kernel.dylib"},
                        {kDyldBase, "/usr/lib/dyld"}};
}

void WriteSyscallInstruction(Kernel& kernel, Task& task, uint64_t pc) {
  if (kArm64) {
    const uint8_t svc[4] = {0x01, 0x10, 0x00, 0xd4};  // svc #0x80
    kernel.Write(task, pc - 4, svc, 4);
  } else {
    const uint8_t syscall[2] = {0x0f, 0x05};
    kernel.Write(task, pc - 2, syscall, 2);
  }
}

// A frame-pointer chain of `depth` records starting at `fp`, return addresses in the
// program (signed on arm64e), ending with a null frame pointer.
void WriteChain(Kernel& kernel, Task& task, uint64_t fp, int depth, uint64_t firstReturn) {
  for (int i = 0; i < depth; ++i) {
    const uint64_t next = i + 1 < depth ? fp + 0x40 : 0;
    uint64_t record[2] = {next == 0 ? 0 : (next | kPac), (firstReturn + 0x10 * i) | kPac};
    kernel.Write(task, fp, record, sizeof record);
    fp = next;
  }
}

// The syscall number register as libsystem_kernel's stubs load it.
uint64_t CallRegister(int64_t number) {
  if (kArm64) return static_cast<uint64_t>(number);
  return number < 0 ? (uint64_t{1} << 24) | static_cast<uint64_t>(-number) : (uint64_t{2} << 24) | number;
}

// A libsystem_kernel stub ending at `pc`: `mov x16, #n; svc #0x80` on arm64; on x86_64
// `movl $n, %eax; movq %rcx, %r10; syscall` for a BSD call (libsyscall/custom/SYS.h)
// and `movq %rcx, %r10; movl $n, %eax; syscall` for a Mach trap (mach/i386/syscall_sw.h).
void WriteStub(Kernel& kernel, Task& task, uint64_t pc, int64_t number) {
  WriteSyscallInstruction(kernel, task, pc);
  if (kArm64) return;
  const uint32_t n = static_cast<uint32_t>(CallRegister(number));
  const uint8_t imm[4] = {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n >> 16),
                          static_cast<uint8_t>(n >> 24)};
  const uint8_t bsd[10] = {0xb8, imm[0], imm[1], imm[2], imm[3], 0x49, 0x89, 0xca, 0x0f, 0x05};
  const uint8_t mach[10] = {0x49, 0x89, 0xca, 0xb8, imm[0], imm[1], imm[2], imm[3], 0x0f, 0x05};
  kernel.Write(task, pc - 10, number < 0 ? mach : bsd, 10);
}

// A thread blocked in read(5, …) in a libsystem_kernel stub (a leaf without a frame):
// its caller is in lr (arm64) or at [sp] (x86_64).
Thread& AddReader(Kernel& kernel, Task& task, uint64_t tid, uint64_t stack) {
  Thread& thread = kernel.AddThread(task, tid, "reader", 3);
  thread.pc = kKernelBase + 0x1010;
  WriteStub(kernel, task, thread.pc, 3);
  thread.callNumber = CallRegister(3);  // read
  thread.argument0 = 5;
  thread.fp = stack + 0x100;
  thread.sp = stack;
  thread.lr = (kAppBase + 0x2000) | kPac;
  kernel.Write64(task, stack, kAppBase + 0x2000);  // x86_64: the stub's return address at [sp]
  WriteChain(kernel, task, thread.fp, 3, kAppBase + 0x3000);
  task.fdPaths[5] = "/dev/ttys001";
  thread.userUs = 1500;
  return thread;
}

// A thread whose number register looks like a call, but whose pc does not follow a
// system-call instruction (a page fault): no blockedIn.
Thread& AddFaulting(Kernel& kernel, Task& task, uint64_t tid, uint64_t stack) {
  Thread& thread = kernel.AddThread(task, tid, "", 3);
  thread.pc = kAppBase + 0x5008;
  const uint8_t nothing[4] = {0x1f, 0x20, 0x03, 0xd5};  // nop
  kernel.Write(task, thread.pc - 4, nothing, 4);
  thread.callNumber = CallRegister(3);
  thread.fp = stack + 0x100;
  thread.sp = stack;
  WriteChain(kernel, task, thread.fp, 2, kAppBase + 0x6000);
  return thread;
}

Thread& AddRunner(Kernel& kernel, Task& task, uint64_t tid, uint64_t stack) {
  Thread& thread = kernel.AddThread(task, tid, "worker", 1);
  thread.pc = kAppBase + 0x7000;
  thread.fp = stack + 0x100;
  thread.sp = stack;
  WriteChain(kernel, task, thread.fp, 4, kAppBase + 0x8000);
  return thread;
}

void BuildTarget(Kernel& kernel, int pid, bool legacyList = true) {
  Task& task = kernel.AddTask(pid, "Target");
  WriteImages(kernel, task, legacyList);
  AddReader(kernel, task, 0x1001, kStackTop);
  AddRunner(kernel, task, 0x1002, kStackTop + 0x100000);
  AddFaulting(kernel, task, 0x1003, kStackTop + 0x200000);
}

// Real time: a task-port request that blocks (taskgated) is let go only at the end of the run.
constexpr uint32_t kCallTimeoutMs = 100;

ThreadOptions Full() {
  ThreadOptions options;
  options.detail = ThreadDetail::Full;
  options.callTimeoutMs = kCallTimeoutMs;
  return options;
}

ThreadOptions Stacks() {
  ThreadOptions options = Full();
  options.stacks = true;
  return options;
}

Outcome Sample(int pid, ThreadOptions options) {
  return Capture([&](Outcome& outcome) { outcome.process = iokitsnap::SampleThreads(pid, options); });
}

const iokitsnap::ThreadRecord* FindThread(const Outcome& outcome, uint64_t tid) {
  for (const auto& thread : outcome.process.threads) {
    if (thread.tid == tid) return &thread;
  }
  return nullptr;
}

void ExpectNoError(const Outcome& outcome, std::vector<std::string>& failures) {
  Expect(!outcome.threw, "threw " + outcome.code + ": " + outcome.message, failures);
}

// The limits of a record other than the one every macOS sample carries (offCpuNs ENOTSUP).
std::vector<iokitsnap::LimitRecord> OtherLimits(const Outcome& outcome) {
  std::vector<iokitsnap::LimitRecord> others;
  for (const auto& limit : outcome.process.limits) {
    if (!(limit.field == "offCpuNs" && limit.code == "ENOTSUP")) others.push_back(limit);
  }
  return others;
}

void ExpectOffCpuLimit(const Outcome& outcome, std::vector<std::string>& failures) {
  Expect(FindLimit(outcome.process.limits, "offCpuNs", "ENOTSUP") != nullptr,
         "one offCpuNs ENOTSUP limit (macOS gives no last-run time)", failures);
}

std::string Limits(const std::vector<iokitsnap::LimitRecord>& limits) {
  std::string text;
  for (const auto& limit : limits) text += " [" + limit.field + " " + limit.code + ": " + limit.reason + "]";
  return text;
}

// The three threads of BuildTarget, as a full sample with stacks must show them.
void ExpectTargetSample(const Outcome& outcome, std::vector<std::string>& failures) {
  ExpectNoError(outcome, failures);
  if (outcome.threw) return;
  Expect(outcome.process.threads.size() == 3, "3 threads", failures);
  Expect(OtherLimits(outcome).empty(), "no limits but offCpuNs, got" + Limits(OtherLimits(outcome)), failures);
  ExpectOffCpuLimit(outcome, failures);
  const auto* reader = FindThread(outcome, 0x1001);
  Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->call == "read" && reader->blockedIn->fd == 5 &&
             reader->blockedIn->target == std::string("/dev/ttys001"),
         "the reader is blocked in read(5) on /dev/ttys001", failures);
  Expect(reader != nullptr && reader->name == std::string("reader") && reader->state == ThreadState::Waiting,
         "the reader is named and waiting", failures);
  // The leaf: pc in the stub, then its caller from lr/[sp], then the frame chain.
  const bool stackOk = reader != nullptr && reader->stack && reader->stack->size() == 5 &&
                       (*reader->stack)[0].pc == kKernelBase + 0x1010 &&
                       (*reader->stack)[0].module == "/usr/lib/system/libsystem_kernel.dylib" &&
                       (*reader->stack)[0].offset == 0x1010 && (*reader->stack)[1].pc == kAppBase + 0x2000 &&
                       (*reader->stack)[2].pc == kAppBase + 0x3000 && (*reader->stack)[4].pc == kAppBase + 0x3020 &&
                       (*reader->stack)[4].module == "/Applications/Target.app/Contents/MacOS/Target";
  std::string got;
  if (reader != nullptr && reader->stack) {
    for (const auto& frame : *reader->stack) got += " " + std::to_string(frame.pc) + ":" + frame.module;
  }
  Expect(stackOk, "the reader's stack: stub, its caller (lr/[sp]), three frames, pointer-auth bits stripped; got" + got,
         failures);
  const auto* faulting = FindThread(outcome, 0x1003);
  Expect(faulting != nullptr && !faulting->blockedIn, "a thread whose pc follows no svc/syscall has no blockedIn", failures);
  const auto* runner = FindThread(outcome, 0x1002);
  Expect(runner != nullptr && runner->state == ThreadState::Running && runner->stack && runner->stack->size() == 5,
         "the running thread: pc and four frames", failures);
}

Scenario OtherProcessWithStacks(bool legacyList) {
  Scenario s;
  s.name = std::string("another process, stacks, image list from ") + (legacyList ? "dyld_all_image_infos" : "libdyld");
  s.setup = [legacyList](Kernel& kernel) { BuildTarget(kernel, kTargetPid, legacyList); };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel& kernel, std::vector<std::string>& failures) {
    ExpectTargetSample(outcome, failures);
    Task* task = kernel.FindTask(kTargetPid);
    Expect(task->totalHoldNs > 0 && task->totalHoldNs < 100ull * 1000 * 1000,
           "the target was held, for less than the 100 ms budget in all", failures);
  };
  s.injectFaults = legacyList;
  return s;
}

Scenario NoTaskPort() {
  Scenario s;
  s.name = "another user's process: libproc only";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->taskPortAllowed = false;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    Expect(outcome.process.threads.size() == 3, "3 threads from PROC_PIDLISTTHREADIDS", failures);
    const auto* denied = FindLimit(outcome.process.limits, "blockedIn", "EPERM");
    Expect(denied != nullptr && denied->reason.find("task_read_for_pid") != std::string::npos &&
               denied->reason.find("task_for_pid (0x5)") != std::string::npos &&
               denied->hint.find("hardened runtime") != std::string::npos,
           "one EPERM limit: the read port, then the control port, were refused; the hint names the hardened "
           "runtime; got" + Limits(outcome.process.limits),
           failures);
    ExpectOffCpuLimit(outcome, failures);
  };
  s.injectFaults = true;
  return s;
}

// Our own process: the walker is a (bound) thread of the self task and skips itself.
void BuildSelf(Kernel& kernel, std::vector<uint64_t> walkers) {
  Task& task = kernel.AddTask(fake::SelfPid(), "node");
  WriteImages(kernel, task, true);
  AddReader(kernel, task, 0x2001, kStackTop);
  for (size_t i = 0; i < walkers.size(); ++i) {
    Thread& walker = AddRunner(kernel, task, walkers[i], kStackTop + 0x100000 * (i + 1));
    walker.name = "iokit-snap probe";
  }
}

Scenario SelfWithStacks() {
  Scenario s;
  s.name = "own process, stacks (thread by thread)";
  s.setup = [](Kernel& kernel) {
    BuildSelf(kernel, {0x2100});
    kernel.BindCurrentThread(fake::SelfPid(), 0x2100);
  };
  s.run = [] { return Sample(fake::SelfPid(), Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    const auto* reader = FindThread(outcome, 0x2001);
    Expect(reader != nullptr && reader->stack && reader->stack->size() == 5, "the reader's stack is walked", failures);
    const auto* walker = FindThread(outcome, 0x2100);
    Expect(walker != nullptr && !walker->stack, "the walker does not walk (or suspend) itself", failures);
  };
  s.injectFaults = true;
  return s;
}

Scenario ConcurrentSelfWalks() {
  Scenario s;
  s.name = "two concurrent walks of our own process";
  s.setup = [](Kernel& kernel) {
    Task& task = kernel.AddTask(fake::SelfPid(), "node");
    WriteImages(kernel, task, true);
    // Only the two walkers: each would suspend the other first.
    AddRunner(kernel, task, 0x3001, kStackTop).name = "walker A";
    AddRunner(kernel, task, 0x3002, kStackTop + 0x100000).name = "walker B";
    kernel.SetRaceSuspends(true);
  };
  s.run = [] {
    Outcome a, b;
    std::atomic<int> ready{0};
    auto startTogether = [&ready] {
      ++ready;
      while (ready.load() < 2) std::this_thread::yield();
    };
    std::thread second([&b, &startTogether] {
      fake::Kernel::Get().BindCurrentThread(fake::SelfPid(), 0x3002);
      startTogether();
      b = Sample(fake::SelfPid(), Stacks());
    });
    fake::Kernel::Get().BindCurrentThread(fake::SelfPid(), 0x3001);
    startTogether();
    a = Sample(fake::SelfPid(), Stacks());
    second.join();
    if (b.threw) return b;
    return a;
  };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) { ExpectNoError(outcome, failures); };
  return s;
}

Scenario StoppedTask() {
  Scenario s;
  s.name = "a SIGSTOPped process reads stopped";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->status = SSTOP;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    bool allStopped = !outcome.process.threads.empty();
    for (const auto& thread : outcome.process.threads) allStopped = allStopped && thread.state == ThreadState::Stopped;
    Expect(allStopped, "every thread of a SIGSTOPped process is stopped (its run state says waiting)", failures);
    const auto* reader = FindThread(outcome, 0x1001);
    Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->call == "read",
           "the call it was stopped in is kept", failures);
    // The call may have returned before the stop (x0/x1 then hold its result on arm64;
    // rdi stands on x86_64).
    if (kArm64) {
      Expect(reader != nullptr && reader->blockedIn && !reader->blockedIn->fd && !reader->blockedIn->target &&
                 FindLimit(outcome.process.limits, "blockedIn", "ENOTSUP") != nullptr,
             "arm64: no fd or target from x0 of a held thread, and a limit saying why", failures);
    } else {
      Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->fd == 5,
             "x86_64: the fd from rdi, which a return leaves alone", failures);
    }
  };
  return s;
}

Scenario SuspendedTask() {
  Scenario s;
  s.name = "a task_suspend'ed process reads stopped, with its suspend count";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->userStop = 1;  // lldb holds it
  };
  s.run = [] { return Sample(kTargetPid, Full()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    bool allHeld = !outcome.process.threads.empty();
    for (const auto& thread : outcome.process.threads) {
      allHeld = allHeld && thread.state == ThreadState::Stopped && thread.suspendCount == 1;
    }
    Expect(allHeld, "every thread stopped, suspendCount 1 (the task's hold)", failures);
  };
  s.injectFaults = true;
  return s;
}

Scenario Zombie() {
  Scenario s;
  s.name = "a zombie is found (PROC_PIDT_SHORTBSDINFO arg 1), with a limit";
  s.setup = [](Kernel& kernel) {
    Task& task = kernel.AddTask(kTargetPid, "Target");
    task.status = SZOMB;
    task.alive = false;
    task.taskPortAllowed = false;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    Expect(outcome.process.threads.empty() && FindLimit(outcome.process.limits, "threads", "ESRCH") != nullptr,
           "no threads, and a limit saying it is a zombie", failures);
  };
  return s;
}

Scenario Exiting() {
  Scenario s;
  s.name = "an exiting process (task_threads KERN_FAILURE) is ESRCH";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    Task* task = kernel.FindTask(kTargetPid);
    task->inactive = true;
    task->flags |= PROC_FLAG_INEXIT;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    Expect(outcome.threw && outcome.code == "ESRCH", "ESRCH, got " + (outcome.threw ? outcome.code : "a record"),
           failures);
  };
  return s;
}

Scenario OutlivesBudget() {
  Scenario s;
  s.name = "a walk that outlives its budget stops, resumes, and says which threads were not walked";
  s.setup = [](Kernel& kernel) {
    Task& task = kernel.AddTask(kTargetPid, "Target");
    WriteImages(kernel, task, true);
    for (uint64_t i = 0; i < 6; ++i) {
      Thread& thread = AddRunner(kernel, task, 0x4000 + i, kStackTop + 0x100000 * i);
      WriteChain(kernel, task, thread.fp, 1024, kAppBase + 0x9000);
    }
    task.readCostNs = 100 * 1000;  // a slow target: 0.1 ms a read, 1000 reads a thread
  };
  s.run = [] {
    ThreadOptions options = Stacks();
    options.maxStackDepth = 1024;
    return Sample(kTargetPid, options);
  };
  s.expect = [](const Outcome& outcome, Kernel& kernel, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    Expect(FindLimit(outcome.process.limits, "stack", "ETIMEDOUT") != nullptr, "an ETIMEDOUT stack limit", failures);
    Task* task = kernel.FindTask(kTargetPid);
    // A budget is checked between reads, so the last read may end just past it.
    Expect(task->totalHoldNs <= 101ull * 1000 * 1000,
           "the target was frozen " + std::to_string(task->totalHoldNs / 1000) + " µs in all, within the 100 ms budget",
           failures);
    const auto* notWalked = FindLimit(outcome.process.limits, "stack", "ETIMEDOUT");
    Expect(notWalked != nullptr && notWalked->reason.find("not walked") != std::string::npos,
           "a limit names the threads not walked in time", failures);
  };
  return s;
}

Scenario SvcInsideFrame() {
  Scenario s;
  s.name = "an svc inside a function with its own frame gives no duplicate caller";
  s.setup = [](Kernel& kernel) {
    Task& task = kernel.AddTask(kTargetPid, "Target");
    WriteImages(kernel, task, true);
    Thread& thread = kernel.AddThread(task, 0x5001, "inline-svc", 3);
    thread.pc = kAppBase + 0x4004;
    WriteSyscallInstruction(kernel, task, thread.pc);
    thread.callNumber = CallRegister(-31);  // mach_msg_trap
    thread.fp = kStackTop + 0x100;
    thread.sp = kStackTop;
    // The function saved lr in its own frame record: lr and the record agree.
    thread.lr = (kAppBase + 0x3000) | kPac;
    kernel.Write64(task, kStackTop, kAppBase + 0x3000);
    WriteChain(kernel, task, thread.fp, 2, kAppBase + 0x3000);
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    const auto* thread = FindThread(outcome, 0x5001);
    Expect(thread != nullptr && thread->blockedIn && thread->blockedIn->call == "mach_msg_trap",
           "blocked in mach_msg_trap", failures);
    Expect(thread != nullptr && thread->stack && thread->stack->size() == 3 && (*thread->stack)[1].pc == kAppBase + 0x3000 &&
               (*thread->stack)[2].pc == kAppBase + 0x3010,
           "pc, the caller once, the next frame", failures);
  };
  return s;
}

Scenario Sampler() {
  Scenario s;
  s.name = "a thread sampler: two samples, then close";
  s.setup = [](Kernel& kernel) { BuildTarget(kernel, kTargetPid); };
  s.run = [] {
    return Capture([](Outcome& outcome) {
      std::unique_ptr<iokitsnap::ThreadSampler> sampler = iokitsnap::OpenThreadSampler(kTargetPid, Stacks());
      sampler->Sample();
      outcome.process = sampler->Sample();
      sampler->Close();
    });
  };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectTargetSample(outcome, failures);
  };
  s.injectFaults = true;
  return s;
}


// ---------------------------------------------------------------- the second review (issue 19)

const iokitsnap::ThreadRecord* FindIn(const ProcessRecord& record, uint64_t tid) {
  for (const auto& thread : record.threads) {
    if (thread.tid == tid) return &thread;
  }
  return nullptr;
}

// kern_exec.c: an exec gives the process a new task and new threads; the sampler's
// port then names a dead task. The next sample is of the new task, not an `exit`.
Scenario ExecBetweenSamples() {
  Scenario s;
  s.name = "a process execs between two samples: its new task is opened (not read as an exit)";
  s.setup = [](Kernel& kernel) { BuildTarget(kernel, kTargetPid); };
  s.run = [] {
    return Capture([](Outcome& outcome) {
      std::unique_ptr<iokitsnap::ThreadSampler> sampler = iokitsnap::OpenThreadSampler(kTargetPid, Stacks());
      outcome.more.push_back(sampler->Sample());
      Kernel& kernel = Kernel::Get();
      if (kernel.FindTask(kTargetPid) != nullptr && kernel.FindTask(kTargetPid)->alive) kernel.Exec(kTargetPid, "Target2");
      outcome.process = sampler->Sample();
      sampler->Close();
    });
  };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    if (outcome.threw) return;
    Expect(outcome.process.name == "Target2", "the second sample names the new image, got " + outcome.process.name,
           failures);
    const auto* reader = FindThread(outcome, 0x101001);
    Expect(outcome.process.threads.size() == 3 && reader != nullptr && reader->stack && reader->stack->size() == 5 &&
               reader->blockedIn && reader->blockedIn->fd == 5,
           "the new task's threads, with stacks and blockedIn", failures);
    Expect(OtherLimits(outcome).empty(), "no limits but offCpuNs, got" + Limits(OtherLimits(outcome)), failures);
  };
  s.injectFaults = true;
  return s;
}

// The exec lands after the sample identified the process and before task_threads: the
// port fails, the pid is still the same process (p_uniqueid), so it is opened again.
Scenario ExecDuringSample() {
  Scenario s;
  s.name = "a process execs in the middle of a sample: the sample is of its new task";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->execAtTaskThreads = true;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    Expect(outcome.process.name == "Target-new" && FindThread(outcome, 0x101002) != nullptr &&
               outcome.process.threads.size() == 3,
           "the new task's threads", failures);
    Expect(OtherLimits(outcome).empty(), "no limits but offCpuNs, got" + Limits(OtherLimits(outcome)), failures);
  };
  s.injectFaults = true;
  return s;
}

// A sampler refused the task port asks again once the process has exec'd (p_idversion
// changed): AMFI judges the new image, which may allow it.
Scenario RefusedThenExec() {
  Scenario s;
  s.name = "a refused process execs into an image that allows its task port: the sampler asks again";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->taskPortAllowed = false;
  };
  s.run = [] {
    return Capture([](Outcome& outcome) {
      std::unique_ptr<iokitsnap::ThreadSampler> sampler = iokitsnap::OpenThreadSampler(kTargetPid, Full());
      outcome.more.push_back(sampler->Sample());
      Kernel& kernel = Kernel::Get();
      if (kernel.FindTask(kTargetPid) != nullptr && kernel.FindTask(kTargetPid)->alive) {
        kernel.Exec(kTargetPid, "Target2").taskPortAllowed = true;
      }
      outcome.process = sampler->Sample();
    });
  };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    if (outcome.threw) return;
    Expect(FindLimit(outcome.more[0].limits, "blockedIn", "EPERM") != nullptr, "the first sample was refused",
           failures);
    const auto* reader = FindThread(outcome, 0x101001);
    Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->call == "read" &&
               FindLimit(outcome.process.limits, "blockedIn", "EPERM") == nullptr,
           "after the exec, the task-port path, got" + Limits(outcome.process.limits), failures);
  };
  s.injectFaults = true;
  return s;
}

// The process exits and its pid is given to another process before the next sample:
// that is an exit (ESRCH), on the task-port path and on the libproc path alike.
Scenario PidReused(bool taskPort) {
  Scenario s;
  s.name = std::string("a sampled pid comes to name another process: ESRCH (") +
           (taskPort ? "task port" : "libproc") + ")";
  s.setup = [taskPort](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->taskPortAllowed = taskPort;
  };
  s.run = [] {
    return Capture([](Outcome& outcome) {
      std::unique_ptr<iokitsnap::ThreadSampler> sampler = iokitsnap::OpenThreadSampler(kTargetPid, Full());
      outcome.more.push_back(sampler->Sample());
      Kernel& kernel = Kernel::Get();
      {
        std::lock_guard<std::mutex> lock(kernel.mutex);
        Task* old = kernel.FindTask(kTargetPid);
        const uint64_t uniqueId = old->uniqueId;
        old->alive = false;
        old->replaced = true;
        for (Thread& thread : old->threads) thread.vanished = true;
        Task& other = kernel.AddTask(kTargetPid, "Other");
        other.uniqueId = uniqueId + 7;
        AddRunner(kernel, other, 0x7001, kStackTop);
      }
      outcome.process = sampler->Sample();
    });
  };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    Expect(outcome.threw && outcome.code == "ESRCH" && outcome.message.find("another process") != std::string::npos,
           "ESRCH naming the pid's new owner, got " + (outcome.threw ? outcome.code + ": " + outcome.message
                                                                        : "a record of " + outcome.process.name),
           failures);
  };
  return s;
}

// A held thread (its task stopped or suspended, or its own suspend count) may have
// finished its call: xnu then writes the result over x0/x1 (arm64) or rax/rdx
// (x86_64) and parks the thread in thread_apc_ast, WAITING, pc and x16 unchanged.
Scenario HeldThreadReturned(bool taskHeld) {
  Scenario s;
  s.name = std::string("a held thread whose call returned (x0/rax = the result): no fd from it (") +
           (taskHeld ? "task suspended" : "thread suspended") + ")";
  s.setup = [taskHeld](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    Task& task = *kernel.FindTask(kTargetPid);
    task.fdPaths[7] = "/Users/me/unrelated.db";
    Thread& reader = task.threads[0];  // read(5, buf, n) returned 7 bytes
    if (taskHeld) task.userStop = 1; else reader.ownSuspendCount = 1;
    if (kArm64) reader.argument0 = 7; else reader.callNumber = 7;
    // An indirect syscall(2) (arm64: its real number was in x0, now the result) / a
    // bare `syscall` outside any libsystem_kernel stub (x86_64: rax is the result).
    Thread& other = kernel.AddThread(task, 0x1004, "indirect", 3);
    other.pc = kAppBase + 0x9010;
    WriteSyscallInstruction(kernel, task, other.pc);
    other.callNumber = kArm64 ? 0 : 7;
    other.argument0 = 7;
    other.argument1 = 5;
    if (!taskHeld) other.ownSuspendCount = 1;
    other.fp = kStackTop + 0x300100;
    other.sp = kStackTop + 0x300000;
  };
  s.run = [] { return Sample(kTargetPid, Full()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    const auto* reader = FindThread(outcome, 0x1001);
    const auto* other = FindThread(outcome, 0x1004);
    Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->call == "read",
           "the reader's call is read (arm64: x16; x86_64: the stub's movl, not rax)", failures);
    for (const auto& thread : outcome.process.threads) {
      Expect(!thread.blockedIn || thread.blockedIn->target != std::string("/Users/me/unrelated.db"),
             "no target named from a result", failures);
    }
    Expect(FindLimit(outcome.process.limits, "blockedIn", "ENOTSUP") != nullptr,
           "a limit says why, got" + Limits(outcome.process.limits), failures);
    if (kArm64) {
      Expect(reader != nullptr && reader->blockedIn && !reader->blockedIn->fd && !reader->blockedIn->target,
             "arm64: no fd or target from x0", failures);
      Expect(other != nullptr && other->blockedIn && other->blockedIn->call == "syscall" && !other->blockedIn->fd,
             "arm64: an indirect syscall's real number (x0) is not taken from a held thread", failures);
    } else {
      Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->fd == 5 &&
                 reader->blockedIn->target == std::string("/dev/ttys001"),
             "x86_64: the fd from rdi, which the return leaves alone", failures);
      Expect(other != nullptr && !other->blockedIn, "x86_64: a held thread outside a known stub has no blockedIn",
             failures);
    }
  };
  s.injectFaults = true;
  return s;
}

// task_suspend2 succeeds with no token when the task went inactive meanwhile: nothing
// is held, so nothing may be walked (and nothing released).
Scenario NullToken() {
  Scenario s;
  s.name = "task_suspend2 succeeds with a null token (the task is exiting): no walk, a limit";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->tokenNull = true;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel& kernel, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    bool noStack = !outcome.process.threads.empty();
    for (const auto& thread : outcome.process.threads) noStack = noStack && !thread.stack && !thread.pc;
    Expect(noStack, "no stack is given", failures);
    // Nothing is read after the suspension that did not hold: the threads run meanwhile.
    const auto suspended = std::find(kernel.callLog.begin(), kernel.callLog.end(), "task_suspend2");
    const bool walked = suspended != kernel.callLog.end() &&
                        std::any_of(suspended, kernel.callLog.end(), [](const std::string& call) {
                          return call == "thread_get_state" || call == "mach_vm_read_overwrite";
                        });
    Expect(suspended != kernel.callLog.end() && !walked, "no register or stack is read from a task nobody holds",
           failures);
    Expect(FindLimit(outcome.process.limits, "stack", "ESRCH") != nullptr,
           "a limit says the process is exiting, got" + Limits(outcome.process.limits), failures);
  };
  s.injectFaults = true;
  return s;
}

// thread_act.c thread_suspend: KERN_TERMINATED for a thread that ended after the listing.
Scenario ThreadEndsBeforeItsWalk() {
  Scenario s;
  s.name = "a thread ends between the listing and its walk (thread_suspend KERN_TERMINATED)";
  s.setup = [](Kernel& kernel) {
    BuildSelf(kernel, {0x2100});
    Task& task = *kernel.FindTask(fake::SelfPid());
    AddRunner(kernel, task, 0x2002, kStackTop + 0x400000).endsBeforeSuspend = true;
    kernel.BindCurrentThread(fake::SelfPid(), 0x2100);
  };
  s.run = [] { return Sample(fake::SelfPid(), Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    const auto* ended = FindThread(outcome, 0x2002);
    const auto* reader = FindThread(outcome, 0x2001);
    Expect(ended != nullptr && !ended->stack && reader != nullptr && reader->stack,
           "the ended thread has no stack, the others do", failures);
    Expect(FindLimit(outcome.process.limits, "stack", "ESRCH") != nullptr &&
               FindLimit(outcome.process.limits, "stack", "EIO") == nullptr,
           "an ended thread is an ESRCH limit, not an EIO failure, got" + Limits(outcome.process.limits), failures);
  };
  s.injectFaults = true;
  return s;
}

// Two iokit-snap processes taking stacks of each other at the same moment: each
// task_suspend2 lands, each walker parks on its way back to user space, held by the
// other, and neither ever runs again to drop its token. The fake makes the two calls
// meet (each waits for the other), as a real race would.
constexpr int kSamplerA = 5001, kSamplerB = 5002;

void BuildSampler(Kernel& kernel, int pid, uint64_t walker, uint64_t reader) {
  Task& task = kernel.AddTask(pid, "node");
  WriteImages(kernel, task, true);
  AddRunner(kernel, task, walker, kStackTop + 0x100000).name = "iokit-snap probe";
  AddReader(kernel, task, reader, kStackTop);
}

Scenario TwoSamplersHoldEachOther() {
  Scenario s;
  s.name = "two samplers take stacks of each other at once: neither freezes the other";
  s.setup = [](Kernel& kernel) {
    BuildSampler(kernel, kSamplerA, 0x6001, 0x6011);
    BuildSampler(kernel, kSamplerB, 0x6002, 0x6012);
    kernel.SetCrossHolds(true);
  };
  s.run = [] {
    Outcome a, b;
    std::atomic<int> ready{0};
    auto startTogether = [&ready] {
      ++ready;
      while (ready.load() < 2) std::this_thread::yield();
    };
    std::thread second([&b, &startTogether] {
      Kernel::Get().BindCurrentThread(kSamplerB, 0x6002);
      startTogether();
      b = Sample(kSamplerA, Stacks());
    });
    Kernel::Get().BindCurrentThread(kSamplerA, 0x6001);
    startTogether();
    a = Sample(kSamplerB, Stacks());
    second.join();
    if (b.threw) return b;
    a.more.push_back(b.process);
    return a;
  };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    if (outcome.threw || outcome.more.empty()) return;
    const auto* readerOfB = FindIn(outcome.process, 0x6012);
    const auto* readerOfA = FindIn(outcome.more[0], 0x6011);
    Expect(readerOfB != nullptr && readerOfB->stack && readerOfA != nullptr && readerOfA->stack,
           "each sampler took the other's stacks, one after the other", failures);
  };
  return s;
}

// An x86_64 process translated by Rosetta (PROC_PIDARCHINFO says CPU_TYPE_X86_64):
// the arm64 build gives each thread's pc and walks nothing. The x86_64 build running
// translated itself (sysctl.proc_translated) reads no registers as native.
Scenario Rosetta() {
  Scenario s;
  s.name = kArm64 ? "a process translated by Rosetta: its pc alone, no frame chain"
                  : "iokit-snap itself translated by Rosetta: no registers read as native";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    if (kArm64) {
      kernel.FindTask(kTargetPid)->cpuType = 0x01000007;  // CPU_TYPE_X86_64
    } else {
      kernel.SetSelfTranslated(true);
    }
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    const auto* reader = FindThread(outcome, 0x1001);
    if (kArm64) {
      bool pcOnly = !outcome.process.threads.empty();
      for (const auto& thread : outcome.process.threads) pcOnly = pcOnly && thread.stack && thread.stack->size() == 1;
      Expect(pcOnly, "every stack is the pc alone", failures);
      Expect(FindLimit(outcome.process.limits, "stack", "ENOTSUP") != nullptr,
             "a limit names Rosetta, got" + Limits(outcome.process.limits), failures);
      Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->call == "read",
             "blockedIn is still read (the kernel decodes the native svc of a translated thread as any other)",
             failures);
    } else {
      bool nothing = !outcome.process.threads.empty();
      for (const auto& thread : outcome.process.threads) nothing = nothing && !thread.stack && !thread.blockedIn;
      Expect(nothing, "no stack and no blockedIn", failures);
      const auto* limit = FindLimit(outcome.process.limits, "blockedIn", "ENOTSUP");
      Expect(limit != nullptr && limit->reason.find("Rosetta") != std::string::npos,
             "a limit names Rosetta, got" + Limits(outcome.process.limits), failures);
    }
  };
  s.injectFaults = true;
  return s;
}

// A non-root caller's task port request waits on taskgated, which does not answer:
// the request is abandoned after callTimeoutMs (the libproc view, with a limit), and
// while it stays stuck no second request is made.
Scenario TaskgatedHangs() {
  Scenario s;
  s.name = "taskgated does not answer: one deadline, the libproc view, no second request while stuck";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->taskPortBlocks = true;
  };
  s.run = [] {
    return Capture([](Outcome& outcome) {
      outcome.more.push_back(iokitsnap::SampleThreads(kTargetPid, Full()));
      outcome.process = iokitsnap::SampleThreads(kTargetPid, Full());
    });
  };
  s.expect = [](const Outcome& outcome, Kernel& kernel, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    if (outcome.threw) return;
    const auto* first = FindLimit(outcome.more[0].limits, "blockedIn", "ETIMEDOUT");
    Expect(first != nullptr && first->reason.find("did not return within 100 ms") != std::string::npos &&
               outcome.more[0].threads.size() == 3,
           "the first sample waited 100 ms, then read the threads through libproc", failures);
    const auto* second = FindLimit(outcome.process.limits, "blockedIn", "ETIMEDOUT");
    Expect(second != nullptr && second->reason.find("no task port was asked for") != std::string::npos,
           "the second sample does not ask again while the first request is stuck, got" +
               Limits(outcome.process.limits),
           failures);
    size_t asked = 0;
    for (const std::string& call : kernel.callLog) asked += call == "task_read_for_pid" || call == "task_for_pid";
    Expect(asked == 1, "one task port request in all, got " + std::to_string(asked), failures);
  };
  return s;
}

// kern_proc.c: task_for_pid and task_read_for_pid refuse pid 0 to everyone.
Scenario KernelPid() {
  Scenario s;
  s.name = "pid 0 (the kernel): no task port is asked for, the limit says why";
  s.setup = [](Kernel& kernel) {
    Task& task = kernel.AddTask(0, "kernel_task");
    AddRunner(kernel, task, 0x101, kStackTop);
  };
  s.run = [] { return Sample(0, Full()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    const auto* limit = FindLimit(outcome.process.limits, "blockedIn", "EPERM");
    Expect(limit != nullptr && limit->reason.find("pid 0 is the kernel") != std::string::npos && limit->hint.empty(),
           "an EPERM limit naming the kernel, with no hint (nothing can be done), got" +
               Limits(outcome.process.limits),
           failures);
  };
  return s;
}

// Everything the sampler does takes a read port (task.defs, thread_act.defs,
// mach_vm.defs): where only that is granted, the sample is as full as with task_for_pid.
Scenario ReadPortOnly() {
  Scenario s;
  s.name = "only a read port is granted (task_read_for_pid): a full sample with stacks";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->controlPortAllowed = false;
  };
  s.run = [] { return Sample(kTargetPid, Stacks()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectTargetSample(outcome, failures);
  };
  s.injectFaults = true;
  return s;
}

// kern_proc.c: task_for_pid answers KERN_SUCCESS and MACH_PORT_NULL for a proc with no
// task (and task_read_for_pid 0 and a null port): not a refusal ("denied (0x0)").
Scenario NoTaskYet() {
  Scenario s;
  s.name = "the process has no task yet (success with a null port): EAGAIN, not a refusal";
  s.setup = [](Kernel& kernel) {
    BuildTarget(kernel, kTargetPid);
    kernel.FindTask(kTargetPid)->noTask = true;
  };
  s.run = [] { return Sample(kTargetPid, Full()); };
  s.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
    ExpectNoError(outcome, failures);
    Expect(FindLimit(outcome.process.limits, "blockedIn", "EAGAIN") != nullptr &&
               FindLimit(outcome.process.limits, "blockedIn", "EPERM") == nullptr,
           "an EAGAIN limit (sample again), not EPERM, got" + Limits(outcome.process.limits), failures);
  };
  return s;
}

}  // namespace

std::vector<Scenario> ThreadScenarios() {
  return {OtherProcessWithStacks(true), OtherProcessWithStacks(false), NoTaskPort(), SelfWithStacks(),
          ConcurrentSelfWalks(), StoppedTask(), SuspendedTask(), Zombie(), Exiting(), OutlivesBudget(),
          SvcInsideFrame(), Sampler(), ExecBetweenSamples(), ExecDuringSample(), PidReused(true), PidReused(false),
          HeldThreadReturned(true), HeldThreadReturned(false), NullToken(), ThreadEndsBeforeItsWalk(),
          TwoSamplersHoldEachOther(), Rosetta(), TaskgatedHangs(), KernelPid(), ReadPortOnly(), NoTaskYet(), RefusedThenExec()};
}

}  // namespace harness
