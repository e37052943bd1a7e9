// Node-API surface only: the exported functions and their argument checks. The
// work runs on probe threads (probe.h); its records become JS in to_js.h.
#include <napi.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "../backend.h"
#include "../blocking.h"
#include "../darwin_decode.h"
#include "probe.h"
#include "to_js.h"
#ifdef __linux__
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../linux/host_scan.h"
#include "../linux/unix_peers.h"
#include "elf_internals_linux.h"
#include "../linux/memory.h"
#endif

namespace iokitsnap {
namespace {

// ---------------------------------------------------------------- per-environment state

struct AddonData {
  Napi::FunctionReference samplerConstructor;
  Napi::FunctionReference hostScannerConstructor;
  JsBuilders builders;
  std::shared_ptr<AcceleratorContext> acceleratorContext = NewAcceleratorContext();
  // The fds every thread sampler of this environment may keep between samples, together
  // (see fd_budget.h); a sampler holds it too, so it may outlive the environment.
  std::shared_ptr<FdBudget> fdBudget = std::make_shared<FdBudget>();
};

AddonData& DataOf(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// ---------------------------------------------------------------- errors

[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& message) {
  throw MakeError(env, "EINVAL", message);
}

// ---------------------------------------------------------------- argument parsing

Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return Napi::Object::New(info.Env());
  if (!info[index].IsObject()) ThrowInvalid(info.Env(), "options must be an object");
  return info[index].As<Napi::Object>();
}

std::optional<std::string> StringOption(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  if (!value.IsString()) ThrowInvalid(options.Env(), std::string("option '") + key + "' must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::optional<bool> BoolOption(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  if (!value.IsBoolean()) ThrowInvalid(options.Env(), std::string("option '") + key + "' must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::optional<uint32_t> UintOption(Napi::Object options, const char* key) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(number >= 0 && number <= 4294967295.0) || number != static_cast<double>(static_cast<uint64_t>(number)))
    ThrowInvalid(options.Env(), std::string("option '") + key + "' must be a non-negative integer");
  return static_cast<uint32_t>(number);
}

// Thread ids to sample: up to kMaxTids positive integers (doubles that hold them exactly).
constexpr uint32_t kMaxTids = 4096;
std::optional<std::vector<uint64_t>> TidsOption(Napi::Object options) {
  Napi::Value value = options.Get("tids");
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  const std::string expected = "option 'tids' must be an array of at most " + std::to_string(kMaxTids) + " positive integer thread ids";
  if (!value.IsArray()) ThrowInvalid(options.Env(), expected);
  Napi::Array array = value.As<Napi::Array>();
  if (array.Length() > kMaxTids) ThrowInvalid(options.Env(), expected);
  std::vector<uint64_t> tids;
  tids.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    const double number = item.IsNumber() ? item.As<Napi::Number>().DoubleValue() : -1;
    if (!(number >= 1 && number <= 9007199254740991.0) || number != static_cast<double>(static_cast<uint64_t>(number)))
      ThrowInvalid(options.Env(), expected);
    tids.push_back(static_cast<uint64_t>(number));
  }
  return tids;
}

int32_t PidArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowInvalid(info.Env(), "pid must be a positive integer");
  double pid = info[0].As<Napi::Number>().DoubleValue();
  if (!(pid >= 1 && pid <= 2147483647.0) || pid != static_cast<double>(static_cast<int32_t>(pid)))
    ThrowInvalid(info.Env(), "pid must be a positive integer");
  return static_cast<int32_t>(pid);
}

AcceleratorOptions ParseAcceleratorOptions(Napi::Object options) {
  AcceleratorOptions parsed;
  if (auto v = StringOption(options, "sysRoot")) parsed.sysRoot = *v;
  if (auto v = BoolOption(options, "nvml")) parsed.nvml = *v;
  if (auto v = StringOption(options, "nvmlLibrary")) parsed.nvmlLibrary = *v;
  if (auto v = UintOption(options, "callTimeoutMs")) parsed.callTimeoutMs = *v;
  if (auto v = UintOption(options, "callBudgetMs")) parsed.callBudgetMs = *v;
  return parsed;
}

ThreadOptions ParseThreadOptions(Napi::Object options) {
  ThreadOptions parsed;
  if (auto v = StringOption(options, "detail")) {
    if (*v == "basic") parsed.detail = ThreadDetail::Basic;
    else if (*v == "full") parsed.detail = ThreadDetail::Full;
    else ThrowInvalid(options.Env(), "option 'detail' must be 'basic' or 'full'");
  }
  if (auto v = BoolOption(options, "stacks")) parsed.stacks = *v;
  if (auto v = BoolOption(options, "kernelStacks")) parsed.kernelStacks = *v;
  if (auto v = StringOption(options, "procRoot")) parsed.procRoot = *v;
  if (auto v = UintOption(options, "maxStackDepth")) parsed.maxStackDepth = *v;
  if (auto v = UintOption(options, "maxOpenFiles")) parsed.maxOpenFiles = *v;
  if (auto v = UintOption(options, "stackBudgetMs")) parsed.stackBudgetMs = *v;
  if (auto v = UintOption(options, "callTimeoutMs")) parsed.callTimeoutMs = *v;
  parsed.tids = TidsOption(options);
  return parsed;
}

// ---------------------------------------------------------------- exported functions

Napi::Value SampleAcceleratorsJs(const Napi::CallbackInfo& info) {
  AcceleratorOptions options = ParseAcceleratorOptions(OptionsArg(info, 0));
  return StartProbe<AcceleratorSampleRecord>(
      info.Env(), [options, context = DataOf(info.Env()).acceleratorContext] { return SampleAccelerators(options, context); },
      [](Napi::Env env, AcceleratorSampleRecord& sample) -> Napi::Value { return ToJs(env, sample); });
}

Napi::Value SampleThreadsJs(const Napi::CallbackInfo& info) {
  int32_t pid = PidArg(info);
  ThreadOptions options = ParseThreadOptions(OptionsArg(info, 1));
  return StartProbe<ProcessRecord>(
      info.Env(), [pid, options] { return SampleThreads(pid, options); },
      [](Napi::Env env, ProcessRecord& record) -> Napi::Value { return ToJs(env, record, DataOf(env).builders); });
}

Napi::Value ReadHostJs(const Napi::CallbackInfo& info) {
  return StartProbe<HostRecord>(
      info.Env(), [] { return ReadHost(); },
      [](Napi::Env env, HostRecord& host) -> Napi::Value { return ToJs(env, host); });
}

Napi::Value MonotonicNsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(MonotonicNs()));
}

// readMemory(pid, ranges): src/runtimes/memory.ts checks and splits; this reads
// (native/linux/memory.h). Linux only: macOS would need task_for_pid, which is not
// granted to an unsigned tool; there it is ENOTSUP.
Napi::Value ReadMemoryJs(const Napi::CallbackInfo& info) {
#ifdef __linux__
  int32_t pid = PidArg(info);
  // The ranges as one BigUint64Array of (address, length) pairs: 10,000 ranges as JS objects
  // cost more to read through Node-API than the read itself.
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array)
    ThrowInvalid(info.Env(), "ranges must be a BigUint64Array of (address, length) pairs");
  Napi::TypedArrayOf<uint64_t> pairs = info[1].As<Napi::TypedArrayOf<uint64_t>>();
  if (pairs.ElementLength() % 2 != 0) ThrowInvalid(info.Env(), "ranges must hold (address, length) pairs");
  if (pairs.ElementLength() / 2 > memory::kMaxRanges)
    ThrowInvalid(info.Env(), "at most " + std::to_string(memory::kMaxRanges) + " ranges per call");
  std::vector<memory::Range> ranges(pairs.ElementLength() / 2);
  for (size_t i = 0; i < ranges.size(); ++i) {
    ranges[i].address = pairs[2 * i];
    ranges[i].length = pairs[2 * i + 1];
  }
  return StartProbe<memory::ReadRecord>(
      info.Env(), [pid, ranges = std::move(ranges)] { return memory::ReadMemory(pid, ranges); },
      [](Napi::Env env, memory::ReadRecord& record) -> Napi::Value {
        Napi::Object result = Napi::Object::New(env);
        result.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, record.bytes.data(), record.bytes.size()));
        std::vector<uint8_t> read(record.read.begin(), record.read.end());
        result.Set("read", Napi::Buffer<uint8_t>::Copy(env, read.data(), read.size()));
        return result;
      });
#else
  throw MakeError(info.Env(), "ENOTSUP",
                  "reading another process's memory is implemented on Linux only (process_vm_readv); on this platform "
                  "Go goroutines cannot be read");
#endif
}

// ---------------------------------------------------------------- ThreadSampler

// Shared between the JS object and the probe threads that use it, so a close()
// or a GC during an in-flight (or stuck) sample never frees what a thread reads.
struct SamplerBox {
  std::mutex mutex;
  std::unique_ptr<ThreadSampler> sampler;
  bool busy = false;    // a sample is in flight (guarded by mutex)
  bool closed = false;  // close() was asked for (guarded by mutex)
};

class ThreadSamplerWrap : public Napi::ObjectWrap<ThreadSamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ThreadSampler", {
        InstanceMethod<&ThreadSamplerWrap::Sample>("sample"),
        InstanceMethod<&ThreadSamplerWrap::Close>("close"),
        InstanceMethod<&ThreadSamplerWrap::Release>("release"),
    });
  }

  explicit ThreadSamplerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThreadSamplerWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw MakeError(info.Env(), "EINVAL", "ThreadSampler is created by openThreadSampler(pid, options)");
    box_ = *info[0].As<Napi::External<std::shared_ptr<SamplerBox>>>().Data();
  }

  ~ThreadSamplerWrap() override { CloseBox(box_); }

  static void CloseBox(const std::shared_ptr<SamplerBox>& box) {
    if (!box) return;
    std::lock_guard<std::mutex> lock(box->mutex);
    box->closed = true;
    if (!box->busy && box->sampler) {
      box->sampler->Close();
      box->sampler.reset();
    }
  }

 private:
  Napi::Value Sample(const Napi::CallbackInfo& info) {
    {
      std::lock_guard<std::mutex> lock(box_->mutex);
      if (box_->closed) throw MakeError(info.Env(), "EINVAL", "this thread sampler is closed; create a new one");
      // createThreadSampler (src/sample.ts) queues its samples: only a caller of the raw
      // binding gets here, or one whose last sample passed its deadline.
      if (box_->busy)
        throw MakeError(info.Env(), "EAGAIN",
                        "a sample of this sampler is still in flight, and one runs at a time: wait for it before "
                        "taking the next. If it passed its deadline, the target or the kernel may be hung");
      box_->busy = true;
    }
    std::shared_ptr<SamplerBox> box = box_;
    return StartProbe<ProcessRecord>(
        info.Env(),
        [box]() -> ProcessRecord {
          struct Release {  // clears busy, and honours a close() that came in the meantime
            SamplerBox& box;
            ~Release() {
              std::lock_guard<std::mutex> lock(box.mutex);
              box.busy = false;
              if (box.closed && box.sampler) {
                box.sampler->Close();
                box.sampler.reset();
              }
            }
          } release{*box};
          ThreadSampler* sampler;
          {
            std::lock_guard<std::mutex> lock(box->mutex);
            sampler = box->sampler.get();
          }
          if (sampler == nullptr) throw SnapError("EINVAL", "this thread sampler is closed; create a new one");
          return sampler->Sample();
        },
        [](Napi::Env env, ProcessRecord& record) -> Napi::Value { return ToJs(env, record, DataOf(env).builders); });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseBox(box_);
    return info.Env().Undefined();
  }

  // Gives back the fds it keeps (the JS layer calls it on a sampler left idle); it samples
  // on, opening them again. A sample in flight keeps them: that sampler is not idle.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(box_->mutex);
    if (!box_->busy && box_->sampler) box_->sampler->ReleaseHeld();
    return info.Env().Undefined();
  }

  std::shared_ptr<SamplerBox> box_;
};

Napi::Value OpenThreadSamplerJs(const Napi::CallbackInfo& info) {
  int32_t pid = PidArg(info);
  ThreadOptions options = ParseThreadOptions(OptionsArg(info, 1));
  options.fdBudget = DataOf(info.Env()).fdBudget;
  return StartProbe<std::shared_ptr<SamplerBox>>(
      info.Env(),
      [pid, options] {
        auto box = std::make_shared<SamplerBox>();
        box->sampler = OpenThreadSampler(pid, options);
        return box;
      },
      [](Napi::Env env, std::shared_ptr<SamplerBox>& box) -> Napi::Value {
        // The External lives only for the constructor call; the wrap copies the shared_ptr.
        auto external = Napi::External<std::shared_ptr<SamplerBox>>::New(env, &box);
        return DataOf(env).samplerConstructor.New({external});
      });
}


#ifdef __linux__
// ---------------------------------------------------------------- HostScanner (Linux)

// The cheap pass of a whole-host scan (native/linux/host_scan.h). Shared with the probe
// threads, as a SamplerBox is: a close() or a GC during a pass never frees what it reads.
struct HostScannerBox {
  std::mutex mutex;
  std::unique_ptr<hostscan::Scanner> scanner;
  bool busy = false;
  bool closed = false;
};

std::vector<int32_t> PidsArg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    ThrowInvalid(info.Env(), std::string(what) + " must be an Int32Array of pids");
  Napi::Int32Array array = info[index].As<Napi::Int32Array>();
  std::vector<int32_t> pids(array.ElementLength());
  for (size_t i = 0; i < pids.size(); ++i) {
    if (array[i] < 1) ThrowInvalid(info.Env(), std::string(what) + " must hold positive pids");
    pids[i] = array[i];
  }
  return pids;
}

Napi::Array TidsToJs(Napi::Env env, const std::vector<uint64_t>& tids) {
  Napi::Array array = Napi::Array::New(env, tids.size());
  for (uint32_t i = 0; i < tids.size(); ++i) array.Set(i, Napi::Number::New(env, static_cast<double>(tids[i])));
  return array;
}

Napi::Object PassToJs(Napi::Env env, const hostscan::PassRecord& pass) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("startedNs", Napi::Number::New(env, static_cast<double>(pass.startedNs)));
  result.Set("endedNs", Napi::Number::New(env, static_cast<double>(pass.endedNs)));
  result.Set("processCount", Napi::Number::New(env, pass.processCount));
  result.Set("threadCount", Napi::Number::New(env, pass.threadCount));
  result.Set("threadReads", Napi::Number::New(env, pass.threadReads));
  result.Set("unchangedProcesses", Napi::Number::New(env, pass.unchangedProcesses));
  result.Set("keyReads", Napi::Number::New(env, pass.keyReads));
  result.Set("oneShotReads", Napi::Number::New(env, pass.oneShotReads));
  result.Set("keptFds", Napi::Number::New(env, pass.keptFds));
  Napi::Array processes = Napi::Array::New(env, pass.processes.size());
  for (uint32_t i = 0; i < pass.processes.size(); ++i) {
    const hostscan::ProcessPass& p = pass.processes[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("pid", Napi::Number::New(env, p.pid));
    o.Set("status", p.status == hostscan::ProcessPass::Status::Ok     ? "ok"
                    : p.status == hostscan::ProcessPass::Status::Gone ? "gone"
                                                                      : "failed");
    if (p.status == hostscan::ProcessPass::Status::Failed) {
      o.Set("code", p.code);
      o.Set("reason", p.reason);
    }
    o.Set("fresh", p.fresh);
    if (p.fresh) {
      Napi::Object id = Napi::Object::New(env);
      id.Set("name", p.identity.name);
      id.Set("state", StateName(procfs::StateFromLetter(p.identity.stateLetter)));
      id.Set("ppid", Napi::Number::New(env, static_cast<double>(p.identity.ppid)));
      id.Set("uid", p.identity.uid < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(p.identity.uid)));
      id.Set("kernel", p.identity.kernel);
      id.Set("startTicks", Napi::Number::New(env, static_cast<double>(p.identity.startTicks)));
      o.Set("identity", id);
    }
    o.Set("threads", Napi::Number::New(env, p.threads));
    o.Set("still", Napi::Number::New(env, p.still));
    o.Set("rewaited", Napi::Number::New(env, p.rewaited));
    o.Set("moved", Napi::Number::New(env, p.moved));
    o.Set("settled", Napi::Number::New(env, p.settled));
    o.Set("settledRewaited", Napi::Number::New(env, p.settledRewaited));
    o.Set("candidates", TidsToJs(env, p.candidates));
    o.Set("newThreads", TidsToJs(env, p.newThreads));
    o.Set("tids", TidsToJs(env, p.tids));
    processes.Set(i, o);
  }
  result.Set("processes", processes);
  result.Set("limits", ToJs(env, pass.limits));
  return result;
}

class HostScannerWrap : public Napi::ObjectWrap<HostScannerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "HostScanner", {
        InstanceMethod<&HostScannerWrap::Scan>("scan"),
        InstanceMethod<&HostScannerWrap::Settle>("settle"),
        InstanceMethod<&HostScannerWrap::Reading>("reading"),
        InstanceMethod<&HostScannerWrap::Close>("close"),
    });
  }

  explicit HostScannerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HostScannerWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw MakeError(info.Env(), "EINVAL", "HostScanner is created by openHostScanner(options)");
    box_ = *info[0].As<Napi::External<std::shared_ptr<HostScannerBox>>>().Data();
  }

  ~HostScannerWrap() override { CloseBox(box_); }

  static void CloseBox(const std::shared_ptr<HostScannerBox>& box) {
    if (!box) return;
    std::lock_guard<std::mutex> lock(box->mutex);
    box->closed = true;
    if (!box->busy && box->scanner) box->scanner.reset();
  }

 private:
  // scan(pids: Int32Array, detail: Int32Array): one cheap pass (a probe of its own).
  Napi::Value Scan(const Napi::CallbackInfo& info) {
    std::vector<int32_t> pids = PidsArg(info, 0, "pids");
    std::vector<int32_t> detail = PidsArg(info, 1, "detail");
    {
      std::lock_guard<std::mutex> lock(box_->mutex);
      if (box_->closed) throw MakeError(info.Env(), "EINVAL", "this host scanner is closed; open a new one");
      if (box_->busy)
        throw MakeError(info.Env(), "EAGAIN",
                        "a pass of this host scanner is still in flight, and one runs at a time. If it passed its "
                        "deadline, reading() says which process it is stuck on");
      box_->busy = true;
    }
    std::shared_ptr<HostScannerBox> box = box_;
    return StartProbe<hostscan::PassRecord>(
        info.Env(),
        [box, pids = std::move(pids), detail = std::move(detail)]() -> hostscan::PassRecord {
          struct Release {  // clears busy, and honours a close() that came in the meantime
            HostScannerBox& box;
            ~Release() {
              std::lock_guard<std::mutex> lock(box.mutex);
              box.busy = false;
              if (box.closed) box.scanner.reset();
            }
          } release{*box};
          hostscan::Scanner* scanner;
          {
            std::lock_guard<std::mutex> lock(box->mutex);
            scanner = box->scanner.get();
          }
          if (scanner == nullptr) throw SnapError("EINVAL", "this host scanner is closed; open a new one");
          return scanner->Pass(pids, detail);
        },
        [](Napi::Env env, hostscan::PassRecord& pass) -> Napi::Value { return PassToJs(env, pass); });
  }

  // settle(requests: Float64Array): (pid, tid, call number or -1, first argument or -1) each;
  // tid 0 gives every thread of pid again as a candidate. Applied at the next pass.
  Napi::Value Settle(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      ThrowInvalid(env, "settle(requests): expected a Float64Array of (pid, tid, number, arg0) quadruples");
    Napi::Float64Array array = info[0].As<Napi::Float64Array>();
    if (array.ElementLength() % 4 != 0) ThrowInvalid(env, "settle(requests): expected (pid, tid, number, arg0) quadruples");
    std::vector<hostscan::SettleRequest> requests;
    requests.reserve(array.ElementLength() / 4);
    for (size_t i = 0; i < array.ElementLength(); i += 4) {
      const double pid = array[i], tid = array[i + 1], number = array[i + 2], arg0 = array[i + 3];
      const bool whole = [](double v) { return v >= 0 && v <= 9007199254740991.0 && v == static_cast<double>(static_cast<uint64_t>(v)); }(tid) &&
                         pid >= 1 && pid <= 2147483647.0 && pid == static_cast<double>(static_cast<int32_t>(pid)) &&
                         number >= -1 && number == static_cast<double>(static_cast<int64_t>(number)) && arg0 >= -1 &&
                         arg0 <= 18446744073709549568.0;
      if (!whole) ThrowInvalid(env, "settle(requests): pid, tid, number and arg0 must be integers (number and arg0 -1 for none)");
      hostscan::SettleRequest request;
      request.pid = static_cast<int32_t>(pid);
      request.tid = static_cast<uint64_t>(tid);
      request.number = static_cast<int64_t>(number);
      request.hasArg0 = arg0 >= 0;
      request.arg0 = arg0 >= 0 ? static_cast<uint64_t>(arg0) : 0;
      requests.push_back(request);
    }
    std::lock_guard<std::mutex> lock(box_->mutex);
    if (box_->scanner) box_->scanner->Settle(std::move(requests));
    return env.Undefined();
  }

  // reading(): { pid, file } the pass in flight reads now, or null.
  Napi::Value Reading(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(box_->mutex);
    if (!box_->scanner || box_->scanner->ReadingPid() == 0) return env.Null();
    Napi::Object reading = Napi::Object::New(env);
    reading.Set("pid", Napi::Number::New(env, box_->scanner->ReadingPid()));
    reading.Set("file", box_->scanner->ReadingFile());
    return reading;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseBox(box_);
    return info.Env().Undefined();
  }

  std::shared_ptr<HostScannerBox> box_;
};

// openHostScanner(options): synchronous (it opens nothing until its first pass).
Napi::Value OpenHostScannerJs(const Napi::CallbackInfo& info) {
  Napi::Object options = OptionsArg(info, 0);
  hostscan::ScanOptions parsed;
  if (auto v = StringOption(options, "procRoot")) parsed.procRoot = *v;
  parsed.fdBudget = DataOf(info.Env()).fdBudget;
  auto box = std::make_shared<HostScannerBox>();
  box->scanner = std::make_unique<hostscan::Scanner>(std::move(parsed));
  auto external = Napi::External<std::shared_ptr<HostScannerBox>>::New(info.Env(), &box);
  return DataOf(info.Env()).hostScannerConstructor.New({external});
}

// readLabels(pids: Int32Array, options): each process's cgroup file and open device nodes.
Napi::Value ReadLabelsJs(const Napi::CallbackInfo& info) {
  std::vector<int32_t> pids = PidsArg(info, 0, "pids");
  Napi::Object options = OptionsArg(info, 1);
  std::string procRoot = StringOption(options, "procRoot").value_or("/proc");
  const uint32_t maxFds = UintOption(options, "maxFds").value_or(4096);
  return StartProbe<std::vector<hostscan::LabelsRecord>>(
      info.Env(), [pids = std::move(pids), procRoot, maxFds] { return hostscan::ReadLabels(pids, procRoot, maxFds); },
      [](Napi::Env env, std::vector<hostscan::LabelsRecord>& labels) -> Napi::Value {
        Napi::Array result = Napi::Array::New(env, labels.size());
        for (uint32_t i = 0; i < labels.size(); ++i) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("pid", Napi::Number::New(env, labels[i].pid));
          o.Set("found", labels[i].found);
          o.Set("cgroup", labels[i].cgroup);
          Napi::Array devices = Napi::Array::New(env, labels[i].devices.size());
          for (uint32_t j = 0; j < labels[i].devices.size(); ++j) devices.Set(j, labels[i].devices[j]);
          o.Set("devices", devices);
          o.Set("devicesTruncated", labels[i].devicesTruncated);
          result.Set(i, o);
        }
        return result;
      });
}
#endif

// ---------------------------------------------------------------- internals (for unit tests)

OsKind OsArg(Napi::Env env, Napi::Value value) {
  std::string os = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (os == "linux") return OsKind::Linux;
  if (os == "darwin") return OsKind::Darwin;
  ThrowInvalid(env, "os must be 'linux' or 'darwin'");
}

ArchKind ArchArg(Napi::Env env, Napi::Value value) {
  std::string arch = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (arch == "x64" || arch == "x86_64") return ArchKind::X86_64;
  if (arch == "arm64") return ArchKind::Arm64;
  ThrowInvalid(env, "arch must be 'x64' or 'arm64'");
}

LinuxAbi LinuxAbiArg(Napi::Env env, Napi::Value value) {
  const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  for (LinuxAbi abi : {LinuxAbi::X86_64, LinuxAbi::I386, LinuxAbi::X32, LinuxAbi::Arm64, LinuxAbi::Arm32})
    if (name == LinuxAbiName(abi)) return abi;
  ThrowInvalid(env, "abi must be 'x86_64', 'i386', 'x32', 'arm64' or 'arm32'");
}

double NumberArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsNumber()) ThrowInvalid(info.Env(), "expected a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

uint64_t BigUintArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() > index && info[index].IsBigInt()) {
    bool lossless = true;
    return info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return static_cast<uint64_t>(NumberArg(info, index));
}

Napi::Object Internals(Napi::Env env) {
  Napi::Object internals = Napi::Object::New(env);
  internals.Set("callName", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const char* name = CallName(OsArg(info.Env(), info[0]), ArchArg(info.Env(), info[1]),
                                static_cast<int64_t>(NumberArg(info, 2)));
    return name ? Napi::String::New(info.Env(), name) : info.Env().Null();
  }));
  internals.Set("callNameOrNumber", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), CallNameOrNumber(OsArg(info.Env(), info[0]), ArchArg(info.Env(), info[1]),
                                                          static_cast<int64_t>(NumberArg(info, 2))));
  }));
  internals.Set("linuxCallName", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    const char* name = LinuxCallName(LinuxAbiArg(info.Env(), info[0]), static_cast<int64_t>(NumberArg(info, 1)));
    return name ? Napi::String::New(info.Env(), name) : info.Env().Null();
  }));
  internals.Set("linuxCallNameOrNumber", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), LinuxCallNameOrNumber(LinuxAbiArg(info.Env(), info[0]),
                                                               static_cast<int64_t>(NumberArg(info, 1))));
  }));
  internals.Set("firstArgIsFd", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    if (info.Length() < 2 || !info[1].IsString()) ThrowInvalid(info.Env(), "expected (os, call)");
    return Napi::Boolean::New(info.Env(), FirstArgIsFd(OsArg(info.Env(), info[0]), info[1].As<Napi::String>().Utf8Value()));
  }));
  internals.Set("darwinCallNumberFromRegister", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto number = DarwinCallNumberFromRegister(ArchArg(info.Env(), info[0]), BigUintArg(info, 1));
    return number ? Napi::Number::New(info.Env(), static_cast<double>(*number)) : info.Env().Null();
  }));
  internals.Set("stripPointerAuth", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::BigInt::New(info.Env(), StripPointerAuth(BigUintArg(info, 0)));
  }));
  internals.Set("threadStateFromMach", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), StateName(ThreadStateFromMach(static_cast<int32_t>(NumberArg(info, 0)),
                                                                      static_cast<int32_t>(NumberArg(info, 1)))));
  }));
  internals.Set("timeValueToNs", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(TimeValueToNs(static_cast<int64_t>(NumberArg(info, 0)),
                                                                          static_cast<int64_t>(NumberArg(info, 1)))));
  }));
#ifdef __linux__
  AddElfInternals(env, internals);  // the ELF reader behind Linux user stacks
#endif
  return internals;
}

#ifdef __linux__
// unixSocketPeers(inodes: number[]): number[] — the peer inode of each (0: none known).
Napi::Value UnixSocketPeersJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) ThrowInvalid(env, "unixSocketPeers(inodes): expected an array of socket inodes");
  Napi::Array given = info[0].As<Napi::Array>();
  std::vector<uint64_t> inodes;
  for (uint32_t i = 0; i < given.Length(); ++i) {
    Napi::Value value = given.Get(i);
    if (!value.IsNumber()) ThrowInvalid(env, "unixSocketPeers(inodes): every inode must be a number");
    inodes.push_back(static_cast<uint64_t>(value.As<Napi::Number>().DoubleValue()));
  }
  std::unordered_map<uint64_t, uint64_t> peers;
  try {
    peers = linux_net::UnixSocketPeers(std::unordered_set<uint64_t>(inodes.begin(), inodes.end()));
  } catch (const SnapError& error) {
    throw MakeError(env, error.code(), error.what(), error.syscall(), error.kern());
  }
  Napi::Array result = Napi::Array::New(env, inodes.size());
  for (uint32_t i = 0; i < inodes.size(); ++i) {
    auto it = peers.find(inodes[i]);
    result.Set(i, Napi::Number::New(env, it == peers.end() ? 0 : static_cast<double>(it->second)));
  }
  return result;
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->samplerConstructor = Napi::Persistent(ThreadSamplerWrap::Define(env));
#ifdef __linux__
  data->hostScannerConstructor = Napi::Persistent(HostScannerWrap::Define(env));
#endif
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment ends

  exports.Set("sampleAccelerators", Napi::Function::New(env, SampleAcceleratorsJs, "sampleAccelerators"));
  exports.Set("sampleThreads", Napi::Function::New(env, SampleThreadsJs, "sampleThreads"));
  exports.Set("openThreadSampler", Napi::Function::New(env, OpenThreadSamplerJs, "openThreadSampler"));
  exports.Set("readMemory", Napi::Function::New(env, ReadMemoryJs, "readMemory"));
  exports.Set("readHost", Napi::Function::New(env, ReadHostJs, "readHost"));
  exports.Set("monotonicNs", Napi::Function::New(env, MonotonicNsJs, "monotonicNs"));
  exports.Set("internals", Internals(env));
#ifdef __linux__
  // Synchronous: one netlink dump of the kernel's unix socket table, which touches no process.
  exports.Set("unixSocketPeers", Napi::Function::New(env, UnixSocketPeersJs, "unixSocketPeers"));
  // The cheap pass of a whole-host scan, and the labels of the processes it finds.
  exports.Set("openHostScanner", Napi::Function::New(env, OpenHostScannerJs, "openHostScanner"));
  exports.Set("readLabels", Napi::Function::New(env, ReadLabelsJs, "readLabels"));
#endif
#if defined(__APPLE__)
  exports.Set("platform", "darwin");
#elif defined(__linux__)
  exports.Set("platform", "linux");
#else
  exports.Set("platform", "unsupported");
#endif
  return exports;
}

}  // namespace
}  // namespace iokitsnap

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return iokitsnap::Init(env, exports); }

NODE_API_MODULE(iokit_snap, InitModule)
