// The one private libproc flavor the fallback thread reader needs.
#pragma once

#include <sys/proc_info.h>

namespace iokitsnap {
namespace darwin {

// xnu bsd/sys/proc_info_private.h (the PRIVATE part of proc_info.h before xnu-10002;
// handled by the kernel since at least xnu-6153, macOS 10.15): proc_pidinfo fills a uint64_t
// array with the process's system-wide thread ids, the THREAD_IDENTIFIER_INFO
// thread_id that sample, spindump and PROC_PIDTHREADID64INFO use. The public
// PROC_PIDLISTTHREADS lists pthread handles instead, which name no thread outside the
// target, so the fallback uses this flavor to give the same tid as the task-port path.
constexpr int kProcPidListThreadIds = 28;  // PROC_PIDLISTTHREADIDS

}  // namespace darwin
}  // namespace iokitsnap
