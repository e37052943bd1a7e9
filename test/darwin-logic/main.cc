// darwin-logic: native/darwin's decisions run against a scripted fake kernel, every
// scenario once as written and then again with each of its OS calls failed in
// each way a kernel fails. Usage:
//   darwin-logic [--registry file.json]… [--emit dir] [--verbose]
// The last line is the tally: "darwin-logic-<arch>: <S> scenarios, <F> faults
// injected, suspensions <n> = resumes <n>, leaks <L>, failures <X>".
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
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

// Everything a run must leave behind, fault or not: nothing held, nothing leaked,
// and either a record or a SnapError with a code the API documents.
std::vector<std::string> AfterRun(const Scenario& scenario, const Outcome& outcome, fake::Fault fault) {
  fake::Kernel& kernel = fake::Kernel::Get();
  if (scenario.waitForBlockedCalls) kernel.ReleaseBlockedCalls();
  std::vector<std::string> problems;
  // An abandoned call finishes on its own thread: give it a generous while to let go.
  for (int attempt = 0; attempt < 500; ++attempt) {
    problems = kernel.Problems();
    if (fake::LiveCFObjects() > 0) {
      problems.push_back("leak: " + std::to_string(fake::LiveCFObjects()) + " CF object(s) never released");
    }
    if (problems.empty() || !scenario.waitForBlockedCalls) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
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
}

Outcome RunOnce(const Scenario& scenario, uint64_t faultAt, fake::Fault fault) {
  fake::Kernel& kernel = fake::Kernel::Get();
  kernel.Reset();
  fake::ResetCF();
  scenario.setup(kernel);
  if (fault != fake::Fault::None) kernel.ArmFault(faultAt, fault);
  try {
    return scenario.run();
  } catch (const std::exception& e) {
    Outcome outcome;
    outcome.threw = true;
    outcome.code = "not a SnapError";
    outcome.message = e.what();
    return outcome;
  }
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
  for (uint64_t k = 1; k <= calls; ++k) {
    for (fake::Fault fault : fake::kAllFaults) {
      Outcome faulted = RunOnce(scenario, k, fault);
      ++tally.runs;
      if (!kernel.FaultFired()) {
        if (scenario.waitForBlockedCalls) kernel.ReleaseBlockedCalls();
        continue;  // a release call: never failed on purpose (see fake_kernel.cc)
      }
      ++injected;
      const std::string where = scenario.name + ", call " + std::to_string(k) + " (" +
                                (k <= log.size() ? log[k - 1] : std::string("?")) + ") fails: " + fake::FaultName(fault);
      Report(where, AfterRun(scenario, faulted, fault), tally);
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
