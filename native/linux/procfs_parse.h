// Pure parsers for the /proc/<pid>/task/<tid>/ files the thread sampler reads.
// They work on the bytes as read (no allocation, no OS calls), so every quirk
// of the formats is handled in one place: names that contain ") ", "running"
// instead of a syscall line, "0" for an empty wchan.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "../model.h"

namespace iokitsnap {
namespace procfs {

// /proc/<pid>/task/<tid>/stat: "tid (comm) S ppid … utime stime …".
struct TaskStat {
  std::string_view name;  // task->comm, as the kernel printed it (may hold ')', spaces, newlines)
  char stateLetter = '?';
  uint64_t ppid = 0;        // field 4, the parent's pid
  uint64_t utimeTicks = 0;
  uint64_t stimeTicks = 0;
  uint64_t numThreads = 0;  // field 20; in a thread's own stat, its whole group's count
  uint64_t startTicks = 0;  // field 22, starttime: with the tid, which thread this is (tids are reused)
  uint64_t flags = 0;       // field 9, task->flags (PF_*)
  std::optional<uint32_t> processor;  // field 39: the CPU it last ran on (whose clock its sched times are in)
};
// PF_KTHREAD in stat's flags: a kernel thread. It has no user space, so its syscall
// file shows zeroed user registers ("0 0x0 …"), which is not a call to read(0).
constexpr uint64_t kPfKthread = 0x00200000;
// The comm sits between the first '(' and the LAST ')': a name may itself contain ") ".
std::optional<TaskStat> ParseTaskStat(std::string_view text);

// fs/proc/array.c task_state_array: R S D T t X Z P I, plus the letters of older kernels.
ThreadState StateFromLetter(char letter);

// /proc/<pid>/task/<tid>/schedstat: "sum_exec_runtime_ns run_delay_ns pcount".
struct SchedStat {
  uint64_t cpuNs = 0;
  uint64_t runDelayNs = 0;
  uint64_t timeslices = 0;  // pcount: how many times the task got a CPU
};
std::optional<SchedStat> ParseSchedStat(std::string_view text);

// se.exec_start of /proc/<pid>/task/<tid>/sched, in ns: the scheduler's task clock
// (rq_clock_task of the CPU it ran on) when the thread last ran or was last accounted
// while running. The kernel prints it as ms with six decimals ("804995.440366"), which is
// the exact ns value. The comm in the file's first line cannot forge the line: it holds
// at most 15 bytes, fewer than "\nse.exec_start :" and a number.
std::optional<uint64_t> ParseSchedExecStart(std::string_view text);

// The two context-switch lines of /proc/<pid>/task/<tid>/status.
struct ContextSwitches {
  uint64_t voluntary = 0;
  uint64_t involuntary = 0;
};
std::optional<ContextSwitches> ParseContextSwitches(std::string_view status);

// /proc/<pid>/task/<tid>/syscall: "nr a0 a1 a2 a3 a4 a5 sp pc" while in a call,
// "-1 sp pc" in user space, "running" while on a CPU (the kernel cannot read
// the registers of a running task).
struct SyscallLine {
  enum class Kind { InCall, User, Running };
  Kind kind = Kind::User;
  int64_t number = -1;
  uint64_t args[6] = {0, 0, 0, 0, 0, 0};
  uint64_t sp = 0;
  uint64_t pc = 0;
};
std::optional<SyscallLine> ParseSyscallLine(std::string_view text);

// /proc/<pid>/task/<tid>/wchan: the symbol the task sleeps in; "0" or "" when none.
std::optional<std::string_view> ParseWchan(std::string_view text);

// One line of /proc/<pid>/task/<tid>/stack, "[<0>] do_epoll_wait+0x4a6/0x5d0", without
// the (usually zeroed, kptr_restrict) address: "do_epoll_wait+0x4a6/0x5d0".
std::string_view KernelFrame(std::string_view line);

// Non-negative decimal at the start of `text`; advances it past the digits.
bool ConsumeUnsigned(std::string_view& text, uint64_t& value);

}  // namespace procfs
}  // namespace iokitsnap
