// darwin-logic: native/darwin's decisions run against a scripted fake kernel, every
// scenario once as written and then again with each of its OS calls failed in
// each way a kernel fails. Usage:
//   darwin-logic [--registry file.json]… [--emit dir] [--verbose]
// The last line is the tally: "darwin-logic-<arch>: <S> scenarios, <F> faults
// injected, suspensions <n> = resumes <n>, leaks <L>, failures <X>".
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "fake_cf.h"
#include "harness.h"

namespace harness {

Outcome Capture(const std::function<void(Outcome&)>& body) {
  Outcome outcome;
  try {
    body(outcome);
  } catch (const iokitsnap::SnapError& e) {
    outcome.threw = true;
    outcome.code = e.code();
    outcome.message = e.what();
  }
  return outcome;
}

const iokitsnap::LimitRecord* FindLimit(const std::vector<iokitsnap::LimitRecord>& limits, const std::string& field,
                                        const std::string& code) {
  for (const auto& limit : limits) {
    if (limit.field == field && limit.code == code) return &limit;
  }
  return nullptr;
}

void Expect(bool ok, const std::string& what, std::vector<std::string>& failures) {
  if (!ok) failures.push_back(what);
}

}  // namespace harness

namespace {

using harness::Outcome;
using harness::Scenario;

struct Tally {
  size_t scenarios = 0, runs = 0, leaks = 0, failures = 0;
  size_t errors = 0, limited = 0, absorbed = 0;
};

bool verbose = false;
int baselineThreads = -1;  // the harness's own threads, before any scenario
// A scenario whose faulted runs keep failing shows one defect many times over: after
// this many failing runs its fault injection stops, so that a defect is reported in
// seconds, not after every run of every scenario.
constexpr size_t kFailingRunsPerScenario = 8;

// A run that blocks, with no deadline of its own, in a call that blocks in real time
// (taskgated, a wedged work loop) would hang the harness: after kRunLimit the watchdog
// lets every blocked call return, and the run is reported.
// A run still going kAbortLimit later is stuck where nothing can let it go (a deadlock
// in the code under test): the harness says so and exits.
constexpr auto kRunLimit = std::chrono::seconds(10);
// Runs that needed the watchdog show one defect (a wait with no deadline); after this
// many the harness stops, so that it says so in seconds.
constexpr int kHungRunsBeforeStopping = 3;
int hungRuns = 0;
constexpr auto kAbortLimit = std::chrono::seconds(60);
class Watchdog {
 public:
  Watchdog() : thread_([this] { Watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  void Start(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    what_ = what;
    running_ = true;
    fired_ = false;
    since_ = std::chrono::steady_clock::now();
  }
  bool Stop() {  // whether it fired during the run
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
    return fired_;
  }

 private:
  void Watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      changed_.wait_for(lock, std::chrono::milliseconds(100));
      if (running_ && !fired_ && std::chrono::steady_clock::now() - since_ > kRunLimit) {
        fired_ = true;
        // Not ReleaseBlockedCalls: waiting here for the calls to return could miss the
        // moment (the run may go on, end, and block again in the next run), and then
        // nothing would watch that run.
        fake::Kernel::Get().LetBlockedCallsReturn();
      }
      if (running_ && std::chrono::steady_clock::now() - since_ > kAbortLimit) {
        std::printf("not ok - %s: the run has not returned in %lld s (a deadlock in the code under test?); "
                    "stopping\n",
                    what_.c_str(), static_cast<long long>(kAbortLimit.count()));
        std::fflush(stdout);
        std::_Exit(1);
      }
    }
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  bool running_ = false, fired_ = false, stop_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point since_;
  std::thread thread_;
};
Watchdog* watchdog = nullptr;

std::vector<std::string> LeftBehind() {
  std::vector<std::string> problems = fake::Kernel::Get().Problems();
  if (fake::LiveCFObjects() > 0) {
    problems.push_back("leak: " + std::to_string(fake::LiveCFObjects()) + " CF object(s) never released");
  }
  return problems;
}

// Everything a run must leave behind, fault or not: nothing held, nothing leaked,
// and either a record or a SnapError with a code the API documents.
std::vector<std::string> AfterRun(const Scenario& scenario, const Outcome& outcome, fake::Fault fault) {
  fake::Kernel& kernel = fake::Kernel::Get();
  // Calls blocked in real time (a wedged work loop, taskgated) return now; the code under
  // test abandoned them, and their threads then give back what they hold and end.
  kernel.ReleaseBlockedCalls();
  std::vector<std::string> problems;
  if (baselineThreads > 0) {
    // Wait for exactly that: the abandoned threads to end (5 s at most), then look once.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (fake::LiveThreads() > baselineThreads && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    problems = LeftBehind();
    if (fake::LiveThreads() > baselineThreads) {
      problems.push_back("a thread the run started was still running 5 s after the run (an abandoned call that "
                         "never returned?)");
    }
  } else {
    // Threads cannot be counted here: poll, for a while, only after a run whose calls blocked.
    for (int attempt = 0; attempt < 200; ++attempt) {
      problems = LeftBehind();
      if (problems.empty() || (!scenario.waitForBlockedCalls && !kernel.BlockedThisRun())) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (outcome.hung) {
    problems.push_back("the run did not return within 10 s: it waited, with no deadline, for a call that blocks "
                       "in real time (" + std::to_string(kernel.Calls()) + " calls made)");
    ++hungRuns;
  }
  if (outcome.threw) {
    static const char* documented[] = {"ESRCH", "EPERM", "EIO", "ETIMEDOUT", "EAGAIN"};
    bool known = false;
    for (const char* code : documented) known = known || outcome.code == code;
    if (!known) problems.push_back("threw " + outcome.code + ", not a documented code: " + outcome.message);
    if (fault == fake::Fault::TaskDied && outcome.code != "ESRCH") {
      problems.push_back("the target died, but the error is " + outcome.code + " (" + outcome.message + "), not ESRCH");
    }
  }
  return problems;
}

void Report(const std::string& where, const std::vector<std::string>& problems, Tally& tally) {
  for (const std::string& problem : problems) {
    std::printf("not ok - %s: %s\n", where.c_str(), problem.c_str());
    if (problem.rfind("leak", 0) == 0) ++tally.leaks;
    ++tally.failures;
  }
  std::fflush(stdout);
}

// A deadline that ran out in a run where no call blocked: the machine was too busy to
// run a quick call within it (the deadlines are real time, the fake calls take
// microseconds). Such a run says nothing about the code, and is run again.
bool SpuriousDeadline(const Outcome& outcome) {
  if (fake::Kernel::Get().BlockedThisRun()) return false;
  const auto timedOut = [](const std::vector<iokitsnap::LimitRecord>& limits) {
    for (const auto& limit : limits) {
      if (limit.code == "ETIMEDOUT" && limit.reason.find("did not return within") != std::string::npos) return true;
    }
    return false;
  };
  bool found = timedOut(outcome.process.limits) || timedOut(outcome.accelerators.limits);
  for (const auto& record : outcome.more) found = found || timedOut(record.limits);
  return found;
}

Outcome RunOnce(const Scenario& scenario, uint64_t faultAt, fake::Fault fault) {
  fake::Kernel& kernel = fake::Kernel::Get();
  Outcome outcome;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) {
      AfterRun(scenario, outcome, fault);  // let the discarded run end
      std::printf("# %s: a deadline ran out with no call blocked (a busy machine); run again\n",
                  scenario.name.c_str());
    }
    kernel.Reset();
    fake::ResetCF();
    scenario.setup(kernel);
    if (fault != fake::Fault::None) kernel.ArmFault(faultAt, fault);
    outcome = Outcome{};
    watchdog->Start(scenario.name + (fault == fake::Fault::None ? std::string()
                                                                 : ", call " + std::to_string(faultAt) + " fails: " +
                                                                       fake::FaultName(fault)));
    try {
      outcome = scenario.run();
    } catch (const std::exception& e) {
      outcome.threw = true;
      outcome.code = "not a SnapError";
      outcome.message = e.what();
    }
    outcome.hung = watchdog->Stop();
    if (!SpuriousDeadline(outcome)) break;
  }
  return outcome;
}

void RunScenario(const Scenario& scenario, Tally& tally) {
  fake::Kernel& kernel = fake::Kernel::Get();
  ++tally.scenarios;
  Outcome outcome = RunOnce(scenario, 0, fake::Fault::None);
  const uint64_t calls = kernel.Calls();
  const std::vector<std::string> log = kernel.callLog;
  if (verbose) {
    std::string calls;
    for (const std::string& name : log) calls += " " + name;
    std::printf("# %s:%s\n", scenario.name.c_str(), calls.c_str());
  }
  std::vector<std::string> failures = AfterRun(scenario, outcome, fake::Fault::None);
  if (outcome.threw && outcome.code == "not a SnapError") failures.push_back("threw: " + outcome.message);
  if (scenario.expect) scenario.expect(outcome, kernel, failures);
  Report(scenario.name, failures, tally);
  if (failures.empty()) std::printf("ok - %s (%llu OS calls)\n", scenario.name.c_str(), static_cast<unsigned long long>(calls));
  ++tally.runs;
  if (!scenario.injectFaults) return;

  size_t injected = 0;
  size_t failingRuns = 0;
  for (uint64_t k = 1; k <= calls && failingRuns < kFailingRunsPerScenario; ++k) {
    for (fake::Fault fault : fake::kAllFaults) {
      Outcome faulted = RunOnce(scenario, k, fault);
      ++tally.runs;
      if (!kernel.FaultFired()) {
        AfterRun(scenario, faulted, fault);  // nothing was injected; only let the run end
        continue;  // a release call: never failed on purpose (see fake_kernel.cc)
      }
      ++injected;
      const std::string where = scenario.name + ", call " + std::to_string(k) + " (" +
                                (k <= log.size() ? log[k - 1] : std::string("?")) + ") fails: " + fake::FaultName(fault);
      const std::vector<std::string> problems = AfterRun(scenario, faulted, fault);
      Report(where, problems, tally);
      if (hungRuns >= kHungRunsBeforeStopping) {
        std::printf("not ok - %d runs waited for a blocked call with no deadline; stopping\n", hungRuns);
        std::printf("darwin-logic: stopped early, failures %zu\n", tally.failures + 1);
        std::fflush(stdout);
        std::_Exit(1);
      }
      if (!problems.empty() && ++failingRuns == kFailingRunsPerScenario) {
        std::printf("not ok - %s: fault injection stopped after %zu failing runs\n", scenario.name.c_str(),
                    failingRuns);
        ++tally.failures;
        break;
      }
      if (faulted.threw) {
        ++tally.errors;
      } else if (!faulted.process.limits.empty() || !faulted.accelerators.limits.empty()) {
        ++tally.limited;
      } else {
        ++tally.absorbed;
        if (verbose) std::printf("# %s: absorbed (a record without a limit)\n", where.c_str());
      }
    }
  }
  std::printf("ok - %s: %zu faults injected over %llu calls\n", scenario.name.c_str(), injected,
              static_cast<unsigned long long>(calls));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> registries;
  std::string emitDir;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--registry") == 0 && i + 1 < argc) {
      registries.push_back(argv[++i]);
    } else if (std::strcmp(argv[i], "--emit") == 0 && i + 1 < argc) {
      emitDir = argv[++i];
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else {
      std::fprintf(stderr, "usage: %s [--registry file.json]... [--emit dir] [--verbose]\n", argv[0]);
      return 2;
    }
  }
  Watchdog dog;
  watchdog = &dog;
  baselineThreads = fake::LiveThreads();
  Tally tally;
  for (const Scenario& scenario : harness::ThreadScenarios()) RunScenario(scenario, tally);
  for (const Scenario& scenario : harness::RegistryScenarios(registries, emitDir)) RunScenario(scenario, tally);
  const fake::Totals& totals = fake::Kernel::Get().totals;
#if defined(__arm64__)
  const char* arch = "arm64";
#else
  const char* arch = "x86_64";
#endif
  std::printf("# faulted runs: %zu ended in an error, %zu in a record with limits, %zu absorbed\n", tally.errors,
              tally.limited, tally.absorbed);
  std::printf("darwin-logic-%s: %zu scenarios, %llu faults injected, suspensions %llu = resumes %llu, leaks %zu, failures %zu\n",
              arch, tally.scenarios, static_cast<unsigned long long>(totals.faults),
              static_cast<unsigned long long>(totals.suspensions), static_cast<unsigned long long>(totals.resumes),
              tally.leaks, tally.failures);
  return tally.failures == 0 && totals.suspensions == totals.resumes ? 0 : 1;
}
