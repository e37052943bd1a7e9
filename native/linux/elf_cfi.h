// DWARF call-frame information (.eh_frame, .debug_frame) reduced to the unwind rule
// a return-address walk needs (see elf_file.h). Private to elf_file.cc: it works on
// section bytes already read into memory, so every parse here is a bounds-checked
// walk over a buffer, and work is linear in the section sizes (the FDE index is
// sorted once: n log n).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "elf_file.h"

namespace iokitsnap {
namespace elf {
namespace cfi {

// Bytes of one section and the virtual address they load at (pc-relative pointers
// are relative to it).
struct SectionBytes {
  std::vector<uint8_t> bytes;
  uint64_t address = 0;
};

// Reads the 8-byte pointer stored at a virtual address of the file (for the
// DW_EH_PE_indirect flag); false when no loaded byte of the file holds it.
using PointerReader = std::function<bool(uint64_t address, uint64_t* value)>;

enum class Format : uint8_t { EhFrame, DebugFrame };

// What one table says about an address: whether an FDE covers it, and the rule when
// one does and it can be evaluated.
struct Lookup {
  bool covered = false;
  std::optional<UnwindRule> rule;
};

class FrameTable {
 public:
  // `header` is .eh_frame_hdr (EhFrame only; empty bytes when the file has none or it
  // is unusable, then the FDEs are indexed once on the first lookup).
  FrameTable(Format format, Machine machine, SectionBytes frames, SectionBytes header, PointerReader readPointer);

  bool Empty() const { return frames_.bytes.empty(); }
  Lookup RuleAt(uint64_t address) const;

 private:
  struct IndexEntry {
    uint64_t start;
    uint64_t end;
    uint64_t fdeOffset;
  };
  std::optional<uint64_t> FdeFromHeader(uint64_t address) const;
  void BuildIndex() const;
  Lookup RuleFromFde(uint64_t fdeOffset, uint64_t address) const;

  Format format_;
  Machine machine_;
  SectionBytes frames_;
  SectionBytes header_;
  PointerReader readPointer_;
  // From .eh_frame_hdr: where its sorted (datarel|sdata4) table starts, and its size.
  bool headerTable_ = false;
  uint64_t tableOffset_ = 0;
  uint64_t tableCount_ = 0;
  mutable std::once_flag indexOnce_;
  mutable std::vector<IndexEntry> index_;
};

}  // namespace cfi
}  // namespace elf
}  // namespace iokitsnap
