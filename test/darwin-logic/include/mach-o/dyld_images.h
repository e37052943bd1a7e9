// Test-only stand-in for <mach-o/dyld_images.h>: the legacy image list as dyld
// keeps it in the target (the fake kernel lays it out in fake memory).
#pragma once
#include <stdint.h>

struct mach_header;
struct dyld_image_info {
  const struct mach_header* imageLoadAddress;
  const char* imageFilePath;
  uintptr_t imageFileModDate;
};
struct dyld_all_image_infos {
  uint32_t version;
  uint32_t infoArrayCount;
  const struct dyld_image_info* infoArray;
  void* notification;
  int processDetachedFromSharedRegion;
  int libSystemInitialized;
  const struct mach_header* dyldImageLoadAddress;
  void* jitInfo;
  const char* dyldVersion;
  const char* errorMessage;
  uintptr_t terminationFlags;
  void* coreSymbolicationShmPage;
  uintptr_t systemOrderFlag;
  uintptr_t uuidArrayCount;
  const void* uuidArray;
  struct dyld_all_image_infos* dyldAllImageInfosAddress;
  uintptr_t initialImageCount;
  uintptr_t errorKind;
  const char* errorClientOfDylibPath;
  const char* errorTargetDylibPath;
  const char* errorSymbol;
  uintptr_t sharedCacheSlide;
  uint8_t sharedCacheUUID[16];
  uintptr_t sharedCacheBaseAddress;
  uint64_t infoArrayChangeTimestamp;
  const char* dyldPath;
};
