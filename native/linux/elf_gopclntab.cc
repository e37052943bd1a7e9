// gopclntab::Table (see elf_gopclntab.h). The layouts are Go's own (runtime/symtab.go,
// debug/gosym/pclntab.go): a header of pointer-sized words giving the function count
// and where the name table, the pc-value tables and the function table start; the
// function table of (entry, _func offset) pairs sorted by entry, with one more entry
// for the end of the text; and per function a _func record whose pcsp field is the
// offset of its SP-delta table in pctab. Every read is checked against the section.
#include "elf_gopclntab.h"

#include <cstring>

namespace iokitsnap {
namespace elf {
namespace gopclntab {
namespace {

constexpr uint32_t kMagic116 = 0xfffffffa;  // Go 1.16, 1.17
constexpr uint32_t kMagic118 = 0xfffffff0;  // Go 1.18, 1.19
constexpr uint32_t kMagic120 = 0xfffffff1;  // Go 1.20 and later
// _func.flag (Go 1.17+; a pad byte, always 0, in 1.16).
constexpr uint8_t kFlagTopFrame = 1;
constexpr uint8_t kFlagSpWrite = 2;
// The bytes of a _func record read here (through flag), in the largest layout.
constexpr uint64_t kFuncRecordBytes = 42;

}  // namespace

std::unique_ptr<Table> Table::Parse(std::vector<uint8_t> bytes, uint64_t textStart) {
  auto table = std::unique_ptr<Table>(new Table());
  table->bytes_ = std::move(bytes);
  Table& t = *table;
  uint32_t magic = 0;
  if (t.bytes_.size() < 8 + 8 * 8 || !t.Read(0, 4, &magic)) return nullptr;
  if (magic == kMagic116) t.version_ = Version::Go116;
  else if (magic == kMagic118) t.version_ = Version::Go118;
  else if (magic == kMagic120) t.version_ = Version::Go120;
  else return nullptr;
  t.quantum_ = t.bytes_[6];
  t.ptrSize_ = t.bytes_[7];
  if (t.bytes_[4] != 0 || t.bytes_[5] != 0 || (t.quantum_ != 1 && t.quantum_ != 2 && t.quantum_ != 4) ||
      t.ptrSize_ != 8)
    return nullptr;
  const auto word = [&t](unsigned index) { return t.Word(8 + uint64_t{index} * 8); };
  t.count_ = word(0);
  if (t.version_ == Version::Go116) {
    t.names_ = word(2);
    t.pcTable_ = word(5);
    t.functions_ = word(6);
  } else {
    // runtime.text as linked. In a PIE the word is relocated at load time: Go's linker
    // writes the link-time address into the file as well, an external linker's RELA
    // relocation may leave 0 there; then the caller's address of it (.text).
    const uint64_t headerText = word(2);
    t.textStart_ = headerText != 0 ? headerText : textStart;
    t.names_ = word(3);
    t.pcTable_ = word(6);
    t.functions_ = word(7);
  }
  const uint64_t size = t.bytes_.size();
  const uint64_t entryBytes = t.version_ == Version::Go116 ? 16 : 8;
  // The function table: `count` pairs and the end-of-text entry.
  if (t.count_ == 0 || t.count_ >= size || t.names_ >= size || t.pcTable_ >= size || t.functions_ >= size ||
      (size - t.functions_) < t.count_ * entryBytes + entryBytes / 2)
    return nullptr;
  if (t.version_ != Version::Go116 && t.textStart_ == 0) return nullptr;
  return table;
}

bool Table::Read(uint64_t offset, uint64_t size, void* out) const {
  if (offset > bytes_.size() || size > bytes_.size() - offset) return false;
  std::memcpy(out, bytes_.data() + offset, size);
  return true;
}

uint64_t Table::Word(uint64_t offset) const {
  uint64_t value = 0;
  return Read(offset, 8, &value) ? value : 0;
}

uint64_t Table::EntryAt(uint64_t index) const {
  if (version_ == Version::Go116) return Word(functions_ + index * 16);
  uint32_t offset = 0;
  Read(functions_ + index * 8, 4, &offset);
  return textStart_ + offset;
}

std::optional<Function> Table::FunctionAt(uint64_t address) const {
  // The last entry at or below the address; the entries are sorted (the runtime's
  // findfunc relies on it too).
  uint64_t low = 0, high = count_;
  while (low < high) {
    const uint64_t mid = low + (high - low) / 2;
    if (EntryAt(mid) <= address) low = mid + 1;
    else high = mid;
  }
  if (low == 0) return std::nullopt;
  const uint64_t index = low - 1;
  Function function;
  function.entry = EntryAt(index);
  function.end = EntryAt(index + 1);
  if (address >= function.end) return std::nullopt;
  uint64_t funcOffset = 0;
  if (version_ == Version::Go116) {
    funcOffset = Word(functions_ + index * 16 + 8);
  } else {
    uint32_t offset = 0;
    Read(functions_ + index * 8 + 4, 4, &offset);
    funcOffset = offset;
  }
  function.offset = functions_ + funcOffset;
  if (function.offset < functions_ || function.offset > bytes_.size() ||
      bytes_.size() - function.offset < kFuncRecordBytes)
    return std::nullopt;
  return function;
}

std::string Table::Name(const Function& function) const {
  int32_t nameOffset = 0;
  if (!Read(function.offset + (version_ == Version::Go116 ? 8 : 4), 4, &nameOffset) || nameOffset < 0) return {};
  const uint64_t at = names_ + static_cast<uint64_t>(nameOffset);
  if (at >= bytes_.size()) return {};
  const void* nul = std::memchr(bytes_.data() + at, 0, bytes_.size() - at);
  if (nul == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(bytes_.data() + at), static_cast<const uint8_t*>(nul) - (bytes_.data() + at));
}

std::optional<int64_t> Table::SpDelta(const Function& function, uint64_t address) const {
  uint32_t pcsp = 0;
  if (!Read(function.offset + (version_ == Version::Go116 ? 20 : 16), 4, &pcsp) || pcsp == 0) return std::nullopt;
  uint64_t at = pcTable_ + pcsp;
  // Unsigned LEB128 of at most 32 bits.
  const auto varint = [this, &at](uint32_t* value) {
    uint32_t result = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
      if (at >= bytes_.size()) return false;
      const uint8_t byte = bytes_[at++];
      result |= uint32_t(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;
  };
  // (value delta, pc delta) pairs from the entry: each value holds until the pc reached.
  // A zero value delta after the first pair ends the table (runtime.step).
  int64_t value = -1;
  uint64_t pc = function.entry;
  for (bool first = true;; first = false) {
    uint32_t valueDelta = 0, pcDelta = 0;
    if (!varint(&valueDelta) || (valueDelta == 0 && !first) || !varint(&pcDelta)) return std::nullopt;
    value += static_cast<int32_t>(-(valueDelta & 1) ^ (valueDelta >> 1));
    pc += uint64_t{pcDelta} * quantum_;
    if (address < pc) return value;
    if (pc >= function.end) return std::nullopt;
  }
}

std::optional<UnwindRule> Table::RuleAt(const Function& function, uint64_t address, Machine machine) const {
  // 1.18, 1.19: after funcID at 36; 1.20+: after startLine and funcID; 1.17: after the
  // 8-byte entry and funcID (in 1.16 a pad byte there, 0).
  uint8_t flag = 0;
  Read(function.offset + (version_ == Version::Go118 ? 37 : 41), 1, &flag);
  UnwindRule rule;
  if (flag & (kFlagTopFrame | kFlagSpWrite)) {
    rule.ra = UnwindRule::Ra::Undefined;
    return rule;
  }
  const std::optional<int64_t> delta = SpDelta(function, address);
  if (!delta || *delta < 0) return std::nullopt;
  rule.cfaBase = UnwindRule::Base::Sp;
  if (machine == Machine::X86_64) {
    // CALL pushed the return address just above the frame; a function with a frame saves
    // the caller's BP right below it (SUBQ $n, SP; MOVQ BP, n-8(SP), or since Go 1.21
    // PUSHQ BP first): at CFA - 16.
    rule.cfaOffset = *delta + 8;
    rule.ra = UnwindRule::Ra::AtCfa;
    rule.raOffset = -8;
    if (*delta > 0) {
      rule.fp = UnwindRule::Fp::AtCfa;
      rule.fpOffset = -16;
    }
    return rule;
  }
  // arm64: the return address arrives in LR; a function with a frame stores it at its new
  // SP (MOVD.W R30, -n(RSP)) and the caller's FP just below that (MOVD R29, -8(RSP)).
  rule.cfaOffset = *delta;
  if (*delta == 0) {
    rule.ra = UnwindRule::Ra::InLr;
    return rule;
  }
  rule.ra = UnwindRule::Ra::AtCfa;
  rule.raOffset = -*delta;
  rule.fp = UnwindRule::Fp::AtCfa;
  rule.fpOffset = -*delta - 8;
  return rule;
}

}  // namespace gopclntab
}  // namespace elf
}  // namespace iokitsnap
