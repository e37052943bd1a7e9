// The scheduler's task clock of every CPU, for offCpuNs (procfs_thread.h).
//
// se.exec_start in /proc/<pid>/task/<tid>/sched is rq_clock_task of the CPU the thread
// last ran on (stat field 39). That clock is kept per CPU and leaves out the time the
// CPU spent in interrupts (CONFIG_IRQ_TIME_ACCOUNTING) and the time the hypervisor gave
// to others (steal, CONFIG_PARAVIRT_TIME_ACCOUNTING), so the clocks of two CPUs drift
// apart by the difference, for as long as the machine runs: 11 ms after 20 minutes and
// 267 ms after an hour on the loaded 2-CPU VM this was written on, minutes on a host
// whose interrupts all land on CPU 0. A thread's exec_start is therefore compared with
// the clock of its own CPU: the sampling thread reads its own CPU's clock now (its own
// se.exec_start, made current by clock_gettime(CLOCK_THREAD_CPUTIME_ID)), and adds the
// skew between the two CPUs, which a calibration measures by running a helper thread on
// each CPU in turn (sched_setaffinity) and reading the clock there against
// CLOCK_MONOTONIC. The skews move slowly (the difference of two CPUs' interrupt and
// steal rates), so a calibration serves 2 s and is then redone in the background while
// its offsets serve on (up to 60 s); it runs on a thread of its own, and only the
// process's first sample waits for it, at most 100 ms, because a CPU kept busy (a
// real-time spinner) may not run it: the CPUs it has not reached then have no clock,
// and their threads no offCpuNs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace iokitsnap {
namespace procfs {

// One sample's view of the clocks.
struct SchedClocks {
  uint64_t nowNs = 0;  // the clock of `cpu` now
  // Where `nowNs` was read; -1 when every thread is measured against it alone (a procRoot
  // that is not /proc: a fixture tree has one clock, or a machine with one CPU).
  int cpu = -1;
  // Per CPU: its clock minus the clock of `cpu`, when known.
  std::vector<std::optional<int64_t>> skewNs;
  // Per CPU: whether this process may run on it (its affinity, its cpuset): a CPU it may
  // not run on cannot be calibrated.
  std::vector<bool> allowed;
  // The clock of `processor` now; nullopt when its skew is unknown.
  std::optional<uint64_t> NowOn(std::optional<uint32_t> processor) const;
};

// Starts a calibration when the process-wide table is older than 2 s (waiting for it, at
// most 100 ms, only when CPU `cpu` has no offset yet), then fills `clocks.cpu`,
// `clocks.skewNs` and `clocks.allowed` for a sample whose `nowNs` the calling thread read
// on CPU `cpu`.
void AddSkews(int cpu, SchedClocks& clocks);

}  // namespace procfs
}  // namespace iokitsnap
