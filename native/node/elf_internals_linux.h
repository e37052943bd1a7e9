// Test hooks over ElfFile for the addon's `internals` object (Linux only).
#pragma once

#include <napi.h>

namespace iokitsnap {

// Adds elfSymbolAt, elfUnwindRuleAt, elfAddressOfFileOffset, elfInfo and inflateZlib to `internals`.
void AddElfInternals(Napi::Env env, Napi::Object internals);

}  // namespace iokitsnap
