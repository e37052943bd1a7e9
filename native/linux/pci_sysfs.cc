#include "pci_sysfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "../backend.h"

namespace iokitsnap::pci {

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

ScopedDir::~ScopedDir() {
  if (dir_ != nullptr) ::closedir(dir_);
}

std::optional<std::string> ReadAttribute(int dirFd, const char* path, int* error) {
  ScopedFd fd(::openat(dirFd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    if (error != nullptr) *error = errno;
    return std::nullopt;
  }
  // sysfs attributes are at most one page; the ones read here are a line.
  char buffer[4096];
  size_t used = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer + used, sizeof(buffer) - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (error != nullptr) *error = errno;
      return std::nullopt;
    }
    used += static_cast<size_t>(n);
    // sysfs hands over a whole attribute in one read; a short read is the end
    // (and saves the second syscall that would only return 0).
    if (n == 0 || used == sizeof(buffer) || static_cast<size_t>(n) < sizeof(buffer) - (used - n)) break;
  }
  while (used > 0 && (buffer[used - 1] == '\n' || buffer[used - 1] == ' ')) --used;
  return std::string(buffer, used);
}

std::optional<std::string> ReadLink(int dirFd, const char* path) {
  char buffer[4096];
  ssize_t n = ::readlinkat(dirFd, path, buffer, sizeof(buffer));
  if (n < 0 || static_cast<size_t>(n) >= sizeof(buffer)) return std::nullopt;
  return std::string(buffer, static_cast<size_t>(n));
}

std::optional<int64_t> ParseInteger(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  errno = 0;
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(value);
}

bool IsAcceleratorClass(uint32_t classCode) {
  switch (classCode >> 8) {
    case 0x0300:  // VGA compatible controller
    case 0x0302:  // 3D controller (NVIDIA compute GPUs, hybrid-graphics dGPUs)
    case 0x0380:  // display controller
    case 0x1200:  // processing accelerator (Intel NPU, Habana Gaudi, …)
      return true;
    default:
      return false;
  }
}

namespace {

std::string Basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "<dir>/<relative link target>" with "." and ".." folded, without touching the
// file system again (sysfs links are relative and never loop).
std::string JoinLexically(const std::string& dir, const std::string& target) {
  const bool absolute = (!target.empty() && target[0] == '/') || (!dir.empty() && dir[0] == '/');
  std::vector<std::string> parts;
  auto push = [&parts, absolute](const std::string& path) {
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      std::string part = path.substr(start, end - start);
      if (part == "..") {
        if (!parts.empty() && parts.back() != "..") parts.pop_back();
        else if (!absolute) parts.push_back(part);  // a relative sysRoot such as "../fixtures/sys"
      } else if (!part.empty() && part != ".") {
        parts.push_back(std::move(part));
      }
      start = end + 1;
    }
  };
  if (target.empty() || target[0] != '/') push(dir);
  push(target);
  std::string joined = absolute ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined += '/';
    joined += parts[i];
  }
  return joined;
}

// Numbered entries of a subdirectory: drm/card0, drm/renderD128, accel/accel0.
void ListNumbered(int deviceFd, const char* subdir, const char* prefix, std::vector<std::string>& out) {
  int fd = ::openat(deviceFd, subdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* raw = ::fdopendir(fd);
  if (raw == nullptr) {
    ::close(fd);
    return;
  }
  ScopedDir dir(raw);
  const size_t prefixLength = std::strlen(prefix);
  std::vector<std::pair<long, std::string>> found;
  while (dirent* entry = ::readdir(dir.get())) {
    const char* name = entry->d_name;
    if (std::strncmp(name, prefix, prefixLength) != 0) continue;
    const char* digits = name + prefixLength;
    if (*digits == '\0' || std::strspn(digits, "0123456789") != std::strlen(digits)) continue;
    found.emplace_back(std::strtol(digits, nullptr, 10), name);
  }
  std::sort(found.begin(), found.end());
  for (auto& item : found) out.push_back(std::move(item.second));
}

std::optional<int64_t> ReadInteger(int dirFd, const char* path) {
  auto text = ReadAttribute(dirFd, path);
  return text ? ParseInteger(*text) : std::nullopt;
}

std::optional<std::string> ReadNonEmpty(int dirFd, const char* path) {
  auto text = ReadAttribute(dirFd, path);
  if (!text || text->empty()) return std::nullopt;
  return text;
}

}  // namespace

PciScan ScanAcceleratorDevices(const std::string& sysRoot) {
  PciScan scan;
  struct stat info {};
  if (sysRoot.empty() || ::stat(sysRoot.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw SnapError("EINVAL",
                    "sysRoot '" + sysRoot + "' is not a directory: pass the root of a sysfs tree (default /sys)",
                    "stat", errno);
  }
  const std::string devicesPath = sysRoot + "/bus/pci/devices";
  int fd = ::open(devicesPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const bool denied = error == EACCES || error == EPERM;
    scan.limits.push_back(LimitRecord{
        "accelerators", "accelerators", denied ? "EPERM" : "ENOENT",
        std::string(denied ? "cannot read " : "no PCI bus in sysfs: ") + devicesPath + " (" + std::strerror(error) +
            "), so no PCI accelerators can be listed",
        denied ? "run with permission to read " + devicesPath
               : "in a container, mount the host's /sys (read-only) or run on the host"});
    return scan;
  }
  DIR* raw = ::fdopendir(fd);
  if (raw == nullptr) {
    ::close(fd);
    throw SnapError("EIO", "cannot list " + devicesPath + ": " + std::strerror(errno), "fdopendir", errno);
  }
  ScopedDir devices(raw);
  const int devicesFd = ::dirfd(devices.get());
  while (dirent* entry = ::readdir(devices.get())) {
    if (entry->d_name[0] == '.') continue;
    const std::string address = entry->d_name;
    // The class decides before anything else is opened: most PCI devices are not accelerators.
    auto classText = ReadAttribute(devicesFd, (address + "/class").c_str());
    if (!classText) continue;  // vanished (hot-unplug) or not a device
    auto classCode = ParseInteger(*classText);
    if (!classCode || !IsAcceleratorClass(static_cast<uint32_t>(*classCode))) continue;
    ScopedFd deviceFd(::openat(devicesFd, address.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!deviceFd.valid()) continue;
    auto link = ReadLink(devicesFd, address.c_str());
    PciDeviceDir device;
    device.address = address;
    device.location = link ? JoinLexically(devicesPath, *link) : devicesPath + "/" + address;
    device.classText = *classText;
    device.dir = std::move(deviceFd);
    scan.devices.push_back(std::move(device));
  }
  std::sort(scan.devices.begin(), scan.devices.end(),
            [](const PciDeviceDir& a, const PciDeviceDir& b) { return a.address < b.address; });
  return scan;
}

PciFacts ReadPciFacts(const PciDeviceDir& device) {
  const int fd = device.dir.get();
  PciFacts facts;
  facts.vendorId = ReadNonEmpty(fd, "vendor");
  facts.deviceId = ReadNonEmpty(fd, "device");
  facts.subsystemVendorId = ReadNonEmpty(fd, "subsystem_vendor");
  facts.subsystemDeviceId = ReadNonEmpty(fd, "subsystem_device");
  facts.revision = ReadNonEmpty(fd, "revision");
  if (auto link = ReadLink(fd, "driver")) facts.driver = Basename(*link);
  facts.powerState = ReadNonEmpty(fd, "power_state");
  if (auto allowed = ReadInteger(fd, "d3cold_allowed")) facts.d3coldAllowed = *allowed != 0;
  facts.runtimeStatus = ReadNonEmpty(fd, "power/runtime_status");
  facts.runtimeControl = ReadNonEmpty(fd, "power/control");
  facts.runtimeActiveMs = ReadInteger(fd, "power/runtime_active_time");
  facts.runtimeSuspendedMs = ReadInteger(fd, "power/runtime_suspended_time");
  facts.numaNode = ReadInteger(fd, "numa_node");
  // The link attributes read the PCIe capability from config space; a device in
  // D3 has its link down, so they are read only while it is awake.
  if (!ReadingMayWake(facts)) {
    facts.currentLinkSpeed = ReadNonEmpty(fd, "current_link_speed");
    facts.currentLinkWidth = ReadInteger(fd, "current_link_width");
    facts.maxLinkSpeed = ReadNonEmpty(fd, "max_link_speed");
    facts.maxLinkWidth = ReadInteger(fd, "max_link_width");
  }
  ListNumbered(fd, "drm", "card", facts.drmCards);
  ListNumbered(fd, "drm", "renderD", facts.drmRenderNodes);
  ListNumbered(fd, "accel", "accel", facts.accelNodes);
  return facts;
}

bool ReadingMayWake(const PciFacts& facts) {
  if (facts.powerState && *facts.powerState != "D0") return true;
  if (!facts.runtimeStatus) return false;  // no runtime PM: the device is never runtime-suspended
  return *facts.runtimeStatus != "active" && *facts.runtimeStatus != "unsupported";
}

}  // namespace iokitsnap::pci
