// A CF property tree (what IORegistryEntryCreateCFProperties returns) → the
// PropertyValue JSON image of model.h.
#pragma once

#include <CoreFoundation/CoreFoundation.h>

#include <string>

#include "../model.h"

namespace iokitsnap {
namespace darwin {

// UTF-8 text of a CFString ("" for null).
std::string StringFromCF(CFStringRef string);

struct PropertyConversion {
  bool truncated = false;  // a subtree deeper than the limit was replaced by null
};

// Converts one value:
// - CFDictionary → Dict with keys in byte order (IOKit's own order is a hash order
//   that changes from read to read; sorted keys keep snapshots diffable). A
//   non-string key is written as its CF description.
// - CFArray and CFSet → Array (ioreg prints sets as arrays too).
// - CFString → String (UTF-8); CFBoolean → Bool; CFData → Data (raw bytes, base64 in JS).
// - CFNumber: floats → Number. Integers are read as the unsigned OSNumber they were
//   in the kernel: IOKit hands a 32-bit-or-smaller OSNumber over as a CFNumber
//   SInt32 and a 64-bit one as SInt64 (IOCFUnserialize buildNumber), so a value with
//   its top bit set arrives negative; it is zero-extended from that width back to
//   the kernel's value (0xffffffff, not -1), and a value above 2^53 becomes a
//   decimal string (PropertyValue::Unsigned). `ioreg` text prints the 64-bit
//   sign-extension of the same bits, so a 32-bit value with bit 31 set reads
//   4294967295 here and 18446744073709551615 there.
// - Anything else (CFDate, CFUUID, …) → String holding its CF description.
// Nesting deeper than 64 levels (never seen in the IORegistry) becomes Null and
// sets `conversion.truncated`.
PropertyValue PropertyFromCF(CFTypeRef value, PropertyConversion& conversion);

// A CFDictionary → Dict like PropertyFromCF, leaving out the top-level key `skipKey`
// (the caller reads that one separately).
PropertyValue PropertyDictFromCF(CFDictionaryRef dictionary, CFStringRef skipKey, PropertyConversion& conversion);

}  // namespace darwin
}  // namespace iokitsnap
