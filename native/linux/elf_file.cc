// ElfFile (see elf_file.h): headers read at Open, symbol tables and CFI on first use.
//
// Every byte comes from pread into a heap buffer, never from mmap: a shared library
// truncated in place while mapped would raise SIGBUS in the host process, and this
// runs inside users' Node processes. Every offset and size read from the file is
// checked against the file's size before it is used, so a corrupt, truncated or
// hostile file gives "nothing found", never a read out of bounds.
#include "elf_file.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "elf_cfi.h"
#include "elf_gopclntab.h"
#include "elf_inflate.h"
#include "procfs_files.h"

namespace iokitsnap {
namespace elf {
namespace {

using procfs::ScopedFd;

// ---------------------------------------------------------------- opening files
//
// This runs as root in a process that another user's process points at files: its maps
// names them, its root holds them, its debug links lead on from them. Nothing is opened
// for reading by path: a path is resolved to an O_PATH handle (which opens nothing: no
// device is opened, no fifo blocks), checked (a regular file; the right one), and only
// that inode is then opened for reading, through /proc/self/fd.

#ifndef SYS_openat2
#define SYS_openat2 437  // the same number on every Linux ABI
#endif
struct OpenHow {  // struct open_how (linux/openat2.h)
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
constexpr uint64_t kResolveNoMagicLinks = 0x02;
constexpr uint64_t kResolveInRoot = 0x10;

// An O_PATH handle on `path` under `root` ("": our own root; else a directory taken as the
// root, its symlinks resolved inside it where openat2 exists, Linux 5.6).
int OpenPathIn(const std::string& root, const std::string& given, int* error) {
  const std::string path = given.empty() ? "." : given;  // the root itself
  if (root.empty()) {
    const int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) *error = errno;
    return fd;
  }
  ScopedFd rootFd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!rootFd) {
    *error = errno;
    return -1;
  }
  OpenHow how{O_PATH | O_CLOEXEC, 0, kResolveInRoot | kResolveNoMagicLinks};
  int fd = static_cast<int>(syscall(SYS_openat2, rootFd.get(), path.c_str(), &how, sizeof how));
  // ENOSYS: an older kernel; EPERM: a seccomp filter that predates openat2.
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
    size_t skip = 0;
    while (skip < path.size() && path[skip] == '/') ++skip;
    fd = openat(rootFd.get(), skip == path.size() ? "." : path.c_str() + skip, O_PATH | O_CLOEXEC);
  }
  if (fd < 0) *error = errno;
  return fd;
}

// The inode an O_PATH handle names, opened for reading.
int ReopenForReading(int pathFd, int* error) {
  const std::string self = "/proc/self/fd/" + std::to_string(pathFd);
  const int fd = open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) *error = errno;
  return fd;
}

// "fd:01" → the dev_t it names; nullopt when it does not parse.
std::optional<dev_t> DeviceOf(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  unsigned long major = 0, minor = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == colon) continue;
    const char c = text[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    unsigned long& part = i < colon ? major : minor;
    if (part > 0xfffff) return std::nullopt;
    part = part * 16 + static_cast<unsigned long>(digit);
  }
  return makedev(major, minor);
}

// Btrfs reports a subvolume's own device in stat, overlayfs its own, while maps shows the
// device of the file system (the layer) the pages come from.
bool StatShowsAnotherDevice(int fd) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return false;
  constexpr unsigned long kBtrfs = 0x9123683e, kOverlay = 0x794c7630;
  return static_cast<unsigned long>(fs.f_type) == kBtrfs || static_cast<unsigned long>(fs.f_type) == kOverlay;
}

// Whether the handle names the object of the maps line. Device and inode must match;
// where the file system reports another device in stat, the inode alone does, but only
// for a reader no more privileged than anyone (not root): what it opens it could open anyway.
bool IsMappedObject(int pathFd, const struct stat& status, const MappedObject& object) {
  if (status.st_ino != object.inode) return false;
  const std::optional<dev_t> device = DeviceOf(object.device);
  if (device && status.st_dev == *device) return true;
  return geteuid() != 0 && StatShowsAnotherDevice(pathFd);
}

// Who the process that maps a file runs as (fsuid, fsgid from its status), for reading
// only the debug files it could read itself.
struct Reader {
  uid_t uid = 0;
  gid_t gid = 0;
};

std::optional<Reader> ReaderOf(const std::string& processDir) {
  procfs::ReadBuffer buffer;
  if (procfs::ReadFileAt(AT_FDCWD, (processDir + "/status").c_str(), buffer).outcome != procfs::ReadOutcome::Ok)
    return std::nullopt;
  // "Uid:\treal\teffective\tsaved\tfs": the fs one is what file access checks.
  auto fsField = [&](const char* key) -> std::optional<uint64_t> {
    const size_t at = buffer.text.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view rest = buffer.text.substr(at + std::strlen(key));
    uint64_t value = 0;
    for (int field = 0; field < 4; ++field) {
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
      if (rest.empty() || rest.front() < '0' || rest.front() > '9') return std::nullopt;
      value = 0;
      while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
        value = value * 10 + static_cast<uint64_t>(rest.front() - '0');
        rest.remove_prefix(1);
      }
    }
    return value;
  };
  const std::optional<uint64_t> uid = fsField("\nUid:");
  const std::optional<uint64_t> gid = fsField("\nGid:");
  if (!uid || !gid) return std::nullopt;
  return Reader{static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)};
}

// By the mode bits (root reads anything; supplementary groups are not known here, so
// a file only such a group may read is refused: the cautious side).
bool ReadableBy(const struct stat& status, const Reader& reader) {
  if (reader.uid == 0) return true;
  if (status.st_uid == reader.uid) return (status.st_mode & S_IRUSR) != 0;
  if (status.st_gid == reader.gid) return (status.st_mode & S_IRGRP) != 0;
  return (status.st_mode & S_IROTH) != 0;
}
// The most one compressed section may inflate to (.debug_frame of a large program is a
// few MiB; this bounds what a hostile header can make this process allocate).
constexpr uint64_t kMaxInflatedBytes = uint64_t{256} << 20;

// An ELF64 little-endian file of one machine, its program and section headers.
class Image {
 public:
  // `root` and `path` as OpenPathIn takes them; `reader`: refuse (EACCES) a file that
  // user could not read.
  static std::unique_ptr<Image> Open(const std::string& root, const std::string& path, Machine machine, int* error,
                                     const std::optional<Reader>& reader = std::nullopt);
  // A handle already resolved and checked, opened here for reading.
  static std::unique_ptr<Image> FromPath(int pathFd, Machine machine, int* error);

  // Exactly `size` bytes at `offset`, or false (out of the file, or a short read).
  bool Read(uint64_t offset, uint64_t size, void* out) const {
    if (offset > size_ || size > size_ - offset) return false;
    auto* bytes = static_cast<uint8_t*>(out);
    while (size > 0) {
      const ssize_t got = pread(fd_.get(), bytes, size, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      bytes += got;
      offset += static_cast<uint64_t>(got);
      size -= static_cast<uint64_t>(got);
    }
    return true;
  }
  std::vector<uint8_t> ReadBytes(uint64_t offset, uint64_t size) const {
    std::vector<uint8_t> bytes;
    if (offset > size_ || size > size_ - offset) return bytes;
    bytes.resize(size);
    if (!Read(offset, size, bytes.data())) bytes.clear();
    return bytes;
  }
  // The bytes of a section that has them in the file (not SHT_NOBITS); a section
  // compressed in place (SHF_COMPRESSED, ELFCOMPRESS_ZLIB: Go's .debug_frame, distributions'
  // debug files) is inflated, up to kMaxInflatedBytes; other compression (zstd) gives none.
  std::vector<uint8_t> SectionData(const Elf64_Shdr* section) const {
    if (!section || section->sh_type == SHT_NOBITS) return {};
    if (!(section->sh_flags & SHF_COMPRESSED)) return ReadBytes(section->sh_offset, section->sh_size);
    const std::vector<uint8_t> compressed = ReadBytes(section->sh_offset, section->sh_size);
    Elf64_Chdr header;
    if (compressed.size() < sizeof header) return {};
    memcpy(&header, compressed.data(), sizeof header);
    if (header.ch_type != ELFCOMPRESS_ZLIB || header.ch_size > kMaxInflatedBytes) return {};
    return InflateZlib(compressed.data() + sizeof header, compressed.size() - sizeof header, header.ch_size);
  }

  const Elf64_Shdr* Section(const char* name) const {
    for (const Elf64_Shdr& section : sections_) {
      if (section.sh_name >= sectionNames_.size()) continue;
      const size_t length = strlen(name) + 1;  // with its NUL, inside the table
      if (length <= sectionNames_.size() - section.sh_name &&
          memcmp(sectionNames_.data() + section.sh_name, name, length) == 0)
        return &section;
    }
    return nullptr;
  }
  const Elf64_Shdr* SectionAt(uint64_t index) const { return index < sections_.size() ? &sections_[index] : nullptr; }
  const Elf64_Phdr* Segment(uint32_t type) const {
    for (const Elf64_Phdr& segment : segments_)
      if (segment.p_type == type) return &segment;
    return nullptr;
  }

  std::optional<uint64_t> AddressOfFileOffset(uint64_t offset) const {
    for (const Elf64_Phdr& segment : segments_) {
      if (segment.p_type != PT_LOAD || offset < segment.p_offset) continue;
      if (offset - segment.p_offset < segment.p_filesz) return segment.p_vaddr + (offset - segment.p_offset);
    }
    return std::nullopt;
  }
  // The file offset of `size` bytes at virtual address `address`, all inside one
  // segment's file bytes.
  std::optional<uint64_t> FileOffsetOfAddress(uint64_t address, uint64_t size) const {
    for (const Elf64_Phdr& segment : segments_) {
      if (segment.p_type != PT_LOAD || address < segment.p_vaddr) continue;
      const uint64_t into = address - segment.p_vaddr;
      if (into <= segment.p_filesz && size <= segment.p_filesz - into) return segment.p_offset + into;
    }
    return std::nullopt;
  }
  // The file bytes from `address` to the end of its segment's file bytes.
  std::optional<std::pair<uint64_t, uint64_t>> SegmentTail(uint64_t address) const {
    for (const Elf64_Phdr& segment : segments_) {
      if (segment.p_type != PT_LOAD || address < segment.p_vaddr) continue;
      const uint64_t into = address - segment.p_vaddr;
      if (into < segment.p_filesz) return std::make_pair(segment.p_offset + into, segment.p_filesz - into);
    }
    return std::nullopt;
  }

  std::string BuildId() const;
  uint64_t size() const { return size_; }
  int fd() const { return fd_.get(); }

 private:
  ScopedFd fd_;
  uint64_t size_ = 0;
  std::vector<Elf64_Phdr> segments_;
  std::vector<Elf64_Shdr> sections_;
  std::vector<char> sectionNames_;
};

std::unique_ptr<Image> Image::Open(const std::string& root, const std::string& path, Machine machine, int* error,
                                   const std::optional<Reader>& reader) {
  ScopedFd pathFd(OpenPathIn(root, path, error));
  if (!pathFd) return nullptr;
  if (reader) {
    struct stat status;
    if (fstat(pathFd.get(), &status) != 0) {
      *error = errno;
      return nullptr;
    }
    if (S_ISREG(status.st_mode) && !ReadableBy(status, *reader)) {
      *error = EACCES;
      return nullptr;
    }
  }
  return FromPath(pathFd.get(), machine, error);
}

std::unique_ptr<Image> Image::FromPath(int pathFd, Machine machine, int* error) {
  struct stat status;
  if (fstat(pathFd, &status) != 0) {
    *error = errno;
    return nullptr;
  }
  if (!S_ISREG(status.st_mode)) {  // a device, a fifo, a directory: never opened
    *error = kNotRegular;
    return nullptr;
  }
  auto image = std::make_unique<Image>();
  image->fd_.reset(ReopenForReading(pathFd, error));
  if (!image->fd_) return nullptr;
  *error = EINVAL;
  image->size_ = static_cast<uint64_t>(status.st_size);
  Elf64_Ehdr header;
  if (!image->Read(0, sizeof header, &header)) return nullptr;
  if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_ident[EI_DATA] != ELFDATA2LSB)
    return nullptr;
  if (header.e_machine != (machine == Machine::X86_64 ? EM_X86_64 : EM_AARCH64)) return nullptr;

  if (header.e_phoff != 0 && header.e_phnum != 0) {
    if (header.e_phentsize != sizeof(Elf64_Phdr)) return nullptr;
    image->segments_.resize(header.e_phnum);
    if (!image->Read(header.e_phoff, uint64_t{header.e_phnum} * sizeof(Elf64_Phdr), image->segments_.data()))
      return nullptr;
  }

  // Section headers are optional (a stripped-by-hand or truncated file): without
  // them, symbols are absent and CFI is found through PT_GNU_EH_FRAME.
  if (header.e_shoff != 0 && header.e_shentsize == sizeof(Elf64_Shdr)) {
    uint64_t count = header.e_shnum;
    uint64_t namesIndex = header.e_shstrndx;
    Elf64_Shdr first;
    if ((count == 0 || namesIndex == SHN_XINDEX) && image->Read(header.e_shoff, sizeof first, &first)) {
      if (count == 0) count = first.sh_size;  // more than SHN_LORESERVE sections
      if (namesIndex == SHN_XINDEX) namesIndex = first.sh_link;
    }
    if (count <= image->size_ / sizeof(Elf64_Shdr)) {
      std::vector<Elf64_Shdr> sections(count);
      if (image->Read(header.e_shoff, count * sizeof(Elf64_Shdr), sections.data())) {
        image->sections_ = std::move(sections);
        if (namesIndex < image->sections_.size() && image->sections_[namesIndex].sh_type == SHT_STRTAB) {
          const std::vector<uint8_t> names = image->SectionData(&image->sections_[namesIndex]);
          image->sectionNames_.assign(names.begin(), names.end());
        }
      }
    }
  }
  *error = 0;
  return image;
}

// Walks ELF notes in `bytes` for the GNU build id.
std::string BuildIdInNotes(const std::vector<uint8_t>& bytes) {
  uint64_t offset = 0;
  while (bytes.size() - offset >= sizeof(Elf64_Nhdr)) {
    Elf64_Nhdr note;
    memcpy(&note, bytes.data() + offset, sizeof note);
    offset += sizeof note;
    const uint64_t nameSize = (uint64_t{note.n_namesz} + 3) & ~uint64_t{3};
    const uint64_t descSize = (uint64_t{note.n_descsz} + 3) & ~uint64_t{3};
    if (nameSize > bytes.size() - offset || descSize > bytes.size() - offset - nameSize) break;
    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && memcmp(bytes.data() + offset, "GNU", 4) == 0 &&
        note.n_descsz > 0)
      return std::string(reinterpret_cast<const char*>(bytes.data() + offset + nameSize), note.n_descsz);
    offset += nameSize + descSize;
  }
  return {};
}

std::string Image::BuildId() const {
  if (const Elf64_Shdr* section = Section(".note.gnu.build-id")) return BuildIdInNotes(SectionData(section));
  for (const Elf64_Phdr& segment : segments_) {
    if (segment.p_type != PT_NOTE) continue;
    std::string id = BuildIdInNotes(ReadBytes(segment.p_offset, segment.p_filesz));
    if (!id.empty()) return id;
  }
  return {};
}

// The CRC .gnu_debuglink records: CRC-32 (IEEE 802.3, as zlib's crc32) of the whole file.
bool FileCrc32(const Image& image, uint32_t* out) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::vector<uint8_t> chunk(1 << 16);
  uint32_t crc = 0xffffffffu;
  for (uint64_t offset = 0; offset < image.size();) {
    const uint64_t size = std::min<uint64_t>(chunk.size(), image.size() - offset);
    if (!image.Read(offset, size, chunk.data())) return false;
    for (uint64_t i = 0; i < size; i++) crc = table[(crc ^ chunk[i]) & 0xff] ^ (crc >> 8);
    offset += size;
  }
  *out = crc ^ 0xffffffffu;
  return true;
}

// One symbol table's functions, sorted by address, and where every other symbol
// starts (a size-0 function ends where the next symbol starts).
class SymbolTable {
 public:
  void Load(const Image& image, const Elf64_Shdr* table);
  bool present() const { return present_; }
  std::optional<Symbol> Lookup(uint64_t address) const;

 private:
  struct Function {
    uint64_t address;
    uint64_t size;
    uint32_t name;
    uint8_t rank;  // among functions at one address, the higher one names it
    bool executable;
  };
  bool present_ = false;
  std::vector<Function> functions_;
  std::vector<uint64_t> starts_;
  std::vector<char> names_;
};

void SymbolTable::Load(const Image& image, const Elf64_Shdr* table) {
  if (!table || (table->sh_type != SHT_SYMTAB && table->sh_type != SHT_DYNSYM) || table->sh_size == 0) return;
  present_ = true;
  if (table->sh_entsize != sizeof(Elf64_Sym)) return;
  const Elf64_Shdr* strings = image.SectionAt(table->sh_link);
  if (!strings || strings->sh_type != SHT_STRTAB) return;
  const std::vector<uint8_t> bytes = image.SectionData(table);
  const std::vector<uint8_t> names = image.SectionData(strings);
  names_.assign(names.begin(), names.end());
  const size_t count = bytes.size() / sizeof(Elf64_Sym);
  for (size_t i = 0; i < count; i++) {
    Elf64_Sym symbol;
    memcpy(&symbol, bytes.data() + i * sizeof symbol, sizeof symbol);
    const unsigned type = ELF64_ST_TYPE(symbol.st_info);
    if (symbol.st_shndx == SHN_UNDEF || symbol.st_shndx == SHN_ABS || symbol.st_shndx == SHN_COMMON) continue;
    if (type == STT_SECTION || type == STT_FILE || type == STT_TLS) continue;
    if (symbol.st_name == 0 || symbol.st_name >= names_.size()) continue;
    const char* name = names_.data() + symbol.st_name;
    if (!memchr(name, 0, names_.size() - symbol.st_name)) continue;
    if (name[0] == '$') continue;  // arm64 mapping symbols ($x, $d) mark code and data, not functions
    starts_.push_back(symbol.st_value);
    if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
    const Elf64_Shdr* section = image.SectionAt(symbol.st_shndx);
    const unsigned binding = ELF64_ST_BIND(symbol.st_info);
    // Sized before size 0, then global before weak before local.
    const int bindingRank = binding == STB_GLOBAL ? 2 : binding == STB_WEAK ? 1 : 0;
    const uint8_t rank = static_cast<uint8_t>((symbol.st_size > 0 ? 4 : 0) + bindingRank);
    functions_.push_back({symbol.st_value, symbol.st_size, symbol.st_name, rank,
                          section && (section->sh_flags & SHF_EXECINSTR)});
  }
  std::sort(functions_.begin(), functions_.end(), [](const Function& a, const Function& b) {
    return a.address != b.address ? a.address < b.address : a.rank < b.rank;
  });
  std::sort(starts_.begin(), starts_.end());
}

std::optional<Symbol> SymbolTable::Lookup(uint64_t address) const {
  auto next = std::upper_bound(functions_.begin(), functions_.end(), address,
                               [](uint64_t value, const Function& f) { return value < f.address; });
  if (next == functions_.begin()) return std::nullopt;
  const Function& nearest = *(next - 1);
  // Sized functions containing the address; nested ones are rare, so a few steps back
  // (the best-ranked alias at an address comes first) find the innermost.
  auto candidate = next;
  for (int steps = 0; candidate != functions_.begin() && steps < 16; steps++) {
    --candidate;
    if (candidate->size > 0 && address - candidate->address < candidate->size)
      return Symbol{names_.data() + candidate->name, address - candidate->address};
  }
  if (nearest.size == 0 && nearest.executable) {
    // Only when nothing else starts between the symbol and the address.
    auto after = std::upper_bound(starts_.begin(), starts_.end(), nearest.address);
    if (after == starts_.end() || *after > address)
      return Symbol{names_.data() + nearest.name, address - nearest.address};
  }
  return std::nullopt;
}

// "/usr/lib" of "/usr/lib/libc.so.6", "" of "/prog" (the path is absolute).
std::string DirectoryOf(const std::string& path) { return path.substr(0, path.rfind('/')); }

class ElfFileImpl final : public ElfFile {
 public:
  // `root`: where its debug file is looked for (as OpenPathIn takes it); `reader`: the user
  // whose process maps it, when a debug file must be one that user could read.
  ElfFileImpl(std::string root, std::string path, Machine machine, std::unique_ptr<Image> image,
              std::optional<Reader> reader = std::nullopt)
      : root_(std::move(root)), path_(std::move(path)), machine_(machine), image_(std::move(image)), reader_(reader) {}

  std::optional<uint64_t> AddressOfFileOffset(uint64_t fileOffset) const override {
    return image_->AddressOfFileOffset(fileOffset);
  }

  std::optional<Symbol> SymbolAt(uint64_t address) const override {
    std::call_once(symbolsOnce_, [this] {
      symtab_.Load(*image_, image_->Section(".symtab"));
      if (!symtab_.present()) dynsym_.Load(*image_, image_->Section(".dynsym"));
    });
    if (symtab_.present()) return symtab_.Lookup(address);
    if (auto symbol = dynsym_.Lookup(address)) return symbol;
    if (const Image* debug = Debug()) {
      std::call_once(debugSymbolsOnce_, [this, debug] { debugSymtab_.Load(*debug, debug->Section(".symtab")); });
      if (auto symbol = debugSymtab_.Lookup(address)) return symbol;
    }
    // A stripped Go program still names its functions in its pclntab (without the .abi0
    // of assembly functions that .symtab spells).
    if (const gopclntab::Table* go = Go()) {
      if (const auto function = go->FunctionAt(address)) {
        std::string name = go->Name(*function);
        if (!name.empty()) return Symbol{std::move(name), address - function->entry};
      }
    }
    return std::nullopt;
  }

  std::optional<UnwindRule> UnwindRuleAt(uint64_t address) const override {
    // Go code by its pclntab, before any CFI: the table Go's own traceback trusts, in
    // every Go binary, and the only one that says where a frame saved the caller's frame
    // pointer and which functions end a stack (see elf_gopclntab.h).
    if (const gopclntab::Table* go = Go()) {
      if (const auto function = go->FunctionAt(address)) {
        if (auto rule = go->RuleAt(*function, address, machine_)) return rule;
      }
    }
    std::call_once(cfiOnce_, [this] { LoadOwnCfi(); });
    cfi::Lookup lookup = ehFrame_->RuleAt(address);
    if (lookup.covered) return lookup.rule;
    lookup = debugFrame_->RuleAt(address);
    if (lookup.covered) return lookup.rule;
    if (!Debug()) return std::nullopt;
    std::call_once(debugCfiOnce_, [this] {
      const Image* debug = Debug();
      debugFileFrame_ = MakeDebugFrame(*debug);
    });
    return debugFileFrame_->RuleAt(address).rule;
  }

  bool HasSymbols() const override {
    if (Go()) return true;
    const Elf64_Shdr* symtab = image_->Section(".symtab");
    const Elf64_Shdr* dynsym = image_->Section(".dynsym");
    if ((symtab && symtab->sh_size > 0) || (dynsym && dynsym->sh_size > 0)) return true;
    const Image* debug = Debug();
    const Elf64_Shdr* debugSymtab = debug ? debug->Section(".symtab") : nullptr;
    return debugSymtab && debugSymtab->sh_type == SHT_SYMTAB && debugSymtab->sh_size > 0;
  }

  bool HasUnwindInfo() const override {
    if (Go()) return true;
    std::call_once(cfiOnce_, [this] { LoadOwnCfi(); });
    if (!ehFrame_->Empty() || !debugFrame_->Empty()) return true;
    const Image* debug = Debug();
    const Elf64_Shdr* frames = debug ? debug->Section(".debug_frame") : nullptr;
    return frames && frames->sh_type == SHT_PROGBITS && frames->sh_size > 0;
  }

  const std::string& DebugFile() const override {
    Debug();
    return debugPath_;
  }

  size_t HeldFds() const override { return 1 + (debug_ ? 1 : 0); }

 private:
  cfi::PointerReader PointerReaderOf(const Image& image) const {
    return [&image](uint64_t address, uint64_t* value) {
      const auto offset = image.FileOffsetOfAddress(address, 8);
      return offset && image.Read(*offset, 8, value);
    };
  }

  void LoadOwnCfi() const {
    cfi::SectionBytes frames, header;
    const Elf64_Shdr* frameSection = image_->Section(".eh_frame");
    const Elf64_Shdr* headerSection = image_->Section(".eh_frame_hdr");
    if (frameSection) {
      frames.bytes = image_->SectionData(frameSection);
      frames.address = frameSection->sh_addr;
      if (headerSection) {
        header.bytes = image_->SectionData(headerSection);
        header.address = headerSection->sh_addr;
      }
    } else if (const Elf64_Phdr* segment = image_->Segment(PT_GNU_EH_FRAME)) {
      // No section headers: .eh_frame_hdr from its segment, and .eh_frame from the
      // address the header records, up to the end of the loaded bytes holding it.
      header.bytes = image_->ReadBytes(segment->p_offset, segment->p_filesz);
      header.address = segment->p_vaddr;
      uint64_t framesAddress = 0;
      if (FramesAddressOfHeader(header, &framesAddress)) {
        if (auto tail = image_->SegmentTail(framesAddress)) {
          frames.bytes = image_->ReadBytes(tail->first, tail->second);
          frames.address = framesAddress;
        }
      }
    }
    ehFrame_ = std::make_unique<cfi::FrameTable>(cfi::Format::EhFrame, machine_, std::move(frames), std::move(header),
                                                 PointerReaderOf(*image_));
    debugFrame_ = MakeDebugFrame(*image_);
  }

  // eh_frame_ptr of an .eh_frame_hdr whose encoding is pcrel|sdata4 or absptr/udata8
  // (what linkers write).
  static bool FramesAddressOfHeader(const cfi::SectionBytes& header, uint64_t* out) {
    if (header.bytes.size() < 8 || header.bytes[0] != 1) return false;
    const uint8_t encoding = header.bytes[1];
    if (encoding == 0x1b) {  // pcrel|sdata4
      int32_t value;
      memcpy(&value, header.bytes.data() + 4, 4);
      *out = header.address + 4 + static_cast<uint64_t>(static_cast<int64_t>(value));
      return true;
    }
    if ((encoding == 0x00 || encoding == 0x04) && header.bytes.size() >= 12) {
      memcpy(out, header.bytes.data() + 4, 8);
      return true;
    }
    return false;
  }

  std::unique_ptr<cfi::FrameTable> MakeDebugFrame(const Image& image) const {
    cfi::SectionBytes frames;
    if (const Elf64_Shdr* section = image.Section(".debug_frame")) {
      if (section->sh_type == SHT_PROGBITS) frames.bytes = image.SectionData(section);
    }
    return std::make_unique<cfi::FrameTable>(cfi::Format::DebugFrame, machine_, std::move(frames),
                                             cfi::SectionBytes{}, PointerReaderOf(image));
  }

  // The Go function table, read once; nullptr when the file has none.
  const gopclntab::Table* Go() const {
    std::call_once(goOnce_, [this] {
      const Elf64_Shdr* section = image_->Section(".gopclntab");
      if (!section) section = image_->Section(".data.rel.ro.gopclntab");  // PIE
      if (!section || section->sh_type != SHT_PROGBITS) return;
      // runtime.text, where the 1.18+ table's entry offsets start: the .text section in a
      // Go-linked binary (the table's own header word says so too, except in a PIE).
      const Elf64_Shdr* text = image_->Section(".text");
      go_ = gopclntab::Table::Parse(image_->SectionData(section), text ? text->sh_addr : 0);
    });
    return go_.get();
  }

  // The separate debug file, found once: by build id, then by .gnu_debuglink.
  const Image* Debug() const {
    std::call_once(debugOnce_, [this] { FindDebugFile(); });
    return debug_.get();
  }

  void FindDebugFile() const {
    const std::string buildId = image_->BuildId();
    if (!buildId.empty()) {
      static const char kHex[] = "0123456789abcdef";
      std::string hex;
      for (unsigned char byte : buildId) {
        hex.push_back(kHex[byte >> 4]);
        hex.push_back(kHex[byte & 15]);
      }
      const std::string candidate = "/usr/lib/debug/.build-id/" + hex.substr(0, 2) + "/" + hex.substr(2) + ".debug";
      int error = 0;
      auto debug = Image::Open(root_, candidate, machine_, &error, reader_);
      if (debug && debug->BuildId() == buildId) return Accept(std::move(debug), candidate);
    }
    const Elf64_Shdr* link = image_->Section(".gnu_debuglink");
    const std::vector<uint8_t> bytes = image_->SectionData(link);
    const void* nul = memchr(bytes.data(), 0, bytes.size());
    if (!nul) return;
    const std::string name(reinterpret_cast<const char*>(bytes.data()));
    const size_t crcOffset = (name.size() + 1 + 3) & ~size_t{3};
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        crcOffset + 4 > bytes.size())
      return;
    uint32_t crc;
    memcpy(&crc, bytes.data() + crcOffset, 4);
    if (path_.empty() || path_[0] != '/') return;  // the link is relative to the file's directory
    const std::string directory = DirectoryOf(path_);
    for (const std::string& candidate :
         {directory + "/" + name, directory + "/.debug/" + name, "/usr/lib/debug" + directory + "/" + name}) {
      if (candidate == path_) continue;  // the file itself
      int error = 0;
      auto debug = Image::Open(root_, candidate, machine_, &error, reader_);
      uint32_t actual = 0;
      if (debug && FileCrc32(*debug, &actual) && actual == crc) return Accept(std::move(debug), candidate);
    }
  }
  void Accept(std::unique_ptr<Image> debug, const std::string& path) const {
    debug_ = std::move(debug);
    debugPath_ = path;
  }

  std::string root_;
  std::string path_;
  Machine machine_;
  std::unique_ptr<Image> image_;
  std::optional<Reader> reader_;

  mutable std::once_flag symbolsOnce_, debugOnce_, debugSymbolsOnce_, cfiOnce_, debugCfiOnce_, goOnce_;
  mutable std::unique_ptr<gopclntab::Table> go_;
  mutable SymbolTable symtab_, dynsym_, debugSymtab_;
  mutable std::unique_ptr<Image> debug_;
  mutable std::string debugPath_;
  mutable std::unique_ptr<cfi::FrameTable> ehFrame_, debugFrame_, debugFileFrame_;
};

}  // namespace

std::unique_ptr<ElfFile> ElfFile::Open(const std::string& root, const std::string& path, Machine machine, int* error) {
  int ignored = 0;
  if (!error) error = &ignored;
  auto image = Image::Open(root, path, machine, error);
  if (!image) return nullptr;
  return std::make_unique<ElfFileImpl>(root, path, machine, std::move(image));
}

std::unique_ptr<ElfFile> ElfFile::OpenMapped(const MappedObject& object, Machine machine, int* error) {
  int ignored = 0;
  if (!error) error = &ignored;
  const std::string processRoot = object.processDir + "/root";
  // Which root the maps path is a path in: ours (a chrooted process's files, which we
  // reach) or the process's own (a container in another mount namespace).
  struct Candidate {
    const std::string& root;
    bool ours;
  };
  const std::string ourRoot;
  std::vector<Candidate> candidates;
  if (!object.path.empty() && object.path[0] == '/') candidates.push_back({ourRoot, true});
  candidates.push_back({processRoot, false});
  auto resolve = [&](const Candidate& candidate, int* why) -> ScopedFd {
    ScopedFd fd(OpenPathIn(candidate.root, object.path, why));
    if (!fd) return fd;
    struct stat status;
    if (fstat(fd.get(), &status) != 0) {
      *why = errno;
      return ScopedFd();
    }
    if (!IsMappedObject(fd.get(), status, object)) {
      *why = S_ISREG(status.st_mode) ? kNotTheMappedFile : kNotRegular;
      return ScopedFd();
    }
    return fd;
  };

  // The mapping itself: what the process maps, whatever its path now names. The kernel
  // lets only CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE) follow these links.
  char range[48];
  snprintf(range, sizeof range, "/map_files/%llx-%llx", static_cast<unsigned long long>(object.start),
           static_cast<unsigned long long>(object.end));
  int mappedError = 0;
  ScopedFd handle(open((object.processDir + range).c_str(), O_PATH | O_CLOEXEC));
  if (!handle) mappedError = errno;
  const Candidate* found = nullptr;
  if (handle) {
    struct stat status;
    if (fstat(handle.get(), &status) != 0) {
      *error = errno;
      return nullptr;
    }
    if (!S_ISREG(status.st_mode)) {  // a device or anything else mapped: never opened
      *error = kNotRegular;
      return nullptr;
    }
    if (!IsMappedObject(handle.get(), status, object)) {  // the range maps something else now
      *error = kNotTheMappedFile;
      return nullptr;
    }
    for (const Candidate& candidate : candidates) {
      int why = 0;
      if (resolve(candidate, &why)) {
        found = &candidate;
        break;
      }
    }
  } else {
    // Not root (EPERM), or the range is no longer mapped (ENOENT): the paths, checked.
    int why = mappedError == ENOENT ? ENOENT : 0;
    for (const Candidate& candidate : candidates) {
      int candidateError = 0;
      handle = resolve(candidate, &candidateError);
      if (handle) {
        found = &candidate;
        break;
      }
      // The most telling reason: the wrong file over a missing one.
      if (why == 0 || why == ENOENT) why = candidateError;
    }
    if (!handle) {
      *error = why != 0 ? why : ENOENT;
      return nullptr;
    }
  }
  auto image = Image::FromPath(handle.get(), machine, error);
  if (!image) return nullptr;
  // Its debug file: under the root its path was found in (the process's when neither
  // names it now), and only one its user could read, unless that user is us.
  std::optional<Reader> reader = ReaderOf(object.processDir);
  if (!reader) {
    if (geteuid() == 0) reader = Reader{65534, 65534};  // unknown: what anyone may read
  } else if (reader->uid == geteuid()) {
    reader.reset();  // we are that user: the kernel checks as much
  }
  return std::make_unique<ElfFileImpl>(found != nullptr && found->ours ? std::string() : processRoot, object.path,
                                       machine, std::move(image), reader);
}

}  // namespace elf
}  // namespace iokitsnap
