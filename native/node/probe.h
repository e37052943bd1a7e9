// Probes: work run off the JS thread, settling a promise on it.
//
// Why not Napi::AsyncWorker: the libuv pool has four threads shared with every
// fs call of the host process. A probe stuck in a wedged driver (IOKit power
// work loop, NVML on a lost GPU, /proc of a D-state task) would hold a pool
// thread forever, and four of them would stall all file I/O of the program that
// wanted to diagnose the hang. Each probe therefore runs on its own detached
// thread and settles its promise through an unref'd thread-safe function; the
// deadline is enforced in src/native.ts, and a probe that never returns is
// abandoned instead of awaited (the promise's abandon()).
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <utility>

namespace iokitsnap {

// Turns a probe's result into its promise's value; runs on the JS thread.
using ProbeSettle = std::function<Napi::Value(Napi::Env)>;

// Runs `work` on its own thread. What it returns settles the promise on the JS
// thread; what it throws (SnapError, or anything else as EIO) rejects it.
Napi::Promise StartProbeThread(Napi::Env env, std::function<ProbeSettle()> work);

// The typed form: `work` on the probe thread, `convert` on the JS thread.
template <typename Result>
Napi::Promise StartProbe(Napi::Env env, std::function<Result()> work,
                         std::function<Napi::Value(Napi::Env, Result&)> convert) {
  return StartProbeThread(env, [work = std::move(work), convert = std::move(convert)]() -> ProbeSettle {
    auto result = std::make_shared<Result>(work());
    return [result, convert](Napi::Env env) { return convert(env, *result); };
  });
}

}  // namespace iokitsnap
