// Test-only stand-in for macOS <libproc.h>, served by the fake kernel.
#pragma once

#include <stdint.h>
#include <sys/proc_info.h>

#ifdef __cplusplus
extern "C" {
#endif
int proc_pidinfo(int pid, int flavor, uint64_t arg, void* buffer, int buffersize);
int proc_pidfdinfo(int pid, int fd, int flavor, void* buffer, int buffersize);
#ifdef __cplusplus
}
#endif
