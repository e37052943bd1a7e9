// The fake CoreFoundation: reference-counted objects of the seven types the
// property conversion reads, each counted so a missing CFRelease is a leak.
#include "fake_cf.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>

struct __CFType {
  CFTypeID type = 0;
  int refs = 1;
  bool immortal = false;
  std::string text;  // String; Data: the bytes
  bool isFloat = false;
  double real = 0;
  int64_t integer = 0;
  int byteSize = 8;
  bool boolean = false;
  std::vector<CFTypeRef> items;                             // Array, Set
  std::vector<std::pair<CFTypeRef, CFTypeRef>> entries;     // Dictionary
};

namespace {

enum : CFTypeID { kString = 7, kNumber = 22, kBoolean = 21, kData = 20, kArray = 19, kSet = 17, kDict = 18 };

std::mutex cfMutex;
std::set<const __CFType*>& Live() {
  static std::set<const __CFType*> live;
  return live;
}

__CFType* New(CFTypeID type) {
  auto* object = new __CFType;
  object->type = type;
  std::lock_guard<std::mutex> lock(cfMutex);
  Live().insert(object);
  return object;
}

const __CFType* Of(CFTypeRef ref) { return static_cast<const __CFType*>(ref); }

void Check(CFTypeRef ref, const char* what) {
  std::lock_guard<std::mutex> lock(cfMutex);
  const __CFType* object = Of(ref);
  if (object == nullptr || (!object->immortal && Live().count(object) == 0)) {
    std::fprintf(stderr, "darwin-logic: %s on a released or unknown CF object\n", what);
    std::abort();
  }
}

}  // namespace

namespace fake {

CFTypeRef CFStringOf(const std::string& text) {
  __CFType* s = New(kString);
  s->text = text;
  return s;
}
CFTypeRef CFIntegerOf(uint64_t bits, int byteSize) {
  __CFType* n = New(kNumber);
  n->byteSize = byteSize;
  n->integer = byteSize == 4 ? static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(bits)))
                             : static_cast<int64_t>(bits);
  return n;
}
CFTypeRef CFDoubleOf(double value) {
  __CFType* n = New(kNumber);
  n->isFloat = true;
  n->real = value;
  return n;
}
CFTypeRef CFBoolOf(bool value) {
  __CFType* b = New(kBoolean);
  b->boolean = value;
  return b;
}
CFTypeRef CFDataOf(const std::string& bytes) {
  __CFType* d = New(kData);
  d->text = bytes;
  return d;
}
CFTypeRef CFArrayOf(std::vector<CFTypeRef> items) {
  __CFType* a = New(kArray);
  a->items = std::move(items);
  return a;
}
CFTypeRef CFSetOf(std::vector<CFTypeRef> items) {
  __CFType* a = New(kSet);
  a->items = std::move(items);
  return a;
}
CFTypeRef CFDictOf(std::vector<std::pair<CFTypeRef, CFTypeRef>> entries) {
  __CFType* d = New(kDict);
  d->entries = std::move(entries);
  return d;
}

namespace {
std::string Base64Decode(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const size_t value = alphabet.find(c);
    if (value == std::string::npos) continue;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}
}  // namespace

CFTypeRef CFFromJson(const Json& value) {
  switch (value.kind) {
    case Json::Kind::Null: return nullptr;
    case Json::Kind::Bool: return CFBoolOf(value.boolean);
    case Json::Kind::String: return CFStringOf(value.text);
    case Json::Kind::Number: {
      const bool integral = value.text.find_first_of(".eE") == std::string::npos;
      if (!integral) return CFDoubleOf(value.number);
      const bool negative = value.text[0] == '-';
      const uint64_t magnitude = std::stoull(negative ? value.text.substr(1) : value.text);
      const uint64_t bits = negative ? ~magnitude + 1 : magnitude;
      return CFIntegerOf(bits, !negative && magnitude <= 0xffffffffull ? 4 : 8);
    }
    case Json::Kind::Array: {
      std::vector<CFTypeRef> items;
      for (const Json& item : value.items) {
        if (CFTypeRef converted = CFFromJson(item)) items.push_back(converted);
      }
      return CFArrayOf(std::move(items));
    }
    case Json::Kind::Object: {
      if (value.members.size() == 1 && value.members[0].first == "$data" &&
          value.members[0].second.kind == Json::Kind::String) {
        return CFDataOf(Base64Decode(value.members[0].second.text));
      }
      std::vector<std::pair<CFTypeRef, CFTypeRef>> entries;
      for (const auto& [key, item] : value.members) {
        if (CFTypeRef converted = CFFromJson(item)) entries.emplace_back(CFStringOf(key), converted);
      }
      return CFDictOf(std::move(entries));
    }
  }
  return nullptr;
}

size_t LiveCFObjects() {
  std::lock_guard<std::mutex> lock(cfMutex);
  return Live().size();
}

void ResetCF() {
  std::lock_guard<std::mutex> lock(cfMutex);
  for (const __CFType* object : Live()) delete object;
  Live().clear();
}

}  // namespace fake

extern "C" {

CFStringRef __FakeCFSTR(const char* text) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<__CFType>> constants;
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<__CFType>& slot = constants[text];
  if (!slot) {
    slot = std::make_unique<__CFType>();
    slot->type = kString;
    slot->text = text;
    slot->immortal = true;
  }
  return reinterpret_cast<CFStringRef>(slot.get());
}

CFTypeRef CFRetain(CFTypeRef ref) {
  Check(ref, "CFRetain");
  auto* object = const_cast<__CFType*>(Of(ref));
  std::lock_guard<std::mutex> lock(cfMutex);
  if (!object->immortal) ++object->refs;
  return ref;
}

void CFRelease(CFTypeRef ref) {
  Check(ref, "CFRelease");
  auto* object = const_cast<__CFType*>(Of(ref));
  {
    std::lock_guard<std::mutex> lock(cfMutex);
    if (object->immortal || --object->refs > 0) return;
    Live().erase(object);
  }
  for (CFTypeRef item : object->items) CFRelease(item);
  for (auto& [key, value] : object->entries) {
    CFRelease(key);
    CFRelease(value);
  }
  delete object;
}

CFTypeID CFGetTypeID(CFTypeRef ref) {
  Check(ref, "CFGetTypeID");
  return Of(ref)->type;
}

Boolean CFEqual(CFTypeRef a, CFTypeRef b) {
  Check(a, "CFEqual");
  Check(b, "CFEqual");
  if (a == b) return true;
  const __CFType* x = Of(a);
  const __CFType* y = Of(b);
  if (x->type != y->type) return false;
  if (x->type == kString || x->type == kData) return x->text == y->text;
  if (x->type == kNumber) return x->isFloat == y->isFloat && x->integer == y->integer && x->real == y->real;
  if (x->type == kBoolean) return x->boolean == y->boolean;
  return false;
}

CFStringRef CFCopyDescription(CFTypeRef ref) {
  Check(ref, "CFCopyDescription");
  return static_cast<CFStringRef>(fake::CFStringOf("<CFType " + std::to_string(Of(ref)->type) + ">"));
}

CFTypeID CFDictionaryGetTypeID(void) { return kDict; }
CFTypeID CFArrayGetTypeID(void) { return kArray; }
CFTypeID CFSetGetTypeID(void) { return kSet; }
CFTypeID CFStringGetTypeID(void) { return kString; }
CFTypeID CFNumberGetTypeID(void) { return kNumber; }
CFTypeID CFBooleanGetTypeID(void) { return kBoolean; }
CFTypeID CFDataGetTypeID(void) { return kData; }

CFIndex CFDictionaryGetCount(CFDictionaryRef d) {
  Check(d, "CFDictionaryGetCount");
  return static_cast<CFIndex>(Of(d)->entries.size());
}
void CFDictionaryGetKeysAndValues(CFDictionaryRef d, const void** keys, const void** values) {
  Check(d, "CFDictionaryGetKeysAndValues");
  size_t i = 0;
  for (const auto& [key, value] : Of(d)->entries) {
    keys[i] = key;
    values[i++] = value;
  }
}
CFIndex CFArrayGetCount(CFArrayRef a) {
  Check(a, "CFArrayGetCount");
  return static_cast<CFIndex>(Of(a)->items.size());
}
const void* CFArrayGetValueAtIndex(CFArrayRef a, CFIndex i) {
  Check(a, "CFArrayGetValueAtIndex");
  return Of(a)->items.at(static_cast<size_t>(i));
}
CFIndex CFSetGetCount(CFSetRef s) {
  Check(s, "CFSetGetCount");
  return static_cast<CFIndex>(Of(s)->items.size());
}
void CFSetGetValues(CFSetRef s, const void** values) {
  Check(s, "CFSetGetValues");
  for (size_t i = 0; i < Of(s)->items.size(); ++i) values[i] = Of(s)->items[i];
}

const char* CFStringGetCStringPtr(CFStringRef s, CFStringEncoding) {
  Check(s, "CFStringGetCStringPtr");
  // Like CF, the fast pointer exists only sometimes: here for ASCII text.
  for (unsigned char c : Of(s)->text) {
    if (c >= 0x80) return nullptr;
  }
  return Of(s)->text.c_str();
}
CFIndex CFStringGetLength(CFStringRef s) {
  Check(s, "CFStringGetLength");
  return static_cast<CFIndex>(Of(s)->text.size());  // bytes stand in for UTF-16 units
}
CFIndex CFStringGetMaximumSizeForEncoding(CFIndex length, CFStringEncoding) { return length * 3; }
CFIndex CFStringGetBytes(CFStringRef s, CFRange range, CFStringEncoding, UInt8, Boolean, UInt8* buffer,
                         CFIndex maxBufLen, CFIndex* used) {
  Check(s, "CFStringGetBytes");
  const std::string& text = Of(s)->text;
  const size_t n = std::min<size_t>(static_cast<size_t>(range.length), static_cast<size_t>(maxBufLen));
  std::memcpy(buffer, text.data() + range.location, n);
  if (used != nullptr) *used = static_cast<CFIndex>(n);
  return range.length;
}

Boolean CFNumberIsFloatType(CFNumberRef n) {
  Check(n, "CFNumberIsFloatType");
  return Of(n)->isFloat;
}
Boolean CFNumberGetValue(CFNumberRef n, CFNumberType type, void* out) {
  Check(n, "CFNumberGetValue");
  const __CFType* number = Of(n);
  if (type == kCFNumberDoubleType) {
    double value = number->isFloat ? number->real : static_cast<double>(number->integer);
    std::memcpy(out, &value, sizeof value);
  } else {
    int64_t value = number->isFloat ? static_cast<int64_t>(number->real) : number->integer;
    std::memcpy(out, &value, sizeof value);
  }
  return true;
}
CFIndex CFNumberGetByteSize(CFNumberRef n) {
  Check(n, "CFNumberGetByteSize");
  return Of(n)->byteSize;
}
Boolean CFBooleanGetValue(CFBooleanRef b) {
  Check(b, "CFBooleanGetValue");
  return Of(b)->boolean;
}
const UInt8* CFDataGetBytePtr(CFDataRef d) {
  Check(d, "CFDataGetBytePtr");
  return reinterpret_cast<const UInt8*>(Of(d)->text.data());
}
CFIndex CFDataGetLength(CFDataRef d) {
  Check(d, "CFDataGetLength");
  return static_cast<CFIndex>(Of(d)->text.size());
}

}  // extern "C"
