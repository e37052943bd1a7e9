#include "dyld_images.h"

#include <memory>

#include "dyld_private.h"

namespace iokitsnap {
namespace darwin {

bool ForEachDyldImage(task_t task, const std::function<void(uint64_t, const char*)>& visit, kern_return_t* error) {
  *error = KERN_SUCCESS;
  std::unique_ptr<const dyld_process_info_base, void (*)(dyld_process_info)> info(
      _dyld_process_info_create(task, 0, error), _dyld_process_info_release);
  if (!info) return false;
  const std::function<void(uint64_t, const char*)>* callback = &visit;
  _dyld_process_info_for_each_image(info.get(), ^(uint64_t machHeaderAddress, const uuid_t, const char* path) {
    (*callback)(machHeaderAddress, path);
  });
  return true;
}

}  // namespace darwin
}  // namespace iokitsnap
