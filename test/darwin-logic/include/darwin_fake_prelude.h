// Force-included (-include) before every file the darwin-logic harness compiles:
// what macOS declares in headers that Linux also has (time.h, signal.h), pointed
// at the fake kernel instead.
#pragma once

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif
// macOS <time.h>: the fake kernel's clock (it moves when a scripted call "blocks").
#define CLOCK_UPTIME_RAW ((clockid_t)8)
uint64_t clock_gettime_nsec_np(clockid_t clock);
// ReadIdentity's kill(pid, 0) existence check must ask the fake, not Linux.
int iokitsnap_fake_kill(pid_t pid, int signal);
#ifdef __cplusplus
}
#endif
#define kill iokitsnap_fake_kill
