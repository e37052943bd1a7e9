#include "stacks.h"

#include <mach-o/dyld_images.h>
#include <mach-o/loader.h>
#include <mach/mach_vm.h>
#include <sys/param.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "../blocking.h"
#include "../darwin_decode.h"
#include "dyld_images.h"
#include "registers.h"
#include "scoped.h"

namespace iokitsnap {
namespace darwin {
namespace {

constexpr uint32_t kMaxImages = 1 << 16;          // a real process has a few thousand at most
constexpr uint32_t kMaxLoadCommandBytes = 1 << 20;
constexpr int kImageListAttempts = 3;              // dyld sets infoArray to null while it edits the list

// A NUL-terminated string in `task`, read a page at a time so a string that ends
// just before an unmapped page still reads.
std::string ReadTaskString(task_t task, uint64_t address) {
  std::string text;
  char chunk[512];
  while (address != 0 && text.size() < MAXPATHLEN) {
    const uint64_t toPageEnd = 4096 - (address % 4096);
    const size_t size = static_cast<size_t>(std::min<uint64_t>(sizeof chunk, toPageEnd));
    if (!ReadTaskMemory(task, address, chunk, size)) break;
    const size_t length = strnlen(chunk, size);
    text.append(chunk, length);
    if (length < size) break;
    address += size;
  }
  return text;
}

uint64_t NowNs() { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }

}  // namespace

ImageMap ImageMap::Read(task_t task, std::string* problem) {
  ImageMap map;
  map.task_ = task;
  task_dyld_info_data_t dyldInfo;
  mach_msg_type_number_t count = TASK_DYLD_INFO_COUNT;
  kern_return_t kr = task_info(task, TASK_DYLD_INFO, reinterpret_cast<task_info_t>(&dyldInfo), &count);
  if (kr != KERN_SUCCESS) {
    if (problem != nullptr) *problem = "task_info(TASK_DYLD_INFO) failed (kern_return " + std::to_string(kr) + ")";
    return map;
  }
  if (dyldInfo.all_image_info_format != TASK_DYLD_ALL_IMAGE_INFO_64 || dyldInfo.all_image_info_addr == 0) {
    if (problem != nullptr) *problem = "the target has no 64-bit dyld image list";
    return map;
  }

  dyld_all_image_infos infos;
  std::vector<dyld_image_info> entries;
  for (int attempt = 0; attempt < kImageListAttempts; ++attempt) {
    std::memset(&infos, 0, sizeof infos);
    const size_t size = static_cast<size_t>(std::min<uint64_t>(sizeof infos, dyldInfo.all_image_info_size));
    if (!ReadTaskMemory(task, dyldInfo.all_image_info_addr, &infos, size)) break;
    if (infos.infoArray == nullptr || infos.infoArrayCount == 0 || infos.infoArrayCount > kMaxImages) continue;
    entries.resize(infos.infoArrayCount);
    if (ReadTaskMemory(task, reinterpret_cast<uint64_t>(infos.infoArray), entries.data(),
                       entries.size() * sizeof(dyld_image_info))) {
      break;
    }
    entries.clear();
  }

  if (!entries.empty()) {
    map.images_.reserve(entries.size() + 1);
    for (const dyld_image_info& entry : entries) {
      Image image;
      image.loadAddress = reinterpret_cast<uint64_t>(entry.imageLoadAddress);
      image.path = ReadTaskString(task, reinterpret_cast<uint64_t>(entry.imageFilePath));
      if (image.loadAddress != 0) map.images_.push_back(std::move(image));
    }
    if (infos.dyldImageLoadAddress != nullptr) {  // dyld is not in its own legacy list
      Image dyld;
      dyld.loadAddress = reinterpret_cast<uint64_t>(infos.dyldImageLoadAddress);
      // dyldPath exists from version 15 (macOS 10.12) on.
      dyld.path = infos.version >= 15 ? ReadTaskString(task, reinterpret_cast<uint64_t>(infos.dyldPath)) : "";
      if (dyld.path.empty()) dyld.path = "/usr/lib/dyld";
      map.images_.push_back(std::move(dyld));
    }
  } else {
    // The legacy array is empty or was being edited on every try: ask libdyld, which
    // reads the list in whatever form this dyld keeps it (dyld included).
    kern_return_t error = KERN_SUCCESS;
    std::vector<Image>* images = &map.images_;
    const bool listed = ForEachDyldImage(
        task,
        [images](uint64_t machHeaderAddress, const char* path) {
          if (machHeaderAddress == 0 || images->size() >= kMaxImages) return;
          Image image;
          image.loadAddress = machHeaderAddress;
          if (path != nullptr) image.path = path;
          images->push_back(std::move(image));
        },
        &error);
    if (!listed) {
      if (problem != nullptr) {
        *problem = "the dyld image list could not be read (dyld may have been updating it; kern_return " +
                   std::to_string(error) + ")";
      }
      return map;
    }
  }
  std::sort(map.images_.begin(), map.images_.end(),
            [](const Image& a, const Image& b) { return a.loadAddress < b.loadAddress; });
  return map;
}

void ImageMap::LoadExtent(Image& image) {
  image.extentKnown = true;
  mach_header_64 header;
  if (!ReadTaskMemory(task_, image.loadAddress, &header, sizeof header)) return;
  if (header.magic != MH_MAGIC_64 || header.sizeofcmds == 0 || header.sizeofcmds > kMaxLoadCommandBytes) return;
  std::vector<uint8_t> commands(header.sizeofcmds);
  if (!ReadTaskMemory(task_, image.loadAddress + sizeof header, commands.data(), commands.size())) return;
  size_t offset = 0;
  for (uint32_t i = 0; i < header.ncmds && offset + sizeof(load_command) <= commands.size(); ++i) {
    load_command command;
    std::memcpy(&command, commands.data() + offset, sizeof command);
    if (command.cmdsize < sizeof command || offset + command.cmdsize > commands.size()) return;
    if (command.cmd == LC_SEGMENT_64 && command.cmdsize >= sizeof(segment_command_64)) {
      segment_command_64 segment;
      std::memcpy(&segment, commands.data() + offset, sizeof segment);
      if (std::strncmp(segment.segname, SEG_TEXT, sizeof segment.segname) == 0) {
        image.textSize = segment.vmsize;  // the header sits at the start of __TEXT
        return;
      }
    }
    offset += command.cmdsize;
  }
}

void ImageMap::Resolve(FrameRecord& frame) {
  frame.module.clear();
  frame.offset = 0;
  auto after = std::upper_bound(images_.begin(), images_.end(), frame.pc,
                                [](uint64_t pc, const Image& image) { return pc < image.loadAddress; });
  if (after == images_.begin()) return;
  Image& image = *std::prev(after);
  if (!image.extentKnown) LoadExtent(image);
  if (frame.pc - image.loadAddress >= image.textSize) return;
  frame.module = image.path;
  frame.offset = frame.pc - image.loadAddress;
}

StackWalk WalkStack(task_t task, thread_act_t thread, uint32_t maxDepth, uint64_t deadline, bool suspendThread) {
  StackWalk walk;
  if (maxDepth == 0) {  // nothing asked for: do not stop the thread at all
    walk.ok = true;
    return walk;
  }
  walk.pcs.reserve(maxDepth);  // nothing below may allocate: see stacks.h
  const auto add = [&walk, maxDepth](uint64_t pc) {
    if (walk.pcs.size() >= maxDepth) return false;
    walk.pcs.push_back(pc);
    return true;
  };

  std::optional<ScopedThreadSuspension> suspension;
  if (suspendThread) {
    suspension.emplace(thread);
    if (suspension->result() != KERN_SUCCESS) {
      walk.error = suspension->result();
      return walk;
    }
  }
  kern_return_t error = KERN_SUCCESS;
  std::optional<ThreadRegisters> registers = ReadThreadRegisters(thread, &error);
  if (!registers) {
    walk.error = error;
    return walk;
  }
  walk.ok = true;
  if (!add(registers->pc)) return walk;
  const ArchKind arch = HostArch();
  const size_t length = SyscallInstructionLength(arch);
  uint8_t instruction[4] = {};
  const bool inTrapStub = registers->pc >= length &&
                          ReadTaskMemory(task, registers->pc - length, instruction, length) &&
                          IsSyscallInstruction(arch, instruction, length);
  if (inTrapStub) {
    uint64_t caller = 0;
    if (registers->lr) {
      caller = *registers->lr;
    } else if (ReadTaskMemory(task, registers->sp, &caller, sizeof caller)) {
      caller = StripPointerAuth(caller);
    }
    if (caller != 0 && !add(caller)) return walk;
  }
  // Each frame record is { caller's frame pointer, return address } at fp, on arm64
  // and x86_64 alike. The chain must climb toward the stack base; anything else
  // (0, misaligned, unreadable, going down) is its end.
  uint64_t fp = registers->fp;
  while (walk.pcs.size() < maxDepth) {
    if (NowNs() > deadline) {
      walk.outOfTime = true;
      break;
    }
    if (fp == 0 || fp % sizeof(uint64_t) != 0) break;
    uint64_t record[2];
    if (!ReadTaskMemory(task, fp, record, sizeof record)) break;
    const uint64_t returnAddress = StripPointerAuth(record[1]);
    if (returnAddress == 0) break;
    // A wrapper with a frame of its own around the trap has already given its
    // caller through lr: the same return address is not a second frame.
    if (!(inTrapStub && walk.pcs.size() == 2 && walk.pcs.back() == returnAddress)) add(returnAddress);
    const uint64_t callerFp = StripPointerAuth(record[0]);
    if (callerFp <= fp) break;
    fp = callerFp;
  }
  return walk;
}

}  // namespace darwin
}  // namespace iokitsnap
