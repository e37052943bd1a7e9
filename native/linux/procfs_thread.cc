#include "procfs_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "../blocking.h"

namespace iokitsnap {
namespace procfs {
namespace {

std::string ProcPath(const std::string& procRoot, int32_t pid, const char* rest = nullptr) {
  std::string path = procRoot + "/" + std::to_string(pid);
  if (rest != nullptr) (path += "/") += rest;
  return path;
}

int OpenDirectory(int dirFd, const char* path, int flags, int* error) {
  int fd;
  do {
    fd = openat(dirFd, path, flags | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) *error = errno;
  return fd;
}

[[noreturn]] void ThrowDenied(int32_t pid, const std::string& what, int error) {
  throw SnapError("EPERM",
                  "cannot read " + what + " (pid " + std::to_string(pid) + "): " + ErrorText(error) +
                      ". Run iokit-snap as the user that owns the process, or as root; if /proc is mounted with "
                      "hidepid, as a member of its gid= group.",
                  "open", error);
}

// Why `path` (procRoot, <pid> or <pid>/task) did not open. ESRCH only when it is not
// there: a process we ran out of fds (or memory) to open is not a process that exited.
[[noreturn]] void ThrowOpenError(int32_t pid, const std::string& procRoot, const std::string& path, int error) {
  if (error == EACCES || error == EPERM) ThrowDenied(pid, path, error);
  if (IsOutOfFds(error)) ThrowOutOfFds(pid, path, error);
  if (error == ENOENT || error == ESRCH || error == ENOTDIR) ThrowNoProcess(pid, procRoot);
  throw SnapError("EIO",
                  "cannot open " + path + " to sample pid " + std::to_string(pid) + ": " + ErrorText(error) +
                      ". The process was not sampled, not found gone; sample again.",
                  "open", error);
}

// `procRoot/pid` does not open: the process is gone, or hidden from us by hidepid.
[[noreturn]] void ThrowMissing(int32_t pid, const std::string& procRoot, int error) {
  // kill(pid, 0) tells "exists" (0, or EPERM for another user's process) from "gone".
  if (procRoot == "/proc" && error == ENOENT && (kill(pid, 0) == 0 || errno == EPERM)) {
    throw SnapError("EPERM",
                    "pid " + std::to_string(pid) + " exists but /proc/" + std::to_string(pid) +
                        " is hidden from this user (/proc is mounted with hidepid). Run iokit-snap as root, as the "
                        "process owner, or as a member of the group given by /proc's gid= mount option.",
                    "open", error);
  }
  ThrowOpenError(pid, procRoot, ProcPath(procRoot, pid), error);
}

constexpr size_t Index(TaskFile file) { return static_cast<size_t>(file); }

const char* FieldOf(TaskFile file) {
  switch (file) {
    case TaskFile::Schedstat: return "cpuNs";
    case TaskFile::Stat: return "state";
    case TaskFile::Status: return "contextSwitches";
    case TaskFile::Syscall: return "blockedIn";
    case TaskFile::Wchan: return "wchan";
    case TaskFile::Stack: return "kernelStack";
    case TaskFile::Sched: return "offCpuNs";
  }
  return "state";
}

// The Tgid line of a status file.
std::optional<uint64_t> TgidOf(std::string_view status) {
  const size_t at = status.find("\nTgid:");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = status.substr(at + 6);
  while (!rest.empty() && (rest[0] == '\t' || rest[0] == ' ')) rest.remove_prefix(1);
  uint64_t tgid = 0;
  if (!ConsumeUnsigned(rest, tgid)) return std::nullopt;
  return tgid;
}

[[noreturn]] void ThrowThreadId(int32_t pid, uint64_t tgid) {
  const std::string process = std::to_string(tgid);
  throw SnapError("EINVAL", std::to_string(pid) + " is a thread of process " + process +
                                ", not a process; sample pid " + process + " instead");
}

// Reads a file whose absence or denial costs one field, not the thread.
enum class Step { Ok, Skip, Gone };

Step ReadOptional(TaskFileReader& reader, TaskFile file, ReadBuffer& buffer, SampleProblems& problems) {
  const size_t i = Index(file);
  if (problems.skips(file)) return Step::Skip;
  const ReadResult result = reader.Read(file, buffer);
  switch (result.outcome) {
    case ReadOutcome::Ok: return Step::Ok;
    case ReadOutcome::Gone:
      // ENOENT is either a vanished thread or a file this kernel does not have.
      if (result.error == ENOENT && reader.ThreadExists()) {
        problems.absent[i] = true;
        return Step::Skip;
      }
      return Step::Gone;
    case ReadOutcome::Denied:
      problems.deniedError[i] = result.error;
      return Step::Skip;
    case ReadOutcome::Failed:
      if (problems.failedError[i] == 0) problems.failedError[i] = result.error;
      return Step::Skip;
  }
  return Step::Skip;
}


// Reads the process's ABI once per ProcessDirs: from <pid>/exe, or, once the main
// thread has exited (its exe link is gone with its mm), from this thread's own exe.
void EnsureAbi(const ProcessDirs& dirs, uint64_t tid, SampleProblems& problems) {
  ProcessAbi& abi = dirs.abi;
  if (abi.state != ProcessAbi::State::NotRead || IsOutOfFds(problems.abiError)) return;
  unsigned char header[20];
  size_t got = 0;
  int error = ReadHeadWithDeadline(dirs.process.get(), "exe", header, sizeof header, &got, kAbiReadTimeoutMs);
  if (error == ENOENT) {
    char path[64];
    error = ReadHeadWithDeadline(dirs.task.get(), FormatEntryPath(path, tid, "exe"), header, sizeof header, &got,
                                 kAbiReadTimeoutMs);
  }
  const std::optional<LinuxAbi> found = error == 0 ? AbiFromElfHeader(header, got, HostLinuxAbi()) : std::nullopt;
  if (found) {
    abi.abi = *found;
    abi.state = ProcessAbi::State::Read;
    return;
  }
  if (IsOutOfFds(error)) {  // not the executable's fault: read it again next time
    problems.abiError = error;
    return;
  }
  abi.state = ProcessAbi::State::Unreadable;
  abi.error = error != 0 ? error : ENOEXEC;
  // Denied or gone: the syscall file is refused or gone too, so nothing is misnamed.
  if (abi.error != EACCES && abi.error != EPERM && abi.error != ENOENT && abi.error != ESRCH)
    problems.abiError = abi.error;
}

}  // namespace

std::string ErrorText(int error) {
  char text[128];
  // GNU strerror_r returns the message (which may not be `text`).
  return std::string(strerror_r(error, text, sizeof text));
}

std::string YamaScope(const std::string& procRoot) {
  std::string path = procRoot + "/sys/kernel/yama/ptrace_scope";
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "";
  char text[16];
  const ssize_t n = read(fd.get(), text, sizeof text);
  if (n <= 0) return "";
  std::string scope(text, static_cast<size_t>(n));
  while (!scope.empty() && (scope.back() == '\n' || scope.back() == ' ')) scope.pop_back();
  return scope;
}

bool OneShotReader::ThreadExists() {
  char path[48];
  return faccessat(taskDirFd_, FormatEntryPath(path, tid_, nullptr), F_OK, 0) == 0;
}

void ThrowNoProcess(int32_t pid, const std::string& procRoot) {
  std::string message = "no process with pid " + std::to_string(pid) + "; it may have exited";
  if (procRoot != "/proc") message += " (looked under procRoot " + procRoot + ")";
  throw SnapError("ESRCH", message, "open", ESRCH);
}

bool IsOutOfFds(int error) { return error == EMFILE || error == ENFILE; }

void ThrowOutOfFds(int32_t pid, const std::string& path, int error) {
  throw SnapError("EAGAIN",
                  "cannot open " + path + " to sample pid " + std::to_string(pid) + ": " +
                      (error == ENFILE ? "the system has no file descriptor left (ENFILE)"
                                       : "this process has all its file descriptors in use (EMFILE, RLIMIT_NOFILE " +
                                             std::to_string(FdBudget::SoftLimit()) + ")") +
                      ". The process was not sampled, not found gone. Close files or samplers, or raise the limit "
                      "(ulimit -n), and sample again.",
                  "open", error);
}

ProcessDirs OpenProcessDirs(int32_t pid, const std::string& procRoot) {
  ProcessDirs dirs;
  int error = 0;
  dirs.root.reset(OpenDirectory(AT_FDCWD, procRoot.c_str(), O_PATH, &error));
  if (!dirs.root) ThrowOpenError(pid, procRoot, procRoot, error);
  char name[24];
  dirs.process.reset(OpenDirectory(dirs.root.get(), FormatEntryPath(name, static_cast<uint64_t>(pid), nullptr),
                                   O_PATH, &error));
  if (!dirs.process) ThrowMissing(pid, procRoot, error);
  dirs.task.reset(OpenDirectory(dirs.process.get(), "task", O_RDONLY, &error));
  if (!dirs.task) ThrowOpenError(pid, procRoot, ProcPath(procRoot, pid, "task"), error);
  return dirs;
}

void ListThreads(int32_t pid, const ProcessDirs& dirs, const std::string& procRoot, std::vector<char>& scratch,
                 std::vector<uint64_t>& tids) {
  const int error = ListNumericEntries(dirs.task.get(), scratch, tids);
  if (error == ENOENT || error == ESRCH) ThrowNoProcess(pid, procRoot);
  if (error == EACCES || error == EPERM) ThrowDenied(pid, ProcPath(procRoot, pid, "task"), error);
  if (error != 0)
    throw SnapError("EIO", "cannot list " + ProcPath(procRoot, pid, "task") + ": " + ErrorText(error), "getdents64",
                    error);
  // The task directory of any thread lists its whole group, leader first (the
  // kernel walks the group from its leader, which stays listed, as a zombie if
  // need be, until the group is gone). A pid listed later is a thread id; a
  // tree that is not procfs (a fixture) may list in any order, so ask Tgid.
  if (tids.empty() || tids.front() == static_cast<uint64_t>(pid)) return;
  uint64_t tgid = tids.front();
  ReadBuffer buffer;
  if (ReadFileAt(dirs.process.get(), "status", buffer).outcome == ReadOutcome::Ok)
    tgid = TgidOf(buffer.text).value_or(tgid);
  if (tgid != static_cast<uint64_t>(pid)) ThrowThreadId(pid, tgid);
}

void ChooseThreads(int32_t pid, const ProcessDirs& dirs, const ThreadOptions& options, std::vector<char>& scratch,
                   std::vector<uint64_t>& tids) {
  if (!options.tids) {
    ListThreads(pid, dirs, options.procRoot, scratch, tids);
    return;
  }
  ReadBuffer buffer;
  const ReadResult result = ReadFileAt(dirs.process.get(), "status", buffer);
  if (result.outcome == ReadOutcome::Gone) ThrowNoProcess(pid, options.procRoot);
  if (result.outcome == ReadOutcome::Denied) ThrowDenied(pid, ProcPath(options.procRoot, pid, "status"), result.error);
  if (result.outcome == ReadOutcome::Ok) {
    const std::optional<uint64_t> tgid = TgidOf(buffer.text);
    if (tgid && *tgid != static_cast<uint64_t>(pid)) ThrowThreadId(pid, *tgid);
  }
  tids.clear();
  std::unordered_set<uint64_t> seen;
  for (const uint64_t tid : *options.tids)
    if (seen.insert(tid).second) tids.push_back(tid);
}

std::string ProcessName(int32_t pid, const ProcessDirs& dirs, const std::string& procRoot,
                        const std::vector<ThreadRecord>& threads) {
  for (const ThreadRecord& thread : threads)
    if (thread.tid == static_cast<uint64_t>(pid) && thread.name) return *thread.name;
  ReadBuffer buffer;
  const ReadResult result = ReadFileAt(dirs.process.get(), "stat", buffer);
  if (result.outcome == ReadOutcome::Gone) ThrowNoProcess(pid, procRoot);
  if (result.outcome == ReadOutcome::Ok)
    if (auto stat = ParseTaskStat(buffer.text)) return EscapeName(stat->name);
  return "";
}

bool WantsFile(const ThreadOptions& options, TaskFile file) {
  if (file == TaskFile::Stat) return true;
  if (options.detail == ThreadDetail::Basic) return false;
  if (file == TaskFile::Stack) return options.kernelStacks;
  return true;
}

uint64_t NsPerClockTick() {
  static const uint64_t nsPerTick = [] {
    const long ticks = sysconf(_SC_CLK_TCK);
    return ticks > 0 ? 1000000000ULL / static_cast<uint64_t>(ticks) : 10000000ULL;
  }();
  return nsPerTick;
}

std::string EscapeName(std::string_view name) {
  bool plain = true;
  for (const char c : name) plain = plain && static_cast<unsigned char>(c) < 0x80 && c != '\\';
  if (plain) return std::string(name);
  std::string out;
  out.reserve(name.size() + 8);
  const auto escape = [&out](unsigned char byte) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  };
  for (size_t i = 0; i < name.size();) {
    const unsigned char lead = static_cast<unsigned char>(name[i]);
    if (lead == '\\') {
      out += "\\\\";
      ++i;
      continue;
    }
    // The length of a well-formed UTF-8 sequence starting here (RFC 3629), or 0.
    size_t length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length > 1) {
      if (i + length > name.size()) length = 0;
      for (size_t k = 1; k < length; ++k)
        if ((static_cast<unsigned char>(name[i + k]) & 0xc0) != 0x80) length = 0;
      if (length == 3) {
        const unsigned char second = static_cast<unsigned char>(name[i + 1]);
        if ((lead == 0xe0 && second < 0xa0) || (lead == 0xed && second >= 0xa0)) length = 0;  // overlong, surrogate
      } else if (length == 4) {
        const unsigned char second = static_cast<unsigned char>(name[i + 1]);
        if ((lead == 0xf0 && second < 0x90) || (lead == 0xf4 && second >= 0x90)) length = 0;  // overlong, > U+10FFFF
      }
    }
    if (length == 0) {
      escape(lead);
      ++i;
    } else {
      out.append(name.substr(i, length));
      i += length;
    }
  }
  return out;
}

std::optional<SchedClocks> ReadSchedNow(const std::string& procRoot, ReadBuffer& buffer, SampleProblems& problems) {
  const std::string path = procRoot + "/thread-self/sched";
  const bool live = procRoot == "/proc" && sysconf(_SC_NPROCESSORS_ONLN) > 1;
  for (int attempt = 0;; ++attempt) {
    const int before = live ? sched_getcpu() : -1;
    struct timespec spent;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spent);  // accounts this thread up to now (see the header)
    const ReadResult result = ReadFileAt(AT_FDCWD, path.c_str(), buffer);
    const int after = live ? sched_getcpu() : -1;
    if (result.outcome != ReadOutcome::Ok) {
      if (result.error == ENOENT) problems.absent[Index(TaskFile::Sched)] = true;
      else problems.schedNowError = result.error != 0 ? result.error : EIO;
      return std::nullopt;
    }
    const std::optional<uint64_t> now = ParseSchedExecStart(buffer.text);
    if (!now) {
      problems.schedNowError = EBADMSG;
      return std::nullopt;
    }
    // Moved to another CPU while reading: which clock it read is not known; again.
    if (before != after && attempt < 3) continue;
    SchedClocks clocks;
    clocks.nowNs = *now;
    if (live && before == after && before >= 0) AddSkews(before, clocks);
    else if (live) clocks.cpu = before;  // no skews: only threads of that CPU are measured
    return clocks;
  }
}

std::optional<uint64_t> OffCpuOn(const SchedClocks& clocks, std::optional<uint32_t> processor, uint64_t execStartNs,
                                 SampleProblems& problems) {
  const std::optional<uint64_t> now = clocks.NowOn(processor);
  if (!now) {
    if (problems.unknownClockCpu < 0) {
      problems.unknownClockCpu = *processor;
      problems.unknownClockOutside = *processor < clocks.allowed.size() && !clocks.allowed[*processor];
    }
    return std::nullopt;
  }
  return OffCpuSince(*now, execStartNs);
}

std::optional<uint64_t> ReadExecStart(TaskFileReader& reader, ReadBuffer& buffer, SampleProblems& problems) {
  if (ReadOptional(reader, TaskFile::Sched, buffer, problems) != Step::Ok) return std::nullopt;
  const std::optional<uint64_t> execStart = ParseSchedExecStart(buffer.text);
  if (!execStart) problems.malformed[Index(TaskFile::Sched)] = true;
  return execStart;
}

uint64_t OffCpuSince(uint64_t nowNs, uint64_t execStartNs) {
  return execStartNs != 0 && nowNs > execStartNs ? nowNs - execStartNs : 0;
}

bool OnCpuOrQueued(ThreadState state) { return state == ThreadState::Running || state == ThreadState::Runnable; }

void AddOffCpu(TaskFileReader& reader, const std::optional<SchedClocks>& clocks, ReadBuffer& buffer,
               SampleProblems& problems, ThreadRecord& record) {
  if (OnCpuOrQueued(record.state)) {
    record.offCpuNs = 0;
    return;
  }
  if (!clocks) return;
  if (const std::optional<uint64_t> execStart = ReadExecStart(reader, buffer, problems))
    record.offCpuNs = OffCpuOn(*clocks, record.lastCpu, *execStart, problems);
}

void ApplyStat(const TaskStat& stat, ThreadRecord& record) {
  record.name.emplace(EscapeName(stat.name));
  record.state = StateFromLetter(stat.stateLetter);
  record.userNs = stat.utimeTicks * NsPerClockTick();
  record.systemNs = stat.stimeTicks * NsPerClockTick();
  record.ppid = stat.ppid;
  record.lastCpu = stat.processor;
}

void ApplySyscall(const SyscallLine& line, LinuxAbi abi, int taskDirFd, const ThreadOptions& options,
                  ThreadRecord& record) {
  if (options.stacks && line.kind != SyscallLine::Kind::Running && line.pc != 0) record.pc = line.pc;
  if (line.kind != SyscallLine::Kind::InCall) return;
  BlockedRecord blocked;
  blocked.number = line.number;
  blocked.call = LinuxCallNameOrNumber(abi, line.number);
  if (FirstArgIsFd(OsKind::Linux, blocked.call)) {
    // The kernel takes fds as `unsigned int`/`int`: only the low 32 bits count.
    const int32_t fd = static_cast<int32_t>(static_cast<uint32_t>(line.args[0]));
    if (fd >= 0) {
      blocked.fd = fd;
      std::string target;
      if (ReadFdTarget(taskDirFd, record.tid, fd, target)) blocked.target = std::move(target);
    }
  }
  // futex(uaddr, op, val, …): FUTEX_WAIT 0 and FUTEX_WAIT_BITSET 9, less the PRIVATE (128)
  // and CLOCK_REALTIME (256) flags. futex_wait(uaddr, val, mask, flags, …) is futex2's.
  const bool futex = blocked.call == "futex" || blocked.call == "futex_time64";
  const uint64_t command = line.args[1] & 0x7f;
  if (futex && (command == 0 || command == 9)) blocked.futexExpected = static_cast<uint32_t>(line.args[2]);
  if (futex && (command == 0 || command == 9 || command == 6 || command == 11 || command == 13)) {
    blocked.futexAddress = line.args[0];
    blocked.futexCommand = static_cast<uint32_t>(command);
  }
  if (blocked.call == "futex_wait") {
    blocked.futexExpected = static_cast<uint32_t>(line.args[1]);
    blocked.futexAddress = line.args[0];
    blocked.futexCommand = 9;
  }
  record.blockedIn = std::move(blocked);
}

std::optional<LinuxAbi> AbiFromElfHeader(const unsigned char* bytes, size_t size, LinuxAbi host) {
  // e_ident: "\x7fELF", EI_CLASS (1: 32-bit, 2: 64-bit), EI_DATA (1: little endian); e_machine at 18.
  if (size < 20 || bytes[0] != 0x7f || bytes[1] != 'E' || bytes[2] != 'L' || bytes[3] != 'F') return std::nullopt;
  const bool wide = bytes[4] == 2;
  const unsigned machine = bytes[5] == 2 ? (unsigned(bytes[18]) << 8) | bytes[19] : (unsigned(bytes[19]) << 8) | bytes[18];
  constexpr unsigned kEm386 = 3, kEmArm = 40, kEmX86_64 = 62, kEmAarch64 = 183;
  const bool hostX86 = host == LinuxAbi::X86_64 || host == LinuxAbi::I386 || host == LinuxAbi::X32;
  if (hostX86) {
    if (machine == kEmX86_64) return wide ? LinuxAbi::X86_64 : LinuxAbi::X32;
    if (machine == kEm386 && !wide) return LinuxAbi::I386;
    return std::nullopt;
  }
  if (machine == kEmAarch64 && wide) return LinuxAbi::Arm64;
  if (machine == kEmArm && !wide) return LinuxAbi::Arm32;
  return std::nullopt;
}

void CompleteProcess(const ProcessDirs& dirs, ProcessRecord& record) {
  record.abi = AbiName(dirs);
  for (const ThreadRecord& thread : record.threads) {
    if (thread.tid == static_cast<uint64_t>(record.pid) && thread.ppid != 0) record.ppid = static_cast<int32_t>(thread.ppid);
  }
  for (ThreadRecord& thread : record.threads) {
    if (!thread.blockedIn || !thread.blockedIn->futexExpected) continue;
    const uint64_t expected = *thread.blockedIn->futexExpected;
    if (expected == 0 || expected == thread.tid) continue;
    for (const ThreadRecord& other : record.threads) {
      if (other.tid == expected && other.state != ThreadState::Zombie) {
        thread.blockedIn->joining = expected;
        break;
      }
    }
  }
}

std::optional<std::string> AbiName(const ProcessDirs& dirs) {
  switch (dirs.abi.state) {
    case ProcessAbi::State::NotRead: return std::nullopt;
    case ProcessAbi::State::Kernel: return std::string("kernel");
    case ProcessAbi::State::Read:
    case ProcessAbi::State::Unreadable: return std::string(LinuxAbiName(dirs.abi.abi));
  }
  return std::nullopt;
}

void ApplyKernelStack(std::string_view text, ThreadRecord& record) {
  std::vector<std::string> frames;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    line = KernelFrame(line);
    if (!line.empty()) frames.emplace_back(line);
  }
  record.kernelStack = std::move(frames);
}

ThreadReadStatus ReadThread(TaskFileReader& reader, const ProcessDirs& dirs, const ThreadOptions& options,
                            const SchedStat* knownSched, ReadBuffer& buffer, SampleProblems& problems,
                            ThreadRecord& record) {
  const ReadResult statRead = reader.Read(TaskFile::Stat, buffer);
  switch (statRead.outcome) {
    case ReadOutcome::Ok: break;
    case ReadOutcome::Gone: return ThreadReadStatus::Gone;
    case ReadOutcome::Denied:
      problems.deniedError[Index(TaskFile::Stat)] = statRead.error;
      return ThreadReadStatus::Denied;
    case ReadOutcome::Failed:
      if (problems.failedError[Index(TaskFile::Stat)] == 0) problems.failedError[Index(TaskFile::Stat)] = statRead.error;
      return ThreadReadStatus::Unread;
  }
  const auto stat = ParseTaskStat(buffer.text);
  if (!stat) {
    problems.malformed[Index(TaskFile::Stat)] = true;
    return ThreadReadStatus::Gone;
  }
  ApplyStat(*stat, record);
  record.kernelThread = (stat->flags & kPfKthread) != 0;
  if (record.kernelThread) dirs.abi.state = ProcessAbi::State::Kernel;
  if (options.detail == ThreadDetail::Basic) return ThreadReadStatus::Ok;

  if (knownSched != nullptr) {
    record.cpuNs = knownSched->cpuNs;
    record.runDelayNs = knownSched->runDelayNs;
  } else {
    switch (ReadOptional(reader, TaskFile::Schedstat, buffer, problems)) {
      case Step::Gone: return ThreadReadStatus::Gone;
      case Step::Skip: break;
      case Step::Ok:
        if (auto sched = ParseSchedStat(buffer.text)) {
          record.cpuNs = sched->cpuNs;
          record.runDelayNs = sched->runDelayNs;
        } else {
          problems.malformed[Index(TaskFile::Schedstat)] = true;
        }
    }
  }

  switch (ReadOptional(reader, TaskFile::Status, buffer, problems)) {
    case Step::Gone: return ThreadReadStatus::Gone;
    case Step::Skip: break;
    case Step::Ok:
      if (auto switches = ParseContextSwitches(buffer.text)) {
        record.voluntarySwitches = switches->voluntary;
        record.involuntarySwitches = switches->involuntary;
      } else {
        problems.malformed[Index(TaskFile::Status)] = true;
      }
  }

  // A kernel thread's syscall file shows its zeroed user registers ("0 0x0 …"), which
  // would read as read(0): it has no user-space call, so the file is not read.
  switch (record.kernelThread ? Step::Skip : ReadOptional(reader, TaskFile::Syscall, buffer, problems)) {
    case Step::Gone: return ThreadReadStatus::Gone;
    case Step::Skip: break;
    case Step::Ok:
      if (auto line = ParseSyscallLine(buffer.text)) {
        if (line->kind == SyscallLine::Kind::InCall) EnsureAbi(dirs, record.tid, problems);
        ApplySyscall(*line, dirs.abi.abi, dirs.task.get(), options, record);
      } else {
        problems.malformed[Index(TaskFile::Syscall)] = true;
      }
  }

  switch (ReadOptional(reader, TaskFile::Wchan, buffer, problems)) {
    case Step::Gone: return ThreadReadStatus::Gone;
    case Step::Skip: break;
    case Step::Ok:
      if (auto wchan = ParseWchan(buffer.text)) {
        record.wchan.emplace(*wchan);
      } else if (problems.denied(TaskFile::Syscall) &&
                 (record.state == ThreadState::Sleeping || record.state == ThreadState::Uninterruptible)) {
        // A sleeping thread always has a wchan; "0" here is the kernel's answer
        // to a reader that may not ptrace-read the target (another user).
        problems.deniedError[Index(TaskFile::Wchan)] = EACCES;
      }
  }

  if (options.kernelStacks) {
    switch (ReadOptional(reader, TaskFile::Stack, buffer, problems)) {
      case Step::Gone: return ThreadReadStatus::Gone;
      case Step::Skip: break;
      case Step::Ok: ApplyKernelStack(buffer.text, record);
    }
  }
  return ThreadReadStatus::Ok;
}

void MergeProblems(const SampleProblems& from, SampleProblems& into) {
  for (size_t i = 0; i < kTaskFileCount; ++i) {
    if (into.deniedError[i] == 0) into.deniedError[i] = from.deniedError[i];
    if (into.failedError[i] == 0) into.failedError[i] = from.failedError[i];
    into.absent[i] = into.absent[i] || from.absent[i];
    into.malformed[i] = into.malformed[i] || from.malformed[i];
  }
  if (into.abiError == 0) into.abiError = from.abiError;
  if (into.schedNowError == 0) into.schedNowError = from.schedNowError;
  if (into.unknownClockCpu < 0) {
    into.unknownClockCpu = from.unknownClockCpu;
    into.unknownClockOutside = from.unknownClockOutside;
  }
}

void AppendLimits(int32_t pid, const ThreadOptions& options, const SampleProblems& problems,
                  std::vector<LimitRecord>& limits) {
  const std::string subject = "pid " + std::to_string(pid);
  const std::string taskFiles = ProcPath(options.procRoot, pid, "task/*/");
  for (size_t i = 0; i < kTaskFileCount; ++i) {
    const TaskFile file = static_cast<TaskFile>(i);
    const std::string path = taskFiles + TaskFileName(file);
    if (problems.deniedError[i] != 0) {
      LimitRecord limit{subject, FieldOf(file), "EPERM", path + " is not readable: " + ErrorText(problems.deniedError[i]), ""};
      if (file == TaskFile::Wchan)
        limit.reason = path + " reads 0 for sleeping threads: the kernel shows it only to a process that may ptrace-read the target";
      if (file == TaskFile::Syscall) {
        const std::string scope = YamaScope(options.procRoot);
        limit.reason += ". The kernel lets only a process that may ptrace the target read it" +
                        (scope.empty() ? std::string() : " (kernel.yama.ptrace_scope is " + scope + ")") +
                        "; blockedIn is null, and wchan (the kernel function each thread sleeps in) is given instead where the kernel allows it";
        limit.hint =
            "Run iokit-snap as the target's user with kernel.yama.ptrace_scope set to 0 (sysctl "
            "kernel.yama.ptrace_scope=0), or as root / with CAP_SYS_PTRACE (sudo).";
      } else if (file == TaskFile::Stack) {
        limit.reason += ". Kernel stacks are readable by root only (CAP_SYS_ADMIN)";
        limit.hint = "Run iokit-snap as root (sudo) to get kernel stacks, or pass kernelStacks: false to skip them.";
      } else {
        limit.hint = "Run iokit-snap as the user that owns the process, or as root.";
      }
      limits.push_back(std::move(limit));
    } else if (problems.absent[i]) {
      limits.push_back({subject, FieldOf(file), "ENOTSUP",
                        path + " does not exist on this kernel (it is built without the option that provides it)",
                        ""});
    } else if (problems.failedError[i] != 0) {
      limits.push_back({subject, FieldOf(file), "EIO",
                        "reading " + path + " failed: " + ErrorText(problems.failedError[i]),
                        problems.failedError[i] == EMFILE || problems.failedError[i] == ENFILE
                            ? "Too many open files: raise the limit (ulimit -n) or lower maxOpenFiles."
                            : ""});
    } else if (problems.malformed[i]) {
      limits.push_back({subject, FieldOf(file), "EIO", path + " has a format iokit-snap does not know", ""});
    }
  }
  const size_t sched = Index(TaskFile::Sched);
  if (problems.schedNowError != 0 && problems.deniedError[sched] == 0 && !problems.absent[sched] &&
      problems.failedError[sched] == 0 && !problems.malformed[sched]) {
    const std::string now = options.procRoot + "/thread-self/sched";
    limits.push_back({subject, FieldOf(TaskFile::Sched), "EIO",
                      problems.schedNowError == EBADMSG
                          ? now + " (the scheduler clock now, which offCpuNs is measured against) has a format iokit-snap does not know"
                          : "reading " + now + " (the scheduler clock now, which offCpuNs is measured against) failed: " +
                                ErrorText(problems.schedNowError),
                      ""});
  }
  if (problems.unknownClockCpu >= 0) {
    const std::string cpu = "CPU " + std::to_string(problems.unknownClockCpu);
    const std::string what = "the scheduler clock of " + cpu +
                             ", which offCpuNs of a thread that last ran there is measured against, could not be read: ";
    limits.push_back(problems.unknownClockOutside
                         ? LimitRecord{subject, FieldOf(TaskFile::Sched), "EPERM",
                                       what + "this process may not run on " + cpu +
                                           " (its CPU affinity or cpuset); those threads have no offCpuNs",
                                       "Run iokit-snap where it may use every CPU the target uses (taskset, cpuset)."}
                         : LimitRecord{subject, FieldOf(TaskFile::Sched), "ETIMEDOUT",
                                       what + cpu + " did not run the calibration within 100 ms (it is kept busy); "
                                       "those threads have no offCpuNs",
                                       ""});
  }
  if (problems.abiError != 0) {
    const std::string exe = ProcPath(options.procRoot, pid, "exe");
    limits.push_back({subject, "abi", problems.abiError == ETIMEDOUT ? "ETIMEDOUT" : "EIO",
                      problems.abiError == ETIMEDOUT
                          ? "the first bytes of " + exe + " did not come back within " + std::to_string(kAbiReadTimeoutMs) +
                                " ms (the file system that holds the executable may hang); call names assume the " +
                                LinuxAbiName(HostLinuxAbi()) + " table"
                          : "the ELF header of " + exe + " could not be read (" + ErrorText(problems.abiError) +
                                "); call names assume the " + LinuxAbiName(HostLinuxAbi()) + " table",
                      ""});
  }
}

}  // namespace procfs
}  // namespace iokitsnap
