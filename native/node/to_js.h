// Records → JS: plain C++ records (model.h), built on probe threads, become JS
// values here, on the JS thread, and nowhere else.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../model.h"

namespace iokitsnap {

// A JS Error with `code` (and `syscall`, `kern` when given), as IokitSnapError expects.
Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      const std::string& syscall = "", int64_t kern = 0);

// "running", "sleeping", … as the TypeScript ThreadState names them.
const char* StateName(ThreadState state);

// Per-environment cache of the small JS function that builds thread objects in
// bulk (compiled on first use; see to_js.cc). Held by the addon's instance data.
struct JsBuilders {
  Napi::FunctionReference buildThreads;
};

Napi::Array ToJs(Napi::Env env, const std::vector<LimitRecord>& limits);
Napi::Object ToJs(Napi::Env env, const AcceleratorRecord& record);
Napi::Object ToJs(Napi::Env env, const AcceleratorSampleRecord& sample);
Napi::Object ToJs(Napi::Env env, const ProcessRecord& record, JsBuilders& builders);
Napi::Object ToJs(Napi::Env env, const HostRecord& host);

}  // namespace iokitsnap
