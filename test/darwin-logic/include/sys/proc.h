// Test-only stand-in for macOS <sys/proc.h>: the p_stat values (xnu bsd/sys/proc.h).
#pragma once
#define SIDL 1
#define SRUN 2
#define SSLEEP 3
#define SSTOP 4
#define SZOMB 5
