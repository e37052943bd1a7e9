// Reading one process's threads from procfs into records: the part the one-shot
// sampleThreads and the reusable sampler share. How a file is read (opened each
// time, or a kept fd re-read with pread) is the caller's; what is read and how it
// becomes a ThreadRecord is here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../backend.h"
#include "../blocking.h"
#include "procfs_files.h"
#include "procfs_parse.h"
#include "sched_clock.h"

namespace iokitsnap {
namespace procfs {

// Which syscall table the process's calls are numbered in, found once per
// ProcessDirs (per one-shot sample, or per sampler) from the ELF header of its
// executable: class and machine in its first 20 bytes. Never from its memory map
// (maps, auxv), whose lock a hung process may hold.
struct ProcessAbi {
  enum class State : uint8_t { NotRead, Read, Kernel, Unreadable };
  State state = State::NotRead;
  LinuxAbi abi = HostLinuxAbi();  // the host's until read
  int error = 0;                  // why it is Unreadable (ETIMEDOUT: the read did not return in time)
};
// How long the executable's first bytes may take to read.
constexpr uint32_t kAbiReadTimeoutMs = 500;

// procRoot, procRoot/<pid> and procRoot/<pid>/task, opened once per sample (or per
// sampler). Throws SnapError ESRCH / EPERM with what to do.
struct ProcessDirs {
  ScopedFd root;
  ScopedFd process;
  ScopedFd task;
  mutable ProcessAbi abi;  // filled on first need, by ReadThread
};

// The ABI from an ELF header's first bytes (e_ident class, e_machine), on a kernel
// whose own ABI is `host`; nullopt when the bytes are no ELF header this host runs.
std::optional<LinuxAbi> AbiFromElfHeader(const unsigned char* bytes, size_t size, LinuxAbi host);

// Completes a sampled process from what its threads showed together: its `abi`, and
// which futex waits are joins (the expected value is the tid of a live thread).
void CompleteProcess(const ProcessDirs& dirs, ProcessRecord& record);

// The model's `abi` of a sampled process: "x86_64", "i386", "x32", "arm64", "arm32",
// "kernel" for a kernel thread; nullopt when it was not read (a basic sample).
std::optional<std::string> AbiName(const ProcessDirs& dirs);
ProcessDirs OpenProcessDirs(int32_t pid, const std::string& procRoot);

// The ESRCH every path gives for a process that is not (or no longer) there.
[[noreturn]] void ThrowNoProcess(int32_t pid, const std::string& procRoot);
// EMFILE/ENFILE: this process has no fd left to open `path` with. Never ESRCH: the
// process sampled may well be there.
bool IsOutOfFds(int error);
[[noreturn]] void ThrowOutOfFds(int32_t pid, const std::string& path, int error);

// The tids of the process, in kernel order. ESRCH once the process is gone;
// EINVAL when `pid` is a thread of another process.
void ListThreads(int32_t pid, const ProcessDirs& dirs, const std::string& procRoot, std::vector<char>& scratch,
                 std::vector<uint64_t>& tids);

// The threads a sample reads: with options.tids, those, once each in the order given
// (a tid that is not a thread of the process is found so when its files are not there,
// and left out), after checking the process with one read of its status (ESRCH, EPERM,
// and EINVAL for a thread id, as ListThreads); the task directory is not listed. Else
// every thread, by ListThreads.
void ChooseThreads(int32_t pid, const ProcessDirs& dirs, const ThreadOptions& options, std::vector<char>& scratch,
                   std::vector<uint64_t>& tids);

// The process name: the leader thread's comm (from its stat), else procRoot/<pid>/stat.
std::string ProcessName(int32_t pid, const ProcessDirs& dirs, const std::string& procRoot,
                        const std::vector<ThreadRecord>& threads);

// Which files a sample reads for each thread, given the options.
bool WantsFile(const ThreadOptions& options, TaskFile file);

// What went wrong across one sample of one process, so that the limits list
// carries one entry per cause, not one per thread.
struct SampleProblems {
  int deniedError[kTaskFileCount] = {};  // first EACCES/EPERM per file
  int failedError[kTaskFileCount] = {};  // first other errno per file
  bool absent[kTaskFileCount] = {};      // ENOENT while the thread exists: this kernel lacks the file
  bool malformed[kTaskFileCount] = {};   // a file whose text did not parse
  int abiError = 0;                      // the executable's header could not be read (ETIMEDOUT: in time)
  int schedNowError = 0;                 // procRoot/thread-self/sched (the clock now) could not be read
  int64_t unknownClockCpu = -1;          // a CPU whose clock skew is unknown (offCpuNs of its threads not given)
  bool unknownClockOutside = false;      // … because this process may not run on it
  // Whether reading `file` is pointless for the rest of this sample.
  bool denied(TaskFile file) const { return deniedError[static_cast<size_t>(file)] != 0; }
  bool skips(TaskFile file) const {
    const size_t i = static_cast<size_t>(file);
    return deniedError[i] != 0 || absent[i];
  }
};
void MergeProblems(const SampleProblems& from, SampleProblems& into);

// Turns the problems of a sample into LimitRecords (blockedIn, kernelStack, …).
void AppendLimits(int32_t pid, const ThreadOptions& options, const SampleProblems& problems,
                  std::vector<LimitRecord>& limits);

// Where the files of one thread come from: opened for this read, or kept open
// by a sampler and re-read with pread.
class TaskFileReader {
 public:
  virtual ReadResult Read(TaskFile file, ReadBuffer& buffer) = 0;
  // Whether the thread's directory is still there (tells a missing file from a gone thread).
  virtual bool ThreadExists() = 0;

 protected:
  ~TaskFileReader() = default;
};

// Opens, reads and closes `<tid>/<file>` under the task directory each time.
class OneShotReader final : public TaskFileReader {
 public:
  OneShotReader(int taskDirFd, uint64_t tid) : taskDirFd_(taskDirFd), tid_(tid) {}
  ReadResult Read(TaskFile file, ReadBuffer& buffer) override {
    return ReadTaskFileOnce(taskDirFd_, tid_, file, buffer);
  }
  bool ThreadExists() override;

 private:
  int taskDirFd_;
  uint64_t tid_;
};

enum class ThreadReadStatus {
  Ok,
  Gone,    // vanished mid-read (or its stat is unusable): skip it
  Denied,  // even stat is refused: the process is unreadable for us
  Unread,  // its stat could not be read for another reason (EMFILE: no fd left), noted in
           // problems.failedError: the thread exists, and the caller must say it was not read
};

// Reads what `options` asks for of one thread into `record`. `knownSched`, when
// given, is the schedstat the caller already read this sample. A thread that
// vanishes at any point gives Gone; a denied or unreadable file leaves its field
// empty and is noted in `problems`; a file denied earlier in this sample is not
// tried again (permissions are per process).
// `record.tid` must be set. A kernel thread (PF_KTHREAD) gets no blockedIn: it has no
// user-space call; its wchan and kernel stack are read as for any thread.
ThreadReadStatus ReadThread(TaskFileReader& reader, const ProcessDirs& dirs, const ThreadOptions& options,
                            const SchedStat* knownSched, ReadBuffer& buffer, SampleProblems& problems,
                            ThreadRecord& record);

// ---------------------------------------------------------------- off-CPU time
//
// How long a thread has been off-CPU, from one sample: se.exec_start in its sched file
// is the scheduler's task clock (rq_clock_task of the CPU it ran on, stat field 39)
// when it last ran, and the same clock now comes from the sampling thread's own
// se.exec_start, read at the start of the sample, plus the skew between its CPU and
// the thread's (sched_clock.h). offCpuNs = now - exec_start. That clock leaves out the
// time its CPU spent in interrupts and stolen by a hypervisor, so offCpuNs is at most
// the wall time since the thread last ran, less by that share. Where the thread ran
// after `now` was read, the result is 0: never negative, never invented.

// The task clocks now: the calling thread's se.exec_start from
// procRoot/thread-self/sched, read right after clock_gettime(CLOCK_THREAD_CPUTIME_ID),
// which makes the kernel account the running caller up to this moment
// (task_sched_runtime → update_curr sets exec_start to the clock now; without it the
// value lags by up to a tick), with the skews of the other CPUs when procRoot is /proc
// and the machine has more than one. Notes a failure in `problems` (absent: this
// kernel has no sched files, CONFIG_SCHED_DEBUG before 6.15) and returns nullopt.
std::optional<SchedClocks> ReadSchedNow(const std::string& procRoot, ReadBuffer& buffer, SampleProblems& problems);

// One thread's se.exec_start through `reader`; nullopt when the file is absent, denied,
// malformed (noted in `problems`) or the thread is gone.
std::optional<uint64_t> ReadExecStart(TaskFileReader& reader, ReadBuffer& buffer, SampleProblems& problems);

// now - execStart; 0 when the thread ran after `now` was read, or when exec_start is 0
// (a task not yet run, or one a wake-up moved to another CPU: the enqueue clears it,
// and the thread is then queued to run).
uint64_t OffCpuSince(uint64_t nowNs, uint64_t execStartNs);
// The same against the clock of the CPU the thread last ran on; nullopt (and noted in
// `problems`) when that CPU's skew is unknown.
std::optional<uint64_t> OffCpuOn(const SchedClocks& clocks, std::optional<uint32_t> processor, uint64_t execStartNs,
                                 SampleProblems& problems);

// R (on a CPU, or runnable and queued for one: procfs cannot tell which) is not off-CPU
// by its own wait: its offCpuNs is 0, read from nothing. How long a runnable thread has
// waited for a CPU is in runDelayNs.
bool OnCpuOrQueued(ThreadState state);

// The one-shot sample's offCpuNs of `record` (read at full detail, after ReadThread):
// 0 for R, else from its sched file against `nowNs` (nothing when `nowNs` is unset).
void AddOffCpu(TaskFileReader& reader, const std::optional<SchedClocks>& clocks, ReadBuffer& buffer,
               SampleProblems& problems, ThreadRecord& record);

// strerror_r's text for `error`.
std::string ErrorText(int error);
// kernel.yama.ptrace_scope under procRoot ("0".."3"), or "" when Yama is not there.
std::string YamaScope(const std::string& procRoot);

// The ns per clock tick of utime/stime (sysconf(_SC_CLK_TCK), 100 on every Linux ABI).
uint64_t NsPerClockTick();

// A thread name (bytes, as the kernel keeps them) as text that loses nothing: a byte that
// is not part of well-formed UTF-8 becomes the four characters \xHH and a backslash two, so two names
// that differ in such bytes never print alike and the bytes can be recovered.
std::string EscapeName(std::string_view name);
// Fills `record` from a parsed stat; the name is copied (escaped).
void ApplyStat(const TaskStat& stat, ThreadRecord& record);
// Fills blockedIn from a syscall line, named in `abi`'s table; resolves the fd, when the
// call takes one, through the thread's own task directory.
void ApplySyscall(const SyscallLine& line, LinuxAbi abi, int taskDirFd, const ThreadOptions& options,
                  ThreadRecord& record);
void ApplyKernelStack(std::string_view text, ThreadRecord& record);

}  // namespace procfs
}  // namespace iokitsnap
