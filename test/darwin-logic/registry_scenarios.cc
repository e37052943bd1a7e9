// Registry scenarios: services whose properties come from real ioreg captures (JSON
// written by test/darwin-logic/registry-json.ts from test/fixtures/ioreg), read
// through native/darwin/accelerators.cc and cf_property.cc; the record can be
// written out as JSON for the tap test to map and compare with importIoreg.
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "fake_cf.h"
#include "harness.h"

namespace harness {
namespace {

using fake::Json;
using fake::Kernel;
using iokitsnap::AcceleratorOptions;
using iokitsnap::PropertyValue;

std::string Base64(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// PropertyValue → JSON, as the addon hands it to JavaScript.
std::string ToJson(const PropertyValue& value) {
  switch (value.kind) {
    case PropertyValue::Kind::Null: return "null";
    case PropertyValue::Kind::Bool: return value.boolean ? "true" : "false";
    case PropertyValue::Kind::Number: {
      char buffer[40];
      std::snprintf(buffer, sizeof buffer, "%.17g", value.number);
      return buffer;
    }
    case PropertyValue::Kind::String: return fake::Quote(value.text);
    case PropertyValue::Kind::Data: return "{\"$data\":" + fake::Quote(Base64(value.text)) + "}";
    case PropertyValue::Kind::Array: {
      std::string out = "[";
      for (size_t i = 0; i < value.items.size(); ++i) out += (i ? "," : "") + ToJson(value.items[i]);
      return out + "]";
    }
    case PropertyValue::Kind::Dict: {
      std::string out = "{";
      for (size_t i = 0; i < value.entries.size(); ++i) {
        out += (i ? "," : "") + fake::Quote(value.entries[i].first) + ":" + ToJson(value.entries[i].second);
      }
      return out + "}";
    }
  }
  return "null";
}

std::string ToJson(const iokitsnap::AcceleratorSampleRecord& sample) {
  std::string out = "{\"accelerators\":[";
  for (size_t i = 0; i < sample.accelerators.size(); ++i) {
    const auto& a = sample.accelerators[i];
    std::string chain = "[";
    for (size_t c = 0; c < a.classChain.size(); ++c) chain += (c ? "," : "") + fake::Quote(a.classChain[c]);
    chain += "]";
    out += std::string(i ? "," : "") + "{\"id\":" + fake::Quote(a.id) + ",\"name\":" + fake::Quote(a.name) +
           ",\"className\":" + fake::Quote(a.className) + ",\"classChain\":" + chain +
           ",\"location\":" + fake::Quote(a.location) +
           ",\"busyCount\":" + (a.busyCount ? std::to_string(*a.busyCount) : "null") +
           ",\"busyTimeNs\":" + (a.busyTimeNs ? std::to_string(*a.busyTimeNs) : "null") + ",\"serviceState\":" +
           (a.serviceState ? std::string("{\"registered\":") + (a.serviceState->registered ? "true" : "false") +
                                 ",\"matched\":" + (a.serviceState->matched ? "true" : "false") +
                                 ",\"active\":" + (a.serviceState->active ? "true" : "false") + "}"
                           : "null") +
           ",\"retainCount\":" + (a.retainCount ? std::to_string(*a.retainCount) : "null") +
           ",\"properties\":" + ToJson(a.properties) + "}";
  }
  out += "],\"limits\":[";
  for (size_t i = 0; i < sample.limits.size(); ++i) {
    const auto& l = sample.limits[i];
    out += std::string(i ? "," : "") + "{\"subject\":" + fake::Quote(l.subject) + ",\"field\":" + fake::Quote(l.field) +
           ",\"code\":" + fake::Quote(l.code) + ",\"reason\":" + fake::Quote(l.reason) + "}";
  }
  return out + "]}";
}

// {"services": [{id, name, location, classChain, state, busyCount, busyTimeNs, retainCount, properties}]}
std::vector<fake::Service> LoadServices(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  const Json root = Json::Parse(text.str());
  std::vector<fake::Service> services;
  for (const Json& item : root.Get("services")->items) {
    fake::Service service;
    service.id = std::stoull(item.Get("id")->text, nullptr, 16);
    service.name = item.Get("name")->text;
    service.location = item.Get("location")->text;
    for (const Json& name : item.Get("classChain")->items) service.classChain.push_back(name.text);
    service.state = static_cast<uint64_t>(item.Get("state")->number);
    service.busyCount = static_cast<uint32_t>(item.Get("busyCount")->number);
    service.busyTimeNs = static_cast<uint64_t>(item.Get("busyTimeNs")->number);
    service.retainCount = static_cast<uint32_t>(item.Get("retainCount")->number);
    service.properties = *item.Get("properties");
    services.push_back(std::move(service));
  }
  return services;
}

AcceleratorOptions Quick() {
  AcceleratorOptions options;
  options.callTimeoutMs = 50;  // real time: a blocked fake call is let go only at the end of the run
  return options;
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::vector<Scenario> RegistryScenarios(const std::vector<std::string>& registryFiles, const std::string& emitDir) {
  std::vector<Scenario> scenarios;
  for (const std::string& path : registryFiles) {
    const std::vector<fake::Service> services = LoadServices(path);
    Scenario s;
    s.name = "the registry of " + BaseName(path);
    s.setup = [services](Kernel& kernel) {
      for (const fake::Service& service : services) kernel.AddService(service);
    };
    s.run = [] {
      return Capture([](Outcome& outcome) { outcome.accelerators = iokitsnap::SampleAccelerators(Quick(), nullptr); });
    };
    s.expect = [path, emitDir, count = services.size()](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
      Expect(!outcome.threw, "threw " + outcome.code + ": " + outcome.message, failures);
      Expect(outcome.accelerators.accelerators.size() == count, "every IOAccelerator service is read", failures);
      Expect(outcome.accelerators.limits.empty(), "no limits", failures);
      if (!emitDir.empty()) {
        std::ofstream(emitDir + "/" + BaseName(path)) << ToJson(outcome.accelerators) << "\n";
      }
    };
    s.injectFaults = true;
    s.waitForBlockedCalls = true;
    scenarios.push_back(s);

    Scenario wedged;
    wedged.name = "a wedged IOPowerManagement (" + BaseName(path) + "): one deadline, then skipped";
    wedged.setup = [services](Kernel& kernel) {
      for (fake::Service service : services) {
        service.blocksPowerRead = true;
        kernel.AddService(service);
      }
    };
    wedged.run = [] {
      return Capture([](Outcome& outcome) {
        auto context = iokitsnap::NewAcceleratorContext();
        iokitsnap::SampleAccelerators(Quick(), context);
        outcome.accelerators = iokitsnap::SampleAccelerators(Quick(), context);
      });
    };
    wedged.expect = [](const Outcome& outcome, Kernel&, std::vector<std::string>& failures) {
      Expect(!outcome.threw, "threw " + outcome.code, failures);
      const auto* skipped = FindLimit(outcome.accelerators.limits, "properties", "ETIMEDOUT");
      Expect(skipped != nullptr && skipped->reason.find("was not attempted") != std::string::npos,
             "the second sample skips the read that is still stuck, and says so", failures);
      Expect(!outcome.accelerators.accelerators.empty() && !outcome.accelerators.accelerators[0].className.empty(),
             "the header facts are still read", failures);
    };
    wedged.waitForBlockedCalls = true;
    scenarios.push_back(wedged);
  }
  return scenarios;
}

}  // namespace harness
