// The Go runtime's own function table (.gopclntab, or .data.rel.ro.gopclntab in a PIE),
// read from the file: which function holds an address, its name, its flags, and its
// SP-delta table (pcsp: how far below the caller's stack pointer this function's stack
// pointer is, at every pc). Go's own traceback unwinds by exactly this table, and the Go
// linker derives .debug_frame from it; unlike .debug_frame it is in every Go binary,
// stripped (-ldflags=-s -w) or not. Private to elf_file.cc. Go 1.16 and later (pclntab
// magic 0xfffffffa, 0xfffffff0, 0xfffffff1); older tables are not read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "elf_file.h"

namespace iokitsnap {
namespace elf {
namespace gopclntab {

// One function of the table.
struct Function {
  uint64_t entry = 0;  // its first byte (an ELF virtual address)
  uint64_t end = 0;    // the next function's entry
  uint64_t offset = 0;  // where its _func record starts in the table
};

class Table {
 public:
  // `bytes` of the section; `textStart` the address of runtime.text (the base of 1.18+
  // entry offsets), 0 when unknown (then the table's own header word is used). nullptr
  // when the bytes are no pclntab this reads.
  static std::unique_ptr<Table> Parse(std::vector<uint8_t> bytes, uint64_t textStart);

  std::optional<Function> FunctionAt(uint64_t address) const;
  // The function's name ("runtime.futexsleep"), empty when unreadable.
  std::string Name(const Function& function) const;
  // The unwind rule at `address` inside `function` (see elf_file.h), for `machine`: the
  // caller's stack pointer is this frame's plus its SP delta (plus the pushed return
  // address on x86_64). Undefined return address for a function Go marks TOPFRAME (the
  // outermost of a stack: goexit, mstart, rt0_go) or SPWRITE (it writes SP: mcall,
  // systemstack, asmcgocall, morestack; the frames past it are another stack's, and Go's
  // own traceback stops there too). nullopt when the SP-delta table is unreadable.
  std::optional<UnwindRule> RuleAt(const Function& function, uint64_t address, Machine machine) const;

 private:
  enum class Version : uint8_t { Go116, Go118, Go120 };
  bool Read(uint64_t offset, uint64_t size, void* out) const;
  uint64_t Word(uint64_t offset) const;  // a pointer-sized value
  std::optional<int64_t> SpDelta(const Function& function, uint64_t address) const;
  uint64_t EntryAt(uint64_t index) const;  // functab entry `index` (0..count), as an address

  std::vector<uint8_t> bytes_;
  Version version_ = Version::Go118;
  uint8_t quantum_ = 1;
  uint8_t ptrSize_ = 8;
  uint64_t textStart_ = 0;
  uint64_t count_ = 0;         // functions
  uint64_t names_ = 0;         // funcnametab
  uint64_t pcTable_ = 0;       // pctab
  uint64_t functions_ = 0;     // functab / the _func records' base
};

}  // namespace gopclntab
}  // namespace elf
}  // namespace iokitsnap
