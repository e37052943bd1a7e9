// The probe machinery (see probe.h): one detached thread per probe, a thread-safe
// function to settle on the JS thread, and a gate so a thread that finishes after
// its environment is gone touches nothing of it.
#include "probe.h"

#include <dlfcn.h>

#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "../backend.h"
#include "to_js.h"

namespace iokitsnap {
namespace {

struct ProbeState;

void SettleProbe(Napi::Env env, Napi::Function, std::nullptr_t*, ProbeState* state);

using ProbeTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, ProbeState, &SettleProbe>;

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
struct ProbeControl {
  ProbeTsfn tsfn;
  std::shared_ptr<ProbeGate>* gateHook = nullptr;  // the cleanup hook's argument, see CloseProbeGate
  bool settled = false;
  bool abandoned = false;
};

// Probes whose promise can still be abandoned, by id. abandon() reaches its probe
// through this table, not through a native function of its own: a Node-API
// function per probe carries a finalizer (a weak handle V8 keeps through young
// collections), and one per probe made the heap, and RSS, grow by tens of MB over
// thousands of probes. Shared by every environment (ids are never reused) and
// never destroyed: probe threads may outlive static destructors at exit.
struct LiveProbes {
  std::mutex mutex;
  uintptr_t lastId = 0;
  std::unordered_map<uintptr_t, std::shared_ptr<ProbeControl>> byId;
};
LiveProbes& Live() {
  static auto* live = new LiveProbes();
  return *live;
}

struct ProbeState {
  Napi::Promise::Deferred deferred;
  std::shared_ptr<ProbeControl> control;
  uintptr_t id = 0;  // in Live() until this state is deleted, wherever that happens
  std::optional<ProbeSettle> settle;  // set when the work returned
  std::optional<SnapError> error;
  std::string unexpected;

  ~ProbeState() {
    std::lock_guard<std::mutex> lock(Live().mutex);
    Live().byId.erase(id);
  }
};

void SettleProbe(Napi::Env env, Napi::Function, std::nullptr_t*, ProbeState* state) {
  std::unique_ptr<ProbeState> owned(state);
  state->control->settled = true;
  if (env == nullptr) return;  // environment torn down: Node deletes the function itself
  if (state->control->gateHook != nullptr) {
    napi_remove_env_cleanup_hook(env, CloseProbeGate, state->control->gateHook);
    delete state->control->gateHook;
    state->control->gateHook = nullptr;
  }
  // The probe thread's reference, released here, on the JS thread, while the
  // function surely exists. Released on the probe thread after its call, it
  // raced the environment's end: the promise settled, this hook was gone, and
  // Node deleted the function before the release (an abort in uv_mutex_lock).
  state->control->tsfn.Release();
  // Every Node-API call can fail while a worker is terminating; nothing may escape
  // this callback (it would terminate the whole process), so failures end here.
  try {
    Napi::HandleScope scope(env);
    try {
      if (state->settle) {
        state->deferred.Resolve((*state->settle)(env));
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

// Keeps this addon's code mapped for the life of the process. Node unloads an
// addon (dlclose) when the last environment that loaded it ends; a Worker that
// alone loaded it takes the code away from any probe thread still running in it
// (a stuck NVML call, a slow /proc read, or just the return from a late probe),
// which then crashes the process. So the first probe takes its own reference,
// with dlopen on the addon's own path, and never drops it (RTLD_NODELETE):
// dropping it from the last probe thread cannot be done safely, as dlclose would
// unmap the code that thread returns into. The cost is one mapping kept after
// the last environment that used it, reused if the addon is loaded again.
void KeepModuleLoaded() {
  static const bool kept = [] {
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&KeepModuleLoaded), &self) == 0 || self.dli_fname == nullptr) return false;
    return dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;
  }();
  (void)kept;
}

// promise.abandon(id), bound per probe: called by withDeadline (src/native.ts) when
// the deadline passes, so a probe stuck in a wedged driver stops keeping the event
// loop alive. A call after the probe settled finds nothing and does nothing.
Napi::Value AbandonProbe(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) return info.Env().Undefined();
  const auto id = static_cast<uintptr_t>(info[0].As<Napi::Number>().DoubleValue());
  std::shared_ptr<ProbeControl> control;
  {
    std::lock_guard<std::mutex> lock(Live().mutex);
    auto found = Live().byId.find(id);
    if (found != Live().byId.end()) control = found->second;
  }
  if (control && !control->settled && !control->abandoned) {
    control->abandoned = true;
    control->tsfn.Unref(info.Env());
  }
  return info.Env().Undefined();
}

// The one AbandonProbe function of each environment (per probe, only a bound copy
// of it is made: a plain JS function, without a finalizer).
struct AbandonFunctions {
  std::mutex mutex;
  std::unordered_map<napi_env, napi_ref> byEnv;
};
AbandonFunctions& Abandons() {
  static auto* abandons = new AbandonFunctions();
  return *abandons;
}

void ForgetAbandonFunction(void* env) {
  std::lock_guard<std::mutex> lock(Abandons().mutex);
  Abandons().byEnv.erase(static_cast<napi_env>(env));  // Node frees the reference with the environment
}

Napi::Function AbandonFunctionOf(Napi::Env env) {
  std::lock_guard<std::mutex> lock(Abandons().mutex);
  auto found = Abandons().byEnv.find(env);
  napi_value cached = nullptr;
  if (found != Abandons().byEnv.end() && napi_get_reference_value(env, found->second, &cached) == napi_ok &&
      cached != nullptr)
    return Napi::Function(env, cached);
  Napi::Function fn = Napi::Function::New(env, AbandonProbe, "abandon");
  // One hook per environment: Node aborts on a second registration of the same hook.
  napi_ref ref = nullptr;
  if (found == Abandons().byEnv.end() && napi_create_reference(env, fn, 1, &ref) == napi_ok &&
      napi_add_env_cleanup_hook(env, ForgetAbandonFunction, static_cast<napi_env>(env)) == napi_ok)
    Abandons().byEnv.emplace(env, ref);
  return fn;
}

}  // namespace

Napi::Promise StartProbeThread(Napi::Env env, std::function<ProbeSettle()> work) {
  KeepModuleLoaded();
  auto control = std::make_shared<ProbeControl>();
  auto* state = new ProbeState{Napi::Promise::Deferred::New(env), control, 0, std::nullopt, std::nullopt, ""};
  {
    std::lock_guard<std::mutex> lock(Live().mutex);
    state->id = ++Live().lastId;
    Live().byId.emplace(state->id, control);
  }
  Napi::Promise promise = state->deferred.Promise();
  control->tsfn = ProbeTsfn::New(env, "iokit-snap probe", 0, 1);
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
  Napi::Function abandon = AbandonFunctionOf(env);
  promise.Set("abandon", abandon.Get("bind").As<Napi::Function>().Call(
                             abandon, {env.Undefined(), Napi::Number::New(env, static_cast<double>(state->id))}));
  try {
    std::thread([tsfn = control->tsfn, gate, state, work = std::move(work)]() mutable {
      try {
        state->settle.emplace(work());
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
      // The queue is unbounded, so this never waits; it only enqueues. After it
      // this thread touches nothing of the environment: SettleProbe releases
      // the function on the JS thread.
      if (tsfn.BlockingCall(state) != napi_ok) delete state;
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

}  // namespace iokitsnap
