// The private libproc flavors, records and calls the thread sampler needs, declared
// here because the public SDK leaves them out. Each names the xnu source it comes from.
#pragma once

#include <mach/mach.h>
#include <sys/proc_info.h>

#include <cstdint>

namespace iokitsnap {
namespace darwin {

// xnu bsd/sys/proc_info_private.h (the PRIVATE part of proc_info.h before xnu-10002;
// handled by the kernel since at least xnu-6153, macOS 10.15): proc_pidinfo fills a uint64_t
// array with the process's system-wide thread ids, the THREAD_IDENTIFIER_INFO
// thread_id that sample, spindump and PROC_PIDTHREADID64INFO use. The public
// PROC_PIDLISTTHREADS lists pthread handles instead, which name no thread outside the
// target, so the fallback uses this flavor to give the same tid as the task-port path.
constexpr int kProcPidListThreadIds = 28;  // PROC_PIDLISTTHREADIDS

// PROC_PIDUNIQIDENTIFIERINFO (17) → struct proc_uniqidentifierinfo (56 bytes, "This
// structure is API"). bsd/kern/proc_info.c answers it for any process, whoever owns it
// (NO_CHECK_SAME_USER), and looks among zombies when arg is non-zero. p_uniqueid is
// given once, at fork (kern_fork.c forkproc: ++nextuniqueid), and kept across exec (the
// exec copy of the proc takes the original's p_uniqueid), so it tells "this pid still
// names the process we sampled" through any number of execs, which give it new tasks;
// p_idversion is renewed by every exec (kern_exec.c exec_handle_sugid:
// proc_setpidversion), which tells a sampler that was refused a port to ask again.
constexpr int kProcPidUniqIdentifierInfo = 17;
struct ProcUniqIdentifierInfo {
  uint8_t p_uuid[16];
  uint64_t p_uniqueid;
  uint64_t p_puniqueid;
  int32_t p_idversion;
  int32_t p_orig_ppidversion;
  uint64_t p_reserve2;
  uint64_t p_reserve3;
};
static_assert(sizeof(ProcUniqIdentifierInfo) == 56, "struct proc_uniqidentifierinfo is 56 bytes");

// PROC_PIDARCHINFO (19) → struct proc_archinfo: the process's p_cputype/p_cpusubtype,
// which exec sets from the image it ran (kern_exec.c exec_mach_imgact: p_cputype =
// ip_origcputype). An x86_64 image run by Rosetta on arm64 keeps CPU_TYPE_X86_64 here
// (PROC_FLAG_ROSETTA in pbsi_flags says the same, but only from macOS 12, xnu-8019).
// Same-user or root only (CHECK_SAME_USER): asked only when we hold the task port.
constexpr int kProcPidArchInfo = 19;
struct ProcArchInfo {
  int32_t p_cputype;     // cpu_type_t
  int32_t p_cpusubtype;  // cpu_subtype_t
};
constexpr int32_t kCpuTypeX86_64 = 0x01000007;  // CPU_TYPE_X86 | CPU_ARCH_ABI64 (mach/machine.h)
constexpr int32_t kCpuTypeArm64 = 0x0100000c;   // CPU_TYPE_ARM | CPU_ARCH_ABI64
constexpr int32_t kCpuSubtypeArm64e = 2;        // CPU_SUBTYPE_ARM64E (low bits; CPU_SUBTYPE_MASK is the top byte)

}  // namespace darwin
}  // namespace iokitsnap

// bsd/kern/syscalls.master 539, bsd/kern/kern_proc.c task_read_for_pid: a read port of
// another process's task, under the same rules as task_for_pid (root, or the same user
// and an unchanged credential; then AMFI; then, for a non-root caller, taskgated), for
// TASK_FLAVOR_READ. Declared only in xnu's private bsd/sys/proc.h (macOS 11.3 and later),
// exported by libsystem_kernel: weak, so the addon still loads on 11.0-11.2, where the
// symbol is absent (null) and only task_for_pid is tried. A BSD system call: 0 on success,
// -1 with errno (EPERM, ESRCH, …) on failure; success can still leave *t null (the process
// has no task: it is being created or torn down).
#if defined(__APPLE__)
#define IOKITSNAP_WEAK_IMPORT __attribute__((weak_import))
#else
#define IOKITSNAP_WEAK_IMPORT __attribute__((weak))
#endif
extern "C" int task_read_for_pid(mach_port_name_t target_tport, int pid, mach_port_name_t* t) IOKITSNAP_WEAK_IMPORT;
