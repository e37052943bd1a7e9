// The fake IORegistry: services with properties from real ioreg captures, served
// through the IOKit calls native/darwin/accelerators.cc makes. io_object_t are
// port rights here too, counted like every other.
#include <IOKit/IOKitLib.h>

#include <cstring>

#include "fake_cf.h"
#include "fake_kernel.h"

using fake::Kernel;
using fake::Port;
using fake::Service;

namespace {

Kernel& K() { return Kernel::Get(); }

Service* ServiceOf(io_object_t name) {
  Port* port = K().Resolve(name);
  if (port == nullptr) {
    K().problems.push_back("an IOKit call on 0x" + std::to_string(name) + ", which this task holds no right to");
    return nullptr;
  }
  if (port->kind != Port::Kind::Service) return nullptr;
  return &K().services_[port->service];
}

bool Conforms(const Service& service, const std::string& className) {
  for (const std::string& name : service.classChain) {
    if (name == className) return true;
  }
  return false;
}

// A call that waits on a wedged work loop: it returns only when the harness lets it.
void BlockUntilReleased(Kernel::Call& call) { K().BlockUntilReleased(call.lock); }

}  // namespace

extern "C" {

CFMutableDictionaryRef IOServiceMatching(const char* name) {
  Kernel::Call call(K(), "IOServiceMatching");
  if (call.Inject(nullptr, nullptr) != 0) return nullptr;
  std::vector<std::pair<CFTypeRef, CFTypeRef>> entries;
  entries.emplace_back(fake::CFStringOf("IOProviderClass"), fake::CFStringOf(name));
  return const_cast<CFMutableDictionaryRef>(static_cast<CFDictionaryRef>(fake::CFDictOf(std::move(entries))));
}

kern_return_t IOServiceGetMatchingServices(mach_port_t, CFDictionaryRef matching, io_iterator_t* existing) {
  std::string className;
  {
    Kernel::Call call(K(), "IOServiceGetMatchingServices");
    *existing = IO_OBJECT_NULL;
    const int kr = call.Inject(nullptr, nullptr);
    if (kr == 0 && matching != nullptr) {
      const void* key = nullptr;
      const void* value = nullptr;
      CFDictionaryGetKeysAndValues(matching, &key, &value);
      className = CFStringGetCStringPtr(static_cast<CFStringRef>(value), kCFStringEncodingUTF8);
      Port port{Port::Kind::Iterator};
      for (size_t i = 0; i < K().services_.size(); ++i) {
        if (Conforms(K().services_[i], className)) port.iteratorItems.push_back(i);
      }
      *existing = K().NewPort(port);
    }
    if (kr != 0) {
      call.lock.unlock();
      if (matching != nullptr) CFRelease(matching);  // consumed on every path, as IOKit does
      return kr;
    }
  }
  if (matching != nullptr) CFRelease(matching);
  return KERN_SUCCESS;
}

io_object_t IOIteratorNext(io_iterator_t iterator) {
  Kernel::Call call(K(), "IOIteratorNext");
  if (call.Inject(nullptr, nullptr) != 0) return IO_OBJECT_NULL;
  Port* port = K().Resolve(iterator);
  if (port == nullptr || port->kind != Port::Kind::Iterator) return IO_OBJECT_NULL;
  if (port->iteratorNext >= port->iteratorItems.size()) return IO_OBJECT_NULL;
  Port service{Port::Kind::Service};
  service.service = port->iteratorItems[port->iteratorNext++];
  return K().NewPort(service);
}

Boolean IOIteratorIsValid(io_iterator_t) {
  Kernel::Call call(K(), "IOIteratorIsValid");
  if (call.Inject(nullptr, nullptr) != 0) return false;
  if (K().registryChanges_ > 0) {
    --K().registryChanges_;
    return false;
  }
  return true;
}

kern_return_t IOObjectRetain(io_object_t object) {
  Kernel::Call call(K(), "IOObjectRetain", false);
  Port* port = K().Resolve(object);
  if (port == nullptr) {
    K().problems.push_back("IOObjectRetain of an object we hold no reference to");
    return KERN_INVALID_ARGUMENT;
  }
  ++port->refs;
  return KERN_SUCCESS;
}

kern_return_t IOObjectRelease(io_object_t object) {
  Kernel::Call call(K(), "IOObjectRelease", false);
  Port* port = K().Resolve(object);
  if (port == nullptr) {
    K().problems.push_back("IOObjectRelease of 0x" + std::to_string(object) + ": not held (a double release?)");
    return KERN_INVALID_ARGUMENT;
  }
  if (--port->refs == 0) K().ports.erase(object);
  return KERN_SUCCESS;
}

kern_return_t IORegistryEntryGetRegistryEntryID(io_registry_entry_t entry, uint64_t* id) {
  Kernel::Call call(K(), "IORegistryEntryGetRegistryEntryID");
  if (int kr = call.Inject(nullptr, nullptr)) return kr;
  Service* service = ServiceOf(entry);
  if (service == nullptr) return KERN_INVALID_ARGUMENT;
  *id = service->id;
  return KERN_SUCCESS;
}

kern_return_t IORegistryEntryGetName(io_registry_entry_t entry, io_name_t name) {
  Kernel::Call call(K(), "IORegistryEntryGetName");
  if (int kr = call.Inject(nullptr, nullptr)) return kr;
  Service* service = ServiceOf(entry);
  if (service == nullptr) return KERN_INVALID_ARGUMENT;
  std::strncpy(name, service->name.c_str(), sizeof(io_name_t) - 1);
  return KERN_SUCCESS;
}

kern_return_t IORegistryEntryGetLocationInPlane(io_registry_entry_t entry, const char*, io_name_t location) {
  Kernel::Call call(K(), "IORegistryEntryGetLocationInPlane");
  if (int kr = call.Inject(nullptr, nullptr)) return kr;
  Service* service = ServiceOf(entry);
  if (service == nullptr || service->location.empty()) return KERN_FAILURE;  // most have none
  std::strncpy(location, service->location.c_str(), sizeof(io_name_t) - 1);
  return KERN_SUCCESS;
}

CFStringRef IOObjectCopyClass(io_object_t object) {
  Kernel::Call call(K(), "IOObjectCopyClass");
  if (call.Inject(nullptr, nullptr) != 0) return nullptr;
  Service* service = ServiceOf(object);
  if (service == nullptr || service->classChain.empty()) return nullptr;
  return static_cast<CFStringRef>(fake::CFStringOf(service->classChain.front()));
}

CFStringRef IOObjectCopySuperclassForClass(CFStringRef className) {
  const char* name = CFStringGetCStringPtr(className, kCFStringEncodingUTF8);
  Kernel::Call call(K(), "IOObjectCopySuperclassForClass");
  if (call.Inject(nullptr, nullptr) != 0) return nullptr;
  for (const Service& service : K().services_) {
    for (size_t i = 0; i + 1 < service.classChain.size(); ++i) {
      if (service.classChain[i] == name) return static_cast<CFStringRef>(fake::CFStringOf(service.classChain[i + 1]));
    }
  }
  return nullptr;
}

uint32_t IOObjectGetKernelRetainCount(io_object_t object) {
  Kernel::Call call(K(), "IOObjectGetKernelRetainCount");
  if (call.Inject(nullptr, nullptr) != 0) return 0;
  Service* service = ServiceOf(object);
  return service == nullptr ? 0 : service->retainCount;
}

kern_return_t IOServiceGetBusyStateAndTime(io_service_t object, uint64_t* state, uint32_t* busy, uint64_t* time) {
  Kernel::Call call(K(), "IOServiceGetBusyStateAndTime");
  if (int kr = call.Inject(nullptr, nullptr)) return kr;
  Service* service = ServiceOf(object);
  if (service == nullptr) return KERN_INVALID_ARGUMENT;
  *state = service->state;
  *busy = service->busyCount;
  *time = service->busyTimeNs;
  return KERN_SUCCESS;
}

kern_return_t IORegistryEntryCreateCFProperties(io_registry_entry_t entry, CFMutableDictionaryRef* properties,
                                                CFAllocatorRef, IOOptionBits) {
  Kernel::Call call(K(), "IORegistryEntryCreateCFProperties");
  *properties = nullptr;
  const fake::Fault fault = call.fault;
  if (fault == fake::Fault::Blocks) BlockUntilReleased(call);
  if (fault != fake::Fault::Blocks && fault != fake::Fault::None) return call.Inject(nullptr, nullptr) ?: KERN_FAILURE;
  Service* service = ServiceOf(entry);
  if (service == nullptr) return KERN_INVALID_ARGUMENT;
  fake::Json copy = service->properties;
  if (service->blocksPowerRead) {
    // The bulk read serializes IOPowerManagement too: it waits as long.
    BlockUntilReleased(call);
  }
  *properties = const_cast<CFMutableDictionaryRef>(static_cast<CFDictionaryRef>(fake::CFFromJson(copy)));
  return KERN_SUCCESS;
}

CFTypeRef IORegistryEntryCreateCFProperty(io_registry_entry_t entry, CFStringRef key, CFAllocatorRef, IOOptionBits) {
  const std::string name = CFStringGetCStringPtr(key, kCFStringEncodingUTF8);
  Kernel::Call call(K(), "IORegistryEntryCreateCFProperty");
  const fake::Fault fault = call.fault;
  if (fault == fake::Fault::Blocks) BlockUntilReleased(call);
  if (fault != fake::Fault::Blocks && fault != fake::Fault::None) return nullptr;
  Service* service = ServiceOf(entry);
  if (service == nullptr) return nullptr;
  if (service->blocksPowerRead && name == "IOPowerManagement") BlockUntilReleased(call);
  const fake::Json* value = service->properties.Get(name);
  return value == nullptr ? nullptr : fake::CFFromJson(*value);
}

}  // extern "C"
