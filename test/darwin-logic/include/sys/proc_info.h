// Test-only stand-in for macOS <sys/proc_info.h>: the flavors and records
// native/darwin reads, with the SDK's flavor numbers and field names.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#define MAXCOMLEN 16
#define PROC_PIDPATHINFO_MAXSIZE 4096

#define PROC_PIDTASKINFO 4
#define PROC_PIDT_SHORTBSDINFO 13
#define PROC_PIDTHREADID64INFO 15
#define PROC_PIDFDVNODEPATHINFO 2

#define PROC_FLAG_SYSTEM 1
#define PROC_FLAG_TRACED 2
#define PROC_FLAG_INEXIT 4

struct proc_bsdshortinfo {
  uint32_t pbsi_pid;
  uint32_t pbsi_ppid;
  uint32_t pbsi_pgid;
  uint32_t pbsi_status;
  char pbsi_comm[MAXCOMLEN];
  uint32_t pbsi_flags;
  uid_t pbsi_uid;
  gid_t pbsi_gid;
  uid_t pbsi_ruid;
  gid_t pbsi_rgid;
  uid_t pbsi_svuid;
  gid_t pbsi_svgid;
  uint32_t pbsi_rfu;
};

struct proc_taskinfo {
  uint64_t pti_virtual_size;
  uint64_t pti_resident_size;
  uint64_t pti_total_user;
  uint64_t pti_total_system;
  int32_t pti_threadnum;
  int32_t pti_numrunning;
  int32_t pti_suspendcount_unused;
};

struct proc_threadinfo {
  uint64_t pth_user_time;
  uint64_t pth_system_time;
  int32_t pth_cpu_usage;
  int32_t pth_policy;
  int32_t pth_run_state;
  int32_t pth_flags;
  int32_t pth_sleep_time;
  int32_t pth_curpri;
  int32_t pth_priority;
  int32_t pth_maxpriority;
  char pth_name[64];
};

struct vnode_info_path {
  char vip_vi[152];
  char vip_path[1024];
};
struct proc_fileinfo {
  uint32_t fi_openflags;
  uint32_t fi_status;
  int64_t fi_offset;
  int32_t fi_type;
  uint32_t fi_guardflags;
};
struct vnode_fdinfowithpath {
  struct proc_fileinfo pfi;
  struct vnode_info_path pvip;
};
