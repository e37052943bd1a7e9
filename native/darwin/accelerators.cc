// SampleAccelerators for macOS: the IORegistry services that conform to
// IOAccelerator, each as header facts + its property tree. Interpretation
// (power, utilization, queues) happens in TypeScript (src/map/registry.ts).
//
// Order of reads, cheapest and safest first (docs/ARCHITECTURE.md, "Reading without getting stuck"):
//   1. for every service, the header: id, name, location, class chain, busy state
//      and time, retain count (registry calls that never wait on a driver);
//   2. for every service, the property tree, with a deadline;
//   3. for every service, IOPowerManagement, alone and last, with a deadline: it is
//      serialized on the power-management work loop (xnu IOServicePM::serialize
//      takes gIOPMWorkLoop's gate), which is what a wedged GPU or sleep transition
//      holds. The bulk read serializes it too, so the key is dropped from the bulk
//      result and the separate read, with its own limit, is the only source.
// Once a read times out, later reads that would queue behind the same wedge are
// skipped (and said so) for as long as it stays blocked, in this sample and in the
// following ones (AcceleratorContext, one per JS environment): a hung system costs
// one deadline and one stuck thread per kind of read, not one per service and sample.
#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <mach/mach.h>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../backend.h"
#include "cf_property.h"
#include "deadline.h"
#include "iokit_private.h"
#include "scoped.h"

namespace iokitsnap {
namespace {

using darwin::PropertyConversion;
using darwin::RunWithDeadline;
using darwin::ScopedCFType;
using darwin::ScopedIOObject;
using darwin::StringFromCF;

constexpr char kPowerManagementKey[] = "IOPowerManagement";
constexpr int kMaxClassChain = 64;       // IOKit class hierarchies are ~10 deep
constexpr int kMaxIterationRetries = 3;  // the registry changed while we listed it

std::string Hex(kern_return_t kr) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%x", static_cast<unsigned>(kr));
  return buffer;
}

struct Service {
  ScopedIOObject object;
  AcceleratorRecord record;
  std::string subject;  // "accelerator 0x100000478"
};

// Every service conforming to IOAccelerator. IOServiceMatching matches by class
// conformance (IOService::metaCast), never by name: a node NAMED IOAccelerator can
// be an IOServiceCompatibility.
std::vector<Service> MatchingServices() {
  for (int attempt = 0; attempt < kMaxIterationRetries; ++attempt) {
    CFMutableDictionaryRef matching = IOServiceMatching("IOAccelerator");  // consumed below
    if (matching == nullptr) throw SnapError("EIO", "IOServiceMatching(\"IOAccelerator\") returned no dictionary");
    ScopedIOObject iterator;
    // MACH_PORT_NULL is the default main port on every macOS (kIOMainPortDefault is 12+).
    kern_return_t kr = IOServiceGetMatchingServices(MACH_PORT_NULL, matching, iterator.receive());
    if (kr != KERN_SUCCESS) {
      throw SnapError("EIO", "IOServiceGetMatchingServices failed (" + Hex(kr) + "); the IORegistry is not readable",
                      "IOServiceGetMatchingServices", kr);
    }
    std::vector<Service> services;
    while (io_object_t next = IOIteratorNext(iterator.get())) services.push_back(Service{ScopedIOObject(next), {}, {}});
    if (IOIteratorIsValid(iterator.get())) return services;
  }
  throw SnapError("EIO", "the IORegistry kept changing while the accelerators were listed; try again",
                  "IOIteratorNext");
}

void AddLimit(AcceleratorSampleRecord& sample, const std::string& subject, std::string field, std::string code,
              std::string reason, std::string hint = "") {
  sample.limits.push_back(LimitRecord{subject, std::move(field), std::move(code), std::move(reason), std::move(hint)});
}

std::vector<std::string> ClassChain(CFStringRef mostDerived) {
  std::vector<std::string> chain;
  ScopedCFType<CFStringRef> current(static_cast<CFStringRef>(CFRetain(mostDerived)));
  for (int depth = 0; current && depth < kMaxClassChain; ++depth) {
    chain.push_back(StringFromCF(current.get()));
    if (CFEqual(current.get(), CFSTR("OSObject"))) break;
    current.reset(IOObjectCopySuperclassForClass(current.get()));
  }
  return chain;
}

void ReadHeader(Service& service, AcceleratorSampleRecord& sample) {
  io_object_t object = service.object.get();
  AcceleratorRecord& record = service.record;

  uint64_t entryId = 0;
  kern_return_t kr = IORegistryEntryGetRegistryEntryID(object, &entryId);
  if (kr == KERN_SUCCESS) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "0x%" PRIx64, entryId);
    record.id = buffer;
  }
  io_name_t name = {};
  if (IORegistryEntryGetName(object, name) == KERN_SUCCESS) record.name = name;
  service.subject = "accelerator " + (record.id.empty() ? record.name : record.id);
  if (kr != KERN_SUCCESS) {
    AddLimit(sample, service.subject, "id", "EIO", "IORegistryEntryGetRegistryEntryID failed (" + Hex(kr) + ")");
  }

  io_name_t location = {};
  // Most accelerators have no location in the service plane; that is not a failure.
  if (IORegistryEntryGetLocationInPlane(object, kIOServicePlane, location) == KERN_SUCCESS) record.location = location;

  ScopedCFType<CFStringRef> className(IOObjectCopyClass(object));
  if (className) {
    record.className = StringFromCF(className.get());
    record.classChain = ClassChain(className.get());
  } else {
    AddLimit(sample, service.subject, "className", "EIO", "IOObjectCopyClass returned nothing");
  }

  uint64_t state = 0;
  uint32_t busyCount = 0;
  uint64_t busyTimeNs = 0;
  kr = IOServiceGetBusyStateAndTime(object, &state, &busyCount, &busyTimeNs);
  if (kr == KERN_SUCCESS) {
    record.busyCount = busyCount;
    record.busyTimeNs = busyTimeNs;
    record.serviceState = ServiceStateRecord{(state & darwin::kServiceStateRegistered) != 0,
                                             (state & darwin::kServiceStateMatched) != 0,
                                             (state & darwin::kServiceStateInactive) == 0};
  } else {
    AddLimit(sample, service.subject, "busy", "EIO", "IOServiceGetBusyStateAndTime failed (" + Hex(kr) + ")");
  }
  record.retainCount = IOObjectGetKernelRetainCount(object);
}

// What one read on the worker thread hands back: plain data, no CF objects.
struct PropertyRead {
  kern_return_t kr = KERN_SUCCESS;
  bool present = false;
  PropertyValue value;
  bool truncated = false;
};

PropertyRead ReadAllProperties(const ScopedIOObject& service) {
  PropertyRead read;
  ScopedCFType<CFMutableDictionaryRef> properties;
  read.kr = IORegistryEntryCreateCFProperties(service.get(), properties.receive(), kCFAllocatorDefault, kNilOptions);
  if (read.kr != KERN_SUCCESS || !properties) return read;
  PropertyConversion conversion;
  read.value = darwin::PropertyDictFromCF(properties.get(), CFSTR("IOPowerManagement"), conversion);
  read.present = true;
  read.truncated = conversion.truncated;
  return read;
}

PropertyRead ReadPowerManagement(const ScopedIOObject& service) {
  PropertyRead read;
  ScopedCFType<CFTypeRef> value(IORegistryEntryCreateCFProperty(service.get(), CFSTR("IOPowerManagement"),
                                                                kCFAllocatorDefault, kNilOptions));
  if (!value) return read;  // a service outside power management has none
  PropertyConversion conversion;
  read.value = darwin::PropertyFromCF(value.get(), conversion);
  read.present = true;
  read.truncated = conversion.truncated;
  return read;
}

// Reads of one kind that timed out and have not returned since, in this JS
// environment. While one is still blocked, the next read of that kind would queue
// behind the same wedge: it is skipped (and said so) instead of costing another
// deadline and another stuck thread, in this sample and in later ones.
struct StuckReads {
  std::mutex mutex;
  uint32_t count = 0;   // abandoned calls still running
  uint64_t sinceNs = 0; // when the count last rose from 0
};

// One call's fate, shared by the caller (which may abandon it) and its worker.
struct CallFate {
  std::mutex mutex;
  bool done = false;
  bool abandoned = false;
};

}  // namespace

struct AcceleratorContext {
  StuckReads properties;  // IORegistryEntryCreateCFProperties
  StuckReads power;       // IOPowerManagement (the bulk read serializes it too)
};

std::shared_ptr<AcceleratorContext> NewAcceleratorContext() { return std::make_shared<AcceleratorContext>(); }

namespace {

// A stuck read of this kind, as a human duration ("" when none).
std::string StuckFor(StuckReads& stuck) {
  std::lock_guard<std::mutex> lock(stuck.mutex);
  if (stuck.count == 0) return "";
  const uint64_t ms = (MonotonicNs() - stuck.sinceNs) / 1000000;
  return std::to_string(stuck.count) + " earlier call(s), blocked for " + std::to_string(ms) + " ms so far";
}

// One deadline-bound read, counted in `stuck` if it is abandoned. nullopt when it did
// not complete (a limit says why).
template <typename Reader>
std::optional<PropertyRead> ReadWithDeadline(Service& service, AcceleratorSampleRecord& sample,
                                             const AcceleratorOptions& options,
                                             const std::shared_ptr<AcceleratorContext>& context, StuckReads& stuck,
                                             const char* field, const char* what, const char* hint, Reader reader) {
  // The worker holds its own reference to the service and to the context: if it
  // outlives this sample (or the JS environment), what it touches stays valid.
  ScopedIOObject held = ScopedIOObject::Retain(service.object.get());
  auto fate = std::make_shared<CallFate>();
  std::optional<PropertyRead> read;
  try {
    read = RunWithDeadline(options.callTimeoutMs, [held = std::move(held), reader, fate, context, &stuck]() {
      struct Finish {  // on every path, exceptions included
        CallFate& fate;
        StuckReads& stuck;
        ~Finish() {
          std::lock_guard<std::mutex> lock(fate.mutex);
          fate.done = true;
          if (fate.abandoned) {
            std::lock_guard<std::mutex> stuckLock(stuck.mutex);
            --stuck.count;
          }
        }
      } finish{*fate, stuck};
      return reader(held);
    });
  } catch (const SnapError& e) {
    AddLimit(sample, service.subject, field, e.code(), e.what());
    return std::nullopt;
  }
  if (!read) {
    {
      std::lock_guard<std::mutex> lock(fate->mutex);
      if (!fate->done) {
        fate->abandoned = true;
        std::lock_guard<std::mutex> stuckLock(stuck.mutex);
        if (stuck.count++ == 0) stuck.sinceNs = MonotonicNs();
      }
    }
    AddLimit(sample, service.subject, field, "ETIMEDOUT",
             std::string("probe timed out: ") + what + " did not return within " +
                 std::to_string(options.callTimeoutMs) + " ms",
             hint);
  }
  return read;
}

void SkippedWhileStuck(Service& service, AcceleratorSampleRecord& sample, const char* field, const char* what,
                       const std::string& stuck) {
  AddLimit(sample, service.subject, field, "ETIMEDOUT",
           std::string("probe timed out: ") + what + " was not attempted: " + stuck +
               " (a new call would wait behind the same wedge)",
           "the system looks wedged; this is itself evidence of the hang");
}

}  // namespace

AcceleratorSampleRecord SampleAccelerators(const AcceleratorOptions& options,
                                           const std::shared_ptr<AcceleratorContext>& givenContext) {
  const std::shared_ptr<AcceleratorContext> context = givenContext ? givenContext : NewAcceleratorContext();
  AcceleratorSampleRecord sample;
  std::vector<Service> services = MatchingServices();

  for (Service& service : services) ReadHeader(service, sample);

  static constexpr char kPropertiesWhat[] = "IORegistryEntryCreateCFProperties";
  static constexpr char kPropertiesHint[] =
      "the IORegistry or the accelerator's driver did not answer; this is itself evidence of the hang. "
      "Retry with a larger callTimeoutMs to wait longer";
  for (Service& service : services) {
    const std::string stuck = StuckFor(context->properties);
    if (!stuck.empty()) {
      SkippedWhileStuck(service, sample, "properties", kPropertiesWhat, "IORegistryEntryCreateCFProperties has " + stuck);
      continue;
    }
    std::optional<PropertyRead> read = ReadWithDeadline(service, sample, options, context, context->properties,
                                                        "properties", kPropertiesWhat, kPropertiesHint,
                                                        ReadAllProperties);
    if (!read) continue;
    if (read->present) {
      service.record.properties = std::move(read->value);
    } else {
      AddLimit(sample, service.subject, "properties", "EIO",
               "IORegistryEntryCreateCFProperties failed (" + Hex(read->kr) + ")");
    }
    if (read->truncated) {
      AddLimit(sample, service.subject, "properties", "E2BIG",
               "the property tree nests deeper than 64 levels; deeper values are null");
    }
  }

  static constexpr char kPowerWhat[] = "reading IOPowerManagement";
  static constexpr char kPowerHint[] =
      "IOPowerManagement is served by the power-management work loop, which a wedged driver or a stuck "
      "sleep/wake transition holds; this is itself evidence of the hang";
  for (Service& service : services) {
    std::string stuck = StuckFor(context->power);
    if (!stuck.empty()) {
      stuck = "reading IOPowerManagement has " + stuck;
    } else if (!(stuck = StuckFor(context->properties)).empty()) {
      stuck = "IORegistryEntryCreateCFProperties, which serializes IOPowerManagement too, has " + stuck;
    }
    if (!stuck.empty()) {
      SkippedWhileStuck(service, sample, "power", kPowerWhat, stuck);
      continue;
    }
    std::optional<PropertyRead> read = ReadWithDeadline(service, sample, options, context, context->power, "power",
                                                        kPowerWhat, kPowerHint, ReadPowerManagement);
    if (read && read->present) service.record.properties.Set(kPowerManagementKey, std::move(read->value));
  }

  sample.accelerators.reserve(services.size());
  for (Service& service : services) sample.accelerators.push_back(std::move(service.record));
  return sample;
}

}  // namespace iokitsnap
