// One ELF file of a process's memory map, read from disk (never from the process's
// memory): which function holds an address (.symtab, .dynsym, or a separate debug
// file found through .gnu_debuglink or the build id), and how to find a frame's
// caller at an address (DWARF call-frame information from .eh_frame or .debug_frame).
//
// Used after the thread it serves has been let go: a stack walk copies registers and
// stack memory while the thread is held, and reads these files only afterwards.
// Plain C++: no ptrace, no Node-API, so the logic is tested on its own. The methods are
// const and may be called from several threads at once: what they load on first use
// (symbol tables, CFI, the debug file) is loaded once, under std::call_once.
#pragma once

#include <errno.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace iokitsnap {
namespace elf {

// The registers a walk tracks, on both machines this reads (x86_64, arm64).
enum class Machine : uint8_t { X86_64, Arm64 };

// How the caller's registers follow from a frame's at one address: DWARF CFI reduced
// to what a return-address walk needs. CFA (the canonical frame address) is a base
// register plus an offset; the return address and the caller's frame pointer are
// either saved at an offset from the CFA or still in their registers.
struct UnwindRule {
  enum class Base : uint8_t { Sp, Fp };  // x86_64: rsp / rbp; arm64: sp / x29
  Base cfaBase = Base::Sp;
  int64_t cfaOffset = 0;
  // Where the return address is. InLr: still in the link register (arm64, before the
  // prologue saved it); Undefined: this is the outermost frame (DW_CFA_undefined on
  // the return-address column: _start, clone's child, thread entry).
  enum class Ra : uint8_t { AtCfa, InLr, Undefined };
  Ra ra = Ra::AtCfa;
  int64_t raOffset = 0;  // with AtCfa: the return address is at CFA + raOffset
  // The caller's frame pointer. Same: the register was not saved at this address, so
  // the caller's value is this frame's; AtCfa: saved at CFA + fpOffset.
  enum class Fp : uint8_t { Same, AtCfa };
  Fp fp = Fp::Same;
  int64_t fpOffset = 0;
};

struct Symbol {
  std::string name;     // as in the symbol table (mangled C++ names are kept as they are)
  uint64_t offset = 0;  // bytes from the symbol's start to the address asked for
};

// A file as one line of a process's maps shows it: what the stack walk opens.
struct MappedObject {
  std::string processDir;  // "/proc/<pid>" of the process that maps it
  uint64_t start = 0;      // the mapping's range, which names it under map_files/
  uint64_t end = 0;
  std::string device;      // "fd:01" (major:minor, hex)
  uint64_t inode = 0;
  std::string path;        // as maps shows it: from our root when the file is reachable from
                           // it (a chrooted process), else from the process's own root
};

// The errno for a file at the mapped path that is not the mapped object (another device
// or inode: replaced since, or a link the process placed), and for one that is not a
// regular file (a device, a fifo: never opened for reading).
constexpr int kNotTheMappedFile = ESTALE;
constexpr int kNotRegular = ENODEV;

class ElfFile {
 public:
  // Opens `path` below `root` (root + path; `root` is "" or a directory taken as the
  // root) and reads its headers (pread into the heap, never mmap: a file truncated
  // while mapped would raise SIGBUS in this process). Only a regular file is opened for
  // reading (a device or fifo at that path is looked at through O_PATH, never opened). A
  // separate debug file is looked for under the same root. Returns nullptr and sets
  // `*error` (an errno; EINVAL: not an ELF file of `machine`) when it cannot.
  static std::unique_ptr<ElfFile> Open(const std::string& root, const std::string& path, Machine machine,
                                       int* error);
  // Opens the object a process maps, never a path that process controls: as root, the
  // mapping itself (<processDir>/map_files/<start>-<end>); otherwise, or where that is
  // refused, the path from our root, then from the process's root (<processDir>/root,
  // symlinks kept inside it), taken only when its device and inode are those of the
  // maps line. Its separate debug file is looked for under whichever root the path was
  // found in, and read only when the process's own user could read it.
  static std::unique_ptr<ElfFile> OpenMapped(const MappedObject& object, Machine machine, int* error);
  virtual ~ElfFile() = default;

  // The ELF virtual address of the byte at `fileOffset`, through the PT_LOAD segments;
  // nullopt when no segment maps that byte. With a mapping's start and file offset:
  // address = AddressOfFileOffset(pc - start + offset).
  virtual std::optional<uint64_t> AddressOfFileOffset(uint64_t fileOffset) const = 0;

  // The function that holds `address` (an ELF virtual address), from .symtab, else
  // .dynsym, else the separate debug file's .symtab; nullopt when none does.
  virtual std::optional<Symbol> SymbolAt(uint64_t address) const = 0;

  // The unwind rule at `address`: from .eh_frame (through .eh_frame_hdr's table when
  // present), else .debug_frame (of this file or its debug file); nullopt when no CFI
  // covers the address, or the rule needs what this reader does not evaluate (a
  // DWARF expression for the CFA, a return address in another register).
  virtual std::optional<UnwindRule> UnwindRuleAt(uint64_t address) const = 0;

  // Whether the file (or its debug file) has any symbol table, and any CFI.
  virtual bool HasSymbols() const = 0;
  virtual bool HasUnwindInfo() const = 0;
  // The separate debug file used, as the target sees it ("" when none).
  virtual const std::string& DebugFile() const = 0;
  // The fds it holds open (the file, and its debug file once found).
  virtual size_t HeldFds() const = 0;
};

}  // namespace elf
}  // namespace iokitsnap
