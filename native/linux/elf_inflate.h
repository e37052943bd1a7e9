// zlib (RFC 1950) / DEFLATE (RFC 1951) decompression, for ELF sections compressed in
// place (SHF_COMPRESSED with ELFCOMPRESS_ZLIB): Go's linker writes .debug_frame so,
// and Debian's and Fedora's debug files carry their .debug_* sections so. Self-contained
// (no libz: the addon loads into any Node, whose own zlib symbols are not ours to bind
// to), bounds-checked on every byte in and out, so a corrupt or hostile section gives
// "nothing", never a read or write out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace iokitsnap {
namespace elf {

// Inflates the zlib stream `in[0, size)` into exactly `expected` bytes. Returns them, or
// an empty vector when the stream is malformed, ends early, would give more or fewer
// than `expected` bytes, or fails its Adler-32 check.
std::vector<uint8_t> InflateZlib(const uint8_t* in, size_t size, size_t expected);

}  // namespace elf
}  // namespace iokitsnap
