#pragma once
// Test-only: mach_vm_read_overwrite is declared in the fake <mach/mach.h>.
#include <mach/mach.h>
