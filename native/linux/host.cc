// Host facts and the monotonic clock on Linux.
#include <sys/utsname.h>
#include <time.h>

#include <fstream>

#include "../backend.h"

namespace iokitsnap {

HostRecord ReadHost() {
  HostRecord host;
  host.platform = "linux";
  struct utsname names {};
  if (uname(&names) == 0) {
    host.osRelease = names.release;
    const std::string machine = names.machine;
    host.arch = machine == "x86_64" ? "x64" : machine == "aarch64" ? "arm64" : machine;
  }
  // DMI product name, when the firmware gives one (absent in most containers and on Arm boards).
  std::ifstream product("/sys/class/dmi/id/product_name");
  std::string model;
  if (product && std::getline(product, model) && !model.empty()) host.model = model;
  return host;
}

uint64_t MonotonicNs() {
  // CLOCK_MONOTONIC: the clock of process.hrtime(), so JS and native deltas agree.
  struct timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
}

}  // namespace iokitsnap
