#include "stack_walk.h"

#include <cxxabi.h>
#include <errno.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace iokitsnap {
namespace stacks {
namespace {

bool ParseHex(std::string_view& text, uint64_t& value) {
  value = 0;
  size_t used = 0;
  while (used < text.size() && used < 16) {
    const char c = text[used];
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else break;
    value = (value << 4) | static_cast<uint64_t>(digit);
    ++used;
  }
  if (used == 0) return false;
  text.remove_prefix(used);
  return true;
}

bool Expect(std::string_view& text, char c) {
  if (text.empty() || text.front() != c) return false;
  text.remove_prefix(1);
  return true;
}

std::string_view Field(std::string_view& text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  size_t end = 0;
  while (end < text.size() && text[end] != ' ') ++end;
  std::string_view field = text.substr(0, end);
  text.remove_prefix(end);
  return field;
}

std::optional<Mapping> ParseMapsLine(std::string_view line) {
  Mapping m;
  if (!ParseHex(line, m.start) || !Expect(line, '-') || !ParseHex(line, m.end) || m.end <= m.start) return std::nullopt;
  const std::string_view perms = Field(line);
  if (perms.size() < 4) return std::nullopt;
  m.readable = perms[0] == 'r';
  m.executable = perms[2] == 'x';
  std::string_view offset = Field(line);
  if (!ParseHex(offset, m.offset) || !offset.empty()) return std::nullopt;
  const std::string_view device = Field(line);
  if (device.find(':') == std::string_view::npos) return std::nullopt;
  m.device.assign(device);
  std::string_view inode = Field(line);
  if (inode.empty()) return std::nullopt;
  for (const char c : inode) {
    if (c < '0' || c > '9') return std::nullopt;
    m.inode = m.inode * 10 + static_cast<uint64_t>(c - '0');
  }
  // The path starts after the padding and runs to the end of the line (it may hold spaces).
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  m.path.assign(line);
  return m;
}

// A C++ (or legacy Rust) symbol as people read it: "_ZN4node9inspector5Agent5StartEv" →
// "node::inspector::Agent::Start()"; any other name as it is.
std::string Demangled(const std::string& name) {
  if (name.size() < 3 || name.compare(0, 2, "_Z") != 0) return name;
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> text(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), &std::free);
  return status == 0 && text ? std::string(text.get()) : name;
}

// The ELF address of `pc` in `file`, through the mapping that holds it.
std::optional<uint64_t> FileAddress(const elf::ElfFile& file, const Mapping& mapping, uint64_t pc) {
  return file.AddressOfFileOffset(pc - mapping.start + mapping.offset);
}

}  // namespace

std::vector<Mapping> ParseMaps(std::string_view text, size_t* malformed) {
  std::vector<Mapping> maps;
  size_t bad = 0;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    const std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (line.empty()) continue;
    if (auto mapping = ParseMapsLine(line)) maps.push_back(std::move(*mapping));
    else ++bad;
  }
  std::sort(maps.begin(), maps.end(), [](const Mapping& a, const Mapping& b) { return a.start < b.start; });
  if (malformed != nullptr) *malformed = bad;
  return maps;
}

const Mapping* FindMapping(const std::vector<Mapping>& maps, uint64_t address) {
  auto it = std::upper_bound(maps.begin(), maps.end(), address,
                             [](uint64_t a, const Mapping& m) { return a < m.start; });
  if (it == maps.begin()) return nullptr;
  --it;
  return address < it->end ? &*it : nullptr;
}

bool IsFileMapping(const Mapping& mapping) {
  if (mapping.path.empty() || mapping.path.front() != '/' || mapping.inode == 0) return false;
  static constexpr std::string_view kDeleted = " (deleted)";
  return !(mapping.path.size() > kDeleted.size() &&
           mapping.path.compare(mapping.path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0);
}

const elf::ElfFile* ModuleCache::Get(const Mapping& mapping, int* error) {
  if (!IsFileMapping(mapping)) {
    *error = ENOENT;
    return nullptr;
  }
  const std::string key = mapping.device + " " + std::to_string(mapping.inode) + " " + mapping.path;
  auto it = files_.find(key);
  if (it == files_.end()) {
    Entry entry;
    entry.file = elf::ElfFile::OpenMapped(
        elf::MappedObject{processDir_, mapping.start, mapping.end, mapping.device, mapping.inode, mapping.path}, machine_,
        &entry.error);
    if (entry.file == nullptr && entry.error == 0) entry.error = EINVAL;
    it = files_.emplace(key, std::move(entry)).first;
  }
  *error = it->second.error;
  return it->second.file.get();
}

size_t ModuleCache::HeldFds() const {
  size_t held = 0;
  for (const auto& entry : files_) held += entry.second.file ? entry.second.file->HeldFds() : 0;
  return held;
}

bool StackCopy::ReadWord(uint64_t address, uint64_t* value) const {
  if (address < base || address - base > bytes.size() || bytes.size() - (address - base) < sizeof(uint64_t))
    return false;
  std::memcpy(value, bytes.data() + (address - base), sizeof(uint64_t));
  return true;
}

uint64_t StripReturnAddress(uint64_t address, elf::Machine machine) {
  return machine == elf::Machine::Arm64 ? (address & 0x0000ffffffffffffULL) : address;
}

WalkResult Walk(const Registers& registers, const StackCopy& stack, const std::vector<Mapping>& maps,
                ModuleCache& modules, const WalkOptions& options) {
  WalkResult result;
  uint64_t pc = StripReturnAddress(registers.pc, options.machine);
  uint64_t sp = registers.sp;
  std::optional<uint64_t> fp = registers.fp;
  bool innermost = true;
  const uint32_t maxDepth = std::max<uint32_t>(options.maxDepth, 1);

  auto name = [&](uint64_t framePc, bool exact) {
    FrameRecord frame;
    frame.pc = framePc;
    const Mapping* mapping = FindMapping(maps, exact ? framePc : framePc - 1);
    if (mapping == nullptr) return frame;
    frame.module = mapping->path;
    int error = 0;
    const elf::ElfFile* file = modules.Get(*mapping, &error);
    if (file == nullptr) {
      if (IsFileMapping(*mapping)) result.unreadable.emplace(mapping->path, error);
      // Without the file, the offset is into the mapping's file all the same.
      frame.offset = framePc - mapping->start + mapping->offset;
      return frame;
    }
    frame.offset = framePc - mapping->start + mapping->offset;
    const std::optional<uint64_t> address = FileAddress(*file, *mapping, exact ? framePc : framePc - 1);
    if (!address) return frame;
    frame.offset = exact ? *address : *address + 1;  // the address in the file, as addr2line takes it
    if (const std::optional<elf::Symbol> symbol = file->SymbolAt(*address)) {
      frame.symbol = Demangled(symbol->name);
      frame.symbolOffset = symbol->offset + (exact ? 0 : 1);
    }
    return frame;
  };

  result.frames.push_back(name(pc, true));
  while (true) {
    if (result.frames.size() >= maxDepth) {
      result.end = WalkEnd::DepthLimit;
      break;
    }
    const uint64_t lookup = innermost ? pc : pc - 1;
    const Mapping* mapping = FindMapping(maps, lookup);
    if (mapping == nullptr || !mapping->executable) {
      result.end = WalkEnd::NotCode;
      result.endModule = mapping != nullptr ? mapping->path : "";
      break;
    }
    std::optional<elf::UnwindRule> rule;
    int error = 0;
    if (const elf::ElfFile* file = modules.Get(*mapping, &error)) {
      if (const std::optional<uint64_t> address = FileAddress(*file, *mapping, lookup)) rule = file->UnwindRuleAt(*address);
      result.endModuleHasUnwindInfo = file->HasUnwindInfo();
    } else {
      result.endModuleHasUnwindInfo = false;
    }
    uint64_t returnAddress = 0;
    uint64_t callerSp = 0;
    std::optional<uint64_t> callerFp = fp;
    if (rule) {
      if (rule->ra == elf::UnwindRule::Ra::Undefined) {
        result.end = WalkEnd::Outermost;
        break;
      }
      if (rule->cfaBase == elf::UnwindRule::Base::Fp && !fp) {
        result.end = WalkEnd::NoFramePointer;
        result.endModule = mapping->path;
        break;
      }
      const uint64_t cfa = (rule->cfaBase == elf::UnwindRule::Base::Sp ? sp : *fp) + static_cast<uint64_t>(rule->cfaOffset);
      if (rule->ra == elf::UnwindRule::Ra::InLr) {
        // Only the innermost frame still has its return address in lr.
        if (!innermost || !registers.lr) {
          result.end = WalkEnd::NoUnwindInfo;
          result.endModule = mapping->path;
          break;
        }
        returnAddress = *registers.lr;
      } else if (!stack.ReadWord(cfa + static_cast<uint64_t>(rule->raOffset), &returnAddress)) {
        result.end = WalkEnd::BeyondCopy;
        break;
      }
      if (rule->fp == elf::UnwindRule::Fp::AtCfa) {
        uint64_t saved = 0;
        if (!stack.ReadWord(cfa + static_cast<uint64_t>(rule->fpOffset), &saved)) {
          result.end = WalkEnd::BeyondCopy;
          break;
        }
        callerFp = saved;
      }
      callerSp = cfa;
    } else {
      // No CFI here: the frame-pointer chain. [fp] is the caller's fp, [fp + 8] the
      // return address (x86_64 after push rbp; mov rbp, rsp; arm64 after stp x29, x30).
      if (!fp || *fp == 0) {
        result.end = fp ? WalkEnd::Outermost : WalkEnd::NoUnwindInfo;
        result.endModule = mapping->path;
        break;
      }
      uint64_t savedFp = 0;
      if (*fp % 8 != 0 || *fp < sp) {
        result.end = WalkEnd::NoUnwindInfo;
        result.endModule = mapping->path;
        break;
      }
      if (!stack.ReadWord(*fp, &savedFp) || !stack.ReadWord(*fp + 8, &returnAddress)) {
        result.end = *fp >= stack.base + stack.bytes.size() ? WalkEnd::NoUnwindInfo : WalkEnd::BeyondCopy;
        result.endModule = mapping->path;
        break;
      }
      callerFp = savedFp;
      callerSp = *fp + 16;
    }
    returnAddress = StripReturnAddress(returnAddress, options.machine);
    if (returnAddress == 0) {
      result.end = WalkEnd::Outermost;
      break;
    }
    // The stack grows down: each caller's frame lies above its callee's. (The innermost
    // frame of an arm64 leaf may share its CFA with sp.)
    if (callerSp < sp || (callerSp == sp && !innermost)) {
      result.end = WalkEnd::NotAscending;
      result.endModule = mapping->path;
      break;
    }
    const Mapping* callerMapping = FindMapping(maps, returnAddress - 1);
    if (callerMapping == nullptr || !callerMapping->executable) {
      result.end = WalkEnd::NotCode;
      result.endModule = mapping->path;
      break;
    }
    result.frames.push_back(name(returnAddress, false));
    pc = returnAddress;
    sp = callerSp;
    fp = callerFp;
    innermost = false;
  }
  return result;
}

}  // namespace stacks
}  // namespace iokitsnap
