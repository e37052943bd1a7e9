// libdyld's process-introspection SPI, exported by libSystem (libSystem.tbd lists
// __dyld_process_info_create and friends) and declared only in dyld's private
// dyld_process_info.h; declared here as Apple's own tools use it. It reads another
// task's image list the way the current dyld keeps it, where the legacy
// dyld_all_image_infos array may be empty.
#pragma once

#include <mach/mach.h>
#include <stdint.h>
#include <uuid/uuid.h>

extern "C" {
typedef const struct dyld_process_info_base* dyld_process_info;
dyld_process_info _dyld_process_info_create(task_t task, uint64_t timestamp, kern_return_t* kernelError);
void _dyld_process_info_release(dyld_process_info info);
void _dyld_process_info_for_each_image(dyld_process_info info,
                                       void (^callback)(uint64_t machHeaderAddress, const uuid_t uuid,
                                                        const char* path));
}
