// What every darwin-logic scenario shares: the outcome of one run, the checks made
// after every run (with or without an injected fault), and the tally that ends in
// the one summary line.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../../native/backend.h"
#include "fake_kernel.h"

namespace harness {

struct Outcome {
  bool threw = false;
  std::string code;     // SnapError code
  std::string message;
  iokitsnap::ProcessRecord process;
  std::vector<iokitsnap::ProcessRecord> more;  // further records of the same run (two samplers, two samples)
  iokitsnap::AcceleratorSampleRecord accelerators;
  bool hung = false;    // the run outlasted the watchdog: a real-time block was waited for without a deadline
};

struct Scenario {
  std::string name;
  std::function<void(fake::Kernel&)> setup;  // script the world (no OS calls)
  std::function<Outcome()> run;              // call the code under test
  // Checks of the fault-free run; each failed check is one line in `failures`.
  std::function<void(const Outcome&, fake::Kernel&, std::vector<std::string>& failures)> expect;
  bool injectFaults = false;
  bool waitForBlockedCalls = false;  // abandoned calls are let go before the leak check (where threads cannot be counted)
};

// Runs the code under test, catching what it throws.
Outcome Capture(const std::function<void(Outcome&)>& body);

std::vector<Scenario> ThreadScenarios();
std::vector<Scenario> RegistryScenarios(const std::vector<std::string>& registryFiles, const std::string& emitDir);

// Small helpers for expectations.
const iokitsnap::LimitRecord* FindLimit(const std::vector<iokitsnap::LimitRecord>& limits, const std::string& field,
                                        const std::string& code);
void Expect(bool ok, const std::string& what, std::vector<std::string>& failures);

}  // namespace harness
