// Reading PCI devices from sysfs (<sysRoot>/bus/pci/devices), the layout of the
// kernel's Documentation/ABI/testing/sysfs-bus-pci. Every read is relative to an
// open directory fd, so one device costs one path walk, and `sysRoot` can be a
// fixture tree. Nothing here interprets a value beyond parsing it.
#pragma once

#include <dirent.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../model.h"

namespace iokitsnap::pci {

// An owned file descriptor, closed on destruction.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { int fd = fd_; fd_ = -1; return fd; }

 private:
  int fd_ = -1;
};

// An owned DIR*, closed on destruction (closing it closes the fd it was made from).
class ScopedDir {
 public:
  explicit ScopedDir(DIR* dir) : dir_(dir) {}
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  ~ScopedDir();
  DIR* get() const { return dir_; }

 private:
  DIR* dir_;
};

// A sysfs attribute's text without the trailing newline; nullopt when it does not
// exist or cannot be read (errno, when `error` is given).
std::optional<std::string> ReadAttribute(int dirFd, const char* path, int* error = nullptr);
std::optional<std::string> ReadLink(int dirFd, const char* path);
// "0x10de", "16", "-1": a whole-string integer in base 16 (with 0x) or 10.
std::optional<int64_t> ParseInteger(const std::string& text);

// VGA (0x0300), 3D (0x0302), other display (0x0380), processing accelerator (0x1200).
bool IsAcceleratorClass(uint32_t classCode);

struct PciDeviceDir {
  std::string address;   // "0000:01:00.0"
  std::string location;  // the device's sysfs path, symlinks resolved lexically
  std::string classText; // "0x030200", as sysfs prints it
  ScopedFd dir;          // the device directory
};

struct PciScan {
  std::vector<PciDeviceDir> devices;  // accelerator classes only, sorted by address
  std::vector<LimitRecord> limits;
};

// Throws SnapError(EINVAL) when sysRoot is not a directory (a wrong argument).
// A sysfs without bus/pci (some containers) is an empty list plus a limit.
PciScan ScanAcceleratorDevices(const std::string& sysRoot);

// The generic facts every PCI device has, as read (absent files stay nullopt).
struct PciFacts {
  std::optional<std::string> vendorId, deviceId, subsystemVendorId, subsystemDeviceId, revision;
  std::string driver;  // basename of the `driver` link; "" when unbound
  std::optional<std::string> powerState;       // power_state: D0, D1, D2, D3hot, D3cold, unknown, error
  std::optional<bool> d3coldAllowed;
  std::optional<std::string> runtimeStatus;    // power/runtime_status
  std::optional<std::string> runtimeControl;   // power/control: "auto" or "on"
  std::optional<int64_t> runtimeActiveMs, runtimeSuspendedMs;
  std::optional<std::string> currentLinkSpeed, maxLinkSpeed;  // "16.0 GT/s PCIe"
  std::optional<int64_t> currentLinkWidth, maxLinkWidth;
  std::optional<int64_t> numaNode;  // -1: no NUMA affinity
  std::vector<std::string> drmCards, drmRenderNodes, accelNodes;  // "card0", "renderD128", "accel0"
};

PciFacts ReadPciFacts(const PciDeviceDir& device);

// Whether reading a driver attribute could resume the device from runtime suspend:
// true unless runtime PM says it is active (or has no runtime PM at all) and the
// PCI power state, when known, is D0.
bool ReadingMayWake(const PciFacts& facts);

}  // namespace iokitsnap::pci
