// Test hooks over ElfFile (see elf_internals_linux.h). Each call opens the file, answers
// for a whole array of addresses (so a test over thousands of symbols opens it once)
// and closes it. Errors are thrown with `code` (ENOENT, EINVAL...) like the addon's.
#include "elf_internals_linux.h"

#include <errno.h>
#include <string.h>

#include <string>

#include "to_js.h"
#include "../linux/elf_file.h"
#include "../linux/elf_inflate.h"

namespace iokitsnap {
namespace {

using elf::ElfFile;
using elf::Machine;
using elf::UnwindRule;

std::string ErrnoCode(int error) {
  switch (error) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return "EINVAL";
  }
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsString())
    throw MakeError(info.Env(), "EINVAL", "expected (root, path, values[], machine?)");
  return info[index].As<Napi::String>().Utf8Value();
}

// (root, path, …) with the machine ('x64' or 'arm64', the host's when absent) at `machineIndex`.
std::unique_ptr<ElfFile> OpenArg(const Napi::CallbackInfo& info, size_t machineIndex) {
  const std::string root = StringArg(info, 0);
  const std::string path = StringArg(info, 1);
#if defined(__aarch64__)
  Machine machine = Machine::Arm64;
#else
  Machine machine = Machine::X86_64;
#endif
  if (info.Length() > machineIndex && !info[machineIndex].IsUndefined()) {
    const std::string name = info[machineIndex].IsString() ? info[machineIndex].As<Napi::String>().Utf8Value() : "";
    if (name == "arm64") {
      machine = Machine::Arm64;
    } else if (name == "x64") {
      machine = Machine::X86_64;
    } else {
      throw MakeError(info.Env(), "EINVAL", "machine must be 'x64' or 'arm64'");
    }
  }
  int error = 0;
  auto file = ElfFile::Open(root, path, machine, &error);
  if (!file) throw MakeError(info.Env(), ErrnoCode(error), root + path + ": " + strerror(error));
  return file;
}

std::vector<uint64_t> ValuesArg(const Napi::CallbackInfo& info) {
  if (info.Length() <= 2 || !info[2].IsArray()) throw MakeError(info.Env(), "EINVAL", "expected an array of addresses");
  Napi::Array array = info[2].As<Napi::Array>();
  std::vector<uint64_t> values;
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value value = array.Get(i);
    bool lossless = true;
    if (value.IsBigInt()) {
      values.push_back(value.As<Napi::BigInt>().Uint64Value(&lossless));
    } else if (value.IsNumber()) {
      values.push_back(static_cast<uint64_t>(value.As<Napi::Number>().Int64Value()));
    } else {
      throw MakeError(info.Env(), "EINVAL", "addresses must be bigints or numbers");
    }
  }
  return values;
}

Napi::Value RuleToJs(Napi::Env env, const UnwindRule& rule) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("cfaBase", rule.cfaBase == UnwindRule::Base::Sp ? "sp" : "fp");
  out.Set("cfaOffset", static_cast<double>(rule.cfaOffset));
  out.Set("ra", rule.ra == UnwindRule::Ra::AtCfa ? "cfa" : rule.ra == UnwindRule::Ra::InLr ? "lr" : "undefined");
  out.Set("raOffset", static_cast<double>(rule.raOffset));
  out.Set("fp", rule.fp == UnwindRule::Fp::Same ? "same" : "cfa");
  out.Set("fpOffset", static_cast<double>(rule.fpOffset));
  return out;
}

}  // namespace

void AddElfInternals(Napi::Env env, Napi::Object internals) {
  internals.Set("elfSymbolAt", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto file = OpenArg(info, 3);
    const std::vector<uint64_t> addresses = ValuesArg(info);
    Napi::Array out = Napi::Array::New(info.Env(), addresses.size());
    for (uint32_t i = 0; i < addresses.size(); i++) {
      const auto symbol = file->SymbolAt(addresses[i]);
      if (!symbol) {
        out.Set(i, info.Env().Null());
        continue;
      }
      Napi::Object entry = Napi::Object::New(info.Env());
      entry.Set("name", symbol->name);
      entry.Set("offset", static_cast<double>(symbol->offset));
      out.Set(i, entry);
    }
    return out;
  }));
  internals.Set("elfUnwindRuleAt", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto file = OpenArg(info, 3);
    const std::vector<uint64_t> addresses = ValuesArg(info);
    Napi::Array out = Napi::Array::New(info.Env(), addresses.size());
    for (uint32_t i = 0; i < addresses.size(); i++) {
      const auto rule = file->UnwindRuleAt(addresses[i]);
      out.Set(i, rule ? RuleToJs(info.Env(), *rule) : info.Env().Null());
    }
    return out;
  }));
  internals.Set("elfAddressOfFileOffset", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto file = OpenArg(info, 3);
    const std::vector<uint64_t> offsets = ValuesArg(info);
    Napi::Array out = Napi::Array::New(info.Env(), offsets.size());
    for (uint32_t i = 0; i < offsets.size(); i++) {
      const auto address = file->AddressOfFileOffset(offsets[i]);
      out.Set(i, address ? Napi::BigInt::New(info.Env(), *address) : info.Env().Null());
    }
    return out;
  }));
  // inflateZlib(bytes, expectedSize) → Buffer, or null when InflateZlib refuses the stream.
  internals.Set("inflateZlib", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber())
      throw MakeError(info.Env(), "EINVAL", "expected (bytes: Uint8Array, expectedSize: number)");
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    if (array.TypedArrayType() != napi_uint8_array) throw MakeError(info.Env(), "EINVAL", "bytes must be a Uint8Array");
    const double expected = info[1].As<Napi::Number>().DoubleValue();
    if (!(expected >= 0 && expected <= 1 << 30)) throw MakeError(info.Env(), "EINVAL", "expectedSize out of range");
    const auto* bytes = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    const std::vector<uint8_t> out = elf::InflateZlib(bytes, array.ByteLength(), static_cast<size_t>(expected));
    if (out.empty() && expected != 0) return info.Env().Null();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), out.size());
  }));
  internals.Set("elfInfo", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto file = OpenArg(info, 2);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("hasSymbols", file->HasSymbols());
    out.Set("hasUnwindInfo", file->HasUnwindInfo());
    out.Set("debugFile", file->DebugFile());
    return out;
  }));
}

}  // namespace iokitsnap
