// SchedClocks and the process-wide calibration (see sched_clock.h).
#include "sched_clock.h"

#include <fcntl.h>
#include <sched.h>
#include <time.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "procfs_files.h"
#include "procfs_parse.h"

namespace iokitsnap {
namespace procfs {
namespace {

constexpr uint64_t kRefreshNs = 2000000000;          // a calibration serves this long
constexpr uint64_t kCalibrationTimeoutNs = 100000000;  // how long a sample waits for one
constexpr uint64_t kMaxApartNs = 5000000000;         // offsets measured further apart are not compared
constexpr uint64_t kMaxAgeNs = 60000000000;          // nor one older than this (a round stuck since)

uint64_t Monotonic() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
}

// clock_task(cpu) - CLOCK_MONOTONIC, and when (monotonic) it was measured.
struct Offset {
  int64_t ns = 0;
  uint64_t atNs = 0;
};

struct Table {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<std::optional<Offset>> offsets;  // by CPU
  uint64_t roundStartedNs = 0;                 // 0: never
  bool running = false;
};

// Never destroyed: a calibration thread that outlives its wait may still write to it,
// even while the process exits.
Table& TheTable() {
  static Table* table = new Table();
  return *table;
}

// Runs on a thread of its own: on each CPU this process may use, the thread's own
// se.exec_start (current after clock_gettime(CLOCK_THREAD_CPUTIME_ID)) against
// CLOCK_MONOTONIC.
void Calibrate() {
  auto buffer = std::make_unique<ReadBuffer>();
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &allowed)) continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      // Returns once this thread runs on `cpu`.
      if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
      for (int attempt = 0; attempt < 3; ++attempt) {
        if (sched_getcpu() != cpu) continue;
        struct timespec spent;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spent);
        if (ReadFileAt(AT_FDCWD, "/proc/thread-self/sched", *buffer).outcome != ReadOutcome::Ok) break;
        const std::optional<uint64_t> clock = ParseSchedExecStart(buffer->text);
        const uint64_t monotonic = Monotonic();
        if (!clock) break;
        if (sched_getcpu() != cpu) continue;
        Table& table = TheTable();
        std::lock_guard<std::mutex> lock(table.mutex);
        if (table.offsets.size() <= static_cast<size_t>(cpu)) table.offsets.resize(static_cast<size_t>(cpu) + 1);
        table.offsets[static_cast<size_t>(cpu)] = Offset{static_cast<int64_t>(*clock - monotonic), monotonic};
        break;
      }
    }
  }
  Table& table = TheTable();
  std::lock_guard<std::mutex> lock(table.mutex);
  table.running = false;
  table.done.notify_all();
}

}  // namespace

std::optional<uint64_t> SchedClocks::NowOn(std::optional<uint32_t> processor) const {
  if (cpu < 0 || !processor || static_cast<int64_t>(*processor) == cpu) return nowNs;
  if (*processor >= skewNs.size() || !skewNs[*processor]) return std::nullopt;
  return nowNs + static_cast<uint64_t>(*skewNs[*processor]);
}

void AddSkews(int cpu, SchedClocks& clocks) {
  Table& table = TheTable();
  std::unique_lock<std::mutex> lock(table.mutex);
  const uint64_t now = Monotonic();
  if (!table.running && (table.roundStartedNs == 0 || now - table.roundStartedNs > kRefreshNs)) {
    table.running = true;
    table.roundStartedNs = now;
    try {
      std::thread(Calibrate).detach();
    } catch (const std::system_error&) {
      table.running = false;  // no thread to be had: the last offsets serve while they may
    }
  }
  // A round refreshes in the background while the last one's offsets serve; a sample
  // waits for one only when this CPU has none yet (the process's first samples), and only
  // within its deadline: one stuck on a busy CPU is not waited for again.
  const bool known = cpu >= 0 && static_cast<size_t>(cpu) < table.offsets.size() &&
                     table.offsets[static_cast<size_t>(cpu)] && now - table.offsets[static_cast<size_t>(cpu)]->atNs <= kMaxAgeNs;
  if (table.running && !known) {
    const uint64_t deadline = table.roundStartedNs + kCalibrationTimeoutNs;
    if (deadline > now)
      table.done.wait_for(lock, std::chrono::nanoseconds(deadline - now), [&table] { return !table.running; });
  }
  clocks.cpu = cpu;
  clocks.skewNs.assign(table.offsets.size(), std::nullopt);
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    clocks.allowed.assign(CPU_SETSIZE, false);
    for (int k = 0; k < CPU_SETSIZE; ++k) clocks.allowed[static_cast<size_t>(k)] = CPU_ISSET(k, &allowed);
  }
  if (cpu < 0 || static_cast<size_t>(cpu) >= table.offsets.size() || !table.offsets[static_cast<size_t>(cpu)]) return;
  const Offset own = *table.offsets[static_cast<size_t>(cpu)];
  const uint64_t measured = Monotonic();
  if (measured - own.atNs > kMaxAgeNs) return;
  for (size_t k = 0; k < table.offsets.size(); ++k) {
    const std::optional<Offset>& other = table.offsets[k];
    if (!other || measured - other->atNs > kMaxAgeNs) continue;
    const uint64_t apart = other->atNs > own.atNs ? other->atNs - own.atNs : own.atNs - other->atNs;
    if (apart <= kMaxApartNs) clocks.skewNs[k] = other->ns - own.ns;
  }
}

}  // namespace procfs
}  // namespace iokitsnap
