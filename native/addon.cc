// Node-API surface only: argument checks, probes off the JS thread, records → JS.
//
// Why not Napi::AsyncWorker: the libuv pool has four threads shared with every
// fs call of the host process. A probe stuck in a wedged driver (IOKit power
// work loop, NVML on a lost GPU, /proc of a D-state task) would hold a pool
// thread forever, and four of them would stall all file I/O of the program that
// wanted to diagnose the hang. Each probe therefore runs on its own detached
// thread and settles its promise through an unref'd thread-safe function; the
// deadline is enforced in src/native.ts, and a probe that never returns is
// abandoned instead of awaited.
#include <napi.h>

#include <atomic>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "backend.h"
#include "blocking.h"
#include "darwin_decode.h"

namespace iokitsnap {
namespace {

// ---------------------------------------------------------------- per-environment state

struct AddonData {
  Napi::FunctionReference samplerConstructor;
  Napi::FunctionReference buildThreads;  // compiled on first use, see ThreadsToJs
  std::shared_ptr<AcceleratorContext> acceleratorContext = NewAcceleratorContext();
};

AddonData& DataOf(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// ---------------------------------------------------------------- errors

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      const std::string& syscall = "", int64_t kern = 0) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  if (!syscall.empty()) error.Set("syscall", Napi::String::New(env, syscall));
  if (kern != 0) error.Set("kern", Napi::Number::New(env, static_cast<double>(kern)));
  return error;
}

[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& message) {
  throw MakeError(env, "EINVAL", message);
}

// ---------------------------------------------------------------- records → JS

std::string Base64(const std::string& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63]; out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];  out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63]; out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Napi::Value ToJs(Napi::Env env, const PropertyValue& value) {
  switch (value.kind) {
    case PropertyValue::Kind::Null: return env.Null();
    case PropertyValue::Kind::Bool: return Napi::Boolean::New(env, value.boolean);
    case PropertyValue::Kind::Number: return Napi::Number::New(env, value.number);
    case PropertyValue::Kind::String: return Napi::String::New(env, value.text);
    case PropertyValue::Kind::Data: {
      Napi::Object data = Napi::Object::New(env);
      data.Set("$data", Napi::String::New(env, Base64(value.text)));
      return data;
    }
    case PropertyValue::Kind::Array: {
      Napi::Array array = Napi::Array::New(env, value.items.size());
      for (uint32_t i = 0; i < value.items.size(); ++i) array.Set(i, ToJs(env, value.items[i]));
      return array;
    }
    case PropertyValue::Kind::Dict: {
      Napi::Object object = Napi::Object::New(env);
      for (const auto& [key, item] : value.entries) object.Set(key, ToJs(env, item));
      return object;
    }
  }
  return env.Null();
}

template <typename T>
Napi::Value Optional(Napi::Env env, const std::optional<T>& value) {
  if (!value) return env.Null();
  if constexpr (std::is_same_v<T, std::string>) return Napi::String::New(env, *value);
  else return Napi::Number::New(env, static_cast<double>(*value));
}

Napi::Array ToJs(Napi::Env env, const std::vector<LimitRecord>& limits) {
  Napi::Array array = Napi::Array::New(env, limits.size());
  for (uint32_t i = 0; i < limits.size(); ++i) {
    const LimitRecord& limit = limits[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("subject", limit.subject);
    object.Set("field", limit.field);
    object.Set("code", limit.code);
    object.Set("reason", limit.reason);
    if (!limit.hint.empty()) object.Set("hint", limit.hint);
    array.Set(i, object);
  }
  return array;
}

Napi::Object ToJs(Napi::Env env, const AcceleratorRecord& record) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("id", record.id);
  object.Set("name", record.name);
  object.Set("className", record.className);
  Napi::Array chain = Napi::Array::New(env, record.classChain.size());
  for (uint32_t i = 0; i < record.classChain.size(); ++i) chain.Set(i, record.classChain[i]);
  object.Set("classChain", chain);
  object.Set("location", record.location);
  object.Set("busyCount", Optional(env, record.busyCount));
  object.Set("busyTimeNs", Optional(env, record.busyTimeNs));
  if (record.serviceState) {
    Napi::Object state = Napi::Object::New(env);
    state.Set("registered", record.serviceState->registered);
    state.Set("matched", record.serviceState->matched);
    state.Set("active", record.serviceState->active);
    object.Set("serviceState", state);
  } else {
    object.Set("serviceState", env.Null());
  }
  object.Set("retainCount", Optional(env, record.retainCount));
  object.Set("properties", ToJs(env, record.properties));
  return object;
}

const char* StateName(ThreadState state) {
  switch (state) {
    case ThreadState::Running: return "running";
    case ThreadState::Runnable: return "runnable";
    case ThreadState::Sleeping: return "sleeping";
    case ThreadState::Waiting: return "waiting";
    case ThreadState::Uninterruptible: return "uninterruptible";
    case ThreadState::Stopped: return "stopped";
    case ThreadState::Halted: return "halted";
    case ThreadState::Zombie: return "zombie";
    case ThreadState::Unknown: return "unknown";
  }
  return "unknown";
}

// Thread records go to JS in bulk. Built property by property through
// Node-API, a 1,000-thread sample costs ~4 µs a thread (every Set crosses the
// API and internalizes its key): more than reading the threads from procfs. So
// the records are packed into typed arrays plus one string of the distinct
// texts, and a small JS function, compiled once per environment, builds the
// objects at object-literal speed. Numbers go through double exactly as a
// Napi::Number would; NaN marks "absent" (no real field is NaN).
constexpr uint32_t kNumberStride = 13;  // tid state userNs systemNs cpuNs voluntary involuntary suspendCount callNumber fd pc joining runDelayNs
constexpr uint32_t kRefStride = 6;      // name wchan call target (string index, -1: none) kernelFrames userFrames (-1: none)

constexpr char kBuildThreadsSource[] = R"JS((function (states) {
  'use strict';
  const present = (x) => x === x; // not NaN
  return function buildThreads(text, numbers, refs, kernelFrames, userFrames, userModules) {
    const strings = text.split('\0');
    const count = refs.length / 6;
    const threads = new Array(count);
    let kernelAt = 0;
    let userAt = 0;
    for (let i = 0; i < count; i++) {
      const n = i * 13;
      const r = i * 6;
      const thread = {
        tid: numbers[n],
        name: refs[r] < 0 ? null : strings[refs[r]],
        state: states[numbers[n + 1]],
        userNs: numbers[n + 2],
        systemNs: numbers[n + 3],
      };
      if (present(numbers[n + 4])) thread.cpuNs = numbers[n + 4];
      if (present(numbers[n + 12])) thread.runDelayNs = numbers[n + 12];
      thread.contextSwitches = present(numbers[n + 5]) ? { voluntary: numbers[n + 5], involuntary: numbers[n + 6] } : null;
      thread.suspendCount = present(numbers[n + 7]) ? numbers[n + 7] : null;
      if (present(numbers[n + 8])) {
        const blocked = { call: strings[refs[r + 2]], number: numbers[n + 8] };
        if (present(numbers[n + 9])) blocked.fd = numbers[n + 9];
        if (refs[r + 3] >= 0) blocked.target = strings[refs[r + 3]];
        if (present(numbers[n + 11])) blocked.joining = numbers[n + 11];
        thread.blockedIn = blocked;
      } else {
        thread.blockedIn = null;
      }
      if (refs[r + 1] >= 0) thread.wchan = strings[refs[r + 1]];
      if (present(numbers[n + 10])) thread.pc = numbers[n + 10];
      if (refs[r + 5] >= 0) {
        const frames = new Array(refs[r + 5]);
        for (let f = 0; f < frames.length; f++, userAt++) {
          const m = userModules[userAt];
          frames[f] = { pc: userFrames[userAt * 2], module: m < 0 ? null : strings[m], offset: userFrames[userAt * 2 + 1] };
        }
        thread.stack = frames;
      }
      if (refs[r + 4] >= 0) {
        const lines = new Array(refs[r + 4]);
        for (let f = 0; f < lines.length; f++) lines[f] = strings[kernelFrames[kernelAt++]];
        thread.kernelStack = lines;
      }
      threads[i] = thread;
    }
    return threads;
  };
}))JS";

// The distinct texts of a sample, '\0'-separated (no field holds a NUL; one
// that did would have it replaced so the split stays aligned).
class StringTable {
 public:
  int32_t Add(const std::string& text) {
    auto [it, added] = index_.try_emplace(std::string_view(text), static_cast<int32_t>(index_.size()));
    if (added) {
      if (it->second != 0) joined_ += '\0';
      const size_t at = joined_.size();
      joined_ += text;
      if (text.find('\0') != std::string::npos)
        for (size_t i = at; i < joined_.size(); ++i)
          if (joined_[i] == '\0') joined_[i] = '?';
    }
    return it->second;
  }
  template <typename T>
  int32_t Add(const std::optional<T>& text) { return text ? Add(*text) : -1; }
  const std::string& joined() const { return joined_; }

 private:
  std::unordered_map<std::string_view, int32_t> index_;  // views into the records, alive while packing
  std::string joined_;
};

Napi::Function BuildThreadsFunction(Napi::Env env) {
  AddonData& data = DataOf(env);
  if (data.buildThreads.IsEmpty()) {
    Napi::Array states = Napi::Array::New(env);
    for (uint32_t i = 0; i <= static_cast<uint32_t>(ThreadState::Unknown); ++i)
      states.Set(i, StateName(static_cast<ThreadState>(i)));
    Napi::Function outer = env.RunScript(kBuildThreadsSource).As<Napi::Function>();
    data.buildThreads = Napi::Persistent(outer.Call({states}).As<Napi::Function>());
  }
  return data.buildThreads.Value();
}

Napi::Value ThreadsToJs(Napi::Env env, const std::vector<ThreadRecord>& threads) {
  constexpr double kAbsent = std::numeric_limits<double>::quiet_NaN();
  const auto number = [](const auto& value) { return value ? static_cast<double>(*value) : kAbsent; };
  StringTable strings;
  Napi::Float64Array numbers = Napi::Float64Array::New(env, threads.size() * kNumberStride);
  Napi::Int32Array refs = Napi::Int32Array::New(env, threads.size() * kRefStride);
  std::vector<int32_t> kernelFrames;
  std::vector<double> userFrames;
  std::vector<int32_t> userModules;
  for (size_t i = 0; i < threads.size(); ++i) {
    const ThreadRecord& t = threads[i];
    double* n = numbers.Data() + i * kNumberStride;
    int32_t* r = refs.Data() + i * kRefStride;
    n[0] = static_cast<double>(t.tid);
    n[1] = static_cast<double>(static_cast<uint32_t>(t.state));
    n[2] = static_cast<double>(t.userNs);
    n[3] = static_cast<double>(t.systemNs);
    n[4] = number(t.cpuNs);
    const bool switches = t.voluntarySwitches && t.involuntarySwitches;
    n[5] = switches ? static_cast<double>(*t.voluntarySwitches) : kAbsent;
    n[6] = switches ? static_cast<double>(*t.involuntarySwitches) : kAbsent;
    n[7] = number(t.suspendCount);
    n[8] = t.blockedIn ? static_cast<double>(t.blockedIn->number) : kAbsent;
    n[9] = t.blockedIn ? number(t.blockedIn->fd) : kAbsent;
    n[10] = number(t.pc);
    n[11] = t.blockedIn ? number(t.blockedIn->joining) : kAbsent;
    n[12] = number(t.runDelayNs);
    r[0] = strings.Add(t.name);
    r[1] = strings.Add(t.wchan);
    r[2] = t.blockedIn ? strings.Add(t.blockedIn->call) : -1;
    r[3] = t.blockedIn ? strings.Add(t.blockedIn->target) : -1;
    r[4] = t.kernelStack ? static_cast<int32_t>(t.kernelStack->size()) : -1;
    if (t.kernelStack)
      for (const std::string& line : *t.kernelStack) kernelFrames.push_back(strings.Add(line));
    r[5] = t.stack ? static_cast<int32_t>(t.stack->size()) : -1;
    if (t.stack) {
      for (const FrameRecord& frame : *t.stack) {
        userFrames.push_back(static_cast<double>(frame.pc));
        userFrames.push_back(static_cast<double>(frame.offset));
        userModules.push_back(frame.module.empty() ? -1 : strings.Add(frame.module));
      }
    }
  }
  Napi::Int32Array kernelArray = Napi::Int32Array::New(env, kernelFrames.size());
  std::copy(kernelFrames.begin(), kernelFrames.end(), kernelArray.Data());
  Napi::Float64Array userArray = Napi::Float64Array::New(env, userFrames.size());
  std::copy(userFrames.begin(), userFrames.end(), userArray.Data());
  Napi::Int32Array moduleArray = Napi::Int32Array::New(env, userModules.size());
  std::copy(userModules.begin(), userModules.end(), moduleArray.Data());
  return BuildThreadsFunction(env).Call(
      {Napi::String::New(env, strings.joined()), numbers, refs, kernelArray, userArray, moduleArray});
}

Napi::Object ToJs(Napi::Env env, const ProcessRecord& record) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("pid", Napi::Number::New(env, record.pid));
  object.Set("name", record.name);
  object.Set("sampledAtNs", Napi::Number::New(env, static_cast<double>(record.sampledAtNs)));
  if (record.abi) object.Set("abi", *record.abi);
  object.Set("threads", ThreadsToJs(env, record.threads));
  object.Set("limits", ToJs(env, record.limits));
  return object;
}

// ---------------------------------------------------------------- probes

// Runs `work` on its own thread; converts its result on the JS thread.
template <typename Result>
struct ProbeState;

template <typename Result>
void SettleProbe(Napi::Env env, Napi::Function, std::nullptr_t*, ProbeState<Result>* state);

template <typename Result>
using ProbeTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, ProbeState<Result>, &SettleProbe<Result>>;

// Whether the probe's environment still exists. Node deletes a thread-safe function
// when its environment is torn down (process exit, a Worker ending), whatever threads
// still hold it, so a probe thread that finishes late must not touch it: it checks the
// gate under the mutex, and an environment cleanup hook closes the gate first.
struct ProbeGate {
  std::mutex mutex;
  bool open = true;
};

// The cleanup hook's argument: owns one reference to the gate until the hook runs or
// is removed. Hooks run in reverse order of registration, so this one, added after its
// thread-safe function was created, runs before Node deletes that function.
void CloseProbeGate(void* arg) {
  std::unique_ptr<std::shared_ptr<ProbeGate>> gate(static_cast<std::shared_ptr<ProbeGate>*>(arg));
  std::lock_guard<std::mutex> lock((*gate)->mutex);
  (*gate)->open = false;
}

// Shared by the promise's abandon() and the settle callback; touched only on the JS thread.
template <typename Result>
struct ProbeControl {
  ProbeTsfn<Result> tsfn;
  std::shared_ptr<ProbeGate>* gateHook = nullptr;  // the cleanup hook's argument, see CloseProbeGate
  bool settled = false;
  bool abandoned = false;
};

template <typename Result>
struct ProbeState {
  Napi::Promise::Deferred deferred;
  std::function<Napi::Value(Napi::Env, Result&)> convert;
  std::shared_ptr<ProbeControl<Result>> control;
  std::optional<Result> result;
  std::optional<SnapError> error;
  std::string unexpected;
};

template <typename Result>
void SettleProbe(Napi::Env env, Napi::Function, std::nullptr_t*, ProbeState<Result>* state) {
  std::unique_ptr<ProbeState<Result>> owned(state);
  state->control->settled = true;
  if (env == nullptr) return;  // environment torn down; its cleanup hook already ran
  if (state->control->gateHook != nullptr) {
    napi_remove_env_cleanup_hook(env, CloseProbeGate, state->control->gateHook);
    delete state->control->gateHook;
    state->control->gateHook = nullptr;
  }
  // Every Node-API call can fail while a worker is terminating; nothing may escape
  // this callback (it would terminate the whole process), so failures end here.
  try {
    Napi::HandleScope scope(env);
    try {
      if (state->result) {
        state->deferred.Resolve(state->convert(env, *state->result));
      } else if (state->error) {
        const SnapError& e = *state->error;
        state->deferred.Reject(MakeError(env, e.code(), e.what(), e.syscall(), e.kern()).Value());
      } else {
        state->deferred.Reject(MakeError(env, "EIO", "native probe failed: " + state->unexpected).Value());
      }
    } catch (const Napi::Error& e) {
      state->deferred.Reject(e.Value());
    }
  } catch (...) {
    // The environment is going away; there is no one left to tell.
  }
}

template <typename Result>
Napi::Promise StartProbe(Napi::Env env, std::function<Result()> work,
                         std::function<Napi::Value(Napi::Env, Result&)> convert) {
  auto control = std::make_shared<ProbeControl<Result>>();
  auto* state = new ProbeState<Result>{Napi::Promise::Deferred::New(env), std::move(convert), control,
                                       std::nullopt, std::nullopt, ""};
  Napi::Promise promise = state->deferred.Promise();
  control->tsfn = ProbeTsfn<Result>::New(env, "iokit-snap probe", 0, 1);
  auto gate = std::make_shared<ProbeGate>();
  control->gateHook = new std::shared_ptr<ProbeGate>(gate);
  if (napi_add_env_cleanup_hook(env, CloseProbeGate, control->gateHook) != napi_ok) {
    delete control->gateHook;
    control->gateHook = nullptr;
    control->settled = true;
    control->tsfn.Release();
    state->deferred.Reject(MakeError(env, "EIO", "could not register a probe cleanup hook").Value());
    delete state;
    return promise;
  }
  // promise.abandon(): called by withDeadline (src/native.ts) when the deadline passes,
  // so a probe stuck in a wedged driver stops keeping the event loop alive.
  promise.Set("abandon", Napi::Function::New(env, [control](const Napi::CallbackInfo& info) -> Napi::Value {
    if (!control->settled && !control->abandoned) {
      control->abandoned = true;
      control->tsfn.Unref(info.Env());
    }
    return info.Env().Undefined();
  }));
  try {
    std::thread([tsfn = control->tsfn, gate, state, work = std::move(work)]() mutable {
      try {
        state->result.emplace(work());
      } catch (const SnapError& e) {
        state->error.emplace(e);
      } catch (const std::exception& e) {
        state->unexpected = e.what();
      } catch (...) {
        state->unexpected = "unknown native exception";
      }
      std::lock_guard<std::mutex> lock(gate->mutex);
      if (!gate->open) {  // the environment is gone, and its thread-safe function with it
        delete state;
        return;
      }
      // The queue is unbounded, so this never waits; it only enqueues.
      if (tsfn.BlockingCall(state) != napi_ok) delete state;
      tsfn.Release();
    }).detach();
  } catch (const std::system_error& e) {
    control->settled = true;
    napi_remove_env_cleanup_hook(env, CloseProbeGate, control->gateHook);
    delete control->gateHook;
    control->gateHook = nullptr;
    control->tsfn.Release();
    state->deferred.Reject(MakeError(env, "EAGAIN", std::string("could not start a probe thread: ") + e.what()).Value());
    delete state;
  }
  return promise;
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
  return parsed;
}

// ---------------------------------------------------------------- exported functions

Napi::Value SampleAcceleratorsJs(const Napi::CallbackInfo& info) {
  AcceleratorOptions options = ParseAcceleratorOptions(OptionsArg(info, 0));
  return StartProbe<AcceleratorSampleRecord>(
      info.Env(), [options, context = DataOf(info.Env()).acceleratorContext] { return SampleAccelerators(options, context); },
      [](Napi::Env env, AcceleratorSampleRecord& sample) -> Napi::Value {
        Napi::Object object = Napi::Object::New(env);
        Napi::Array list = Napi::Array::New(env, sample.accelerators.size());
        for (uint32_t i = 0; i < sample.accelerators.size(); ++i) list.Set(i, ToJs(env, sample.accelerators[i]));
        object.Set("accelerators", list);
        object.Set("limits", ToJs(env, sample.limits));
        return object;
      });
}

Napi::Value SampleThreadsJs(const Napi::CallbackInfo& info) {
  int32_t pid = PidArg(info);
  ThreadOptions options = ParseThreadOptions(OptionsArg(info, 1));
  return StartProbe<ProcessRecord>(
      info.Env(), [pid, options] { return SampleThreads(pid, options); },
      [](Napi::Env env, ProcessRecord& record) -> Napi::Value { return ToJs(env, record); });
}

Napi::Value ReadHostJs(const Napi::CallbackInfo& info) {
  return StartProbe<HostRecord>(
      info.Env(), [] { return ReadHost(); },
      [](Napi::Env env, HostRecord& host) -> Napi::Value {
        Napi::Object object = Napi::Object::New(env);
        object.Set("platform", host.platform);
        object.Set("arch", host.arch);
        object.Set("osRelease", host.osRelease);
        if (host.model) object.Set("model", *host.model);
        return object;
      });
}

Napi::Value MonotonicNsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(MonotonicNs()));
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
      if (box_->busy)
        throw MakeError(info.Env(), "ETIMEDOUT",
                        "the previous sample of this process has not returned yet; the target or the kernel may be "
                        "hung. Wait for it, or close this sampler and open a new one");
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
        [](Napi::Env env, ProcessRecord& record) -> Napi::Value { return ToJs(env, record); });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseBox(box_);
    return info.Env().Undefined();
  }

  std::shared_ptr<SamplerBox> box_;
};

Napi::Value OpenThreadSamplerJs(const Napi::CallbackInfo& info) {
  int32_t pid = PidArg(info);
  ThreadOptions options = ParseThreadOptions(OptionsArg(info, 1));
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
  return internals;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->samplerConstructor = Napi::Persistent(ThreadSamplerWrap::Define(env));
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment ends

  exports.Set("sampleAccelerators", Napi::Function::New(env, SampleAcceleratorsJs, "sampleAccelerators"));
  exports.Set("sampleThreads", Napi::Function::New(env, SampleThreadsJs, "sampleThreads"));
  exports.Set("openThreadSampler", Napi::Function::New(env, OpenThreadSamplerJs, "openThreadSampler"));
  exports.Set("readHost", Napi::Function::New(env, ReadHostJs, "readHost"));
  exports.Set("monotonicNs", Napi::Function::New(env, MonotonicNsJs, "monotonicNs"));
  exports.Set("internals", Internals(env));
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
