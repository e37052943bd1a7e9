#include "procfs_parse.h"

namespace iokitsnap {
namespace procfs {
namespace {

void SkipSpaces(std::string_view& text) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  text.remove_prefix(i);
}

// Skips one space-separated field and the spaces after it.
bool SkipField(std::string_view& text) {
  size_t i = 0;
  while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
  if (i == 0) return false;
  text.remove_prefix(i);
  SkipSpaces(text);
  return true;
}

bool ConsumeHex(std::string_view& text, uint64_t& value) {
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  size_t i = 0;
  uint64_t v = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    unsigned digit;
    if (c >= '0' && c <= '9') digit = unsigned(c - '0');
    else if (c >= 'a' && c <= 'f') digit = unsigned(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') digit = unsigned(c - 'A' + 10);
    else break;
    v = (v << 4) | digit;
  }
  if (i == 0) return false;
  value = v;
  text.remove_prefix(i);
  return true;
}

}  // namespace

bool ConsumeUnsigned(std::string_view& text, uint64_t& value) {
  size_t i = 0;
  uint64_t v = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) v = v * 10 + uint64_t(text[i] - '0');
  if (i == 0) return false;
  value = v;
  text.remove_prefix(i);
  return true;
}

std::optional<TaskStat> ParseTaskStat(std::string_view text) {
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  TaskStat stat;
  stat.name = text.substr(open + 1, close - open - 1);
  std::string_view rest = text.substr(close + 1);
  SkipSpaces(rest);
  if (rest.empty()) return std::nullopt;
  stat.stateLetter = rest[0];
  // Fields 3 (state), 4 (ppid), 5 (pgrp) … 8 (tpgid), then flags (9), then 10 (minflt)
  // … 13 (cmajflt) precede utime (14) and stime (15), see proc(5).
  if (!SkipField(rest) || !ConsumeUnsigned(rest, stat.ppid)) return std::nullopt;
  SkipSpaces(rest);
  for (int field = 5; field <= 8; ++field)
    if (!SkipField(rest)) return std::nullopt;
  if (!ConsumeUnsigned(rest, stat.flags)) return std::nullopt;
  SkipSpaces(rest);
  for (int field = 10; field <= 13; ++field)
    if (!SkipField(rest)) return std::nullopt;
  if (!ConsumeUnsigned(rest, stat.utimeTicks)) return std::nullopt;
  SkipSpaces(rest);
  if (!ConsumeUnsigned(rest, stat.stimeTicks)) return std::nullopt;
  SkipSpaces(rest);
  // cutime, cstime, priority, nice (16–19; priority and nice may be negative), then num_threads.
  for (int field = 16; field <= 19; ++field)
    if (!SkipField(rest)) return stat;
  if (!ConsumeUnsigned(rest, stat.numThreads)) return stat;
  SkipSpaces(rest);
  // itrealvalue (21), then starttime (22).
  if (!SkipField(rest) || !ConsumeUnsigned(rest, stat.startTicks)) return stat;
  SkipSpaces(rest);
  // vsize (23) … exit_signal (38), then processor (39).
  for (int field = 23; field <= 38; ++field)
    if (!SkipField(rest)) return stat;
  uint64_t processor = 0;
  if (ConsumeUnsigned(rest, processor) && processor <= UINT32_MAX) stat.processor = static_cast<uint32_t>(processor);
  return stat;
}

ThreadState StateFromLetter(char letter) {
  switch (letter) {
    case 'R': return ThreadState::Running;  // TASK_RUNNING: on a CPU or queued for one; procfs cannot tell which
    case 'S': return ThreadState::Sleeping;
    case 'I': return ThreadState::Sleeping;  // idle kernel thread (TASK_IDLE)
    case 'P': return ThreadState::Sleeping;  // parked kernel thread (3.9–4.13)
    case 'D': return ThreadState::Uninterruptible;
    case 'K': return ThreadState::Uninterruptible;  // wakekill (3.9–4.13)
    case 'T': return ThreadState::Stopped;
    case 't': return ThreadState::Stopped;  // tracing stop
    case 'Z': return ThreadState::Zombie;
    case 'X': return ThreadState::Zombie;  // dead, being reaped
    case 'x': return ThreadState::Zombie;
    case 'W': return ThreadState::Runnable;  // waking (3.9–4.13), paging before 2.6
    default: return ThreadState::Unknown;
  }
}

std::optional<SchedStat> ParseSchedStat(std::string_view text) {
  SchedStat stat;
  if (!ConsumeUnsigned(text, stat.cpuNs)) return std::nullopt;
  SkipSpaces(text);
  if (!ConsumeUnsigned(text, stat.runDelayNs)) return std::nullopt;
  SkipSpaces(text);
  if (!ConsumeUnsigned(text, stat.timeslices)) return std::nullopt;
  return stat;
}

std::optional<uint64_t> ParseSchedExecStart(std::string_view text) {
  static constexpr std::string_view kKey = "\nse.exec_start";
  for (size_t at = text.find(kKey); at != std::string_view::npos; at = text.find(kKey, at + 1)) {
    std::string_view rest = text.substr(at + kKey.size());
    SkipSpaces(rest);
    if (rest.empty() || rest[0] != ':') continue;
    rest.remove_prefix(1);
    SkipSpaces(rest);
    uint64_t ms = 0, fraction = 0;
    const size_t before = rest.size();
    if (!ConsumeUnsigned(rest, ms) || before - rest.size() > 12 || rest.empty() || rest[0] != '.') continue;
    rest.remove_prefix(1);
    const size_t digits = rest.size();
    if (!ConsumeUnsigned(rest, fraction) || digits - rest.size() != 6) continue;
    return ms * 1000000 + fraction;
  }
  return std::nullopt;
}

std::optional<ContextSwitches> ParseContextSwitches(std::string_view status) {
  // Both lines close the file; search from the end. "nonvoluntary_…" contains
  // "voluntary_…", so anchor each key at a line start.
  static constexpr std::string_view kVoluntary = "\nvoluntary_ctxt_switches:";
  static constexpr std::string_view kInvoluntary = "\nnonvoluntary_ctxt_switches:";
  const size_t voluntaryAt = status.rfind(kVoluntary);
  const size_t involuntaryAt = status.rfind(kInvoluntary);
  if (voluntaryAt == std::string_view::npos || involuntaryAt == std::string_view::npos) return std::nullopt;
  ContextSwitches switches;
  std::string_view voluntary = status.substr(voluntaryAt + kVoluntary.size());
  std::string_view involuntary = status.substr(involuntaryAt + kInvoluntary.size());
  SkipSpaces(voluntary);
  SkipSpaces(involuntary);
  if (!ConsumeUnsigned(voluntary, switches.voluntary) || !ConsumeUnsigned(involuntary, switches.involuntary))
    return std::nullopt;
  return switches;
}

std::optional<SyscallLine> ParseSyscallLine(std::string_view text) {
  SyscallLine line;
  if (text.substr(0, 7) == "running") {
    line.kind = SyscallLine::Kind::Running;
    return line;
  }
  bool negative = false;
  if (!text.empty() && text[0] == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  uint64_t magnitude = 0;
  if (!ConsumeUnsigned(text, magnitude)) return std::nullopt;
  line.number = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
  if (line.number < 0) {
    line.kind = SyscallLine::Kind::User;
    SkipSpaces(text);
    if (!ConsumeHex(text, line.sp)) return line;  // kernels before 4.x printed only "-1"
    SkipSpaces(text);
    ConsumeHex(text, line.pc);
    return line;
  }
  line.kind = SyscallLine::Kind::InCall;
  for (uint64_t& arg : line.args) {
    SkipSpaces(text);
    if (!ConsumeHex(text, arg)) return std::nullopt;
  }
  SkipSpaces(text);
  if (!ConsumeHex(text, line.sp)) return std::nullopt;
  SkipSpaces(text);
  if (!ConsumeHex(text, line.pc)) return std::nullopt;
  return line;
}

std::optional<std::string_view> ParseWchan(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.empty() || text == "0") return std::nullopt;
  return text;
}

std::string_view KernelFrame(std::string_view line) {
  if (line.size() > 2 && line[0] == '[' && line[1] == '<') {
    const size_t end = line.find("] ");
    if (end != std::string_view::npos) line.remove_prefix(end + 2);
  }
  return line;
}

}  // namespace procfs
}  // namespace iokitsnap
