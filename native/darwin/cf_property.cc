#include "cf_property.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "scoped.h"

namespace iokitsnap {
namespace darwin {
namespace {

constexpr int kMaxDepth = 64;

std::string DescriptionOf(CFTypeRef value) {
  ScopedCFType<CFStringRef> description(CFCopyDescription(value));
  return StringFromCF(description.get());
}

PropertyValue NumberFromCF(CFNumberRef number) {
  if (CFNumberIsFloatType(number)) {
    double value = 0;
    CFNumberGetValue(number, kCFNumberDoubleType, &value);
    return PropertyValue::Number(value);
  }
  int64_t value = 0;
  CFNumberGetValue(number, kCFNumberSInt64Type, &value);
  uint64_t bits = static_cast<uint64_t>(value);
  switch (CFNumberGetByteSize(number)) {  // the storage width: undo the sign extension
    case 1: bits &= 0xffu; break;
    case 2: bits &= 0xffffu; break;
    case 4: bits &= 0xffffffffu; break;
    default: break;
  }
  return PropertyValue::Unsigned(bits);
}

PropertyValue Convert(CFTypeRef value, PropertyConversion& conversion, int depth, CFStringRef skipKey);

PropertyValue DictFromCF(CFDictionaryRef dictionary, PropertyConversion& conversion, int depth, CFStringRef skipKey) {
  const CFIndex count = CFDictionaryGetCount(dictionary);
  std::vector<const void*> keys(static_cast<size_t>(count));
  std::vector<const void*> values(static_cast<size_t>(count));
  if (count > 0) CFDictionaryGetKeysAndValues(dictionary, keys.data(), values.data());
  std::vector<std::pair<std::string, CFTypeRef>> entries;
  entries.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    CFTypeRef key = keys[i];
    if (skipKey != nullptr && CFEqual(key, skipKey)) continue;
    std::string name = CFGetTypeID(key) == CFStringGetTypeID() ? StringFromCF(static_cast<CFStringRef>(key))
                                                                : DescriptionOf(key);
    entries.emplace_back(std::move(name), values[i]);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  PropertyValue dict = PropertyValue::Dict();
  dict.entries.reserve(entries.size());
  for (auto& [name, item] : entries) dict.Set(std::move(name), Convert(item, conversion, depth + 1, nullptr));
  return dict;
}

PropertyValue Convert(CFTypeRef value, PropertyConversion& conversion, int depth, CFStringRef skipKey) {
  if (value == nullptr) return PropertyValue();
  if (depth > kMaxDepth) {
    conversion.truncated = true;
    return PropertyValue();
  }
  const CFTypeID type = CFGetTypeID(value);
  if (type == CFDictionaryGetTypeID()) {
    return DictFromCF(static_cast<CFDictionaryRef>(value), conversion, depth, skipKey);
  }
  if (type == CFArrayGetTypeID()) {
    auto array = static_cast<CFArrayRef>(value);
    PropertyValue list = PropertyValue::Array();
    const CFIndex count = CFArrayGetCount(array);
    list.items.reserve(static_cast<size_t>(count));
    for (CFIndex i = 0; i < count; ++i) list.items.push_back(Convert(CFArrayGetValueAtIndex(array, i), conversion, depth + 1, nullptr));
    return list;
  }
  if (type == CFSetGetTypeID()) {
    auto set = static_cast<CFSetRef>(value);
    std::vector<const void*> members(static_cast<size_t>(CFSetGetCount(set)));
    if (!members.empty()) CFSetGetValues(set, members.data());
    PropertyValue list = PropertyValue::Array();
    list.items.reserve(members.size());
    for (const void* member : members) list.items.push_back(Convert(member, conversion, depth + 1, nullptr));
    return list;
  }
  if (type == CFStringGetTypeID()) return PropertyValue::String(StringFromCF(static_cast<CFStringRef>(value)));
  if (type == CFNumberGetTypeID()) return NumberFromCF(static_cast<CFNumberRef>(value));
  if (type == CFBooleanGetTypeID()) return PropertyValue::Bool(CFBooleanGetValue(static_cast<CFBooleanRef>(value)));
  if (type == CFDataGetTypeID()) {
    auto data = static_cast<CFDataRef>(value);
    const UInt8* bytes = CFDataGetBytePtr(data);
    const CFIndex length = CFDataGetLength(data);
    return PropertyValue::Data(bytes == nullptr ? std::string()
                                                : std::string(reinterpret_cast<const char*>(bytes), static_cast<size_t>(length)));
  }
  return PropertyValue::String(DescriptionOf(value));
}

}  // namespace

std::string StringFromCF(CFStringRef string) {
  if (string == nullptr) return std::string();
  if (const char* fast = CFStringGetCStringPtr(string, kCFStringEncodingUTF8)) return std::string(fast);
  const CFIndex length = CFStringGetLength(string);
  const CFIndex capacity = CFStringGetMaximumSizeForEncoding(length, kCFStringEncodingUTF8) + 1;
  std::string text(static_cast<size_t>(capacity), '\0');
  CFIndex used = 0;
  CFStringGetBytes(string, CFRangeMake(0, length), kCFStringEncodingUTF8, '?', false,
                   reinterpret_cast<UInt8*>(text.data()), capacity, &used);
  text.resize(static_cast<size_t>(used));
  return text;
}

PropertyValue PropertyFromCF(CFTypeRef value, PropertyConversion& conversion) {
  return Convert(value, conversion, 0, nullptr);
}

PropertyValue PropertyDictFromCF(CFDictionaryRef dictionary, CFStringRef skipKey, PropertyConversion& conversion) {
  if (dictionary == nullptr) return PropertyValue::Dict();
  return DictFromCF(dictionary, conversion, 0, skipKey);
}

}  // namespace darwin
}  // namespace iokitsnap
