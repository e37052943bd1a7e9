// Records → JS values: the only place plain C++ records (model.h) become Napi values.
// Runs on the JS thread, in a probe's settle callback or an exported function.
#include "to_js.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace iokitsnap {
namespace {

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

// Thread records go to JS in bulk. Built property by property through
// Node-API, a 1,000-thread sample costs ~4 µs a thread (every Set crosses the
// API and internalizes its key): more than reading the threads from procfs. So
// the records are packed into typed arrays plus one string of the distinct
// texts, and a small JS function, compiled once per environment, builds the
// objects at object-literal speed. Numbers go through double exactly as a
// Napi::Number would; NaN marks "absent" (no real field is NaN).
constexpr uint32_t kNumberStride = 17;  // tid state userNs systemNs cpuNs voluntary involuntary suspendCount callNumber fd pc joining runDelayNs offCpuNs futexAddress futexCommand futexValue
constexpr uint32_t kRefStride = 6;      // name wchan call target (string index, -1: none) kernelFrames userFrames (-1: none)

//
// Each distinct text becomes one internalized string, the same object in every sample of the
// environment: the analysis compares a thread's call, target and wait channel with the last
// sample's, and with names it knows ('ioctl'), for every thread at every step, and equal
// internalized strings compare by address where fresh ones compare by content (compare() on
// 10,000 real threads took twice as long). A text is looked up once per sample, not per thread;
// the cache holds at most 16,384 texts and starts again past that.
constexpr char kBuildThreadsSource[] = R"JS((function (stateNames) {
  'use strict';
  const present = (x) => x === x; // not NaN
  const futexOps = { 0: 'wait', 6: 'lock_pi', 9: 'wait_bitset', 11: 'wait_requeue_pi', 13: 'lock_pi2' };
  const interned = new Map();
  const intern = (text) => {
    let string = interned.get(text);
    if (string === undefined) {
      if (interned.size >= 16384) interned.clear();
      string = Object.keys({ [text]: 0 })[0]; // a property key is internalized
      interned.set(string, string);
    }
    return string;
  };
  const states = Array.from(stateNames, intern);
  return function buildThreads(text, numbers, refs, kernelFrames, userFrames, userModules) {
    const strings = text.split('\0');
    for (let s = 0; s < strings.length; s++) strings[s] = intern(strings[s]);
    const count = refs.length / 6;
    const threads = new Array(count);
    let kernelAt = 0;
    let userAt = 0;
    for (let i = 0; i < count; i++) {
      const n = i * 17;
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
      if (present(numbers[n + 13])) thread.offCpuNs = numbers[n + 13];
      thread.contextSwitches = present(numbers[n + 5]) ? { voluntary: numbers[n + 5], involuntary: numbers[n + 6] } : null;
      thread.suspendCount = present(numbers[n + 7]) ? numbers[n + 7] : null;
      if (present(numbers[n + 8])) {
        const blocked = { call: strings[refs[r + 2]], number: numbers[n + 8] };
        if (present(numbers[n + 9])) blocked.fd = numbers[n + 9];
        if (refs[r + 3] >= 0) blocked.target = strings[refs[r + 3]];
        if (present(numbers[n + 11])) blocked.joining = numbers[n + 11];
        if (present(numbers[n + 14])) blocked.futex = { address: numbers[n + 14], op: futexOps[numbers[n + 15]] ?? `op_${numbers[n + 15]}`, value: numbers[n + 16] };
        thread.blockedIn = blocked;
      } else {
        thread.blockedIn = null;
      }
      if (refs[r + 1] >= 0) thread.wchan = strings[refs[r + 1]];
      if (present(numbers[n + 10])) thread.pc = numbers[n + 10];
      if (refs[r + 5] >= 0) {
        const frames = new Array(refs[r + 5]);
        for (let f = 0; f < frames.length; f++, userAt++) {
          const m = userModules[userAt * 2];
          const frame = { pc: userFrames[userAt * 3], module: m < 0 ? null : strings[m], offset: m < 0 ? null : userFrames[userAt * 3 + 1] };
          const symbol = userModules[userAt * 2 + 1];
          if (symbol >= 0) {
            frame.symbol = strings[symbol];
            frame.symbolOffset = userFrames[userAt * 3 + 2];
          }
          frames[f] = frame;
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

Napi::Function BuildThreadsFunction(Napi::Env env, JsBuilders& builders) {
  if (builders.buildThreads.IsEmpty()) {
    Napi::Array states = Napi::Array::New(env);
    for (uint32_t i = 0; i <= static_cast<uint32_t>(ThreadState::Unknown); ++i)
      states.Set(i, StateName(static_cast<ThreadState>(i)));
    Napi::Function outer = env.RunScript(kBuildThreadsSource).As<Napi::Function>();
    builders.buildThreads = Napi::Persistent(outer.Call({states}).As<Napi::Function>());
  }
  return builders.buildThreads.Value();
}

Napi::Value ThreadsToJs(Napi::Env env, const std::vector<ThreadRecord>& threads, JsBuilders& builders) {
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
    n[13] = number(t.offCpuNs);
    const bool futex = t.blockedIn && t.blockedIn->futexAddress && t.blockedIn->futexCommand;
    n[14] = futex ? static_cast<double>(*t.blockedIn->futexAddress) : kAbsent;
    n[15] = futex ? static_cast<double>(*t.blockedIn->futexCommand) : kAbsent;
    n[16] = futex && t.blockedIn->futexExpected ? static_cast<double>(*t.blockedIn->futexExpected) : futex ? 0 : kAbsent;
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
        // Per frame: pc, offset, symbolOffset; module and symbol (string index, -1: none).
        userFrames.push_back(static_cast<double>(frame.pc));
        userFrames.push_back(static_cast<double>(frame.offset));
        userFrames.push_back(frame.symbol && frame.symbolOffset ? static_cast<double>(*frame.symbolOffset) : kAbsent);
        userModules.push_back(frame.module.empty() ? -1 : strings.Add(frame.module));
        userModules.push_back(frame.symbol && frame.symbolOffset ? strings.Add(*frame.symbol) : -1);
      }
    }
  }
  Napi::Int32Array kernelArray = Napi::Int32Array::New(env, kernelFrames.size());
  std::copy(kernelFrames.begin(), kernelFrames.end(), kernelArray.Data());
  Napi::Float64Array userArray = Napi::Float64Array::New(env, userFrames.size());
  std::copy(userFrames.begin(), userFrames.end(), userArray.Data());
  Napi::Int32Array moduleArray = Napi::Int32Array::New(env, userModules.size());
  std::copy(userModules.begin(), userModules.end(), moduleArray.Data());
  return BuildThreadsFunction(env, builders).Call(
      {Napi::String::New(env, strings.joined()), numbers, refs, kernelArray, userArray, moduleArray});
}

}  // namespace

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      const std::string& syscall, int64_t kern) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  if (!syscall.empty()) error.Set("syscall", Napi::String::New(env, syscall));
  if (kern != 0) error.Set("kern", Napi::Number::New(env, static_cast<double>(kern)));
  return error;
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

Napi::Object ToJs(Napi::Env env, const ProcessRecord& record, JsBuilders& builders) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("pid", Napi::Number::New(env, record.pid));
  object.Set("name", record.name);
  object.Set("sampledAtNs", Napi::Number::New(env, static_cast<double>(record.sampledAtNs)));
  if (record.abi) object.Set("abi", *record.abi);
  if (record.ppid) object.Set("ppid", Napi::Number::New(env, *record.ppid));
  object.Set("threads", ThreadsToJs(env, record.threads, builders));
  object.Set("limits", ToJs(env, record.limits));
  return object;
}

Napi::Object ToJs(Napi::Env env, const AcceleratorSampleRecord& sample) {
  Napi::Object object = Napi::Object::New(env);
  Napi::Array list = Napi::Array::New(env, sample.accelerators.size());
  for (uint32_t i = 0; i < sample.accelerators.size(); ++i) list.Set(i, ToJs(env, sample.accelerators[i]));
  object.Set("accelerators", list);
  object.Set("limits", ToJs(env, sample.limits));
  return object;
}

Napi::Object ToJs(Napi::Env env, const HostRecord& host) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("platform", host.platform);
  object.Set("arch", host.arch);
  object.Set("osRelease", host.osRelease);
  if (host.model) object.Set("model", *host.model);
  return object;
}

}  // namespace iokitsnap
