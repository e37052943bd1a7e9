// ReadHost and MonotonicNs for macOS.
#include <sys/sysctl.h>
#include <sys/utsname.h>
#include <time.h>

#include <string>
#include <vector>

#include "../backend.h"

namespace iokitsnap {
namespace {

std::optional<std::string> SysctlString(const char* name) {
  size_t size = 0;
  if (sysctlbyname(name, nullptr, &size, nullptr, 0) != 0 || size == 0) return std::nullopt;
  std::vector<char> buffer(size + 1, '\0');
  if (sysctlbyname(name, buffer.data(), &size, nullptr, 0) != 0) return std::nullopt;
  std::string value(buffer.data());  // stops at the terminating NUL
  if (value.empty()) return std::nullopt;
  return value;
}

}  // namespace

HostRecord ReadHost() {
  HostRecord host;
  host.platform = "darwin";
  // The build's architecture, as Node names it (process.arch): a binary running under
  // Rosetta reports x64, which is what it is sampling with.
#if defined(__arm64__) || defined(__aarch64__)
  host.arch = "arm64";
#else
  host.arch = "x64";
#endif
  // The Darwin kernel release (kern.osrelease, "23.2.0"), as os.release() gives it.
  struct utsname names;
  if (uname(&names) == 0) host.osRelease = names.release;
  host.model = SysctlString("hw.model");  // "Mac15,3", "MacBookPro15,2"
  return host;
}

// CLOCK_UPTIME_RAW is mach_absolute_time in ns: the clock of Node's process.hrtime
// (libuv uv_hrtime) on macOS, so native and JS timestamps subtract cleanly.
uint64_t MonotonicNs() { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }

}  // namespace iokitsnap
