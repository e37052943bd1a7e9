// What IOKit exports but declares only in Apple's private headers, declared here
// the way Apple's own ioreg (IOKitTools ioreg.c, via IOKitLibPrivate.h) uses it.
#pragma once

#include <IOKit/IOKitLib.h>
#include <stdint.h>

extern "C" {
// IOKitUser IOKitLib.c: the io_service_get_state MIG call. `state` holds the
// IOService state bits below, `busy_state` the busy count, `accumulated_busy_time`
// the nanoseconds the service has spent busy (ioreg divides it by kMillisecondScale).
// Exported by IOKit.framework (IOKit.tbd lists _IOServiceGetBusyStateAndTime).
kern_return_t IOServiceGetBusyStateAndTime(io_service_t service, uint64_t* state, uint32_t* busy_state,
                                           uint64_t* accumulated_busy_time);
}

namespace iokitsnap {
namespace darwin {

// IOService state bits (xnu iokit/IOKit/IOService.h, the enum beginning with
// kIOServiceInactiveState), under names of our own so they never collide with a
// header that declares the originals.
constexpr uint64_t kServiceStateInactive = 0x00000001;      // kIOServiceInactiveState
constexpr uint64_t kServiceStateRegistered = 0x00000002;    // kIOServiceRegisteredState
constexpr uint64_t kServiceStateMatched = 0x00000004;       // kIOServiceMatchedState
constexpr uint64_t kServiceStateFirstPublish = 0x00000008;  // kIOServiceFirstPublishState
constexpr uint64_t kServiceStateFirstMatch = 0x00000010;    // kIOServiceFirstMatchState

}  // namespace darwin
}  // namespace iokitsnap
