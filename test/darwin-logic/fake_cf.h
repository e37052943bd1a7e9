// The fake CoreFoundation's objects, for the fake registry and the leak count.
#pragma once

#include <CoreFoundation/CoreFoundation.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "json.h"

namespace fake {

// Builders (each returns one reference, owned by the caller; containers take over
// the references of what they are given).
CFTypeRef CFStringOf(const std::string& text);
CFTypeRef CFIntegerOf(uint64_t bits, int byteSize);  // byteSize 4: SInt32 storage, as IOKit hands ≤32-bit OSNumbers
CFTypeRef CFDoubleOf(double value);
CFTypeRef CFBoolOf(bool value);
CFTypeRef CFDataOf(const std::string& bytes);
CFTypeRef CFArrayOf(std::vector<CFTypeRef> items);
CFTypeRef CFSetOf(std::vector<CFTypeRef> items);
CFTypeRef CFDictOf(std::vector<std::pair<CFTypeRef, CFTypeRef>> entries);
// A property tree in the JSON image of native/model.h (what importIoreg gives): objects
// → dictionaries ({"$data": base64} → data), integers → 32- or 64-bit numbers.
CFTypeRef CFFromJson(const Json& value);

size_t LiveCFObjects();  // created and not yet released (CFSTR constants excluded)
void ResetCF();

}  // namespace fake
