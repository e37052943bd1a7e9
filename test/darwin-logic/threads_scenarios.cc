// Thread scenarios: the review's cases (stopped, suspended, zombie, exiting,
// concurrent self-walks, a walk outliving its budget, arm64e return addresses, a
// leaf frame, an svc inside a frame) and the ordinary paths, fault-injected.
#include <sys/proc.h>
#include <sys/proc_info.h>

#include <mach-o/dyld_images.h>
#include <mach-o/loader.h>

#include <atomic>
#include <cstring>
#include <memory>
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

// A thread blocked in read(5, …) in a libsystem_kernel stub (a leaf without a frame):
// its caller is in lr (arm64) or at [sp] (x86_64).
Thread& AddReader(Kernel& kernel, Task& task, uint64_t tid, uint64_t stack) {
  Thread& thread = kernel.AddThread(task, tid, "reader", 3);
  thread.pc = kKernelBase + 0x1004;
  WriteSyscallInstruction(kernel, task, thread.pc);
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

ThreadOptions Stacks() {
  ThreadOptions options;
  options.detail = ThreadDetail::Full;
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

// The three threads of BuildTarget, as a full sample with stacks must show them.
void ExpectTargetSample(const Outcome& outcome, std::vector<std::string>& failures) {
  ExpectNoError(outcome, failures);
  if (outcome.threw) return;
  Expect(outcome.process.threads.size() == 3, "3 threads", failures);
  Expect(outcome.process.limits.empty(), "no limits, got " + std::to_string(outcome.process.limits.size()) +
                                             (outcome.process.limits.empty() ? "" : ": " + outcome.process.limits[0].reason),
         failures);
  const auto* reader = FindThread(outcome, 0x1001);
  Expect(reader != nullptr && reader->blockedIn && reader->blockedIn->call == "read" && reader->blockedIn->fd == 5 &&
             reader->blockedIn->target == std::string("/dev/ttys001"),
         "the reader is blocked in read(5) on /dev/ttys001", failures);
  Expect(reader != nullptr && reader->name == std::string("reader") && reader->state == ThreadState::Waiting,
         "the reader is named and waiting", failures);
  // The leaf: pc in the stub, then its caller from lr/[sp], then the frame chain.
  const bool stackOk = reader != nullptr && reader->stack && reader->stack->size() == 5 &&
                       (*reader->stack)[0].pc == kKernelBase + 0x1004 &&
                       (*reader->stack)[0].module == "/usr/lib/system/libsystem_kernel.dylib" &&
                       (*reader->stack)[0].offset == 0x1004 && (*reader->stack)[1].pc == kAppBase + 0x2000 &&
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
    Expect(FindLimit(outcome.process.limits, "blockedIn", "EPERM") != nullptr, "one EPERM limit naming what is missing",
           failures);
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
  s.run = [] {
    ThreadOptions options;
    return Sample(kTargetPid, options);
  };
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

}  // namespace

std::vector<Scenario> ThreadScenarios() {
  return {OtherProcessWithStacks(true), OtherProcessWithStacks(false), NoTaskPort(), SelfWithStacks(),
          ConcurrentSelfWalks(), StoppedTask(), SuspendedTask(), Zombie(), Exiting(), OutlivesBudget(),
          SvcInsideFrame(), Sampler()};
}

}  // namespace harness
