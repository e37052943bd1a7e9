// Walking a Linux thread's user stack from a copy: registers and stack bytes taken
// while the thread was held (see user_stacks.cc), walked after it was let go. Pure:
// no ptrace, no /proc, so every path runs the same under a test.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../model.h"
#include "elf_file.h"

namespace iokitsnap {
namespace stacks {

// One line of /proc/<pid>/maps: "start-end perms offset dev inode path".
struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t offset = 0;
  bool readable = false;
  bool executable = false;
  uint64_t inode = 0;
  std::string device;  // "fd:01"
  std::string path;    // "" for anonymous; "[stack]", "[vdso]"; " (deleted)" stays on the path
};

// The mappings, sorted by start (as the kernel prints them). Lines that do not parse
// are skipped; `*malformed` counts them.
std::vector<Mapping> ParseMaps(std::string_view text, size_t* malformed);
// The mapping that holds `address`, or nullptr.
const Mapping* FindMapping(const std::vector<Mapping>& maps, uint64_t address);
// Whether the mapping is a file the walk may open (a path, not "[vdso]", not deleted).
bool IsFileMapping(const Mapping& mapping);

// The ELF files of one process's mappings, opened on first need and kept for the
// sample (or, in a sampler, for as long as the same file is mapped), keyed by device,
// inode and path. `processDir` is the process's /proc directory ("/proc/<pid>"): each
// file is the mapped object itself (see elf::ElfFile::OpenMapped), never a path the
// process controls.
class ModuleCache {
 public:
  ModuleCache(std::string processDir, elf::Machine machine) : processDir_(std::move(processDir)), machine_(machine) {}
  // The file behind `mapping`, or nullptr (and *error, once per file) when it cannot be read.
  const elf::ElfFile* Get(const Mapping& mapping, int* error);
  // The fds its files hold open.
  size_t HeldFds() const;

 private:
  struct Entry {
    std::unique_ptr<elf::ElfFile> file;
    int error = 0;
  };
  std::string processDir_;
  elf::Machine machine_;
  std::map<std::string, Entry> files_;  // "device inode path"
};

// What a thread held long enough gives: its registers, and its stack from sp up.
struct Registers {
  uint64_t pc = 0;
  uint64_t sp = 0;
  std::optional<uint64_t> fp;  // unknown when read from the syscall file, not ptrace
  std::optional<uint64_t> lr;  // arm64
};
struct StackCopy {
  uint64_t base = 0;   // the address of bytes[0] (the thread's sp when copied)
  std::string bytes;
  bool ReadWord(uint64_t address, uint64_t* value) const;
};

// Why a walk ended.
enum class WalkEnd : uint8_t {
  Outermost,       // the CFI marks the outermost frame, or a null return address / frame pointer
  DepthLimit,      // maxStackDepth frames
  BeyondCopy,      // the next frame lies above the copied bytes
  NoUnwindInfo,    // no CFI for the pc and no frame pointer to follow
  NoFramePointer,  // the CFI needs the frame pointer, which was not read (syscall-file registers)
  NotCode,         // a return address outside any executable mapping
  NotAscending,    // the next frame is not above this one: a broken chain
};

struct WalkResult {
  std::vector<FrameRecord> frames;  // innermost first; module, offset, symbol filled where known
  WalkEnd end = WalkEnd::Outermost;
  // The module (path) of the last frame when the walk ended early, for the limit's text.
  std::string endModule;
  // NoUnwindInfo in a module that has CFI, just none this walk can use at that address (a
  // return address kept in another register, as vfork does; a CFA computed by expression).
  bool endModuleHasUnwindInfo = false;
  // Module files that could not be opened: path → errno.
  std::map<std::string, int> unreadable;
};

struct WalkOptions {
  elf::Machine machine = elf::Machine::X86_64;
  uint32_t maxDepth = 128;
};

// Walks from `registers` through `stack`, by CFI where a module has it and by the
// frame-pointer chain where it does not, then names each frame (module, offset into
// it, symbol). Return addresses are looked up at pc - 1 (the call, not what follows).
WalkResult Walk(const Registers& registers, const StackCopy& stack, const std::vector<Mapping>& maps,
                ModuleCache& modules, const WalkOptions& options);

// Pointer-authentication bits off an arm64 return address (user addresses fit 48 bits
// on every Linux arm64 configuration that signs them); unchanged on x86_64.
uint64_t StripReturnAddress(uint64_t address, elf::Machine machine);

}  // namespace stacks
}  // namespace iokitsnap
