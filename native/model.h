// Plain C++ records: what a backend returns. No Node-API, no OS headers.
// Built on a probe thread; turned into JS values only in node/to_js.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iokitsnap {

// The JSON image of a CF/OSObject (or sysfs) property tree: string, number,
// boolean, { $data: base64 }, array, object. 64-bit integers that do not fit a
// double exactly are carried as decimal strings (Kind::String).
struct PropertyValue {
  enum class Kind { Null, Bool, Number, String, Data, Array, Dict };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string text;  // String: the text; Data: the raw bytes
  std::vector<PropertyValue> items;                             // Array
  std::vector<std::pair<std::string, PropertyValue>> entries;   // Dict, in read order

  static PropertyValue Bool(bool v) { PropertyValue p; p.kind = Kind::Bool; p.boolean = v; return p; }
  static PropertyValue Number(double v) { PropertyValue p; p.kind = Kind::Number; p.number = v; return p; }
  static PropertyValue String(std::string v) { PropertyValue p; p.kind = Kind::String; p.text = std::move(v); return p; }
  static PropertyValue Data(std::string bytes) { PropertyValue p; p.kind = Kind::Data; p.text = std::move(bytes); return p; }
  static PropertyValue Array() { PropertyValue p; p.kind = Kind::Array; return p; }
  static PropertyValue Dict() { PropertyValue p; p.kind = Kind::Dict; return p; }
  // An unsigned 64-bit integer: a number when a double holds it exactly, else a decimal string.
  static PropertyValue Unsigned(uint64_t v) {
    return v <= (uint64_t{1} << 53) ? Number(static_cast<double>(v)) : String(std::to_string(v));
  }
  static PropertyValue Signed(int64_t v) {
    const int64_t lim = int64_t{1} << 53;
    return (v <= lim && v >= -lim) ? Number(static_cast<double>(v)) : String(std::to_string(v));
  }
  PropertyValue& Set(std::string key, PropertyValue value) {
    entries.emplace_back(std::move(key), std::move(value));
    return entries.back().second;
  }
  const PropertyValue* Find(const std::string& key) const {
    for (const auto& e : entries) if (e.first == key) return &e.second;
    return nullptr;
  }
};

// Something that could not be read, and why. Becomes a Snapshot `limits` entry.
struct LimitRecord {
  std::string subject;  // "accelerator 0000:01:00.0", "pid 123", "thread 456", "nvml"
  std::string field;    // what is missing: "blockedIn", "kernelStack", "utilization", …
  std::string code;     // EPERM, ETIMEDOUT, ENOTSUP, ENOENT, …
  std::string reason;   // what happened, for a person
  std::string hint;     // what to do about it ("" when nothing can be done)
};

struct ServiceStateRecord {
  bool registered = false;
  bool matched = false;
  bool active = false;
};

// One accelerator as the platform shows it. Interpretation (power, utilization,
// recovery, queues) happens in TypeScript (src/map/), shared with the importer.
struct AcceleratorRecord {
  std::string id;          // macOS registry entry id "0x100000478"; Linux PCI address
  std::string name;        // registry entry name; Linux: PCI address or DRM card name
  std::string className;   // IOObjectCopyClass; Linux: the bound driver ("" when none)
  std::vector<std::string> classChain;  // most-derived first … OSObject; Linux: ["pci", "0x030200"]
  std::string location;    // IORegistryEntryGetLocationInPlane; Linux: sysfs path
  std::optional<uint32_t> busyCount;    // IOServiceGetBusyStateAndTime
  std::optional<uint64_t> busyTimeNs;
  std::optional<ServiceStateRecord> serviceState;
  std::optional<uint32_t> retainCount;  // IOObjectGetKernelRetainCount
  // macOS: IORegistryEntryCreateCFProperties (IOPowerManagement read last).
  // Linux: the facts read from sysfs and NVML under documented keys (see native/linux/).
  PropertyValue properties = PropertyValue::Dict();
};

struct AcceleratorSampleRecord {
  std::vector<AcceleratorRecord> accelerators;
  std::vector<LimitRecord> limits;
};

struct BlockedRecord {
  std::string call;     // "futex", "mach_msg2_trap", "syscall_435" when unnamed
  int64_t number = 0;   // syscall number; Mach traps negative
  std::optional<int64_t> fd;
  std::optional<std::string> target;  // readlink of /proc/<pid>/task/<tid>/fd/<fd>
  // Linux: a futex wait whose expected value is the tid of a live thread of the same
  // process: how glibc's pthread_join waits (on the joined thread's tid word).
  std::optional<uint64_t> joining;
  std::optional<uint32_t> futexExpected;  // the value a futex wait expects
  // Linux futex waits: the futex word's address and the command (FUTEX_WAIT 0, FUTEX_WAIT_BITSET 9,
  // FUTEX_LOCK_PI 6, FUTEX_LOCK_PI2 13, FUTEX_WAIT_REQUEUE_PI 11; futex2's futex_wait as 9), less the
  // PRIVATE and CLOCK_REALTIME flags. glibc's mutex sleeps in FUTEX_WAIT expecting 2 (locked, with
  // waiters); its condition variables, semaphores and joins in FUTEX_WAIT_BITSET.
  std::optional<uint64_t> futexAddress;
  std::optional<uint32_t> futexCommand;
};

struct FrameRecord {
  uint64_t pc = 0;
  std::string module;   // image path or "" when unknown (then the offset is not given)
  uint64_t offset = 0;  // macOS: pc - image load address; Linux: the pc's address in the ELF file
  std::optional<std::string> symbol;  // Linux: the function, from the module's symbol tables
  std::optional<uint64_t> symbolOffset;
};

enum class ThreadState { Running, Runnable, Sleeping, Waiting, Uninterruptible, Stopped, Halted, Zombie, Unknown };

struct ThreadRecord {
  uint64_t tid = 0;
  std::optional<std::string> name;
  ThreadState state = ThreadState::Unknown;
  uint64_t userNs = 0;
  uint64_t systemNs = 0;
  std::optional<uint64_t> cpuNs;  // Linux schedstat: ns on CPU, the fine progress measure
  std::optional<uint64_t> runDelayNs;  // Linux schedstat: ns runnable but waiting for a CPU
  // Linux: ns since the thread last ran, from its sched file's se.exec_start and the
  // sampling thread's own at the same moment (procfs_thread.h ReadSchedNow); 0 for R.
  std::optional<uint64_t> offCpuNs;
  std::optional<uint64_t> voluntarySwitches;
  std::optional<uint64_t> involuntarySwitches;
  std::optional<int32_t> suspendCount;
  std::optional<BlockedRecord> blockedIn;
  std::optional<std::string> wchan;
  std::optional<uint64_t> pc;
  std::optional<std::vector<FrameRecord>> stack;
  std::optional<std::vector<std::string>> kernelStack;
  bool kernelThread = false;  // Linux PF_KTHREAD: no user space, so no blockedIn
  uint64_t ppid = 0;          // Linux: the parent's pid, from stat (the process's ppid; not given per thread)
  std::optional<uint32_t> lastCpu;  // Linux stat field 39, the CPU it last ran on (not given to JS)
};

struct ProcessRecord {
  int32_t pid = 0;
  std::string name;
  uint64_t sampledAtNs = 0;  // monotonic
  // Linux: the syscall table its calls are named from ("x86_64", "i386", "x32", "arm64",
  // "arm32"), or "kernel" for a kernel thread; unset when not read.
  std::optional<std::string> abi;
  std::optional<int32_t> ppid;  // Linux: the parent process (from the main thread's stat)
  std::vector<ThreadRecord> threads;
  std::vector<LimitRecord> limits;
};

struct HostRecord {
  std::string platform;  // "darwin" | "linux"
  std::string arch;      // "arm64" | "x64"
  std::string osRelease;
  std::optional<std::string> model;  // hw.model on macOS; DMI product name on Linux
};

}  // namespace iokitsnap
