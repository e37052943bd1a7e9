// The CFI parser and interpreter behind ElfFile::UnwindRuleAt (see elf_cfi.h).
// Every read goes through Cursor, which stops at the end of its range and remembers
// that it did; every loop advances a cursor or is bounded by a count checked against
// the bytes it covers, so corrupt or hostile CFI ends in "no rule", never a hang.
#include "elf_cfi.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace iokitsnap {
namespace elf {
namespace cfi {
namespace {

// DW_EH_PE_* pointer encodings.
constexpr uint8_t kPeOmit = 0xff;
constexpr uint8_t kPeAbsptr = 0x00, kPeUleb128 = 0x01, kPeUdata2 = 0x02, kPeUdata4 = 0x03, kPeUdata8 = 0x04,
                  kPeSleb128 = 0x09, kPeSdata2 = 0x0a, kPeSdata4 = 0x0b, kPeSdata8 = 0x0c;
constexpr uint8_t kPePcrel = 0x10, kPeTextrel = 0x20, kPeDatarel = 0x30;
constexpr uint8_t kPeIndirect = 0x80;

// A factored offset times the CIE's data alignment, wrapping like the hardware would
// (hostile values must not be signed-overflow undefined behaviour).
int64_t Scaled(uint64_t value, int64_t factor) {
  return static_cast<int64_t>(value * static_cast<uint64_t>(factor));
}

// remember_state nesting deeper than any compiler emits is treated as corrupt.
constexpr size_t kMaxRememberDepth = 64;

class Cursor {
 public:
  Cursor(const std::vector<uint8_t>& bytes, uint64_t begin, uint64_t end)
      : data_(bytes.data()), pos_(begin), end_(std::min<uint64_t>(end, bytes.size())) {
    if (pos_ > end_) failed_ = true;
  }
  bool ok() const { return !failed_; }
  bool AtEnd() const { return failed_ || pos_ >= end_; }
  uint64_t pos() const { return pos_; }
  uint64_t end() const { return end_; }

  bool Skip(uint64_t n) {
    if (failed_ || n > end_ - pos_) return Fail();
    pos_ += n;
    return true;
  }
  uint64_t Fixed(unsigned size) {
    if (failed_ || size > end_ - pos_) return Fail(), 0;
    uint64_t value = 0;
    for (unsigned i = 0; i < size; i++) value |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
    pos_ += size;
    return value;
  }
  uint8_t U8() { return static_cast<uint8_t>(Fixed(1)); }
  uint64_t Uleb() {
    uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (AtEnd() || shift > 63 + 7 * 3) return Fail(), 0;  // at most 13 bytes, padding included
      const uint8_t byte = data_[pos_++];
      if (shift < 64) value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
  }
  int64_t Sleb() {
    uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (AtEnd() || shift > 63 + 7 * 3) return Fail(), 0;
      const uint8_t byte = data_[pos_++];
      if (shift < 64) value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) {
        if (shift + 7 < 64 && (byte & 0x40)) value |= ~uint64_t{0} << (shift + 7);
        return static_cast<int64_t>(value);
      }
    }
  }
  // A NUL-terminated string inside the range; nullptr when unterminated.
  const char* CString() {
    if (failed_) return nullptr;
    const void* nul = memchr(data_ + pos_, 0, end_ - pos_);
    if (!nul) return Fail(), nullptr;
    const char* text = reinterpret_cast<const char*>(data_ + pos_);
    pos_ = static_cast<const uint8_t*>(nul) - data_ + 1;
    return text;
  }

 private:
  bool Fail() {
    failed_ = true;
    return false;
  }
  const uint8_t* data_;
  uint64_t pos_;
  uint64_t end_;
  bool failed_ = false;
};

// Where the relative forms of a pointer are measured from.
struct PointerBases {
  uint64_t section = 0;  // address of the section the cursor reads (pcrel: + position)
  std::optional<uint64_t> data;  // datarel (.eh_frame_hdr's own address there)
  unsigned addressSize = 8;      // absptr
  const PointerReader* readPointer = nullptr;
};

bool ReadPointer(Cursor& in, uint8_t encoding, const PointerBases& bases, uint64_t* out) {
  const uint64_t fieldAddress = bases.section + in.pos();
  uint64_t value = 0;
  switch (encoding & 0x0f) {
    case kPeAbsptr: value = in.Fixed(bases.addressSize); break;
    case kPeUleb128: value = in.Uleb(); break;
    case kPeUdata2: value = in.Fixed(2); break;
    case kPeUdata4: value = in.Fixed(4); break;
    case kPeUdata8: value = in.Fixed(8); break;
    case kPeSleb128: value = static_cast<uint64_t>(in.Sleb()); break;
    case kPeSdata2: value = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(in.Fixed(2)))); break;
    case kPeSdata4: value = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(in.Fixed(4)))); break;
    case kPeSdata8: value = in.Fixed(8); break;
    default: return false;
  }
  if (!in.ok()) return false;
  switch (encoding & 0x70) {
    case 0: break;
    case kPePcrel: value += fieldAddress; break;
    case kPeDatarel:
      if (!bases.data) return false;
      value += *bases.data;
      break;
    default: return false;  // textrel, funcrel, aligned: not used by x86_64 or arm64 toolchains
  }
  if (encoding & kPeIndirect) {
    if (!bases.readPointer || !(*bases.readPointer)(value, &value)) return false;
  }
  *out = value;
  return true;
}

// The size a pointer of `encoding` occupies without decoding it (fixed forms only).
bool SkipPointer(Cursor& in, uint8_t encoding, unsigned addressSize) {
  switch (encoding & 0x0f) {
    case kPeAbsptr: return in.Skip(addressSize);
    case kPeUleb128: return in.Uleb(), in.ok();
    case kPeSleb128: return in.Sleb(), in.ok();
    case kPeUdata2: case kPeSdata2: return in.Skip(2);
    case kPeUdata4: case kPeSdata4: return in.Skip(4);
    case kPeUdata8: case kPeSdata8: return in.Skip(8);
    default: return false;
  }
}

// One CIE or FDE: where its fields start and where it ends.
struct Entry {
  bool terminator = false;
  bool isCie = false;
  uint64_t cieOffset = 0;  // FDE: the offset of its CIE in the section
  uint64_t body = 0;       // first byte after the CIE id / CIE pointer
  uint64_t end = 0;
};

bool ReadEntry(Format format, const std::vector<uint8_t>& bytes, uint64_t offset, Entry* entry) {
  Cursor in(bytes, offset, bytes.size());
  uint64_t length = in.Fixed(4);
  if (!in.ok()) return false;
  bool dwarf64 = false;
  if (length == 0xffffffff) {
    length = in.Fixed(8);
    dwarf64 = true;
  } else if (length >= 0xfffffff0) {
    return false;  // reserved values
  }
  if (!in.ok()) return false;
  if (length == 0) {
    entry->terminator = true;
    entry->end = in.pos();
    return true;
  }
  const uint64_t idPosition = in.pos();
  if (length > in.end() - idPosition) return false;
  entry->terminator = false;
  entry->end = idPosition + length;
  Cursor id(bytes, idPosition, entry->end);
  const bool wideId = format == Format::DebugFrame && dwarf64;
  const uint64_t value = id.Fixed(wideId ? 8 : 4);
  if (!id.ok()) return false;
  entry->body = id.pos();
  if (format == Format::EhFrame) {
    entry->isCie = value == 0;
    if (!entry->isCie) {
      if (value > idPosition) return false;
      entry->cieOffset = idPosition - value;
    }
  } else {
    entry->isCie = value == (wideId ? ~uint64_t{0} : 0xffffffffu);
    entry->cieOffset = value;
  }
  return true;
}

struct Cie {
  uint64_t codeAlign = 1;
  int64_t dataAlign = 1;
  uint64_t raColumn = 0;
  uint8_t fdeEncoding = kPeAbsptr;
  unsigned addressSize = 8;
  bool augmentationData = false;  // 'z': FDEs carry an augmentation length
  uint64_t instructions = 0, end = 0;
};

bool ParseCie(Format format, const SectionBytes& frames, uint64_t offset, Cie* cie) {
  Entry entry;
  if (!ReadEntry(format, frames.bytes, offset, &entry) || entry.terminator || !entry.isCie) return false;
  Cursor in(frames.bytes, entry.body, entry.end);
  const uint8_t version = in.U8();
  if (format == Format::EhFrame ? (version != 1 && version != 3) : (version != 1 && version != 3 && version != 4))
    return false;
  const char* augmentation = in.CString();
  if (!augmentation) return false;
  if (version == 4) {
    cie->addressSize = in.U8();
    if (in.U8() != 0) return false;  // segmented addresses
    if (cie->addressSize != 4 && cie->addressSize != 8) return false;
  }
  // Old GCC's "eh" augmentation stores a pointer here that later forms dropped.
  if (augmentation[0] != 'z' && augmentation[0] != '\0') return false;
  cie->codeAlign = in.Uleb();
  cie->dataAlign = in.Sleb();
  cie->raColumn = version == 1 ? in.U8() : in.Uleb();
  if (!in.ok()) return false;
  if (augmentation[0] == 'z') {
    cie->augmentationData = true;
    const uint64_t length = in.Uleb();
    if (!in.ok() || length > in.end() - in.pos()) return false;
    const uint64_t dataEnd = in.pos() + length;
    Cursor data(frames.bytes, in.pos(), dataEnd);
    for (const char* a = augmentation + 1; *a; a++) {
      if (*a == 'R') {
        cie->fdeEncoding = data.U8();
      } else if (*a == 'P') {
        const uint8_t encoding = data.U8();
        if (!SkipPointer(data, encoding, cie->addressSize)) return false;
      } else if (*a == 'L') {
        data.U8();
      } else if (*a == 'S' || *a == 'B' || *a == 'G') {
        // signal frame, arm64 B-key, memory tagging: no data, nothing a walk needs
      } else {
        break;  // unknown: the augmentation length still says where instructions start
      }
      if (!data.ok()) return false;
    }
    in.Skip(length);
  }
  if (!in.ok()) return false;
  cie->instructions = in.pos();
  cie->end = entry.end;
  return true;
}

struct Fde {
  uint64_t start = 0, end = 0;
  uint64_t instructions = 0, instructionsEnd = 0;
};

bool ParseFde(Format format, const SectionBytes& frames, const PointerBases& baseBases, const Entry& entry,
              const Cie& cie, Fde* fde) {
  Cursor in(frames.bytes, entry.body, entry.end);
  PointerBases bases = baseBases;
  bases.addressSize = cie.addressSize;
  const uint8_t encoding = format == Format::EhFrame ? cie.fdeEncoding : kPeAbsptr;
  if (encoding == kPeOmit) return false;
  uint64_t start = 0, range = 0;
  if (!ReadPointer(in, encoding, bases, &start)) return false;
  if (!ReadPointer(in, encoding & 0x0f, bases, &range)) return false;  // a length: no base
  if (cie.augmentationData) {
    const uint64_t length = in.Uleb();
    if (!in.Skip(length)) return false;
  }
  fde->start = start;
  fde->end = start + range;
  if (fde->end < start) return false;
  fde->instructions = in.pos();
  fde->instructionsEnd = entry.end;
  return true;
}

enum class RuleKind : uint8_t { Unspecified, Undefined, Same, Offset, ValOffset, Register, Expression, ValExpression };
struct RegisterRule {
  RuleKind kind = RuleKind::Unspecified;
  int64_t offset = 0;
};
struct Row {
  bool cfaDefined = false;
  bool cfaExpression = false;
  uint64_t cfaRegister = 0;
  int64_t cfaOffset = 0;
  RegisterRule ra, fp;
};

struct Registers {
  uint64_t sp, fp, ra;
};
Registers RegistersOf(Machine machine) {
  return machine == Machine::X86_64 ? Registers{7, 6, 16} : Registers{31, 29, 30};
}

// DW_CFA_* opcodes with their operand in the low 6 bits (the top two bits say which).
constexpr uint8_t kAdvanceLoc = 1, kOffset = 2, kRestore = 3;
// The others.
enum : uint8_t {
  kNop = 0x00, kSetLoc = 0x01, kAdvanceLoc1 = 0x02, kAdvanceLoc2 = 0x03, kAdvanceLoc4 = 0x04,
  kOffsetExtended = 0x05, kRestoreExtended = 0x06, kUndefined = 0x07, kSameValue = 0x08, kRegister = 0x09,
  kRememberState = 0x0a, kRestoreState = 0x0b, kDefCfa = 0x0c, kDefCfaRegister = 0x0d, kDefCfaOffset = 0x0e,
  kDefCfaExpression = 0x0f, kExpression = 0x10, kOffsetExtendedSf = 0x11, kDefCfaSf = 0x12,
  kDefCfaOffsetSf = 0x13, kValOffset = 0x14, kValOffsetSf = 0x15, kValExpression = 0x16,
  kAarch64NegateRaState = 0x2d, kGnuArgsSize = 0x2e, kGnuNegativeOffsetExtended = 0x2f,
};

// Runs CFA instructions from `in` on `row` until they end or the next row would start
// past `address`. Returns false on anything malformed or beyond this reader.
class Interpreter {
 public:
  Interpreter(Machine machine, const Cie& cie, const PointerBases& bases, uint64_t address)
      : machine_(machine), cie_(cie), bases_(bases), address_(address),
        fpColumn_(RegistersOf(machine).fp) {}

  // `initial`: the row after the CIE's instructions (for DW_CFA_restore), null while
  // running those. Sets `*stopped` when the location passed the address.
  bool Run(Cursor in, Row& row, const Row* initial, uint64_t& location, bool* stopped) {
    *stopped = false;
    while (!in.AtEnd()) {
      const uint8_t op = in.U8();
      const uint8_t low = op & 0x3f;
      uint64_t delta = 0;
      bool advance = false;
      switch (op >> 6) {
        case kAdvanceLoc: delta = low; advance = true; break;
        case kOffset: SetOffset(row, low, Factored(in.Uleb())); break;
        case kRestore: Restore(row, initial, low); break;
        default:
          switch (op) {
            case kNop: break;
            case kSetLoc: {
              uint64_t next = 0;
              PointerBases bases = bases_;
              bases.addressSize = cie_.addressSize;
              if (!ReadPointer(in, cie_.fdeEncoding, bases, &next)) return false;
              if (next > address_) return *stopped = true;
              location = next;
              break;
            }
            case kAdvanceLoc1: delta = in.Fixed(1); advance = true; break;
            case kAdvanceLoc2: delta = in.Fixed(2); advance = true; break;
            case kAdvanceLoc4: delta = in.Fixed(4); advance = true; break;
            case kOffsetExtended: {
              const uint64_t reg = in.Uleb();
              SetOffset(row, reg, Factored(in.Uleb()));
              break;
            }
            case kRestoreExtended: Restore(row, initial, in.Uleb()); break;
            case kUndefined: SetKind(row, in.Uleb(), RuleKind::Undefined); break;
            case kSameValue: SetKind(row, in.Uleb(), RuleKind::Same); break;
            case kRegister: {
              const uint64_t reg = in.Uleb();
              in.Uleb();
              SetKind(row, reg, RuleKind::Register);
              break;
            }
            case kRememberState:
              if (stack_.size() >= kMaxRememberDepth) return false;
              stack_.push_back(row);
              break;
            case kRestoreState:
              if (stack_.empty()) return false;
              row = stack_.back();
              stack_.pop_back();
              break;
            case kDefCfa: {
              const uint64_t reg = in.Uleb();
              DefCfa(row, reg, static_cast<int64_t>(in.Uleb()));
              break;
            }
            case kDefCfaRegister:
              row.cfaRegister = in.Uleb();
              break;
            case kDefCfaOffset: row.cfaOffset = static_cast<int64_t>(in.Uleb()); break;
            case kDefCfaExpression:
              row.cfaDefined = row.cfaExpression = true;
              in.Skip(in.Uleb());
              break;
            case kExpression:
            case kValExpression: {
              const uint64_t reg = in.Uleb();
              in.Skip(in.Uleb());
              SetKind(row, reg, op == kExpression ? RuleKind::Expression : RuleKind::ValExpression);
              break;
            }
            case kOffsetExtendedSf: {
              const uint64_t reg = in.Uleb();
              SetOffset(row, reg, FactoredSigned(in.Sleb()));
              break;
            }
            case kDefCfaSf: {
              const uint64_t reg = in.Uleb();
              DefCfa(row, reg, FactoredSigned(in.Sleb()));
              break;
            }
            case kDefCfaOffsetSf: row.cfaOffset = FactoredSigned(in.Sleb()); break;
            case kValOffset:
            case kValOffsetSf: {
              const uint64_t reg = in.Uleb();
              if (op == kValOffset) {
                in.Uleb();
              } else {
                in.Sleb();
              }
              SetKind(row, reg, RuleKind::ValOffset);
              break;
            }
            case kAarch64NegateRaState:  // on SPARC GNU_window_save; never on x86_64
              if (machine_ != Machine::Arm64) return false;
              break;
            case kGnuArgsSize: in.Uleb(); break;
            case kGnuNegativeOffsetExtended: {
              const uint64_t reg = in.Uleb();
              SetOffset(row, reg, Factored(0 - in.Uleb()));
              break;
            }
            default: return false;
          }
      }
      if (!in.ok()) return false;
      if (advance) {
        const uint64_t next = location + delta * cie_.codeAlign;
        if (next < location || next > address_) return *stopped = true;
        location = next;
      }
    }
    return in.ok();
  }

 private:
  int64_t Factored(uint64_t value) const { return Scaled(value, cie_.dataAlign); }
  int64_t FactoredSigned(int64_t value) const { return Scaled(static_cast<uint64_t>(value), cie_.dataAlign); }
  RegisterRule* Tracked(Row& row, uint64_t reg) {
    if (reg == cie_.raColumn) return &row.ra;
    if (reg == fpColumn_) return &row.fp;
    return nullptr;
  }
  void SetOffset(Row& row, uint64_t reg, int64_t offset) {
    if (RegisterRule* rule = Tracked(row, reg)) *rule = {RuleKind::Offset, offset};
  }
  void SetKind(Row& row, uint64_t reg, RuleKind kind) {
    if (RegisterRule* rule = Tracked(row, reg)) *rule = {kind, 0};
  }
  void Restore(Row& row, const Row* initial, uint64_t reg) {
    RegisterRule* rule = Tracked(row, reg);
    if (!rule) return;
    if (!initial) {
      *rule = {};
    } else {
      *rule = reg == cie_.raColumn ? initial->ra : initial->fp;
    }
  }
  static void DefCfa(Row& row, uint64_t reg, int64_t offset) {
    row.cfaDefined = true;
    row.cfaExpression = false;
    row.cfaRegister = reg;
    row.cfaOffset = offset;
  }

  Machine machine_;
  const Cie& cie_;
  const PointerBases& bases_;
  uint64_t address_;
  uint64_t fpColumn_;
  std::vector<Row> stack_;
};

std::optional<UnwindRule> RuleOfRow(Machine machine, const Cie& cie, const Row& row) {
  const Registers regs = RegistersOf(machine);
  if (!row.cfaDefined || row.cfaExpression) return std::nullopt;
  UnwindRule rule;
  if (row.cfaRegister == regs.sp) {
    rule.cfaBase = UnwindRule::Base::Sp;
  } else if (row.cfaRegister == regs.fp) {
    rule.cfaBase = UnwindRule::Base::Fp;
  } else {
    return std::nullopt;
  }
  rule.cfaOffset = row.cfaOffset;
  if (cie.raColumn != regs.ra) return std::nullopt;
  switch (row.ra.kind) {
    case RuleKind::Offset:
      rule.ra = UnwindRule::Ra::AtCfa;
      rule.raOffset = row.ra.offset;
      break;
    case RuleKind::Undefined: rule.ra = UnwindRule::Ra::Undefined; break;
    case RuleKind::Unspecified:
    case RuleKind::Same:
      if (machine != Machine::Arm64) return std::nullopt;
      rule.ra = UnwindRule::Ra::InLr;
      break;
    default: return std::nullopt;
  }
  if (cie.raColumn != regs.fp && row.fp.kind == RuleKind::Offset) {
    rule.fp = UnwindRule::Fp::AtCfa;
    rule.fpOffset = row.fp.offset;
  }
  return rule;
}

}  // namespace

FrameTable::FrameTable(Format format, Machine machine, SectionBytes frames, SectionBytes header,
                       PointerReader readPointer)
    : format_(format), machine_(machine), frames_(std::move(frames)), header_(std::move(header)),
      readPointer_(std::move(readPointer)) {
  if (format_ != Format::EhFrame || header_.bytes.size() < 4) return;
  // .eh_frame_hdr: version, eh_frame_ptr_enc, fde_count_enc, table_enc, then the
  // encoded eh_frame pointer and FDE count, then the (location, FDE) table.
  Cursor in(header_.bytes, 0, header_.bytes.size());
  const uint8_t version = in.U8();
  const uint8_t framePointerEncoding = in.U8();
  const uint8_t countEncoding = in.U8();
  const uint8_t tableEncoding = in.U8();
  if (version != 1 || framePointerEncoding == kPeOmit || countEncoding == kPeOmit) return;
  PointerBases bases;
  bases.section = header_.address;
  bases.data = header_.address;
  uint64_t framesAddress = 0, count = 0;
  if (!ReadPointer(in, framePointerEncoding & ~kPeIndirect, bases, &framesAddress)) return;
  if (!ReadPointer(in, countEncoding & ~kPeIndirect, bases, &count)) return;
  // Only the table every linker writes can be binary-searched in place.
  if (tableEncoding != (kPeDatarel | kPeSdata4)) return;
  if (framesAddress != frames_.address) return;
  if (count == 0 || count > (in.end() - in.pos()) / 8) return;
  headerTable_ = true;
  tableOffset_ = in.pos();
  tableCount_ = count;
}

std::optional<uint64_t> FrameTable::FdeFromHeader(uint64_t address) const {
  const uint8_t* table = header_.bytes.data() + tableOffset_;
  auto field = [&](uint64_t index, unsigned which) {
    int32_t value;
    memcpy(&value, table + index * 8 + which * 4, 4);
    return header_.address + static_cast<uint64_t>(static_cast<int64_t>(value));
  };
  // The last entry whose location is at or below the address.
  uint64_t low = 0, high = tableCount_;
  while (low < high) {
    const uint64_t mid = low + (high - low) / 2;
    if (field(mid, 0) <= address) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  if (low == 0) return std::nullopt;
  const uint64_t fdeAddress = field(low - 1, 1);
  if (fdeAddress < frames_.address || fdeAddress - frames_.address >= frames_.bytes.size()) return std::nullopt;
  return fdeAddress - frames_.address;
}

void FrameTable::BuildIndex() const {
  PointerBases bases;
  bases.section = frames_.address;
  bases.readPointer = &readPointer_;
  std::unordered_map<uint64_t, std::optional<Cie>> cies;
  uint64_t offset = 0;
  while (offset < frames_.bytes.size()) {
    Entry entry;
    if (!ReadEntry(format_, frames_.bytes, offset, &entry)) break;
    if (entry.terminator) {
      if (format_ == Format::EhFrame) break;
      offset = entry.end;
      continue;
    }
    if (!entry.isCie) {
      auto found = cies.find(entry.cieOffset);
      if (found == cies.end()) {
        Cie cie;
        std::optional<Cie> parsed;
        if (ParseCie(format_, frames_, entry.cieOffset, &cie)) parsed = cie;
        found = cies.emplace(entry.cieOffset, parsed).first;
      }
      Fde fde;
      if (found->second && ParseFde(format_, frames_, bases, entry, *found->second, &fde) && fde.end > fde.start)
        index_.push_back({fde.start, fde.end, offset});
    }
    offset = entry.end;
  }
  std::sort(index_.begin(), index_.end(), [](const IndexEntry& a, const IndexEntry& b) { return a.start < b.start; });
}

Lookup FrameTable::RuleAt(uint64_t address) const {
  if (frames_.bytes.empty()) return {};
  if (headerTable_) {
    const auto offset = FdeFromHeader(address);
    return offset ? RuleFromFde(*offset, address) : Lookup{};
  }
  std::call_once(indexOnce_, [this] { BuildIndex(); });
  auto next = std::upper_bound(index_.begin(), index_.end(), address,
                               [](uint64_t value, const IndexEntry& entry) { return value < entry.start; });
  // Ranges do not overlap in linked output; a few steps back covers a stray one.
  for (int steps = 0; next != index_.begin() && steps < 4; steps++) {
    --next;
    if (address < next->end) return RuleFromFde(next->fdeOffset, address);
  }
  return {};
}

Lookup FrameTable::RuleFromFde(uint64_t fdeOffset, uint64_t address) const {
  PointerBases bases;
  bases.section = frames_.address;
  bases.readPointer = &readPointer_;
  Entry entry;
  if (!ReadEntry(format_, frames_.bytes, fdeOffset, &entry) || entry.terminator || entry.isCie) return {};
  Cie cie;
  if (!ParseCie(format_, frames_, entry.cieOffset, &cie)) return {};
  Fde fde;
  if (!ParseFde(format_, frames_, bases, entry, cie, &fde)) return {};
  if (address < fde.start || address >= fde.end) return {};
  Lookup lookup;
  lookup.covered = true;
  Interpreter interpreter(machine_, cie, bases, address);
  Row row;
  uint64_t location = fde.start;
  bool stopped = false;
  if (!interpreter.Run(Cursor(frames_.bytes, cie.instructions, cie.end), row, nullptr, location, &stopped))
    return lookup;
  if (!stopped) {
    const Row initial = row;
    if (!interpreter.Run(Cursor(frames_.bytes, fde.instructions, fde.instructionsEnd), row, &initial, location,
                         &stopped))
      return lookup;
  }
  lookup.rule = RuleOfRow(machine_, cie, row);
  return lookup;
}

}  // namespace cfi
}  // namespace elf
}  // namespace iokitsnap
